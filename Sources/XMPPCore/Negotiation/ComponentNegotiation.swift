import XMLCore

/// The connecting side of an external component stream (XEP-0114 §3): open a stream in
/// `jabber:component:accept` to the component's name, prove the shared secret with the
/// handshake, and carry stanzas. A pure state machine.
public struct ComponentNegotiation: Sendable {
    public enum Action: Hashable, Sendable {
        case sendHeader(XMPPStreamHeader)
        case send(XMLElement)
        case established
        case close(StreamError?, reason: String)
    }

    enum Phase: Hashable, Sendable { case idle, awaitingHeader, awaitingHandshake, established, closed }

    public let componentName: String
    private let secret: String
    private var phase = Phase.idle

    public init(componentName: String, secret: String) {
        self.componentName = componentName
        self.secret = secret
    }

    public var isEstablished: Bool { phase == .established }

    public mutating func connected() -> [Action] {
        precondition(phase == .idle, "connected() once")
        phase = .awaitingHeader
        return [.sendHeader(XMPPStreamHeader(to: componentName, version: nil, contentNamespace: XMPPNamespace.componentAccept))]
    }

    public mutating func received(_ event: XMPPStreamEvent) -> [Action] {
        switch (phase, event) {
        case (.closed, _):
            return []
        case (_, .closed):
            return close(nil, "the server closed the stream")
        case (.awaitingHeader, .opened(let header)):
            guard header.contentNamespace == XMPPNamespace.componentAccept, let id = header.id else {
                return close(StreamError(.invalidNamespace), "not a component stream, or no stream id")
            }
            phase = .awaitingHandshake
            let digest = ComponentHandshake.digest(streamID: id, secret: secret)
            return [.send(XMLElement("handshake", namespace: XMPPNamespace.componentAccept, text: digest))]
        case (_, .opened):
            return close(StreamError(.notWellFormed), "an unexpected stream header")
        case (_, .element(let element)):
            if element.name == "error", element.namespace == XMPPNamespace.streams {
                // not-authorized: a wrong secret; conflict or host-unknown: a wrong name (§3).
                return close(nil, "the server refused the component: \(StreamError(element: element)?.description ?? "stream error")")
            }
            switch phase {
            case .awaitingHandshake:
                guard element.name == "handshake", element.namespace == XMPPNamespace.componentAccept else {
                    return close(StreamError(.notAuthorized), "expected <handshake/>")
                }
                phase = .established
                return [.established]
            case .established:
                return []
            case .idle, .awaitingHeader, .closed:
                return close(StreamError(.notWellFormed), "unexpected <\(element.name)/>")
            }
        }
    }

    private mutating func close(_ error: StreamError?, _ reason: String) -> [Action] {
        phase = .closed
        return [.close(error, reason: reason)]
    }
}

/// Exponential backoff with full jitter for reconnecting links: the n-th retry waits a random
/// time up to `base * 2^n`, capped (so many links that broke together do not retry together).
public struct Backoff: Sendable {
    public var base: Double
    public var cap: Double
    public private(set) var attempt = 0

    public init(base: Double = 1, cap: Double = 60) {
        self.base = base
        self.cap = cap
    }

    /// The delay before the next attempt, with `random` in 0..<1.
    public mutating func next(random: Double) -> Double {
        let ceiling = min(cap, base * Double(1 << min(attempt, 20)))
        attempt += 1
        return max(base / 10, ceiling * random)
    }

    public mutating func reset() { attempt = 0 }
}

extension XMLElement {
    /// This element with every element in namespace `from` (at any depth) moved to `to`:
    /// stanzas cross between `jabber:server` and `jabber:component:accept` this way.
    public func movingNamespace(from: String, to: String) -> XMLElement {
        var element = self
        if element.namespace == from { element.namespace = to }
        element.children = element.children.map { node in
            if case .element(let child) = node { return .element(child.movingNamespace(from: from, to: to)) }
            return node
        }
        return element
    }
}
