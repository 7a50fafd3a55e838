import Foundation
import NIOCore
import NIOPosix
import StoxTesting
import Testing
import XMLCore
import XMPPCore
import StoxDNS
@testable import XMPPFederation


struct DNSMessageTests {
    @Test("an SRV answer with a compressed owner name parses")
    func parse() throws {
        let query = DNSMessage.query(id: 0x1234, name: "_xmpp-server._tcp.capulet.lit.", type: DNSMessage.typeSRV)
        #expect(Array(query[12...]).starts(with: [12] + Array("_xmpp-server".utf8) + [4] + Array("_tcp".utf8)))
        var response = [UInt8](query)
        response[2] = 0x81
        response[3] = 0x80
        response[7] = 1
        response += [0xC0, 12, 0, 33, 0, 1, 0, 0, 0, 60, 0, 13, 0, 5, 0, 10, 0x14, 0x95]
        response += [4] + Array("xmpp".utf8) + [0xC0, 30]  // "xmpp." + pointer to "capulet.lit" in the question
        let records = try DNSMessage.srvAnswers(response, id: 0x1234)
        #expect(records == [SRVRecord(priority: 5, weight: 10, port: 5269, target: "xmpp.capulet.lit")])
        #expect(throws: DNSMessage.ParseError.notAnAnswer) { try DNSMessage.srvAnswers(response, id: 0x9999) }
        var nxdomain = [UInt8](query)
        nxdomain[2] = 0x81
        nxdomain[3] = 0x83
        #expect(try DNSMessage.srvAnswers(nxdomain, id: 0x1234) == [])
    }

    @Test("a compression loop or truncation is refused, not followed forever")
    func hostile() {
        var loop: [UInt8] = [0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]
        loop += [0xC0, 12, 0, 33, 0, 1]  // a question whose name points at itself
        #expect(throws: DNSMessage.ParseError.self) { try DNSMessage.srvAnswers(loop, id: 1) }
        #expect(throws: DNSMessage.ParseError.self) { try DNSMessage.srvAnswers([0, 1, 0x81], id: 1) }
    }

    @Test("records are ordered by priority, then weighted (RFC 2782)")
    func ordering() {
        let records = [
            SRVRecord(priority: 20, weight: 0, port: 1, target: "c"), SRVRecord(priority: 10, weight: 1, port: 2, target: "a"),
            SRVRecord(priority: 10, weight: 99, port: 3, target: "b"),
        ]
        // random picks the top of the range: the heaviest record comes first.
        #expect(SRVRecord.ordered(records) { $0 }.map(\.target) == ["b", "a", "c"])
        // random picks 0: the zero-weight-first order is kept.
        #expect(SRVRecord.ordered(records) { _ in 0 }.map(\.target) == ["a", "b", "c"])
    }
}

struct CandidateOrderTests {
    @Test("direct TLS and STARTTLS records merge by priority, direct TLS first on ties (XEP-0368 §3)")
    func merge() {
        let tls = [SRVRecord(priority: 10, weight: 0, port: 5223, target: "tls.example")]
        let plain = [SRVRecord(priority: 5, weight: 0, port: 5269, target: "a.example"), SRVRecord(priority: 10, weight: 0, port: 5269, target: "b.example")]
        let merged = S2SService.merge(domain: "example", directTLS: tls, startTLS: plain) { _ in 0 }
        #expect(merged.map(\.host) == ["a.example", "tls.example", "b.example"])
        #expect(merged.map(\.directTLS) == [false, true, false])
    }

    @Test("no records fall back to the domain on 5269; a lone '.' refuses (RFC 6120 §3.2)")
    func fallback() {
        #expect(S2SService.merge(domain: "example", directTLS: [], startTLS: []) { _ in 0 }.map(\.port) == [5269])
        let none = [SRVRecord(priority: 0, weight: 0, port: 0, target: "")]
        #expect(S2SService.merge(domain: "example", directTLS: [], startTLS: none) { _ in 0 }.isEmpty)
        #expect(S2SService.merge(domain: "example", directTLS: none, startTLS: none) { _ in 0 }.isEmpty)
    }
}

