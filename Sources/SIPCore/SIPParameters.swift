/// An ordered list of `;name[=value]` parameters, as on URIs (§19.1.1) and header values
/// (generic-param, §25). Names compare case-insensitively; values are kept as written (a quoted
/// value keeps its quotes, so it can be written back unchanged).
public struct SIPParameters: Hashable, Sendable, Sequence, ExpressibleByDictionaryLiteral {
    public struct Parameter: Hashable, Sendable {
        public var name: String
        /// `nil` for a flag parameter such as `;lr` or `;rport`.
        public var value: String?

        public init(_ name: String, _ value: String? = nil) {
            self.name = name
            self.value = value
        }
    }

    public private(set) var items: [Parameter]

    public init() { items = [] }
    public init(_ items: [Parameter]) { self.items = items }
    public init(dictionaryLiteral elements: (String, String?)...) {
        items = elements.map { Parameter($0.0, $0.1) }
    }

    public func makeIterator() -> IndexingIterator<[Parameter]> { items.makeIterator() }
    public var isEmpty: Bool { items.isEmpty }

    private func index(of name: String) -> Int? {
        items.firstIndex { $0.name.caseInsensitiveEquals(name) }
    }

    /// Whether the parameter is present (with or without a value).
    public func contains(_ name: String) -> Bool { index(of: name) != nil }

    /// The parameter's value with surrounding quotes removed; `nil` when absent or valueless.
    public subscript(_ name: String) -> String? {
        guard let index = index(of: name), let value = items[index].value else { return nil }
        return value.unquotedSIPValue
    }

    /// The value exactly as written (quotes kept).
    public func rawValue(_ name: String) -> String?? {
        guard let index = index(of: name) else { return nil }
        return .some(items[index].value)
    }

    /// Sets or replaces a parameter, quoting `value` when it is not a token; `.some(nil)` sets a
    /// flag; `nil` removes it.
    public mutating func set(_ name: String, _ value: String??) {
        switch value {
        case .none:
            if let index = index(of: name) { items.remove(at: index) }
        case .some(let inner):
            let written = inner.map { SIPGrammar.isToken($0) || $0.isHostOrIPv6 ? $0 : SIPGrammar.quote($0) }
            if let index = index(of: name) {
                items[index].value = written
            } else {
                items.append(Parameter(name, written))
            }
        }
    }

    /// Appends without checking for an existing parameter of that name, writing `value` as is.
    public mutating func append(_ name: String, raw value: String?) {
        items.append(Parameter(name, value))
    }

    /// Parses `token *(SEMI generic-param)`, the shape of Event, Subscription-State and Lync's
    /// ms-diagnostics (`1003;reason="..."`).
    public static func parseTokenWithParameters(_ value: String) -> (token: String, parameters: SIPParameters)? {
        value.parseSingle { scanner in
            guard let token = scanner.token(), let parameters = scanner.parameters(stopAtComma: false) else { return nil }
            return (token, parameters)
        }
    }

    /// `;a=b;c` (with the leading semicolon), or `""`.
    public var serialized: String {
        var output = ""
        for item in items {
            output += ";" + item.name
            if let value = item.value { output += "=" + value }
        }
        return output
    }
}

extension String {
    func caseInsensitiveEquals(_ other: String) -> Bool {
        let a = utf8, b = other.utf8
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where x != y {
            let lx = SIPGrammar.isAlpha(x) ? x | 0x20 : x
            let ly = SIPGrammar.isAlpha(y) ? y | 0x20 : y
            if lx != ly { return false }
        }
        return true
    }

    var unquotedSIPValue: String {
        guard utf8.count >= 2, utf8.first == UInt8(ascii: "\""), utf8.last == UInt8(ascii: "\"") else { return self }
        return withSIPScanner { scanner in scanner.quotedString() ?? self }
    }

    var isHostOrIPv6: Bool {
        !isEmpty && utf8.allSatisfy { SIPGrammar.isToken($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]") }
    }
}

extension SIPScanner {
    /// generic-param list after a value: `*( SEMI token [ EQUAL ( token / host / quoted-string ) ] )`.
    /// Stops before a comma or the end; returns `nil` on a syntax error such as `;;`.
    mutating func parameters(stopAtComma: Bool = true) -> SIPParameters? {
        var parameters = SIPParameters()
        let bytes = self.bytes
        func string(_ range: Range<Int>) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }
        guard scanParameters(stopAtComma: stopAtComma, { name, value in
            parameters.append(string(name), raw: value.map(string))
        }) else { return nil }
        return parameters
    }

    /// Checks a parameter list as `parameters` would, building nothing.
    mutating func skipParameters(stopAtComma: Bool = true) -> Bool {
        scanParameters(stopAtComma: stopAtComma) { _, _ in }
    }

    /// The parameter grammar, reporting each name and raw value (quotes kept) as byte ranges.
    mutating func scanParameters(stopAtComma: Bool, _ parameter: (Range<Int>, Range<Int>?) -> Void) -> Bool {
        while true {
            let saved = index
            skipWhitespace()
            if isAtEnd { return true }
            if current == UInt8(ascii: ",") && stopAtComma {
                index = saved
                return true
            }
            guard consume(UInt8(ascii: ";")) else { return false }
            let nameStart = index
            while index < bytes.count, SIPGrammar.isToken(bytes[index]) { index += 1 }
            guard index > nameStart else { return false }
            let name = nameStart..<index
            if consume(UInt8(ascii: "=")) {
                let valueStart = index
                if current == UInt8(ascii: "\"") {
                    guard skipQuotedString() else { return false }
                } else {
                    while index < bytes.count, SIPCharacterClass.viaParamValue.contains(bytes[index]) { index += 1 }
                    guard index > valueStart else { return false }
                }
                parameter(name, valueStart..<index)
            } else {
                parameter(name, nil)
            }
        }
    }

    /// Moves past a quoted-string; `false` if unterminated.
    mutating func skipQuotedString() -> Bool {
        guard current == UInt8(ascii: "\"") else { return false }
        index += 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\\"):
                guard index + 1 < bytes.count else { return false }
                index += 2
            case UInt8(ascii: "\""):
                index += 1
                return true
            default:
                index += 1
            }
        }
        return false
    }

    /// Moves past a token; `false` if none.
    mutating func skipToken() -> Bool {
        let start = index
        while index < bytes.count, SIPGrammar.isToken(bytes[index]) { index += 1 }
        return index > start
    }
}
