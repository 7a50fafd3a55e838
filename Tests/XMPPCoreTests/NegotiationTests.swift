import Testing
import XMLCore
import XMPPCore

/// XEP-0185 and XEP-0114 vectors (protocols.md §2.3, §2.9).
struct DialbackKeyTests {
    @Test("dialback keys match the XEP-0185 test vectors", arguments: [
        ("s3cr3tf0rd14lb4ck", "montague.example", "capulet.example", "D60000229F", "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"),
        ("d14lb4ck43v3r", "capulet.example", "montague.example", "417GAF25", "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"),
        ("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F", "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"),
    ])
    func vectors(_ vector: (String, String, String, String, String)) {
        #expect(DialbackKey.generate(secret: vector.0, receiving: vector.1, originating: vector.2, streamID: vector.3) == vector.4)
        #expect(DialbackKey.matches(vector.4.uppercased(), secret: vector.0, receiving: vector.1, originating: vector.2, streamID: vector.3))
        #expect(!DialbackKey.matches(vector.4, secret: vector.0 + "x", receiving: vector.1, originating: vector.2, streamID: vector.3))
    }

    @Test("the component handshake is hex SHA-1 of stream id and secret (XEP-0114 §3)")
    func component() {
        #expect(ComponentHandshake.digest(streamID: "3BF96D32", secret: "secret") == "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136")
    }

    @Test("certificate identities follow RFC 6125: exact names, left-most wildcards only, trusted chains")
    func certificates() {
        let certificate = PeerCertificate(chainValid: true, dnsNames: ["capulet.lit", "*.montague.lit"], xmppAddresses: ["verona.lit"])
        #expect(certificate.isValid(for: "Capulet.lit"))
        #expect(certificate.isValid(for: "chat.montague.lit"))
        #expect(!certificate.isValid(for: "montague.lit"))
        #expect(!certificate.isValid(for: "a.chat.montague.lit"))
        #expect(certificate.isValid(for: "verona.lit"))
        #expect(!PeerCertificate(chainValid: false, dnsNames: ["capulet.lit"]).isValid(for: "capulet.lit"))
    }
}

/// An outbound negotiation (the gateway, sip.example) talking to an inbound one (the peer,
/// capulet.lit) through real serialization and stream readers; dialback callbacks go to a third
/// machine, the gateway's own inbound side acting as the authoritative server.
final class Conversation {
    var outbound: OutboundNegotiation
    var inbound: InboundNegotiation
    var authoritativeSecret: String
    var clientCertificate: PeerCertificate?
    var serverCertificate: PeerCertificate?
    private var toInbound = XMPPStreamReader()
    private var toOutbound = XMPPStreamReader()
    private var tlsRequested = (outbound: false, inbound: false)
    private(set) var outboundResults: [OutboundNegotiation.Action] = []
    private(set) var inboundResults: [InboundNegotiation.Action] = []
    private(set) var transcript: [String] = []

    init(outbound: OutboundNegotiation.Configuration, inbound: InboundNegotiation.Configuration, authoritativeSecret: String? = nil) {
        self.outbound = OutboundNegotiation(outbound)
        self.inbound = InboundNegotiation(inbound, streamIDs: ["s1", "s2", "s3"])
        self.authoritativeSecret = authoritativeSecret ?? outbound.dialbackSecret
    }

    func start() { handleOutbound(outbound.connected()) }

    /// Sends a stanza over the outbound stream, as the link would once established.
    func sendStanza(_ xml: String) { deliver(Array(xml.utf8), toInbound: true) }

    private func deliver(_ bytes: [UInt8], toInbound: Bool) {
        var events: [XMPPStreamEvent] = []
        do {
            try (toInbound ? self.toInbound : self.toOutbound).feed(bytes, into: &events)
        } catch {
            transcript.append("reader error: \(error)")
            return
        }
        for event in events {
            if toInbound { handleInbound(inbound.received(event)) } else { handleOutbound(outbound.received(event)) }
        }
    }

    private func text(_ element: XMLElement) -> [UInt8] {
        XMLSerializer.bytes(element, in: XMPPStreamHeader.context(XMPPNamespace.server))
    }

