import NIOCore
import SIPCore
import SIPEdge

/// How long a forked request waits for one kind of endpoint to accept it. Desktop clients answer
/// at once or not at all; mobile clients may need a push wake-up first, so Lync gives them
/// longer (../shared/reference/protocols.md §4).
public struct EndpointClass: Hashable, Sendable {
    public var name: String
    public var acceptanceTimeout: Duration

    public init(name: String, acceptanceTimeout: Duration) {
        self.name = name
        self.acceptanceTimeout = acceptanceTimeout
    }

    public static let desktop = EndpointClass(name: "desktop", acceptanceTimeout: .seconds(15))
    public static let mobile = EndpointClass(name: "mobile", acceptanceTimeout: .seconds(60))
}

/// Puts a registered endpoint in a class, by a Contact parameter or its User-Agent.
public struct EndpointClassRule: Hashable, Sendable {
    public enum Match: Hashable, Sendable {
        /// A Contact parameter (a feature tag such as RFC 3840's `+sip.mobility`), with the
        /// value it must have (quotes ignored, case-insensitive), or any value when nil.
        case contactParameter(name: String, value: String?)
        /// A case-insensitive substring of the REGISTER's User-Agent.
        case userAgentContains(String)
    }

    public var match: Match
    public var className: String

    public init(_ match: Match, className: String) {
        self.match = match
        self.className = className
    }

    /// RFC 3840 §9's mobility tag, then the User-Agent words common mobile clients send.
    public static let defaults: [EndpointClassRule] = [
        EndpointClassRule(.contactParameter(name: "+sip.mobility", value: "mobile"), className: "mobile"),
        EndpointClassRule(.userAgentContains("Android"), className: "mobile"),
        EndpointClassRule(.userAgentContains("iPhone"), className: "mobile"),
        EndpointClassRule(.userAgentContains("iOS"), className: "mobile"),
    ]
}

/// Who may watch a user's presence without the user's explicit decision.
public enum WatcherPolicy: String, Hashable, Sendable {
    /// Every unknown watcher stays pending until the user decides.
    case ask
    /// Watchers from the served domains are allowed at once; others stay pending.
    case allowSameDomain = "same-domain"
    /// Everyone is allowed at once.
    case allowAll = "all"
}

/// A SIP domain served by another SIP network (peer mode: a Lync/SfB pool, Kamailio, Asterisk)
/// that routes requests for XMPP domains to the gateway. Requests for its users go to its proxy;
/// requests from its proxy's addresses are trusted to come from its users (no digest: the
/// network authenticated them).
public struct SIPPeerDomain: Hashable, Sendable {
    public var domain: String
    /// Where requests for the domain's users go: its proxy. Nil finds it through RFC 3263
    /// (SRV `_sips._tcp`, `_sip._tcp`, `_sip._udp`, then the domain's address).
    public var nextHop: SIPTarget?
    /// The IP addresses the domain's requests come from. By default the next hop's; with DNS
    /// they must be given (nobody is trusted otherwise).
    public var trustedAddresses: Set<String>
    /// How long a request waits for the network to deliver it (it forks on its side).
    public var acceptanceTimeout: Duration
    /// How messages from the other side reach the domain's users.
    public var messaging: Messaging = .pager

    public enum Messaging: String, Hashable, Sendable {
        /// One MESSAGE per message (RFC 3428).
        case pager
        /// Lync-style INVITE sessions (`m=message … sip`), messages inside the dialog.
        case session
    }

    public init(domain: String, nextHop: SIPTarget?, trustedAddresses: Set<String>? = nil, acceptanceTimeout: Duration = .seconds(30)) {
        self.domain = domain.lowercased()
        self.nextHop = nextHop
        self.trustedAddresses = trustedAddresses ?? Set([nextHop?.address.ipAddress].compactMap { $0 })
        self.acceptanceTimeout = acceptanceTimeout
    }
}

/// Settings of the SIP domains the gateway serves itself.
public struct EmbeddedDomainConfiguration: Sendable {
    /// The served domains; each is also its digest realm.
    public var domains: [String]
    /// RFC 3261 §10.3: registrations shorter than this get 423 with Min-Expires.
    public var minimumExpires: UInt32
    public var maximumExpires: UInt32
    public var defaultExpires: UInt32
    /// Bindings one address-of-record may hold (MPOP); more get 403.
    public var maximumBindings: Int
    public var nonceLifetime: Duration
    public var endpointClasses: [EndpointClass]
    public var endpointRules: [EndpointClassRule]
    /// The class of an endpoint no rule matches.
    public var defaultClass: String
    /// A MESSAGE that arrived over SIP must be answered before the sender's non-INVITE client
    /// transaction gives up (Timer F, 64*T1 = 32 s), so its forks wait at most this long, even
    /// for a class with a longer acceptance timeout. Deliveries started by the gateway (from
    /// XMPP) have no such bound.
    public var sipMessageBudget: Duration
    public var watcherPolicy: WatcherPolicy
    /// Digest algorithms offered, in order (RFC 7616; SHA-256 first by default).
    public var digestAlgorithms: [DigestAlgorithm]
    /// User-Agent substrings (case-insensitive) of clients offered SHA-256 before MD5 whatever
    /// `digestAlgorithms` says: clients known to pick the algorithm they can compute among
    /// several challenges (RFC 8760 §2.4), where others fail on the first they cannot.
    public var sha256UserAgents: [String] = []
    /// Every algorithm some client may be offered: what verification accepts.
    public var acceptedDigestAlgorithms: [DigestAlgorithm] {
        let offered = Set(digestAlgorithms + (sha256UserAgents.isEmpty ? [] : [.sha256, .md5]))
        return DigestAlgorithm.allCases.filter(offered.contains)
    }

