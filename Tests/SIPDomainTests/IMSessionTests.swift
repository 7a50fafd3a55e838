import Foundation
import GatewayStore
import NIOCore
import NIOPosix
import SIPCore
@testable import SIPDomain
import SIPEdge
import StoxTesting
import Synchronization
import Testing

final class SessionEvents: Sendable {
    let list = Mutex<[IMSessionEvent]>([])
    let senders = Mutex<[String]>([])

    func wait(for count: Int, timeout: Double = 5) async -> [IMSessionEvent] {
        let deadline = Date().addingTimeInterval(timeout)
        while list.withLock({ $0.count }) < count, Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return list.withLock { $0 }
    }
}

@Suite("Lync-style IM sessions against SIPp (the gateway as UAS)", .serialized, .interopPeers)
struct IMSessionSIPpTests {
    @Test("an INVITE with ms-text-format and m=message sip null is challenged, then taken: 200 with Supported: ms-text-format; in-dialog MESSAGE, isComposing and BYE reach the session", arguments: ["u1", "t1"])
    func lyncClientOpensSession(transport: String) async throws {
        let store = try DomainFixture.store(users: ["romeo": "pw-romeo"])
        let events = SessionEvents()
        let slot = Mutex<EmbeddedDomain?>(nil)
        // SIPp computes MD5 digests only: this domain offers MD5 alone.
        let configuration = EmbeddedDomainConfiguration(domains: ["sip.test"], digestAlgorithms: [.md5])
        let domain = try await EmbeddedDomain.start(
            configuration, edge: SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: 0), store: store,
            group: MultiThreadedEventLoopGroup.singleton,
            foreign: { request, sender in
                events.senders.withLock { $0.append(sender) }
                _ = slot.withLock { $0 }?.acceptSession(request) { event in events.list.withLock { $0.append(event) } }
            })
        slot.withLock { $0 = domain }
        let port = transport == "u1" ? domain.edge.udpAddress!.port! : domain.edge.tcpAddress!.port!
        let run = try await SIPp.run("lync_im_uac.xml", port: port, transport: transport, calls: 1, rate: 1, traceMessages: true,
                                     // The digest-uri must name the Request-URI (RFC 3261 §22.4).
                                     arguments: ["-auth_uri", "juliet@xmpp.test", "-key", "to_domain", "xmpp.test"])
        #expect(run.status == 0, "sipp failed:\n\(SIPp.summary(run.output))\n\(run.messages.suffix(4000))")
        let seen = await events.wait(for: 4)
        await domain.stop()
        #expect(events.senders.withLock { $0 } == ["romeo@sip.test"])
        var plain = SIPMediaType.textPlain
        plain.parameters.set("charset", .some("UTF-8"))
        #expect(seen.count == 4)
        guard seen.count == 4 else { return }
        #expect(seen[0] == .message(contentType: plain, body: Array("Hello from Lync".utf8)))
        guard case .message(_, let second) = seen[1] else { Issue.record("not a message: \(seen[1])"); return }
        // SIPp ends a scenario's body with a line break.
        #expect(String(decoding: second, as: UTF8.self).trimmingCharacters(in: .newlines) == "second message")
        #expect(seen[2] == .composing(active: true))
        #expect(seen[3] == .closed(.remoteBye))
    }
}

