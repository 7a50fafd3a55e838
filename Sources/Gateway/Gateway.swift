import Dispatch
import Foundation
import Synchronization
import GatewayStore
import Interworking
import Logging
import NIOCore
import SIPCore
import SIPDomain
import SIPEdge
import StoxNIO
import XMLCore
import XMPPCore
import XMPPFederation

/// The XMPP side as the gateway uses it: server-to-server federation or a component link.
protocol XMPPSide: Sendable {
    func send(_ element: XMLElement)
    /// `acknowledged` runs once the other side has the stanza (XEP-0198 over s2s).
    func send(_ element: XMLElement, acknowledged: @escaping @Sendable () -> Void)
    func shutdown() -> EventLoopFuture<Void>
}

extension S2SService: XMPPSide {}
extension ComponentService: XMPPSide {}

/// The gateway: the embedded SIP domain on one side, XMPP federation (or a component link) on
/// the other, and every crossing translated by `Interworking` from the tables in `Mappings/`.
/// Messages cross through the durable queue in SQLite; presence subscriptions in both
/// directions are kept in the store with their authorization.
///
/// Loop-bound: the SIP edge, the XMPP side and this class share one event loop, so a message
/// crosses without a thread hop; every mutable property is touched only there. Blocking store
/// calls run on `storeQueue` and come back to the loop.
public final class Gateway: @unchecked Sendable {
    public let configuration: GatewayConfiguration
    let loop: any EventLoop
    /// The store's commit thread hands finished messages back here, one loop task per group.
    let inbox: LoopInbox
    let store: GatewayStore
    let queue: OutboundQueue
    let storeQueue = DispatchQueue(label: "stox.gateway.store")
    var logger: Logger
    public let metrics: GatewayMetrics
    private(set) var mappings: MappingSet
    /// The tables the SIP domain's presence rules read; swapped on reload with the rest.
    var tables: CurrentTables?
    private(set) var toXMPP: SIPToXMPP
    private(set) var toSIP: XMPPToSIP
    var domain: EmbeddedDomain!
    var xmpp: (any XMPPSide)!
    /// The XMPP domains the gateway stands for (the SIP domains, mapped).
    private(set) var xmppDomains: Set<String> = []
    var stopping = false

    // Presence (Gateway+Presence.swift); here because extensions cannot store.
    /// XMPP watchers of each local SIP user, with where their authorization stands.
    var xmppWatchers: [String: [JID: StoredSubscription.State]] = [:]
    /// What each local user's XMPP watchers were last sent (one presence per change, no repeats).
    var lastSentPresence: [String: XMPPPresence] = [:]
    /// The resources of XMPP users that local SIP users watch, by the XMPP user's address, as
    /// their SIP watchers were last told (without `to`); an empty entry: told they are offline.
    var foreignResources: [String: [String: XMPPPresence]] = [:]
    var pendingPoll: RepeatedTask?
    // Peer presence (Gateway+PeerPresence.swift).
    /// Peer users whose network authorized the gateway's subscription (a NOTIFY said active).
    var peerAuthorized: Set<String> = []
    /// What each peer user's XMPP watchers were last sent (without `to`): one per resource.
    var peerPresences: [String: [XMPPPresence]] = [:]
    var pruneTask: RepeatedTask?
    var watchdog: LoopWatchdog?
    // Messages (Gateway+Messages.swift).
    /// Lync-style IM sessions a local user opened towards an XMPP user, by (local, remote).
    var sessions: [SessionKey: IMSession] = [:]
    /// Messages toward XMPP sent and not yet acknowledged, by stanza id: a bounce finds its row.
    var outstanding: [String: (id: Int64, element: XMLElement, attempt: Int)] = [:]
    /// Queue rows older than this were left by a previous run.
    let startedAt = Date()

    /// Sessions to a session peer's user being opened, with the stored messages waiting for it.
    var sessionsOpening: [SessionKey: [PendingSessionMessage]] = [:]

    struct SessionKey: Hashable {
        let local: String
        let remote: JID
    }

    struct PendingSessionMessage {
        let id: Int64
        let message: XMPPMessage
        let request: SIPRequest
    }

