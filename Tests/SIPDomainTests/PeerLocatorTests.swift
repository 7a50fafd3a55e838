import Foundation
import GatewayStore
import NIOCore
import NIOPosix
import SIPCore
@testable import SIPDomain
import SIPEdge
import StoxDNS
import StoxTesting
import Testing

/// RFC 3263 for a peer network with no configured next hop, against a DNS server on loopback.
@Suite("Peer domains found through RFC 3263 SRV", .serialized)
struct PeerLocatorTests {
    static func domain(dns: Int, trusted: Set<String>) async throws -> EmbeddedDomain {
        let configuration = EmbeddedDomainConfiguration(
            domains: ["sip.test"],
            peerDomains: [SIPPeerDomain(domain: "corp.test", nextHop: nil, trustedAddresses: trusted, acceptanceTimeout: .seconds(2))],
            dnsServer: try SocketAddress(ipAddress: "127.0.0.1", port: dns))
        return try await EmbeddedDomain.start(configuration, edge: SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: 0, tlsPort: nil),
                                              store: try DomainFixture.store(users: [:]), group: MultiThreadedEventLoopGroup.singleton)
    }

    @Test("with no TCP record, the _sip._udp SRV target gets the request, with the user's address as Request-URI (§4.1, §4.2)")
    func srvUDP() async throws {
        let socket = try UDPClient()
        let dns = FakeDNS(["_sip._udp.corp.test.": [SRVRecord(priority: 10, weight: 0, port: UInt16(socket.port), target: "127.0.0.1")]])
        let domain = try await Self.domain(dns: try await dns.start(on: MultiThreadedEventLoopGroup.singleton), trusted: ["127.0.0.1"])
        let proxy = try RawEndpoint(user: "proxy", serverPort: domain.edge.udpAddress!.port!, socket: socket)
        let message = SIPRequest.message(from: SIPNameAddress(uri: SIPURI("sip:juliet@xmpp.test")!), to: SIPURI("sip:alice@corp.test")!,
                                         callID: "srv-1", body: Array("found you".utf8))
        async let outcome = domain.deliver(message, to: "alice@corp.test")
        let arrived = try #require(await proxy.request(.message))
        #expect(arrived.uri.description == "sip:alice@corp.test")
        #expect(arrived.topVia?.transport == "UDP")
        try proxy.answer(arrived, 200)
        guard case .accepted = await outcome else { Issue.record("not accepted"); return }
        await domain.stop()
    }

    @Test("SRV for TCP is preferred over UDP; a domain whose SRV says '.' (RFC 2782: no such service) is unreachable (480)")
    func preferenceAndFailure() async throws {
        let tcpProxy = try await SIPEdge.start(SIPEdgeConfiguration(host: "127.0.0.1", udpPort: nil, tcpPort: 0, tlsPort: nil),
                                               handlers: SIPEdgeHandlers(request: { $0.respond($0.request.makeResponse(202, toTag: "tcp")) }),
                                               group: MultiThreadedEventLoopGroup.singleton)
        let dns = FakeDNS([
            "_sip._tcp.corp.test.": [SRVRecord(priority: 10, weight: 0, port: UInt16(tcpProxy.tcpAddress!.port!), target: "127.0.0.1")],
            "_sip._udp.corp.test.": [SRVRecord(priority: 10, weight: 0, port: 9, target: "127.0.0.1")],
            "_sip._tcp.corp.invalid.": [SRVRecord(priority: 0, weight: 0, port: 0, target: ".")],
        ])
        let domain = try await Self.domain(dns: try await dns.start(on: MultiThreadedEventLoopGroup.singleton), trusted: [])
        let message = SIPRequest.message(from: SIPNameAddress(uri: SIPURI("sip:juliet@xmpp.test")!), to: SIPURI("sip:alice@corp.test")!,
                                         callID: "srv-2", body: Array("over tcp".utf8))
        guard case .accepted(let response, _) = await domain.deliver(message, to: "alice@corp.test") else {
            Issue.record("TCP target not used")
            return
        }
        #expect(response.statusCode == 202)
        // corp.invalid says it offers no SIP service; nothing is looked up beyond the fake DNS.
        let lost = EmbeddedDomainConfiguration(
            domains: ["sip.test"], peerDomains: [SIPPeerDomain(domain: "corp.invalid", nextHop: nil, trustedAddresses: [])],
            dnsServer: dns.channel?.localAddress)
        let other = try await EmbeddedDomain.start(lost, edge: SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: nil, tlsPort: nil),
                                                   store: try DomainFixture.store(users: [:]), group: MultiThreadedEventLoopGroup.singleton)
        let unreachable = await other.deliver(message, to: "alice@corp.invalid")
        #expect(unreachable == .offline)
        #expect(EmbeddedDomain.response(to: message, for: unreachable).statusCode == 480)
        for edge in [tcpProxy] { await edge.stop() }
        await domain.stop()
        await other.stop()
    }
}