@Suite("A Lync-style IM session between two local users, relayed by the domain", .serialized, .interopPeers)
struct IMSessionRelayTests {
    @Test("SIPp (romeo) opens a session to bob: both of bob's devices get the INVITE with the first message; one accepts and only then does romeo get his 200; messages, typing and BYE cross over")
    func relayed() async throws {
        let store = try DomainFixture.store(users: ["romeo": "pw-romeo", "bob": "pw-bob"])
        let configuration = EmbeddedDomainConfiguration(domains: ["sip.test"], digestAlgorithms: [.md5])
        let domain = try await EmbeddedDomain.start(configuration, edge: SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: 0),
                                                    store: store, group: MultiThreadedEventLoopGroup.singleton)
        let devices = try await DomainFixture.devices("bob", count: 2, on: domain)
        let (laptop, phone) = (devices[0], devices[1])
        async let romeo = SIPp.run("lync_im_uac.xml", port: domain.edge.udpAddress!.port!, transport: "u1", calls: 1, rate: 1,
                                   traceMessages: true, service: "bob",
                                   arguments: ["-auth_uri", "bob@sip.test", "-key", "to_domain", "sip.test"])
        let atLaptop = try #require(await laptop.request(.invite, timeout: 10))
        let atPhone = try #require(await phone.request(.invite))
        let format = try #require(atLaptop.headers[MSTextFormat.header].flatMap(MSTextFormat.init(headerValue:)))
        #expect(format.body == Array("Hello from Lync".utf8))
        #expect(atLaptop.from?.uri.description == "sip:romeo@sip.test")
        try laptop.answer(atLaptop, 180)
        try phone.answer(atPhone, 180)  // ringing: a CANCEL may follow it (§9.1)
        var ok = atLaptop.makeResponse(200, toTag: "laptop")
        ok.headers.add(.contact, laptop.contact)
        ok.headers.add(.supported, "ms-text-format")
        ok.headers.add(.contentType, "application/sdp")
        ok.body = IMSessionDescription(address: "127.0.0.1", port: UInt16(laptop.socket.port)).serialized()
        // The laptop takes its time: romeo's 200 must not come before it.
        try await Task.sleep(for: .milliseconds(300))
        let accepted = Date()
        try laptop.send(String(decoding: ok.serialized(), as: UTF8.self))
        let cancel = try #require(await phone.request(.cancel))
        try phone.answer(cancel, 200)
        try phone.answer(atPhone, 487)
        #expect(await laptop.request(.ack) != nil)
        // What romeo writes and types reaches the laptop in the dialog; then his BYE.
        let second = try #require(await laptop.request(.message))
        #expect(String(decoding: second.body, as: UTF8.self).hasPrefix("second message"))
        try laptop.answer(second, 200)
        let typing = try #require(await laptop.request(.message) { $0.contentType?.essence == "application/im-iscomposing+xml" })
        #expect((try? IsComposingDocument(bytes: typing.body))?.state == .active)
        try laptop.answer(typing, 200)
        let bye = try #require(await laptop.request(.bye))
        try laptop.answer(bye, 200)
        let run = try await romeo
        #expect(run.status == 0, "sipp failed:\n\(SIPp.summary(run.output))\n\(run.output.suffix(2000))")
        let answered = try #require(Self.received("SIP/2.0 200 OK", cseq: "2 INVITE", in: run.messages))
        #expect(answered >= accepted.addingTimeInterval(-0.01), "romeo's 200 came before bob's device accepted")
        await domain.stop()
    }

    /// When SIPp's trace says it received the response with this status line and CSeq.
    static func received(_ status: String, cseq: String, in trace: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss.SSSSSS"
        for block in trace.components(separatedBy: "----------------------------------------------- ").dropFirst()
        where block.contains("message received") && block.contains("\n" + status) && block.contains("CSeq: " + cseq) {
            return formatter.date(from: String(block.prefix { $0 != "\n" }))
        }
        return nil
    }
}

@Suite("Lync-style IM sessions on the wire (the gateway as UAC)", .serialized)
struct IMSessionWireTests {
    static func sdpAnswer(_ port: Int) -> String {
        String(decoding: IMSessionDescription(address: "127.0.0.1", port: UInt16(port)).serialized(), as: UTF8.self)
    }

    static func send(_ response: SIPResponse, from endpoint: RawEndpoint) throws {
        try endpoint.send(String(decoding: response.serialized(), as: UTF8.self))
    }

