/// A media type as in Content-Type and Accept (RFC 3261 §20.15, §20.1): `type/subtype;params`.
/// Type and subtype compare case-insensitively and are stored lowercased.
public struct SIPMediaType: Hashable, Sendable, CustomStringConvertible {
    public var type: String
    public var subtype: String
    public var parameters: SIPParameters

    public init(_ type: String, _ subtype: String, parameters: SIPParameters = SIPParameters()) {
        self.type = type.lowercased()
        self.subtype = subtype.lowercased()
        self.parameters = parameters
    }

    /// `type/subtype` without parameters.
    public var essence: String { "\(type)/\(subtype)" }
    public var charset: String? { parameters["charset"] }

    public var description: String { essence + parameters.serialized }

    public func matches(_ other: SIPMediaType) -> Bool {
        (type == "*" || other.type == "*" || type == other.type)
            && (subtype == "*" || other.subtype == "*" || subtype == other.subtype)
    }

    public static let textPlain = SIPMediaType("text", "plain")
    public static let textHTML = SIPMediaType("text", "html")
    public static let pidf = SIPMediaType("application", "pidf+xml")
    public static let isComposing = SIPMediaType("application", "im-iscomposing+xml")
    public static let msrtcEventCategories = SIPMediaType("application", "msrtc-event-categories+xml")
    public static let sdp = SIPMediaType("application", "sdp")
    public static let cpim = SIPMediaType("message", "cpim")
    public static let multipartRelated = SIPMediaType("multipart", "related")
    public static let watcherInfo = SIPMediaType("application", "watcherinfo+xml")

    public static func parse(_ value: String) -> SIPMediaType? {
        value.parseSingle { parse(&$0) }
    }

    /// Parses an Accept value: a list of media ranges (`*/*`, `text/*`, ...).
    public static func parseList(_ value: String) -> [SIPMediaType]? {
        value.parseCommaList(allowEmpty: true) { parse(&$0) }
    }

    static func parse(_ scanner: inout SIPScanner) -> SIPMediaType? {
        guard let type = scanner.token(), scanner.consume(UInt8(ascii: "/")), let subtype = scanner.token(),
            let parameters = scanner.parameters()
        else { return nil }
        return SIPMediaType(type, subtype, parameters: parameters)
    }
}
