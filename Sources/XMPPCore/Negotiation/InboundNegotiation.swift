import Foundation
import XMLCore

/// The receiving side of a server-to-server stream, and the authoritative role of dialback
/// (RFC 6120 §4-§6, XEP-0178, XEP-0220, XEP-0344). A pure state machine: the NIO handler feeds
/// it events and carries out the actions. After authentication it guards every stanza: the
/// `from` domain must have been authenticated on this stream and the `to` domain must be ours.
public struct InboundNegotiation: Sendable {
    public struct Configuration: Sendable {
        /// The XMPP domains this gateway serves.
        public var servedDomains: Set<String>
        /// Policies by peer domain; others get `defaultPolicy`.
        public var policies: [String: PeerPolicy]
        public var defaultPolicy: PeerPolicy
        /// Whether a certificate is configured, so STARTTLS can be offered.
        public var tlsAvailable: Bool
        public var dialbackSecret: String
        /// Offer XEP-0198 stream management: the peer then learns which stanzas were handled
        /// (for the gateway: stored durably), and can resend the others after a broken link.
        public var streamManagement: Bool

        public init(
            servedDomains: Set<String>, policies: [String: PeerPolicy] = [:], defaultPolicy: PeerPolicy = .secure,
            tlsAvailable: Bool, dialbackSecret: String, streamManagement: Bool = false
        ) {
            self.servedDomains = servedDomains
            self.policies = policies
            self.defaultPolicy = defaultPolicy
            self.tlsAvailable = tlsAvailable
            self.dialbackSecret = dialbackSecret
            self.streamManagement = streamManagement
        }

        public func policy(for domain: String) -> PeerPolicy { policies[domain] ?? defaultPolicy }
    }

    public enum Action: Hashable, Sendable {
        case sendHeader(XMPPStreamHeader)
        case send(XMLElement)
        /// Add the TLS server handler (certificate by SNI), then call `tlsEstablished`.
        case startTLS
        case resetReader
        /// `domain` is now authenticated on this stream.
        case authenticated(domain: String, AuthenticationMethod)
        /// Check a dialback key with the authoritative server of `sender` (XEP-0220 §2.1.2):
        /// send `<db:verify/>` there and report with `dialbackVerified`.
        case verifyDialback(sender: String, target: String, key: String, streamID: String)
        /// An authenticated stanza for the gateway.
        case deliver(XMLElement)
        /// XEP-0198 is on: count the stanzas delivered from now on, and say how many were
        /// handled when `acknowledge` comes.
        case enableStreamManagement
        /// The peer asked how many stanzas were handled (`<r/>`): answer `<a h='…'/>`.
        case acknowledge
        case close(StreamError?, reason: String)
    }

    enum Phase: Hashable, Sendable { case awaitingHeader, open, awaitingTLS, closed }

    public let configuration: Configuration
    /// The id this side gives its streams (the dialback StreamID); new after each restart.
    private var streamIDs: [String]
    private var phase = Phase.awaitingHeader
    public private(set) var secured = false
    private var peerCertificate: PeerCertificate?
    private var saslDone = false
    /// The peer's domain from its header (RFC 6120 §4.7.1 `from`), if it said one.
    public private(set) var peerDomain: String?
    /// Our domain the peer addressed.
    public private(set) var localDomain: String?
    public private(set) var streamID: String?
    /// Peer domains authenticated on this stream (dialback may add several, XEP-0220 §2.4).
    public private(set) var authenticatedDomains: Set<String> = []
    /// Dialback requests being verified, sender → target.
    private var pendingDialback: Set<String> = []
    public private(set) var streamManagementEnabled = false

    /// `streamIDs` supplies the ids of the header and of each restart: the shell passes fresh
    /// random values, tests fixed ones.
    /// With `directTLS` (XEP-0368) the connection starts with TLS: call `tlsEstablished` when
    /// the handshake completes, before any stream event.
    public init(_ configuration: Configuration, streamIDs: [String], directTLS: Bool = false) {
        precondition(!streamIDs.isEmpty, "at least one stream id")
        self.configuration = configuration
        self.streamIDs = streamIDs
        if directTLS { phase = .awaitingTLS }
    }