    /// The algorithms offered to a client with this User-Agent.
    public func digestAlgorithms(forUserAgent userAgent: String?) -> [DigestAlgorithm] {
        guard let userAgent = userAgent?.lowercased(), sha256UserAgents.contains(where: { userAgent.contains($0.lowercased()) }) else {
            return digestAlgorithms
        }
        return [.sha256, .md5]
    }
    /// An IM session with no message either way for this long is closed with BYE (Lync's
    /// StreamInactivityTimeout is 600 s).
    public var imSessionInactivity: Duration
    /// Domains of SIP networks the gateway peers with (peer mode).
    public var peerDomains: [SIPPeerDomain]
    /// The DNS server for RFC 3263 lookups; nil uses the first of /etc/resolv.conf.
    public var dnsServer: SocketAddress?
    /// How published documents rank and read for Lync watchers: the gateway passes the mapping
    /// tables' rules; on its own the domain knows only open from closed.
    public var presenceRules: PresenceRules = .basicOnly

    public init(domains: [String], minimumExpires: UInt32 = 60, maximumExpires: UInt32 = 3600, defaultExpires: UInt32 = 3600,
                maximumBindings: Int = 16, nonceLifetime: Duration = .seconds(300),
                endpointClasses: [EndpointClass] = [.desktop, .mobile], endpointRules: [EndpointClassRule] = EndpointClassRule.defaults,
                defaultClass: String = "desktop", sipMessageBudget: Duration = .seconds(30), watcherPolicy: WatcherPolicy = .allowSameDomain,
                digestAlgorithms: [DigestAlgorithm] = DigestAlgorithm.allCases, imSessionInactivity: Duration = .seconds(600),
                peerDomains: [SIPPeerDomain] = [], dnsServer: SocketAddress? = nil, presenceRules: PresenceRules = .basicOnly) {
        self.presenceRules = presenceRules
        self.domains = domains.map { $0.lowercased() }
        self.minimumExpires = minimumExpires
        self.maximumExpires = maximumExpires
        self.defaultExpires = defaultExpires
        self.maximumBindings = maximumBindings
        self.nonceLifetime = nonceLifetime
        self.endpointClasses = endpointClasses
        self.endpointRules = endpointRules
        self.defaultClass = defaultClass
        self.sipMessageBudget = sipMessageBudget
        self.watcherPolicy = watcherPolicy
        self.digestAlgorithms = digestAlgorithms
        self.imSessionInactivity = imSessionInactivity
        self.peerDomains = peerDomains
        self.dnsServer = dnsServer
    }

    public func serves(_ host: String) -> Bool { domains.contains(host.lowercased()) }

    /// Whether the host of an address of record (`user@host`, or a bare host) is served here.
    public func serves(aor: String) -> Bool {
        let utf8 = aor.utf8
        let host = utf8[(utf8.lastIndex(of: UInt8(ascii: "@")).map { utf8.index(after: $0) } ?? utf8.startIndex)...]
        return domains.contains { Self.equalsLowercased($0, host) }
    }

    /// `known` (kept lowercased) equals `text` but for ASCII case.
    static func equalsLowercased(_ known: String, _ text: Substring.UTF8View) -> Bool {
        known.utf8.elementsEqual(text) { k, byte in
            k == (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte)
        }
    }

    public func peer(for host: String) -> SIPPeerDomain? {
        let host = host.lowercased()
        return peerDomains.first { $0.domain == host }
    }

    /// The peer domain of an address of record (`user@host`, or a bare host), found without
    /// building a string: the gateway asks this several times for every message.
    public func peer(forAOR aor: String) -> SIPPeerDomain? {
        guard !peerDomains.isEmpty else { return nil }
        let utf8 = aor.utf8
        let host = utf8[(utf8.lastIndex(of: UInt8(ascii: "@")).map { utf8.index(after: $0) } ?? utf8.startIndex)...]
        // Peer domains are kept lowercased; the AOR's host may not be.
        return peerDomains.first { Self.equalsLowercased($0.domain, host) }
    }

    /// The class of an endpoint: the first matching rule, else the default class.
    func endpointClass(contactParameters: SIPParameters, userAgent: String?) -> EndpointClass {
        let name = endpointRules.first { rule in
            switch rule.match {
            case .contactParameter(let name, let value):
                guard let present = contactParameters.rawValue(name) else { return false }
                guard let value else { return true }
                return present.map { Self.unquoted($0).lowercased() == value.lowercased() } ?? false
            case .userAgentContains(let word):
                return userAgent?.lowercased().contains(word.lowercased()) ?? false
            }
        }?.className ?? defaultClass
        return endpointClasses.first { $0.name == name } ?? EndpointClass(name: name, acceptanceTimeout: .seconds(15))
    }

    private static func unquoted(_ value: String) -> String {
        value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 ? String(value.dropFirst().dropLast()) : value
    }
}
