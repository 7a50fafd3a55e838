import Foundation
import Gateway
import NIOCore
import SIPDomain
import SIPEdge
import Testing

@Suite struct ConfigurationTests {
    @Test("the shipped Config/stox.conf loads")
    func shipped() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let previous = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(root.path)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        let configuration = try GatewayConfiguration.load(path: "Config/stox.conf", environment: [:])
        #expect(configuration.sipListen == "127.0.0.1")
        #expect(configuration.xmppListen == "127.0.0.1")
        #expect(configuration.dialbackSecret == nil, "no secret is shipped")
        #expect(configuration.peerRate == 500, "flood protection on by default")
        // A busy partner server needs more; the environment overrides the file.
        let raised = try GatewayConfiguration.load(path: "Config/stox.conf", environment: ["STOX_XMPP_PEER_RATE": "20000"])
        #expect(raised.peerRate == 20_000)
    }

    @Test("peer mode: sip.peer_domains with a proxy URI or DNS, sip.peer_trusted, sip.peer_im; sip.domains may be empty")
    func peerDomains() throws {
        let readable = #filePath
        let configuration = try GatewayConfiguration.load(path: nil, environment: [
            "STOX_SIP_DOMAINS": "",
            "STOX_SIP_PEER_DOMAINS": "Corp.Example=sip:10.0.0.5:5061;transport=tls, other.example=, pbx.example=sip:[2001:db8::5]",
            "STOX_SIP_PEER_TRUSTED": "other.example=192.0.2.1|192.0.2.2",
            "STOX_SIP_PEER_IM": "corp.example=session",
            "STOX_SIP_CERTIFICATE": readable, "STOX_SIP_KEY": readable,
        ])
        #expect(configuration.sipDomains.isEmpty)
        let peers = Dictionary(uniqueKeysWithValues: configuration.sipPeers.map { ($0.domain, $0) })
        let corp = try #require(peers["corp.example"])
        #expect(corp.nextHop?.transport == .tls)
        #expect(corp.nextHop?.address.ipAddress == "10.0.0.5" && corp.nextHop?.address.port == 5061)
        #expect(corp.nextHop?.serverName == "corp.example", "RFC 5922: the proxy's certificate names the domain")
        #expect(corp.trustedAddresses == ["10.0.0.5"], "by default the proxy's address is trusted")
        #expect(corp.messaging == .session)
        let other = try #require(peers["other.example"])
        #expect(other.nextHop == nil, "found through RFC 3263")
        #expect(other.trustedAddresses == ["192.0.2.1", "192.0.2.2"])
        #expect(other.messaging == .pager)
        let pbx = try #require(peers["pbx.example"])
        #expect(pbx.nextHop?.transport == .udp && pbx.nextHop?.address.port == 5060)
    }

    @Test("a wrong peer setting is refused with its key and the reason")
    func peerRefusals() throws {
        func problems(_ environment: [String: String]) -> [String] {
            do {
                _ = try GatewayConfiguration.load(path: nil, environment: environment)
                return []
            } catch {
                return error.problems
            }
        }
        let cases: [([String: String], String)] = [
            (["STOX_SIP_PEER_DOMAINS": "corp.example"], "sip.peer_domains: corp.example: expected domain=proxy"),
            (["STOX_SIP_PEER_DOMAINS": "corp.example=sip:proxy.corp.example"], "the proxy is given by its IP address"),
            (["STOX_SIP_PEER_DOMAINS": "corp.example=http://10.0.0.5"], "expected a SIP URI"),
            (["STOX_SIP_PEER_DOMAINS": "corp.example=sip:10.0.0.5;transport=sctp"], "transport=sctp: expected udp, tcp or tls"),
            (["STOX_SIP_PEER_DOMAINS": "corp.example="], "sip.peer_trusted: corp.example finds its proxy through DNS"),
            (["STOX_SIP_PEER_DOMAINS": "sip.localhost=sip:10.0.0.5"], "sip.localhost is also in sip.domains"),
            (["STOX_SIP_PEER_TRUSTED": "corp.example=10.0.0.5"], "sip.peer_trusted: corp.example is not in sip.peer_domains"),
            (["STOX_SIP_PEER_DOMAINS": "corp.example=sip:10.0.0.5", "STOX_SIP_PEER_TRUSTED": "corp.example=proxy.corp"], "proxy.corp is not an IP address"),
            (["STOX_SIP_PEER_DOMAINS": "corp.example=sip:10.0.0.5", "STOX_SIP_PEER_IM": "corp.example=fax"], "fax: expected pager or session"),
            (["STOX_SIP_PEER_DOMAINS": "corp.example=sips:10.0.0.5"], "reached over TLS: needs sip.certificate"),
            (["STOX_SIP_DOMAINS": ""], "no SIP domain, served or peered"),
        ]
        for (environment, expected) in cases {
            let found = problems(environment)
            #expect(found.contains { $0.contains(expected) }, "\(environment): \(found)")
        }
    }
}
