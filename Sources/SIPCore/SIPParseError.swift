/// Why a SIP message was refused. `kind` says what rule was broken, `header` which header (if
/// any) and `byteOffset` where in the message the parser was when it noticed. A server answers
/// any of these with `400 Bad Request` when the headers needed to build a response survived
/// (RFC 3261 §8.2.6, §16.3), and otherwise drops the message.
public struct SIPParseError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        /// Not enough bytes yet (stream framing); not an error for a stream, fatal for a datagram.
        case incomplete
        /// The request or status line does not follow RFC 3261 §7.1/§7.2: single SPs between
        /// elements, nothing trailing.
        case malformedStartLine
        /// The Request-URI does not parse, or carries headers, which §19.1.1 forbids there.
        case invalidRequestURI
        /// A SIP-Version other than 2.0.
        case unsupportedVersion
        /// A Status-Code that is not three digits between 100 and 699.
        case invalidStatusCode
        /// A header line without a colon or with a name that is not a token.
        case malformedHeaderLine
        /// A header whose grammar is checked at parse time does not parse (§25).
        case invalidHeaderValue
        /// To, From, CSeq, Call-ID or Via is missing (§8.1.1), or Content-Length on a stream (§18.3).
        case missingRequiredHeader
        /// A header that allows one value appears twice or carries a list.
        case duplicateHeader
        /// The CSeq method differs from the request method (§8.1.1.5).
        case methodMismatch
        /// Content-Length promises more body than the datagram holds (§18.3).
        case contentLengthMismatch
        /// Over the configured size limits (headers or body).
        case messageTooLarge
    }

    public var kind: Kind
    /// The canonical name of the offending header, if one is to blame.
    public var header: String?
    /// Byte offset into the message where the problem was detected.
    public var byteOffset: Int
    public var detail: String
    /// Set by the stream framer when the message's boundary was found (a valid Content-Length)
    /// but its content did not parse: the connection can skip these bytes, answer 400, and go on.
    public var frameLength: Int?

    public init(_ kind: Kind, header: String? = nil, at byteOffset: Int = 0, _ detail: String = "") {
        self.kind = kind
        self.header = header
        self.byteOffset = byteOffset
        self.detail = detail
    }

    public var description: String {
        var text = kind.rawValue
        if let header { text += " [\(header)]" }
        text += " at byte \(byteOffset)"
        if !detail.isEmpty { text += ": \(detail)" }
        return text
    }
}
