import NIOCore

/// A SIP request (RFC 3261 §7.1).
public struct SIPRequest: Hashable, Sendable {
    public var method: SIPMethod
    public var uri: SIPURI
    public var headers: SIPHeaders
    public var body: [UInt8]

    public init(method: SIPMethod, uri: SIPURI, headers: SIPHeaders = SIPHeaders(), body: [UInt8] = []) {
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
    }
}

/// A SIP response (RFC 3261 §7.2).
public struct SIPResponse: Hashable, Sendable {
    public var statusCode: Int
    public var reasonPhrase: String
    public var headers: SIPHeaders
    public var body: [UInt8]

    public init(statusCode: Int, reasonPhrase: String? = nil, headers: SIPHeaders = SIPHeaders(), body: [UInt8] = []) {
        precondition((100...699).contains(statusCode), "status codes are 100...699")
        self.statusCode = statusCode
        self.reasonPhrase = reasonPhrase ?? SIPResponse.defaultReasonPhrase(statusCode)
        self.headers = headers
        self.body = body
    }

    /// 1xx.
    public var isProvisional: Bool { statusCode < 200 }
    /// 2xx.
    public var isSuccess: Bool { (200..<300).contains(statusCode) }
    /// 200...699.
    public var isFinal: Bool { statusCode >= 200 }
}

/// Either kind of message, as read from the wire.
public enum SIPMessage: Hashable, Sendable {
    case request(SIPRequest)
    case response(SIPResponse)

    public var headers: SIPHeaders {
        switch self {
        case .request(let request): request.headers
        case .response(let response): response.headers
        }
    }

    public var body: [UInt8] {
        switch self {
        case .request(let request): request.body
        case .response(let response): response.body
        }
    }

    public func serialized() -> [UInt8] {
        switch self {
        case .request(let request): request.serialized()
        case .response(let response): response.serialized()
        }
    }

    /// The message without any header of this name; e.g. to compare two messages regardless
    /// of the Content-Length that serialization always states.
    public func removing(_ name: SIPHeaderName) -> SIPMessage {
        switch self {
        case .request(var request):
            request.headers.remove(name)
            return .request(request)
        case .response(var response):
            response.headers.remove(name)
            return .response(response)
        }
    }
}

/// What requests and responses share: headers, a body and the typed accessors over them.
public protocol SIPMessageProtocol: Sendable {
    var headers: SIPHeaders { get set }
    var body: [UInt8] { get set }
    /// The request or status line, without CRLF.
    var startLine: String { get }
}

extension SIPRequest: SIPMessageProtocol {
    public var startLine: String { "\(method.rawValue) \(uri) SIP/2.0" }
}

extension SIPResponse: SIPMessageProtocol {
    public var startLine: String { "SIP/2.0 \(statusCode) \(reasonPhrase)" }
}

// MARK: - Typed accessors

