import Foundation
import NIOCore
import NIOPosix
import SIPCore
import SIPEdge
import StoxTesting
import Synchronization
import Testing

/// The edge's client side (§17.1) on loopback, against a plain socket playing the far end.
@Suite(.serialized)
struct SIPClientTests {
    final class Events: Sendable {
        let list = Mutex<[SIPClientEvent]>([])
        var finals: [SIPClientEvent] { list.withLock { $0.filter { if case .provisional = $0 { false } else { true } } } }
    }

    static func message(to port: Int, body: String = "hi") -> SIPRequest {
        var request = SIPRequest(method: .message, uri: SIPURI("sip:bob@127.0.0.1:\(port)")!, body: Array(body.utf8))
        request.headers.add(.from, "<sip:gw@stox.example>;tag=g1")
        request.headers.add(.to, "<sip:bob@127.0.0.1>")
        request.headers.add(.callID, "client-\(UInt32.random(in: 1 ... .max))")
        request.headers.add(.cseq, "1 MESSAGE")
        request.headers.add(.contentType, "text/plain")
        return request
    }

    static func waitFor(_ events: Events, count: Int, timeout: Double) async -> [SIPClientEvent] {
        let deadline = Date().addingTimeInterval(timeout)
        while events.finals.count < count, Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return events.finals
    }

    @Test("a UDP request gets our Via (branch, rport) and Max-Forwards, is retransmitted on Timer E until answered, and its 200 reaches the caller once (§17.1.2)")
    func retransmitUntilAnswered() async throws {
        let (edge, _) = try await SIPEdgeTests.start(timers: SIPEdgeTests.fastTimers) { $0.respond($0.request.makeResponse(500)) }
        let far = try UDPClient()
        let events = Events()
        edge.send(Self.message(to: far.port), to: SIPTarget(transport: .udp, address: try SocketAddress(ipAddress: "127.0.0.1", port: far.port))) { event in
            events.list.withLock { $0.append(event) }
        }
        let parser = SIPParser()
        let first = try #require(try await far.receive(timeout: 2).map { try parser.parse(datagram: $0) })
        guard case .request(let request) = first else { Issue.record("not a request"); return }
        let via = try #require(request.topVia)
        #expect(via.hasRFC3261Branch && via.rport == .requested && via.port == UInt16(edge.udpAddress!.port!))
        #expect(request.maxForwards == 70)
        // Stay silent: Timer E (T1 = 50 ms) retransmits the same request, same branch.
        let again = try #require(try await far.receive(timeout: 1).map { try parser.parse(datagram: $0) })
        guard case .request(let retransmitted) = again else { Issue.record("not a request"); return }
        #expect(retransmitted.topVia?.branch == via.branch)
        // A 100 is delivered as provisional, then the 200 as final; a duplicate 200 is absorbed.
        let trying = String(decoding: request.makeResponse(100).serialized(), as: UTF8.self)
        let ok = String(decoding: request.makeResponse(200, toTag: "far").serialized(), as: UTF8.self)
        try far.send(trying, to: edge.udpAddress!.port!)
        try far.send(ok, to: edge.udpAddress!.port!)
        try far.send(ok, to: edge.udpAddress!.port!)
        let finals = await Self.waitFor(events, count: 1, timeout: 2)
        try await Task.sleep(for: .milliseconds(200))
        #expect(events.finals.count == 1)
        guard case .final(let response)? = finals.first else { Issue.record("no final: \(finals)"); return }
        #expect(response.statusCode == 200)
        #expect(events.list.withLock { $0.contains { if case .provisional(let r) = $0 { r.statusCode == 100 } else { false } } })
        await edge.stop()
    }

