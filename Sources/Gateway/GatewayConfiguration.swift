import Foundation
import NIOCore
import SIPCore
import SIPDomain
import SIPEdge
import XMPPCore

/// Everything `stox run` needs, read from one file (`Config/stox.conf`) with environment
/// overrides. Values are checked when read: a bad one is refused with its key and the reason,
/// never replaced by a default.
public struct GatewayConfiguration: Sendable {
    public enum XMPPMode: String, Sendable, CaseIterable {
        /// The gateway federates itself (RFC 6120 server-to-server).
        case s2s
        /// The gateway attaches to a local XMPP server as an XEP-0114 component.
        case component
    }

    public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    // SIP
    public var sipDomains: [String] = ["sip.localhost"]
    public var sipListen = "127.0.0.1"
    public var sipUDPPort: Int? = 5060
    public var sipTCPPort: Int? = 5060
    public var sipTLSPort: Int?
    /// SO_RCVBUF for the UDP socket in bytes; nil keeps the kernel's default.
    public var sipUDPReceiveBuffer: Int? = 8 * 1024 * 1024
    public var sipCertificate: String?
    public var sipKey: String?
    public var watcherPolicy: WatcherPolicy = .allowSameDomain
    public var desktopAcceptance: Duration = .seconds(15)
    public var mobileAcceptance: Duration = .seconds(60)
    /// Offered in this order in digest challenges (RFC 8760 §2.4: the strongest first).
    /// MD5 only by default: Debian's baresip 1.0 and SIPp fail on a challenge set that holds an
    /// algorithm they cannot compute, even with MD5 beside it (Config/stox.conf explains).
    public var digestAlgorithms: [DigestAlgorithm] = [.md5]
    public var sha256UserAgents: [String] = ["PJSUA"]
    /// Peer mode: SIP domains another SIP network serves, with the proxy their requests go to
    /// (nil: found through RFC 3263).
    public var peerProxies: [String: SIPURI?] = [:]
    /// The addresses trusted to speak for a peer domain's users; a domain not listed trusts its
    /// proxy's address.
    public var peerTrusted: [String: [String]] = [:]
    /// How messages from XMPP reach a peer domain's users; pager when not listed.
    public var peerMessaging: [String: SIPPeerDomain.Messaging] = [:]

    // XMPP
    public var xmppMode: XMPPMode = .s2s
    public var xmppListen = "127.0.0.1"
    public var xmppPort = 5269
    /// XEP-0368 direct TLS listener (`_xmpps-server._tcp`); nil: none.
    public var xmppDirectTLSPort: Int?
    public var xmppCertificate: String?
    public var xmppKey: String?
    public var xmppCA: String?
    /// Empty: a random secret for this process (XEP-0185 keys need only outlive a verification).
    public var dialbackSecret: String?
    public var defaultPeerPolicy: PeerPolicy = .secure
    /// Stanzas per second one peer domain may send before its stream is paused (not dropped);
    /// bursts of four seconds' worth pass at once.
    public var peerRate: Double = 500
    public var peerPolicies: [String: PeerPolicy] = [:]
    public var routes: [String: Endpoint] = [:]
    /// The DNS server for SRV lookups (host:port); nil: the first nameserver in /etc/resolv.conf.
    public var dnsServer: Endpoint?
    public var componentName: String?
    public var componentServer = Endpoint(host: "127.0.0.1", port: 5347)
    public var componentSecret: String?

    // State, tables, operations
    public var storePath = "var/stox.sqlite"
    /// How long a delivered message's key is kept to recognise a resend of it (a SIP
    /// retransmission, an XMPP peer resending after a lost acknowledgement, a restart).
    public var keepDelivered: Duration = .seconds(600)
    public var mappingsPath = "Mappings"
    public var logLevel = "info"
    /// `/metrics` and `/health`; nil disables them.
    public var httpListen: Endpoint? = Endpoint(host: "127.0.0.1", port: 5280)

    public init() {}