    public mutating func received(_ event: XMPPStreamEvent) -> [Action] {
        switch (phase, event) {
        case (.closed, _):
            return []
        case (_, .closed):
            phase = .closed
            return [.close(nil, reason: "the peer closed the stream")]
        case (.awaitingHeader, .opened(let header)):
            return opened(header)
        case (_, .opened):
            return close(StreamError(.notWellFormed), "a second stream header without a restart")
        case (.open, .element(let element)):
            return receivedElement(element)
        case (_, .element(let element)):
            return close(StreamError(.notWellFormed), "<\(element.name)/> before the stream header")
        }
    }

    private mutating func opened(_ header: XMPPStreamHeader) -> [Action] {
        guard header.contentNamespace == XMPPNamespace.server else {
            return refuse(header, StreamError(.invalidNamespace), "content namespace \(header.contentNamespace) on an s2s stream")
        }
        // RFC 6120 §4.9.3.6: a `to` we do not serve.
        guard let to = header.to?.lowercased(), configuration.servedDomains.contains(to) else {
            return refuse(header, StreamError(.hostUnknown), "the peer addressed \(header.to ?? "no domain")")
        }
        localDomain = to
        if let from = header.from?.lowercased() { peerDomain = from }
        let id = streamIDs.count > 1 ? streamIDs.removeFirst() : streamIDs[0]
        streamID = id
        phase = .open
        let response = XMPPStreamHeader(from: to, to: peerDomain, id: id, version: "1.0", declaresDialback: true)
        return [.sendHeader(response), .send(features().element)]
    }

    private var peerPolicy: PeerPolicy { peerDomain.map(configuration.policy(for:)) ?? configuration.defaultPolicy }

    /// What this stream offers now (RFC 6120 §4.3.2).
    private func features() -> StreamFeatures {
        var features = StreamFeatures()
        let policy = peerPolicy
        // XEP-0198 §3: offered once the stream is as secure as it will be (never before a
        // required STARTTLS), also after the SASL restart.
        if configuration.streamManagement, !streamManagementEnabled, secured || policy.tls != .required {
            features.others.append(XMLElement("sm", namespace: XMPPNamespace.streamManagement))
        }
        if saslDone { return features }
        if !secured, configuration.tlsAvailable, policy.tls != .disabled {
            features.startTLS = true
            features.startTLSRequired = policy.tls == .required
        }
        if secured, let peerDomain, peerCertificate?.isValid(for: peerDomain) == true {
            // XEP-0178 §3 step 5: offer EXTERNAL when the certificate matches the stream `from`.
            features.saslMechanisms = ["EXTERNAL"]
        }
        if policy.allowDialback, secured || policy.tls != .required {
            features.dialback = true
            features.dialbackErrors = true
        }
        return features
    }

    private mutating func receivedElement(_ element: XMLElement) -> [Action] {
        switch (element.namespace, element.name) {
        case (XMPPNamespace.streams, "error"):
            phase = .closed
            return [.close(nil, reason: "the peer sent \(StreamError(element: element)?.description ?? "a stream error")")]
        case (XMPPNamespace.tls, "starttls"):
            guard !secured, configuration.tlsAvailable, peerPolicy.tls != .disabled else {
                phase = .closed
                return [.send(XMLElement("failure", namespace: XMPPNamespace.tls)), .close(nil, reason: "STARTTLS not available")]
            }
            phase = .awaitingTLS
            return [.send(XMLElement("proceed", namespace: XMPPNamespace.tls)), .startTLS]
        case (XMPPNamespace.sasl, "auth"):
            return saslAuth(element)
        case (XMPPNamespace.dialback, _):
            guard let dialback = DialbackElement(element: element) else {
                return close(StreamError(.invalidXML), "a malformed dialback element")
            }
            return dialback.kind == .result ? dialbackRequest(dialback, raw: element) : dialbackVerify(dialback)
        case (XMPPNamespace.server, "message"), (XMPPNamespace.server, "presence"), (XMPPNamespace.server, "iq"):
            return stanza(element)
        case (XMPPNamespace.streamManagement, "enable") where configuration.streamManagement:
            // Prosody enables as soon as it sees the feature, possibly while dialback is still
            // under way: counting starts here either way (XEP-0198 §4: only stanzas count).
            guard !streamManagementEnabled, secured || peerPolicy.tls != .required else {
                var failed = XMLElement("failed", namespace: XMPPNamespace.streamManagement)
                failed.append(XMLElement("unexpected-request", namespace: XMPPNamespace.stanzaErrors))
                return [.send(failed)]
            }
            streamManagementEnabled = true
            // No resumption (the id and resume attributes are absent): a broken link is a new
            // stream, and the peer resends what was not acknowledged.
            return [.send(XMLElement("enabled", namespace: XMPPNamespace.streamManagement)), .enableStreamManagement]
        case (XMPPNamespace.streamManagement, "r") where streamManagementEnabled:
            return [.acknowledge]
        case (XMPPNamespace.streamManagement, "a") where streamManagementEnabled:
            // Nothing is sent on an inbound stream, so there is nothing to acknowledge.
            return []
        default:
            if authenticatedDomains.isEmpty {
                return close(StreamError(.notAuthorized), "<\(element.name)/> before authentication")
            }
            return close(StreamError(.unsupportedStanzaType), "<\(element.name) xmlns='\(element.namespace)'/>")
        }
    }

