/// Character classes and a byte scanner for the RFC 3261 §25 ABNF. Header values are parsed from
/// their UTF-8 bytes; parsers produce typed values or `nil`, and callers turn `nil` into a
/// `SIPParseError` that names the header.
enum SIPGrammar {
    /// token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
    @inline(__always) static func isToken(_ byte: UInt8) -> Bool { SIPCharacterClass.token.contains(byte) }
    @inline(__always) static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
    @inline(__always) static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    @inline(__always) static func isAlpha(_ byte: UInt8) -> Bool {
        (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z")
    }

    static func isToken(_ string: String) -> Bool {
        !string.isEmpty && string.utf8.allSatisfy(isToken)
    }

    /// Whether a string can be written as a token value, else it must be quoted.
    static func needsQuoting(_ string: String) -> Bool { !isToken(string) }

    /// quoted-string with `\` escaping of `"` and `\`.
    static func quote(_ string: String) -> String {
        var output = "\""
        for character in string {
            if character == "\"" || character == "\\" { output.append("\\") }
            output.append(character)
        }
        output.append("\"")
        return output
    }

    /// Splits a header value on commas that are outside quoted strings and angle brackets
    /// (RFC 3261 §7.3.1), trimming whitespace around each element.
    static func splitList(_ value: String) -> [String] {
        var parts: [String] = []
        let utf8 = Array(value.utf8)
        var start = 0
        var inQuotes = false
        var inAngle = false
        var index = 0
        while index < utf8.count {
            let byte = utf8[index]
            if inQuotes {
                if byte == UInt8(ascii: "\\") { index += 2; continue }
                if byte == UInt8(ascii: "\"") { inQuotes = false }
            } else if byte == UInt8(ascii: "\"") {
                inQuotes = true
            } else if byte == UInt8(ascii: "<") {
                inAngle = true
            } else if byte == UInt8(ascii: ">") {
                inAngle = false
            } else if byte == UInt8(ascii: ","), !inAngle {
                parts.append(trim(utf8[start..<index]))
                start = index + 1
            }
            index += 1
        }
        parts.append(trim(utf8[start..<min(index, utf8.count)]))
        return parts
    }

    /// Whether the value has a comma outside quotes and angle brackets.
    static func hasTopLevelComma(_ value: String) -> Bool {
        var inQuotes = false
        var inAngle = false
        var escaped = false
        for byte in value.utf8 {
            if inQuotes {
                if escaped { escaped = false; continue }
                if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inQuotes = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inQuotes = true
            case UInt8(ascii: "<"): inAngle = true
            case UInt8(ascii: ">"): inAngle = false
            case UInt8(ascii: ","): if !inAngle { return true }
            default: break
            }
        }
        return false
    }

    static func trim(_ bytes: ArraySlice<UInt8>) -> String {
        var lower = bytes.startIndex
        var upper = bytes.endIndex
        while lower < upper, isWhitespace(bytes[lower]) || bytes[lower] == 0x0D || bytes[lower] == 0x0A { lower += 1 }
        while upper > lower, isWhitespace(bytes[upper - 1]) || bytes[upper - 1] == 0x0D || bytes[upper - 1] == 0x0A { upper -= 1 }
        return String(decoding: bytes[lower..<upper], as: UTF8.self)
    }

    /// Parses an unsigned decimal that must fit in `limit`; `nil` when empty, not digits or too large.
    static func parseDecimal(_ string: Substring, limit: UInt64) -> UInt64? {
        guard !string.isEmpty, string.utf8.count <= 20 else { return nil }
        var value: UInt64 = 0
        for byte in string.utf8 {
            guard isDigit(byte) else { return nil }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(byte - 0x30))
            if overflow1 || overflow2 { return nil }
            value = sum
        }
        return value <= limit ? value : nil
    }
}

/// A cursor over the UTF-8 bytes of one header value.
struct SIPScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index: Int

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        self.index = 0
    }

    var isAtEnd: Bool { index >= bytes.count }
    var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    func peek(_ offset: Int = 0) -> UInt8? {
        index + offset < bytes.count ? bytes[index + offset] : nil
    }

    mutating func skipWhitespace() {
        while index < bytes.count, SIPGrammar.isWhitespace(bytes[index]) || bytes[index] == 0x0D || bytes[index] == 0x0A {
            index += 1
        }
    }

    /// Consumes `byte` (with optional whitespace around it, as SEMI/COMMA/EQUAL/SLASH allow).
    mutating func consume(_ byte: UInt8, skippingWhitespace: Bool = true) -> Bool {
        let saved = index
        if skippingWhitespace { skipWhitespace() }
        if index < bytes.count, bytes[index] == byte {
            index += 1
            if skippingWhitespace { skipWhitespace() }
            return true
        }
        index = saved
        return false
    }

    mutating func token() -> String? {
        let start = index
        while index < bytes.count, SIPGrammar.isToken(bytes[index]) { index += 1 }
        return index > start ? string(start..<index) : nil
    }

    /// Consumes bytes while `predicate` holds.
    mutating func take(while predicate: (UInt8) -> Bool) -> String {
        let start = index
        while index < bytes.count, predicate(bytes[index]) { index += 1 }
        return string(start..<index)
    }

    /// quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE; returns the unescaped content,
    /// or `nil` if unterminated.
    mutating func quotedString() -> String? {
        guard current == UInt8(ascii: "\"") else { return nil }
        index += 1
        var content: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { return nil }
                content.append(bytes[index + 1])
                index += 2
                continue
            }
            if byte == UInt8(ascii: "\"") {
                index += 1
                return String(decoding: content, as: UTF8.self)
            }
            content.append(byte)
            index += 1
        }
        return nil
    }

    func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    func rest() -> String { string(index..<bytes.count) }
}

extension String {
    /// Parses the whole value as one element (surrounding whitespace allowed).
    func parseSingle<T>(_ element: (inout SIPScanner) -> T?) -> T? {
        withSIPScanner { scanner in
            scanner.skipWhitespace()
            guard let result = element(&scanner) else { return nil }
            scanner.skipWhitespace()
            return scanner.isAtEnd ? result : nil
        }
    }

    /// Parses the whole value as `element *(COMMA element)` (§7.3.1). With `allowEmpty`, an
    /// empty value is an empty list (Accept, §20.1).
    func parseCommaList<T>(allowEmpty: Bool = false, _ element: (inout SIPScanner) -> T?) -> [T]? {
        withSIPScanner { scanner in
            var result: [T] = []
            scanner.skipWhitespace()
            if allowEmpty, scanner.isAtEnd { return [] }
            repeat {
                scanner.skipWhitespace()
                guard let item = element(&scanner) else { return nil }
                result.append(item)
                scanner.skipWhitespace()
            } while scanner.consume(UInt8(ascii: ","))
            return scanner.isAtEnd ? result : nil
        }
    }

    /// Whether the whole value is a comma list of elements `element` accepts, building nothing.
    func isCommaList(_ element: (inout SIPScanner) -> Bool) -> Bool {
        withSIPScanner { scanner in
            repeat {
                scanner.skipWhitespace()
                guard element(&scanner) else { return false }
                scanner.skipWhitespace()
            } while scanner.consume(UInt8(ascii: ","))
            return scanner.isAtEnd
        }
    }

    /// Runs `body` over this string's contiguous UTF-8 bytes.
    func withSIPScanner<R>(_ body: (inout SIPScanner) -> R) -> R {
        var copy = self
        return copy.withUTF8 { buffer in
            var scanner = SIPScanner(buffer)
            return body(&scanner)
        }
    }
}
