import XMLCore

/// XEP-0220 §2.1.2, step 2: the receiving server's connection to the authoritative server of a
/// domain that claimed a dialback key. It is a stream like any other, so it honours the peer's
/// stream features: a server that requires STARTTLS on every stream (ejabberd with
/// `s2s_use_starttls: required`, Prosody with `s2s_require_encryption`) closes one that sends
/// `<db:verify/>` first with `policy-violation`. TLS here needs no certificate of ours (it is
/// the client side) and proves nothing by itself: the key check does.
///
/// ```
/// connected ─▶ header sent ─(peer header, version 1.0)─▶ awaiting features
///     │                     └(peer header, no version: pre-RFC 3920)─▶ db:verify sent
/// awaiting features ─(starttls offered, TLS usable)─▶ <starttls/> ─(<proceed/>)─▶ TLS ─▶ header again
///                   ─(no starttls, or already secured)─▶ db:verify sent ─(answer)─▶ finished
/// any stream error, <failure/>, close, or a required STARTTLS we cannot do ─▶ finished(error)
/// ```
public struct DialbackVerifierNegotiation: Sendable {
    public enum Action: Hashable, Sendable {
        case sendHeader(XMPPStreamHeader)
        case send(XMLElement)
        /// Put TLS on the connection; call `tlsEstablished` when the handshake completes.
        case startTLS
        case resetReader
        case finished(DialbackElement.Outcome, reason: String)
    }

    private enum Phase: Hashable, Sendable { case idle, awaitingHeader, awaitingFeatures, awaitingProceed, awaitingTLS, awaitingAnswer, done }

    public let sender: String
    public let target: String
    private let key: String
    private let streamID: String
    private let tlsUsable: Bool
    private var phase = Phase.idle
    public private(set) var secured = false

    /// `sender` claimed `key` for stream `streamID` of ours (`target`); `tlsUsable`: whether
    /// this side may negotiate TLS with `sender` (its policy does not forbid it).
    public init(sender: String, target: String, key: String, streamID: String, tlsUsable: Bool) {
        self.sender = sender
        self.target = target
        self.key = key
        self.streamID = streamID
        self.tlsUsable = tlsUsable
    }

    private var header: XMPPStreamHeader { XMPPStreamHeader(from: target, to: sender, declaresDialback: true) }

    public mutating func connected() -> [Action] {
        phase = .awaitingHeader
        return [.sendHeader(header)]
    }

    public mutating func tlsEstablished() -> [Action] {
        guard phase == .awaitingTLS else { return [] }
        secured = true
        phase = .awaitingHeader
        return [.resetReader, .sendHeader(header)]
    }

    public mutating func tlsFailed(_ reason: String) -> [Action] {
        finish(.error, "TLS with \(sender)'s authoritative server failed: \(reason)")
    }

    public mutating func received(_ event: XMPPStreamEvent) -> [Action] {
        switch (phase, event) {
        case (.done, _), (.idle, _):
            return []
        case (_, .closed):
            return finish(.error, "\(sender)'s authoritative server closed the stream")
        case (.awaitingHeader, .opened(let peer)):
            // A server older than RFC 3920 sends no features: ask at once.
            guard peer.version != nil else { return askVerify() }
            phase = .awaitingFeatures
            return []
        case (_, .opened):
            return finish(.error, "an unexpected stream header from \(sender)'s authoritative server")
        case (_, .element(let element)):
            return receivedElement(element)
        }
    }

    private mutating func receivedElement(_ element: XMLElement) -> [Action] {
        if element.name == "error", element.namespace == XMPPNamespace.streams {
            let error = StreamError(element: element).map(\.description) ?? "a stream error"
            return finish(.error, "\(sender)'s authoritative server sent \(error)")
        }
        switch phase {
        case .awaitingFeatures:
            guard let features = StreamFeatures(element: element) else { return askVerify() }
            if !secured, features.startTLS, tlsUsable {
                phase = .awaitingProceed
                return [.send(XMLElement("starttls", namespace: XMPPNamespace.tls))]
            }
            if !secured, features.startTLSRequired {
                return finish(.error, "\(sender)'s authoritative server requires STARTTLS, which the peer policy forbids")
            }
            return askVerify()
        case .awaitingProceed:
            guard element.namespace == XMPPNamespace.tls, element.name == "proceed" else {
                return finish(.error, "\(sender)'s authoritative server refused STARTTLS")
            }
            phase = .awaitingTLS
            return [.startTLS]
        case .awaitingAnswer:
            guard let answer = DialbackElement(element: element), answer.kind == .verify, answer.id == streamID,
                  answer.from == sender, answer.to == target, let type = answer.type else { return [] }
            return finish(type, "\(sender)'s authoritative server answered \(type.rawValue)")
        case .idle, .awaitingHeader, .awaitingTLS, .done:
            return []
        }
    }

    private mutating func askVerify() -> [Action] {
        phase = .awaitingAnswer
        return [.send(DialbackElement(kind: .verify, from: target, to: sender, id: streamID, key: key).element)]
    }

    private mutating func finish(_ outcome: DialbackElement.Outcome, _ reason: String) -> [Action] {
        phase = .done
        return [.finished(outcome, reason: reason)]
    }
}
