import NIOCore

/// Parses SIP messages (RFC 3261 §7, §25). A datagram holds one message whose body is bounded by
/// Content-Length when present, else by the datagram (§18.3); extra octets after it are
/// ignored (RFC 4475 §3.1.1.8). A stream message must carry Content-Length; use
/// `SIPStreamFramer` to cut messages out of a TCP or TLS byte stream.
///
/// At parse time the parser checks what a transaction needs to be matched and answered: the
/// start line, header syntax, Via, From, To, Call-ID, CSeq (with the method), Content-Length,
/// Content-Type, Contact and Date. Other headers are kept as text and parsed on access.
public struct SIPParser: Sendable {
    public struct Limits: Hashable, Sendable {
        /// Maximum size of the start line plus headers.
        public var maxHeaderBytes: Int
        /// Maximum header lines.
        public var maxHeaderCount: Int
        /// Maximum Content-Length accepted.
        public var maxBodyBytes: Int

        public init(maxHeaderBytes: Int = 32 * 1024, maxHeaderCount: Int = 256, maxBodyBytes: Int = 1024 * 1024) {
            self.maxHeaderBytes = maxHeaderBytes
            self.maxHeaderCount = maxHeaderCount
            self.maxBodyBytes = maxBodyBytes
        }

        public static let `default` = Limits()
    }

    public var limits: Limits

    public init(limits: Limits = .default) {
        self.limits = limits
    }

    /// Parses one message from a datagram.
    public func parse(datagram bytes: UnsafeRawBufferPointer) throws(SIPParseError) -> SIPMessage {
        try parse(bytes.bindMemory(to: UInt8.self), requireContentLength: false)
    }

