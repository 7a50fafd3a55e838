import Foundation
import NIOCore
import NIOPosix
import StoxTesting
import Testing
import XMLCore
import XMPPCore
import XMPPFederation

/// Two gateways federating over real TCP on loopback: every stanza crosses real sockets, TLS
/// and the negotiation of both sides.
@Suite(.serialized)
struct LoopbackFederationTests {
    /// Collects what a service hands up, and lets a test wait for it.
    final class Inbox: @unchecked Sendable {
        private let lock = NSLock()
        private var stanzas: [XMLElement] = []

        func add(_ element: XMLElement) {
            lock.withLock { stanzas.append(element) }
        }

        func wait(seconds: Double = 15, _ match: (XMLElement) -> Bool) async -> XMLElement? {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let found = lock.withLock({ stanzas.first(where: match) }) { return found }
                try? await Task.sleep(nanoseconds: 20_000_000)
            }
            return nil
        }
    }

    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    struct Side {
        let service: S2SService
        let inbox: Inbox
        let port: Int
        let events: StreamProtectionTests.Events
    }

    /// Starts a service for `domain` on an ephemeral port.
    static func start(_ domain: String, tls: S2SConfiguration.TLSMaterial?, ca: String?, secret: String, policy: PeerPolicy,
                      routes: [String: (host: String, port: Int)] = [:]) async throws -> Side {
        let inbox = Inbox()
        let configuration = S2SConfiguration(
            servedDomains: [domain], tls: tls, trustedCAPath: ca, dialbackSecret: secret, defaultPolicy: policy, routes: routes,
            listenPort: 0, establishTimeout: 10)
        let events = StreamProtectionTests.Events()
        let service = S2SService(configuration: configuration, eventLoop: group.next(), onStanza: { inbox.add($0) }, onEvent: { events.add($0) })
        let port = try await service.start().get()
        return Side(service: service, inbox: inbox, port: port, events: events)
    }

    static func message(from: String, to: String, _ body: String) -> XMLElement {
        var message = XMLElement("message", namespace: XMPPNamespace.server, attributes: ["from": from, "to": to, "type": "chat", "id": "m1"])
        message.append(XMLElement("body", namespace: XMPPNamespace.server, text: body))
        return message
    }

    /// Two services that route to each other (dialback callbacks go both ways).
    static func pair(aTLS: S2SConfiguration.TLSMaterial?, bTLS: S2SConfiguration.TLSMaterial?, ca: String?, policy: PeerPolicy,
                     aSecret: String = "secret-a", bSecret: String = "secret-b") async throws -> (Side, Side) {
        let a = try await start("sip.test", tls: aTLS, ca: ca, secret: aSecret, policy: policy)
        let b = try await start("capulet.test", tls: bTLS, ca: ca, secret: bSecret, policy: policy)
        try await a.service.addRoute("capulet.test", host: "127.0.0.1", port: b.port).get()
        try await b.service.addRoute("sip.test", host: "127.0.0.1", port: a.port).get()
        return (a, b)
    }

    @Test("STARTTLS and SASL EXTERNAL with certificates from a trusted CA")
    func saslExternal() async throws {
        let pki = try TestPKI()
        let (aCert, aKey) = try pki.leaf("sip", dnsNames: ["sip.test"])
        let (bCert, bKey) = try pki.leaf("capulet", dnsNames: ["capulet.test"])
        let (a, b) = try await Self.pair(
            aTLS: .init(certificateChainPath: aCert, privateKeyPath: aKey), bTLS: .init(certificateChainPath: bCert, privateKeyPath: bKey),
            ca: pki.path("ca.crt"), policy: .secure)
        defer { _ = a.service.shutdown(); _ = b.service.shutdown() }
        a.service.send(Self.message(from: "romeo@sip.test/desk", to: "juliet@capulet.test", "over TLS and EXTERNAL"))
        let received = await b.inbox.wait { $0.firstChild("body")?.text == "over TLS and EXTERNAL" }
        #expect(received?.attribute("from") == "romeo@sip.test/desk")
    }

    @Test("STARTTLS and dialback in both directions when certificates are self-signed")
    func dialbackOverTLS() async throws {
        let pki = try TestPKI()
        let (aCert, aKey) = try pki.leaf("sip", dnsNames: ["sip.test"], selfSigned: true)
        let (bCert, bKey) = try pki.leaf("capulet", dnsNames: ["capulet.test"], selfSigned: true)
        let relaxed = PeerPolicy(tls: .required, allowDialback: true, requireValidCertificate: false)
        let (a, b) = try await Self.pair(
            aTLS: .init(certificateChainPath: aCert, privateKeyPath: aKey), bTLS: .init(certificateChainPath: bCert, privateKeyPath: bKey),
            ca: nil, policy: relaxed)
        defer { _ = a.service.shutdown(); _ = b.service.shutdown() }
        a.service.send(Self.message(from: "romeo@sip.test", to: "juliet@capulet.test", "hello"))
        #expect(await b.inbox.wait { $0.firstChild("body")?.text == "hello" } != nil)
        b.service.send(Self.message(from: "juliet@capulet.test", to: "romeo@sip.test", "hello back"))
        #expect(await a.inbox.wait { $0.firstChild("body")?.text == "hello back" } != nil)
        // When a's streams go, b hears that its inbound link closed (the gauge behind /health).
        #expect(b.events.inboundOpen("sip.test") == 1)
        try await a.service.shutdown().get()
        #expect(await eventually(timeout: 5) { b.events.inboundOpen("sip.test") == 0 }, "\(b.events.inboundOpen("sip.test"))")
    }

    @Test("a forged dialback key is refused and the sender's stanza bounces")
    func forgedKey() async throws {
        let relaxed = PeerPolicy(tls: .optional, allowDialback: true, requireValidCertificate: false)
        let (a, b) = try await Self.pair(aTLS: nil, bTLS: nil, ca: nil, policy: relaxed)
        defer { _ = a.service.shutdown(); _ = b.service.shutdown() }
        // Mallory claims sip.test with another secret; capulet.test checks with the real sip.test.
        let mallory = try await Self.start("sip.test", tls: nil, ca: nil, secret: "not-the-secret", policy: relaxed,
                                           routes: ["capulet.test": (host: "127.0.0.1", port: b.port)])
        defer { _ = mallory.service.shutdown() }
        mallory.service.send(Self.message(from: "mallory@sip.test", to: "juliet@capulet.test", "let me in"))
        let bounce = await mallory.inbox.wait { $0.attribute("type") == "error" }
        #expect(bounce?.firstChild("error")?.firstChild("internal-server-error") != nil)
        #expect(await b.inbox.wait(seconds: 1) { $0.firstChild("body")?.text == "let me in" } == nil)
        // The receiving side says who was refused and why.
        #expect(await eventually { b.events.refusals.contains { $0.kind == .dialback && $0.reason.contains("sip.test") } }, "\(b.events.refusals)")
    }

    @Test("a certificate for another name is refused when the policy wants a valid one")
    func wrongCertificate() async throws {
        let pki = try TestPKI()
        let (aCert, aKey) = try pki.leaf("sip", dnsNames: ["sip.test"])
        let (bCert, bKey) = try pki.leaf("capulet", dnsNames: ["montague.test"])
        let (a, b) = try await Self.pair(
            aTLS: .init(certificateChainPath: aCert, privateKeyPath: aKey), bTLS: .init(certificateChainPath: bCert, privateKeyPath: bKey),
            ca: pki.path("ca.crt"), policy: .secure)
        defer { _ = a.service.shutdown(); _ = b.service.shutdown() }
        a.service.send(Self.message(from: "romeo@sip.test", to: "juliet@capulet.test", "should not pass"))
        let bounce = await a.inbox.wait { $0.attribute("type") == "error" }
        #expect(bounce?.firstChild("error")?.firstChild("remote-server-not-found") != nil)
        #expect(await b.inbox.wait(seconds: 1) { $0.firstChild("body")?.text == "should not pass" } == nil)
        // Refused in words, not as a Swift enum dump.
        let refusals = a.events.refusals + b.events.refusals
        #expect(await eventually { !(a.events.refusals + b.events.refusals).isEmpty }, "\(refusals)")
        for refusal in a.events.refusals + b.events.refusals {
            #expect(refusal.kind == .certificate)
            #expect(!refusal.reason.contains("BoringSSL") && !refusal.reason.contains("("), "\(refusal.reason)")
        }
    }

    @Test("a stanza for a domain that cannot be reached bounces with remote-server-not-found")
    func unreachable() async throws {
        // A route to a closed port on loopback: the connection is refused.
        let side = try await Self.start("sip.test", tls: nil, ca: nil, secret: "s", policy: .secure,
                                        routes: ["nowhere.test": (host: "127.0.0.1", port: 1)])
        defer { _ = side.service.shutdown() }
        side.service.send(Self.message(from: "romeo@sip.test", to: "juliet@nowhere.test", "lost"))
        let bounce = await side.inbox.wait { $0.attribute("type") == "error" }
        #expect(bounce?.attribute("to") == "romeo@sip.test")
        #expect(bounce?.firstChild("error")?.firstChild("remote-server-not-found") != nil)
    }
}

