import Foundation
import Gateway
import GatewayStore
import Logging
import NIOPosix
import SIPCore
import SIPEdge
import NIOCore
import StoxTesting

/// A gateway for sip.test federating over real s2s (STARTTLS + dialback) with a Prosody for
/// a.test, both on loopback; its state in a temporary directory. Stopped by `stop()`.
final class GatewayFixture: @unchecked Sendable {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    static let users = ["bob": "pw-bob", "carol": "pw-carol", "romeo": "pw-romeo"]

    let directory: URL
    let pki: TestPKI
    var gateway: Gateway
    let prosody: Prosody
    let configuration: GatewayConfiguration
    var storePath: String { configuration.storePath }

    /// The SIP domain: sip.test federating over s2s, or gw.a.test as Prosody's component.
    let sipDomain: String

    /// `prosodyUsers` log in to a.test with password `pw`. With `component`, the gateway is
    /// Prosody's XEP-0114 component gw.a.test (also its SIP domain) instead of an s2s peer.
    /// With `proxy`, Prosody reaches the gateway's s2s listener through a relay the test can cut,
    /// and the gateway reaches Prosody through another.
    let proxy: TCPProxy?
    let outboundProxy: TCPProxy?

    /// With `secure`, both sides have certificates from the test CA and Prosody authenticates
    /// with SASL EXTERNAL (s2s_secure_auth); otherwise self-signed certificates and dialback.
    init(prosodyUsers: [String] = ["alice"], policy: String = "all", component: Bool = false, proxy: Bool = false,
         secure: Bool = false, settings: [String: String] = [:], gatewayDomains: [String] = ["sip.test"]) async throws {
        sipDomain = component ? "gw.a.test" : "sip.test"
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("stox-gateway-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        pki = try TestPKI()
        let storePath = directory.appendingPathComponent("stox.sqlite").path
        try Self.addUsers(to: GatewayStore(path: storePath), domain: sipDomain)
        let (certificate, key) = try pki.leaf("sip", dnsNames: ["sip.test"], selfSigned: !secure)
        outboundProxy = proxy ? try TCPProxy(to: Prosody.s2sPort) : nil
        var environment = [
            "STOX_SIP_DOMAINS": sipDomain, "STOX_SIP_UDP_PORT": "0", "STOX_SIP_TCP_PORT": "0",
            "STOX_SIP_WATCHER_POLICY": policy, "STOX_SIP_ACCEPT_TIMEOUT_DESKTOP": "2", "STOX_SIP_ACCEPT_TIMEOUT_MOBILE": "3",
            // SIPp computes MD5 digests only, and answers the first challenge it is given.
            "STOX_SIP_DIGEST_ALGORITHMS": "MD5",
            "STOX_XMPP_PORT": "0", "STOX_XMPP_CERTIFICATE": certificate, "STOX_XMPP_KEY": key,
            "STOX_XMPP_PEER_POLICY": secure ? "secure" : "dialback", "STOX_XMPP_ROUTES": "a.test=127.0.0.1:\(outboundProxy?.port ?? Prosody.s2sPort)",
            "STOX_STORE_PATH": storePath, "STOX_MAPPINGS_PATH": Golden.repositoryRoot.appendingPathComponent("Mappings").path,
            "STOX_HTTP_LISTEN": "",
        ]
        if secure { environment["STOX_XMPP_CA"] = pki.path("ca.crt") }
        environment.merge(settings) { $1 }
        if component {
            environment["STOX_XMPP_MODE"] = "component"
            environment["STOX_XMPP_COMPONENT_NAME"] = "gw.a.test"
            environment["STOX_XMPP_COMPONENT_SECRET"] = Prosody.componentSecret
            environment["STOX_XMPP_COMPONENT_SERVER"] = "127.0.0.1:\(Prosody.componentPort)"
        }
        configuration = try GatewayConfiguration.load(path: nil, environment: environment)
        var logger = Logger(label: "stox-test")
        logger.logLevel = ProcessInfo.processInfo.environment["STOX_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .notice
        gateway = try await Gateway.start(configuration, group: Self.group, logger: logger)
        do {
            let relay = try proxy ? TCPProxy(to: gateway.s2sPort ?? 1) : nil
            self.proxy = relay
            prosody = try Prosody(mode: secure ? "secure" : "dialback", certificate: try pki.leaf("a", dnsNames: ["a.test"], selfSigned: !secure),
                                  ca: secure ? pki.path("ca.crt") : nil,
                                  gatewayPort: relay?.port ?? gateway.s2sPort ?? 1, users: prosodyUsers.map { ($0, "pw") },
                                  gatewayDomains: gatewayDomains)
        } catch {
            await gateway.stop()
            throw error
        }
    }

    /// `users` in `store`, as `stox users add` would put them.
    static func addUsers(to store: GatewayStore, domain: String) throws {
        for (user, password) in users {
            try store.addUser(StoredUser(
                username: user, domain: domain,
                ha1MD5: DigestAlgorithm.md5.ha1(username: user, realm: domain, password: password),
                ha1SHA256: DigestAlgorithm.sha256.ha1(username: user, realm: domain, password: password)))
        }
    }

    var udpPort: Int { gateway.sipEdge.udpAddress!.port! }
    var tcpPort: Int { gateway.sipEdge.tcpAddress!.port! }

    /// An XMPP user of a.test, logged in to Prosody.
    func xmppUser(_ name: String, resource: String? = nil) throws -> XMPPAgent {
        try XMPPAgent(jid: "\(name)@a.test", password: "pw", server: Prosody.c2sPort, resource: resource)
    }

    /// A SIP endpoint of a user of the gateway's SIP domain, registered with it (UDP, or TCP).
    func sipUser(_ name: String, device: String, tcp: Bool = false) throws -> PJSUAAgent {
        try PJSUAAgent(name: "\(name)-\(device)", user: name, password: Self.users[name]!, registrar: tcp ? tcpPort : udpPort,
                       extra: ["--domain", sipDomain] + (tcp ? ["--transport", "tcp"] : []))
    }

    func stop() async {
        await gateway.stop()
        proxy?.stop()
        outboundProxy?.stop()
        prosody.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
