import Foundation
import StoxTesting
import Testing

/// Federation as production runs it: peers find each other through SRV records served by a DNS
/// server on loopback (dnsmasq), with no static routes, and the peer's defaults as an operator
/// sets them.
@Suite("Federation through DNS with real peers", .serialized, .interopPeers)
struct FederationDNSTests {
    static let dnsPort = 25353

    @Test("ejabberd 23.01 with s2s_use_starttls: required reaches the gateway and back, found through SRV: dialback verification negotiates STARTTLS")
    func ejabberdRequiredStartTLS() async throws {
        try #require(Ejabberd.available && DNSMasq.available, "ejabberd and dnsmasq are installed by Tests/install-peers.sh")
        let scratch = try ScratchDirectory("ejabberd-gw"), directory = scratch.url
        defer { scratch.remove() }
        let pki = try TestPKI()
        let dns = try DNSMasq(port: Self.dnsPort, zones: ["test"], hosts: ["sip.test": "127.0.0.1", "e.test": "127.0.0.1"], srv: [
            .init("_xmpp-server._tcp.sip.test", port: GatewayProcess.s2sPort),
            .init("_xmpp-server._tcp.e.test", port: Ejabberd.s2sPort),
        ])
        defer { dns.stop() }
        var environment = try GatewayProcess.prepare(directory: directory, pki: pki)
        // No static route: e.test is found through SRV, for links and for dialback alike.
        environment["STOX_XMPP_ROUTES"] = ""
        environment["STOX_XMPP_DNS_SERVER"] = "127.0.0.1:\(Self.dnsPort)"
        // ejabberd's certificate is self-signed: dialback authenticates, over TLS.
        environment["STOX_XMPP_PEER_POLICIES"] = "e.test:dialback"
        let gateway = try GatewayProcess(environment: environment, directory: directory, generation: 1)
        defer { Task { await gateway.kill9() } }
        #expect(await gateway.healthy(), "\(gateway.log)")
        let ejabberd = try Ejabberd(certificate: try pki.leaf("e", dnsNames: ["e.test"], selfSigned: true), dnsServerPort: Self.dnsPort)
        defer { ejabberd.stop() }
        let juliet = try XMPPAgent(jid: "juliet@e.test", password: "pw", server: Ejabberd.c2sPort)
        let bob = try PJSUAAgent(name: "bob", user: "bob", password: "pw-bob", registrar: GatewayProcess.sipPort)
        defer { Task { await bob.stop() } }
        #expect(await juliet.waitFor("login", timeout: 20) { $0.ev == "online" } != nil)
        #expect(await bob.waitFor("registration") { $0.ev == "reg" && $0.active == true } != nil)

        // e.test → sip.test: ejabberd opens a stream, claims e.test by dialback, and the gateway
        // verifies the claim with e.test's authoritative server over STARTTLS.
        juliet.command("send bob@sip.test hello from ejabberd")
        let arrived = await bob.waitFor("juliet's message", timeout: 30) { $0.ev == "im" && $0.body == "hello from ejabberd" }
        #expect(arrived != nil, "gateway:\n\(gateway.log)\nejabberd:\n\(ejabberd.log.suffix(4000))")
        // sip.test → e.test.
        bob.command("send sip:juliet@e.test hello from SIP")
        #expect(await juliet.waitFor("bob's message", timeout: 30) { $0.ev == "message" && $0.body == "hello from SIP" } != nil,
                "gateway:\n\(gateway.log)")
        #expect(!gateway.log.contains("s2s peer refused"), "\(gateway.log)")
    }

    @Test("Prosody 0.12 finds the gateway through SRV (dnsmasq on loopback) and the gateway finds Prosody the same way: dialback over TLS both ways, messages both ways")
    func prosodyThroughSRV() async throws {
        try #require(DNSMasq.available, "dnsmasq is installed by Tests/install-peers.sh")
        let scratch = try ScratchDirectory("srv"), directory = scratch.url
        defer { scratch.remove() }
        let pki = try TestPKI()
        // Prosody's resolver (libunbound) refuses *.test by design: the gateway serves sip.internal.
        let dns = try DNSMasq(port: Self.dnsPort, zones: ["test", "internal"],
                              hosts: ["sip.internal": "127.0.0.1", "a.test": "127.0.0.1"], srv: [
            .init("_xmpp-server._tcp.sip.internal", port: GatewayProcess.s2sPort),
            .init("_xmpp-server._tcp.a.test", port: Prosody.s2sPort),
        ])
        defer { dns.stop() }
        var environment = try GatewayProcess.prepare(directory: directory, pki: pki, domain: "sip.internal", selfSigned: true)
        environment["STOX_XMPP_ROUTES"] = ""
        environment["STOX_XMPP_DNS_SERVER"] = "127.0.0.1:\(Self.dnsPort)"
        environment["STOX_XMPP_PEER_POLICY"] = "dialback"
        let gateway = try GatewayProcess(environment: environment, directory: directory, generation: 1)
        defer { Task { await gateway.kill9() } }
        #expect(await gateway.healthy(), "\(gateway.log)")
        let prosody = try Prosody(mode: "dialback", certificate: try pki.leaf("a", dnsNames: ["a.test"], selfSigned: true), ca: nil,
                                  gatewayPort: 1, dnsPort: Self.dnsPort)
        defer { prosody.stop() }
        let alice = try XMPPAgent(jid: "alice@a.test", password: "pw", server: Prosody.c2sPort)
        let bob = try PJSUAAgent(name: "bob", user: "bob", password: "pw-bob", registrar: GatewayProcess.sipPort,
                                 extra: ["--domain", "sip.internal"])
        defer { Task { await bob.stop() } }
        #expect(await alice.waitFor("login", timeout: 20) { $0.ev == "online" } != nil)
        #expect(await bob.waitFor("registration") { $0.ev == "reg" && $0.active == true } != nil)
        alice.command("send bob@sip.internal hello through SRV")
        #expect(await bob.waitFor("alice's message", timeout: 30) { $0.ev == "im" && $0.body == "hello through SRV" } != nil,
                "gateway:\n\(gateway.log)\nprosody:\n\(prosody.log.split(separator: "\n").filter { $0.contains("s2s") }.suffix(40).joined(separator: "\n"))")
        bob.command("send sip:alice@a.test hello back through SRV")
        #expect(await alice.waitFor("bob's message", timeout: 30) { $0.ev == "message" && $0.body == "hello back through SRV" } != nil,
                "gateway:\n\(gateway.log)")
        // Both directions authenticated by dialback, each verified over TLS.
        #expect(gateway.log.contains("s2s inbound link authenticated") && gateway.log.contains("method=dialback"), "\(gateway.log)")
        #expect(!gateway.log.contains("s2s peer refused"), "\(gateway.log)")
        #expect(dns.log.contains("_xmpp-server._tcp.sip.internal") && dns.log.contains("_xmpp-server._tcp.a.test"), "\(dns.log)")
    }
}