    /// The keys a file may set, in the order `check-config` explains them.
    public static let keys: [String] = [
        "sip.domains", "sip.listen", "sip.udp_port", "sip.tcp_port", "sip.tls_port", "sip.udp_receive_buffer", "sip.certificate", "sip.key",
        "sip.watcher_policy", "sip.accept_timeout.desktop", "sip.accept_timeout.mobile", "sip.digest_algorithms", "sip.digest_sha256_agents",
        "sip.peer_domains", "sip.peer_trusted", "sip.peer_im",
        "xmpp.mode", "xmpp.listen", "xmpp.port", "xmpp.direct_tls_port", "xmpp.certificate", "xmpp.key", "xmpp.ca", "xmpp.dialback_secret",
        "xmpp.peer_policy", "xmpp.peer_policies", "xmpp.peer_rate", "xmpp.routes", "xmpp.dns_server",
        "xmpp.component.name", "xmpp.component.server", "xmpp.component.secret",
        "store.path", "store.keep_delivered", "mappings.path", "log.level", "http.listen",
    ]

    /// The environment prefixes of the configuration's sections: `sip.` → `STOX_SIP_`.
    static let sectionPrefixes: [String] = Array(Set(keys.map { environmentName(String($0.prefix(while: { $0 != "." }))) + "_" })).sorted()