    private func handleOutbound(_ actions: [OutboundNegotiation.Action]) {
        for action in actions {
            switch action {
            case .sendHeader(let header):
                transcript.append("A: <stream:stream to='\(header.to ?? "")'>")
                deliver(Array(header.openingTag.utf8), toInbound: true)
            case .send(let element):
                transcript.append("A: <\(element.name)/>")
                deliver(text(element), toInbound: true)
            case .startTLS:
                tlsRequested.outbound = true
                completeTLS()
            case .resetReader:
                toOutbound.reset()
            default:
                outboundResults.append(action)
            }
        }
    }

    private func handleInbound(_ actions: [InboundNegotiation.Action]) {
        for action in actions {
            switch action {
            case .sendHeader(let header):
                transcript.append("B: <stream:stream id='\(header.id ?? "")'>")
                deliver(Array(header.openingTag.utf8), toInbound: false)
            case .send(let element):
                transcript.append("B: <\(element.name)/>")
                deliver(text(element), toInbound: false)
            case .startTLS:
                tlsRequested.inbound = true
                completeTLS()
            case .resetReader:
                toInbound.reset()
            case .verifyDialback(let sender, let target, let key, let streamID):
                inboundResults.append(action)
                handleInbound(inbound.dialbackVerified(sender: sender, target: target, outcome: authoritativeAnswer(sender: sender, target: target, key: key, streamID: streamID)))
            default:
                inboundResults.append(action)
            }
        }
    }

    /// The receiving side asks the gateway's authoritative side over a fresh stream.
    private func authoritativeAnswer(sender: String, target: String, key: String, streamID: String) -> DialbackElement.Outcome {
        var authoritative = InboundNegotiation(
            .init(servedDomains: [sender], defaultPolicy: PeerPolicy(tls: .optional, requireValidCertificate: false),
                  tlsAvailable: false, dialbackSecret: authoritativeSecret),
            streamIDs: ["auth1"])
        let reader = XMPPStreamReader()
        var events: [XMPPStreamEvent] = []
        let header = XMPPStreamHeader(from: target, to: sender, declaresDialback: true).openingTag
        let verify = DialbackElement(kind: .verify, from: target, to: sender, id: streamID, key: key).element
        try? reader.feed(Array(header.utf8) + text(verify), into: &events)
        for event in events {
            for case .send(let element) in authoritative.received(event) {
                if let answer = DialbackElement(element: element), answer.kind == .verify, let type = answer.type { return type }
            }
        }
        return .error
    }

    private func completeTLS() {
        guard tlsRequested.outbound, tlsRequested.inbound else { return }
        tlsRequested = (false, false)
        transcript.append("-- TLS --")
        handleInbound(inbound.tlsEstablished(peerCertificate: clientCertificate))
        handleOutbound(outbound.tlsEstablished(peerCertificate: serverCertificate))
    }
}

struct NegotiationTests {
    static let gateway = "sip.example"
    static let peer = "capulet.lit"
    static let validServer = PeerCertificate(chainValid: true, dnsNames: ["capulet.lit"])
    static let validClient = PeerCertificate(chainValid: true, dnsNames: ["sip.example"])

    static func conversation(
        outboundPolicy: PeerPolicy = .secure, inboundPolicy: PeerPolicy = .secure, hasCertificate: Bool = true,
        tlsAvailable: Bool = true, authoritativeSecret: String? = nil
    ) -> Conversation {
        Conversation(
            outbound: .init(localDomain: gateway, remoteDomain: peer, policy: outboundPolicy, hasCertificate: hasCertificate, dialbackSecret: "gateway-secret"),
            inbound: .init(servedDomains: [peer], defaultPolicy: inboundPolicy, tlsAvailable: tlsAvailable, dialbackSecret: "peer-secret"),
            authoritativeSecret: authoritativeSecret)
    }

    @Test("STARTTLS then SASL EXTERNAL with valid certificates (XEP-0178)")
    func saslExternal() {
        let talk = Self.conversation()
        talk.clientCertificate = Self.validClient
        talk.serverCertificate = Self.validServer
        talk.start()
        #expect(talk.outboundResults == [.established(.saslExternal)], "\(talk.transcript)")
        #expect(talk.inboundResults == [.authenticated(domain: Self.gateway, .saslExternal)])
        #expect(talk.transcript.contains("-- TLS --"))
        talk.sendStanza("<message from='romeo@sip.example/desk' to='juliet@capulet.lit'><body>hi</body></message>")
        guard case .deliver(let message)? = talk.inboundResults.last else { Issue.record("not delivered"); return }
        #expect(message.firstChild("body")?.text == "hi")
    }

