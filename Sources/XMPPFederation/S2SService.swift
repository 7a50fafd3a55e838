import NIOCore
import NIOPosix
import StoxNIO
import NIOSSL
import NIOTLS
import XMLCore
import StoxDNS
import XMPPCore

/// One outbound stream for a domain pair, with the stanzas waiting for it (XEP-0220 §2.1.1:
/// queue until the pair is verified).
final class OutboundLink {
    enum State { case connecting, established(any Channel), closed }

    let localDomain: String
    let remoteDomain: String
    private(set) var state = State.connecting
    /// The last stanza sent on the link, or received from its peer domain.
    var lastStanza = NIODeadline.now()
    var lastWrite = NIODeadline.now()
    /// An XEP-0199 ping awaiting its answer (which arrives on the peer's own stream).
    var pendingPing: (id: String, sent: NIODeadline)?
    private var livenessTask: RepeatedTask?
    /// A stanza and what to call once the peer has it (XEP-0198 `<a/>`, or the write when the
    /// link has no stream management).
    typealias Outgoing = (element: XMLElement, acknowledged: (@Sendable () -> Void)?)
    private var pending: [Outgoing] = []
    /// XEP-0198 on this link: stanzas written and not yet acknowledged, oldest first.
    private var managed = false
    private var unacknowledged: [Outgoing] = []
    private var unacknowledgedHead = 0
    private var acknowledgedCount: UInt32 = 0
    private var requestOutstanding = false
    private weak var service: S2SService?

    init(localDomain: String, remoteDomain: String, service: S2SService) {
        self.localDomain = localDomain
        self.remoteDomain = remoteDomain
        self.service = service
    }

    /// Tells the service's owner about this link (a refusal seen while negotiating).
    func report(_ event: S2SEvent) { service?.event(event) }

    func send(_ element: XMLElement, acknowledged: (@Sendable () -> Void)? = nil) {
        lastStanza = .now()
        switch state {
        case .connecting: pending.append((element, acknowledged))
        case .established(let channel):
            lastWrite = .now()
            write((element, acknowledged), on: channel)
        case .closed: service?.bounce(element, .remoteServerNotFound)
        }
    }

    private func write(_ outgoing: Outgoing, on channel: any Channel) {
        guard case .established = state else {
            // The link failed during an earlier write of this burst (a write to a dead
            // connection can close the channel at once): another link takes the stanza.
            service?.resend(outgoing)
            return
        }
        let tracked = managed
        // Tracked before the write: if the write itself fails the link, `failed` finds the
        // stanza among the unacknowledged and sends it again.
        if tracked { unacknowledged.append(outgoing) }
        Self.write(outgoing.element, on: channel)
        if tracked {
            requestAcknowledgement(channel)
        } else {
            outgoing.acknowledged?()
        }
    }

    /// One `<r/>` outstanding at a time, sent after the current burst of writes.
    private func requestAcknowledgement(_ channel: any Channel) {
        guard !requestOutstanding else { return }
        requestOutstanding = true
        let weakLink = NIOLoopBound(WeakLink(self), eventLoop: channel.eventLoop)
        channel.eventLoop.execute {
            guard let link = weakLink.value.link, case .established(let channel) = link.state, link.managed else { return }
            Self.write(XMLElement("r", namespace: XMPPNamespace.streamManagement), on: channel)
        }
    }

    func established(_ channel: any Channel, method: AuthenticationMethod, streamManagement: Bool = false) {
        state = .established(channel)
        service?.event(.outboundUp(local: localDomain, remote: remoteDomain, method))
        service?.connectionSucceeded(to: remoteDomain)
        startLiveness(channel)
        if streamManagement {
            // XEP-0198 §3: counting starts with <enable/>; what follows is tracked at once (a
            // <failed/> answer hands everything over as written).
            Self.write(XMLElement("enable", namespace: XMPPNamespace.streamManagement), on: channel)
            managed = true
        }
        let queued = pending
        pending = []
        for outgoing in queued { write(outgoing, on: channel) }
        lastWrite = .now()
    }