    public func parse(datagram bytes: [UInt8]) throws(SIPParseError) -> SIPMessage {
        let result: Result<SIPMessage, SIPParseError> = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(SIPParseError) in try parse(buffer, requireContentLength: false) }
        }
        return try result.get()
    }

    public func parse(datagram buffer: ByteBuffer) throws(SIPParseError) -> SIPMessage {
        let result: Result<SIPMessage, SIPParseError> = buffer.withUnsafeReadableBytes { raw in
            Result { () throws(SIPParseError) in try parse(raw.bindMemory(to: UInt8.self), requireContentLength: false) }
        }
        return try result.get()
    }

    public func parse(datagram string: String) throws(SIPParseError) -> SIPMessage {
        try parse(datagram: Array(string.utf8))
    }

    /// Parses exactly one complete framed stream message (the framer has cut it out).
    func parse(streamMessage bytes: UnsafeBufferPointer<UInt8>) throws(SIPParseError) -> SIPMessage {
        try parse(bytes, requireContentLength: true)
    }

    // MARK: -

    func parse(_ bytes: UnsafeBufferPointer<UInt8>, requireContentLength: Bool) throws(SIPParseError) -> SIPMessage {
        var index = 0
        // §7.5: ignore CRLFs before the start line.
        while index < bytes.count, bytes[index] == 0x0D || bytes[index] == 0x0A { index += 1 }
        guard index < bytes.count else { throw SIPParseError(.incomplete, at: index, "no start line") }

        let lineEnd = Self.lineEnd(bytes, from: index)
        guard lineEnd.contentEnd - index <= limits.maxHeaderBytes else {
            throw SIPParseError(.messageTooLarge, at: index, "start line too long")
        }
        let startLine = UnsafeBufferPointer(rebasing: bytes[index..<lineEnd.contentEnd])
        let startOffset = index
        index = lineEnd.next
        // The start line is judged first: a message with a broken start line gets that verdict.
        enum Start { case request(SIPMethod, SIPURI), response(Int, String) }
        let start: Start
        if Self.isStatusLine(startLine) {
            let (code, reason) = try Self.parseStatusLine(startLine, offset: startOffset)
            start = .response(code, reason)
        } else {
            let (method, uri) = try Self.parseRequestLine(startLine, offset: startOffset)
            start = .request(method, uri)
        }

        var headers = SIPHeaders()
        headers.reserveCapacity(16)
        var validator = CoreHeaderValidator()
        var sawBlankLine = false
        while index < bytes.count {
            if bytes[index] == 0x0D || bytes[index] == 0x0A {
                // The empty line ending the headers.
                index = Self.lineEnd(bytes, from: index).next
                sawBlankLine = true
                break
            }
            guard index - startOffset <= limits.maxHeaderBytes else {
                throw SIPParseError(.messageTooLarge, at: index, "headers over \(limits.maxHeaderBytes) bytes")
            }
            guard headers.count < limits.maxHeaderCount else {
                throw SIPParseError(.messageTooLarge, at: index, "more than \(limits.maxHeaderCount) headers")
            }
            let lineOffset = index
            if SIPGrammar.isWhitespace(bytes[index]) {
                throw SIPParseError(.malformedHeaderLine, at: index, "continuation line without a header")
            }
            // field-name
            let nameStart = index
            while index < bytes.count, SIPGrammar.isToken(bytes[index]) { index += 1 }
            let nameEnd = index
            // HCOLON = *( SP / HTAB ) ":" SWS
            while index < bytes.count, SIPGrammar.isWhitespace(bytes[index]) { index += 1 }
            guard nameEnd > nameStart, index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                throw SIPParseError(.malformedHeaderLine, at: lineOffset, "expected `name: value`")
            }
            index += 1
            while index < bytes.count, SIPGrammar.isWhitespace(bytes[index]) { index += 1 }
            // The value runs to the end of the line and over any folded continuation lines.
            var end = Self.lineEnd(bytes, from: index)
            guard end.contentEnd - startOffset <= limits.maxHeaderBytes else {
                throw SIPParseError(.messageTooLarge, at: lineOffset, "headers over \(limits.maxHeaderBytes) bytes")
            }
            var value: String
            if end.next < bytes.count, SIPGrammar.isWhitespace(bytes[end.next]) {
                var folded: [UInt8] = Array(UnsafeBufferPointer(rebasing: bytes[index..<end.contentEnd]))
                while end.next < bytes.count, SIPGrammar.isWhitespace(bytes[end.next]) {
                    var next = end.next
                    while next < bytes.count, SIPGrammar.isWhitespace(bytes[next]) { next += 1 }
                    let continuation = Self.lineEnd(bytes, from: next)
                    Self.trimTrailingWhitespace(&folded)
                    if !folded.isEmpty, next < continuation.contentEnd { folded.append(0x20) }
                    folded.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[next..<continuation.contentEnd]))
                    end = continuation
                    guard end.contentEnd - startOffset <= limits.maxHeaderBytes else {
                        throw SIPParseError(.messageTooLarge, at: lineOffset, "headers over \(limits.maxHeaderBytes) bytes")
                    }
                }
                Self.trimTrailingWhitespace(&folded)
                value = String(decoding: folded, as: UTF8.self)
            } else {
                var valueEnd = end.contentEnd
                while valueEnd > index, SIPGrammar.isWhitespace(bytes[valueEnd - 1]) { valueEnd -= 1 }
                value = String(decoding: UnsafeBufferPointer(rebasing: bytes[index..<valueEnd]), as: UTF8.self)
            }
            index = end.next
            let name = SIPHeaderName.lookup(UnsafeBufferPointer(rebasing: bytes[nameStart..<nameEnd]))
            try validator.check(name, value, at: lineOffset)
            headers.appendParsed(SIPHeaders.Field(name, value))
        }
        _ = sawBlankLine  // A datagram may end right after its last header line.

        let message: SIPMessage
        switch start {
        case .response(let code, let reason):
            try validator.requireCoreHeaders(at: index)
            message = .response(SIPResponse(statusCode: code, reasonPhrase: reason, headers: headers))
        case .request(let method, let uri):
            try validator.requireCoreHeaders(at: index)
            if let cseqMethod = validator.cseqMethod, cseqMethod != method {
                throw SIPParseError(
                    .methodMismatch, header: SIPHeaderName.cseq.rawValue, at: validator.cseqOffset,
                    "CSeq method \(cseqMethod) differs from \(method)")
            }
            message = .request(SIPRequest(method: method, uri: uri, headers: headers))
        }

        // Body (§18.3).
        let available = bytes.count - index
        let bodyLength: Int
        if let declared = validator.contentLength {
            guard declared <= limits.maxBodyBytes else {
                throw SIPParseError(.messageTooLarge, header: "Content-Length", at: validator.contentLengthOffset, "body over \(limits.maxBodyBytes) bytes")
            }
            guard declared <= available else {
                throw SIPParseError(
                    .contentLengthMismatch, header: "Content-Length", at: validator.contentLengthOffset,
                    "Content-Length \(declared) but \(available) bytes follow")
            }
            bodyLength = declared
        } else if requireContentLength {
            throw SIPParseError(.missingRequiredHeader, header: "Content-Length", at: index, "required on streams (§18.3)")
        } else {
            bodyLength = available
        }
        guard bodyLength > 0 else { return message }
        let body = Array(UnsafeBufferPointer(rebasing: bytes[index..<(index + bodyLength)]))
        switch message {
        case .request(var request):
            request.body = body
            return .request(request)
        case .response(var response):
            response.body = body
            return .response(response)
        }
    }

    /// Where the line starting at `start` ends: its content end and the next line's start.
    /// Lines end in CRLF; a bare LF is tolerated.
    @inline(__always)
    static func lineEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> (contentEnd: Int, next: Int) {
        var index = start
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0A { return (index, index + 1) }
            if byte == 0x0D {
                if index + 1 < bytes.count, bytes[index + 1] == 0x0A { return (index, index + 2) }
                return (index, index + 1)
            }
            index += 1
        }
        return (bytes.count, bytes.count)
    }

    private static func trimTrailingWhitespace(_ bytes: inout [UInt8]) {
        while let last = bytes.last, SIPGrammar.isWhitespace(last) { bytes.removeLast() }
    }

    private static func isStatusLine(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        line.count >= 4 && (line[0] | 0x20) == UInt8(ascii: "s") && (line[1] | 0x20) == UInt8(ascii: "i")
            && (line[2] | 0x20) == UInt8(ascii: "p") && line[3] == UInt8(ascii: "/")
    }

    /// SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT; only 2.0 is supported.
    private static func checkVersion(_ bytes: UnsafeBufferPointer<UInt8>, offset: Int) throws(SIPParseError) {
        guard bytes.count >= 7, (bytes[0] | 0x20) == UInt8(ascii: "s"), (bytes[1] | 0x20) == UInt8(ascii: "i"),
            (bytes[2] | 0x20) == UInt8(ascii: "p"), bytes[3] == UInt8(ascii: "/")
        else {
            throw SIPParseError(.malformedStartLine, at: offset, "expected SIP-Version")
        }
        let rest = UnsafeBufferPointer(rebasing: bytes[4...])
        guard let dot = rest.firstIndex(of: UInt8(ascii: ".")), dot > 0, dot < rest.count - 1,
            rest[..<dot].allSatisfy(SIPGrammar.isDigit), rest[(dot + 1)...].allSatisfy(SIPGrammar.isDigit)
        else {
            throw SIPParseError(.malformedStartLine, at: offset, "expected SIP-Version")
        }
        guard rest.count == 3, rest[0] == UInt8(ascii: "2"), rest[2] == UInt8(ascii: "0") else {
            throw SIPParseError(.unsupportedVersion, at: offset, "only SIP/2.0 is supported")
        }
    }

    /// Request-Line = Method SP Request-URI SP SIP-Version CRLF (§7.1): single spaces, nothing more.
    private static func parseRequestLine(_ line: UnsafeBufferPointer<UInt8>, offset: Int) throws(SIPParseError) -> (SIPMethod, SIPURI) {
        guard let firstSpace = line.firstIndex(of: 0x20) else {
            throw SIPParseError(.malformedStartLine, at: offset, "no Request-URI")
        }
        let afterMethod = UnsafeBufferPointer(rebasing: line[(firstSpace + 1)...])
        guard let secondSpace = afterMethod.firstIndex(of: 0x20) else {
            throw SIPParseError(.malformedStartLine, at: offset, "no SIP-Version")
        }
        let methodBytes = UnsafeBufferPointer(rebasing: line[..<firstSpace])
        let uriBytes = UnsafeBufferPointer(rebasing: afterMethod[..<secondSpace])
        let versionBytes = UnsafeBufferPointer(rebasing: afterMethod[(secondSpace + 1)...])
        guard !methodBytes.isEmpty, methodBytes.allSatisfy(SIPGrammar.isToken) else {
            throw SIPParseError(.malformedStartLine, at: offset, "the method is not a token")
        }
        guard !uriBytes.isEmpty, !versionBytes.contains(0x20), !versionBytes.contains(0x09) else {
            throw SIPParseError(.malformedStartLine, at: offset + firstSpace, "extra whitespace in the Request-Line")
        }
        try checkVersion(versionBytes, offset: offset + firstSpace + 1 + secondSpace + 1)
        var scanner = SIPScanner(uriBytes)
        guard let uri = SIPURI.parse(&scanner, stopAt: .empty), scanner.isAtEnd else {
            throw SIPParseError(.invalidRequestURI, at: offset + firstSpace + 1, "the Request-URI does not parse")
        }
        // §19.1.1: headers "are not allowed in ... a Request-URI".
        guard uri.headers.isEmpty else {
            throw SIPParseError(.invalidRequestURI, at: offset + firstSpace + 1, "headers in a Request-URI")
        }
        let method = SIPMethod.interned(methodBytes) ?? SIPMethod(String(decoding: methodBytes, as: UTF8.self))
        return (method, uri)
    }

    /// Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF (§7.2).
    private static func parseStatusLine(_ line: UnsafeBufferPointer<UInt8>, offset: Int) throws(SIPParseError) -> (Int, String) {
        guard let firstSpace = line.firstIndex(of: 0x20) else {
            throw SIPParseError(.malformedStartLine, at: offset, "no Status-Code")
        }
        try checkVersion(UnsafeBufferPointer(rebasing: line[..<firstSpace]), offset: offset)
        let rest = UnsafeBufferPointer(rebasing: line[(firstSpace + 1)...])
        let codeEnd = rest.firstIndex(of: 0x20) ?? rest.count
        let code = UnsafeBufferPointer(rebasing: rest[..<codeEnd])
        guard code.count == 3, code.allSatisfy(SIPGrammar.isDigit), code[0] >= UInt8(ascii: "1"), code[0] <= UInt8(ascii: "6")
        else {
            throw SIPParseError(.invalidStatusCode, at: offset + firstSpace + 1, "Status-Code must be 3 digits, 100-699")
        }
        let value = Int(code[0] - 0x30) * 100 + Int(code[1] - 0x30) * 10 + Int(code[2] - 0x30)
        let reason = codeEnd < rest.count
            ? String(decoding: UnsafeBufferPointer(rebasing: rest[(codeEnd + 1)...]), as: UTF8.self) : ""
        return (value, reason)
    }
}