    private mutating func saslAuth(_ element: XMLElement) -> [Action] {
        let failure = XMLElement("failure", namespace: XMPPNamespace.sasl, children: [.element(XMLElement("not-authorized", namespace: XMPPNamespace.sasl))])
        guard element.attribute("mechanism") == "EXTERNAL", secured, let peerDomain, !saslDone else {
            return [.send(failure)]
        }
        // XEP-0178 §3 step 7: the authzid, if any, must be the stream `from`.
        let text = element.text.trimmingXMLSpace()
        let authzid = text.isEmpty || text == "=" ? peerDomain : String(decoding: Data(base64Encoded: text) ?? Data(), as: UTF8.self).lowercased()
        guard authzid == peerDomain, peerCertificate?.isValid(for: peerDomain) == true else {
            return [.send(failure)]
        }
        saslDone = true
        authenticatedDomains.insert(peerDomain)
        phase = .awaitingHeader
        // Reset first: the peer's restart header may follow <success/> at once (RFC 6120 §6.4.6).
        return [.resetReader, .send(XMLElement("success", namespace: XMPPNamespace.sasl)), .authenticated(domain: peerDomain, .saslExternal)]
    }

    /// XEP-0220 §2.1.2: a receiving server gets `<db:result/>` with a key.
    private mutating func dialbackRequest(_ request: DialbackElement, raw: XMLElement) -> [Action] {
        guard request.type == nil, let key = request.key, let streamID else {
            return close(StreamError(.invalidXML), "a dialback result with a type or without a key on an inbound stream")
        }
        func answer(_ type: DialbackElement.Outcome, _ condition: StanzaError.Condition? = nil) -> Action {
            .send(DialbackElement(kind: .result, from: request.to, to: request.from, type: type, errorCondition: condition).element)
        }
        guard configuration.servedDomains.contains(request.to) else {
            return [answer(.error, .itemNotFound)]
        }
        let policy = configuration.policy(for: request.from)
        guard policy.allowDialback else { return [answer(.error, .notAuthorized)] }
        if policy.tls == .required, !secured { return [answer(.error, .policyViolation)] }
        if authenticatedDomains.contains(request.from) { return [answer(.valid)] }
        // XEP-0344: a certificate that proves the domain answers without the callback.
        if peerCertificate?.isValid(for: request.from) == true {
            authenticatedDomains.insert(request.from)
            return [answer(.valid), .authenticated(domain: request.from, .dialbackByCertificate)]
        }
        if policy.requireValidCertificate { return [answer(.error, .notAuthorized)] }
        pendingDialback.insert(request.from + " " + request.to)
        return [.verifyDialback(sender: request.from, target: request.to, key: key, streamID: streamID)]
    }

