import Foundation
import GatewayStore
import NIOCore
import SIPCore
@testable import SIPDomain
import SIPEdge
import StoxTesting
import Testing

/// PUBLISH and SUBSCRIBE/NOTIFY on the wire, with raw sockets as user agents.
@Suite("Presence on the wire: PUBLISH entity tags, watcher authorization, msrtc watchers", .serialized)
struct PresenceWireTests {
    static let pidf = """
        <?xml version="1.0" encoding="UTF-8"?>
        <presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:bob@sip.test">\
        <tuple id="t1"><status><basic>open</basic></status><note>at my desk</note></tuple></presence>
        """

    @Test("PUBLISH: 200 with SIP-ETag and Expires; a refresh by If-Match gets a new tag; an unknown tag 412; another event 489; another body type 415 (RFC 3903 §6)")
    func publishEntityTags() async throws {
        let store = try DomainFixture.store(users: ["bob": "pw-bob"])
        let domain = try await DomainFixture.start(store)
        let bob = try RawEndpoint(user: "bob", serverPort: domain.edge.udpAddress!.port!)
        let uri = "sip:bob@sip.test"
        let created = try #require(try await bob.authenticated("PUBLISH", uri: uri, extra: ["Event: presence", "Expires: 600"],
                                                               body: Self.pidf, contentType: "application/pidf+xml", password: "pw-bob"))
        #expect(created.statusCode == 200)
        #expect(created.expires == 600)
        let etag = try #require(created.headers[.sipETag])
        let refreshed = try #require(try await bob.authenticated("PUBLISH", uri: uri, extra: ["Event: presence", "SIP-If-Match: \(etag)"],
                                                                 password: "pw-bob"))
        #expect(refreshed.statusCode == 200)
        #expect(refreshed.headers[.sipETag] != etag && refreshed.headers[.sipETag] != nil)
        #expect(try await bob.authenticated("PUBLISH", uri: uri, extra: ["Event: presence", "SIP-If-Match: \(etag)"],
                                            password: "pw-bob")?.statusCode == 412)
        // An event package this server does not serve is refused before any challenge.
        try bob.send(bob.request("PUBLISH", uri: uri, to: "<\(uri)>", cseq: 1, callID: "bad-event", extra: ["Event: dialog"],
                                 body: Self.pidf, contentType: "application/pidf+xml"))
        let badEvent = await bob.response()
        #expect(badEvent?.statusCode == 489 && badEvent?.headers[.allowEvents] == "presence")
        #expect(try await bob.authenticated("PUBLISH", uri: uri, extra: ["Event: presence"], body: "hi", password: "pw-bob")?.statusCode == 415)
        #expect(try await bob.authenticated("PUBLISH", uri: "sip:alice@sip.test", extra: ["Event: presence"], body: Self.pidf,
                                            contentType: "application/pidf+xml", password: "pw-bob")?.statusCode == 403)
        let composed = try await domain.edge.eventLoop.submit { domain.composedPresence(of: "bob@sip.test") }.get()
        #expect(composed.tuples.map(\.basic) == [.open])
        await domain.stop()
    }

    /// Reads NOTIFYs until one matches, answering each 200.
    static func notify(at endpoint: RawEndpoint, timeout: Double = 5, where predicate: (SIPRequest) -> Bool) async throws -> SIPRequest? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let request = await endpoint.request(timeout: deadline.timeIntervalSinceNow) else { return nil }
            guard request.method == .notify else { continue }
            try endpoint.answer(request, 200)
            if predicate(request) { return request }
        }
        return nil
    }

    @Test("under the 'ask' policy a watcher stays pending (no state in its NOTIFY) until the user allows it; the decision persists")
    func pendingUntilAllowed() async throws {
        let store = try DomainFixture.store(users: ["alice": "pw-alice", "bob": "pw-bob"])
        let domain = try await DomainFixture.start(store, policy: .ask)
        let alice = try RawEndpoint(user: "alice", serverPort: domain.edge.udpAddress!.port!)
        let answer = try #require(try await alice.authenticated(
            "SUBSCRIBE", uri: "sip:bob@sip.test", extra: ["Event: presence", "Expires: 600", "Contact: \(alice.contact)"], password: "pw-alice"))
        #expect(answer.statusCode == 200 && answer.expires == 600)
        #expect(answer.contacts.first?.uri.port == UInt16(domain.edge.udpAddress!.port!))
        let pending = try #require(try await Self.notify(at: alice) { _ in true })
        #expect(pending.subscriptionState?.state == .pending)
        #expect(pending.body.isEmpty)

        try await domain.decide(presentity: "bob@sip.test", watcher: "alice@sip.test", .allow)
        let active = try #require(try await Self.notify(at: alice) { $0.subscriptionState?.state == .active })
        let document = try PIDFDocument(bytes: active.body)
        #expect(document.tuples.map(\.basic) == [.closed], "bob publishes nothing: offline")
        #expect(try store.decisions(presentity: "bob@sip.test").map(\.decision) == [.allow])
        // Blocking ends the subscription with reason=rejected.
        try await domain.decide(presentity: "bob@sip.test", watcher: "alice@sip.test", .block)
        let rejected = try #require(try await Self.notify(at: alice) { $0.subscriptionState?.state == .terminated })
        #expect(rejected.subscriptionState?.reason == .rejected)
        // And a new SUBSCRIBE from a blocked watcher is refused.
        #expect(try await alice.authenticated("SUBSCRIBE", uri: "sip:bob@sip.test",
                                              extra: ["Event: presence", "Contact: \(alice.contact)"], password: "pw-alice")?.statusCode == 403)
        await domain.stop()
    }

    @Test("a watcher that accepts only msrtc categories gets Lync availability numbers; a publication change is pushed to it")
    func msrtcWatcher() async throws {
        let store = try DomainFixture.store(users: ["alice": "pw-alice", "bob": "pw-bob"])
        let domain = try await DomainFixture.start(store)
        let port = domain.edge.udpAddress!.port!
        let alice = try RawEndpoint(user: "alice", serverPort: port)
        let bob = try RawEndpoint(user: "bob", serverPort: port)
        #expect(try await alice.authenticated("SUBSCRIBE", uri: "sip:bob@sip.test", extra: [
            "Event: presence", "Accept: application/msrtc-event-categories+xml", "Contact: \(alice.contact)",
        ], password: "pw-alice")?.statusCode == 200)
        let offline = try #require(try await Self.notify(at: alice) { _ in true })
        #expect(offline.contentType?.essence == "application/msrtc-event-categories+xml")
        #expect(try MSRTCCategories(bytes: offline.body).availability == 18500)
        #expect(try await bob.authenticated("PUBLISH", uri: "sip:bob@sip.test", extra: ["Event: presence"], body: Self.pidf,
                                            contentType: "application/pidf+xml", password: "pw-bob")?.statusCode == 200)
        let online = try #require(try await Self.notify(at: alice) { (try? MSRTCCategories(bytes: $0.body).availability) == 3500 })
        #expect(try MSRTCCategories(bytes: online.body).note == "at my desk")
        await domain.stop()
    }
}
