import Foundation
import SIPCore
import StoxTesting
import Testing

/// Peer mode as an operator runs it: `stox run` serving no SIP domain itself, next to Kamailio
/// (registrar, proxy and presence server of corp.test, Tests/Interop/kamailio) with pjsua2 users
/// registered there, and Prosody for a.test on the XMPP side over s2s with SASL EXTERNAL
/// (s2s_secure_auth). Every process is stopped by its PID.
@Suite("Peer mode: stox run next to Kamailio", .serialized, .interopPeers)
struct PeerModeTests {
    @Test("messages both ways through Kamailio; an XMPP user sees a Kamailio user's presence as the device publishes, through refreshes and a restart; a Kamailio user watches an XMPP user; the last watcher's unsubscribe ends the SIP subscription; an untrusted corp.test sender is refused")
    func peerMode() async throws {
        let scratch = try ScratchDirectory("peer"), directory = scratch.url
        defer { scratch.remove() }
        let pki = try TestPKI()
        // Kamailio grants subscriptions of 10 s at most, so that the gateway refreshes them
        // several times during the test.
        let kamailio = try await Kamailio.started(gatewayPort: GatewayProcess.sipPort, maxExpires: 10)
        var environment = try GatewayProcess.prepare(directory: directory, pki: pki, domain: "corp.test")
        environment["STOX_SIP_DOMAINS"] = ""
        environment["STOX_SIP_PEER_DOMAINS"] = "corp.test=sip:\(Kamailio.host):\(kamailio.port)"
        var gateway = try GatewayProcess(environment: environment, directory: directory, generation: 1)
        func stopAll() async {
            await gateway.stop()
            await kamailio.stop()
        }
        guard await gateway.healthy() else {
            Issue.record("the gateway did not start:\n\(gateway.log)")
            return await stopAll()
        }
        do {
            try await exercise(&gateway, kamailio: kamailio, environment: environment, directory: directory, pki: pki)
        } catch {
            Issue.record(error)
        }
        await stopAll()
    }

    private func exercise(_ gateway: inout GatewayProcess, kamailio: Kamailio, environment: [String: String], directory: URL, pki: TestPKI) async throws {
        let prosody = try Prosody(mode: "secure", certificate: try pki.leaf("a", dnsNames: ["a.test"]), ca: pki.path("ca.crt"),
                                  gatewayPort: GatewayProcess.s2sPort, gatewayDomains: ["corp.test"])
        defer { prosody.stop() }
        let alice = try XMPPAgent(jid: "alice@a.test", password: "pw", server: Prosody.c2sPort)
        let bob = try PJSUAAgent(name: "bob@corp", user: "bob", password: "unused", registrar: kamailio.port,
                                 extra: ["--domain", "corp.test", "--registrar-host", Kamailio.host])
        #expect(await alice.waitFor("login", timeout: 20) { $0.ev == "online" } != nil)
        #expect(await bob.waitFor("registration at Kamailio") { $0.ev == "reg" && $0.active == true } != nil)

        // XMPP → SIP: through Kamailio to bob's device; the receipt only after it accepted.
        alice.command("send bob@corp.test hello bob")
        let sent = await alice.waitFor("sent") { $0.ev == "sent" && $0.body == "hello bob" }
        let got = await bob.waitFor("the message at bob", timeout: 20) { $0.ev == "im" && $0.body == "hello bob" }
        #expect(got?.frm?.contains("alice@a.test") == true, "\(kamailio.log.suffix(2000))\n\(gateway.log.suffix(3000))")
        #expect(await alice.waitFor("the receipt") { $0.ev == "receipt" }?.id == sent?.id)
        // SIP → XMPP: Kamailio routes a.test to the gateway, which trusts it by its address.
        bob.command("send sip:alice@a.test hi alice")
        #expect(await bob.waitFor("the final response") { $0.ev == "im-status" }?.code == 202)
        #expect(await alice.waitFor("bob's message", timeout: 20) { $0.ev == "message" && $0.body == "hi alice" }?.frm == "bob@corp.test")
        // Over 1,300 bytes: not refused at the pager limit, but sent over TCP to Kamailio
        // (RFC 3428 §5, RFC 3261 §18.1.1), which takes it on to bob.
        let long = (1...90).map { "word\($0)" }.joined(separator: " ") + String(repeating: " filler", count: 120)
        alice.command("send bob@corp.test \(long)")
        #expect(await bob.waitFor("the long message at bob", timeout: 20) { $0.ev == "im" && $0.body == long } != nil)
        // Nobody by that name at corp.test: Kamailio says 404, alice gets an error.
        alice.command("send nobody@corp.test hello")
        let nobody = await alice.waitFor("sent") { $0.ev == "sent" && $0.to == "nobody@corp.test" }
        #expect(await alice.waitFor("nobody's error", timeout: 20) { $0.ev == "message" && $0.type == "error" && $0.id == nobody?.id } != nil)

        // An XMPP user watches a Kamailio user: the gateway subscribes through Kamailio.
        func presence(_ what: String, after: Double, timeout: Double = 15, _ match: @escaping @Sendable (XMPPEvent) -> Bool) async -> XMPPEvent? {
            await alice.waitFor(what, timeout: timeout) { $0.ev == "presence" && $0.frm?.hasPrefix("bob@corp.test") == true && $0.time > after && match($0) }
        }
        bob.command("publish online at my desk")
        alice.command("subscribe bob@corp.test")
        #expect(await alice.waitFor("subscribed", timeout: 20) { $0.ev == "subscription" && $0.type == "subscribed" && $0.frm == "bob@corp.test" } != nil,
                "\(gateway.log.suffix(3000))")
        let online = await presence("bob online", after: 0) { $0.type == "available" && $0.show == "" }
        #expect(online?.status == "at my desk")
        bob.command("publish away gone for coffee")
        let away = await presence("bob away", after: online?.time ?? 0) { $0.show == "away" }
        #expect(away?.status == "gone for coffee")
        // Past two refreshes (Kamailio grants 10 s): the subscription still carries changes.
        try await Task.sleep(for: .seconds(22))
        bob.command("publish busy in a meeting")
        let busy = await presence("bob busy after the refreshes", after: away?.time ?? 0) { $0.show == "dnd" }
        #expect(busy?.status == "in a meeting", "\(kamailio.log.suffix(3000))")
        let refreshes = kamailio.log.components(separatedBy: "SUBSCRIBE from sip:alice@a.test for sip:127.0.0.2").count - 1
        #expect(refreshes >= 2, "in-dialog refreshes seen by Kamailio: \(refreshes)")