/// Checks the headers a transaction depends on as they are read, in message order, so the first
/// fault in the message is the one reported.
struct CoreHeaderValidator {
    private var seen: UInt16 = 0
    var cseqMethod: SIPMethod?
    var cseqOffset = 0
    var contentLength: Int?
    var contentLengthOffset = 0

    private static let bitTo: UInt16 = 1 << 0
    private static let bitFrom: UInt16 = 1 << 1
    private static let bitCallID: UInt16 = 1 << 2
    private static let bitCSeq: UInt16 = 1 << 3
    private static let bitVia: UInt16 = 1 << 4
    private static let bitContentLength: UInt16 = 1 << 5
    private static let bitMaxForwards: UInt16 = 1 << 6
    private static let bitContentType: UInt16 = 1 << 7

    private mutating func once(_ bit: UInt16, _ name: SIPHeaderName, at offset: Int) throws(SIPParseError) {
        if seen & bit != 0 {
            throw SIPParseError(.duplicateHeader, header: name.rawValue, at: offset, "\(name) must appear once")
        }
        seen |= bit
    }

    private func invalid(_ name: SIPHeaderName, at offset: Int, _ detail: String) -> SIPParseError {
        SIPParseError(.invalidHeaderValue, header: name.rawValue, at: offset, detail)
    }

