import Foundation
import SIPCore
import Testing

@Suite("Digest authentication (RFC 7616, RFC 3261 §22)")
struct DigestTests {
    /// RFC 7616 §3.9.1: the worked example, with its MD5 and SHA-256 responses.
    @Test("the client side reproduces RFC 7616 §3.9.1's responses for MD5 and SHA-256", arguments: [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ])
    func rfc7616Vectors(algorithm: String, expected: String) throws {
        var challenge = SIPAuthorization(scheme: "Digest")
        challenge.add("realm", "http-auth@example.org")
        challenge.add("qop", "auth, auth-int", quoted: true)
        challenge.add("algorithm", algorithm)
        challenge.add("nonce", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v")
        let credentials = try #require(DigestClient.credentials(
            for: challenge, method: SIPMethod("GET"), uri: "/dir/index.html", username: "Mufasa",
            password: "Circle of Life", nonceCount: 1, cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"))
        #expect(credentials.response == expected)
        #expect(credentials.nonceCount == "00000001")
    }

    static let password = "wonderland"

    static func register(_ authorization: SIPAuthorization?, uri: String = "sip:sip.test") -> SIPRequest {
        var request = SIPRequest(method: .register, uri: SIPURI(uri)!)
        request.headers.add(.via, "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1")
        request.headers.add(.to, "<sip:alice@sip.test>")
        if let authorization { request.headers.add(.authorization, authorization.description) }
        return request
    }

    static func ha1(_ user: String, _ algorithm: DigestAlgorithm) -> String? {
        user == "alice" ? algorithm.ha1(username: "alice", realm: "sip.test", password: password) : nil
    }

    static func answer(_ challenge: SIPAuthorization, user: String = "alice", password: String = password,
                       nc: UInt32 = 1, uri: String = "sip:sip.test") -> SIPAuthorization {
        DigestClient.credentials(for: challenge, method: .register, uri: uri, username: user, password: password, nonceCount: nc)!
    }

    @Test("a challenge offers SHA-256 first, then MD5, with one nonce and qop=auth; both answers authenticate")
    func challengeAndAnswer() throws {
        var authenticator = DigestAuthenticator(realm: "sip.test")
        let now = SIPInstant(.seconds(10))
        let challenges = authenticator.challenges(now: now)
        #expect(challenges.map(\.algorithm) == ["SHA-256", "MD5"])
        #expect(Set(challenges.map(\.nonce)).count == 1)
        #expect(challenges.allSatisfy { $0.qop == ["auth"] && $0.realm == "sip.test" })
        // Both answers use the one nonce, so the second must count up (nc=2) not to be a replay.
        for (count, challenge) in challenges.enumerated() {
            let answer = Self.answer(challenge, nc: UInt32(count + 1))
            #expect(answer.algorithm == challenge.algorithm)
            let verdict = authenticator.verify(Self.register(answer), header: .authorization, now: now, ha1: Self.ha1)
            #expect(verdict == .authenticated(username: "alice"))
        }
    }

    @Test("the challenge header values written directly are what the typed challenges write, stale or not, and their nonce authenticates", arguments: [false, true])
    func challengeValuesMatchDescription(stale: Bool) throws {
        var authenticator = DigestAuthenticator(realm: "sip.test")
        let now = SIPInstant(.seconds(10))
        let values = authenticator.challengeValues(now: now, stale: stale)
        let typed = authenticator.challenges(now: now, stale: stale)
        #expect(values.count == typed.count)
        for (value, challenge) in zip(values, typed) {
            // The nonces differ (a fresh salt each time); everything else is written alike.
            let parsed = try #require(SIPAuthorization.parse(value))
            let nonce = try #require(parsed.nonce)
            #expect(value == challenge.description.replacingOccurrences(of: challenge.nonce ?? "?", with: nonce))
            #expect(parsed.description == value)
        }
        let first = try #require(SIPAuthorization.parse(values[0]))
        let verdict = authenticator.verify(Self.register(Self.answer(first, nc: 1)), header: .authorization, now: now, ha1: Self.ha1)
        #expect(verdict == .authenticated(username: "alice"))
    }

    @Test("a replayed nonce-count is refused; a higher one on the same nonce is accepted")
    func replay() {
        var authenticator = DigestAuthenticator(realm: "sip.test")
        let now = SIPInstant(.seconds(1))
        let challenge = authenticator.challenges(now: now)[0]
        let first = Self.register(Self.answer(challenge, nc: 1))
        #expect(authenticator.verify(first, header: .authorization, now: now, ha1: Self.ha1) == .authenticated(username: "alice"))
        #expect(authenticator.verify(first, header: .authorization, now: now, ha1: Self.ha1) == .rejected(reason: "replayed nonce count"))
        let second = Self.register(Self.answer(challenge, nc: 2))
        #expect(authenticator.verify(second, header: .authorization, now: now, ha1: Self.ha1) == .authenticated(username: "alice"))
    }

    @Test("an expired nonce is stale (the UA retries silently), and so is one this server never signed")
    func staleness() {
        var authenticator = DigestAuthenticator(realm: "sip.test", nonceLifetime: .seconds(300))
        let challenge = authenticator.challenges(now: SIPInstant(.seconds(5)))[0]
        let request = Self.register(Self.answer(challenge))
        #expect(authenticator.verify(request, header: .authorization, now: SIPInstant(.seconds(306)), ha1: Self.ha1) == .stale)
        var other = DigestAuthenticator(realm: "sip.test")
        #expect(other.verify(request, header: .authorization, now: SIPInstant(.seconds(6)), ha1: Self.ha1) == .forged)
    }

    @Test("with the same secret, a nonce issued before a restart still authenticates after it: a retransmission after a crash is not made stale")
    func nonceSurvivesRestart() {
        let secret = Array(repeating: UInt8(7), count: 32)
        let wallClock = SIPInstant(.seconds(1_796_000_000))
        var before = DigestAuthenticator(realm: "sip.test", secret: secret)
        let challenge = before.challenges(now: wallClock)[0]
        let request = Self.register(Self.answer(challenge))
        #expect(before.verify(request, header: .authorization, now: wallClock, ha1: Self.ha1) == .authenticated(username: "alice"))
        var after = DigestAuthenticator(realm: "sip.test", secret: secret)
        #expect(after.verify(request, header: .authorization, now: wallClock + .seconds(2), ha1: Self.ha1) == .authenticated(username: "alice"))
        // The nonce carries the time it was given (the wall clock), not the process's uptime.
        #expect(challenge.nonce?.hasPrefix(String(UInt64(1_796_000_000_000), radix: 16) + ".") == true)
    }

    @Test("a fresh nonce per request cannot grow memory: counts are bounded, and a nonce whose count was dropped is stale, never replayable")
    func boundedNonces() {
        var authenticator = DigestAuthenticator(realm: "sip.test", maxTrackedNonces: 100)
        var requests: [SIPRequest] = []
        for index in 0..<1_000 {
            let now = SIPInstant(.milliseconds(1_000 + index))
            let request = Self.register(Self.answer(authenticator.challenges(now: now)[0]))
            #expect(authenticator.verify(request, header: .authorization, now: now, ha1: Self.ha1) == .authenticated(username: "alice"))
            requests.append(request)
        }
        #expect(authenticator.trackedNonces <= 100)
        let later = SIPInstant(.milliseconds(2_100))
        // The oldest one's count is gone: a replay of it is stale (re-challenged), not accepted.
        #expect(authenticator.verify(requests[0], header: .authorization, now: later, ha1: Self.ha1) == .stale)
        // The newest one is still remembered: a replay is refused as such.
        #expect(authenticator.verify(requests[999], header: .authorization, now: later, ha1: Self.ha1) == .rejected(reason: "replayed nonce count"))
        // A nonce issued now still works: the floor never covers a new challenge.
        let fresh = Self.register(Self.answer(authenticator.challenges(now: later)[0]))
        #expect(authenticator.verify(fresh, header: .authorization, now: later, ha1: Self.ha1) == .authenticated(username: "alice"))
    }

    @Test("a wrong password, an unknown user and a digest-uri naming another resource are rejected alike")
    func rejections() {
        var authenticator = DigestAuthenticator(realm: "sip.test")
        let now = SIPInstant(.seconds(1))
        let challenge = authenticator.challenges(now: now)[1]
        let wrong = Self.register(Self.answer(challenge, password: "guess"))
        #expect(authenticator.verify(wrong, header: .authorization, now: now, ha1: Self.ha1) == .rejected(reason: "wrong credentials"))
        let unknown = Self.register(Self.answer(challenge, user: "mallory"))
        #expect(authenticator.verify(unknown, header: .authorization, now: now, ha1: Self.ha1) == .rejected(reason: "unknown user"))
        let elsewhere = Self.register(Self.answer(challenge, uri: "sip:other.test"))
        #expect(authenticator.verify(elsewhere, header: .authorization, now: now, ha1: Self.ha1)
            == .rejected(reason: "digest uri does not match the Request-URI"))
        #expect(authenticator.verify(Self.register(nil), header: .authorization, now: now, ha1: Self.ha1) == .missing)
    }
}
