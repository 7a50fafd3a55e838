import Crypto

/// RFC 7616 digest algorithms as SIP uses them (RFC 3261 §22.4, RFC 8760).
public enum DigestAlgorithm: String, CaseIterable, Hashable, Sendable {
    // Order of preference: a challenge offers SHA-256 first (RFC 8760 §2.4), MD5 for old UAs.
    case sha256 = "SHA-256"
    case md5 = "MD5"

    public init?(token: String) {
        guard let algorithm = Self.allCases.first(where: { $0.rawValue.caseInsensitiveEquals(token) }) else { return nil }
        self = algorithm
    }

    /// The lowercase hex digest of `text`, the H() of RFC 7616 §3.4.
    public func hash(_ text: String) -> String {
        switch self {
        case .md5: Self.hex(Insecure.MD5.hash(data: Array(text.utf8)))
        case .sha256: Self.hex(SHA256.hash(data: Array(text.utf8)))
        }
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// HA1 = H(username:realm:password) (RFC 7616 §3.4.2). The store keeps these, never the
    /// password.
    public func ha1(username: String, realm: String, password: String) -> String {
        hash("\(username):\(realm):\(password)")
    }
}

/// Digest authentication for one realm (RFC 3261 §22, RFC 7616 with `qop=auth`).
///
/// Nonces carry their issue time and an HMAC over it, so a nonce is checked without keeping
/// state, and one that has expired earns `stale=true` (the UA retries without asking the user).
/// The time is the wall clock in seconds, not the process's uptime (which would tell anyone how
/// long the gateway has run), and the HMAC key is the caller's: a key kept across restarts
/// keeps nonces valid across them, so a request retransmitted after a crash is still accepted.
/// Replays are refused by remembering, per nonce still valid, the highest nonce-count seen
/// (RFC 7616 §3.4.5); a nonce used without qop may be used once. That memory is bounded: past
/// `maxTrackedNonces` the oldest entries are dropped, and every nonce issued at or before the
/// newest dropped one counts as stale, so a dropped nonce can never be replayed.
public struct DigestAuthenticator: Sendable {
    public enum Verdict: Hashable, Sendable {
        case authenticated(username: String)
        /// No (usable) credentials for this realm: challenge.
        case missing
        /// The nonce expired or is unknown but was ours: challenge again with `stale=true`.
        case stale
        /// Wrong password, unknown user, a replayed nonce-count or a mismatched URI. The
        /// reason is for the log only: on the wire every rejection looks the same, so that
        /// user names cannot be probed.
        case rejected(reason: String)
        /// A nonce this realm never issued (a bad HMAC): challenged afresh, and worth a log
        /// line, since no honest UA sends one.
        case forged
    }

    public let realm: String
    public let nonceLifetime: Duration
    /// Offered in this order. Some old UAs take the first challenge even when they cannot
    /// compute it (RFC 8760 §2.4 says they should skip it), so an operator may offer MD5 only.
    public let algorithms: [DigestAlgorithm]
    /// HMAC-SHA256 with the key's pads already hashed: each nonce copies it (a value) and
    /// hashes only its own text. Setting up the key cost more than the MAC, twice per IM.
    private let keyedMAC: KeyedMAC
    /// nonce → highest nc accepted (0 for a qop-less use). Pruned as nonces expire.
    private var counts: [String: UInt32] = [:]
    /// The nonces in `counts` in the order they were first used, for dropping the oldest.
    private var order: [(nonce: String, issued: UInt64)] = []
    private var orderHead = 0
    /// Nonces issued at or before this millisecond and no longer in `counts` are stale.
    private var floor: UInt64 = 0
    private var lastPrune = SIPInstant.origin
    /// The most nonces whose counts are remembered (about 100 bytes each).
    public let maxTrackedNonces: Int