    /// An XEP-0198 element from the peer on this link.
    func streamManagement(_ element: XMLElement) {
        guard case .established(let channel) = state else { return }
        switch element.name {
        case "a":
            guard managed, let h = element.attribute("h").flatMap(UInt32.init) else { return }
            requestOutstanding = false
            var count = Int(h &- acknowledgedCount)
            // A peer claiming more than was sent acknowledges everything (and no more).
            count = min(count, unacknowledged.count - unacknowledgedHead)
            for index in unacknowledgedHead..<(unacknowledgedHead + count) { unacknowledged[index].acknowledged?() }
            unacknowledgedHead += count
            acknowledgedCount = h
            if unacknowledgedHead > 1024, unacknowledgedHead * 2 > unacknowledged.count {
                unacknowledged.removeFirst(unacknowledgedHead)
                unacknowledgedHead = 0
            }
            if unacknowledgedHead < unacknowledged.count { requestAcknowledgement(channel) }
        case "failed":
            // Not available after all: what was written is handed over as written.
            managed = false
            for outgoing in unacknowledged[unacknowledgedHead...] { outgoing.acknowledged?() }
            unacknowledged = []
            unacknowledgedHead = 0
        case "r":
            // Nothing is received on an outbound stream, so nothing was handled.
            Self.write(XMLElement("a", namespace: XMPPNamespace.streamManagement, attributes: ["h": "0"]), on: channel)
        default:
            break
        }
    }

    /// The link could not be set up or broke: queued stanzas go back to their senders.
    func failed(_ failure: NegotiationFailure) {
        livenessTask?.cancel()
        livenessTask = nil
        if case .connecting = state { service?.connectionFailed(to: remoteDomain) }
        let queued = pending
        pending = []
        state = .closed
        for outgoing in queued { service?.bounce(outgoing.element, failure.bounce, text: failure.reason) }
        service?.event(.outboundDown(local: localDomain, remote: remoteDomain, failure))
        service?.linkClosed(self)
        // XEP-0198: what the peer did not acknowledge may not have reached it; it goes out
        // again on a new link (which bounces it if the peer stays unreachable).
        let resend = managed ? Array(unacknowledged[unacknowledgedHead...]) : []
        unacknowledged = []
        unacknowledgedHead = 0
        managed = false
        for outgoing in resend { service?.resend(outgoing) }
    }

    func closed() {
        if case .closed = state { return }
        failed(NegotiationFailure(.remoteServerTimeout, "the stream to \(remoteDomain) closed"))
    }

    /// Keepalive, idle close and half-open detection, checked on a timer (see `Liveness`).
    private func startLiveness(_ channel: any Channel) {
        guard let service else { return }
        let liveness = service.configuration.liveness
        let tick = TimeAmount.milliseconds(max(50, min(liveness.keepalive, liveness.pingTimeout, liveness.idle) / 2))
        // The link and its timer live on the channel's loop.
        let weakLink = NIOLoopBound(WeakLink(self), eventLoop: channel.eventLoop)
        livenessTask = channel.eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { _ in
            weakLink.value.link?.checkLiveness(channel, liveness)
        }
    }

    private func checkLiveness(_ channel: any Channel, _ liveness: S2SConfiguration.Liveness) {
        let now = NIODeadline.now()
        if let ping = pendingPing, now - ping.sent > .milliseconds(liveness.pingTimeout) {
            // Half-open: the peer no longer answers (RFC 6120 §4.6.2 connection-timeout).
            closeStream(channel, StreamError(.connectionTimeout), NegotiationFailure(.remoteServerTimeout, "\(remoteDomain) did not answer a ping"))
            return
        }
        if now - lastStanza > .milliseconds(liveness.idle) {
            closeStream(channel, nil, NegotiationFailure(.remoteServerTimeout, "idle for \(liveness.idle / 1000) s"))
            return
        }
        if pendingPing == nil, now - lastStanza > .milliseconds(liveness.pingInterval), let service {
            let id = "ping-" + InboundLinkHandler.streamID()
            pendingPing = (id, now)
            service.pingSent(id: id, link: self)
            let ping = XMPPIQ(from: try? JID(parsing: localDomain), to: try? JID(parsing: remoteDomain), id: id, type: .get,
                              payload: XMLElement("ping", namespace: XMPPNamespace.ping))
            Self.write(ping.element(), on: channel)
            lastWrite = now
        } else if now - lastWrite > .milliseconds(liveness.keepalive) {
            var space = channel.allocator.buffer(capacity: 1)
            space.writeString(" ")
            channel.writeAndFlush(space, promise: nil)
            lastWrite = now
        }
    }

