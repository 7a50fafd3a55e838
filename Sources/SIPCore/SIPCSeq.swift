/// CSeq (RFC 3261 §20.16): a sequence number below 2^31 and the request's method.
public struct SIPCSeq: Hashable, Sendable, CustomStringConvertible {
    public var sequence: UInt32
    public var method: SIPMethod

    public init(_ sequence: UInt32, _ method: SIPMethod) {
        self.sequence = sequence
        self.method = method
    }

    public var description: String { "\(sequence) \(method.rawValue)" }

    /// `1*DIGIT LWS Method`; the number "MUST be expressible as a 32-bit unsigned integer"
    /// and be less than 2^31 (§8.1.1.5).
    public static func parse(_ value: String) -> SIPCSeq? {
        value.withSIPScanner { scanner in
            scanner.skipWhitespace()
            let digits = scanner.take(while: SIPGrammar.isDigit)
            guard let number = SIPGrammar.parseDecimal(Substring(digits), limit: UInt64(Int32.max)) else { return nil }
            let before = scanner.index
            scanner.skipWhitespace()
            guard scanner.index > before, let method = scanner.token() else { return nil }
            scanner.skipWhitespace()
            guard scanner.isAtEnd else { return nil }
            return SIPCSeq(UInt32(number), SIPMethod(method))
        }
    }
}

/// Parsers for the small scalar and list headers.
public enum SIPHeaderValue {
    /// delta-seconds for Expires, Min-Expires, Retry-After (§20.19: 0 ... 2^32-1).
    public static func deltaSeconds(_ value: String) -> UInt32? {
        let trimmed = value.trimmingSIPWhitespace()
        // Retry-After may carry a comment and parameters; the number comes first.
        let digits = trimmed.prefix { SIPGrammar.isDigit($0.asciiValue ?? 0) }
        guard digits.count == trimmed.count || trimmed.dropFirst(digits.count).first.map({ $0 == " " || $0 == ";" || $0 == "(" }) == true
        else { return nil }
        return SIPGrammar.parseDecimal(digits, limit: UInt64(UInt32.max)).map(UInt32.init)
    }

    /// Max-Forwards (§20.22): 0 ... 255.
    public static func maxForwards(_ value: String) -> UInt8? {
        SIPGrammar.parseDecimal(Substring(value.trimmingSIPWhitespace()), limit: 255).map(UInt8.init)
    }

    /// Content-Length (§20.14): a non-negative decimal. Bounded at 2^31-1.
    public static func contentLength(_ value: String) -> Int? {
        SIPGrammar.parseDecimal(Substring(value.trimmingSIPWhitespace()), limit: UInt64(Int32.max)).map(Int.init)
    }

    /// A comma-separated token list (Supported, Require, Allow, Proxy-Require, Unsupported,
    /// Allow-Events); `nil` if an element is not a token.
    public static func tokens(_ values: [String]) -> [String]? {
        var result: [String] = []
        for value in values {
            for item in SIPGrammar.splitList(value) where !item.isEmpty {
                // Allow-Events elements may carry a template (`presence.winfo`), still a token.
                guard SIPGrammar.isToken(item) else { return nil }
                result.append(item)
            }
        }
        return result
    }

    /// Whether a Date value is an RFC 1123 date in GMT (§20.17: "SIP only supports recent
    /// RFC 1123 formats for dates... must be in GMT").
    public static func isValidDate(_ value: String) -> Bool {
        // wkday "," SP date1 SP time SP "GMT"; date1 = 2DIGIT SP month SP 4DIGIT
        let parts = value.trimmingSIPWhitespace().split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return false }
        let weekdays: Set<Substring> = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"]
        let months: Set<Substring> = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard weekdays.contains(parts[0]), parts[1].count == 2, parts[1].allSatisfy(\.isASCIIDigit),
            months.contains(parts[2]), parts[3].count == 4, parts[3].allSatisfy(\.isASCIIDigit),
            parts[5] == "GMT"
        else { return false }
        let time = parts[4].split(separator: ":", omittingEmptySubsequences: false)
        return time.count == 3 && time.allSatisfy { $0.count == 2 && $0.allSatisfy(\.isASCIIDigit) }
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
