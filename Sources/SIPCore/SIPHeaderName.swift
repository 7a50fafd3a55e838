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

    /// Known names grouped by length for allocation-free lookup from wire bytes.
    private static let byLength: [[(bytes: [UInt8], name: SIPHeaderName)]] = {
        var table = [[(bytes: [UInt8], name: SIPHeaderName)]](repeating: [], count: 32)
        for (key, name) in byKey where key.utf8.count < 32 {
            table[key.utf8.count].append((Array(key.utf8), name))
        }
        return table
    }()

    /// Looks a wire name up without allocating when it is a known name or compact form.
    static func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> SIPHeaderName {
        if bytes.count < 32 {
            for candidate in byLength[bytes.count] {
                var equal = true
                for index in 0..<bytes.count where candidate.bytes[index] != (bytes[index] | (SIPGrammar.isAlpha(bytes[index]) ? 0x20 : 0)) {
                    equal = false
                    break
                }
                if equal { return candidate.name }
            }
        }
        return SIPHeaderName(String(decoding: bytes, as: UTF8.self))
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
