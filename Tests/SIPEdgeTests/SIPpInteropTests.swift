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
    static let scenarios = Golden.repositoryRoot.appendingPathComponent("Tests/Interop/sipp")

    struct Run {
        var status: Int32
        var output: String
    }

    /// Runs SIPp to completion (or kills it after `limit` seconds), off the cooperative pool.
    static func sipp(_ scenario: String, port: Int, transport: String, calls: Int, rate: Int,
                     limit: Double = 60) async throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sipp")
        process.arguments = [
            "-sf", scenarios.appendingPathComponent(scenario).path, "-s", "juliet", "127.0.0.1:\(port)",
            "-i", "127.0.0.1", "-p", "0", "-t", transport, "-m", String(calls), "-r", String(rate),
            "-l", "100", "-nostdin", "-timeout", String(Int(limit)), "-timeout_error",
        ]
        // A file, not a pipe: SIPp can never block on a reader that is not keeping up.
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("stox-sipp-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let output = try FileHandle(forWritingTo: log)
        defer {
            try? output.close()
            try? FileManager.default.removeItem(at: log)
        }
        process.standardOutput = output
        process.standardError = output
        process.currentDirectoryURL = FileManager.default.temporaryDirectory
        try process.run()
        let pid = process.processIdentifier
        let status: Int32 = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let deadline = Date().addingTimeInterval(limit + 10)
                while process.isRunning, Date() < deadline { usleep(50_000) }
                if process.isRunning { kill(pid, SIGKILL) }
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return Run(status: status, output: text)
    }

    /// The figures SIPp prints at the end, for the failure message.
    static func summary(_ output: String) -> String {
        output.split(separator: "\n").filter { $0.contains("Successful call") || $0.contains("Failed call")
            || $0.contains("Retransmissions") || $0.contains("Unexpected") }.joined(separator: "\n")
    }

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
}