@Suite(.serialized)
struct SRVDiscoveryTests {
    static func service(_ domain: String, dns: Int, inbox: LoopbackFederationTests.Inbox) async throws -> (S2SService, Int) {
        var configuration = S2SConfiguration(servedDomains: [domain], dialbackSecret: "s-\(domain)",
                                             defaultPolicy: PeerPolicy(tls: .optional, requireValidCertificate: false), listenPort: 0)
        configuration.dnsServer = (host: "127.0.0.1", port: dns)
        let service = S2SService(configuration: configuration, eventLoop: LoopbackFederationTests.group.next(), onStanza: { inbox.add($0) })
        return (service, try await service.start().get())
    }

    @Test("a peer is found through _xmpp-server._tcp SRV, skipping a dead first target (RFC 6120 §3.2)")
    func srv() async throws {
        let inboxA = LoopbackFederationTests.Inbox(), inboxB = LoopbackFederationTests.Inbox()
        // b first, to learn its port; a dead port (closed listener) is tried first.
        let (b, bPort) = try await Self.service("capulet.test", dns: 1, inbox: inboxB)
        let dead = try await ServerBootstrap(group: LoopbackFederationTests.group).bind(host: "127.0.0.1", port: 0).get()
        let deadPort = dead.localAddress!.port!
        try await dead.close()
        let dns = FakeDNS(["_xmpp-server._tcp.capulet.test.": [
            SRVRecord(priority: 1, weight: 0, port: UInt16(deadPort), target: "127.0.0.1"),
            SRVRecord(priority: 2, weight: 0, port: UInt16(bPort), target: "127.0.0.1"),
        ]])
        let dnsPort = try await dns.start(on: LoopbackFederationTests.group)
        let (a, aPort) = try await Self.service("sip.test", dns: dnsPort, inbox: inboxA)
        try await b.addRoute("sip.test", host: "127.0.0.1", port: aPort).get()
        defer {
            _ = a.shutdown()
            _ = b.shutdown()
            _ = dns.channel?.close()
        }
        a.send(LoopbackFederationTests.message(from: "romeo@sip.test", to: "juliet@capulet.test", "found by SRV"))
        #expect(await inboxB.wait { $0.firstChild("body")?.text == "found by SRV" } != nil)
    }

    @Test("direct TLS found through _xmpps-server._tcp, then SASL EXTERNAL inside it (XEP-0368)")
    func directTLS() async throws {
        let pki = try TestPKI()
        let (aCert, aKey) = try pki.leaf("sip", dnsNames: ["sip.test"])
        let (bCert, bKey) = try pki.leaf("capulet", dnsNames: ["capulet.test"])
        let events = LinkLivenessTests.Events()
        let inboxB = LoopbackFederationTests.Inbox()
        var bConfiguration = S2SConfiguration(servedDomains: ["capulet.test"], tls: .init(certificateChainPath: bCert, privateKeyPath: bKey),
                                              trustedCAPath: pki.path("ca.crt"), dialbackSecret: "b", listenPort: 0)
        bConfiguration.directTLSPort = 0
        let b = S2SService(configuration: bConfiguration, eventLoop: LoopbackFederationTests.group.next(), onStanza: { inboxB.add($0) })
        _ = try await b.start().get()
        let directPort = try #require(try await b.directTLSListenerPort.get())
        let dns = FakeDNS([
            "_xmpps-server._tcp.capulet.test.": [SRVRecord(priority: 0, weight: 0, port: UInt16(directPort), target: "127.0.0.1")],
            "_xmpp-server._tcp.capulet.test.": [SRVRecord(priority: 0, weight: 0, port: 0, target: "")],
        ])
        let dnsPort = try await dns.start(on: LoopbackFederationTests.group)
        var aConfiguration = S2SConfiguration(servedDomains: ["sip.test"], tls: .init(certificateChainPath: aCert, privateKeyPath: aKey),
                                              trustedCAPath: pki.path("ca.crt"), dialbackSecret: "a", listenPort: 0)
        aConfiguration.dnsServer = (host: "127.0.0.1", port: dnsPort)
        let a = S2SService(configuration: aConfiguration, eventLoop: LoopbackFederationTests.group.next(), onStanza: { _ in }, onEvent: { events.add($0) })
        _ = try await a.start().get()
        defer {
            _ = a.shutdown()
            _ = b.shutdown()
            _ = dns.channel?.close()
        }
        a.send(LoopbackFederationTests.message(from: "romeo@sip.test", to: "juliet@capulet.test", "straight into TLS"))
        #expect(await inboxB.wait { $0.firstChild("body")?.text == "straight into TLS" } != nil, "\(events.all)")
        #expect(events.all.contains(.outboundUp(local: "sip.test", remote: "capulet.test", .saslExternal)))
    }