    /// The answer to our ping arrived.
    func pong() {
        pendingPing = nil
    }

    private func closeStream(_ channel: any Channel, _ error: StreamError?, _ reason: NegotiationFailure) {
        failed(reason)
        var buffer = channel.allocator.buffer(capacity: 128)
        if let error { buffer.writeBytes(XMLSerializer.bytes(error.element, in: XMPPStreamHeader.context(XMPPNamespace.server))) }
        buffer.writeString(XMPPStreamHeader.closingTag)
        channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
    }

    private static func write(_ element: XMLElement, on channel: any Channel) {
        let bytes = XMLSerializer.bytes(element, in: XMPPStreamHeader.context(XMPPNamespace.server))
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        channel.writeAndFlush(buffer, promise: nil)
    }
}

/// A weak reference, so a link's timer does not keep a dropped link alive.
struct WeakLink {
    weak var link: OutboundLink?
    init(_ link: OutboundLink) { self.link = link }
}

/// What happens to links, for logs, metrics and tests.
public enum S2SEvent: Hashable, Sendable {
    /// Our stream to `remote` is authenticated.
    case outboundUp(local: String, remote: String, AuthenticationMethod)
    /// `remote` authenticated on a stream it opened to us.
    case inboundAuthenticated(remote: String, AuthenticationMethod)
    /// Our stream to `remote` failed or closed; queued stanzas were bounced with `failure.bounce`.
    case outboundDown(local: String, remote: String, NegotiationFailure)
    /// A new connection to `remote` waits this long, after earlier failures.
    case reconnectDelayed(remote: String, milliseconds: Int64)
    /// An authenticated stream `remote` had opened to us closed.
    case inboundClosed(remote: String)
    /// A peer was refused: `peer` is its domain when it said one, and its address; `reason` is
    /// in words, for the operator's log and for tools such as fail2ban.
    case refused(peer: String, Refusal, reason: String)
}

/// Why a peer was refused, as `/metrics` counts it.
public enum Refusal: String, Hashable, Sendable, CaseIterable {
    /// TLS failed or the peer's certificate did not verify.
    case certificate
    /// A stanza from a domain the stream has not authenticated (RFC 6120 §4.9.3.9).
    case invalidFrom = "invalid-from"
    /// A dialback claim that its authoritative server did not confirm (XEP-0220).
    case dialback
    /// XML that is not well-formed, too large or too deep, or uses forbidden constructs.
    case hostileXML = "hostile-xml"
    /// Any other stream error we sent (host-unknown, invalid-namespace, policy, ...).
    case stream
}

/// Server-to-server federation: a listener for inbound streams, a pool of outbound links per
/// domain pair, and the dialback callbacks. Every piece of state lives on `eventLoop`; the
/// public methods may be called from anywhere.
public final class S2SService: @unchecked Sendable {
    public let eventLoop: any EventLoop
    public let configuration: S2SConfiguration
    private var links: [String: OutboundLink] = [:]
    /// Set by `shutdown`: no new links, and attempts already scheduled (a backoff wait) give up.
    private var stopped = false
    private var listener: (any Channel)?
    /// Routes known at runtime, over the configured ones.
    private var routes: [String: (host: String, port: Int)]
    private let onStanza: @Sendable (XMLElement) -> Void
    private let onEvent: @Sendable (S2SEvent) -> Void
    /// Takes inbound stanzas instead of `onStanza` and says when each is handled.
    private let onDurableStanza: (@Sendable (XMLElement, _ handled: @escaping @Sendable () -> Void) -> Void)?

    /// `onStanza` receives every authenticated inbound stanza and every bounce generated here;
    /// `onEvent` hears about links going up and down.
    public init(
        configuration: S2SConfiguration, eventLoop: any EventLoop, onStanza: @escaping @Sendable (XMLElement) -> Void,
        onEvent: @escaping @Sendable (S2SEvent) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.onStanza = onStanza
        self.onEvent = onEvent
        self.onDurableStanza = nil
        self.routes = configuration.routes
    }