        // A Kamailio user watches an XMPP user: asked on XMPP (slixmpp approves), then her changes.
        bob.command("buddy sip:alice@a.test")
        #expect(await alice.waitFor("bob's request", timeout: 20) { $0.ev == "subscription" && $0.type == "subscribe" && $0.frm == "bob@corp.test" } != nil)
        #expect(await bob.waitFor("alice online", timeout: 20) { $0.ev == "buddy" && $0.sub_state == "ACTIVE" && $0.status != "Offline" && $0.status != nil } != nil)
        alice.command("presence away out for lunch")
        #expect(await bob.waitFor("alice away") { $0.ev == "buddy" && $0.note == "out for lunch" }?.activity == 1)

        // A restart (SIGTERM, then a new process): the subscription is made again from the store.
        await gateway.stop()
        let beforeRestart = Date().timeIntervalSince1970
        gateway = try GatewayProcess(environment: environment, directory: directory, generation: 2)
        #expect(await gateway.healthy(), "\(gateway.log)")
        bob.command("publish online back again")
        let back = await presence("bob online after the restart", after: beforeRestart, timeout: 30) { $0.type == "available" && $0.status == "back again" }
        #expect(back != nil, "\(gateway.log.suffix(3000))")
        // The device goes offline (PIDF basic closed): the XMPP watcher sees bob unavailable.
        bob.command("publish offline signing off")
        let gone = await presence("bob offline", after: back?.time ?? beforeRestart) { $0.type == "unavailable" }
        #expect(gone != nil, "\(gateway.log.suffix(3000))")

        // The last XMPP watcher leaves: the SIP subscription ends (SUBSCRIBE Expires: 0; the
        // stop above sent one too).
        let unsubscribe = "SUBSCRIBE from sip:alice@a.test for sip:127.0.0.2:\(kamailio.port) expires 0"
        let ended = kamailio.log.components(separatedBy: unsubscribe).count
        alice.command("unsubscribe bob@corp.test")
        #expect(await eventually(timeout: 10) { kamailio.log.components(separatedBy: unsubscribe).count > ended },
                "\(kamailio.log.suffix(2000))")

        // Someone on 127.0.0.1 (not Kamailio) claiming to be a corp.test user: 403, and one log
        // line with who and why.
        let spoof = try UDPClient()
        let body = "forged"
        try spoof.send(["MESSAGE sip:alice@a.test SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:\(spoof.port);branch=z9hG4bKspoof1;rport",
                        "Max-Forwards: 70", "From: <sip:bob@corp.test>;tag=spoof", "To: <sip:alice@a.test>", "Call-ID: spoof@127.0.0.1",
                        "CSeq: 1 MESSAGE", "Content-Type: text/plain", "Content-Length: \(body.utf8.count)", "", body].joined(separator: "\r\n"),
                       to: GatewayProcess.sipPort)
        var refused: SIPResponse?
        while refused == nil, let text = await spoof.receive(timeout: 5) {
            if case .response(let response)? = try? SIPParser().parse(datagram: Array(text.utf8)), response.statusCode >= 200 { refused = response }
        }
        #expect(refused?.statusCode == 403)
        #expect(gateway.log.contains("untrusted-peer"), "\(gateway.log.suffix(2000))")
        try await Task.sleep(for: .seconds(1))
        #expect(alice.all { $0.ev == "message" && $0.body == "forged" }.isEmpty)

        await bob.stop()
        await alice.stop()
    }
}

