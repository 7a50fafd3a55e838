/// A `( name-addr / addr-spec ) *( SEMI param )` value: From, To, Contact, Route, Record-Route,
/// Reply-To, Refer-To, P-Asserted-Identity (RFC 3261 §20, §25).
public struct SIPNameAddress: Hashable, Sendable, CustomStringConvertible {
    public var displayName: String?
    public var uri: SIPURI
    /// Header parameters (`tag`, `expires`, `q`, `+sip.instance`, `epid`, ...), not URI parameters.
    public var parameters: SIPParameters

    public init(displayName: String? = nil, uri: SIPURI, parameters: SIPParameters = SIPParameters()) {
        self.displayName = displayName
        self.uri = uri
        self.parameters = parameters
    }

    /// The dialog tag of a From or To (§19.3).
    /// A fresh tag (RFC 3261 §19.3: at least 32 bits of randomness), also used for Call-IDs
    /// and entity tags.
    public static func makeTag() -> String { IdentifierRandom.token() }

    public var tag: String? {
        get { parameters["tag"] }
        set { parameters.set("tag", newValue.map { .some($0) }) }
    }

    /// Contact `expires` parameter (§10.2.1.1); `nil` when absent or not a valid delta-seconds.
    public var expires: UInt32? {
        parameters["expires"].flatMap { SIPGrammar.parseDecimal(Substring($0), limit: UInt64(UInt32.max)) }.map(UInt32.init)
    }

    /// Contact `q` preference, 0...1.
    public var q: Double? { parameters["q"].flatMap(Double.init) }

    /// Always written in name-addr form with angle brackets, which is never ambiguous.
    public var description: String {
        var output = ""
        if let displayName, !displayName.isEmpty {
            output += SIPGrammar.quote(displayName) + " "
        }
        output += "<\(uri)>" + parameters.serialized
        return output
    }

    public static func parse(_ value: String) -> SIPNameAddress? {
        value.parseSingle { parse(&$0) }
    }

    /// Parses a comma-separated list (Contact, Route, Record-Route).
    public static func parseList(_ value: String) -> [SIPNameAddress]? {
        value.parseCommaList { parse(&$0) }
    }

    static func parse(_ scanner: inout SIPScanner) -> SIPNameAddress? {
        scan(&scanner, build: true) ?? nil
    }

    /// Whether `value` is one name-addr / addr-spec with parameters, checked without building it.
    static func isValid(_ value: String) -> Bool {
        value.parseSingle { scan(&$0, build: false) } != nil
    }

    /// Whether `value` is a comma-separated list of them (Contact, Route), checked without building.
    static func isValidList(_ value: String) -> Bool {
        value.isCommaList { scan(&$0, build: false) != nil }
    }

    /// The name-addr grammar. Returns `nil` when the input does not follow it, `.some(nil)` when
    /// it does and `build` is false, and the value when `build` is true.
    static func scan(_ scanner: inout SIPScanner, build: Bool) -> SIPNameAddress?? {
        var displayName: String? = nil
        let start = scanner.index
        if scanner.current == UInt8(ascii: "\"") {
            if build {
                guard let quoted = scanner.quotedString() else { return nil }
                displayName = quoted
            } else {
                guard scanner.skipQuotedString() else { return nil }
            }
            scanner.skipWhitespace()
            guard scanner.current == UInt8(ascii: "<") else { return nil }
        } else {
            // display-name = *(token LWS): look ahead for `<` after tokens and whitespace.
            let wordsStart = scanner.index
            var wordsEnd = scanner.index
            while scanner.skipToken() {
                wordsEnd = scanner.index
                scanner.skipWhitespace()
            }
            if scanner.current == UInt8(ascii: "<") {
                if build, wordsEnd > wordsStart {
                    // Words keep single spaces between them.
                    displayName = scanner.string(wordsStart..<wordsEnd)
                        .split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
                }
            } else {
                scanner.index = start
            }
        }
        var uri: SIPURI? = nil
        if scanner.current == UInt8(ascii: "<") {
            // LAQUOT addr-spec RAQUOT: no whitespace inside the brackets (RFC 4475 §3.1.2.14).
            scanner.index += 1
            if build {
                uri = SIPURI.parse(&scanner, stopAt: .empty)
                guard uri != nil else { return nil }
            } else {
                guard SIPURI.skip(&scanner, stopAt: .empty) else { return nil }
            }
            guard scanner.current == UInt8(ascii: ">") else { return nil }
            scanner.index += 1
        } else {
            // An addr-spec without brackets ends at `;`, `,` or whitespace, and then cannot
            // carry URI parameters or headers (§20.10): those belong to the header.
            if build {
                uri = SIPURI.parse(&scanner, stopAt: .addrSpecEnd)
                guard uri != nil else { return nil }
            } else {
                guard SIPURI.skip(&scanner, stopAt: .addrSpecEnd) else { return nil }
            }
            if scanner.current == UInt8(ascii: "?") { return nil }
        }
        guard build else { return scanner.skipParameters() ? .some(nil) : nil }
        guard let parameters = scanner.parameters(), let uri else { return nil }
        return SIPNameAddress(displayName: displayName, uri: uri, parameters: parameters)
    }
}

/// A Contact header value: `*` (remove all bindings, §10.2.2) or a list of addresses.
public enum SIPContact: Hashable, Sendable {
    case wildcard
    case addresses([SIPNameAddress])

    public static func parse(_ value: String) -> SIPContact? {
        if value.trimmingSIPWhitespace() == "*" { return .wildcard }
        return SIPNameAddress.parseList(value).map(SIPContact.addresses)
    }
}

extension String {
    func trimmingSIPWhitespace() -> String {
        SIPGrammar.trim(Array(utf8)[...])
    }
}

extension SIPNameAddress {
    /// Whether a From or To value carries a tag, without parsing it (hot paths: every response
    /// a transaction answers, every request the gateway completes). The header's parameters
    /// follow the name-addr's `>`, or the bare URI; for a bare URI, a `;tag=` among the URI's own
    /// parameters counts, which is how RFC 3261 §20.10 reads it too.
    public static func hasTag(_ value: String) -> Bool {
        let utf8 = value.utf8
        var index = utf8.lastIndex(of: UInt8(ascii: ">")) ?? utf8.startIndex
        while let semicolon = utf8[index...].firstIndex(of: UInt8(ascii: ";")) {
            // "tag=", the name compared without case.
            var next = utf8[utf8.index(after: semicolon)...].makeIterator()
            if next.next().map({ $0 | 0x20 }) == UInt8(ascii: "t"), next.next().map({ $0 | 0x20 }) == UInt8(ascii: "a"),
               next.next().map({ $0 | 0x20 }) == UInt8(ascii: "g"), next.next() == UInt8(ascii: "=") {
                return true
            }
            index = utf8.index(after: semicolon)
        }
        return false
    }
}