    init(configuration: GatewayConfiguration, loop: any EventLoop, store: GatewayStore, mappings: MappingSet, logger: Logger,
         metrics: GatewayMetrics = GatewayMetrics()) {
        self.metrics = metrics
        self.configuration = configuration
        self.loop = loop
        self.inbox = LoopInbox(loop: loop)
        self.store = store
        self.queue = OutboundQueue(store: store)
        self.mappings = mappings
        self.toXMPP = SIPToXMPP(mappings)
        self.toSIP = XMPPToSIP(mappings)
        self.logger = logger
        let queue = self.queue
        metrics.queueDepth = { try? queue.depth() }
        metrics.subscriptionCounts = {
            let counts = (try? store.subscriptionCounts()) ?? [:]
            return Dictionary(uniqueKeysWithValues: StoredSubscription.Direction.allCases.map { ($0.rawValue, counts[$0] ?? 0) })
        }
    }

    /// What `/health` says: the store answers, and the XMPP side has at least the links it
    /// needs (in component mode, the component link; in s2s mode links open on demand, so none
    /// is needed).
    public func health() -> (ok: Bool, json: String) {
        let depth = try? queue.depth()
        let links = metrics.linksUpCount
        let xmppOK = configuration.xmppMode == .s2s || links > 0
        let ok = depth != nil && xmppOK
        return (ok, "{\"status\":\"\(ok ? "ok" : "degraded")\",\"store\":\(depth != nil),\"queue_depth\":\(depth ?? -1),\"xmpp_links_up\":\(links)}\n")
    }

    /// Opens the store, loads the tables, starts the SIP domain and the XMPP side, and sends
    /// what a previous run left queued.
    public static func start(_ configuration: GatewayConfiguration, group: any EventLoopGroup, logger: Logger) async throws -> Gateway {
        let mappings = try MappingDirectory.load(configuration.mappingsPath)
        let tables = CurrentTables(mappings)
        let store = try GatewayStore(path: configuration.storePath)
        let slot = GatewaySlot()
        var sip = SIPEdgeConfiguration(host: configuration.sipListen, udpPort: configuration.sipUDPPort,
                                       tcpPort: configuration.sipTCPPort, tlsPort: configuration.sipTLSPort,
                                       udpReceiveBuffer: configuration.sipUDPReceiveBuffer)
        if let certificate = configuration.sipCertificate, let key = configuration.sipKey {
            sip.tls = SIPTLSConfiguration(certificateChainPath: certificate, privateKeyPath: key, trustedCAPath: configuration.xmppCA)
        } else {
            sip.tlsPort = nil
        }
        var domainConfiguration = EmbeddedDomainConfiguration(
            domains: configuration.sipDomains,
            endpointClasses: [EndpointClass(name: "desktop", acceptanceTimeout: configuration.desktopAcceptance),
                              EndpointClass(name: "mobile", acceptanceTimeout: configuration.mobileAcceptance)],
            watcherPolicy: configuration.watcherPolicy, digestAlgorithms: configuration.digestAlgorithms,
            presenceRules: tables.presenceRules)
        domainConfiguration.sha256UserAgents = configuration.sha256UserAgents
        domainConfiguration.peerDomains = configuration.sipPeers
        // RFC 3263 lookups for peer domains without a proxy ask the same server as SRV for XMPP.
        domainConfiguration.dnsServer = configuration.dnsServer.flatMap { try? SocketAddress(ipAddress: $0.host, port: $0.port) }
        let diagnosticsLogger = logger
        // Made before the domain starts: its refusals are counted from the first request.
        let gatewayMetrics = GatewayMetrics()
        let domain = try await EmbeddedDomain.start(
            domainConfiguration, edge: sip, store: store, group: group,
            foreign: { server, sender in slot.gateway?.fromSIP(server, sender: sender) },
            presence: EmbeddedDomain.PresenceHooks(
                localPresenceChanged: { aor in slot.gateway?.localPresenceChanged(aor) },
                foreignSubscription: { presentity, watcher, decision in
                    slot.gateway?.sipWatcherAdded(presentity: presentity, watcher: watcher, decision: decision)
                }),
            diagnostics: { diagnosticsLogger.warning("\($0)", metadata: ["component": "sip-domain"]) },
            refusals: { refusal in
                // One line per refused request or dropped input, with who and why: what an
                // operator reads and a fail2ban filter matches (`sip request refused ... source=`).
                gatewayMetrics.refused(refusal.kind.rawValue)
                diagnosticsLogger.notice("sip request refused", metadata: [
                    "component": "sip", "source": "\(refusal.source)", "kind": "\(refusal.kind.rawValue)", "reason": "\(refusal.reason)"])
            })
        let gateway = Gateway(configuration: configuration, loop: domain.edge.eventLoop, store: store, mappings: mappings, logger: logger,
                              metrics: gatewayMetrics)
        gateway.tables = tables
        gateway.domain = domain
        do {
            try await gateway.startXMPP(slot: slot)
            try await gateway.loop.submit {
                slot.gateway = gateway
            }.get()
            try await gateway.restore()
            // Only now: messages and presence are handled with the watchers and queue restored.
            let held = try await gateway.loop.submit { slot.open() }.get()
            if held > 0 { logger.info("stanzas that arrived during the start handled", metadata: ["count": "\(held)"]) }
        } catch {
            await domain.stop()
            _ = try? await gateway.xmpp?.shutdown().get()
            throw error
        }
        if let requested = configuration.sipUDPReceiveBuffer, let granted = domain.edge.udpReceiveBufferGranted {
            // Linux reports double what it books for data; less than double the request means the
            // kernel capped it at net.core.rmem_max and the process may not exceed that.
            if granted < 2 * requested {
                logger.warning("sip.udp_receive_buffer: asked for \(requested) bytes, the kernel granted \(granted / 2); raise net.core.rmem_max or run with CAP_NET_ADMIN", metadata: ["component": "sip"])
            }
        }
        logger.info("gateway started", metadata: [
            "sip_udp_receive_buffer": "\(domain.edge.udpReceiveBufferGranted.map { String($0 / 2) } ?? "none")",
            "sip": "\(configuration.sipDomains.joined(separator: ","))",
            "sip_peers": "\(configuration.sipPeers.map(\.domain).joined(separator: ","))",
            "xmpp": "\(gateway.xmppDomains.sorted().joined(separator: ","))",
            "mode": "\(configuration.xmppMode.rawValue)",
        ])
        return gateway
    }