/// Link liveness with short timings: idle links close and reopen on demand, pings keep a link
/// that answers, and a link whose peer never answers is closed as half-open.
@Suite(.serialized)
struct LinkLivenessTests {
    final class Events: @unchecked Sendable {
        private let lock = NSLock()
        private var events: [S2SEvent] = []
        func add(_ event: S2SEvent) { lock.withLock { events.append(event) } }
        var all: [S2SEvent] { lock.withLock { events } }

        func wait(seconds: Double = 10, _ match: (S2SEvent) -> Bool) async -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if all.contains(where: match) { return true }
                try? await Task.sleep(nanoseconds: 20_000_000)
            }
            return false
        }
    }

    static func start(_ domain: String, tls: S2SConfiguration.TLSMaterial?, ca: String?, policy: PeerPolicy, liveness: S2SConfiguration.Liveness,
                      events: Events, inbox: LoopbackFederationTests.Inbox) async throws -> (S2SService, Int) {
        let configuration = S2SConfiguration(
            servedDomains: [domain], tls: tls, trustedCAPath: ca, dialbackSecret: "s-\(domain)", defaultPolicy: policy, listenPort: 0,
            establishTimeout: 10, liveness: liveness)
        let service = S2SService(configuration: configuration, eventLoop: LoopbackFederationTests.group.next(),
                                 onStanza: { inbox.add($0) }, onEvent: { events.add($0) })
        return (service, try await service.start().get())
    }

    static let relaxed = PeerPolicy(tls: .optional, allowDialback: true, requireValidCertificate: false)

    @Test("an idle link closes, and the next stanza opens a new one")
    func idle() async throws {
        let events = Events(), inboxA = LoopbackFederationTests.Inbox(), inboxB = LoopbackFederationTests.Inbox()
        let liveness = S2SConfiguration.Liveness(keepalive: 200, idle: 800, pingInterval: 60_000, pingTimeout: 5_000)
        let (a, aPort) = try await Self.start("sip.test", tls: nil, ca: nil, policy: Self.relaxed, liveness: liveness, events: events, inbox: inboxA)
        let (b, bPort) = try await Self.start("capulet.test", tls: nil, ca: nil, policy: Self.relaxed, liveness: liveness, events: Events(), inbox: inboxB)
        defer { _ = a.shutdown(); _ = b.shutdown() }
        try await a.addRoute("capulet.test", host: "127.0.0.1", port: bPort).get()
        try await b.addRoute("sip.test", host: "127.0.0.1", port: aPort).get()
        a.send(LoopbackFederationTests.message(from: "romeo@sip.test", to: "juliet@capulet.test", "first"))
        #expect(await inboxB.wait { $0.firstChild("body")?.text == "first" } != nil)
        #expect(await events.wait { if case .outboundDown(_, _, let failure) = $0 { failure.reason.contains("idle") } else { false } })
        a.send(LoopbackFederationTests.message(from: "romeo@sip.test", to: "juliet@capulet.test", "second"))
        #expect(await inboxB.wait { $0.firstChild("body")?.text == "second" } != nil)
        #expect(events.all.filter { if case .outboundUp = $0 { true } else { false } }.count == 2)
    }

    @Test("answered pings keep a quiet link up; their answers do not reach the gateway")
    func pingAnswered() async throws {
        let events = Events(), inboxA = LoopbackFederationTests.Inbox(), inboxB = LoopbackFederationTests.Inbox()
        // A generous answer window: a loaded CI machine must not look like a half-open link.
        let liveness = S2SConfiguration.Liveness(keepalive: 100, idle: 60_000, pingInterval: 200, pingTimeout: 5_000)
        let (a, aPort) = try await Self.start("sip.test", tls: nil, ca: nil, policy: Self.relaxed, liveness: liveness, events: events, inbox: inboxA)
        let (b, bPort) = try await Self.start("capulet.test", tls: nil, ca: nil, policy: Self.relaxed, liveness: liveness, events: Events(), inbox: inboxB)
        defer { _ = a.shutdown(); _ = b.shutdown() }
        try await a.addRoute("capulet.test", host: "127.0.0.1", port: bPort).get()
        try await b.addRoute("sip.test", host: "127.0.0.1", port: aPort).get()
        a.send(LoopbackFederationTests.message(from: "romeo@sip.test", to: "juliet@capulet.test", "hello"))
        #expect(await inboxB.wait { $0.firstChild("body")?.text == "hello" } != nil)
        // Longer than the answer window: an unanswered ping would have closed the link by now.
        try await Task.sleep(nanoseconds: 6_500_000_000)
        #expect(!events.all.contains { if case .outboundDown = $0 { true } else { false } }, "\(events.all)")
        #expect(await inboxA.wait(seconds: 0.2) { $0.name == "iq" } == nil)
    }

    @Test("a link whose peer never answers a ping is closed as half-open, not left to die silently")
    func halfOpen() async throws {
        // capulet.test has no route back to sip.test, so pongs can never arrive: SASL EXTERNAL
        // authenticates without a callback, and the link then looks alive but answers nothing.
        let pki = try TestPKI()
        let (aCert, aKey) = try pki.leaf("sip", dnsNames: ["sip.test"])
        let (bCert, bKey) = try pki.leaf("capulet", dnsNames: ["capulet.test"])
        let events = Events(), inboxB = LoopbackFederationTests.Inbox()
        let liveness = S2SConfiguration.Liveness(keepalive: 100, idle: 60_000, pingInterval: 200, pingTimeout: 600)
        let (a, _) = try await Self.start("sip.test", tls: .init(certificateChainPath: aCert, privateKeyPath: aKey), ca: pki.path("ca.crt"),
                                          policy: .secure, liveness: liveness, events: events, inbox: LoopbackFederationTests.Inbox())
        let (b, bPort) = try await Self.start("capulet.test", tls: .init(certificateChainPath: bCert, privateKeyPath: bKey), ca: pki.path("ca.crt"),
                                              policy: .secure, liveness: liveness, events: Events(), inbox: inboxB)
        defer { _ = a.shutdown(); _ = b.shutdown() }
        try await a.addRoute("capulet.test", host: "127.0.0.1", port: bPort).get()
        a.send(LoopbackFederationTests.message(from: "romeo@sip.test", to: "juliet@capulet.test", "hello"))
        #expect(await inboxB.wait { $0.firstChild("body")?.text == "hello" } != nil)
        #expect(await events.wait { if case .outboundDown(_, _, let failure) = $0 { failure.reason.contains("ping") } else { false } }, "\(events.all)")
    }
}

