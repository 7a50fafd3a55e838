import XMLCore

/// Why a body (PIDF, msrtc categories, isComposing) was refused: the XML itself, or a document
/// that is well-formed but not the expected vocabulary. Answered with 400 (or 415 for a type
/// Stox does not take) by the SIP edge.
public enum SIPBodyError: Error, Hashable, Sendable, CustomStringConvertible {
    case xml(XMLParseError)
    /// The root element or a required part is not what the format demands.
    case invalidDocument(String)

    public var description: String {
        switch self {
        case .xml(let error): "XML: \(error)"
        case .invalidDocument(let detail): "invalid document: \(detail)"
        }
    }

    static func parseXML(_ bytes: [UInt8]) throws(SIPBodyError) -> XMLElement {
        do {
            return try XMLDocumentParser.parse(bytes)
        } catch {
            throw .xml(error)
        }
    }
}

/// Namespaces of the presence documents.
public enum PresenceNamespace {
    public static let pidf = "urn:ietf:params:xml:ns:pidf"
    public static let dataModel = "urn:ietf:params:xml:ns:pidf:data-model"
    public static let rpid = "urn:ietf:params:xml:ns:pidf:rpid"
    public static let caps = "urn:ietf:params:xml:ns:pidf:caps"
    /// RFC 8048 §6.2 embeds XMPP `<show/>` in this namespace inside a tuple's `<status/>`.
    public static let jabberClient = "jabber:client"
    public static let isComposing = "urn:ietf:params:xml:ns:im-iscomposing"
    public static let msrtcCategories = "http://schemas.microsoft.com/2006/09/sip/categories"
    public static let msrtcState = "http://schemas.microsoft.com/2006/09/sip/state"
    public static let msrtcNote = "http://schemas.microsoft.com/2006/09/sip/note"
    public static let msrtcRichPresence = "http://schemas.microsoft.com/2006/09/sip/rich-presence"
    public static let xsi = "http://www.w3.org/2001/XMLSchema-instance"
}

extension XMLElement {
    /// Trimmed text content, or `nil` when empty.
    var trimmedText: String? {
        let text = deepText.trimmingXMLWhitespace()
        return text.isEmpty ? nil : text
    }
}

extension String {
    func trimmingXMLWhitespace() -> String {
        let scalars = unicodeScalars
        var start = scalars.startIndex
        var end = scalars.endIndex
        func isSpace(_ s: Unicode.Scalar) -> Bool { s == " " || s == "\t" || s == "\n" || s == "\r" }
        while start < end, isSpace(scalars[start]) { start = scalars.index(after: start) }
        while end > start, isSpace(scalars[scalars.index(before: end)]) { end = scalars.index(before: end) }
        return String(scalars[start..<end])
    }
}

/// Text with an optional `xml:lang`, as PIDF notes are.
public struct LanguageText: Hashable, Sendable {
    public var text: String
    public var language: String?

    public init(_ text: String, language: String? = nil) {
        self.text = text
        self.language = language
    }

    func element(_ name: String, namespace: String) -> XMLElement {
        var element = XMLElement(name, namespace: namespace, text: text)
        if let language { element.language = language }
        return element
    }

    static func from(_ element: XMLElement) -> LanguageText {
        LanguageText(element.text.trimmingXMLWhitespace(), language: element.language)
    }
}

extension Array where Element == LanguageText {
    /// The note to show when one is wanted: the first without a language, else the first.
    public var preferred: LanguageText? { first { $0.language == nil } ?? first }
}