/// A peer network that takes Lync-style IM sessions (`sip.peer_im = lync.test=session`), played
/// by a raw UDP endpoint standing for its proxy, so that every answer can be checked on the wire.
@Suite("Peer mode: a network that takes IM sessions", .serialized, .interopPeers)
struct SessionPeerTests {
    @Test("from XMPP the first message opens an INVITE session (ms-text-format), the next rides the dialog, typing becomes isComposing, the peer user's replies come back as chat, and a long message is not refused")
    func sessionPeer() async throws {
        let lync = try UDPClient()
        let fixture = try await GatewayFixture(settings: [
            "STOX_SIP_PEER_DOMAINS": "lync.test=sip:127.0.0.1:\(lync.port)", "STOX_SIP_PEER_IM": "lync.test=session",
        ], gatewayDomains: ["sip.test", "lync.test"])
        let alice = try fixture.xmppUser("alice")
        #expect(await alice.waitFor("login", timeout: 20) { $0.ev == "online" } != nil)
        let parser = SIPParser()
        func next(_ method: SIPMethod, timeout: Double = 20) async -> SIPRequest? {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline, let text = await lync.receive(timeout: deadline.timeIntervalSinceNow) {
                if case .request(let request)? = try? parser.parse(datagram: Array(text.utf8)), request.method == method { return request }
            }
            return nil
        }
        func answer(_ request: SIPRequest, _ code: Int, tag: String, extra: [(SIPHeaderName, String)] = [], body: [UInt8] = []) throws {
            var response = request.makeResponse(code, toTag: tag)
            for (name, value) in extra { response.headers.add(name, value) }
            response.body = body
            try lync.send(String(decoding: response.serialized(), as: UTF8.self), to: fixture.udpPort)
        }

        alice.command("send bob@lync.test hello in a session")
        let sent = await alice.waitFor("sent") { $0.ev == "sent" && $0.body == "hello in a session" }
        let invite = try #require(await next(.invite))
        #expect(invite.uri.description == "sip:bob@lync.test")
        #expect(invite.contentType?.matches(.sdp) == true)
        let first = invite.headers[MSTextFormat.header].flatMap(MSTextFormat.init(headerValue:))
        #expect(first.map { String(decoding: $0.body, as: UTF8.self) } == "hello in a session", "the first message rides the INVITE")
        let sdp = IMSessionDescription(address: "127.0.0.1", port: UInt16(lync.port)).serialized()
        try answer(invite, 200, tag: "lync1", extra: [(.contact, "<sip:bob@127.0.0.1:\(lync.port)>"), (.supported, MSTextFormat.optionTag),
                                                     (.contentType, SIPMediaType.sdp.description)], body: sdp)
        #expect(await next(.ack) != nil)
        #expect(await alice.waitFor("the receipt for the first") { $0.ev == "receipt" }?.id == sent?.id)

        // The next message rides the dialog, and so does typing.
        alice.command("compose bob@lync.test")
        let typing = try #require(await next(.message))
        #expect(typing.to?.tag == "lync1" && typing.contentType?.matches(.isComposing) == true)
        try answer(typing, 200, tag: "lync1")
        let long = String(repeating: "a long line of text, ", count: 80)
        alice.command("send bob@lync.test \(long)")
        let second = try #require(await next(.message))
        #expect(second.to?.tag == "lync1" && second.callID == invite.callID)
        #expect(String(decoding: second.body, as: UTF8.self).hasPrefix("a long line of text"), "over 1,300 bytes, in the session: not refused")
        try answer(second, 200, tag: "lync1")
        #expect(await alice.waitFor("the receipt for the second") { $0.ev == "receipt" && $0.id != sent?.id } != nil)

        // bob answers inside the session: alice gets it as chat from bob@lync.test.
        let reply = ["MESSAGE sip:127.0.0.1:\(fixture.udpPort) SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:\(lync.port);branch=z9hG4bKreply1",
                     "Max-Forwards: 70", "From: <sip:bob@lync.test>;tag=lync1", "To: \(invite.headers[.from] ?? "")",
                     "Call-ID: \(invite.callID ?? "")", "CSeq: 1 MESSAGE", "Content-Type: text/plain", "Content-Length: 9", "", "hi, alice"]
        try lync.send(reply.joined(separator: "\r\n"), to: fixture.udpPort)
        let got = await alice.waitFor("bob's reply") { $0.ev == "message" && $0.body == "hi, alice" }
        #expect(got?.frm?.hasPrefix("bob@lync.test") == true && got?.type == "chat")
        await alice.stop()
        await fixture.stop()
    }
}
