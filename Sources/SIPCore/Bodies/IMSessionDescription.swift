import Foundation

/// The SDP of a Lync/OCS IM session (../shared/reference/protocols.md §4.2): the "media" is SIP
/// itself, `m=message <port> sip null`, and later messages are in-dialog MESSAGE requests.
/// LCS 2005 wrote `m=x-ms-message`. Only what an IM session needs is read or written.
public struct IMSessionDescription: Hashable, Sendable {
    public var address: String
    public var port: UInt16
    /// `a=accept-types:` (what the far end takes inside the session).
    public var acceptTypes: [String]

    public static let mediaType = SIPMediaType.sdp
    public static let defaultAcceptTypes = ["text/plain", "text/html", "application/im-iscomposing+xml"]

    public init(address: String, port: UInt16, acceptTypes: [String] = defaultAcceptTypes) {
        self.address = address
        self.port = port
        self.acceptTypes = acceptTypes
    }

    /// Parses an offer or answer; nil when it offers no SIP IM media (the caller answers 488,
    /// as Lync clients do).
    public init?(bytes: [UInt8]) {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        var address = "0.0.0.0", port: UInt16?, accept: [String] = []
        for line in text.split(whereSeparator: \.isNewline) {
            if line.hasPrefix("c=") {
                // c=IN IP4 192.0.2.10
                if let last = line.split(separator: " ").last { address = String(last) }
            } else if line.hasPrefix("m=") {
                let fields = line.dropFirst(2).split(separator: " ")
                let isIM = fields.count >= 3 && (fields[0] == "message" && fields[2].lowercased() == "sip" || fields[0] == "x-ms-message")
                if isIM, port == nil { port = UInt16(fields[1]) ?? 0 }
            } else if line.hasPrefix("a=accept-types:") {
                accept = line.dropFirst("a=accept-types:".count).split(separator: " ").map(String.init)
            }
        }
        guard let port else { return nil }
        self.init(address: address, port: port, acceptTypes: accept)
    }

    public func serialized(sessionID: UInt64 = 0) -> [UInt8] {
        let family = address.contains(":") ? "IP6" : "IP4"
        let lines = [
            "v=0",
            "o=- \(sessionID) 0 IN \(family) \(address)",
            "s=session",
            "c=IN \(family) \(address)",
            "t=0 0",
            "m=message \(port) sip null",
            "a=accept-types:" + acceptTypes.joined(separator: " "),
        ]
        return Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
    }
}

/// Lync's `ms-text-format` header: the first message of an IM session, carried in the INVITE
/// as `type/subtype; charset=UTF-8[;msgr=...];ms-body=<base64>` (protocols.md §4.2). A 200 with
/// `Supported: ms-text-format` means the callee took it; otherwise the caller sends it again as
/// an in-dialog MESSAGE.
public struct MSTextFormat: Hashable, Sendable {
    public static let header = SIPHeaderName("ms-text-format")
    public static let optionTag = "ms-text-format"

    public var contentType: SIPMediaType
    public var body: [UInt8]

    public init(contentType: SIPMediaType, body: [UInt8]) {
        self.contentType = contentType
        self.body = body
    }

    /// Nil when the value has no media type or its ms-body is not base64. `ms-body` and `msgr`
    /// are base64, whose padding `=` is not a token character, so they are split off by hand
    /// before the rest is read as a media type.
    public init?(headerValue: String) {
        var kept: [Substring] = []
        var encoded: Substring?
        for part in headerValue.split(separator: ";", omittingEmptySubsequences: false) {
            let trimmed = part.drop { $0 == " " || $0 == "\t" }
            if trimmed.lowercased().hasPrefix("ms-body=") {
                encoded = trimmed.dropFirst("ms-body=".count)
            } else if !trimmed.lowercased().hasPrefix("msgr=") {
                kept.append(part)
            }
        }
        guard let encoded, let decoded = Data(base64Encoded: String(encoded).trimmingCharacters(in: .whitespaces)),
              let type = SIPMediaType.parse(kept.joined(separator: ";")) else { return nil }
        self.init(contentType: type, body: Array(decoded))
    }

    public var headerValue: String {
        var type = contentType
        if type.parameters["charset"] == nil { type.parameters.set("charset", .some("UTF-8")) }
        return type.description + ";ms-body=" + Data(body).base64EncodedString()
    }
}