    mutating func check(_ name: SIPHeaderName, _ value: String, at offset: Int) throws(SIPParseError) {
        switch name {
        case .via:
            seen |= Self.bitVia
            guard SIPVia.isValidList(value) else { throw invalid(name, at: offset, "bad via-parm") }
        case .from, .to:
            try once(name == .to ? Self.bitTo : Self.bitFrom, name, at: offset)
            guard SIPNameAddress.isValid(value) else {
                // Several well-formed addresses is a list where one value is allowed (RFC 4475
                // §3.3.8); anything else is a bad value (§3.1.2.15).
                if SIPGrammar.hasTopLevelComma(value), let list = SIPNameAddress.parseList(value), list.count > 1 {
                    throw SIPParseError(.duplicateHeader, header: name.rawValue, at: offset, "\(name) carries a list")
                }
                throw invalid(name, at: offset, "bad name-addr / addr-spec")
            }
        case .callID:
            try once(Self.bitCallID, name, at: offset)
            if SIPGrammar.hasTopLevelComma(value) {
                throw SIPParseError(.duplicateHeader, header: name.rawValue, at: offset, "Call-ID carries a list")
            }
            // callid = word [ "@" word ]: no whitespace inside.
            guard !value.isEmpty, !value.utf8.contains(where: { $0 <= 0x20 }) else {
                throw invalid(name, at: offset, "bad callid")
            }
        case .cseq:
            try once(Self.bitCSeq, name, at: offset)
            guard let cseq = SIPCSeq.parse(value) else { throw invalid(name, at: offset, "bad CSeq or number ≥ 2^31") }
            cseqMethod = cseq.method
            cseqOffset = offset
        case .contentLength:
            try once(Self.bitContentLength, name, at: offset)
            guard let length = SIPHeaderValue.contentLength(value) else {
                throw invalid(name, at: offset, "Content-Length is not a non-negative number")
            }
            contentLength = length
            contentLengthOffset = offset
        case .maxForwards:
            // A bad value may be treated as absent (RFC 4475 §3.1.2.4); a second one may not.
            try once(Self.bitMaxForwards, name, at: offset)
        case .contentType:
            try once(Self.bitContentType, name, at: offset)
            guard SIPMediaType.parse(value) != nil else { throw invalid(name, at: offset, "bad media-type") }
        case .contact:
            // Contact: "*" / list of name-addr (§20.10).
            guard value == "*" || SIPNameAddress.isValidList(value) else { throw invalid(name, at: offset, "bad Contact") }
        case .date:
            guard SIPHeaderValue.isValidDate(value) else { throw invalid(name, at: offset, "Date must be RFC 1123 in GMT") }
        default:
            break
        }
    }

    /// §8.1.1: To, From, CSeq, Call-ID and Via are mandatory (Max-Forwards too, but RFC 2543
    /// elements omit it and §16.6 lets a proxy add it).
    func requireCoreHeaders(at offset: Int) throws(SIPParseError) {
        let required: [(UInt16, SIPHeaderName)] = [
            (Self.bitTo, .to), (Self.bitFrom, .from), (Self.bitCSeq, .cseq), (Self.bitCallID, .callID), (Self.bitVia, .via),
        ]
        for (bit, name) in required where seen & bit == 0 {
            throw SIPParseError(.missingRequiredHeader, header: name.rawValue, at: offset, "\(name) is required")
        }
    }
}