    /// For a receiver that stores what it takes: `onStanza` gets each inbound stanza with a
    /// completion to call once it is handled (stored durably, or answered). With
    /// `configuration.streamManagement` the peer's XEP-0198 acknowledgements follow these
    /// completions, so what a crash loses is what the peer still holds and resends. Bounces
    /// generated here go to `onStanza` too, with a completion that does nothing.
    public init(
        configuration: S2SConfiguration, eventLoop: any EventLoop,
        onStanza: @escaping @Sendable (XMLElement, _ handled: @escaping @Sendable () -> Void) -> Void,
        onEvent: @escaping @Sendable (S2SEvent) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.onStanza = { onStanza($0, {}) }
        self.onEvent = onEvent
        self.onDurableStanza = onStanza
        self.routes = configuration.routes
    }

    /// Adds or replaces a static route (private federation, tests).
    public func addRoute(_ domain: String, host: String, port: Int) -> EventLoopFuture<Void> {
        eventLoop.submit { self.routes[domain] = (host: host, port: port) }
    }

    private var directTLSListener: (any Channel)?

    /// Binds the listener (and the direct TLS listener if configured); the future gives the
    /// STARTTLS listener's port (useful with port 0 in tests).
    public func start() -> EventLoopFuture<Int> {
        let plain = startListener()
        guard let port = configuration.directTLSPort else { return plain }
        return plain.flatMap { plainPort in self.startDirectTLSListener(port: port).map { _ in plainPort } }
    }

    /// The direct TLS listener's port, once started.
    public var directTLSListenerPort: EventLoopFuture<Int?> {
        eventLoop.submit { self.directTLSListener?.localAddress?.port }
    }