/// A raw TCP peer that sends bytes and collects what the gateway answers until it closes.
final class RawPeer: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private let lock = NSLock()
    private var received = ""
    private let closed: EventLoopPromise<String>

    init(eventLoop: any EventLoop) { closed = eventLoop.makePromise() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let text = buffer.readString(length: buffer.readableBytes) ?? ""
        lock.withLock { received += text }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed.succeed(lock.withLock { received })
    }

    /// Connects, sends `chunks`, and returns everything received before the gateway closed.
    static func exchange(port: Int, _ chunks: [String]) async throws -> String {
        let loop = LoopbackFederationTests.group.next()
        let peer = RawPeer(eventLoop: loop)
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(peer) } }
            .connect(host: "127.0.0.1", port: port).get()
        for chunk in chunks {
            var buffer = channel.allocator.buffer(capacity: chunk.utf8.count)
            buffer.writeString(chunk)
            // A hostile peer keeps writing after the gateway has closed: that may fail.
            try? await channel.writeAndFlush(buffer)
        }
        let timeout = loop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
        defer { timeout.cancel() }
        return try await peer.closed.futureResult.get()
    }
}

struct StreamProtectionTests {
    static let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='evil.test' to='sip.test' version='1.0'>"

    final class Events: @unchecked Sendable {
        private let lock = NSLock()
        private var events: [S2SEvent] = []
        func add(_ event: S2SEvent) { lock.withLock { events.append(event) } }
        /// Inbound streams from `domain` authenticated and not yet closed.
        func inboundOpen(_ domain: String) -> Int {
            lock.withLock {
                events.reduce(0) { count, event in
                    switch event {
                    case .inboundAuthenticated(let remote, _) where remote == domain: count + 1
                    case .inboundClosed(let remote) where remote == domain: count - 1
                    default: count
                    }
                }
            }
        }
        var refusals: [(peer: String, kind: Refusal, reason: String)] {
            lock.withLock { events.compactMap { if case .refused(let peer, let kind, let reason) = $0 { (peer, kind, reason) } else { nil } } }
        }
    }

