/// Why a byte stream or document was refused. Each kind corresponds to one RFC 6120 §4.9.3 stream
/// error condition (see `rfc6120Condition`), so the XMPP layer can answer a peer precisely.
public struct XMLParseError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// Not well-formed XML (expat's verdict): mismatched tags, bad UTF-8, stray `<`.
        case notWellFormed
        /// Constructs RFC 6120 §11.1 forbids: DTD, entity declarations or references beyond the
        /// five predefined ones, processing instructions, comments.
        case restrictedXML
        /// An encoding other than UTF-8 was declared (RFC 6120 §11.6).
        case unsupportedEncoding
        /// Elements nested deeper than `XMLParserLimits.maxDepth`.
        case depthLimitExceeded
        /// One stanza (or start tag) larger than `XMLParserLimits.maxElementBytes`.
        case elementTooLarge
        /// More attributes on one element than `XMLParserLimits.maxAttributes`.
        case tooManyAttributes
        /// Non-whitespace character data between stanzas at stream level.
        case textAtStreamLevel
        /// A standalone document ended before its root element was closed.
        case incompleteDocument
    }

    public var kind: Kind
    /// Offset in bytes from the start of the stream or document where the problem was seen.
    public var byteOffset: Int
    /// Human-readable detail for logs (expat's message, the limit that was hit, ...).
    public var detail: String

    public init(_ kind: Kind, byteOffset: Int, detail: String) {
        self.kind = kind
        self.byteOffset = byteOffset
        self.detail = detail
    }

    /// The RFC 6120 §4.9.3 defined condition a server sends before closing the stream.
    public var rfc6120Condition: String {
        switch kind {
        case .notWellFormed, .incompleteDocument: "not-well-formed"
        case .restrictedXML: "restricted-xml"
        case .unsupportedEncoding: "unsupported-encoding"
        // RFC 6120 §4.9.3.14: "the entity has violated some local service policy (e.g., a stanza
        // exceeds a configured size limit)".
        case .depthLimitExceeded, .elementTooLarge, .tooManyAttributes: "policy-violation"
        case .textAtStreamLevel: "bad-format"
        }
    }

    public var description: String {
        "\(rfc6120Condition) at byte \(byteOffset): \(detail)"
    }
}

/// Hard limits that keep a hostile peer from exhausting memory or stack.
public struct XMLParserLimits: Hashable, Sendable {
    /// Maximum nesting below the stream root (for a document: including the root).
    public var maxDepth: Int
    /// Maximum size in bytes of one top-level element (a stanza), counted from its `<`. Also bounds
    /// any single start tag, including the stream header, since expat buffers an unfinished token.
    public var maxElementBytes: Int
    /// Maximum attributes on one element.
    public var maxAttributes: Int

    public init(maxDepth: Int = 64, maxElementBytes: Int = 256 * 1024, maxAttributes: Int = 64) {
        precondition(maxDepth > 0 && maxElementBytes > 0 && maxAttributes > 0)
        self.maxDepth = maxDepth
        self.maxElementBytes = maxElementBytes
        self.maxAttributes = maxAttributes
    }

    /// 64 levels, 256 KiB per stanza, 64 attributes per element.
    public static let `default` = XMLParserLimits()
}
