import Foundation
import XMLCore

/// The initiating side of a server-to-server stream (RFC 6120 §4-§6, XEP-0178, XEP-0220): a
/// pure state machine. The NIO handler feeds it events and carries out the actions it returns;
/// it reads no clock and touches no socket.
///
///     connected ─▶ awaitingHeader ─▶ awaitingFeatures ─┬▶ awaitingProceed ─▶ awaitingTLS ─▶ (restart)
///                                                      ├▶ awaitingSASL ─success─▶ (restart) ─▶ established
///                                                      └▶ awaitingDialback ─valid─▶ established
public struct OutboundNegotiation: Sendable {
    public struct Configuration: Sendable {
        public var localDomain: String
        public var remoteDomain: String
        public var policy: PeerPolicy
        /// Whether we present a certificate for `localDomain` (needed for SASL EXTERNAL).
        public var hasCertificate: Bool
        public var dialbackSecret: String

        public init(localDomain: String, remoteDomain: String, policy: PeerPolicy = .secure, hasCertificate: Bool, dialbackSecret: String) {
            self.localDomain = localDomain
            self.remoteDomain = remoteDomain
            self.policy = policy
            self.hasCertificate = hasCertificate
            self.dialbackSecret = dialbackSecret
        }
    }

    public enum Action: Hashable, Sendable {
        case sendHeader(XMPPStreamHeader)
        case send(XMLElement)
        /// Add the TLS client handler (SNI = remote domain, our certificate as client
        /// certificate), then call `tlsEstablished` or `tlsFailed`.
        case startTLS
        /// A stream restart: reset the stream reader before the next bytes (RFC 6120 §4.3.3).
        case resetReader
        case established(AuthenticationMethod)
        /// Send this stream error if any, close the stream and the connection.
        case close(StreamError?, NegotiationFailure)
        /// A `<db:verify/>` answer for a check this server asked over this stream.
        case verifyAnswer(DialbackElement)
    }

    enum Phase: Hashable, Sendable {
        case idle, awaitingHeader, awaitingFeatures, awaitingProceed, awaitingTLS, awaitingSASL, awaitingDialback, established, closed
    }

    public let configuration: Configuration
    private(set) var phase = Phase.idle
    public private(set) var secured = false
    private var saslDone = false
    /// The id of the peer's response header: the StreamID of the dialback key.
    public private(set) var peerStreamID: String?
    private var peerDeclaresDialback = false
    private var peerCertificateValid = false
    public private(set) var authentication: AuthenticationMethod?

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    public var isEstablished: Bool { phase == .established }
    /// The last features the peer sent offered XEP-0198 (Prosody does after SASL, not before).
    public private(set) var peerOffersStreamManagement = false

    private var header: XMPPStreamHeader {
        XMPPStreamHeader(from: configuration.localDomain, to: configuration.remoteDomain, declaresDialback: true)
    }

    /// The TCP connection is up: open the stream. Always send `from` and declare `xmlns:db`
    /// so legacy peers offer dialback (protocols.md §2.1 step 2). With `directTLS` (XEP-0368)
    /// TLS comes first: the stream opens once `tlsEstablished` is called.
    public mutating func connected(directTLS: Bool = false) -> [Action] {
        precondition(phase == .idle, "connected() once")
        if directTLS {
            phase = .awaitingTLS
            return [.startTLS]
        }
        phase = .awaitingHeader
        return [.sendHeader(header)]
    }

    public mutating func received(_ event: XMPPStreamEvent) -> [Action] {
        switch (phase, event) {
        case (.closed, _):
            return []
        case (_, .closed):
            return fail(nil, .remoteServerNotFound, "the peer closed the stream")
        case (.awaitingHeader, .opened(let peer)):
            guard peer.contentNamespace == XMPPNamespace.server else {
                return fail(StreamError(.invalidNamespace), .remoteServerNotFound, "the peer's stream is not jabber:server")
            }
            if peerStreamID == nil || !saslDone { peerStreamID = peer.id }
            peerDeclaresDialback = peer.declaresDialback
            phase = .awaitingFeatures
            return []
        case (_, .opened):
            return fail(StreamError(.notWellFormed), .remoteServerNotFound, "a second stream header")
        case (_, .element(let element)):
            return receivedElement(element)
        }
    }

    private mutating func receivedElement(_ element: XMLElement) -> [Action] {
        if element.name == "error", element.namespace == XMPPNamespace.streams {
            let error = StreamError(element: element).map(\.description) ?? "stream error"
            return fail(nil, .remoteServerNotFound, "the peer sent \(error)")
        }
        switch phase {
        case .awaitingFeatures:
            guard let features = StreamFeatures(element: element) else {
                return fail(StreamError(.notAuthorized), .remoteServerNotFound, "expected <stream:features/>, got <\(element.name)/>")
            }
            return receivedFeatures(features)
        case .awaitingProceed:
            guard element.namespace == XMPPNamespace.tls else {
                return fail(StreamError(.notAuthorized), .remoteServerNotFound, "expected <proceed/>")
            }
            guard element.name == "proceed" else {
                return fail(nil, .remoteServerNotFound, "the peer refused STARTTLS")
            }
            phase = .awaitingTLS
            return [.startTLS]
        case .awaitingSASL:
            guard element.namespace == XMPPNamespace.sasl else {
                return fail(StreamError(.notAuthorized), .remoteServerNotFound, "expected a SASL outcome")
            }
            if element.name == "success" {
                // RFC 6120 §6.4.6: restart the stream on the authenticated channel.
                saslDone = true
                authentication = .saslExternal
                phase = .awaitingHeader
                return [.resetReader, .sendHeader(header)]
            }
            // XEP-0178 §3 step 7: a refused certificate may still use dialback.
            if configuration.policy.allowDialback { return startDialback() }
            return fail(StreamError(.notAuthorized), .internalServerError, "SASL EXTERNAL failed and dialback is not allowed for \(configuration.remoteDomain)")
        case .awaitingDialback:
            guard let dialback = DialbackElement(element: element) else {
                return fail(StreamError(.notAuthorized), .remoteServerNotFound, "stanza before dialback finished")
            }
            return receivedDialback(dialback)
        case .established:
            if let dialback = DialbackElement(element: element), dialback.kind == .verify, dialback.type != nil {
                return [.verifyAnswer(dialback)]
            }
            // An outbound stream carries nothing but answers to us (RFC 6120 §4.5).
            return []
        case .idle, .awaitingHeader, .awaitingTLS, .closed:
            return fail(StreamError(.notWellFormed), .remoteServerNotFound, "unexpected <\(element.name)/>")
        }
    }