    @Test("the INVITE is forked to both of bob's endpoints; one accepts without ms-text-format support, so the first message follows as MESSAGE after the ACK; the other is cancelled")
    func forkedSessionWithResend() async throws {
        let store = try DomainFixture.store(users: ["bob": "pw-bob"])
        let domain = try await DomainFixture.start(store)
        let devices = try await DomainFixture.devices("bob", count: 2, on: domain)
        let (laptop, phone) = (devices[0], devices[1])

        let events = SessionEvents()
        var text = SIPMediaType.textPlain
        text.parameters.set("charset", .some("UTF-8"))
        async let opened = domain.openSession(
            from: SIPNameAddress(uri: SIPURI("sip:juliet@xmpp.test")!), to: "bob@sip.test",
            first: MSTextFormat(contentType: text, body: Array("hi bob".utf8))) { event in events.list.withLock { $0.append(event) } }
        let atLaptop = try #require(await laptop.request(.invite))
        let atPhone = try #require(await phone.request(.invite))
        let format = try #require(atLaptop.headers[MSTextFormat.header].flatMap(MSTextFormat.init(headerValue:)))
        #expect(format.body == Array("hi bob".utf8))
        #expect(IMSessionDescription(bytes: atLaptop.body) != nil)
        try laptop.answer(atLaptop, 180)
        try phone.answer(atPhone, 180)
        // The laptop accepts, without Supported: ms-text-format.
        var ok = atLaptop.makeResponse(200, toTag: "laptop")
        ok.headers.add(.contact, laptop.contact)
        ok.headers.add(.contentType, "application/sdp")
        ok.body = Array(Self.sdpAnswer(laptop.socket.port).utf8)
        try Self.send(ok, from: laptop)
        let session = try await opened.get()
        #expect(session.remoteURI.user == "bob")

        // The laptop gets the ACK, then the first message as MESSAGE in the dialog.
        let ack = try #require(await laptop.request(.ack))
        #expect(ack.cseq?.sequence == 1 && ack.to?.tag == "laptop")
        let resent = try #require(await laptop.request(.message))
        #expect(resent.body == Array("hi bob".utf8) && resent.to?.tag == "laptop")
        try laptop.answer(resent, 200)
        // The phone's branch is cancelled: CANCEL, then its INVITE ends with 487 and our ACK.
        let cancel = try #require(await phone.request(.cancel))
        try phone.answer(cancel, 200)
        try phone.answer(atPhone, 487)
        #expect(await phone.request(.ack) != nil)

        // In-dialog messages both ways, then the laptop hangs up.
        async let delivered = session.send(text: "second")
        let second = try #require(await laptop.request(.message) { $0.body == Array("second".utf8) })
        #expect(second.cseq?.sequence == 3)
        try laptop.answer(second, 200)
        #expect(await delivered)
        var bye = SIPRequest(method: .bye, uri: try #require(resent.from.map { _ in domain.edge.contact(for: .udp) }))
        bye.headers.add(.via, "SIP/2.0/UDP 127.0.0.1:\(laptop.socket.port);branch=z9hG4bKbye1;rport")
        bye.headers.add(.from, try #require(resent.headers[.to]))
        bye.headers.add(.to, try #require(resent.headers[.from]))
        bye.headers.add(.callID, try #require(resent.callID))
        bye.headers.add(.cseq, "7 BYE")
        try laptop.send(String(decoding: bye.serialized(), as: UTF8.self))
        #expect(await laptop.response()?.statusCode == 200)
        let all = await events.wait(for: 1)
        #expect(all == [.closed(.remoteBye)])
        await domain.stop()
    }

    @Test("an idle session is closed with BYE after the inactivity timeout; a user with no endpoint cannot be reached")
    func inactivity() async throws {
        let store = try DomainFixture.store(users: ["bob": "pw-bob"])
        let configuration = EmbeddedDomainConfiguration(domains: ["sip.test"], imSessionInactivity: .seconds(1))
        let domain = try await EmbeddedDomain.start(configuration, edge: SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: 0),
                                                    store: store, group: MultiThreadedEventLoopGroup.singleton)
        let juliet = SIPNameAddress(uri: SIPURI("sip:juliet@xmpp.test")!)
        let offline = await domain.openSession(from: juliet, to: "bob@sip.test", first: nil) { _ in }
        guard case .failure(let failure) = offline else { Issue.record("opened a session to nobody"); return }
        #expect(failure.outcome == .offline)

        let laptop = try RawEndpoint(user: "bob", serverPort: domain.edge.udpAddress!.port!)
        #expect(try await laptop.register(password: "pw-bob")?.statusCode == 200)
        let events = SessionEvents()
        async let opened = domain.openSession(from: juliet, to: "bob@sip.test", first: nil) { event in events.list.withLock { $0.append(event) } }
        let invite = try #require(await laptop.request(.invite))
        var ok = invite.makeResponse(200, toTag: "laptop")
        ok.headers.add(.contact, laptop.contact)
        ok.headers.add(.supported, "ms-text-format")
        ok.headers.add(.contentType, "application/sdp")
        ok.body = Array(Self.sdpAnswer(laptop.socket.port).utf8)
        // The inactivity timer starts when the gateway has the 200: not before this send.
        let started = Date()
        try Self.send(ok, from: laptop)
        _ = try await opened.get()
        #expect(await laptop.request(.ack) != nil)
        let bye = try #require(await laptop.request(.bye, timeout: 5))
        #expect(Date().timeIntervalSince(started) >= 0.95)
        try laptop.answer(bye, 200)
        #expect(await events.wait(for: 1) == [.closed(.inactivity)])
        await domain.stop()
    }
}