    @Test("each served domain presents its own certificate: by the stream's `to` with STARTTLS, by SNI with direct TLS")
    func certificatePerDomain() async throws {
        let pki = try TestPKI()
        let (aCert, aKey) = try pki.leaf("sip", dnsNames: ["sip.test"])
        let (capuletCert, capuletKey) = try pki.leaf("capulet", dnsNames: ["capulet.test"])
        let (veronaCert, veronaKey) = try pki.leaf("verona", dnsNames: ["verona.test"])
        let inboxB = LoopbackFederationTests.Inbox()
        var bConfiguration = S2SConfiguration(servedDomains: ["capulet.test", "verona.test"], trustedCAPath: pki.path("ca.crt"),
                                              dialbackSecret: "b", listenPort: 0)
        bConfiguration.certificates = [
            "capulet.test": .init(certificateChainPath: capuletCert, privateKeyPath: capuletKey),
            "verona.test": .init(certificateChainPath: veronaCert, privateKeyPath: veronaKey),
        ]
        bConfiguration.directTLSPort = 0
        let b = S2SService(configuration: bConfiguration, eventLoop: LoopbackFederationTests.group.next(), onStanza: { inboxB.add($0) })
        let bPort = try await b.start().get()
        let directPort = try #require(try await b.directTLSListenerPort.get())
        let dns = FakeDNS([
            "_xmpps-server._tcp.verona.test.": [SRVRecord(priority: 0, weight: 0, port: UInt16(directPort), target: "127.0.0.1")],
            "_xmpp-server._tcp.verona.test.": [SRVRecord(priority: 0, weight: 0, port: 0, target: "")],
        ])
        let dnsPort = try await dns.start(on: LoopbackFederationTests.group)
        var aConfiguration = S2SConfiguration(servedDomains: ["sip.test"], tls: .init(certificateChainPath: aCert, privateKeyPath: aKey),
                                              trustedCAPath: pki.path("ca.crt"), dialbackSecret: "a",
                                              routes: ["capulet.test": (host: "127.0.0.1", port: bPort)], listenPort: 0)
        aConfiguration.dnsServer = (host: "127.0.0.1", port: dnsPort)
        let a = S2SService(configuration: aConfiguration, eventLoop: LoopbackFederationTests.group.next(), onStanza: { _ in })
        _ = try await a.start().get()
        defer {
            _ = a.shutdown()
            _ = b.shutdown()
            _ = dns.channel?.close()
        }
        a.send(LoopbackFederationTests.message(from: "romeo@sip.test", to: "juliet@capulet.test", "to capulet over STARTTLS"))
        a.send(LoopbackFederationTests.message(from: "romeo@sip.test", to: "mercutio@verona.test", "to verona over direct TLS"))
        #expect(await inboxB.wait { $0.firstChild("body")?.text == "to capulet over STARTTLS" } != nil)
        #expect(await inboxB.wait { $0.firstChild("body")?.text == "to verona over direct TLS" } != nil)
    }

    @Test("an SRV target of '.' means no XMPP service: the stanza bounces at once")
    func noService() async throws {
        let dns = FakeDNS(["_xmpp-server._tcp.nowhere.test.": [SRVRecord(priority: 0, weight: 0, port: 0, target: "")]])
        let dnsPort = try await dns.start(on: LoopbackFederationTests.group)
        let inbox = LoopbackFederationTests.Inbox()
        let (a, _) = try await Self.service("sip.test", dns: dnsPort, inbox: inbox)
        defer {
            _ = a.shutdown()
            _ = dns.channel?.close()
        }
        a.send(LoopbackFederationTests.message(from: "romeo@sip.test", to: "juliet@nowhere.test", "lost"))
        let bounce = await inbox.wait(seconds: 5) { $0.attribute("type") == "error" }
        #expect(bounce?.firstChild("error")?.firstChild("remote-server-not-found") != nil)
    }
}