    /// The environment variable that overrides `key`: `sip.udp_port` → `STOX_SIP_UDP_PORT`.
    public static func environmentName(_ key: String) -> String {
        "STOX_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    /// Reads `path` (when given) and then the environment; every problem is reported at once.
    public static func load(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationProblems) -> GatewayConfiguration {
        var values: [String: (value: String, origin: String)] = [:]
        var problems: [String] = []
        if let path {
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw ConfigurationProblems(["\(path): cannot be read"])
            }
            for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                guard !trimmed.isEmpty else { continue }
                let origin = "\(path):\(index + 1)"
                guard let equals = trimmed.firstIndex(of: "=") else {
                    problems.append("\(origin): expected `key = value`")
                    continue
                }
                let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
                let value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                guard keys.contains(key) else {
                    problems.append("\(origin): \(key): not a known key")
                    continue
                }
                if values[key] != nil { problems.append("\(origin): \(key): set twice") }
                values[key] = (value, origin)
            }
        }
        for key in keys {
            if let value = environment[environmentName(key)] { values[key] = (value, environmentName(key)) }
        }
        // A misspelt variable in a unit file must not pass silently where the same key in the
        // file is refused. Variables outside the sections' prefixes (STOX_CONFIG, test and
        // bench variables) are not configuration keys and are left alone.
        let known = Set(keys.map(environmentName))
        for name in environment.keys.sorted() where !known.contains(name)
            && sectionPrefixes.contains(where: { name.hasPrefix($0) }) {
            problems.append("\(name): names no known key (the keys are listed in Config/stox.conf)")
        }
        var configuration = GatewayConfiguration()
        for key in keys {
            guard let (value, origin) = values[key] else { continue }
            do {
                try configuration.set(key, value)
            } catch {
                problems.append("\(origin): \(key): \(error.reason)")
            }
        }
        problems += configuration.consistencyProblems()
        guard problems.isEmpty else { throw ConfigurationProblems(problems) }
        return configuration
    }

    struct BadValue: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private mutating func set(_ key: String, _ value: String) throws(BadValue) {
        let optional: String? = value.isEmpty ? nil : value
        switch key {
        case "sip.domains":
            // Empty: the gateway serves no SIP domain itself, only peer domains (sip.peer_domains).
            let domains = Self.list(value).map { $0.lowercased() }
            for domain in domains where (try? JID(parsing: domain)) == nil || domain.contains("@") || domain.contains("/") {
                throw BadValue("\(domain) is not a domain name")
            }
            sipDomains = domains
        case "sip.listen": sipListen = try Self.host(value)
        case "sip.udp_port": sipUDPPort = try optional.map(Self.port)
        case "sip.tcp_port": sipTCPPort = try optional.map(Self.port)
        case "sip.tls_port": sipTLSPort = try optional.map(Self.port)
        case "sip.udp_receive_buffer": sipUDPReceiveBuffer = try optional.map(Self.bytes)
        case "sip.certificate": sipCertificate = try optional.map(Self.readableFile)
        case "sip.key": sipKey = try optional.map(Self.readableFile)
        case "sip.watcher_policy":
            switch value {
            case "ask": watcherPolicy = .ask
            case "same-domain": watcherPolicy = .allowSameDomain
            case "all": watcherPolicy = .allowAll
            default: throw BadValue("\(value): expected ask, same-domain or all")
            }
        case "sip.accept_timeout.desktop": desktopAcceptance = try Self.seconds(value, within: 1...300)
        case "sip.accept_timeout.mobile": mobileAcceptance = try Self.seconds(value, within: 1...300)
        case "sip.digest_algorithms":
            var algorithms: [DigestAlgorithm] = []
            for token in Self.list(value) {
                guard let algorithm = DigestAlgorithm(token: token) else { throw BadValue("\(token): expected SHA-256 or MD5") }
                if !algorithms.contains(algorithm) { algorithms.append(algorithm) }
            }
            guard !algorithms.isEmpty else { throw BadValue("at least one algorithm is needed") }
            digestAlgorithms = algorithms
        case "sip.digest_sha256_agents": sha256UserAgents = Self.list(value)
        case "sip.peer_domains":
            var proxies: [String: SIPURI?] = [:]
            for item in Self.list(value) {
                guard let equals = item.firstIndex(of: "=") else { throw BadValue("\(item): expected domain=proxy (proxy may be empty: RFC 3263)") }
                let domain = try Self.domainName(String(item[..<equals]).trimmingCharacters(in: .whitespaces))
                let proxy = item[item.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                guard proxies[domain] == nil else { throw BadValue("\(domain): listed twice") }
                proxies[domain] = proxy.isEmpty ? .some(nil) : .some(try Self.proxyURI(proxy))
            }
            peerProxies = proxies
        case "sip.peer_trusted":
            peerTrusted = try Self.perDomain(value, separator: "=", expected: "domain=address|address") { (addresses: String) throws(BadValue) -> [String] in
                let list = addresses.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                guard !list.isEmpty else { throw BadValue("\(addresses): expected one or more IP addresses separated by |") }
                for address in list where (try? SocketAddress(ipAddress: address, port: 0)) == nil {
                    throw BadValue("\(address) is not an IP address (requests are trusted by their source address)")
                }
                return list
            }
        case "sip.peer_im":
            peerMessaging = try Self.perDomain(value, separator: "=", expected: "domain=pager or domain=session") { (mode: String) throws(BadValue) -> SIPPeerDomain.Messaging in
                guard let messaging = SIPPeerDomain.Messaging(rawValue: mode) else { throw BadValue("\(mode): expected pager or session") }
                return messaging
            }
        case "xmpp.mode":
            guard let mode = XMPPMode(rawValue: value) else { throw BadValue("\(value): expected s2s or component") }
            xmppMode = mode
        case "xmpp.listen": xmppListen = try Self.host(value)
        case "xmpp.port": xmppPort = try Self.port(value)
        case "xmpp.direct_tls_port": xmppDirectTLSPort = try optional.map(Self.port)
        case "xmpp.certificate": xmppCertificate = try optional.map(Self.readableFile)
        case "xmpp.key": xmppKey = try optional.map(Self.readableFile)
        case "xmpp.ca": xmppCA = try optional.map(Self.readableFile)
        case "xmpp.dialback_secret":
            if let optional, optional.utf8.count < 16 { throw BadValue("shorter than 16 bytes: guessable") }
            dialbackSecret = optional
        case "xmpp.peer_policy": defaultPeerPolicy = try Self.policy(value)
        case "xmpp.peer_rate":
            guard let rate = Double(value), rate >= 1, rate <= 10_000_000 else {
                throw BadValue("\(value): expected stanzas per second, 1 to 10000000")
            }
            peerRate = rate
        case "xmpp.peer_policies":
            peerPolicies = try Self.perDomain(value, separator: ":", expected: "domain:policy", Self.policy)
        case "xmpp.routes":
            routes = try Self.perDomain(value, separator: "=", expected: "domain=host:port", Self.endpoint)
        case "xmpp.dns_server": dnsServer = try optional.map(Self.endpoint)
        case "xmpp.component.name": componentName = optional?.lowercased()
        case "xmpp.component.server": componentServer = try Self.endpoint(value)
        case "xmpp.component.secret": componentSecret = optional
        case "store.path":
            guard !value.isEmpty else { throw BadValue("a path is needed") }
            storePath = value
        case "store.keep_delivered": keepDelivered = try Self.seconds(value, within: 1...604_800)
        case "mappings.path":
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: value, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw BadValue("\(value) is not a directory")
            }
            mappingsPath = value
        case "log.level":
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(value) else {
                throw BadValue("\(value): expected trace, debug, info, notice, warning, error or critical")
            }
            logLevel = value
        case "http.listen": httpListen = try optional.map(Self.endpoint)
        default:
            throw BadValue("not a known key")
        }
    }

    /// Problems between keys, reported with the keys involved.
    func consistencyProblems() -> [String] {
        var problems: [String] = []
        if (sipCertificate == nil) != (sipKey == nil) { problems.append("sip.certificate, sip.key: set both or neither") }
        if sipTLSPort != nil, sipCertificate == nil { problems.append("sip.tls_port: needs sip.certificate and sip.key") }
        if sipUDPPort == nil, sipTCPPort == nil, sipTLSPort == nil { problems.append("sip.udp_port, sip.tcp_port, sip.tls_port: no SIP listener") }
        if sipDomains.isEmpty, peerProxies.isEmpty { problems.append("sip.domains, sip.peer_domains: no SIP domain, served or peered: the gateway would carry nothing") }
        for domain in peerProxies.keys.sorted() where sipDomains.contains(domain) {
            problems.append("sip.peer_domains: \(domain) is also in sip.domains: a domain is served here or by a peer network, not both")
        }
        for domain in peerTrusted.keys.sorted() where peerProxies[domain] == nil {
            problems.append("sip.peer_trusted: \(domain) is not in sip.peer_domains")
        }
        for domain in peerMessaging.keys.sorted() where peerProxies[domain] == nil {
            problems.append("sip.peer_im: \(domain) is not in sip.peer_domains")
        }
        for (domain, proxy) in peerProxies.sorted(by: { $0.key < $1.key }) where proxy == nil && peerTrusted[domain] == nil {
            problems.append("sip.peer_trusted: \(domain) finds its proxy through DNS, so the addresses trusted to speak for its users must be listed")
        }
        for (domain, proxy) in peerProxies.sorted(by: { $0.key < $1.key }) {
            if let proxy, proxy.transport?.lowercased() == "tls" || proxy.scheme == .sips, sipCertificate == nil {
                problems.append("sip.peer_domains: \(domain) is reached over TLS: needs sip.certificate and sip.key")
            }
        }
        if (xmppCertificate == nil) != (xmppKey == nil) { problems.append("xmpp.certificate, xmpp.key: set both or neither") }
        if xmppDirectTLSPort != nil, xmppCertificate == nil { problems.append("xmpp.direct_tls_port: needs xmpp.certificate and xmpp.key") }
        if xmppMode == .component {
            if componentName == nil { problems.append("xmpp.component.name: needed in component mode") }
            if componentSecret == nil { problems.append("xmpp.component.secret: needed in component mode (there is no default secret)") }
        }
        return problems
    }

    /// The SIP domains of peer networks, with what their users' requests go to and come from.
    public var sipPeers: [SIPPeerDomain] {
        peerProxies.keys.sorted().map { domain in
            let proxy = peerProxies[domain] ?? nil
            let target = proxy.flatMap(Self.target)
            var peer = SIPPeerDomain(domain: domain, nextHop: target, trustedAddresses: peerTrusted[domain].map(Set.init))
            peer.messaging = peerMessaging[domain] ?? .pager
            if var hop = peer.nextHop, hop.transport == .tls {
                // RFC 5922 §7: the proxy's certificate must name the domain it serves.
                hop.serverName = domain
                peer.nextHop = hop
            }
            return peer
        }
    }

    /// Where a proxy URI points: its transport (UDP unless said, TLS for sips) and address.
    static func target(_ uri: SIPURI) -> SIPTarget? {
        let secure = uri.scheme == .sips || uri.transport?.lowercased() == "tls"
        let transport: SIPSource.Transport = secure ? .tls : uri.transport?.lowercased() == "tcp" ? .tcp : .udp
        let host = uri.host.hasPrefix("[") ? String(uri.host.dropFirst().dropLast()) : uri.host
        guard let address = try? SocketAddress(ipAddress: host, port: Int(uri.port ?? (secure ? 5061 : 5060))) else { return nil }
        return SIPTarget(transport: transport, address: address)
    }

    static func proxyURI(_ value: String) throws(BadValue) -> SIPURI {
        guard let uri = SIPURI(value), uri.isSIP else { throw BadValue("\(value): expected a SIP URI such as sip:10.0.0.5:5061;transport=tls") }
        if let transport = uri.transport?.lowercased(), !["udp", "tcp", "tls"].contains(transport) {
            throw BadValue("\(value): transport=\(transport): expected udp, tcp or tls")
        }
        guard target(uri) != nil else {
            throw BadValue("\(value): the proxy is given by its IP address (leave it empty to find it through RFC 3263 DNS records)")
        }
        return uri
    }

    static func domainName(_ value: String) throws(BadValue) -> String {
        let domain = value.lowercased()
        guard !domain.isEmpty, (try? JID(parsing: domain)) != nil, !domain.contains("@"), !domain.contains("/") else {
            throw BadValue("\(value) is not a domain name")
        }
        return domain
    }

    static func list(_ value: String) -> [String] {
        value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// A list of `domain<separator>value` items, by (lower-cased) domain.
    static func perDomain<T>(_ value: String, separator: Character, expected: String,
                             _ parse: (String) throws(BadValue) -> T) throws(BadValue) -> [String: T] {
        var result: [String: T] = [:]
        for item in list(value) {
            let parts = item.split(separator: separator, maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty else { throw BadValue("\(item): expected \(expected)") }
            result[parts[0].lowercased()] = try parse(parts[1])
        }
        return result
    }

    /// A size in bytes, with an optional binary K or M suffix (`8M` is 8 MiB).
    static func bytes(_ value: String) throws(BadValue) -> Int {
        var digits = Substring(value.uppercased())
        var unit = 1
        if digits.hasSuffix("K") { unit = 1024; digits = digits.dropLast() } else if digits.hasSuffix("M") { unit = 1024 * 1024; digits = digits.dropLast() }
        guard let count = Int(digits), count > 0, count <= (1 << 30) / unit else {
            throw BadValue("\(value): expected a size in bytes up to 1G, with an optional K or M suffix")
        }
        return count * unit
    }

    static func port(_ value: String) throws(BadValue) -> Int {
        guard let port = Int(value), (0...65535).contains(port) else { throw BadValue("\(value) is not a port (0-65535)") }
        return port
    }

    static func host(_ value: String) throws(BadValue) -> String {
        guard !value.isEmpty, !value.contains(" ") else { throw BadValue("\(value) is not an address") }
        return value
    }

    static func endpoint(_ value: String) throws(BadValue) -> Endpoint {
        guard let colon = value.lastIndex(of: ":") else { throw BadValue("\(value): expected host:port") }
        var host = String(value[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return Endpoint(host: try Self.host(host), port: try Self.port(String(value[value.index(after: colon)...])))
    }

    static func readableFile(_ value: String) throws(BadValue) -> String {
        guard FileManager.default.isReadableFile(atPath: value) else { throw BadValue("\(value) is not a readable file") }
        return value
    }

    static func seconds(_ value: String, within range: ClosedRange<Int>) throws(BadValue) -> Duration {
        guard let seconds = Int(value), range.contains(seconds) else {
            throw BadValue("\(value): expected whole seconds in \(range.lowerBound)...\(range.upperBound)")
        }
        return .seconds(seconds)
    }

    /// `secure`: TLS and a valid certificate (SASL EXTERNAL, or dialback over it);
    /// `dialback`: TLS required, dialback proves the domain whatever the certificate;
    /// `dialback-plain`: dialback without TLS, for private networks only.
    static func policy(_ value: String) throws(BadValue) -> PeerPolicy {
        switch value {
        case "secure": return .secure
        case "dialback": return PeerPolicy(tls: .required, allowDialback: true, requireValidCertificate: false)
        case "dialback-plain": return PeerPolicy(tls: .optional, allowDialback: true, requireValidCertificate: false)
        default: throw BadValue("\(value): expected secure, dialback or dialback-plain")
        }
    }

    /// The policy as the file writes it.
    public var watcherPolicyName: String {
        switch watcherPolicy {
        case .ask: "ask"
        case .allowSameDomain: "same-domain"
        case .allowAll: "all"
        }
    }

    public static func policyName(_ policy: PeerPolicy) -> String {
        switch (policy.tls, policy.requireValidCertificate) {
        case (.required, true): "secure"
        case (.required, false): "dialback"
        default: "dialback-plain"
        }
    }
}

/// Every problem found in a configuration, one line each: `origin: key: reason`.
public struct ConfigurationProblems: Error, CustomStringConvertible {
    public let problems: [String]
    public init(_ problems: [String]) { self.problems = problems }
    public var description: String { problems.joined(separator: "\n") }
}
