/// A challenge or credentials (RFC 3261 §20.7, §20.27, §20.44, §25; RFC 7616): WWW-Authenticate,
/// Proxy-Authenticate, Authorization and Proxy-Authorization share the shape
/// `scheme param=value, param=value`. The scheme is kept as written, so unknown schemes
/// (RFC 4475 §3.3.7) parse too; the digest accessors read the RFC 7616 parameters.
public struct SIPAuthorization: Hashable, Sendable, CustomStringConvertible {
    public struct Parameter: Hashable, Sendable {
        public var name: String
        /// Unquoted value.
        public var value: String
        /// Whether it was (and will be) written as a quoted-string.
        public var quoted: Bool

        public init(_ name: String, _ value: String, quoted: Bool) {
            self.name = name
            self.value = value
            self.quoted = quoted
        }
    }

    public var scheme: String
    public var parameters: [Parameter]

    public init(scheme: String, parameters: [Parameter] = []) {
        self.scheme = scheme
        self.parameters = parameters
    }

    public subscript(_ name: String) -> String? {
        parameters.first { $0.name.caseInsensitiveEquals(name) }?.value
    }

    public var isDigest: Bool { scheme.caseInsensitiveEquals("Digest") }
    public var realm: String? { self["realm"] }
    public var nonce: String? { self["nonce"] }
    public var opaque: String? { self["opaque"] }
    public var username: String? { self["username"] }
    public var uri: String? { self["uri"] }
    public var response: String? { self["response"] }
    public var cnonce: String? { self["cnonce"] }
    public var nonceCount: String? { self["nc"] }
    /// `MD5` when absent (RFC 7616 §3.3).
    public var algorithm: String { self["algorithm"] ?? "MD5" }
    /// A challenge's qop options (`auth`, `auth-int`), or the credentials' chosen qop.
    public var qop: [String] {
        (self["qop"] ?? "").split(separator: ",").map { $0.trimmingCharacters() }.filter { !$0.isEmpty }
    }
    public var stale: Bool { self["stale"]?.caseInsensitiveEquals("true") ?? false }

    /// Appends a parameter. By default it is quoted unless RFC 7616 writes it as a token
    /// (`algorithm`, `stale`, `nc`); pass `quoted` for `qop`, which a challenge quotes and
    /// credentials do not.
    public mutating func add(_ name: String, _ value: String, quoted: Bool? = nil) {
        parameters.append(Parameter(name, value, quoted: quoted ?? !Self.tokenValued.contains(name.lowercased())))
    }

    private static let tokenValued: Set<String> = ["algorithm", "stale", "nc"]

    public var description: String {
        scheme + " " + parameters.map { parameter in
            parameter.name + "=" + (parameter.quoted ? SIPGrammar.quote(parameter.value) : parameter.value)
        }.joined(separator: ", ")
    }

    public static func parse(_ value: String) -> SIPAuthorization? {
        value.withSIPScanner { scanner in
            scanner.skipWhitespace()
            guard let scheme = scanner.token() else { return nil }
            var result = SIPAuthorization(scheme: scheme)
            scanner.skipWhitespace()
            if scanner.isAtEnd { return result }
            repeat {
                scanner.skipWhitespace()
                guard let name = scanner.token(), scanner.consume(UInt8(ascii: "=")) else { return nil }
                if scanner.current == UInt8(ascii: "\"") {
                    guard let quoted = scanner.quotedString() else { return nil }
                    result.parameters.append(Parameter(name, quoted, quoted: true))
                } else {
                    let token = scanner.take { SIPGrammar.isToken($0) || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "=") }
                    guard !token.isEmpty else { return nil }
                    result.parameters.append(Parameter(name, token, quoted: false))
                }
                scanner.skipWhitespace()
            } while scanner.consume(UInt8(ascii: ","))
            return scanner.isAtEnd ? result : nil
        }
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(self).trimmingSIPWhitespace()
    }
}
