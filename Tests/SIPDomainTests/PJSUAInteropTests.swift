import Foundation
import GatewayStore
import NIOCore
import SIPCore
import SIPDomain
import SIPEdge
import StoxTesting
import Synchronization
import Testing

/// The embedded domain against real pjsip endpoints: two registered as the same user (MPOP)
/// and a third user who writes to them.
@Suite("Embedded SIP domain with pjsua2 endpoints", .serialized, .interopPeers)
struct PJSUAInteropTests {
    /// alice and bob's laptop on UDP, bob's phone on TCP (the edge's two listeners).
    static func agents(_ domain: EmbeddedDomain) throws -> (alice: PJSUAAgent, laptop: PJSUAAgent, phone: PJSUAAgent) {
        let udp = domain.edge.udpAddress!.port!, tcp = domain.edge.tcpAddress!.port!
        return (try PJSUAAgent(name: "alice", user: "alice", password: "pw-alice", registrar: udp),
                try PJSUAAgent(name: "bob-laptop", user: "bob", password: "pw-bob", registrar: udp),
                try PJSUAAgent(name: "bob-phone", user: "bob", password: "pw-bob", registrar: tcp, extra: ["--transport", "tcp"]))
    }

    @Test("two pjsua2 endpoints register as bob (UDP and TCP); alice's MESSAGE is forked and accepted by one; a 200 reaches her")
    func forkedMessage() async throws {
        let store = try DomainFixture.store(users: ["alice": "pw-alice", "bob": "pw-bob"])
        let domain = try await DomainFixture.start(store, desktop: .seconds(5))
        let (alice, laptop, phone) = try Self.agents(domain)
        for agent in [alice, laptop, phone] {
            let registered = await agent.waitFor("registration") { $0.ev == "reg" && $0.active == true }
            #expect(registered?.code == 200, "\(agent.name)")
        }
        let bindings = await domain.bindings(of: "bob@sip.test")
        #expect(Set(bindings.map(\.flow.transport)) == [.udp, .tcp])

        alice.command("send sip:bob@sip.test hello from alice")
        let status = await alice.waitFor("im-status") { $0.ev == "im-status" }
        #expect(status?.code == 200)
        // Both endpoints were offered the message (each pjsua accepts at once; the first 200 won).
        for agent in [laptop, phone] {
            let received = await agent.waitFor("the MESSAGE") { $0.ev == "im" && $0.body == "hello from alice" }
            #expect(received?.frm?.contains("alice@sip.test") == true)
        }
        for agent in [alice, laptop, phone] { await agent.stop() }
        await domain.stop()
    }

    @Test("when neither of bob's endpoints answers, alice gets 480 after the acceptance timeout, and bob's endpoints then get the missed-message notice")
    func unanswered() async throws {
        let store = try DomainFixture.store(users: ["alice": "pw-alice", "bob": "pw-bob"])
        let domain = try await DomainFixture.start(store, desktop: .seconds(2))
        let (alice, laptop, phone) = try Self.agents(domain)
        for agent in [alice, laptop, phone] {
            #expect(await agent.waitFor("registration") { $0.ev == "reg" && $0.active == true } != nil, "\(agent.name)")
        }
        // Both of bob's devices freeze (SIGSTOP by PID): they hold the MESSAGE but never answer.
        laptop.suspend()
        phone.suspend()
        let started = Date()
        alice.command("send sip:bob@sip.test ping while frozen")
        let status = await alice.waitFor("im-status", timeout: 15) { $0.ev == "im-status" }
        #expect(status?.code == 480)
        let waited = Date().timeIntervalSince(started)
        #expect(waited >= 1.8 && waited < 8, "the desktop acceptance timeout is 2 s; alice waited \(waited) s")
        laptop.resume()
        phone.resume()
        for agent in [laptop, phone] {
            let notice = await agent.waitFor("the missed-message notice", timeout: 15) {
                $0.ev == "im" && ($0.body ?? "").hasPrefix("Missed message from <sip:alice@sip.test>")
            }
            #expect(notice?.body?.hasSuffix("UTC: ping while frozen") == true)
        }
        // Accepted by an endpoint: the store no longer holds it.
        #expect(await eventually(timeout: 5) { try store.notices(for: "bob@sip.test").isEmpty })
        for agent in [alice, laptop, phone] { await agent.stop() }
        await domain.stop()
    }
}

