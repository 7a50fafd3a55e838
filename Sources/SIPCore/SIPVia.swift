/// One Via value (RFC 3261 §20.42, §25: via-parm), e.g. `SIP/2.0/UDP host:5060;branch=z9hG4bK..`.
public struct SIPVia: Hashable, Sendable, CustomStringConvertible {
    public var protocolName: String
    public var protocolVersion: String
    /// The transport token as written (`UDP`, `TCP`, `TLS`, `SCTP`, or an extension).
    public var transport: String
    public var host: String
    public var port: UInt16?
    public var parameters: SIPParameters

    /// The magic cookie that marks an RFC 3261 branch (§8.1.1.7).
    public static let magicCookie = "z9hG4bK"

    public init(transport: String, host: String, port: UInt16? = nil, parameters: SIPParameters = SIPParameters()) {
        self.protocolName = "SIP"
        self.protocolVersion = "2.0"
        self.transport = transport
        self.host = host
        self.port = port
        self.parameters = parameters
    }

    public var branch: String? {
        get { parameters["branch"] }
        set { parameters.set("branch", newValue.map { .some($0) }) }
    }
    public var received: String? { parameters["received"] }
    public var maddr: String? { parameters["maddr"] }
    public var ttl: String? { parameters["ttl"] }

    /// RFC 3581: absent, requested (valueless, from a client), or filled in by a server.
    public enum RPort: Hashable, Sendable { case absent, requested, value(UInt16) }
    public var rport: RPort {
        switch parameters.rawValue("rport") {
        case .none: return .absent
        case .some(.none): return .requested
        case .some(.some(let value)):
            guard let number = SIPGrammar.parseDecimal(Substring(value), limit: 65535) else { return .requested }
            return .value(UInt16(number))
        }
    }

    /// Whether the branch carries the RFC 3261 magic cookie, making it a transaction identifier.
    public var hasRFC3261Branch: Bool { branch?.hasPrefix(Self.magicCookie) ?? false }

    public var description: String {
        var output = "\(protocolName)/\(protocolVersion)/\(transport) \(host)"
        if let port { output += ":\(port)" }
        return output + parameters.serialized
    }

    /// Parses every via-parm of a Via header value.
    public static func parseList(_ value: String) -> [SIPVia]? {
        value.parseCommaList { parse(&$0) }
    }

    /// The first via-parm of a Via value, the others skipped unparsed: the top Via is read
    /// several times per request (transaction key, received/rport, response routing), and the
    /// message parser has already checked the whole list.
    public static func parseFirst(_ value: String) -> SIPVia? {
        value.withSIPScanner { scanner in
            scanner.skipWhitespace()
            guard let via = parse(&scanner) else { return nil }
            scanner.skipWhitespace()
            return scanner.isAtEnd || scanner.consume(UInt8(ascii: ",")) ? via : nil
        }
    }

    /// Whether `value` is a valid Via header value, checked without building it.
    static func isValidList(_ value: String) -> Bool {
        value.isCommaList { scan(&$0, build: false) != nil }
    }

    public static func parse(_ value: String) -> SIPVia? {
        guard let list = parseList(value), list.count == 1 else { return nil }
        return list[0]
    }

    static func parse(_ scanner: inout SIPScanner) -> SIPVia? {
        scan(&scanner, build: true) ?? nil
    }

    /// via-parm; `nil` if invalid, `.some(nil)` if valid and not built.
    static func scan(_ scanner: inout SIPScanner, build: Bool) -> SIPVia?? {
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport; SLASH = SWS "/" SWS
        let nameStart = scanner.index
        guard scanner.skipToken() else { return nil }
        let nameEnd = scanner.index
        guard scanner.consume(UInt8(ascii: "/")) else { return nil }
        let versionStart = scanner.index
        guard scanner.skipToken() else { return nil }
        let versionEnd = scanner.index
        guard scanner.consume(UInt8(ascii: "/")) else { return nil }
        let transportStart = scanner.index
        guard scanner.skipToken() else { return nil }
        let transportEnd = scanner.index
        // LWS sent-by
        scanner.skipWhitespace()
        let hostStart = scanner.index
        if scanner.current == UInt8(ascii: "[") {
            while let byte = scanner.current, byte != UInt8(ascii: "]"), !SIPGrammar.isWhitespace(byte) { scanner.index += 1 }
            guard scanner.consume(UInt8(ascii: "]"), skippingWhitespace: false) else { return nil }
        } else {
            while let byte = scanner.current, SIPCharacterClass.hostname.contains(byte) { scanner.index += 1 }
        }
        let hostEnd = scanner.index
        guard hostEnd > hostStart else { return nil }
        var port: UInt16? = nil
        if scanner.consume(UInt8(ascii: ":")) {
            let digits = scanner.take(while: SIPGrammar.isDigit)
            guard let number = SIPGrammar.parseDecimal(Substring(digits), limit: 65535) else { return nil }
            port = UInt16(number)
        }
        guard build else { return scanner.skipParameters() ? .some(nil) : nil }
        guard let parameters = scanner.parameters() else { return nil }
        var via = SIPVia(
            transport: scanner.string(transportStart..<transportEnd), host: scanner.string(hostStart..<hostEnd),
            port: port, parameters: parameters)
        via.protocolName = scanner.string(nameStart..<nameEnd)
        via.protocolVersion = scanner.string(versionStart..<versionEnd)
        return via
    }
}