    private mutating func receivedFeatures(_ features: StreamFeatures) -> [Action] {
        peerOffersStreamManagement = features.others.contains { $0.name == "sm" && $0.namespace == XMPPNamespace.streamManagement }
        if saslDone {
            phase = .established
            return [.established(.saslExternal)]
        }
        let policy = configuration.policy
        if !secured {
            if features.startTLS, policy.tls != .disabled {
                phase = .awaitingProceed
                return [.send(XMLElement("starttls", namespace: XMPPNamespace.tls))]
            }
            if policy.tls == .required {
                return fail(StreamError(.policyViolation, text: "TLS is required"), .remoteServerNotFound,
                            "\(configuration.remoteDomain) offers no STARTTLS and the policy requires TLS")
            }
            if features.startTLSRequired {
                return fail(nil, .remoteServerNotFound, "\(configuration.remoteDomain) requires TLS, disabled by our policy")
            }
        }
        if secured, configuration.hasCertificate, features.saslMechanisms.contains("EXTERNAL") {
            phase = .awaitingSASL
            // XEP-0178 §3 step 6: the authzid (our domain) is included for older servers.
            let authzid = Data(configuration.localDomain.utf8).base64EncodedString()
            return [.send(XMLElement("auth", namespace: XMPPNamespace.sasl, attributes: ["mechanism": "EXTERNAL"], children: [.text(authzid)]))]
        }
        if policy.allowDialback, features.dialback || peerDeclaresDialback {
            return startDialback()
        }
        return fail(StreamError(.unsupportedFeature), .remoteServerNotFound, "no authentication both sides allow")
    }

    /// XEP-0220 §2.1.1: send the key; queue stanzas until the answer.
    private mutating func startDialback() -> [Action] {
        guard let streamID = peerStreamID else {
            return fail(StreamError(.invalidXML), .remoteServerNotFound, "the peer's header has no id for the dialback key")
        }
        phase = .awaitingDialback
        let key = DialbackKey.generate(
            secret: configuration.dialbackSecret, receiving: configuration.remoteDomain, originating: configuration.localDomain,
            streamID: streamID)
        return [.send(DialbackElement(kind: .result, from: configuration.localDomain, to: configuration.remoteDomain, key: key).element)]
    }

    private mutating func receivedDialback(_ dialback: DialbackElement) -> [Action] {
        guard dialback.kind == .result, dialback.from == configuration.remoteDomain, dialback.to == configuration.localDomain else {
            if dialback.kind == .verify, dialback.type != nil { return [.verifyAnswer(dialback)] }
            return fail(StreamError(.invalidFrom), .remoteServerNotFound, "a dialback answer for another domain pair")
        }
        switch dialback.type {
        case .valid?:
            phase = .established
            authentication = .dialback
            return [.established(.dialback)]
        case .invalid?:
            // XEP-0220 §2.3: bounce with internal-server-error.
            return fail(nil, .internalServerError, "\(configuration.remoteDomain) did not accept our dialback key")
        case .error?:
            return fail(nil, .remoteServerTimeout, "dialback error \(dialback.errorCondition?.rawValue ?? "unspecified") from \(configuration.remoteDomain)")
        case nil:
            return fail(StreamError(.notAuthorized), .remoteServerNotFound, "a dialback request on an outbound stream")
        }
    }

    /// TLS is up; `peerCertificate` is what the server presented.
    public mutating func tlsEstablished(peerCertificate: PeerCertificate?) -> [Action] {
        precondition(phase == .awaitingTLS, "tlsEstablished only after .startTLS")
        let valid = peerCertificate?.isValid(for: configuration.remoteDomain) ?? false
        if configuration.policy.requireValidCertificate, !valid {
            return fail(nil, .remoteServerNotFound, "the certificate of \(configuration.remoteDomain) is not valid for it (RFC 6125)")
        }
        peerCertificateValid = valid
        secured = true
        phase = .awaitingHeader
        return [.resetReader, .sendHeader(header)]
    }

    public mutating func tlsFailed(_ reason: String) -> [Action] {
        fail(nil, .remoteServerNotFound, "TLS with \(configuration.remoteDomain) failed: \(reason)")
    }

    private mutating func fail(_ error: StreamError?, _ bounce: StanzaError.Condition, _ reason: String) -> [Action] {
        phase = .closed
        return [.close(error, NegotiationFailure(bounce, reason))]
    }
}