    private func startDirectTLSListener(port: Int) -> EventLoopFuture<Void> {
        let configuration = self.configuration
        return ServerBootstrap(group: eventLoop)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // XEP-0368: TLS from the first byte. The certificate follows the SNI name the
                    // peer asked for; the peer itself is unknown until its header.
                    // The TLS handler goes right after the SNI handler, which then hands it the
                    // ClientHello it buffered as it removes itself.
                    let inbound = InboundLinkHandler(service: self, configuration: configuration, directTLS: true)
                    let sni = ByteToMessageHandler(SNIHandler { result in
                        var domain: String? = nil
                        if case .hostname(let name) = result { domain = name.lowercased() }
                        return channel.eventLoop.makeCompletedFuture {
                            guard let tls = try configuration.serverContext(for: nil, localDomain: domain, directTLS: true) else {
                                throw S2SError.noCertificate
                            }
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .before(inbound))
                        }
                    })
                    try channel.pipeline.syncOperations.addHandler(sni)
                    try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
                    try channel.pipeline.syncOperations.addHandler(inbound)
                }
            }
            .bind(host: configuration.listenHost, port: port)
            .map { channel in self.directTLSListener = channel }
    }

    private func startListener() -> EventLoopFuture<Int> {
        ServerBootstrap(group: eventLoop)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
                    try channel.pipeline.syncOperations.addHandler(InboundLinkHandler(service: self, configuration: self.configuration))
                }
            }
            .bind(host: configuration.listenHost, port: configuration.listenPort)
            .map { channel in
                self.listener = channel
                return channel.localAddress?.port ?? self.configuration.listenPort
            }
    }

    public func shutdown() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            self.stopped = true
            let links = Array(self.links.values)
            self.links = [:]
            for link in links {
                switch link.state {
                case .established(let channel): channel.close(promise: nil)
                // A link still connecting (or waiting out a backoff) holds stanzas: they go back
                // to their senders rather than vanish with the process.
                case .connecting: link.failed(NegotiationFailure(.serviceUnavailable, "the gateway is shutting down"))
                case .closed: break
                }
            }
            self.directTLSListener?.close(promise: nil)
            return self.listener?.close() ?? self.eventLoop.makeSucceededVoidFuture()
        }
    }

    /// Sends a stanza toward its `to` domain over an authenticated outbound link, opening one if
    /// needed; a stanza that cannot be delivered comes back as an error (`onStanza`).
    public func send(_ element: XMLElement) {
        eventLoop.execute { self.sendOnLoop(element, acknowledged: nil) }
    }

    /// The same; `acknowledged` runs once the peer has the stanza: its XEP-0198 `<a/>` when
    /// the link has stream management (and `configuration.streamManagement` is on), else when
    /// it is written. It never runs for a stanza that bounces.
    public func send(_ element: XMLElement, acknowledged: @escaping @Sendable () -> Void) {
        eventLoop.execute { self.sendOnLoop(element, acknowledged: acknowledged) }
    }

    func resend(_ outgoing: OutboundLink.Outgoing) {
        sendOnLoop(outgoing.element, acknowledged: outgoing.acknowledged)
    }

    private func sendOnLoop(_ element: XMLElement, acknowledged: (@Sendable () -> Void)?) {
        guard let from = element.attribute("from").flatMap({ try? JID(parsing: $0) }),
            let to = element.attribute("to").flatMap({ try? JID(parsing: $0) })
        else { return }
        guard configuration.servedDomains.contains(from.domainpart) else {
            bounce(element, .forbidden, text: "\(from.domainpart) is not served here")
            return
        }
        guard !stopped else {
            bounce(element, .serviceUnavailable, text: "the gateway is shutting down")
            return
        }
        let key = from.domainpart + " " + to.domainpart
        if let link = links[key] {
            link.send(element, acknowledged: acknowledged)
            return
        }
        let link = OutboundLink(localDomain: from.domainpart, remoteDomain: to.domainpart, service: self)
        links[key] = link
        link.send(element, acknowledged: acknowledged)
        let bound = NIOLoopBound(link, eventLoop: eventLoop)
        let timeout = eventLoop.scheduleTask(in: .seconds(configuration.establishTimeout)) {
            let link = bound.value
            if case .connecting = link.state { link.failed(NegotiationFailure(.remoteServerTimeout, "\(to.domainpart) did not authenticate in time")) }
        }
        // After a failure, wait out the domain's backoff; stanzas queue meanwhile.
        let wait = reconnect[to.domainpart].map { $0.notBefore - .now() } ?? .zero
        if wait > .zero { onEvent(.reconnectDelayed(remote: to.domainpart, milliseconds: wait.nanoseconds / 1_000_000)) }
        eventLoop.scheduleTask(in: max(.zero, wait)) {
            // Shut down meanwhile: the link has already failed and bounced its stanzas.
            guard !self.stopped else { return }
            self.candidates(for: to.domainpart).whenSuccess { candidates in
                guard !candidates.isEmpty else {
                    timeout.cancel()
                    bound.value.failed(NegotiationFailure(.remoteServerNotFound, "\(to.domainpart) offers no XMPP service (SRV target '.')"))
                    return
                }
                self.connect(bound, candidates[...], timeout: timeout)
            }
        }
    }

    /// Where to connect for `domain` (RFC 6120 §3.2): a static route; else the targets of
    /// `_xmpp-server._tcp.<domain>` in RFC 2782 order; else the domain itself on port 5269.
    func candidates(for domain: String) -> EventLoopFuture<[Candidate]> {
        if let route = routes[domain] { return eventLoop.makeSucceededFuture([Candidate(host: route.host, port: route.port, directTLS: false)]) }
        let server = configuration.dnsServer.flatMap { try? SocketAddress(ipAddress: $0.host, port: $0.port) } ?? SRVResolver.systemServer()
        guard let server else { return eventLoop.makeSucceededFuture([Candidate(host: domain, port: 5269, directTLS: false)]) }
        let resolver = SRVResolver(server: server, eventLoop: eventLoop)
        // XEP-0368 §3: look up direct TLS and STARTTLS services together, and merge them.
        let direct = configuration.tls == nil && configuration.certificates.isEmpty
            ? eventLoop.makeSucceededFuture([SRVRecord]()) : resolver.srv("_xmpps-server._tcp.\(domain).")
        return direct.and(resolver.srv("_xmpp-server._tcp.\(domain).")).map { tlsRecords, plainRecords in
            Self.merge(domain: domain, directTLS: tlsRecords, startTLS: plainRecords) { Int.random(in: 0...max(0, $0)) }
        }
    }

    /// Where a link may connect.
    struct Candidate: Hashable, Sendable {
        var host: String
        var port: Int
        var directTLS: Bool
    }

    /// RFC 2782 order per service; at equal priority direct TLS comes first (XEP-0368 §3).
    /// A lone '.' target means the service is not offered; no records at all fall back to the
    /// domain on 5269 (RFC 6120 §3.2.2).
    static func merge(domain: String, directTLS: [SRVRecord], startTLS: [SRVRecord], random: (Int) -> Int) -> [Candidate] {
        func usable(_ records: [SRVRecord]) -> [SRVRecord] {
            records.count == 1 && records[0].target.isEmpty ? [] : records.filter { !$0.target.isEmpty }
        }
        let tls = SRVRecord.ordered(usable(directTLS), random: random).map { ($0.priority, Candidate(host: $0.target, port: Int($0.port), directTLS: true)) }
        let plain = SRVRecord.ordered(usable(startTLS), random: random).map { ($0.priority, Candidate(host: $0.target, port: Int($0.port), directTLS: false)) }
        if tls.isEmpty && plain.isEmpty {
            let refused = (startTLS.count == 1 && startTLS[0].target.isEmpty) && (directTLS.isEmpty || (directTLS.count == 1 && directTLS[0].target.isEmpty))
            return refused ? [] : [Candidate(host: domain, port: 5269, directTLS: false)]
        }
        // A stable merge by priority keeps each service's own order; direct TLS wins ties.
        return (tls + plain).enumerated().sorted { a, b in
            (a.element.0, a.element.1.directTLS ? 0 : 1, a.offset) < (b.element.0, b.element.1.directTLS ? 0 : 1, b.offset)
        }.map { $0.element.1 }
    }

    /// Tries the candidates in order until one connects.
    private func connect(_ bound: NIOLoopBound<OutboundLink>, _ candidates: ArraySlice<Candidate>, timeout: Scheduled<Void>) {
        guard let candidate = candidates.first else { return }
        let configuration = self.configuration
        ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
                    try channel.pipeline.syncOperations.addHandler(
                        OutboundLinkHandler(link: bound.value, configuration: configuration, directTLS: candidate.directTLS))
                }
            }
            .connect(host: candidate.host, port: candidate.port)
            .whenComplete { result in
                guard case .failure(let error) = result else { return }
                if candidates.count > 1 {
                    self.connect(bound, candidates.dropFirst(), timeout: timeout)
                } else {
                    timeout.cancel()
                    bound.value.failed(NegotiationFailure(.remoteServerNotFound, "cannot connect to \(bound.value.remoteDomain): \(TLSFailure.describeAny(error))"))
                }
            }
    }

    func linkClosed(_ link: OutboundLink) {
        let key = link.localDomain + " " + link.remoteDomain
        if links[key] === link { links[key] = nil }
    }

    func event(_ event: S2SEvent) { onEvent(event) }


    private lazy var responder = ServedDomainResponder(servedDomains: configuration.servedDomains)
    /// Our outstanding pings, by id, and the link each tests.
    private var pings: [String: OutboundLink] = [:]
    /// Inbound rate per peer domain, shared by all its streams.
    private var buckets: [String: TokenBucket] = [:]
    /// Domains whose last connection failed: when the next attempt may start (with jitter).
    private var reconnect: [String: (backoff: Backoff, notBefore: NIODeadline)] = [:]

    /// Charges one inbound stanza to `domain`; the pause the stream should take, if any.
    func admit(from domain: String) -> TimeAmount? {
        let now = NIODeadline.now()
        var bucket = buckets[domain] ?? TokenBucket(rate: configuration.peerRate.perSecond, burst: configuration.peerRate.burst, now: now)
        let pause = bucket.take(now: now)
        buckets[domain] = bucket
        return pause
    }

    /// A link to `domain` failed: the next attempt waits (exponential backoff with jitter).
    func connectionFailed(to domain: String) {
        let settings = configuration.reconnectBackoff
        var entry = reconnect[domain] ?? (Backoff(base: settings.base, cap: settings.cap), .now())
        let delay = entry.backoff.next(random: Double.random(in: 0..<1))
        entry.notBefore = .now() + .milliseconds(Int64(delay * 1000))
        reconnect[domain] = entry
    }

    func connectionSucceeded(to domain: String) {
        reconnect[domain] = nil
    }

    func pingSent(id: String, link: OutboundLink) { pings[id] = link }

    /// An authenticated inbound stanza: answers to our pings, disco#info and pings to served
    /// domains are handled here (XEP-0030, XEP-0199); everything else goes to the gateway.
    /// `handled` runs once the stanza is dealt with (for XEP-0198 acknowledgements): at once,
    /// or when the durable handler says so.
    func deliver(_ element: XMLElement, handled: (@Sendable () -> Void)?) {
        if let domain = element.attribute("from").flatMap({ try? JID(parsing: $0) })?.domainpart {
            for link in links.values where link.remoteDomain == domain { link.lastStanza = .now() }
        }
        if element.name == "iq", let id = element.attribute("id"), let link = pings.removeValue(forKey: id) {
            link.pong()
            handled?()
            return
        }
        if let answer = responder.answer(element) {
            sendOnLoop(answer, acknowledged: nil)
            handled?()
            return
        }
        if let onDurableStanza {
            onDurableStanza(element, handled ?? {})
        } else {
            onStanza(element)
            handled?()
        }
    }

    /// Returns an undeliverable stanza to its sender as an error (RFC 6120 §8.3.1); errors are
    /// never answered with errors.
    func bounce(_ element: XMLElement, _ condition: StanzaError.Condition, text: String? = nil) {
        guard element.attribute("type") != "error", let from = element.attribute("from"), let to = element.attribute("to") else { return }
        var error = element
        error.setAttribute("from", to: to)
        error.setAttribute("to", to: from)
        error.setAttribute("type", to: "error")
        error.append(StanzaError(condition, text: text).element(namespace: element.namespace))
        onStanza(error)
    }

    /// Asks `sender`'s authoritative server whether `key` is right (XEP-0220 §2.1.2). The server
    /// is found as outbound links find it (a static route, else `_xmpp-server._tcp` and
    /// `_xmpps-server._tcp` SRV, else the domain on 5269), so a peer found through DNS can be
    /// verified too; each candidate is tried in turn.
    func verify(sender: String, target: String, key: String, streamID: String) -> EventLoopFuture<DialbackVerdict> {
        let promise = eventLoop.makePromise(of: DialbackVerdict.self)
        let timeout = eventLoop.scheduleTask(in: .seconds(configuration.establishTimeout)) {
            promise.succeed(DialbackVerdict(outcome: .error, reason: "\(sender)'s authoritative server did not answer in time"))
        }
        promise.futureResult.whenComplete { _ in timeout.cancel() }
        candidates(for: sender).whenComplete { result in
            let candidates = (try? result.get()) ?? []
            guard !candidates.isEmpty else {
                promise.succeed(DialbackVerdict(outcome: .error, reason: "\(sender) offers no XMPP service (SRV target '.')"))
                return
            }
            self.verify(sender: sender, target: target, key: key, streamID: streamID, via: candidates[...], promise: promise)
        }
        return promise.futureResult
    }

    private func verify(sender: String, target: String, key: String, streamID: String,
                        via candidates: ArraySlice<Candidate>, promise: EventLoopPromise<DialbackVerdict>) {
        guard let candidate = candidates.first else { return }
        let configuration = self.configuration
        let negotiation = DialbackVerifierNegotiation(sender: sender, target: target, key: key, streamID: streamID,
                                                      tlsUsable: configuration.policy(for: sender).tls != .disabled)
        let attempt = eventLoop.makePromise(of: DialbackVerdict.self)
        ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if candidate.directTLS {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(
                            context: configuration.clientContext(for: sender, from: target, directTLS: true), serverHostname: sender))
                    }
                    try channel.pipeline.syncOperations.addHandler(DialbackVerifierHandler(
                        negotiation, tlsContext: { try configuration.clientContext(for: sender, from: target) }, promise: attempt))
                }
            }
            .connect(host: candidate.host, port: candidate.port)
            .whenFailure { error in
                attempt.succeed(DialbackVerdict(outcome: .error, reason: "cannot connect to \(candidate.host):\(candidate.port): \(TLSFailure.describeAny(error))"))
            }
        attempt.futureResult.whenSuccess { verdict in
            // A server that could not be reached or talked to says nothing about the key: the
            // next candidate may. A valid or invalid answer is final.
            if verdict.outcome == .error, candidates.count > 1 {
                self.verify(sender: sender, target: target, key: key, streamID: streamID, via: candidates.dropFirst(), promise: promise)
            } else {
                promise.succeed(verdict)
            }
        }
    }
}