    @Test("STARTTLS then dialback in all three roles when there is no client certificate (XEP-0220)")
    func dialbackAfterTLS() {
        let talk = Self.conversation(inboundPolicy: PeerPolicy(tls: .required, requireValidCertificate: false), hasCertificate: false)
        talk.serverCertificate = Self.validServer
        talk.start()
        #expect(talk.outboundResults == [.established(.dialback)], "\(talk.transcript)")
        #expect(talk.inboundResults.contains(.authenticated(domain: Self.gateway, .dialback)))
        #expect(talk.inboundResults.contains { if case .verifyDialback(Self.gateway, Self.peer, _, "s2") = $0 { true } else { false } })
    }

    @Test("a wrong dialback key is refused: the stream closes and queued stanzas bounce with internal-server-error")
    func wrongKey() {
        let talk = Self.conversation(inboundPolicy: PeerPolicy(tls: .required, requireValidCertificate: false), hasCertificate: false, authoritativeSecret: "another-secret")
        talk.serverCertificate = Self.validServer
        talk.start()
        guard case .close(_, let failure)? = talk.outboundResults.last else { Issue.record("\(talk.outboundResults)"); return }
        #expect(failure.bounce == .internalServerError)
        #expect(talk.inboundResults.contains { if case .close = $0 { true } else { false } })
    }

    @Test("a certificate that proves the domain answers dialback without the callback (XEP-0344)")
    func dialbackByCertificate() {
        let talk = Self.conversation(hasCertificate: false)
        talk.clientCertificate = Self.validClient
        talk.serverCertificate = Self.validServer
        talk.start()
        #expect(talk.outboundResults == [.established(.dialback)])
        #expect(talk.inboundResults == [.authenticated(domain: Self.gateway, .dialbackByCertificate)])
    }

    @Test("secure by default: no dialback callback without a valid certificate")
    func secureDefaultRefusesPlainDialback() {
        let talk = Self.conversation(hasCertificate: false)
        talk.serverCertificate = Self.validServer
        talk.start()
        guard case .close(_, let failure)? = talk.outboundResults.last else { Issue.record("\(talk.outboundResults)"); return }
        #expect(failure.bounce == .remoteServerTimeout)
        #expect(!talk.inboundResults.contains { if case .verifyDialback = $0 { true } else { false } })
    }

    @Test("TLS required but not offered closes with policy-violation")
    func tlsRequired() {
        let talk = Self.conversation(tlsAvailable: false)
        talk.start()
        guard case .close(let error, _)? = talk.outboundResults.last else { Issue.record("\(talk.outboundResults)"); return }
        #expect(error?.condition == .policyViolation)
    }

    @Test("a server certificate not valid for the peer's domain is refused")
    func badServerCertificate() {
        let talk = Self.conversation()
        talk.serverCertificate = PeerCertificate(chainValid: true, dnsNames: ["montague.lit"])
        talk.start()
        guard case .close(_, let failure)? = talk.outboundResults.last else { Issue.record("\(talk.outboundResults)"); return }
        #expect(failure.reason.contains("not valid"))
    }

    @Test("legacy plaintext dialback where both policies allow it")
    func legacyDialback() {
        let legacy = PeerPolicy(tls: .optional, allowDialback: true, requireValidCertificate: false)
        let talk = Self.conversation(outboundPolicy: legacy, inboundPolicy: legacy, hasCertificate: false, tlsAvailable: false)
        talk.start()
        #expect(talk.outboundResults == [.established(.dialback)], "\(talk.transcript)")
        #expect(!talk.transcript.contains("-- TLS --"))
    }

