/// A header field name. Names compare case-insensitively (RFC 3261 §7.3.1), compact forms
/// (§7.3.3) resolve to their long names, and known names keep their canonical spelling, so a
/// parsed `v:` or `VIA:` is stored and written as `Via`.
public struct SIPHeaderName: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The spelling written on the wire.
    public let rawValue: String
    /// The lowercased long form: the identity used for comparison and hashing.
    let key: String

    private init(canonical: String) {
        self.rawValue = canonical
        self.key = canonical.lowercased()
    }

    /// Resolves compact forms and canonicalizes known names; other names keep their spelling.
    public init(_ name: String) {
        let lower = name.lowercased()
        if let known = SIPHeaderName.byKey[lower] {
            self = known
        } else {
            self.rawValue = name
            self.key = lower
        }
    }

    public init(stringLiteral value: String) { self.init(value) }

    public var description: String { rawValue }

    public static func == (a: SIPHeaderName, b: SIPHeaderName) -> Bool { a.key == b.key }
    public func hash(into hasher: inout Hasher) { hasher.combine(key) }

    // RFC 3261 §20 and the extensions Stox speaks.
    public static let accept = SIPHeaderName(canonical: "Accept")
    public static let acceptEncoding = SIPHeaderName(canonical: "Accept-Encoding")
    public static let acceptLanguage = SIPHeaderName(canonical: "Accept-Language")
    public static let alertInfo = SIPHeaderName(canonical: "Alert-Info")
    public static let allow = SIPHeaderName(canonical: "Allow")
    public static let allowEvents = SIPHeaderName(canonical: "Allow-Events")
    public static let authenticationInfo = SIPHeaderName(canonical: "Authentication-Info")
    public static let authorization = SIPHeaderName(canonical: "Authorization")
    public static let callID = SIPHeaderName(canonical: "Call-ID")
    public static let callInfo = SIPHeaderName(canonical: "Call-Info")
    public static let contact = SIPHeaderName(canonical: "Contact")
    public static let contentDisposition = SIPHeaderName(canonical: "Content-Disposition")
    public static let contentEncoding = SIPHeaderName(canonical: "Content-Encoding")
    public static let contentLanguage = SIPHeaderName(canonical: "Content-Language")
    public static let contentLength = SIPHeaderName(canonical: "Content-Length")
    public static let contentType = SIPHeaderName(canonical: "Content-Type")
    public static let cseq = SIPHeaderName(canonical: "CSeq")
    public static let date = SIPHeaderName(canonical: "Date")
    public static let errorInfo = SIPHeaderName(canonical: "Error-Info")
    public static let event = SIPHeaderName(canonical: "Event")
    public static let expires = SIPHeaderName(canonical: "Expires")
    public static let from = SIPHeaderName(canonical: "From")
    public static let inReplyTo = SIPHeaderName(canonical: "In-Reply-To")
    public static let maxForwards = SIPHeaderName(canonical: "Max-Forwards")
    public static let mimeVersion = SIPHeaderName(canonical: "MIME-Version")
    public static let minExpires = SIPHeaderName(canonical: "Min-Expires")
    public static let organization = SIPHeaderName(canonical: "Organization")
    public static let priority = SIPHeaderName(canonical: "Priority")
    public static let proxyAuthenticate = SIPHeaderName(canonical: "Proxy-Authenticate")
    public static let proxyAuthorization = SIPHeaderName(canonical: "Proxy-Authorization")
    public static let proxyRequire = SIPHeaderName(canonical: "Proxy-Require")
    public static let recordRoute = SIPHeaderName(canonical: "Record-Route")
    public static let referTo = SIPHeaderName(canonical: "Refer-To")
    public static let referredBy = SIPHeaderName(canonical: "Referred-By")
    public static let replyTo = SIPHeaderName(canonical: "Reply-To")
    public static let require = SIPHeaderName(canonical: "Require")
    public static let retryAfter = SIPHeaderName(canonical: "Retry-After")
    public static let route = SIPHeaderName(canonical: "Route")
    public static let server = SIPHeaderName(canonical: "Server")
    public static let sessionExpires = SIPHeaderName(canonical: "Session-Expires")
    public static let sipETag = SIPHeaderName(canonical: "SIP-ETag")
    public static let sipIfMatch = SIPHeaderName(canonical: "SIP-If-Match")
    public static let subject = SIPHeaderName(canonical: "Subject")
    public static let subscriptionState = SIPHeaderName(canonical: "Subscription-State")
    public static let supported = SIPHeaderName(canonical: "Supported")
    public static let timestamp = SIPHeaderName(canonical: "Timestamp")
    public static let to = SIPHeaderName(canonical: "To")
    public static let unsupported = SIPHeaderName(canonical: "Unsupported")
    public static let userAgent = SIPHeaderName(canonical: "User-Agent")
    public static let via = SIPHeaderName(canonical: "Via")
    public static let warning = SIPHeaderName(canonical: "Warning")
    public static let wwwAuthenticate = SIPHeaderName(canonical: "WWW-Authenticate")
    public static let reason = SIPHeaderName(canonical: "Reason")
    public static let identity = SIPHeaderName(canonical: "Identity")
    public static let identityInfo = SIPHeaderName(canonical: "Identity-Info")
    public static let acceptContact = SIPHeaderName(canonical: "Accept-Contact")
    public static let rejectContact = SIPHeaderName(canonical: "Reject-Contact")
    public static let requestDisposition = SIPHeaderName(canonical: "Request-Disposition")
    public static let pAssertedIdentity = SIPHeaderName(canonical: "P-Asserted-Identity")
    public static let path = SIPHeaderName(canonical: "Path")
    public static let msDiagnostics = SIPHeaderName(canonical: "ms-diagnostics")
    public static let msKeepAlive = SIPHeaderName(canonical: "ms-keep-alive")

    static let all: [SIPHeaderName] = [
        .accept, .acceptEncoding, .acceptLanguage, .alertInfo, .allow, .allowEvents, .authenticationInfo,
        .authorization, .callID, .callInfo, .contact, .contentDisposition, .contentEncoding,
        .contentLanguage, .contentLength, .contentType, .cseq, .date, .errorInfo, .event, .expires, .from,
        .inReplyTo, .maxForwards, .mimeVersion, .minExpires, .organization, .priority, .proxyAuthenticate,
        .proxyAuthorization, .proxyRequire, .recordRoute, .referTo, .referredBy, .replyTo, .require,
        .retryAfter, .route, .server, .sessionExpires, .sipETag, .sipIfMatch, .subject, .subscriptionState,
        .supported, .timestamp, .to, .unsupported, .userAgent, .via, .warning, .wwwAuthenticate, .reason,
        .identity, .identityInfo, .acceptContact, .rejectContact, .requestDisposition, .pAssertedIdentity,
        .path, .msDiagnostics, .msKeepAlive,
    ]

    /// RFC 3261 §7.3.3 and the IANA registry's compact forms.
    static let compactForms: [Character: SIPHeaderName] = [
        "i": .callID, "m": .contact, "e": .contentEncoding, "l": .contentLength, "c": .contentType,
        "f": .from, "s": .subject, "k": .supported, "t": .to, "v": .via, "o": .event, "u": .allowEvents,
        "r": .referTo, "b": .referredBy, "x": .sessionExpires, "y": .identity, "n": .identityInfo,
        "a": .acceptContact, "j": .rejectContact, "d": .requestDisposition,
    ]

    private static let byKey: [String: SIPHeaderName] = {
        var table: [String: SIPHeaderName] = [:]
        for name in all { table[name.key] = name }
        for (letter, name) in compactForms { table[String(letter)] = name }
        return table
    }()

    /// Looks a wire name up. The headers of nearly every message, and the compact forms, resolve
    /// through a switch over literals without allocating; rarer known names go through a
    /// dictionary; unknown names keep their spelling.
    static func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> SIPHeaderName {
        guard let first = bytes.first else { return SIPHeaderName("") }
        let letter = SIPGrammar.isAlpha(first) ? first | 0x20 : first
        if bytes.count == 1 {
            switch letter {
            case UInt8(ascii: "a"): return .acceptContact
            case UInt8(ascii: "b"): return .referredBy
            case UInt8(ascii: "c"): return .contentType
            case UInt8(ascii: "d"): return .requestDisposition
            case UInt8(ascii: "e"): return .contentEncoding
            case UInt8(ascii: "f"): return .from
            case UInt8(ascii: "i"): return .callID
            case UInt8(ascii: "j"): return .rejectContact
            case UInt8(ascii: "k"): return .supported
            case UInt8(ascii: "l"): return .contentLength
            case UInt8(ascii: "m"): return .contact
            case UInt8(ascii: "n"): return .identityInfo
            case UInt8(ascii: "o"): return .event
            case UInt8(ascii: "r"): return .referTo
            case UInt8(ascii: "s"): return .subject
            case UInt8(ascii: "t"): return .to
            case UInt8(ascii: "u"): return .allowEvents
            case UInt8(ascii: "v"): return .via
            case UInt8(ascii: "x"): return .sessionExpires
            case UInt8(ascii: "y"): return .identity
            default: break
            }
        }
        switch (bytes.count, letter) {
        case (2, UInt8(ascii: "t")):
            if equalsLowercase(bytes, "to") { return .to }
        case (3, UInt8(ascii: "v")):
            if equalsLowercase(bytes, "via") { return .via }
        case (4, UInt8(ascii: "c")):
            if equalsLowercase(bytes, "cseq") { return .cseq }
        case (4, UInt8(ascii: "f")):
            if equalsLowercase(bytes, "from") { return .from }
        case (5, UInt8(ascii: "a")):
            if equalsLowercase(bytes, "allow") { return .allow }
        case (5, UInt8(ascii: "e")):
            if equalsLowercase(bytes, "event") { return .event }
        case (5, UInt8(ascii: "r")):
            if equalsLowercase(bytes, "route") { return .route }
        case (6, UInt8(ascii: "a")):
            if equalsLowercase(bytes, "accept") { return .accept }
        case (6, UInt8(ascii: "s")):
            if equalsLowercase(bytes, "server") { return .server }
        case (7, UInt8(ascii: "c")):
            if equalsLowercase(bytes, "call-id") { return .callID }
            if equalsLowercase(bytes, "contact") { return .contact }
        case (7, UInt8(ascii: "e")):
            if equalsLowercase(bytes, "expires") { return .expires }
        case (7, UInt8(ascii: "r")):
            if equalsLowercase(bytes, "require") { return .require }
        case (8, UInt8(ascii: "s")):
            if equalsLowercase(bytes, "sip-etag") { return .sipETag }
        case (9, UInt8(ascii: "s")):
            if equalsLowercase(bytes, "supported") { return .supported }
        case (10, UInt8(ascii: "u")):
            if equalsLowercase(bytes, "user-agent") { return .userAgent }
        case (11, UInt8(ascii: "m")):
            if equalsLowercase(bytes, "min-expires") { return .minExpires }
        case (12, UInt8(ascii: "a")):
            if equalsLowercase(bytes, "allow-events") { return .allowEvents }
        case (12, UInt8(ascii: "c")):
            if equalsLowercase(bytes, "content-type") { return .contentType }
        case (12, UInt8(ascii: "m")):
            if equalsLowercase(bytes, "max-forwards") { return .maxForwards }
        case (12, UInt8(ascii: "r")):
            if equalsLowercase(bytes, "record-route") { return .recordRoute }
        case (12, UInt8(ascii: "s")):
            if equalsLowercase(bytes, "sip-if-match") { return .sipIfMatch }
        case (13, UInt8(ascii: "a")):
            if equalsLowercase(bytes, "authorization") { return .authorization }
        case (14, UInt8(ascii: "c")):
            if equalsLowercase(bytes, "content-length") { return .contentLength }
        case (16, UInt8(ascii: "w")):
            if equalsLowercase(bytes, "www-authenticate") { return .wwwAuthenticate }
        case (18, UInt8(ascii: "p")):
            if equalsLowercase(bytes, "proxy-authenticate") { return .proxyAuthenticate }
        case (18, UInt8(ascii: "s")):
            if equalsLowercase(bytes, "subscription-state") { return .subscriptionState }
        case (19, UInt8(ascii: "p")):
            if equalsLowercase(bytes, "proxy-authorization") { return .proxyAuthorization }
        default: break
        }
        return SIPHeaderName(String(decoding: bytes, as: UTF8.self))
    }

    /// Case-insensitive comparison of wire bytes with a lowercase literal of the same length.
    @inline(__always)
    private static func equalsLowercase(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
        let pointer = literal.utf8Start
        for index in 0..<bytes.count {
            let byte = bytes[index]
            if (SIPGrammar.isAlpha(byte) ? byte | 0x20 : byte) != pointer[index] { return false }
        }
        return true
    }

    /// Headers whose value is a comma-separated list (§7.3.1) that `SIPHeaders.values` splits.
    /// Authorization-style headers and Date contain commas but are single values.
    var isList: Bool { SIPHeaderName.listHeaders.contains(key) }

    private static let listHeaders: Set<String> = [
        "accept", "accept-encoding", "accept-language", "alert-info", "allow", "allow-events",
        "call-info", "contact", "content-encoding", "content-language", "error-info", "in-reply-to",
        "proxy-require", "record-route", "require", "route", "supported", "unsupported", "via",
        "warning", "path", "p-asserted-identity", "reason", "accept-contact", "reject-contact",
    ]
}
