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
        string.withSIPScanner { scanner in
            guard let uri = parse(&scanner, stopAt: .empty), scanner.isAtEnd else { return nil }
            return uri
        }
    }

    /// Parses a URI starting at the scanner, ending at the end of input or at one of `stopAt`
    /// (an unbracketed addr-spec ends at `;`, `,` or `?`, §20.10).
    static func parse(_ scanner: inout SIPScanner, stopAt: SIPCharacterClass) -> SIPURI? {
        guard let (schemeBytes, body, isSIP) = scanAbsolute(&scanner, stopAt: stopAt) else { return nil }
        let scheme = Scheme(rawValue: String(decoding: schemeBytes, as: UTF8.self))
        if isSIP { return parseSIP(scheme: scheme, body) }
        return SIPURI(scheme: scheme, opaque: String(decoding: body, as: UTF8.self))
    }

    /// Checks a URI as `parse` would, without building it: the parser validates headers this way
    /// on every message, and throwaway strings would dominate its cost.
    static func skip(_ scanner: inout SIPScanner, stopAt: SIPCharacterClass) -> Bool {
        guard let (_, body, isSIP) = scanAbsolute(&scanner, stopAt: stopAt) else { return false }
        return !isSIP || scanSIP(body, parameter: { _, _ in }, header: { _, _ in }) != nil
    }

    /// absoluteURI = scheme ":" ...: returns the scheme, the part after the colon and whether the
    /// scheme is sip/sips.
    private static func scanAbsolute(
        _ scanner: inout SIPScanner, stopAt: SIPCharacterClass
    ) -> (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>, Bool)? {
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
        let schemeBytes = UnsafeBufferPointer(rebasing: scanner.bytes[start..<scanner.index])
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
        scanner.index = end
        return (schemeBytes, UnsafeBufferPointer(rebasing: scanner.bytes[bodyStart..<end]), isSIPScheme(schemeBytes))
    }

    /// `sip` or `sips`, any case.
    @inline(__always) private static func isSIPScheme(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count == 3 || bytes.count == 4 else { return false }
        guard bytes[0] | 0x20 == UInt8(ascii: "s"), bytes[1] | 0x20 == UInt8(ascii: "i"), bytes[2] | 0x20 == UInt8(ascii: "p")
        else { return false }
        return bytes.count == 3 || bytes[3] | 0x20 == UInt8(ascii: "s")
    }

    private static func parseSIP(scheme: Scheme, _ body: UnsafeBufferPointer<UInt8>) -> SIPURI? {
        func string(_ range: Range<Int>) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: body[range]), as: UTF8.self)
        }
        var parameters = SIPParameters()
        var headers: [Header] = []
        guard let parts = scanSIP(
            body,
            parameter: { name, value in parameters.append(string(name), raw: value.map(string)) },
            header: { name, value in headers.append(Header(string(name), string(value))) })
        else { return nil }
        return SIPURI(
            scheme: scheme, user: parts.user.map(string), password: parts.password.map(string),
            host: string(parts.host), port: parts.port, parameters: parameters, headers: headers)
    }

    /// Where the parts of a SIP URI lie in its body (the bytes after `sip:`).
    private struct Parts {
        var user: Range<Int>?
        var password: Range<Int>?
        var host: Range<Int>
        var port: UInt16?
    }

    /// SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ] (§25), reporting each
    /// parameter and header through the callbacks; `nil` if the body does not follow the grammar.
    private static func scanSIP(
        _ body: UnsafeBufferPointer<UInt8>,
        parameter: (Range<Int>, Range<Int>?) -> Void,
        header: (Range<Int>, Range<Int>) -> Void
    ) -> Parts? {
        var index = 0
        var user: Range<Int>? = nil
        var password: Range<Int>? = nil
        if let at = body.firstIndex(of: UInt8(ascii: "@")) {
            let colon = body[0..<at].firstIndex(of: UInt8(ascii: ":"))
            let userEnd = colon ?? at
            guard userEnd > 0, valid(UnsafeBufferPointer(rebasing: body[0..<userEnd]), extra: .userUnreserved) else {
                return nil
            }
            user = 0..<userEnd
            if let colon {
                guard valid(UnsafeBufferPointer(rebasing: body[(colon + 1)..<at]), extra: .passwordUnreserved) else {
                    return nil
                }
                password = (colon + 1)..<at
            }
            index = at + 1
        }
        // host = hostname / IPv4address / IPv6reference
        let hostStart = index
        if index < body.count, body[index] == UInt8(ascii: "[") {
            while index < body.count, body[index] != UInt8(ascii: "]") {
                let byte = body[index]
                guard byte == UInt8(ascii: "[") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: ".") || isHex(byte) else {
                    return nil
                }
                index += 1
            }
            guard index < body.count else { return nil }
            index += 1
        } else {
            while index < body.count {
                let byte = body[index]
                if byte == UInt8(ascii: ":") || byte == UInt8(ascii: ";") || byte == UInt8(ascii: "?") { break }
                guard SIPCharacterClass.hostname.contains(byte) else { return nil }
                index += 1
            }
        }
        guard index > hostStart else { return nil }
        let host = hostStart..<index
        var port: UInt16? = nil
        if index < body.count, body[index] == UInt8(ascii: ":") {
            index += 1
            var value = 0
            let portStart = index
            while index < body.count, SIPGrammar.isDigit(body[index]), index - portStart < 6 {
                value = value * 10 + Int(body[index] - 0x30)
                index += 1
            }
            guard index > portStart, value <= 65535 else { return nil }
            port = UInt16(value)
        }
        while index < body.count, body[index] == UInt8(ascii: ";") {
            index += 1
            let nameStart = index
            while index < body.count, isParamChar(body[index]) { index += 1 }
            guard index > nameStart else { return nil }
            let name = nameStart..<index
            var value: Range<Int>? = nil
            if index < body.count, body[index] == UInt8(ascii: "=") {
                index += 1
                let valueStart = index
                while index < body.count, isParamChar(body[index]) { index += 1 }
                guard index > valueStart else { return nil }
                value = valueStart..<index
            }
            parameter(name, value)
        }
        if index < body.count, body[index] == UInt8(ascii: "?") {
            repeat {
                index += 1
                let nameStart = index
                while index < body.count, isHeaderChar(body[index]) { index += 1 }
                guard index > nameStart, index < body.count, body[index] == UInt8(ascii: "=") else { return nil }
                let name = nameStart..<index
                index += 1
                let valueStart = index
                while index < body.count, isHeaderChar(body[index]) { index += 1 }
                header(name, valueStart..<index)
            } while index < body.count && body[index] == UInt8(ascii: "&")
        }
        guard index == body.count else { return nil }
        return Parts(user: user, password: password, host: host, port: port)
    }

    @inline(__always) private static func isHex(_ byte: UInt8) -> Bool { SIPCharacterClass.hex.contains(byte) }

    @inline(__always) private static func isUnreserved(_ byte: UInt8) -> Bool {
        SIPCharacterClass.unreserved.contains(byte)
    }

    @inline(__always) private static func isParamChar(_ byte: UInt8) -> Bool {
        SIPCharacterClass.unreserved.union(.paramUnreserved).contains(byte) || byte == UInt8(ascii: "%")
    }

    @inline(__always) private static func isHeaderChar(_ byte: UInt8) -> Bool {
        SIPCharacterClass.unreserved.union(.headerUnreserved).contains(byte) || byte == UInt8(ascii: "%")
    }

    /// unreserved / escaped / extra, where escaped = "%" HEXDIG HEXDIG.
    private static func valid(_ bytes: UnsafeBufferPointer<UInt8>, extra: SIPCharacterClass) -> Bool {
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
        // Most user parts and `gr` values need no escape: they are returned as they are, with no
        // copy built byte by byte (the gateway encodes two of them for every message).
        guard string.utf8.contains(where: { !isUnreserved($0) && !allowed.contains($0) }) else { return string }
        let hex = hexDigits
        var output = ""
        for byte in string.utf8 {
            if isUnreserved(byte) || allowed.contains(byte) {
                output.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                output.unicodeScalars.append(Unicode.Scalar(UInt8(ascii: "%")))
                output.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                output.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0xF)]))
            }
        }
        return output
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// The characters the user part may carry unescaped besides alphanumerics and marks.
    public static let userAllowedCharacters: Set<UInt8> = Set("&=+$,;?/".utf8)

    private static func hexValue(_ byte: UInt8) -> UInt8 {
        SIPGrammar.isDigit(byte) ? byte - 0x30 : (byte | 0x20) - UInt8(ascii: "a") + 10
    }
}