    private func startXMPP(slot: GatewaySlot) async throws {
        // Peer networks' users are presented to XMPP too: the gateway answers for their domains.
        for domain in configuration.sipDomains + configuration.sipPeers.map(\.domain) {
            let jid = try toXMPP.addresses.jid(SIPURI(scheme: .sip, user: nil, host: domain)).value
            xmppDomains.insert(jid.domainpart)
        }
        switch configuration.xmppMode {
        case .s2s:
            var s2s = S2SConfiguration(
                servedDomains: xmppDomains,
                tls: configuration.xmppCertificate.map { .init(certificateChainPath: $0, privateKeyPath: configuration.xmppKey ?? "") },
                trustedCAPath: configuration.xmppCA,
                dialbackSecret: configuration.dialbackSecret ?? Self.randomSecret(),
                policies: configuration.peerPolicies, defaultPolicy: configuration.defaultPeerPolicy,
                routes: configuration.routes.mapValues { (host: $0.host, port: $0.port) },
                listenHost: configuration.xmppListen, listenPort: configuration.xmppPort)
            s2s.establishTimeout = 30
            s2s.peerRate = (configuration.peerRate, configuration.peerRate * 4)
            s2s.directTLSPort = configuration.xmppDirectTLSPort
            s2s.dnsServer = configuration.dnsServer.map { ($0.host, $0.port) }
            // XEP-0198: a peer learns a message was taken only once it is in the store.
            s2s.streamManagement = true
            let metrics = self.metrics
            let logger = self.logger
            let service = S2SService(
                configuration: s2s, eventLoop: loop,
                onStanza: { element, handled in slot.stanza(element, handled: handled) },
                onEvent: { event in
                    metrics.linkEvent(event)
                    Self.log(event, logger)
                })
            xmpp = service
            let port = try await service.start().get()
            s2sPort = port
            logger.info("s2s listening", metadata: ["address": "\(configuration.xmppListen):\(port)"])
        case .component:
            guard let name = configuration.componentName, let secret = configuration.componentSecret else {
                throw ConfigurationProblems(["xmpp.component.name, xmpp.component.secret: needed in component mode"])
            }
            // The server routes only the component's own domain to it: every SIP domain must be
            // presented to XMPP under that name (domains.tsv), or its users could not be reached.
            let unmapped = xmppDomains.subtracting([name])
            guard unmapped.isEmpty else {
                throw ConfigurationProblems(["xmpp.component.name: \(name), but the SIP domains appear on XMPP as \(unmapped.sorted().joined(separator: ", ")) (map them to \(name) in domains.tsv, or serve \(name) as the SIP domain)"])
            }
            let logger = self.logger
            let metrics = self.metrics
            let server = "\(configuration.componentServer)"
            let service = ComponentService(
                configuration: .init(componentName: name, secret: secret, host: configuration.componentServer.host,
                                     port: configuration.componentServer.port),
                eventLoop: loop, onStanza: { element in slot.stanza(element, handled: {}) },
                onEvent: { event in
                    metrics.componentEvent(event, name: name)
                    switch event {
                    case .connected:
                        logger.info("component connected", metadata: ["component": "xmpp-component", "server": "\(server)"])
                    case .disconnected(let reason) where reason.contains("not-authorized"):
                        // A wrong secret never heals by retrying: the operator must act.
                        metrics.refused("component-secret")
                        logger.error("component refused by the server: wrong xmpp.component.secret", metadata: [
                            "component": "xmpp-component", "server": "\(server)", "reason": "\(reason)"])
                    case .disconnected(let reason):
                        logger.warning("component disconnected", metadata: [
                            "component": "xmpp-component", "server": "\(server)", "reason": "\(reason)"])
                    }
                })
            xmpp = service
            service.start()
        }
    }