    @Test("a stanza from a domain not authenticated on the stream closes it with invalid-from")
    func invalidFrom() {
        let talk = Self.conversation()
        talk.clientCertificate = Self.validClient
        talk.serverCertificate = Self.validServer
        talk.start()
        talk.sendStanza("<message from='mallory@evil.example' to='juliet@capulet.lit'><body>hi</body></message>")
        guard case .close(let error, _)? = talk.inboundResults.last else { Issue.record("\(talk.inboundResults)"); return }
        #expect(error?.condition == .invalidFrom)
    }

    @Test("several domain pairs on one inbound stream: each verified, each then allowed to send (XEP-0220 §2.4)")
    func multiplexedPairs() {
        let legacy = PeerPolicy(tls: .optional, allowDialback: true, requireValidCertificate: false)
        var inbound = InboundNegotiation(.init(servedDomains: ["capulet.lit", "chat.capulet.lit"], defaultPolicy: legacy, tlsAvailable: false,
                                               dialbackSecret: "x"), streamIDs: ["s1"])
        _ = inbound.received(.opened(XMPPStreamHeader(from: "sip.example", to: "capulet.lit", declaresDialback: true)))
        for (sender, target) in [("sip.example", "capulet.lit"), ("conference.sip.example", "chat.capulet.lit")] {
            let request = DialbackElement(kind: .result, from: sender, to: target, key: "k").element
            guard case .verifyDialback(sender, target, "k", "s1")? = inbound.received(.element(request)).first else {
                Issue.record("no verification asked for \(sender)")
                return
            }
            #expect(inbound.dialbackVerified(sender: sender, target: target, outcome: .valid).contains(.authenticated(domain: sender, .dialback)))
        }
        #expect(inbound.authenticatedDomains == ["sip.example", "conference.sip.example"])
        let message = XMLElement("message", namespace: XMPPNamespace.server, attributes: ["from": "room@conference.sip.example", "to": "juliet@chat.capulet.lit"])
        guard case .deliver? = inbound.received(.element(message)).first else { Issue.record("not delivered"); return }
        // A domain never verified on this stream is still refused.
        let other = XMLElement("message", namespace: XMPPNamespace.server, attributes: ["from": "a@other.example", "to": "juliet@capulet.lit"])
        guard case .close(let error, _)? = inbound.received(.element(other)).first else { Issue.record("not refused"); return }
        #expect(error?.condition == .invalidFrom)
    }

    @Test("XEP-0198 on an inbound stream: offered in the features, enabled without resumption, <r/> asks for an acknowledgement")
    func streamManagement() {
        let plain = PeerPolicy(tls: .optional, allowDialback: true, requireValidCertificate: false)
        var inbound = InboundNegotiation(.init(servedDomains: ["capulet.lit"], defaultPolicy: plain, tlsAvailable: false,
                                               dialbackSecret: "x", streamManagement: true), streamIDs: ["s1"])
        let opened = inbound.received(.opened(XMPPStreamHeader(from: "sip.example", to: "capulet.lit", declaresDialback: true)))
        guard case .send(let features)? = opened.last else { Issue.record("\(opened)"); return }
        #expect(features.firstChild("sm", namespace: XMPPNamespace.streamManagement) != nil)
        let enable = XMLElement("enable", namespace: XMPPNamespace.streamManagement)
        let enabled = inbound.received(.element(enable))
        guard case .send(let answer)? = enabled.first else { Issue.record("\(enabled)"); return }
        #expect(answer.name == "enabled" && answer.attribute("resume") == nil && answer.attribute("id") == nil)
        #expect(enabled.contains(.enableStreamManagement))
        // Enabling twice is refused with <failed/>, and the stream goes on (XEP-0198 §3).
        guard case .send(let failed)? = inbound.received(.element(enable)).first else { Issue.record("no answer"); return }
        #expect(failed.name == "failed")
        #expect(inbound.received(.element(XMLElement("r", namespace: XMPPNamespace.streamManagement))) == [.acknowledge])
    }

    @Test("XEP-0198 is not offered before a required STARTTLS, nor when the configuration leaves it off")
    func streamManagementNotOffered() {
        for (tls, management) in [(true, true), (false, false)] {
            var inbound = InboundNegotiation(.init(servedDomains: ["capulet.lit"], tlsAvailable: tls, dialbackSecret: "x",
                                                   streamManagement: management), streamIDs: ["s1"])
            let opened = inbound.received(.opened(XMPPStreamHeader(from: "sip.example", to: "capulet.lit", declaresDialback: true)))
            guard case .send(let features)? = opened.last else { Issue.record("\(opened)"); return }
            #expect(features.firstChild("sm", namespace: XMPPNamespace.streamManagement) == nil)
        }
    }