    /// `secret` keys the nonces' HMAC: pass the same one after a restart to keep issued nonces
    /// valid. `now` in the other methods must be the wall clock (time since the Unix epoch).
    public init(realm: String, nonceLifetime: Duration = .seconds(300), algorithms: [DigestAlgorithm] = DigestAlgorithm.allCases,
                secret: [UInt8]? = nil, maxTrackedNonces: Int = 200_000) {
        self.realm = realm
        self.nonceLifetime = nonceLifetime
        self.algorithms = algorithms
        self.keyedMAC = KeyedMAC(HMAC<SHA256>(key: secret.map { SymmetricKey(data: $0) } ?? SymmetricKey(size: .bits256)))
        self.realmNeedsNoEscape = !realm.utf8.contains { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
        self.maxTrackedNonces = maxTrackedNonces
    }

    /// Nonces whose counts are remembered now.
    public var trackedNonces: Int { counts.count }

    /// `WWW-Authenticate` (401) or `Proxy-Authenticate` (407) values: one per algorithm,
    /// SHA-256 first, sharing one nonce.
    /// `offering` narrows the algorithms for one client (all of them must be accepted here).
    public func challenges(now: SIPInstant, stale: Bool = false, offering: [DigestAlgorithm]? = nil) -> [SIPAuthorization] {
        let nonce = makeNonce(now: now)
        return (offering ?? algorithms).map { algorithm in
            var challenge = SIPAuthorization(scheme: "Digest")
            challenge.add("realm", realm)
            challenge.add("nonce", nonce)
            challenge.add("algorithm", algorithm.rawValue)
            challenge.add("qop", "auth", quoted: true)
            if stale { challenge.add("stale", "true") }
            return challenge
        }
    }

    /// `challenges` as header values, written out directly: in embedded mode every IM from SIP
    /// is challenged once, and building the parameters and quoting them cost more than the
    /// nonce. The text is what `SIPAuthorization.description` writes for the same challenge.
    public func challengeValues(now: SIPInstant, stale: Bool = false, offering: [DigestAlgorithm]? = nil) -> [String] {
        guard realmNeedsNoEscape else { return challenges(now: now, stale: stale, offering: offering).map(\.description) }
        let nonce = makeNonce(now: now)
        let head = "Digest realm=\"" + realm + "\", nonce=\"" + nonce + "\", algorithm="
        let tail = stale ? ", qop=\"auth\", stale=true" : ", qop=\"auth\""
        return (offering ?? algorithms).map { head + $0.rawValue + tail }
    }

    private let realmNeedsNoEscape: Bool

    private func makeNonce(now: SIPInstant) -> String {
        // Milliseconds, so that the floor (see the type's comment) never covers a nonce being issued now.
        let issued = String(Self.milliseconds(now), radix: 16)
        var random = IdentifierRandom()
        let salt = String(UInt64.random(in: 0 ... .max, using: &random), radix: 16)
        return issued + "." + salt + "." + signature(issued + "." + salt)
    }

    private func signature(_ text: String) -> String {
        var mac = keyedMAC.value
        mac.update(data: Array(text.utf8))
        return DigestAlgorithm.hex(mac.finalize().prefix(16))
    }

    /// Checks a request's credentials for this realm against the user's stored HA1s. `ha1`
    /// returns nil for an unknown user (which is `rejected`, like a wrong password, so that
    /// user names cannot be probed).
    public mutating func verify(_ request: SIPRequest, header: SIPHeaderName, now: SIPInstant,
                                ha1: (_ username: String, DigestAlgorithm) -> String?) -> Verdict {
        prune(now: now)
        let candidates = request.headers.values(header).compactMap(SIPAuthorization.parse)
        guard let credentials = candidates.first(where: { $0.isDigest && $0.realm == realm }) else { return .missing }
        guard let username = credentials.username, let nonce = credentials.nonce,
              let response = credentials.response, let uri = credentials.uri else {
            return .rejected(reason: "incomplete credentials")
        }
        guard let algorithm = DigestAlgorithm(token: credentials.algorithm), algorithms.contains(algorithm) else {
            return .rejected(reason: "unsupported algorithm \(credentials.algorithm)")
        }
        // The nonce must be ours and fresh. One already in `counts` passed this check when it
        // was first used (entries are only added after it), so the HMAC is not run again for
        // every request of a busy sender.
        let parts = nonce.split(separator: ".", omittingEmptySubsequences: false)
        let known = counts[nonce] != nil
        guard parts.count == 3, known || signature(parts[0] + "." + parts[1]) == parts[2],
              let issued = UInt64(parts[0], radix: 16) else {
            return .forged
        }
        if now.sinceOrigin - .milliseconds(Int64(clamping: issued)) > nonceLifetime { return .stale }
        // Its count may have been dropped to bound memory: it cannot be told from a replay.
        if !known, issued <= floor { return .stale }
        // RFC 3261 §22.4 / RFC 7616 §3.4.6: the digest-uri must name the Request-URI.
        guard let named = SIPURI.parse(uri), named.user == request.uri.user,
              named.host.caseInsensitiveEquals(request.uri.host) else {
            return .rejected(reason: "digest uri does not match the Request-URI")
        }
        guard let ha1 = ha1(username, algorithm) else { return .rejected(reason: "unknown user") }
        let ha2 = algorithm.hash("\(request.method.rawValue):\(uri)")
        let qop = credentials.qop.first
        let expected: String
        var count: UInt32 = 0
        if let qop {
            guard qop == "auth", let cnonce = credentials.cnonce, let nc = credentials.nonceCount,
                  let parsed = UInt32(nc, radix: 16) else {
                return .rejected(reason: "unsupported qop or missing cnonce/nc")
            }
            count = parsed
            expected = algorithm.hash("\(ha1):\(nonce):\(nc):\(cnonce):\(qop):\(ha2)")
        } else {
            expected = algorithm.hash("\(ha1):\(nonce):\(ha2)")
        }
        guard constantTimeEquals(expected, response.lowercased()) else { return .rejected(reason: "wrong credentials") }
        // Replay protection: each use of a nonce must raise its count.
        if let seen = counts[nonce], qop == nil || count <= seen {
            return .rejected(reason: "replayed nonce count")
        }
        if counts.updateValue(count, forKey: nonce) == nil {
            order.append((nonce, issued))
            if counts.count > maxTrackedNonces { dropOldest() }
        }
        return .authenticated(username: username)
    }

    static func milliseconds(_ instant: SIPInstant) -> UInt64 {
        let (seconds, attoseconds) = instant.sinceOrigin.components
        return UInt64(max(0, seconds)) * 1000 + UInt64(max(0, attoseconds)) / 1_000_000_000_000_000
    }

    /// Drops the oldest tenth of the remembered counts and raises the floor past them.
    private mutating func dropOldest() {
        let target = maxTrackedNonces - max(1, maxTrackedNonces / 10)
        while counts.count > target, orderHead < order.count {
            let (nonce, issued) = order[orderHead]
            orderHead += 1
            if counts.removeValue(forKey: nonce) != nil { floor = max(floor, issued) }
        }
        compactOrder()
    }

    private mutating func compactOrder() {
        if orderHead > 4096, orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }

    private mutating func prune(now: SIPInstant) {
        guard now - lastPrune > nonceLifetime else { return }
        lastPrune = now
        counts = counts.filter { nonce, _ in
            guard let issued = nonce.split(separator: ".").first.flatMap({ UInt64($0, radix: 16) }) else { return false }
            return now.sinceOrigin - .milliseconds(Int64(clamping: issued)) <= nonceLifetime
        }
        order = order[orderHead...].filter { counts[$0.nonce] != nil }
        orderHead = 0
    }

    private func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }
}

/// A UA's side of digest (RFC 7616 §3.4), for requests the gateway itself sends to a peer that
/// challenges it, and for tests.
public enum DigestClient {
    public static func credentials(for challenge: SIPAuthorization, method: SIPMethod, uri: String,
                                   username: String, password: String, nonceCount: UInt32 = 1,
                                   cnonce: String = String(UInt64.random(in: 1 ... .max), radix: 16)) -> SIPAuthorization? {
        guard let realm = challenge.realm, let algorithm = DigestAlgorithm(token: challenge.algorithm) else { return nil }
        return credentials(for: challenge, method: method, uri: uri, username: username,
                           ha1: algorithm.ha1(username: username, realm: realm, password: password),
                           nonceCount: nonceCount, cnonce: cnonce)
    }