    /// The authoritative server's answer arrived (or could not be had).
    public mutating func dialbackVerified(sender: String, target: String, outcome: DialbackElement.Outcome, condition: StanzaError.Condition? = nil) -> [Action] {
        guard phase != .closed, pendingDialback.remove(sender + " " + target) != nil else { return [] }
        let answer = DialbackElement(kind: .result, from: target, to: sender, type: outcome, errorCondition: outcome == .error ? (condition ?? .remoteServerTimeout) : nil)
        switch outcome {
        case .valid:
            authenticatedDomains.insert(sender)
            return [.send(answer.element), .authenticated(domain: sender, .dialback)]
        case .invalid:
            // XEP-0220 §2.3: with no verified pair, invalid closes the stream.
            if authenticatedDomains.isEmpty {
                phase = .closed
                return [.send(answer.element), .close(nil, reason: "\(sender) gave an invalid dialback key")]
            }
            return [.send(answer.element)]
        case .error:
            return [.send(answer.element)]
        }
    }

    /// XEP-0220 §2.1.3: as the authoritative server, check a key this gateway made.
    private mutating func dialbackVerify(_ request: DialbackElement) -> [Action] {
        guard request.kind == .verify, request.type == nil, let id = request.id, let key = request.key else {
            return close(StreamError(.invalidXML), "a malformed db:verify")
        }
        guard configuration.servedDomains.contains(request.to) else {
            return [.send(DialbackElement(kind: .verify, from: request.to, to: request.from, id: id, type: .error, errorCondition: .itemNotFound).element)]
        }
        // The key was made by us (originating = request.to) for the receiving server (request.from).
        let valid = DialbackKey.matches(key, secret: configuration.dialbackSecret, receiving: request.from, originating: request.to, streamID: id)
        return [.send(DialbackElement(kind: .verify, from: request.to, to: request.from, id: id, type: valid ? .valid : .invalid).element)]
    }

    private mutating func stanza(_ element: XMLElement) -> [Action] {
        guard !authenticatedDomains.isEmpty else {
            return close(StreamError(.notAuthorized), "a stanza before authentication")
        }
        // RFC 6120 §8.1.1.2: s2s stanzas carry both addresses.
        guard let from = element.attribute("from").flatMap({ try? JID(parsing: $0) }),
            let to = element.attribute("to").flatMap({ try? JID(parsing: $0) })
        else {
            return close(StreamError(.improperAddressing), "a stanza without a valid 'from' and 'to'")
        }
        guard authenticatedDomains.contains(from.domainpart) else {
            return close(StreamError(.invalidFrom), "\(from.domainpart) is not authenticated on this stream")
        }
        guard configuration.servedDomains.contains(to.domainpart) else {
            return close(StreamError(.hostUnknown), "\(to.domainpart) is not served here")
        }
        return [.deliver(element)]
    }

    /// TLS is up; `peerCertificate` is the client certificate, if the peer sent one.
    public mutating func tlsEstablished(peerCertificate: PeerCertificate?) -> [Action] {
        precondition(phase == .awaitingTLS, "tlsEstablished only after .startTLS or on a direct TLS connection")
        if let peerDomain, configuration.policy(for: peerDomain).requireValidCertificate, let certificate = peerCertificate,
            !certificate.chainValid
        {
            // A certificate that fails validation is refused outright (XEP-0178 §3 step 3);
            // one that is absent leaves dialback to decide.
            return close(nil, "the certificate of \(peerDomain) does not validate")
        }
        self.peerCertificate = peerCertificate
        secured = true
        phase = .awaitingHeader
        return [.resetReader]
    }

    /// RFC 6120 §4.9.1.3: a stream refused while it is being set up still gets our stream header
    /// first, then the one error, then the closing tag. The header names no served domain as
    /// `from` when the peer asked for one we do not serve.
    private mutating func refuse(_ header: XMPPStreamHeader, _ error: StreamError, _ reason: String) -> [Action] {
        // Who was refused, for the log.
        if let from = header.from?.lowercased() { peerDomain = from }
        let served = header.to.map { $0.lowercased() }.flatMap { configuration.servedDomains.contains($0) ? $0 : nil }
        let id = streamIDs[0]
        return [.sendHeader(XMPPStreamHeader(from: served, to: header.from, id: id, version: "1.0"))] + close(error, reason)
    }

    private mutating func close(_ error: StreamError?, _ reason: String) -> [Action] {
        phase = .closed
        return [.close(error, reason: reason)]
    }
}