struct RateAndBackoffTests {
    @Test("the token bucket allows the burst, then paces to the rate")
    func bucket() {
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var bucket = TokenBucket(rate: 10, burst: 3, now: start)
        #expect(bucket.take(now: start) == nil)
        #expect(bucket.take(now: start) == nil)
        #expect(bucket.take(now: start) == nil)
        let pause = bucket.take(now: start)
        #expect(pause == .milliseconds(100))
        // A second later the bucket has refilled (to its burst, not beyond).
        let later = start + .seconds(1)
        #expect(bucket.take(now: later) == nil)
        #expect(bucket.take(now: later) == nil)
        #expect(bucket.take(now: later) == nil)
        #expect(bucket.take(now: later) != nil)
    }

    @Test("a peer over its rate is slowed down, and every stanza still arrives")
    func rateLimited() async throws {
        let inboxB = LoopbackFederationTests.Inbox()
        var limited = S2SConfiguration(servedDomains: ["capulet.test"], dialbackSecret: "b",
                                       defaultPolicy: PeerPolicy(tls: .optional, requireValidCertificate: false), listenPort: 0)
        limited.peerRate = (perSecond: 100, burst: 10)
        let b = S2SService(configuration: limited, eventLoop: LoopbackFederationTests.group.next(), onStanza: { inboxB.add($0) })
        let bPort = try await b.start().get()
        let a = S2SService(configuration: .init(servedDomains: ["sip.test"], dialbackSecret: "a",
                                                defaultPolicy: PeerPolicy(tls: .optional, requireValidCertificate: false), listenPort: 0),
                           eventLoop: LoopbackFederationTests.group.next(), onStanza: { _ in })
        let aPort = try await a.start().get()
        defer { _ = a.shutdown(); _ = b.shutdown() }
        try await a.addRoute("capulet.test", host: "127.0.0.1", port: bPort).get()
        try await b.addRoute("sip.test", host: "127.0.0.1", port: aPort).get()
        let start = Date()
        for index in 0..<60 { a.send(LoopbackFederationTests.message(from: "romeo@sip.test", to: "juliet@capulet.test", "m\(index)")) }
        #expect(await inboxB.wait(seconds: 10) { $0.firstChild("body")?.text == "m59" } != nil)
        // 60 stanzas at 100/s after a burst of 10 take at least about half a second.
        #expect(Date().timeIntervalSince(start) > 0.4)
        for index in 0..<60 {
            #expect(await inboxB.wait(seconds: 0.01) { $0.firstChild("body")?.text == "m\(index)" } != nil, "m\(index) lost")
        }
    }

    @Test("after a failed connection the next attempt to that domain waits out a backoff; shutdown bounces what waits")
    func reconnectBackoff() async throws {
        let inbox = LoopbackFederationTests.Inbox()
        let events = LinkLivenessTests.Events()
        var configuration = S2SConfiguration(servedDomains: ["sip.test"], dialbackSecret: "a",
                                             routes: ["down.test": (host: "127.0.0.1", port: 1)], listenPort: 0)
        // A window of 30...60 s (at least a tenth of base, at most cap): far longer than any
        // scheduling delay between the failure and the second send, even on a loaded machine.
        configuration.reconnectBackoff = (base: 300, cap: 60)
        let a = S2SService(configuration: configuration, eventLoop: LoopbackFederationTests.group.next(),
                           onStanza: { inbox.add($0) }, onEvent: { events.add($0) })
        _ = try await a.start().get()
        defer { _ = a.shutdown() }
        a.send(LoopbackFederationTests.message(from: "romeo@sip.test", to: "juliet@down.test", "one"))
        #expect(await inbox.wait { $0.attribute("type") == "error" && $0.firstChild("body")?.text == "one" } != nil)
        #expect(!events.all.contains { if case .reconnectDelayed = $0 { true } else { false } })
        a.send(LoopbackFederationTests.message(from: "romeo@sip.test", to: "juliet@down.test", "two"))
        #expect(await events.wait { if case .reconnectDelayed("down.test", let ms) = $0 { ms > 20_000 } else { false } },
                "\(events.all)")
        // The second attempt waits out the backoff with the stanza queued: no quick bounce.
        #expect(await inbox.wait(seconds: 1) { $0.firstChild("body")?.text == "two" } == nil)
        // Shutting down returns the queued stanza to its sender instead of losing it.
        try await a.shutdown().get()
        let bounced = await inbox.wait { $0.firstChild("body")?.text == "two" }
        #expect(bounced?.attribute("type") == "error")
        #expect(bounced?.firstChild("error")?.firstChild("service-unavailable") != nil)
    }
}