    @Test("a stream to a domain not served, or in the client namespace, gets our header, then one stream error, then the close (RFC 6120 §4.9.1.3)")
    func refusedAtSetup() {
        for (header, condition) in [
            (XMPPStreamHeader(from: "sip.example", to: "verona.lit", declaresDialback: true), StreamError.Condition.hostUnknown),
            (XMPPStreamHeader(from: "sip.example", to: "capulet.lit", contentNamespace: "jabber:client"), .invalidNamespace),
        ] {
            var inbound = InboundNegotiation(.init(servedDomains: ["capulet.lit"], tlsAvailable: true, dialbackSecret: "x"), streamIDs: ["s1"])
            let actions = inbound.received(.opened(header))
            #expect(actions.count == 2, "\(actions)")
            guard case .sendHeader(let ours)? = actions.first, case .close(let error, _)? = actions.last else { Issue.record("\(actions)"); continue }
            #expect(error?.condition == condition)
            // Never claims a domain it does not serve.
            #expect(ours.from == (condition == .hostUnknown ? nil : "capulet.lit"))
            #expect(ours.to == "sip.example")
            // Closed: nothing more is said, whatever follows.
            #expect(inbound.received(.opened(header)).isEmpty)
        }
    }

    @Test("a stanza before authentication closes with not-authorized")
    func beforeAuthentication() {
        var inbound = InboundNegotiation(.init(servedDomains: ["capulet.lit"], tlsAvailable: true, dialbackSecret: "x"), streamIDs: ["s1"])
        _ = inbound.received(.opened(XMPPStreamHeader(from: "sip.example", to: "capulet.lit", declaresDialback: true)))
        let message = XMLElement("message", namespace: XMPPNamespace.server, attributes: ["from": "a@sip.example", "to": "b@capulet.lit"])
        guard case .close(let error, _)? = inbound.received(.element(message)).last else { Issue.record("not closed"); return }
        #expect(error?.condition == .notAuthorized)
    }
}

@Suite("Dialback verification connections (XEP-0220 §2.1.2) honour the authoritative server's features")
struct DialbackVerifierNegotiationTests {
    static func features(startTLS: Bool, required: Bool = false) -> XMLElement {
        var features = XMLElement("features", namespace: XMPPNamespace.streams)
        if startTLS {
            var tls = XMLElement("starttls", namespace: XMPPNamespace.tls)
            if required { tls.append(XMLElement("required", namespace: XMPPNamespace.tls)) }
            features.append(tls)
        }
        features.append(XMLElement("dialback", namespace: XMPPNamespace.dialbackFeature))
        return features
    }

    static let server = XMPPStreamHeader(from: "e.test", to: "sip.test", id: "x1", version: "1.0", declaresDialback: true)

    @Test("STARTTLS first when offered (ejabberd with s2s_use_starttls: required), then db:verify, then the answer")
    func startTLSThenVerify() {
        var verifier = DialbackVerifierNegotiation(sender: "e.test", target: "sip.test", key: "k", streamID: "s1", tlsUsable: true)
        guard case .sendHeader(let ours)? = verifier.connected().first else { Issue.record("no header"); return }
        #expect(ours.from == "sip.test" && ours.to == "e.test" && ours.declaresDialback)
        #expect(verifier.received(.opened(Self.server)).isEmpty)
        #expect(verifier.received(.element(Self.features(startTLS: true, required: true))) == [.send(XMLElement("starttls", namespace: XMPPNamespace.tls))])
        #expect(verifier.received(.element(XMLElement("proceed", namespace: XMPPNamespace.tls))) == [.startTLS])
        let restart = verifier.tlsEstablished()
        #expect(restart.first == .resetReader && restart.count == 2)
        #expect(verifier.received(.opened(Self.server)).isEmpty)
        let asked = verifier.received(.element(Self.features(startTLS: false)))
        guard case .send(let verify)? = asked.first, let element = DialbackElement(element: verify) else { Issue.record("\(asked)"); return }
        #expect(element.kind == .verify && element.id == "s1" && element.key == "k" && element.from == "sip.test" && element.to == "e.test")
        let answer = DialbackElement(kind: .verify, from: "e.test", to: "sip.test", id: "s1", type: .valid).element
        guard case .finished(let outcome, _)? = verifier.received(.element(answer)).first else { Issue.record("no verdict"); return }
        #expect(outcome == .valid)
        #expect(verifier.secured)
    }

