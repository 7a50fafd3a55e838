/// A URI as SIP carries it: a SIP or SIPS URI with its parts (RFC 3261 §19.1), or any other
/// absolute URI (`tel:`, `im:`, `pres:`, unknown schemes) kept opaque (§19.1, RFC 4475 §3.3.2).
/// Parts are stored as written, escapes included; `decodedUser` undoes them.
public struct SIPURI: Hashable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    /// URI schemes compare case-insensitively (RFC 3986 §3.1); the spelling is kept for output.
    public struct Scheme: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static func == (a: Scheme, b: Scheme) -> Bool { a.rawValue.caseInsensitiveEquals(b.rawValue) }
        public func hash(into hasher: inout Hasher) { hasher.combine(rawValue.lowercased()) }
        public static let sip = Scheme(rawValue: "sip")
        public static let sips = Scheme(rawValue: "sips")
        public static let tel = Scheme(rawValue: "tel")
        public static let im = Scheme(rawValue: "im")
        public static let pres = Scheme(rawValue: "pres")
    }

    public struct Header: Hashable, Sendable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public var scheme: Scheme
    /// The user part, percent-escapes kept (`sips%3Auser%40example.com`).
    public var user: String?
    public var password: String?
    /// Hostname, IPv4 address or bracketed IPv6 reference; empty for non-SIP schemes.
    public var host: String
    public var port: UInt16?
    public var parameters: SIPParameters
    public var headers: [Header]
    /// For schemes other than sip/sips: everything after `scheme:`.
    public var opaque: String?

    /// A SIP or SIPS URI.
    public init(
        scheme: Scheme = .sip, user: String? = nil, password: String? = nil, host: String, port: UInt16? = nil,
        parameters: SIPParameters = SIPParameters(), headers: [Header] = []
    ) {
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.parameters = parameters
        self.headers = headers
        self.opaque = nil
    }

    /// An absolute URI of another scheme.
    public init(scheme: Scheme, opaque: String) {
        self.scheme = scheme
        self.user = nil
        self.password = nil
        self.host = ""
        self.port = nil
        self.parameters = SIPParameters()
        self.headers = []
        self.opaque = opaque
    }

    public init?(_ description: String) {
        guard let uri = SIPURI.parse(description) else { return nil }
        self = uri
    }

    /// Whether this is a `sip:` or `sips:` URI with host, parameters and headers.
    public var isSIP: Bool { scheme == .sip || scheme == .sips }

    /// The user part with percent-escapes decoded (RFC 7247 §6.4 step 3). Invalid UTF-8 is
    /// repaired with U+FFFD.
    public var decodedUser: String? { user.map(Self.percentDecoded) }

    /// The `gr` parameter (RFC 5627 GRUU): an instance, mapped to an XMPP resource (RFC 7247 §6.3).
    public var gr: String? {
        get { parameters["gr"] }
        set { parameters.set("gr", newValue.map { .some($0) }) }
    }

    /// `transport`, `maddr`, `lr` and `user` parameters.
    public var transport: String? { parameters["transport"] }
    public var isLooseRouter: Bool { parameters.contains("lr") }

    /// The address-of-record form: scheme, user and host, without port, parameters or headers
    /// (RFC 3261 §10.3 step 5 canonicalization, lowercasing the host).
    public var addressOfRecord: SIPURI {
        guard isSIP else { return self }
        return SIPURI(scheme: scheme, user: user, host: host.lowercased())
    }

    public var description: String {
        var output = scheme.rawValue + ":"
        if let opaque { return output + opaque }
        if let user {
            output += user
            if let password { output += ":" + password }
            output += "@"
        }
        output += host
        if let port { output += ":" + String(port) }
        output += parameters.serialized
        for (index, header) in headers.enumerated() {
            output += (index == 0 ? "?" : "&") + header.name + "=" + header.value
        }
        return output
    }

    // MARK: parsing

    /// Parses an absolute URI; `nil` if it does not follow the grammar.
    public static func parse(_ string: String) -> SIPURI? {
        string.withSIPScanner { scanner in parse(&scanner, stopAt: []) }
    }

    /// Parses a URI starting at the scanner, ending at the end of input or at one of `stopAt`
    /// (an unbracketed addr-spec ends at `;`, `,` or whitespace, §20.10).
    static func parse(_ scanner: inout SIPScanner, stopAt: Set<UInt8>) -> SIPURI? {
        let start = scanner.index
        // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
        guard let first = scanner.current, SIPGrammar.isAlpha(first) else { return nil }
        while let byte = scanner.current,
            SIPGrammar.isAlpha(byte) || SIPGrammar.isDigit(byte) || byte == UInt8(ascii: "+")
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        {
            scanner.index += 1
        }
        guard scanner.current == UInt8(ascii: ":") else { return nil }
        let scheme = Scheme(rawValue: scanner.string(start..<scanner.index))
        scanner.index += 1
        let bodyStart = scanner.index
        var end = scanner.index
        while end < scanner.bytes.count {
            let byte = scanner.bytes[end]
            if byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: "<") || byte == UInt8(ascii: ">")
                || byte == UInt8(ascii: "\"") || stopAt.contains(byte)
            {
                break
            }
            end += 1
        }
        guard end > bodyStart else { return nil }
        let body = UnsafeBufferPointer(rebasing: scanner.bytes[bodyStart..<end])
        scanner.index = end
        if scheme == .sip || scheme == .sips {
            return parseSIP(scheme: scheme, body)
        }
        return SIPURI(scheme: scheme, opaque: String(decoding: body, as: UTF8.self))
    }

    private static func parseSIP(scheme: Scheme, _ body: UnsafeBufferPointer<UInt8>) -> SIPURI? {
        var index = 0
        var user: String? = nil
        var password: String? = nil
        if let at = body.firstIndex(of: UInt8(ascii: "@")) {
            let userinfo = UnsafeBufferPointer(rebasing: body[0..<at])
            let colon = userinfo.firstIndex(of: UInt8(ascii: ":"))
            let userBytes = UnsafeBufferPointer(rebasing: userinfo[0..<(colon ?? userinfo.count)])
            guard !userBytes.isEmpty, valid(userBytes, extra: userUnreserved) else { return nil }
            user = String(decoding: userBytes, as: UTF8.self)
            if let colon {
                let passwordBytes = UnsafeBufferPointer(rebasing: userinfo[(colon + 1)...])
                guard valid(passwordBytes, extra: passwordUnreserved) else { return nil }
                password = String(decoding: passwordBytes, as: UTF8.self)
            }
            index = at + 1
        }
        // host
        let hostStart = index
        if index < body.count, body[index] == UInt8(ascii: "[") {
            while index < body.count, body[index] != UInt8(ascii: "]") {
                let byte = body[index]
                guard byte == UInt8(ascii: "[") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: ".") || isHex(byte) else { return nil }
                index += 1
            }
            guard index < body.count else { return nil }
            index += 1
        } else {
            while index < body.count {
                let byte = body[index]
                if byte == UInt8(ascii: ":") || byte == UInt8(ascii: ";") || byte == UInt8(ascii: "?") { break }
                guard SIPGrammar.isAlpha(byte) || SIPGrammar.isDigit(byte) || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                else { return nil }
                index += 1
            }
        }
        guard index > hostStart else { return nil }
        let host = String(decoding: UnsafeBufferPointer(rebasing: body[hostStart..<index]), as: UTF8.self)
        var port: UInt16? = nil
        if index < body.count, body[index] == UInt8(ascii: ":") {
            index += 1
            let portStart = index
            while index < body.count, SIPGrammar.isDigit(body[index]) { index += 1 }
            let digits = String(decoding: UnsafeBufferPointer(rebasing: body[portStart..<index]), as: UTF8.self)
            guard let value = SIPGrammar.parseDecimal(Substring(digits), limit: 65535) else { return nil }
            port = UInt16(value)
        }
        var parameters = SIPParameters()
        while index < body.count, body[index] == UInt8(ascii: ";") {
            index += 1
            let nameStart = index
            while index < body.count, isParamChar(body[index]) { index += 1 }
            guard index > nameStart else { return nil }
            let name = String(decoding: UnsafeBufferPointer(rebasing: body[nameStart..<index]), as: UTF8.self)
            var value: String? = nil
            if index < body.count, body[index] == UInt8(ascii: "=") {
                index += 1
                let valueStart = index
                while index < body.count, isParamChar(body[index]) { index += 1 }
                guard index > valueStart else { return nil }
                value = String(decoding: UnsafeBufferPointer(rebasing: body[valueStart..<index]), as: UTF8.self)
            }
            parameters.append(name, raw: value)
        }
        var headers: [Header] = []
        if index < body.count, body[index] == UInt8(ascii: "?") {
            repeat {
                index += 1
                let nameStart = index
                while index < body.count, isHeaderChar(body[index]) { index += 1 }
                guard index > nameStart, index < body.count, body[index] == UInt8(ascii: "=") else { return nil }
                let name = String(decoding: UnsafeBufferPointer(rebasing: body[nameStart..<index]), as: UTF8.self)
                index += 1
                let valueStart = index
                while index < body.count, isHeaderChar(body[index]) { index += 1 }
                let value = String(decoding: UnsafeBufferPointer(rebasing: body[valueStart..<index]), as: UTF8.self)
                headers.append(Header(name, value))
            } while index < body.count && body[index] == UInt8(ascii: "&")
        }
        guard index == body.count else { return nil }
        return SIPURI(
            scheme: scheme, user: user, password: password, host: host, port: port,
            parameters: parameters, headers: headers)
    }

    // unreserved = alphanum / mark; mark = - _ . ! ~ * ' ( )
    private static let mark: Set<UInt8> = Set("-_.!~*'()".utf8)
    private static let userUnreserved: Set<UInt8> = Set("&=+$,;?/".utf8)
    private static let passwordUnreserved: Set<UInt8> = Set("&=+$,".utf8)
    private static let paramUnreserved: Set<UInt8> = Set("[]/:&+$".utf8)
    private static let headerUnreserved: Set<UInt8> = Set("[]/?:+$".utf8)

    @inline(__always) private static func isHex(_ byte: UInt8) -> Bool {
        SIPGrammar.isDigit(byte) || ((byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "f"))
    }

    @inline(__always) private static func isUnreserved(_ byte: UInt8) -> Bool {
        SIPGrammar.isAlpha(byte) || SIPGrammar.isDigit(byte) || mark.contains(byte)
    }

    private static func isParamChar(_ byte: UInt8) -> Bool {
        isUnreserved(byte) || paramUnreserved.contains(byte) || byte == UInt8(ascii: "%")
    }

    private static func isHeaderChar(_ byte: UInt8) -> Bool {
        isUnreserved(byte) || headerUnreserved.contains(byte) || byte == UInt8(ascii: "%")
    }

    /// unreserved / escaped / extra, where escaped = "%" HEXDIG HEXDIG.
    private static func valid(_ bytes: UnsafeBufferPointer<UInt8>, extra: Set<UInt8>) -> Bool {
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, isHex(bytes[index + 1]), isHex(bytes[index + 2])
                else { return false }
                index += 3
                continue
            }
            guard isUnreserved(byte) || extra.contains(byte) else { return false }
            index += 1
        }
        return true
    }

    /// Decodes %HH escapes; malformed escapes are kept literally.
    public static func percentDecoded(_ string: String) -> String {
        guard string.utf8.contains(UInt8(ascii: "%")) else { return string }
        let bytes = Array(string.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count, isHex(bytes[index + 1]), isHex(bytes[index + 2]) {
                output.append(hexValue(bytes[index + 1]) << 4 | hexValue(bytes[index + 2]))
                index += 3
            } else {
                output.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Percent-encodes every byte of `string` that is not unreserved and not in `allowed`.
    public static func percentEncoded(_ string: String, allowed: Set<UInt8>) -> String {
        var output = ""
        for byte in string.utf8 {
            if isUnreserved(byte) || allowed.contains(byte) {
                output.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = Array("0123456789ABCDEF".utf8)
                output.unicodeScalars.append(Unicode.Scalar(UInt8(ascii: "%")))
                output.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                output.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0xF)]))
            }
        }
        return output
    }

    /// The characters the user part may carry unescaped besides alphanumerics and marks.
    public static let userAllowedCharacters = userUnreserved

    private static func hexValue(_ byte: UInt8) -> UInt8 {
        SIPGrammar.isDigit(byte) ? byte - 0x30 : (byte | 0x20) - UInt8(ascii: "a") + 10
    }
}
