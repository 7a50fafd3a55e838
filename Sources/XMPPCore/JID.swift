import Foundation

/// An XMPP address (RFC 7622): `[localpart@]domainpart[/resourcepart]`, validated and normalised
/// when made. Localparts are case-mapped (PRECIS UsernameCaseMapped), domainparts lowercased with
/// a trailing dot removed, resourceparts kept in case (OpaqueString); all are NFC. Each part is
/// 1...1023 bytes (§3.1). Two JIDs are equal when their normalised forms are.
public struct JID: Hashable, Sendable, CustomStringConvertible, LosslessStringConvertible, Comparable {
    public let localpart: String?
    public let domainpart: String
    public let resourcepart: String?

    public init(localpart: String?, domainpart: String, resourcepart: String? = nil) throws(JIDError) {
        self.localpart = try localpart.map { part throws(JIDError) in try JID.normalizeLocalpart(part) }
        self.domainpart = try JID.normalizeDomainpart(domainpart)
        self.resourcepart = try resourcepart.map { part throws(JIDError) in try JID.normalizeResourcepart(part) }
    }

    /// Parses `string` (§3.1: the resource starts at the first `/`, the localpart ends at the
    /// first `@` before it).
    public init(parsing string: String) throws(JIDError) {
        // Split on UTF-8 bytes: '/' and '@' are ASCII, so byte positions are scalar boundaries.
        let utf8 = string.utf8
        let slash = utf8.firstIndex(of: UInt8(ascii: "/"))
        let beforeResource = utf8[..<(slash ?? utf8.endIndex)]
        let at = beforeResource.firstIndex(of: UInt8(ascii: "@"))
        let local = at.map { String(Substring(utf8[..<$0])) }
        let domainStart = at.map { utf8.index(after: $0) } ?? utf8.startIndex
        let domain = String(Substring(utf8[domainStart..<(slash ?? utf8.endIndex)]))
        let resource = slash.map { String(Substring(utf8[utf8.index(after: $0)...])) }
        try self.init(localpart: local, domainpart: domain, resourcepart: resource)
    }

    public init?(_ description: String) {
        guard let jid = try? JID(parsing: description) else { return nil }
        self = jid
    }

    private init(unchecked localpart: String?, _ domainpart: String, _ resourcepart: String?) {
        self.localpart = localpart
        self.domainpart = domainpart
        self.resourcepart = resourcepart
    }

    /// The bare JID (no resource).
    public var bare: JID { JID(unchecked: localpart, domainpart, nil) }
    /// The domain alone (a server or a gateway address).
    public var domain: JID { JID(unchecked: nil, domainpart, nil) }
    public var isBare: Bool { resourcepart == nil }
    public var isDomain: Bool { localpart == nil && resourcepart == nil }

    /// This JID with a different resource.
    public func with(resource: String?) throws(JIDError) -> JID {
        JID(unchecked: localpart, domainpart, try resource.map { r throws(JIDError) in try JID.normalizeResourcepart(r) })
    }

    public var description: String {
        var output = ""
        if let localpart { output += localpart + "@" }
        output += domainpart
        if let resourcepart { output += "/" + resourcepart }
        return output
    }

    public static func < (a: JID, b: JID) -> Bool { a.description < b.description }

    // MARK: - Normalisation (RFC 7622 §3.2–§3.4)

    static let maxPartBytes = 1023

    /// Characters RFC 7622 §3.3.1 forbids in a localpart on top of the PRECIS IdentifierClass.
    private static let forbiddenInLocalpart: Set<Unicode.Scalar> = ["\"", "&", "'", "/", ":", "<", ">", "@"]

    static func normalizeLocalpart(_ part: String) throws(JIDError) -> String {
        if let ascii = try asciiFastPath(part, .localpart, allowed: { byte in
            // IdentifierClass ASCII is 0x21...0x7E; §3.3.1 also forbids " & ' / : < > @.
            byte >= 0x21 && byte <= 0x7E && !JID.forbiddenLocalpartBytes.contains(byte)
        }) {
            return ascii
        }
        let mapped = precomposed(part.lowercased())
        try checkLength(mapped, .localpart)
        for scalar in mapped.unicodeScalars {
            if forbiddenInLocalpart.contains(scalar) { throw .forbiddenCharacter(.localpart, scalar) }
            guard isIdentifierClass(scalar) else { throw .forbiddenCharacter(.localpart, scalar) }
        }
        return mapped
    }