    /// The same with the HA1 computed once (a client answering many requests with one nonce).
    public static func credentials(for challenge: SIPAuthorization, method: SIPMethod, uri: String,
                                   username: String, ha1: String, nonceCount: UInt32 = 1,
                                   cnonce: String = String(UInt64.random(in: 1 ... .max), radix: 16)) -> SIPAuthorization? {
        guard let realm = challenge.realm, let nonce = challenge.nonce,
              let algorithm = DigestAlgorithm(token: challenge.algorithm) else { return nil }
        let ha2 = algorithm.hash("\(method.rawValue):\(uri)")
        var credentials = SIPAuthorization(scheme: "Digest")
        credentials.add("username", username)
        credentials.add("realm", realm)
        credentials.add("nonce", nonce)
        credentials.add("uri", uri)
        credentials.add("algorithm", algorithm.rawValue)
        if challenge.qop.contains("auth") {
            let nc = String(nonceCount, radix: 16)
            let padded = String(repeating: "0", count: max(0, 8 - nc.count)) + nc
            credentials.add("response", algorithm.hash("\(ha1):\(nonce):\(padded):\(cnonce):auth:\(ha2)"))
            credentials.add("qop", "auth", quoted: false)
            credentials.add("nc", padded)
            credentials.add("cnonce", cnonce)
        } else {
            credentials.add("response", algorithm.hash("\(ha1):\(nonce):\(ha2)"))
        }
        if let opaque = challenge.opaque { credentials.add("opaque", opaque) }
        return credentials
    }
}

/// An HMAC state that is only ever copied, never mutated in place, so sharing it is safe;
/// swift-crypto does not declare `HMAC` Sendable.
private struct KeyedMAC: @unchecked Sendable {
    let value: HMAC<SHA256>
    init(_ value: HMAC<SHA256>) { self.value = value }
}