    /// One line per link event, in words: refusals at warning with who and why (what a
    /// fail2ban filter matches), links coming and going at info or notice.
    static func log(_ event: S2SEvent, _ logger: Logger) {
        switch event {
        case .refused(let peer, let kind, let reason):
            logger.warning("s2s peer refused", metadata: ["component": "s2s", "peer": "\(peer)", "kind": "\(kind.rawValue)", "reason": "\(reason)"])
        case .outboundUp(let local, let remote, let method):
            logger.info("s2s outbound link up", metadata: ["component": "s2s", "local": "\(local)", "peer": "\(remote)", "method": "\(method)"])
        case .outboundDown(let local, let remote, let failure):
            logger.notice("s2s outbound link down", metadata: ["component": "s2s", "local": "\(local)", "peer": "\(remote)", "reason": "\(failure.reason)"])
        case .inboundAuthenticated(let remote, let method):
            logger.info("s2s inbound link authenticated", metadata: ["component": "s2s", "peer": "\(remote)", "method": "\(method)"])
        case .inboundClosed(let remote):
            logger.info("s2s inbound link closed", metadata: ["component": "s2s", "peer": "\(remote)"])
        case .reconnectDelayed(let remote, let milliseconds):
            logger.info("s2s reconnect delayed", metadata: ["component": "s2s", "peer": "\(remote)", "milliseconds": "\(milliseconds)"])
        }
    }

    /// What a previous run left: queued messages go out, XMPP watchers are known again, and
    /// the XMPP users that SIP users watch are probed for their current presence.
    private func restore() async throws {
        let store = self.store
        let (watchers, watched) = try await onStore {
            (try store.subscriptions(direction: .xmppWatchesSIP), try store.subscriptions(direction: .sipWatchesXMPP))
        }
        try await loop.submit { [self] in
            for watcher in watchers {
                guard let jid = try? JID(parsing: watcher.watcher) else { continue }
                xmppWatchers[watcher.presentity, default: [:]][jid] = watcher.state
            }
            for subscription in watched where subscription.state == .active {
                probe(presentity: subscription.presentity, watcher: subscription.watcher)
            }
            // Each authorized XMPP watcher gets the current presence: it may have changed while
            // the gateway was down (a publication expired, an endpoint signed out).
            for (presentity, watchers) in xmppWatchers where !isPeer(presentity) {
                let active = watchers.filter { $0.value == .active }.map(\.key)
                if !active.isEmpty { sendPresence(of: presentity, to: active, force: true) }
            }
            restorePeerSubscriptions()
            startPendingPoll()
            startPruning()
            watchdog = LoopWatchdog(loop: loop, metrics: metrics, logger: logger, udpPort: domain.edge.udpAddress?.port)
            watchdog?.start()
            redeliverLeftovers()
        }.get()
        Self.returnMemoryLater(on: loop)
    }