    @Test("no STARTTLS offered: db:verify at once; a server without version 1.0 gets it right after its header")
    func plain() {
        var verifier = DialbackVerifierNegotiation(sender: "e.test", target: "sip.test", key: "k", streamID: "s1", tlsUsable: true)
        _ = verifier.connected()
        _ = verifier.received(.opened(Self.server))
        guard case .send? = verifier.received(.element(Self.features(startTLS: false))).first else { Issue.record("no db:verify"); return }
        var legacy = DialbackVerifierNegotiation(sender: "e.test", target: "sip.test", key: "k", streamID: "s1", tlsUsable: true)
        _ = legacy.connected()
        guard case .send? = legacy.received(.opened(XMPPStreamHeader(from: "e.test", id: "x", version: nil, declaresDialback: true))).first else {
            Issue.record("no db:verify for a pre-1.0 server"); return
        }
    }

    @Test("a required STARTTLS the policy forbids, a stream error, or a refused STARTTLS end with error, never valid")
    func failures() {
        var forbidden = DialbackVerifierNegotiation(sender: "e.test", target: "sip.test", key: "k", streamID: "s1", tlsUsable: false)
        _ = forbidden.connected()
        _ = forbidden.received(.opened(Self.server))
        guard case .finished(.error, _)? = forbidden.received(.element(Self.features(startTLS: true, required: true))).first else {
            Issue.record("required STARTTLS without TLS went on"); return
        }
        var refused = DialbackVerifierNegotiation(sender: "e.test", target: "sip.test", key: "k", streamID: "s1", tlsUsable: true)
        _ = refused.connected()
        _ = refused.received(.opened(Self.server))
        _ = refused.received(.element(Self.features(startTLS: true)))
        guard case .finished(.error, _)? = refused.received(.element(XMLElement("failure", namespace: XMPPNamespace.tls))).first else {
            Issue.record("a refused STARTTLS went on"); return
        }
        var errored = DialbackVerifierNegotiation(sender: "e.test", target: "sip.test", key: "k", streamID: "s1", tlsUsable: true)
        _ = errored.connected()
        guard case .finished(.error, let reason)? = errored.received(.element(StreamError(.policyViolation).element)).first else {
            Issue.record("a stream error went on"); return
        }
        #expect(reason.contains("policy-violation"))
    }
}

struct ServedDomainResponderTests {
    static let responder = ServedDomainResponder(servedDomains: ["sip.example"])

    static func iq(_ xml: String) throws -> XMLElement {
        try XMLDocumentParser.parse(xml)
    }

    @Test("disco#info on the domain shows the gateway/sip identity and the features (XEP-0030)")
    func disco() throws {
        let answer = try #require(Self.responder.answer(Self.iq("<iq xmlns='jabber:server' type='get' id='d1' from='capulet.lit' to='sip.example'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")))
        #expect(answer.attribute("type") == "result")
        #expect(answer.attribute("to") == "capulet.lit")
        let query = try #require(answer.firstChild("query", namespace: XMPPNamespace.discoInfo))
        let identity = try #require(query.firstChild("identity"))
        #expect(identity.attribute("category") == "gateway" && identity.attribute("type") == "sip")
        let features = query.children("feature").compactMap { $0.attribute("var") }
        #expect(features.contains(XMPPNamespace.ping) && features.contains(XMPPNamespace.receipts) && features.contains(XMPPNamespace.chatStates))
    }

