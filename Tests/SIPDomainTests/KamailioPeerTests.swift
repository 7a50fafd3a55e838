import Foundation
import GatewayStore
import NIOCore
import NIOPosix
import SIPCore
import SIPDomain
import SIPEdge
import StoxTesting
import Synchronization
import Testing

@Suite("Peer mode behind Kamailio", .serialized, .interopPeers)
struct KamailioPeerTests {
    @Test("a pjsua2 user of corp.test, registered at Kamailio, writes to an XMPP address: Kamailio routes it to the gateway, which trusts it; the gateway's reply goes back through Kamailio; a spoofed corp.test sender is refused")
    func peerMode() async throws {
        let received = Mutex<[(String, String)]>([])
        let gatewayPort = 20000 + Int.random(in: 9000..<9999)
        // Kamailio needs the gateway's port in its configuration and the gateway needs
        // Kamailio's: both are picked up front (Kamailio's retried if taken).
        let store = try DomainFixture.store(users: [:])
        let proxy = try await Kamailio.started(gatewayPort: gatewayPort)
        let configuration = EmbeddedDomainConfiguration(
            domains: ["sip.test"],
            peerDomains: [SIPPeerDomain(domain: "corp.test",
                                        nextHop: SIPTarget(transport: .udp, address: try SocketAddress(ipAddress: "127.0.0.2", port: proxy.port)))])
        let domain = try await EmbeddedDomain.start(
            configuration, edge: SIPEdgeConfiguration(host: "127.0.0.1", udpPort: gatewayPort, tcpPort: nil, tlsPort: nil),
            store: store, group: MultiThreadedEventLoopGroup.singleton,
            foreign: { request, sender in
                received.withLock { $0.append((sender, String(decoding: request.request.body, as: UTF8.self))) }
                request.respond(request.request.makeResponse(200, toTag: "xmpp"))
            })

        let alice = try PJSUAAgent(name: "alice@corp", user: "alice", password: "unused", registrar: proxy.port,
                                   extra: ["--domain", "corp.test", "--registrar-host", "127.0.0.2"])
        #expect(await alice.waitFor("registration at Kamailio") { $0.ev == "reg" && $0.active == true } != nil)
        alice.command("send sip:juliet@xmpp.test hello xmpp")
        #expect(await alice.waitFor("im-status") { $0.ev == "im-status" }?.code == 200)
        #expect(received.withLock { $0.map(\.0) } == ["alice@corp.test"])
        #expect(received.withLock { $0.map(\.1) } == ["hello xmpp"])

        // The other way: from the XMPP side to alice, via Kamailio's location service.
        let reply = SIPRequest.message(from: SIPNameAddress(uri: SIPURI("sip:juliet@xmpp.test")!), to: SIPURI("sip:alice@corp.test")!,
                                       callID: "peer-\(UInt32.random(in: 1 ... .max))", body: Array("hello corp".utf8))
        let outcome = await domain.deliver(reply, to: "alice@corp.test")
        guard case .accepted(let response, _) = outcome else { Issue.record("not delivered: \(outcome)\n\(proxy.log.suffix(2000))"); return }
        #expect(response.statusCode == 200)
        let im = await alice.waitFor("the reply") { $0.ev == "im" && $0.body == "hello corp" }
        #expect(im?.frm?.contains("juliet@xmpp.test") == true)

        // Someone on 127.0.0.1 claiming to be a corp.test user is not Kamailio: refused.
        let spoof = try RawEndpoint(user: "alice", serverPort: gatewayPort)
        try spoof.send(spoof.request("MESSAGE", uri: "sip:juliet@xmpp.test", to: "<sip:juliet@xmpp.test>", cseq: 1, callID: "spoof",
                                     body: "forged").replacingOccurrences(of: "@sip.test>;tag=", with: "@corp.test>;tag="))
        #expect(await spoof.response()?.statusCode == 403)
        #expect(received.withLock { $0.count } == 1)

        await alice.stop()
        await domain.stop()
        await proxy.stop()
    }
}
