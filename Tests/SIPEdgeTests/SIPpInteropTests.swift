import Foundation
import NIOCore
import NIOPosix
import SIPCore
import SIPEdge
import StoxTesting
import Synchronization
import Testing

/// The SIP edge against SIPp (Debian's `sip-tester`, installed by Tests/install-peers.sh), a real
/// and strict user agent, with the project's own scenarios in Tests/Interop/sipp. SIPp exits 0
/// only when every call of its scenario succeeded. Each SIPp is stopped by its PID.
@Suite(.serialized, .interopPeers)
struct SIPpInteropTests {
    static func sipp(_ scenario: String, port: Int, transport: String, calls: Int, rate: Int,
                     limit: Double = 60, traceMessages: Bool = false) async throws -> SIPp.Run {
        try await SIPp.run(scenario, port: port, transport: transport, calls: calls, rate: rate, limit: limit,
                           traceMessages: traceMessages)
    }

    static func summary(_ output: String) -> String { SIPp.summary(output) }

    @Test("SIPp sends 300 MESSAGEs over UDP and over TCP; every one gets its 200, and each reaches the gateway once", arguments: ["u1", "t1"])
    func pager(transport: String) async throws {
        let received = Mutex<[String: Int]>([:])
        let edge = try await SIPEdge.start(
            SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: 0),
            handlers: SIPEdgeHandlers(request: { request in
                received.withLock { $0[request.request.callID ?? "", default: 0] += 1 }
                request.respond(request.request.makeResponse(200, toTag: "stox"))
            }),
            group: SIPEdgeTests.group)
        let port = transport == "u1" ? edge.udpAddress!.port! : edge.tcpAddress!.port!
        let run = try await Self.sipp("pager_uac.xml", port: port, transport: transport, calls: 300, rate: 300)
        await edge.stop()
        #expect(run.status == 0, "sipp failed:\n\(Self.summary(run.output))\n\(run.output.suffix(2000))")
        let counts = received.withLock { $0 }
        #expect(counts.count == 300)
        #expect(counts.values.allSatisfy { $0 == 1 }, "a MESSAGE reached the transaction user twice")
    }

    @Test("SIPp opens INVITE sessions and cancels them: CANCEL gets 200, the INVITE 487, and SIPp's ACK ends it (§9.2, §17.2.1)", arguments: ["u1", "t1"])
    func inviteCancel(transport: String) async throws {
        let edge = try await SIPEdge.start(
            SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: 0),
            handlers: SIPEdgeHandlers(request: { _ in }),  // never answers: the caller gives up
            group: SIPEdgeTests.group)
        let port = transport == "u1" ? edge.udpAddress!.port! : edge.tcpAddress!.port!
        let run = try await Self.sipp("invite_cancel_uac.xml", port: port, transport: transport, calls: 20, rate: 50)
        #expect(run.status == 0, "sipp failed:\n\(Self.summary(run.output))\n\(run.output.suffix(2000))")
        if transport == "t1" {
            // Reliable transport: Timers I and J are zero, so the ACK ends every INVITE
            // transaction and the 200 every CANCEL. (Over UDP they linger for T4 and 64*T1.)
            // SIPp may exit before the edge has read its last ACK: poll briefly.
            var waited = 0
            while await edge.liveTransactionCount() > 0, waited < 50 {
                try await Task.sleep(for: .milliseconds(100))
                waited += 1
            }
            #expect(await edge.liveTransactionCount() == 0)
        }
        await edge.stop()
    }

    @Test("SIPp retransmits a MESSAGE before the answer: the copy is absorbed, one 200 goes out, and the gateway sees the MESSAGE once (§17.2.2)")
    func retransmissions() async throws {
        let received = Mutex<[String: Int]>([:])
        let edge = try await SIPEdge.start(
            SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: nil),
            handlers: SIPEdgeHandlers(request: { request in
                received.withLock { $0[request.request.callID ?? "", default: 0] += 1 }
                // Answer after SIPp's first duplicate has arrived (it waits 100 ms).
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) {
                    request.respond(request.request.makeResponse(200, toTag: "stox"))
                }
            }),
            group: SIPEdgeTests.group)
        let run = try await Self.sipp("retransmit_uac.xml", port: edge.udpAddress!.port!, transport: "u1", calls: 10, rate: 20,
                                      traceMessages: true)
        await edge.stop()
        let oks = run.messages.components(separatedBy: "SIP/2.0 200 OK").count - 1
        #expect(oks == 10, "one 200 per call, none for the copy that arrived in Trying; saw \(oks)")
        #expect(run.status == 0, "sipp failed:\n\(Self.summary(run.output))\n\(run.output.suffix(2000))")
        let counts = received.withLock { $0 }
        #expect(counts.count == 10)
        #expect(counts.values.allSatisfy { $0 == 1 }, "a retransmission reached the transaction user: \(counts)")
    }

    @Test("a lost ACK: the 486 is retransmitted on Timer G until SIPp acknowledges it, and then no more (§17.2.1)")
    func lostACK() async throws {
        let edge = try await SIPEdge.start(
            SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: nil),
            handlers: SIPEdgeHandlers(request: { request in
                request.respond(request.request.makeResponse(486, toTag: "busy"))
            }),
            group: SIPEdgeTests.group)
        let run = try await Self.sipp("lost_ack_uac.xml", port: edge.udpAddress!.port!, transport: "u1", calls: 5, rate: 10,
                                      traceMessages: true)
        await edge.stop()
        #expect(run.status == 0, "sipp failed:\n\(Self.summary(run.output))\n\(run.output.suffix(2000))")
        // Per call: the first 486 and Timer G's retransmission at 0.5 s before the ACK at 1.2 s
        // (a third if the ACK is late past 1.5 s), then none once the ACK is in.
        let busy = run.messages.components(separatedBy: "SIP/2.0 486 Busy Here").count - 1
        let acks = run.messages.components(separatedBy: "\nACK sip:").count - 1
        #expect(acks == 5)
        #expect((10...15).contains(busy), "5 calls should see 2-3 486s each (the first and Timer G's), saw \(busy)")
    }
}
