import Foundation
import NIOCore
import NIOPosix
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

    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    struct Side {
        let service: S2SService
        let inbox: Inbox
        let port: Int
    }

    /// Starts a service for `domain` on an ephemeral port.
    static func start(_ domain: String, tls: S2SConfiguration.TLSMaterial?, ca: String?, secret: String, policy: PeerPolicy,
                      routes: [String: (host: String, port: Int)] = [:]) async throws -> Side {
        let inbox = Inbox()
        let configuration = S2SConfiguration(
            servedDomains: [domain], tls: tls, trustedCAPath: ca, dialbackSecret: secret, defaultPolicy: policy, routes: routes,
            listenPort: 0, establishTimeout: 10)
        let service = S2SService(configuration: configuration, eventLoop: group.next()) { inbox.add($0) }
        let port = try await service.start().get()
        return Side(service: service, inbox: inbox, port: port)
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
    }

    @Test("a stanza for a domain with no route bounces with remote-server-not-found")
    func noRoute() async throws {
        let side = try await Self.start("sip.test", tls: nil, ca: nil, secret: "s", policy: .secure)
        defer { _ = side.service.shutdown() }
        side.service.send(Self.message(from: "romeo@sip.test", to: "juliet@nowhere.test", "lost"))
        let bounce = await side.inbox.wait { $0.attribute("type") == "error" }
        #expect(bounce?.attribute("to") == "romeo@sip.test")
        #expect(bounce?.firstChild("error")?.firstChild("remote-server-not-found") != nil)
    }
}