@Suite("SIP over TLS with pjsua2", .serialized, .interopPeers)
struct PJSUATLSTests {
    @Test("alice registers over TLS (RFC 3261 §26, 5061) and bob over UDP; messages cross both ways, bob's reaching alice down her own TLS connection")
    func tls() async throws {
        let pki = try TestPKI()
        let (certificate, key) = try pki.leaf("sip", dnsNames: ["sip.test"])
        let store = try DomainFixture.store(users: ["alice": "pw-alice", "bob": "pw-bob"])
        let domain = try await DomainFixture.start(store, tls: SIPTLSConfiguration(certificateChainPath: certificate, privateKeyPath: key,
                                                                                   trustedCAPath: pki.path("ca.crt")))
        let alice = try PJSUAAgent(name: "alice-tls", user: "alice", password: "pw-alice", registrar: domain.edge.tlsAddress!.port!,
                                   extra: ["--transport", "tls"])
        let bob = try PJSUAAgent(name: "bob", user: "bob", password: "pw-bob", registrar: domain.edge.udpAddress!.port!)
        for agent in [alice, bob] {
            #expect(await agent.waitFor("registration") { $0.ev == "reg" && $0.active == true } != nil, "\(agent.name)")
        }
        #expect(await domain.bindings(of: "alice@sip.test").map(\.flow.transport) == [.tls])
        alice.command("send sip:bob@sip.test over tls")
        #expect(await alice.waitFor("im-status") { $0.ev == "im-status" }?.code == 200)
        #expect(await bob.waitFor("the MESSAGE") { $0.ev == "im" && $0.body == "over tls" } != nil)
        bob.command("send sip:alice@sip.test back to tls")
        #expect(await bob.waitFor("im-status") { $0.ev == "im-status" }?.code == 200)
        #expect(await alice.waitFor("the reply") { $0.ev == "im" && $0.body == "back to tls" } != nil)
        for agent in [alice, bob] { await agent.stop() }
        await domain.stop()
    }
}

@Suite("Presence across pjsua2 endpoints: PUBLISH from each device, one composed view", .serialized, .interopPeers)
struct PJSUAPresenceTests {
    @Test("alice watches bob; bob's laptop publishes away and his phone online: alice sees bob available; when the phone goes offline she sees away")
    func aggregated() async throws {
        let store = try DomainFixture.store(users: ["alice": "pw-alice", "bob": "pw-bob"])
        let domain = try await DomainFixture.start(store)
        let (alice, laptop, phone) = try PJSUAInteropTests.agents(domain)
        for agent in [alice, laptop, phone] {
            #expect(await agent.waitFor("registration") { $0.ev == "reg" && $0.active == true } != nil, "\(agent.name)")
        }
        alice.command("buddy sip:bob@sip.test")
        // Nothing published yet: bob is offline, and the subscription is active (same domain).
        let first = await alice.waitFor("a first NOTIFY") { $0.ev == "buddy" && $0.sub_state == "ACTIVE" }
        #expect(first?.status == "Offline")
        laptop.command("publish away laptop idle")
        let away = await alice.waitFor("bob away") { $0.ev == "buddy" && $0.note == "laptop idle" }
        #expect(away?.activity == 1, "RPID away (PJRPID_ACTIVITY_AWAY)")
        // The phone is more available than the laptop: its state is what alice sees.
        phone.command("publish online on my phone")
        let online = await alice.waitFor("bob online") { $0.ev == "buddy" && $0.note == "on my phone" }
        #expect(online?.activity == 0 && online?.status != "Offline")
        // The phone signs out of presence: the laptop's away shows again.
        phone.command("publish offline")
        let back = await alice.waitFor("bob back to away") { event in
            event.ev == "buddy" && event.note == "laptop idle" && event.time > (online?.time ?? .infinity)
        }
        #expect(back?.activity == 1)
        // One composed document carried both devices' tuples.
        let composed = try await domain.edge.eventLoop.submit { domain.composedPresence(of: "bob@sip.test") }.get()
        #expect(composed.tuples.count == 2)
        for agent in [alice, laptop, phone] { await agent.stop() }
        await domain.stop()
    }
}

@Suite("The embedded domain against SIPp", .serialized, .interopPeers)
struct DomainSIPpTests {
    @Test("an unknown method gets 501 and a known one it does not serve 405, both with Allow (RFC 3261 §8.2.1), over UDP and TCP", arguments: ["u1", "t1"])
    func unknownMethod(transport: String) async throws {
        let store = try DomainFixture.store(users: [:])
        let domain = try await DomainFixture.start(store)
        let port = transport == "u1" ? domain.edge.udpAddress!.port! : domain.edge.tcpAddress!.port!
        let run = try await SIPp.run("unknown_method_uac.xml", port: port, transport: transport, calls: 5, rate: 10)
        await domain.stop()
        #expect(run.status == 0, "sipp failed:\n\(SIPp.summary(run.output))\n\(run.output.suffix(2000))")
    }
}