    @Test("pings to the domain and to its users are answered (XEP-0199)")
    func ping() throws {
        for to in ["sip.example", "bob@sip.example/desk"] {
            let answer = try #require(Self.responder.answer(Self.iq("<iq xmlns='jabber:server' type='get' id='p1' from='capulet.lit' to='\(to)'><ping xmlns='urn:xmpp:ping'/></iq>")))
            #expect(answer.attribute("type") == "result")
            #expect(answer.attribute("from") == to)
        }
    }

    @Test("other requests to the domain get service-unavailable; messages and user iqs pass on")
    func others() throws {
        let answer = try #require(Self.responder.answer(Self.iq("<iq xmlns='jabber:server' type='get' id='v1' from='capulet.lit' to='sip.example'><query xmlns='jabber:iq:version'/></iq>")))
        #expect(answer.firstChild("error")?.firstChild("service-unavailable") != nil)
        #expect(Self.responder.answer(try Self.iq("<message xmlns='jabber:server' from='a@capulet.lit' to='bob@sip.example'><body>x</body></message>")) == nil)
        #expect(Self.responder.answer(try Self.iq("<iq xmlns='jabber:server' type='get' id='v2' from='capulet.lit' to='bob@sip.example'><vCard xmlns='vcard-temp'/></iq>")) == nil)
        #expect(Self.responder.answer(try Self.iq("<iq xmlns='jabber:server' type='result' id='v3' from='capulet.lit' to='sip.example'/>")) == nil)
    }
}

struct ComponentNegotiationTests {
    @Test("the component handshake: header, SHA-1 digest of id and secret, then established (XEP-0114 §3)")
    func handshake() {
        var negotiation = ComponentNegotiation(componentName: "gw.a.test", secret: "secret")
        guard case .sendHeader(let header) = negotiation.connected().first else { Issue.record("no header"); return }
        #expect(header.contentNamespace == XMPPNamespace.componentAccept)
        #expect(header.openingTag.contains("xmlns='jabber:component:accept'"))
        let answer = negotiation.received(.opened(XMPPStreamHeader(from: "gw.a.test", id: "3BF96D32", version: nil, contentNamespace: XMPPNamespace.componentAccept)))
        #expect(answer == [.send(XMLElement("handshake", namespace: XMPPNamespace.componentAccept, text: "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136"))])
        #expect(negotiation.received(.element(XMLElement("handshake", namespace: XMPPNamespace.componentAccept))) == [.established])
        #expect(negotiation.isEstablished)
    }

    @Test("a refused handshake closes with the server's reason")
    func refused() {
        var negotiation = ComponentNegotiation(componentName: "gw.a.test", secret: "wrong")
        _ = negotiation.connected()
        _ = negotiation.received(.opened(XMPPStreamHeader(id: "x", version: nil, contentNamespace: XMPPNamespace.componentAccept)))
        let actions = negotiation.received(.element(StreamError(.notAuthorized).element))
        guard case .close(nil, let reason)? = actions.first else { Issue.record("\(actions)"); return }
        #expect(reason.contains("not-authorized"))
    }

    @Test("backoff grows exponentially with jitter, capped, and resets")
    func backoff() {
        var backoff = Backoff(base: 1, cap: 60)
        #expect(backoff.next(random: 0.999) < 1.0)
        #expect(backoff.next(random: 0.999) < 2.0)
        #expect(backoff.next(random: 0.5) == 2.0)
        for _ in 0..<20 { _ = backoff.next(random: 0.999) }
        #expect(backoff.next(random: 0.999) <= 60)
        #expect(backoff.next(random: 0) == 0.1)
        backoff.reset()
        #expect(backoff.attempt == 0)
    }

    @Test("stanzas move between jabber:server and jabber:component:accept, payloads untouched")
    func namespaces() throws {
        let message = try XMLDocumentParser.parse("<message xmlns='jabber:server' to='a@b'><body>x</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
        let moved = message.movingNamespace(from: XMPPNamespace.server, to: XMPPNamespace.componentAccept)
        #expect(moved.namespace == XMPPNamespace.componentAccept)
        #expect(moved.firstChild("body")?.namespace == XMPPNamespace.componentAccept)
        #expect(moved.firstChild("active")?.namespace == XMPPNamespace.chatStates)
        #expect(moved.movingNamespace(from: XMPPNamespace.componentAccept, to: XMPPNamespace.server) == message)
    }
}
