import XMLCore

/// An RFC 3994 `application/im-iscomposing+xml` document.
public struct IsComposingDocument: Hashable, Sendable {
    /// `active` or `idle` (§3); other values are kept as written.
    public struct State: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let active = State(rawValue: "active")
        public static let idle = State(rawValue: "idle")
    }

    public var state: State
    /// RFC 3339 date-time of the last activity.
    public var lastActive: String?
    /// The media type being composed (default text/plain).
    public var contentType: String?
    /// Seconds until the sender refreshes an `active` state (§3.2).
    public var refresh: Int?

    public init(state: State, lastActive: String? = nil, contentType: String? = nil, refresh: Int? = nil) {
        self.state = state
        self.lastActive = lastActive
        self.contentType = contentType
        self.refresh = refresh
    }

    public static let mediaType = SIPMediaType.isComposing

    public init(bytes: [UInt8]) throws(SIPBodyError) {
        try self.init(element: SIPBodyError.parseXML(bytes))
    }

    public init(element root: XMLElement) throws(SIPBodyError) {
        let ns = PresenceNamespace.isComposing
        guard root.name == "isComposing", root.namespace == ns else {
            throw .invalidDocument("root is {\(root.namespace)}\(root.name), not <isComposing>")
        }
        guard let state = root.firstChild("state", namespace: ns)?.trimmedText else {
            throw .invalidDocument("<isComposing> without <state>")
        }
        self.init(state: State(rawValue: state))
        lastActive = root.firstChild("lastactive", namespace: ns)?.trimmedText
        contentType = root.firstChild("contenttype", namespace: ns)?.trimmedText
        if let text = root.firstChild("refresh", namespace: ns)?.trimmedText {
            guard let value = Int(text), value > 0 else { throw .invalidDocument("<refresh> is not a positive integer") }
            refresh = value
        }
    }

    public var element: XMLElement {
        let ns = PresenceNamespace.isComposing
        var root = XMLElement("isComposing", namespace: ns)
        root.append(XMLElement("state", namespace: ns, text: state.rawValue))
        if let lastActive { root.append(XMLElement("lastactive", namespace: ns, text: lastActive)) }
        if let contentType { root.append(XMLElement("contenttype", namespace: ns, text: contentType)) }
        if let refresh { root.append(XMLElement("refresh", namespace: ns, text: String(refresh))) }
        return root
    }

    public func serialized() -> [UInt8] {
        Array(("<?xml version='1.0' encoding='UTF-8'?>" + XMLSerializer.string(element)).utf8)
    }
}