    /// Delivered rows are kept `store.keep_delivered` to recognise resends, then deleted in
    /// the background (off the loop, in small transactions) and the WAL is truncated: without
    /// it the store grew by every message ever carried until the disk filled.
    private func startPruning() {
        let keep = configuration.keepDelivered
        let interval = TimeAmount.milliseconds(max(1_000, min(60_000, keep.components.seconds * 500)))
        let queue = self.queue, store = self.store, logger = self.logger, storeQueue = self.storeQueue
        pruneTask = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            storeQueue.async {
                let before = Date().addingTimeInterval(-Double(keep.components.seconds))
                do {
                    let removed = try queue.prune(deliveredBefore: before)
                    if removed > 0 {
                        store.checkpoint()
                        logger.debug("pruned delivered messages", metadata: ["rows": "\(removed)"])
                    }
                } catch {
                    logger.warning("pruning delivered messages failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Restoring reads every subscription and sends every watcher a presence at once; the
    /// allocator keeps that peak (with 100,000 subscriptions, about 100 MB) unless asked to give
    /// it back. Once the burst is written, it is.
    private static func returnMemoryLater(on loop: any EventLoop) {
        #if os(Linux)
        loop.scheduleTask(in: .seconds(5)) { _ = glibcMallocTrim(0) }
        #endif
    }

    /// Stops taking new work, answers what is in flight, ends SIP subscriptions and sessions
    /// properly (NOTIFY terminated, BYE), closes the XMPP streams, and waits for queued store
    /// writes: what was accepted and not yet sent stays queued for the next start.
    public func stop() async {
        try? await loop.submit { [self] in
            stopping = true
            pendingPoll?.cancel()
            pruneTask?.cancel()
            watchdog?.stop()
            for session in sessions.values { session.close() }
            sessions = [:]
        }.get()
        await domain.stop()
        _ = try? await xmpp.shutdown().get()
        let queue = self.queue
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            storeQueue.async {
                // Enqueues and delivery marks waiting for their group commit: on disk
                // before the process goes.
                queue.flushNow()
                continuation.resume()
            }
        }
        logger.info("gateway stopped")
    }

    /// Swaps in new tables (SIGHUP). The caller has loaded them, which validates them; the old
    /// ones stay in force when they do not load.
    public func reload(_ mappings: MappingSet) {
        loop.execute { [self] in
            self.mappings = mappings
            tables?.set(mappings)
            toXMPP = SIPToXMPP(mappings)
            toSIP = XMPPToSIP(mappings)
            lastSentPresence = [:]
            logger.info("mapping tables reloaded")
        }
    }

    /// The subscriptions kept in the store (XMPP watchers of SIP users, or the reverse).
    public func storedSubscriptions(watchers xmppWatchesSIP: Bool) throws -> [StoredSubscription] {
        try store.subscriptions(direction: xmppWatchesSIP ? .xmppWatchesSIP : .sipWatchesXMPP)
    }

    /// The SIP edge's bound addresses (port 0 in tests).
    public var sipEdge: SIPEdge { domain.edge }
    public var sipDomain: EmbeddedDomain { domain }
    /// The s2s listener's port, in s2s mode (the bound one when configured as 0).
    public private(set) var s2sPort: Int?

    // MARK: Helpers

    func onStore<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            storeQueue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Runs a store write off the loop; a failure is logged and counted.
    func storeWrite(_ what: String, _ work: @escaping @Sendable (GatewayStore) throws -> Void) {
        let store = self.store
        let logger = self.logger
        let metrics = self.metrics
        storeQueue.async {
            do {
                try work(store)
            } catch {
                metrics.error("store")
                logger.error("store write failed (\(what)): \(error)")
            }
        }
    }

    static func randomSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// `user@host` of a SIP URI (the address-of-record form the domain and the store use).
    static func aor(_ uri: SIPURI) -> String {
        "\(uri.decodedUser ?? "")@\(uri.host.lowercased())"
    }

    /// The SIP address-of-record an XMPP address stands for, through the tables.
    func aor(of jid: JID) -> String? {
        (try? toSIP.addresses.sipURI(jid.bare, includeResource: false).value).map(Self.aor)
    }

    /// The XMPP address a SIP address-of-record stands for, through the tables.
    func jid(ofAOR aor: String) -> JID? {
        SIPURI("sip:\(aor)").flatMap { try? toXMPP.addresses.jid($0).value }
    }

    func send(_ stanza: XMLElement) {
        xmpp.send(stanza)
    }
}

/// Lets the domain's callbacks, made before the gateway exists, find it once it does.
final class GatewaySlot: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Gateway?
    /// XMPP stanzas from the moment the s2s listener opens until the gateway is ready.
    let stanzas = StanzaGate()

    var gateway: Gateway? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }

    func stanza(_ element: XMLElement, handled: @escaping @Sendable () -> Void) {
        stanzas.stanza(element, handled: handled)
    }

    /// The gateway is ready (its state restored): held stanzas go to it; returns how many.
    @discardableResult
    func open() -> Int {
        guard let gateway else { return 0 }
        return stanzas.open { element, handled in gateway.fromXMPP(element, handled: handled) }
    }
}

/// Holds the inbound XMPP stanzas that arrive before their handler is ready, then hands them
/// over in arrival order, so that each is handled or refused, never dropped. Dropping one was
/// worse than losing it: on a stream with XEP-0198 a stanza never marked handled stops every
/// later `<a/>` on that stream, and a peer resends only what it sent after stream management
/// was enabled, so the peer's queue grows until it bounces.
public final class StanzaGate: @unchecked Sendable {
    public typealias Deliver = @Sendable (XMLElement, @escaping @Sendable () -> Void) -> Void
    private let lock = NSLock()
    private var deliver: Deliver?
    private var early: [(element: XMLElement, handled: @Sendable () -> Void)] = []