extension SIPMessageProtocol {
    /// Every Via value, topmost first.
    public var via: [SIPVia] {
        headers.lines(.via).flatMap { SIPVia.parseList($0) ?? [] }
    }
    public var topVia: SIPVia? { headers[.via].flatMap(SIPVia.parseFirst) }
    public var from: SIPNameAddress? { headers[.from].flatMap(SIPNameAddress.parse) }
    public var to: SIPNameAddress? { headers[.to].flatMap(SIPNameAddress.parse) }
    public var callID: String? { headers[.callID] }
    public var cseq: SIPCSeq? { headers[.cseq].flatMap(SIPCSeq.parse) }
    /// Contact values across all Contact lines; `nil` when absent or `*`.
    public var contacts: [SIPNameAddress] {
        headers.lines(.contact).flatMap { line -> [SIPNameAddress] in
            if case .addresses(let list)? = SIPContact.parse(line) { return list }
            return []
        }
    }
    /// Whether the request carries `Contact: *` (REGISTER removal of all bindings, §10.2.2).
    public var hasWildcardContact: Bool {
        headers.lines(.contact).contains { SIPContact.parse($0) == .wildcard }
    }
    public var maxForwards: UInt8? { headers[.maxForwards].flatMap(SIPHeaderValue.maxForwards) }
    public var routes: [SIPNameAddress] { headers.lines(.route).flatMap { SIPNameAddress.parseList($0) ?? [] } }
    public var recordRoutes: [SIPNameAddress] {
        headers.lines(.recordRoute).flatMap { SIPNameAddress.parseList($0) ?? [] }
    }
    public var contentType: SIPMediaType? { headers[.contentType].flatMap(SIPMediaType.parse) }
    public var contentLength: Int? { headers[.contentLength].flatMap(SIPHeaderValue.contentLength) }
    public var accept: [SIPMediaType] { headers.lines(.accept).flatMap { SIPMediaType.parseList($0) ?? [] } }
    public var event: SIPEvent? { headers[.event].flatMap(SIPEvent.parse) }
    public var subscriptionState: SIPSubscriptionState? {
        headers[.subscriptionState].flatMap(SIPSubscriptionState.parse)
    }
    public var expires: UInt32? { headers[.expires].flatMap(SIPHeaderValue.deltaSeconds) }
    public var minExpires: UInt32? { headers[.minExpires].flatMap(SIPHeaderValue.deltaSeconds) }
    public var supported: [String] { SIPHeaderValue.tokens(headers.lines(.supported)) ?? [] }
    public var require: [String] { SIPHeaderValue.tokens(headers.lines(.require)) ?? [] }
    public var proxyRequire: [String] { SIPHeaderValue.tokens(headers.lines(.proxyRequire)) ?? [] }
    public var allow: [SIPMethod] { (SIPHeaderValue.tokens(headers.lines(.allow)) ?? []).map { SIPMethod($0) } }
    public var wwwAuthenticate: [SIPAuthorization] {
        headers.lines(.wwwAuthenticate).compactMap(SIPAuthorization.parse)
    }
    public var proxyAuthenticate: [SIPAuthorization] {
        headers.lines(.proxyAuthenticate).compactMap(SIPAuthorization.parse)
    }
    public var authorization: [SIPAuthorization] { headers.lines(.authorization).compactMap(SIPAuthorization.parse) }
    public var proxyAuthorization: [SIPAuthorization] {
        headers.lines(.proxyAuthorization).compactMap(SIPAuthorization.parse)
    }
    /// RFC 3903 §11.3.1 entity tag of a PUBLISH response.
    public var sipETag: String? { headers[.sipETag]?.trimmingSIPWhitespace() }
    /// RFC 3903 §11.3.2 entity tag a PUBLISH refreshes.
    public var sipIfMatch: String? { headers[.sipIfMatch]?.trimmingSIPWhitespace() }

    /// The body as UTF-8 text (invalid sequences repaired).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

// MARK: - Serialization

extension SIPMessageProtocol {
    /// The message as wire bytes. Content-Length always states the body's real size: it is
    /// rewritten where it stands, or appended after the other headers.
    public func serialized() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256 + body.count + headers.count * 32)
        write(into: &output)
        return output
    }

    public func write(into output: inout [UInt8]) { write(to: &output) }

    /// Writes the message straight into a NIO buffer (no intermediate array on the send path).
    public func write(into buffer: inout ByteBuffer) { write(to: &buffer) }

    private func write<Sink: SIPByteSink>(to output: inout Sink) {
        output.append(startLine.utf8)
        output.append(crlf)
        var wroteLength = false
        for field in headers {
            // A duplicate Content-Length is dropped: the one written states the real size.
            if field.name == .contentLength && wroteLength { continue }
            output.append(field.name.rawValue.utf8)
            output.append(": ".utf8)
            if field.name == .contentLength {
                output.append(String(body.count).utf8)
                wroteLength = true
            } else {
                output.append(field.value.utf8)
            }
            output.append(crlf)
        }
        if !wroteLength {
            output.append("Content-Length: \(body.count)\r\n".utf8)
        }
        output.append(crlf)
        output.append(body)
    }

    public var serializedString: String { String(decoding: serialized(), as: UTF8.self) }
}

private let crlf: [UInt8] = [0x0D, 0x0A]

/// Where serialization writes: an array (tests, CLI) or a NIO buffer (the wire).
private protocol SIPByteSink {
    mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8
}

extension Array: SIPByteSink where Element == UInt8 {
    fileprivate mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        append(contentsOf: bytes)
    }
}

extension ByteBuffer: SIPByteSink {
    fileprivate mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        writeBytes(bytes)
    }
}
