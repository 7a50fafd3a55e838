import Foundation
import GatewayStore
import NIOCore
import NIOPosix
import SIPCore
import SIPDomain
import SIPEdge
import StoxTesting
import Synchronization
import Testing

/// The domain as subscriber (RFC 6665 §4.1) to a peer network's user, against a raw UDP endpoint
/// standing for the network's proxy and presence server, so that every answer can be chosen:
/// a NOTIFY before the 2xx, refreshes, 481, 423, 403 and terminated NOTIFYs.
@Suite("Subscriptions to a peer network's users", .serialized)
struct PeerSubscriberTests {
    /// What the handler saw, and the directives it gives back in turn (`.keep` once they run out).
    final class Script: Sendable {
        private let state = Mutex<(events: [PeerSubscriptionEvent], directives: [PeerSubscriptionDirective])>(([], []))
        func then(_ directive: PeerSubscriptionDirective) { state.withLock { $0.directives.append(directive) } }
        func handle(_ event: PeerSubscriptionEvent) -> PeerSubscriptionDirective {
            state.withLock { state in
                state.events.append(event)
                return state.directives.isEmpty ? .keep : state.directives.removeFirst()
            }
        }
        var events: [PeerSubscriptionEvent] { state.withLock { $0.events } }
    }

    static func start(proxy socket: UDPClient) async throws -> (EmbeddedDomain, RawEndpoint) {
        let configuration = EmbeddedDomainConfiguration(
            domains: ["sip.test"],
            peerDomains: [SIPPeerDomain(domain: "corp.test", nextHop: SIPTarget(transport: .udp, address: try SocketAddress(ipAddress: "127.0.0.1", port: socket.port)))])
        let domain = try await EmbeddedDomain.start(configuration, edge: SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: nil, tlsPort: nil),
                                                    store: try DomainFixture.store(users: [:]), group: MultiThreadedEventLoopGroup.singleton)
        return (domain, try RawEndpoint(user: "proxy", serverPort: domain.edge.udpAddress!.port!, socket: socket))
    }

    static func answer(_ request: SIPRequest, _ code: Int, tag: String, by proxy: RawEndpoint, headers: [(SIPHeaderName, String)] = []) throws {
        var response = request.makeResponse(code, toTag: tag)
        response.headers.add(.contact, "<sip:127.0.0.1:\(proxy.socket.port)>")
        for (name, value) in headers { response.headers.add(name, value) }
        try proxy.send(String(decoding: response.serialized(), as: UTF8.self))
    }

    static func notify(_ subscribe: SIPRequest, tag: String, cseq: Int, state: String, by proxy: RawEndpoint, note: String = "here") -> String {
        let body = PIDFDocument(entity: "sip:bob@corp.test", tuples: [PIDFTuple(id: "t1", basic: .open, notes: [LanguageText(note)])]).serialized()
        return ["NOTIFY sip:127.0.0.1 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:\(proxy.socket.port);branch=z9hG4bK\(UInt64.random(in: 1 ... .max))",
                "Max-Forwards: 70", "From: <sip:bob@corp.test>;tag=\(tag)", "To: <sip:juliet@xmpp.test>;tag=\(subscribe.from?.tag ?? "")",
                "Call-ID: \(subscribe.callID ?? "")", "CSeq: \(cseq) NOTIFY", "Event: presence", "Subscription-State: \(state)",
                "Contact: <sip:127.0.0.1:\(proxy.socket.port)>", "Content-Type: application/pidf+xml", "Content-Length: \(body.count)", "",
                String(decoding: body, as: UTF8.self)].joined(separator: "\r\n")
    }

    @Test("a NOTIFY before the 2xx forms the dialog; the refresh goes inside it before expiry; 481 to a refresh and a terminated NOTIFY renew it in a new dialog; 403 ends it")
    func lifecycle() async throws {
        let (domain, proxy) = try await Self.start(proxy: try UDPClient())
        let script = Script()
        domain.watchPeer("bob@corp.test", as: "juliet@xmpp.test", expires: 2) { script.handle($0) }

        let subscribe = try #require(await proxy.request(.subscribe))
        #expect(subscribe.uri.description == "sip:bob@corp.test")
        #expect(subscribe.event?.package == "presence" && subscribe.expires == 2)
        #expect(subscribe.from?.uri.description == "sip:juliet@xmpp.test" && subscribe.to?.tag == nil)
        #expect(subscribe.headers[.accept]?.contains("application/pidf+xml") == true)
        // §4.1.2.4: the NOTIFY may overtake the 2xx; it forms the dialog and is answered 200.
        try proxy.send(Self.notify(subscribe, tag: "srv1", cseq: 1, state: "active;expires=2", by: proxy))
        #expect(await proxy.response()?.statusCode == 200)
        try Self.answer(subscribe, 200, tag: "srv1", by: proxy, headers: [(.expires, "2")])
        #expect(await eventually { script.events.count == 1 }, "the NOTIFY reached the handler")

        // Refreshed inside the dialog before the 2 s run out. (Under load the test may answer
        // after T1, so UDP retransmissions of an earlier SUBSCRIBE can come first: each wait
        // below skips what it has already seen.)
        let refresh = try #require(await proxy.request(.subscribe, timeout: 4) { $0.to?.tag == "srv1" })
        #expect(refresh.callID == subscribe.callID && refresh.to?.tag == "srv1" && refresh.cseq?.sequence == 2)
        #expect(refresh.uri.port == UInt16(proxy.socket.port), "the remote target is the notifier's Contact")
        // The notifier lost it: 481; the table says transient, so a new dialog at once.
        script.then(.retry(after: .zero, expires: nil))
        try Self.answer(refresh, 481, tag: "srv1", by: proxy)
        let renewed = try #require(await proxy.request(.subscribe) { $0.callID != subscribe.callID })
        #expect(renewed.callID != subscribe.callID && renewed.to?.tag == nil)
        try Self.answer(renewed, 200, tag: "srv2", by: proxy, headers: [(.expires, "60")])

        // A terminated NOTIFY (deactivated: subscribe again at once, RFC 6665 §4.1.3).
        script.then(.retry(after: .zero, expires: nil))
        try proxy.send(Self.notify(renewed, tag: "srv2", cseq: 1, state: "terminated;reason=deactivated", by: proxy))
        #expect(await proxy.response()?.statusCode == 200)
        let again = try #require(await proxy.request(.subscribe) { $0.callID != subscribe.callID && $0.callID != renewed.callID })
        #expect(again.callID != renewed.callID)
        // Refused for good: 403 ends it; nothing more is sent, and a late NOTIFY gets 481.
        script.then(.end)
        try Self.answer(again, 403, tag: "srv3", by: proxy)
        #expect(await proxy.request(.subscribe, timeout: 2) { $0.topVia?.branch != again.topVia?.branch } == nil,
                "only retransmissions of the refused SUBSCRIBE may follow")
        #expect(try await domain.peerSubscriptionStates().get().isEmpty)
        try proxy.send(Self.notify(again, tag: "srv3", cseq: 1, state: "active", by: proxy))
        #expect(await proxy.response()?.statusCode == 481)
        if case .refused(let response)? = script.events.last { #expect(response.statusCode == 403) } else { Issue.record("\(script.events)") }
        await domain.stop()
    }

    @Test("423 is answered with a SUBSCRIBE for the Min-Expires asked; one subscription per presentity; the last unwatch sends Expires 0 in the dialog")
    func intervalAndUnsubscribe() async throws {
        let (domain, proxy) = try await Self.start(proxy: try UDPClient())
        let script = Script()
        domain.watchPeer("bob@corp.test", as: "juliet@xmpp.test", expires: 30) { script.handle($0) }
        domain.watchPeer("bob@corp.test", as: "romeo@xmpp.test", expires: 30) { script.handle($0) }
        let first = try #require(await proxy.request(.subscribe))
        script.then(.retry(after: .zero, expires: 120))
        try Self.answer(first, 423, tag: "srv1", by: proxy, headers: [(.minExpires, "120")])
        let second = try #require(await proxy.request(.subscribe))
        #expect(second.expires == 120)
        #expect(second.from?.uri.description == "sip:juliet@xmpp.test", "the second watch joined the first subscription")
        try Self.answer(second, 200, tag: "srv2", by: proxy, headers: [(.expires, "120")])
        #expect(await eventually(timeout: 3) { try await domain.peerSubscriptionStates().get() == ["bob@corp.test": true] })

        domain.unwatchPeer("bob@corp.test")
        let ending = try #require(await proxy.request(.subscribe))
        #expect(ending.expires == 0 && ending.to?.tag == "srv2" && ending.callID == second.callID)
        await domain.stop()
    }
}