    static func gateway(events: Events = Events()) async throws -> (S2SService, Int) {
        let service = S2SService(configuration: .init(servedDomains: ["sip.test"], dialbackSecret: "s", listenPort: 0),
                                 eventLoop: LoopbackFederationTests.group.next(), onStanza: { _ in }, onEvent: { events.add($0) })
        return (service, try await service.start().get())
    }

    static func count(_ needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }

    @Test("a stream refused at setup (host-unknown, jabber:client) gets our header, one stream error and the close, nothing else (RFC 6120 §4.9.1.3)")
    func refusedAtSetup() async throws {
        let events = Events()
        let (service, port) = try await Self.gateway(events: events)
        defer { _ = service.shutdown() }
        for (header, condition) in [
            (Self.header.replacingOccurrences(of: "to='sip.test'", with: "to='elsewhere.test'"), "host-unknown"),
            (Self.header.replacingOccurrences(of: "xmlns='jabber:server'", with: "xmlns='jabber:client'"), "invalid-namespace"),
        ] {
            let answer = try await RawPeer.exchange(port: port, [header])
            #expect(answer.hasPrefix("<?xml version='1.0'?><stream:stream "), "\(answer)")
            #expect(!answer.contains("from='elsewhere.test'"), "never claims a domain it does not serve: \(answer)")
            #expect(Self.count("<stream:stream ", in: answer) == 1 && Self.count("<stream:error>", in: answer) == 1, "\(answer)")
            #expect(answer.contains("<\(condition) xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"), "\(answer)")
            #expect(answer.hasSuffix("</stream:stream>"), "\(answer)")
        }
        // Each refusal is reported once, with the peer's domain and address, in words.
        #expect(await eventually { events.refusals.count == 2 })
        #expect(events.refusals.allSatisfy { $0.kind == .stream && $0.peer.contains("evil.test") && $0.peer.contains("127.0.0.1") }, "\(events.refusals)")
    }