    static func normalizeDomainpart(_ part: String) throws(JIDError) -> String {
        if !part.hasPrefix("["), let ascii = try asciiFastPath(part, .domainpart, allowed: { byte in
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2D || byte == 0x2E || byte == 0x5F
        }, trailingDot: true) {
            // Labels are 1...63 bytes.
            var length = 0
            for byte in ascii.utf8 {
                if byte == 0x2E {
                    if length == 0 { throw .invalidDomain(ascii) }
                    length = 0
                } else {
                    length += 1
                    if length > 63 { throw .invalidDomain(ascii) }
                }
            }
            if length == 0 { throw .invalidDomain(ascii) }
            return ascii
        }
        var domain = precomposed(part.lowercased())
        // §3.2: a trailing label separator is removed before any other processing.
        if domain.hasSuffix(".") { domain.removeLast() }
        try checkLength(domain, .domainpart)
        if domain.hasPrefix("[") {
            // An IPv6 literal (§3.2.1, RFC 3986 IP-literal).
            guard domain.hasSuffix("]"), domain.dropFirst().dropLast().allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw .invalidDomain(domain)
            }
            return domain
        }
        for label in domain.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63 else { throw .invalidDomain(domain) }
            for scalar in label.unicodeScalars {
                if scalar.isASCII {
                    guard scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "-" || scalar == "_" else {
                        throw .forbiddenCharacter(.domainpart, scalar)
                    }
                } else {
                    guard isLetterDigitOrMark(scalar) else { throw .forbiddenCharacter(.domainpart, scalar) }
                }
            }
        }
        return domain
    }

    static func normalizeResourcepart(_ part: String) throws(JIDError) -> String {
        if let ascii = try asciiFastPath(part, .resourcepart, allowed: { byte in byte >= 0x20 && byte != 0x7F }, lowercase: false) {
            return ascii
        }
        // OpaqueString: non-ASCII spaces map to SPACE, then NFC; controls are disallowed.
        var mapped = ""
        mapped.reserveCapacity(part.utf8.count)
        for scalar in part.unicodeScalars {
            if !scalar.isASCII, scalar.properties.generalCategory == .spaceSeparator {
                mapped.unicodeScalars.append(" ")
            } else {
                mapped.unicodeScalars.append(scalar)
            }
        }
        mapped = precomposed(mapped)
        try checkLength(mapped, .resourcepart)
        for scalar in mapped.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control, .unassigned, .surrogate, .privateUse, .lineSeparator, .paragraphSeparator, .format:
                throw .forbiddenCharacter(.resourcepart, scalar)
            default: continue
            }
        }
        return mapped
    }

    private static let forbiddenLocalpartBytes: Set<UInt8> = Set("\"&'/:<>@".utf8)

    /// Most addresses are ASCII: check them byte by byte, lowercasing only when needed, and
    /// skip the Unicode property lookups of the general path. `nil` means "not all ASCII".
    private static func asciiFastPath(
        _ part: String, _ which: JIDError.Part, allowed: (UInt8) -> Bool, lowercase: Bool = true, trailingDot: Bool = false
    ) throws(JIDError) -> String? {
        var count = 0
        var hasUppercase = false
        for byte in part.utf8 {
            if byte >= 0x80 { return nil }
            count += 1
        }
        var result = part
        if trailingDot, result.utf8.last == 0x2E {
            result.removeLast()
            count -= 1
        }
        if count == 0 { throw .emptyPart(which) }
        if count > maxPartBytes { throw .tooLong(which, count) }
        for byte in result.utf8 {
            guard allowed(byte) else { throw .forbiddenCharacter(which, Unicode.Scalar(byte)) }
            if byte >= 0x41 && byte <= 0x5A { hasUppercase = true }
        }
        if lowercase, hasUppercase {
            result = String(decoding: result.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
        }
        return result
    }

    private static func checkLength(_ part: String, _ which: JIDError.Part) throws(JIDError) {
        let count = part.utf8.count
        if count == 0 { throw .emptyPart(which) }
        if count > maxPartBytes { throw .tooLong(which, count) }
    }

    private static func precomposed(_ string: String) -> String {
        string.utf8.allSatisfy { $0 < 0x80 } ? string : string.precomposedStringWithCanonicalMapping
    }

    /// PRECIS IdentifierClass (RFC 8264 §4.2): ASCII printable characters, and letters and digits
    /// beyond ASCII; no spaces, controls or symbols.
    private static func isIdentifierClass(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII { return scalar.value >= 0x21 && scalar.value <= 0x7E }
        return isLetterDigitOrMark(scalar)
    }

    private static func isLetterDigitOrMark(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .lowercaseLetter, .uppercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
            .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .letterNumber, .otherNumber:
            return true
        default:
            return false
        }
    }
}

/// Why a string is not a valid JID. Answered with `jid-malformed` (RFC 6120 §8.3.3.8).
public enum JIDError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Part: String, Hashable, Sendable { case localpart, domainpart, resourcepart }
    case emptyPart(Part)
    case tooLong(Part, Int)
    case forbiddenCharacter(Part, Unicode.Scalar)
    case invalidDomain(String)

    public var description: String {
        switch self {
        case .emptyPart(let part): "empty \(part.rawValue)"
        case .tooLong(let part, let bytes): "\(part.rawValue) of \(bytes) bytes exceeds 1023"
        case .forbiddenCharacter(let part, let scalar):
            "U+\(String(scalar.value, radix: 16, uppercase: true)) is not allowed in a \(part.rawValue)"
        case .invalidDomain(let domain): "invalid domainpart \(domain)"
        }
    }
}