    public init() {}

    /// A stanza: to the handler when open, else held.
    public func stanza(_ element: XMLElement, handled: @escaping @Sendable () -> Void) {
        let target: Deliver? = lock.withLock {
            if let deliver { return deliver }
            early.append((element, handled))
            return nil
        }
        target?(element, handled)
    }

    /// Opens the gate: what was held goes to `deliver` first, in order, then new stanzas do.
    /// Returns how many were held.
    @discardableResult
    public func open(_ deliver: @escaping Deliver) -> Int {
        var handedOver = 0
        while true {
            // Stanzas arriving while the backlog is handed over join it, behind it.
            let batch: [(element: XMLElement, handled: @Sendable () -> Void)] = lock.withLock {
                let batch = early
                early = []
                if batch.isEmpty { self.deliver = deliver }
                return batch
            }
            guard !batch.isEmpty else { return handedOver }
            for stanza in batch { deliver(stanza.element, stanza.handled) }
            handedOver += batch.count
        }
    }

    /// Stanzas held now.
    public var held: Int { lock.withLock { early.count } }
}

#if os(Linux)
/// glibc's malloc_trim(3): malloc.h is not part of the Glibc module Swift imports.
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32
#endif

/// The mapping tables in force, for code that runs outside the gateway's own state (the SIP
/// domain's presence rules): read under a lock, swapped on SIGHUP.
public final class CurrentTables: Sendable {
    private let current: Mutex<MappingSet>

    public init(_ mappings: MappingSet) { current = Mutex(mappings) }

    public func set(_ mappings: MappingSet) { current.withLock { $0 = mappings } }

    public var mappings: MappingSet { current.withLock { $0 } }

    /// The domain's ranking and Lync rendering, from the tables (SIPPresenceRules.swift).
    public var presenceRules: PresenceRules {
        PresenceRules(
            rank: { [self] document in -mappings.availabilityOrder(mappings.documentState(document)) },
            categories: { [self] entity, document in mappings.lyncCategories(entity: entity, document: document) })
    }
}