    @Test("64 KiB of garbage in many writes gets one header, one error and one close, and is reported once as hostile XML")
    func garbageOnce() async throws {
        let events = Events()
        let (service, port) = try await Self.gateway(events: events)
        defer { _ = service.shutdown() }
        let chunk = String(repeating: "<<<&&&\u{1}", count: 4096 / 8)
        let answer = try await RawPeer.exchange(port: port, Array(repeating: chunk, count: 16))
        #expect(Self.count("<stream:stream ", in: answer) == 1, "\(answer)")
        #expect(Self.count("<stream:error>", in: answer) == 1, "\(answer)")
        #expect(Self.count("</stream:stream>", in: answer) == 1, "\(answer)")
        #expect(await eventually { !events.refusals.isEmpty })
        try await Task.sleep(for: .milliseconds(200))
        #expect(events.refusals.count == 1, "\(events.refusals)")
        #expect(events.refusals.first?.kind == .hostileXML)
    }

    @Test("an oversized stanza closes the stream with policy-violation")
    func oversized() async throws {
        let (service, port) = try await Self.gateway()
        defer { _ = service.shutdown() }
        let big = "<message from='a@evil.test' to='b@sip.test'><body>" + String(repeating: "x", count: 300 * 1024) + "</body></message>"
        let answer = try await RawPeer.exchange(port: port, [Self.header, big])
        #expect(answer.contains("<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"), "\(answer.prefix(500))")
        #expect(answer.hasSuffix("</stream:stream>"))
    }

    @Test("malformed XML closes the stream with not-well-formed; a DTD with restricted-xml")
    func malformed() async throws {
        let (service, port) = try await Self.gateway()
        defer { _ = service.shutdown() }
        let broken = try await RawPeer.exchange(port: port, [Self.header, "<message><body></message>"])
        #expect(broken.contains("<not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"), "\(broken)")
        let dtd = try await RawPeer.exchange(port: port, ["<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>"])
        #expect(dtd.contains("<restricted-xml xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"), "\(dtd)")
    }
}
