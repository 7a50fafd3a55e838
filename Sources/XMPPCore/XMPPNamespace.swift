/// Namespaces of RFC 6120/6121 and the extensions Stox speaks.
public enum XMPPNamespace {
    public static let streams = "http://etherx.jabber.org/streams"
    public static let server = "jabber:server"
    public static let client = "jabber:client"
    public static let componentAccept = "jabber:component:accept"
    public static let dialback = "jabber:server:dialback"
    public static let dialbackFeature = "urn:xmpp:features:dialback"
    public static let tls = "urn:ietf:params:xml:ns:xmpp-tls"
    public static let sasl = "urn:ietf:params:xml:ns:xmpp-sasl"
    public static let streamErrors = "urn:ietf:params:xml:ns:xmpp-streams"
    public static let stanzaErrors = "urn:ietf:params:xml:ns:xmpp-stanzas"
    public static let ping = "urn:xmpp:ping"
    public static let receipts = "urn:xmpp:receipts"
    public static let chatStates = "http://jabber.org/protocol/chatstates"
    public static let discoInfo = "http://jabber.org/protocol/disco#info"
    public static let discoItems = "http://jabber.org/protocol/disco#items"
    public static let xhtmlIM = "http://jabber.org/protocol/xhtml-im"
    public static let xhtml = "http://www.w3.org/1999/xhtml"
    public static let delay = "urn:xmpp:delay"
    /// XEP-0198 Stream Management, version 3.
    public static let streamManagement = "urn:xmpp:sm:3"
}

/// Text with an optional `xml:lang`, as `<body/>`, `<subject/>` and `<status/>` are (RFC 6121 §5.2.3).
public struct XMPPLocalizedText: Hashable, Sendable {
    public var text: String
    public var language: String?

    public init(_ text: String, language: String? = nil) {
        self.text = text
        self.language = language
    }
}

extension Array where Element == XMPPLocalizedText {
    /// The text for `language` (the stanza's `xml:lang`): the element without a language or in that
    /// language, else the first (RFC 6121 §5.2.3).
    public func preferred(for language: String? = nil) -> XMPPLocalizedText? {
        first { $0.language == nil || $0.language == language } ?? first
    }
}