    @Test("an unanswered request ends with Timer F (64*T1) as a timeout; an abandoned one stops retransmitting and reports nothing")
    func timeoutAndAbandon() async throws {
        let (edge, _) = try await SIPEdgeTests.start(timers: SIPEdgeTests.fastTimers) { $0.respond($0.request.makeResponse(500)) }
        let far = try UDPClient()
        let target = SIPTarget(transport: .udp, address: try SocketAddress(ipAddress: "127.0.0.1", port: far.port))
        let events = Events()
        let started = Date()
        edge.send(Self.message(to: far.port), to: target) { event in events.list.withLock { $0.append(event) } }
        let finals = await Self.waitFor(events, count: 1, timeout: 6)
        #expect(finals == [.timeout])
        #expect(Date().timeIntervalSince(started) >= 3.1)

        let abandoned = Events()
        let handle = edge.send(Self.message(to: far.port), to: target) { event in abandoned.list.withLock { $0.append(event) } }
        _ = await far.receive(timeout: 1)
        edge.abandon(handle)
        try await Task.sleep(for: .milliseconds(100))
        // Drain what was in flight, then nothing more arrives.
        while await far.receive(timeout: 0.2) != nil {}
        #expect(await far.receive(timeout: 0.5) == nil)
        #expect(abandoned.finals.isEmpty)
        #expect(await edge.liveTransactionCount() == 0)
        await edge.stop()
    }

    @Test("a request to a TCP address nobody listens on fails with a transport error (§18.4)")
    func tcpRefused() async throws {
        let (edge, _) = try await SIPEdgeTests.start { $0.respond($0.request.makeResponse(500)) }
        // A port that was just free: bind and close a UDP socket's number, nothing listens on TCP there.
        let port = try UDPClient().port
        let result = await edge.send(Self.message(to: port), to: SIPTarget(transport: .tcp, address: try SocketAddress(ipAddress: "127.0.0.1", port: port)))
        #expect(result == .transportError)
        await edge.stop()
    }

    @Test("a request to a TLS target opens a verified TLS connection (RFC 5922 §7): accepted with the right CA and name, refused otherwise")
    func tlsClient() async throws {
        let pki = try TestPKI()
        let (certificate, key) = try pki.leaf("server", dnsNames: ["sip.test"])
        let server = try await SIPEdge.start(
            SIPEdgeConfiguration(host: "127.0.0.1", udpPort: nil, tcpPort: nil, tlsPort: 0,
                                 tls: SIPTLSConfiguration(certificateChainPath: certificate, privateKeyPath: key)),
            handlers: SIPEdgeHandlers(request: { $0.respond($0.request.makeResponse(200, toTag: "tls")) }),
            group: SIPEdgeTests.group)
        let address = try #require(server.tlsAddress)
        let (clientCertificate, clientKey) = try pki.leaf("client", dnsNames: ["gw.test"])
        func client(trusting ca: String?) async throws -> SIPEdge {
            try await SIPEdge.start(
                SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: nil, tlsPort: nil,
                                     tls: SIPTLSConfiguration(certificateChainPath: clientCertificate, privateKeyPath: clientKey, trustedCAPath: ca)),
                handlers: SIPEdgeHandlers(request: { _ in }), group: SIPEdgeTests.group)
        }
        let trusting = try await client(trusting: pki.path("ca.crt"))
        let ok = await trusting.send(Self.message(to: address.port!), to: SIPTarget(transport: .tls, address: address, serverName: "sip.test"))
        guard case .final(let response) = ok else { Issue.record("no answer over TLS: \(ok)"); return }
        #expect(response.statusCode == 200)
        #expect(response.topVia?.transport == "TLS")
        // The wrong name, and an unknown CA, fail the handshake: a transport error, not a send.
        let wrongName = await trusting.send(Self.message(to: address.port!), to: SIPTarget(transport: .tls, address: address, serverName: "other.test"))
        #expect(wrongName == .transportError)
        let stranger = try await client(trusting: nil)
        let untrusted = await stranger.send(Self.message(to: address.port!), to: SIPTarget(transport: .tls, address: address, serverName: "sip.test"))
        #expect(untrusted == .transportError)
        for edge in [server, trusting, stranger] { await edge.stop() }
    }
}
