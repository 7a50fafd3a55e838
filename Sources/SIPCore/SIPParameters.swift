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
        while true {
            let saved = index
            skipWhitespace()
            if isAtEnd { return parameters }
            if current == UInt8(ascii: ",") && stopAtComma {
                index = saved
                return parameters
            }
            guard consume(UInt8(ascii: ";")) else { return nil }
            guard let name = token() else { return nil }
            if consume(UInt8(ascii: "=")) {
                if current == UInt8(ascii: "\"") {
                    let start = index
                    guard quotedString() != nil else { return nil }
                    parameters.append(name, raw: string(start..<index))
                } else {
                    let value = take { SIPGrammar.isToken($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]") }
                    guard !value.isEmpty else { return nil }
                    parameters.append(name, raw: value)
                }
            } else {
                parameters.append(name, raw: nil)
            }
        }
    }
}
