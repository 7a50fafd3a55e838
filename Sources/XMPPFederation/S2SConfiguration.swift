import NIOSSL
import XMPPCore

/// How the gateway federates over server-to-server streams.
public struct S2SConfiguration: Sendable {
    /// A certificate chain and key in PEM files. One certificate should name every served domain
    /// (subjectAltName dNSName), since peers check it against the domain they asked for.
    public struct TLSMaterial: Sendable {
        public var certificateChainPath: String
        public var privateKeyPath: String
        public init(certificateChainPath: String, privateKeyPath: String) {
            self.certificateChainPath = certificateChainPath
            self.privateKeyPath = privateKeyPath
        }
    }

    public var servedDomains: Set<String>
    /// The default certificate, used for served domains without their own.
    public var tls: TLSMaterial?
    /// Per served domain certificates: chosen by the stream header's `to` for STARTTLS, by SNI
    /// for direct TLS, and by our own domain as client certificate.
    public var certificates: [String: TLSMaterial] = [:]
    /// A CA file to trust instead of the system store (private federations, tests).
    public var trustedCAPath: String?
    public var dialbackSecret: String
    public var policies: [String: PeerPolicy]
    public var defaultPolicy: PeerPolicy
    /// Static routes: peer domain → host and port. Other domains are found through DNS.
    public var routes: [String: (host: String, port: Int)]
    /// Inbound stanzas per second per peer domain, with bursts up to `burst`. Beyond it the
    /// gateway stops reading that peer's streams for a while (TCP pushes back); nothing is
    /// dropped.
    public var peerRate: (perSecond: Double, burst: Double) = (500, 2000)
    /// Seconds: after a failed connection to a domain, the next attempt waits a random time up
    /// to `base * 2^failures`, capped (and at least a tenth of `base`).
    public var reconnectBackoff: (base: Double, cap: Double) = (1, 300)
    /// The DNS server for SRV lookups; `nil` uses the first nameserver of /etc/resolv.conf.
    public var dnsServer: (host: String, port: Int)?
    public var listenHost: String
    public var listenPort: Int
    /// A second listener where connections start with TLS (XEP-0368), if set.
    public var directTLSPort: Int?
    /// Seconds to wait for a link to authenticate before bouncing its queue.
    public var establishTimeout: Int64
    /// Liveness of established links, in milliseconds: a whitespace keepalive when nothing was
    /// written for `keepalive` (RFC 6120 §4.6.1); close after `idle` without a stanza either way
    /// (Lync's StreamInactivityTimeout is 600 s); an XEP-0199 ping after `pingInterval` without
    /// one, and close as half-open when no answer comes within `pingTimeout`.
    public var liveness: Liveness
    /// Offer XEP-0198 on inbound streams (acknowledgements follow the durable handler).
    public var streamManagement = false

    public struct Liveness: Sendable {
        public var keepalive: Int64
        public var idle: Int64
        public var pingInterval: Int64
        public var pingTimeout: Int64

        public init(keepalive: Int64 = 60_000, idle: Int64 = 600_000, pingInterval: Int64 = 300_000, pingTimeout: Int64 = 30_000) {
            self.keepalive = keepalive
            self.idle = idle
            self.pingInterval = pingInterval
            self.pingTimeout = pingTimeout
        }
    }

    public init(
        servedDomains: Set<String>, tls: TLSMaterial? = nil, trustedCAPath: String? = nil, dialbackSecret: String,
        policies: [String: PeerPolicy] = [:], defaultPolicy: PeerPolicy = .secure, routes: [String: (host: String, port: Int)] = [:],
        listenHost: String = "127.0.0.1", listenPort: Int = 5269, establishTimeout: Int64 = 30, liveness: Liveness = Liveness()
    ) {
        self.servedDomains = servedDomains
        self.tls = tls
        self.trustedCAPath = trustedCAPath
        self.dialbackSecret = dialbackSecret
        self.policies = policies
        self.defaultPolicy = defaultPolicy
        self.routes = routes
        self.dnsServer = nil
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.directTLSPort = nil
        self.establishTimeout = establishTimeout
        self.liveness = liveness
    }

    public func policy(for domain: String) -> PeerPolicy { policies[domain] ?? defaultPolicy }

    var inboundConfiguration: InboundNegotiation.Configuration {
        .init(servedDomains: servedDomains, policies: policies, defaultPolicy: defaultPolicy,
              tlsAvailable: tls != nil || !certificates.isEmpty, dialbackSecret: dialbackSecret,
              streamManagement: streamManagement)
    }

    // MARK: TLS contexts

    private func trustRoots() -> NIOSSLTrustRoots {
        trustedCAPath.map { .file($0) } ?? .default
    }

    /// Whether a certificate exists for `domain` (its own or the default).
    func hasCertificate(for domain: String) -> Bool { certificates[domain] != nil || tls != nil }

    private func identity(for domain: String?) throws -> ([NIOSSLCertificateSource], NIOSSLPrivateKeySource)? {
        guard let tls = domain.flatMap({ certificates[$0] }) ?? tls ?? certificates.values.first else { return nil }
        let chain = try NIOSSLCertificate.fromPEMFile(tls.certificateChainPath).map(NIOSSLCertificateSource.certificate)
        let key = try NIOSSLPrivateKey(file: tls.privateKeyPath, format: .pem)
        return (chain, .privateKey(key))
    }

    /// The client side toward `domain`: full verification when the policy wants a valid
    /// certificate (a failure ends the handshake), none otherwise; our certificate goes along
    /// as the client certificate for SASL EXTERNAL.
    func clientContext(for domain: String, from localDomain: String, directTLS: Bool = false) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        // XEP-0368 §3: direct TLS connections announce the protocol with ALPN.
        if directTLS { configuration.applicationProtocols = ["xmpp-server"] }
        configuration.trustRoots = trustRoots()
        configuration.certificateVerification = policy(for: domain).requireValidCertificate ? .fullVerification : .none
        if let (chain, key) = try identity(for: localDomain) {
            configuration.certificateChain = chain
            configuration.privateKey = key
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// The server side for a peer: a presented client certificate must validate (it decides
    /// SASL EXTERNAL) unless the peer's policy does not ask for valid certificates.
    func serverContext(for peerDomain: String?, localDomain: String?, directTLS: Bool = false) throws -> NIOSSLContext? {
        guard let (chain, key) = try identity(for: localDomain) else { return nil }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: key)
        if directTLS { configuration.applicationProtocols = ["xmpp-server"] }
        configuration.trustRoots = trustRoots()
        let policy = peerDomain.map(self.policy(for:)) ?? defaultPolicy
        configuration.certificateVerification = policy.requireValidCertificate ? .optionalVerification : .none
        return try NIOSSLContext(configuration: configuration)
    }
}

extension NIOSSLCertificate {
    /// What `PeerCertificate` needs: the subjectAltName dNSNames.
    func peerCertificate(chainValid: Bool) -> PeerCertificate {
        var names: [String] = []
        for name in _subjectAlternativeNames() where name.nameType == .dnsName {
            names.append(name.contents.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) })
        }
        return PeerCertificate(chainValid: chainValid, dnsNames: names)
    }
}
