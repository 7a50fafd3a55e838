import Dispatch
import Foundation
import GatewayStore
import NIOCore
import SIPCore
import SIPEdge
import StoxDNS

/// The SIP domains the gateway serves itself (embedded mode): a registrar that authenticates
/// with digest against the users in the store and keeps several bindings per user (MPOP), and
/// delivery that forks to every endpoint and counts a message as delivered only when one
/// accepts it.
///
/// Loop-bound: every mutable property is touched only on the edge's event loop, which is why
/// the class is `@unchecked Sendable`. Store calls (blocking SQLite) run on `storeQueue` and hop
/// back to the loop; the queue is serial, so writes keep their order.
public final class EmbeddedDomain: @unchecked Sendable {
    public let configuration: EmbeddedDomainConfiguration
    public let edge: SIPEdge
    let store: GatewayStore
    let loop: any EventLoop
    let storeQueue = DispatchQueue(label: "stox.sipdomain.store")
    private let clockOrigin = ContinuousClock.now
    private var authenticators: [String: DigestAuthenticator] = [:]
    private var locations: [String: [SIPBinding]] = [:]
    /// Notices being delivered, with the contacts each delivery is trying: a device that
    /// registers meanwhile is not among them and gets its own delivery at once.
    private var noticesInFlight: [Int64: Set<String>] = [:]
    /// Notices an endpoint accepted, until the store no longer lists them.
    private var noticesDelivered: Set<Int64> = []
    // Presence (EmbeddedDomain+Presence.swift); here because extensions cannot store.
    var publications: [String: [String: PublicationState]] = [:]
    var publicationSequence: UInt64 = 0
    var subscriptions: [SIPDialog.ID: WatcherSubscription] = [:]
    var watchersByPresentity: [String: Set<SIPDialog.ID>] = [:]
    var decisionPoll: RepeatedTask?
    // IM sessions (EmbeddedDomain+Sessions.swift).
    var sessions: [SIPDialog.ID: IMSession] = [:]
    // Subscriptions to peer networks' users (EmbeddedDomain+Subscriber.swift), by presentity.
    var peerSubscriptions: [String: PeerSubscriptionState] = [:]
    var peerSubscriptionsByCallID: [String: String] = [:]
    /// Unsubscribes sent and not yet answered: a stop waits for them briefly.
    var peerUnsubscribing = 0
    /// Requests for domains this gateway does not serve (the XMPP side, in the gateway).
    private let foreign: ForeignHandler?
    /// Where failures that no SIP response can carry are reported (the gateway logs them).
    let diagnostics: @Sendable (String) -> Void
    /// Where refused requests and dropped input are reported: one call each, with who and why.
    let refusals: @Sendable (SIPRefusal) -> Void
    /// RFC 3263 for peer domains without a configured next hop.
    private let locator: SIPLocator?
    /// The gateway's side of presence: local users' changes go out, and local users may watch
    /// presentities of other networks (foreign ones) whose documents the gateway supplies.
    let presenceHooks: PresenceHooks?
    /// The current documents of foreign presentities that local users watch.
    var foreignDocuments: [String: PIDFDocument] = [:]

    static let allowedMethods: [SIPMethod] = [.register, .message, .subscribe, .notify, .publish, .options, .invite, .ack, .bye, .cancel]

    /// Requests for domains this gateway does not serve (the XMPP side), with the local sender
    /// they come from, authenticated.
    public typealias ForeignHandler = @Sendable (SIPServerRequest, _ sender: String) -> Void

    /// What the gateway hears about presence, on the domain's loop.
    public struct PresenceHooks: Sendable {
        /// A local user's presence changed (read it with `aggregatedPresence(of:)`).
        public var localPresenceChanged: @Sendable (_ aor: String) -> Void
        /// A local user subscribed to a foreign presentity: a new subscription, with the decision
        /// stored so far (nil: the foreign user has not answered yet). Refreshes do not call this.
        public var foreignSubscription: @Sendable (_ presentity: String, _ watcher: String, _ decision: WatcherDecision?) -> Void

        public init(localPresenceChanged: @escaping @Sendable (_ aor: String) -> Void,
                    foreignSubscription: @escaping @Sendable (_ presentity: String, _ watcher: String, _ decision: WatcherDecision?) -> Void) {
            self.localPresenceChanged = localPresenceChanged
            self.foreignSubscription = foreignSubscription
        }
    }

    private init(configuration: EmbeddedDomainConfiguration, edge: SIPEdge, store: GatewayStore,
                 bindings: [SIPBinding], foreign: ForeignHandler?, presence: PresenceHooks?,
                 diagnostics: @escaping @Sendable (String) -> Void, refusals: @escaping @Sendable (SIPRefusal) -> Void,
                 nonceSecret: [UInt8]) {
        self.refusals = refusals
        self.configuration = configuration
        self.edge = edge
        self.store = store
        self.loop = edge.eventLoop
        self.foreign = foreign
        self.presenceHooks = presence
        self.diagnostics = diagnostics
        self.locator = (configuration.dnsServer ?? SRVResolver.systemServer()).map {
            SIPLocator(server: $0, loop: edge.eventLoop, tls: edge.tlsAddress != nil)
        }
        for domain in configuration.domains {
            authenticators[domain] = DigestAuthenticator(realm: domain, nonceLifetime: configuration.nonceLifetime,
                                                         algorithms: configuration.acceptedDigestAlgorithms, secret: nonceSecret)
        }
        for binding in bindings { locations[binding.addressOfRecord, default: []].append(binding) }
    }

    /// Starts the SIP edge with this domain as its transaction user. Bindings that were
    /// registered before a restart and have not expired are restored from the store.
    public static func start(_ configuration: EmbeddedDomainConfiguration, edge edgeConfiguration: SIPEdgeConfiguration,
                             store: GatewayStore, group: any EventLoopGroup,
                             foreign: ForeignHandler? = nil, presence: PresenceHooks? = nil,
                             diagnostics: @escaping @Sendable (String) -> Void = EmbeddedDomain.standardError,
                             refusals: (@Sendable (SIPRefusal) -> Void)? = nil) async throws -> EmbeddedDomain {
        let refusals = refusals ?? { refusal in diagnostics("\(refusal)") }
        let restored = try await Self.onQueue { try store.bindings() }.compactMap { Self.binding(from: $0, configuration: configuration) }
        // Kept in the store so that nonces outlive a restart (see DigestAuthenticator).
        let nonceSecret = try await Self.onQueue { try store.secret(named: "sip-digest-nonce") }
        let (storedPublications, storedWatchers) = try await Self.onQueue { (try store.publications(), try store.sipWatchers()) }
        let slot = DomainSlot()
        let edge = try await SIPEdge.start(edgeConfiguration, handlers: SIPEdgeHandlers(
            request: { request in
                guard let domain = slot.domain else {
                    // Only in the moment between the listeners binding and `start` returning.
                    return request.respond(request.request.makeResponse(503))
                }
                domain.handle(request)
            },
            ack: { ack, _ in slot.domain?.receivedACK(ack) },
            event: { event in
                switch event {
                case .malformed(let address, let kind):
                    refusals(SIPRefusal(kind: .malformed, source: address.hostAndPort, reason: "malformed SIP: \(kind.words)"))
                case .strayResponse(let address):
                    refusals(SIPRefusal(kind: .strayResponse, source: address.hostAndPort, reason: "a response that matches no request we sent, dropped"))
                case .ackTimeout(let callID):
                    diagnostics("no ACK for the final response of INVITE \(callID) (Timer H)")
                case .responseRerouted(let address):
                    diagnostics("the connection a request came on had closed; its response went over a new connection to \(address) (RFC 3261 §18.2.2)")
                }
            }), group: group)
        let domain = EmbeddedDomain(configuration: configuration, edge: edge, store: store, bindings: restored, foreign: foreign,
                                    presence: presence, diagnostics: diagnostics, refusals: refusals, nonceSecret: nonceSecret)
        try await edge.eventLoop.submit {
            slot.domain = domain
            domain.restore(publications: storedPublications, watchers: storedWatchers)
            domain.startDecisionPoll()
        }.get()
        return domain
    }

    /// Ends every subscription with a final NOTIFY (RFC 6665 §4.2.2 `deactivated`: the
    /// watcher may subscribe again), waits briefly for their answers, then closes the edge.
    public func stop() async {
        try? await loop.submit { [self] in
            terminateAllSubscriptions()
            closeAllSessions()
            endAllPeerSubscriptions()
        }.get()
        for _ in 0..<25 {
            let pending = (try? await loop.submit { [self] in subscriptions.count + sessions.count + peerUnsubscribing }.get()) ?? 0
            if pending == 0 { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        await edge.stop()
        // Writes already queued (bindings, notices) land before stop returns.
        await storeSettled()
    }

    // MARK: Requests

    /// Routes one request from the edge (on the loop).
    func handle(_ server: SIPServerRequest) {
        let request = server.request
        if request.method == .notify {
            // The only NOTIFYs the domain takes are for its own subscriptions to peer users.
            return peerNotify(server)
        }
        if request.to?.tag != nil, request.method != .subscribe {
            // Inside a dialog: an IM session's MESSAGE, BYE, re-INVITE (a SUBSCRIBE refresh
            // goes to its subscription below).
            return inDialog(server)
        }
        switch request.method {
        case .register:
            register(server)
        case .options where configuration.serves(request.uri.host):
            var response = request.makeResponse(200)
            response.headers.add(.allow, Self.allowedMethods.map(\.rawValue).joined(separator: ", "))
            response.headers.add(.accept, "text/plain, text/html, application/pidf+xml")
            response.headers.add(.allowEvents, "presence")
            server.respond(response)
        case .message where configuration.peer(for: request.uri.host) != nil:
            // To a user of a SIP network we peer with: through its proxy.
            withLocalSender(server) { [self] _ in
                let aor = "\(request.uri.decodedUser ?? "")@\(request.uri.host.lowercased())"
                deliver(request, to: aor, budget: configuration.sipMessageBudget) { outcome in
                    server.respond(Self.response(to: request, for: outcome))
                }
            }
        case .subscribe where presenceHooks != nil && isForeign(request.uri.host):
            // A local user watching someone on the other network: the domain is the notifier,
            // the gateway supplies the documents and the authorization.
            subscribe(server)
        case _ where !configuration.serves(request.uri.host):
            // Not an open relay: only the served domains and, with the gateway, XMPP ones; and
            // only the domain's own users may send there.
            guard let foreign else {
                return server.respond(request.makeResponse(404, reasonPhrase: "Domain Not Served"))
            }
            withLocalSender(server) { sender in foreign(server, sender) }
        case .invite:
            relaySession(server)
        case .message:
            message(server)
        case .subscribe:
            subscribe(server)
        case .publish:
            publish(server)
        default:
            // §8.2.1: 405 for a method we know but do not take here, 501 for one we do not know;
            // both list what is allowed.
            var response = request.makeResponse(request.method.isRecognized ? 405 : 501)
            response.headers.add(.allow, Self.allowedMethods.map(\.rawValue).joined(separator: ", "))
            server.respond(response)
        }
    }

    // MARK: Registrar (RFC 3261 §10.3)

    private func register(_ server: SIPServerRequest) {
        let request = server.request
        // Step 1: the Request-URI names the domain; step 5: the To is the address-of-record.
        guard configuration.serves(request.uri.host), let to = request.to, to.uri.isSIP,
              configuration.serves(to.uri.host), let user = to.uri.decodedUser, !user.isEmpty else {
            return server.respond(request.makeResponse(404, reasonPhrase: "Domain Not Served"))
        }
        let domain = to.uri.host.lowercased()
        let aor = "\(user)@\(domain)"
        authenticate(server, realm: domain, proxy: false) { [self] username in
            // Step 4: the authenticated user may only register their own address.
            guard username == user else {
                return server.respond(request.makeResponse(403, reasonPhrase: "Not Your Address"))
            }
            let now = Date()
            switch Registrar.apply(request, aor: aor, to: locations[aor] ?? [], flow: SIPTarget(server.source), now: now,
                                   configuration: configuration) {
            case .failure(.intervalTooBrief(let minimum)):
                var response = request.makeResponse(423)
                response.headers.add(.minExpires, String(minimum))
                server.respond(response)
            case .failure(.badRequest(let reason)):
                server.respond(request.makeResponse(400, reasonPhrase: reason))
            case .failure(.forbidden(let reason)):
                server.respond(request.makeResponse(403, reasonPhrase: reason))
            case .success(let bindings):
                locations[aor] = bindings.isEmpty ? nil : bindings
                persist(aor: aor, bindings: bindings)
                server.respond(Registrar.success(request, bindings: bindings, now: now))
                // A device that signs in gets what it missed while away.
                if !bindings.isEmpty { deliverNotices(to: aor) }
            }
        }
    }

    private func persist(aor: String, bindings: [SIPBinding]) {
        let stored = bindings.map { binding in
            StoredBinding(addressOfRecord: aor, contact: binding.contact.description, callID: binding.callID,
                          cseq: binding.cseq, expiresAt: binding.expiresAt, transport: binding.flow.transport.rawValue,
                          source: Self.hostPort(binding.flow.address), userAgent: binding.userAgent)
        }
        storeWrite("bindings of \(aor)") { try $0.replaceBindings(of: aor, with: stored) }
    }

    /// The current bindings of an address-of-record (`user@domain`).
    public func bindings(of aor: String) async -> [SIPBinding] {
        (try? await loop.submit { [self] in currentBindings(aor) }.get()) ?? []
    }

    func currentBindings(_ aor: String) -> [SIPBinding] {
        let now = Date()
        let live = (locations[aor] ?? []).filter { $0.expiresAt > now }
        locations[aor] = live.isEmpty ? nil : live
        return live
    }

    // MARK: Authentication (RFC 3261 §22, RFC 7616)

    /// Runs `then` with the authenticated user name, or answers the request with a challenge
    /// (401/407) or 403. The user's HA1s are read from the store off the loop.
    func authenticate(_ server: SIPServerRequest, realm: String, proxy: Bool, then: @escaping @Sendable (String) -> Void) {
        let header: SIPHeaderName = proxy ? .proxyAuthorization : .authorization
        let offered = server.request.headers.values(header).compactMap(SIPAuthorization.parse)
            .first { $0.isDigest && $0.realm == realm }
        guard let username = offered?.username else { return challenge(server, realm: realm, proxy: proxy, stale: false) }
        let key = username + "@" + realm
        if let cached = credentialCache[key], cached.until > .now() {
            return verify(server, realm: realm, proxy: proxy, header: header, user: cached.user, then: then)
        }
        // Requests of a user whose lookup is under way wait behind it, so they are verified in
        // the order they came: a client's nonce counts must rise (RFC 7616 §3.4.5), and one that
        // pipelines requests would see later ones refused as replays if they overtook.
        let waiting = (server: server, verify: { [self] (user: StoredUser?) in
            verify(server, realm: realm, proxy: proxy, header: header, user: user, then: then)
        })
        if credentialLookups[key] != nil {
            credentialLookups[key]?.append(waiting)
            return
        }
        credentialLookups[key] = [waiting]
        let store = self.store
        storeQueue.async { [self] in
            let lookup = Result { try store.user(username: username, domain: realm) }
            loop.execute { [self] in
                let waiting = credentialLookups.removeValue(forKey: key) ?? []
                guard case .success(let user) = lookup else {
                    for request in waiting { storeUnavailable(request.server, lookup) }
                    return
                }
                if credentialCache.count >= 100_000 { credentialCache.removeAll(keepingCapacity: true) }
                credentialCache[key] = (user, .now() + Self.credentialLifetime)
                for request in waiting { request.verify(user) }
            }
        }
    }

    /// Requests waiting for a user's lookup, in arrival order.
    private var credentialLookups: [String: [(server: SIPServerRequest, verify: (StoredUser?) -> Void)]] = [:]

    /// Users' HA1s as last read from the store, for `credentialLifetime`. Every authenticated
    /// request (each MESSAGE of a busy sender) would otherwise cost a store read and two thread
    /// hops; with it a sender's requests are verified on the loop. The price: a password changed
    /// or a user removed with `stox users` (another process) takes effect within that time.
    private var credentialCache: [String: (user: StoredUser?, until: NIODeadline)] = [:]
    static let credentialLifetime = TimeAmount.seconds(5)

    private func verify(_ server: SIPServerRequest, realm: String, proxy: Bool, header: SIPHeaderName, user: StoredUser?,
                        then: @escaping @Sendable (String) -> Void) {
        let verdict = authenticators[realm]?.verify(server.request, header: header, now: wallClock) { name, algorithm in
            guard let user, name == user.username else { return nil }
            return algorithm == .md5 ? user.ha1MD5 : user.ha1SHA256
        } ?? .missing
        switch verdict {
        case .authenticated(let name): then(name)
        case .missing: challenge(server, realm: realm, proxy: proxy, stale: false)
        case .stale: challenge(server, realm: realm, proxy: proxy, stale: true)
        case .forged:
            refusals(SIPRefusal(kind: .digestNonce, source: server.source.address.hostAndPort,
                                reason: "a nonce this gateway never issued, for \(realm)"))
            challenge(server, realm: realm, proxy: proxy, stale: false)
        case .rejected(let reason):
            let name = server.request.headers.values(header).compactMap(SIPAuthorization.parse).first { $0.realm == realm }?.username ?? "?"
            refusals(SIPRefusal(kind: reason.contains("replay") ? .digestReplay : .digestFailed, source: server.source.address.hostAndPort,
                                reason: "\(name)@\(realm): \(reason)"))
            // One answer for every rejection: a different one for an unknown user would let
            // anyone enumerate users. The reason stays in the log.
            server.respond(server.request.makeResponse(403))
        }
    }

    private func challenge(_ server: SIPServerRequest, realm: String, proxy: Bool, stale: Bool) {
        guard let authenticator = authenticators[realm] else { return }
        var response = server.request.makeResponse(proxy ? 407 : 401)
        let offering = configuration.digestAlgorithms(forUserAgent: server.request.headers[.userAgent])
        for challenge in authenticator.challengeValues(now: wallClock, stale: stale, offering: offering) {
            response.headers.add(proxy ? .proxyAuthenticate : .wwwAuthenticate, challenge)
        }
        // RFC 3261 §8.2.7: challenges are what a stateless answer is for. A lost 401/407 is
        // recovered by the UA's retransmission, which is challenged afresh.
        server.respondStatelessly(response)
    }

    var now: SIPInstant { SIPInstant(clockOrigin.duration(to: .now)) }
    /// Digest nonces carry wall-clock time, so that they outlive a restart and do not tell
    /// anyone the process's uptime.
    var wallClock: SIPInstant { SIPInstant(.milliseconds(Int64(Date().timeIntervalSince1970 * 1000))) }

    // MARK: Messages (RFC 3428), forked across endpoints

    private func message(_ server: SIPServerRequest) {
        let request = server.request
        withLocalSender(server) { [self] _ in
            withExistingUser(server) { [self] recipient in
                deliver(request, to: recipient, budget: configuration.sipMessageBudget) { outcome in
                    server.respond(Self.response(to: request, for: outcome))
                }
            }
        }
    }

    /// Runs `then` with the sender's address-of-record once the request is known to come from
    /// one of the domain's own users, authenticated (407). Over the wire only they may send:
    /// other SIP domains come in through peer mode, XMPP users through the gateway.
    func withLocalSender(_ server: SIPServerRequest, then: @escaping @Sendable (String) -> Void) {
        let request = server.request
        if let from = request.from, from.uri.isSIP, let peer = configuration.peer(for: from.uri.host),
           let sender = from.uri.decodedUser {
            // Peer mode: the peer network vouches for its users; only its proxies may speak for it.
            guard let ip = server.source.address.ipAddress, peer.trustedAddresses.contains(ip) else {
                refusals(SIPRefusal(kind: .untrustedPeer, source: server.source.address.hostAndPort,
                                    reason: "\(request.method) claiming to come from \(sender)@\(peer.domain), from an address not trusted for it (sip.peer_trusted)"))
                return server.respond(request.makeResponse(403, reasonPhrase: "Untrusted Source For \(peer.domain)"))
            }
            return then("\(sender)@\(peer.domain)")
        }
        guard let from = request.from, from.uri.isSIP, configuration.serves(from.uri.host),
              let sender = from.uri.decodedUser else {
            return server.respond(request.makeResponse(403, reasonPhrase: "Sender Not Served Here"))
        }
        let domain = from.uri.host.lowercased()
        authenticate(server, realm: domain, proxy: true) { username in
            guard username == sender else {
                return server.respond(request.makeResponse(403, reasonPhrase: "Not Your Address"))
            }
            then("\(sender)@\(domain)")
        }
    }

    /// A host that is neither served here nor a peer SIP network: the gateway's other side.
    func isForeign(_ host: String) -> Bool {
        !configuration.serves(host) && configuration.peer(for: host) == nil
    }

    /// Runs `then` with the Request-URI's address-of-record if that user exists, else 404.
    /// A foreign user (with the gateway's presence hooks) exists as far as this domain knows.
    func withExistingUser(_ server: SIPServerRequest, then: @escaping @Sendable (String) -> Void) {
        let request = server.request
        guard let user = request.uri.decodedUser, !user.isEmpty else {
            return server.respond(request.makeResponse(404))
        }
        let domain = request.uri.host.lowercased()
        if presenceHooks != nil, isForeign(domain) { return then("\(user)@\(domain)") }
        let store = self.store
        storeQueue.async { [self] in
            let lookup = Result { try store.user(username: user, domain: domain) }
            loop.execute { [self] in
                guard case .success(let found) = lookup else { return storeUnavailable(server, lookup) }
                guard found != nil else { return server.respond(request.makeResponse(404)) }
                then("\(user)@\(domain)")
            }
        }
    }

    /// The store failed a read the answer depends on: 500 with Retry-After (RFC 3261 §21.5.1),
    /// not a verdict about the user, and the failure is reported.
    private func storeUnavailable<T>(_ server: SIPServerRequest, _ lookup: Result<T, any Error>) {
        if case .failure(let error) = lookup { diagnostics("store read failed: \(error)") }
        var response = server.request.makeResponse(500, reasonPhrase: "Store Unavailable")
        response.headers.add(.retryAfter, "5")
        server.respond(response)
    }

    /// Returns once every store write queued so far has run (the queue is serial): what the
    /// domain did before an answer went out is then in the store.
    func storeSettled() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            storeQueue.async { continuation.resume() }
        }
    }

    /// Runs a store write on the store's queue; a failure is reported, never silent.
    func storeWrite(_ what: String, _ body: @escaping @Sendable (GatewayStore) throws -> Void) {
        let store = self.store, diagnostics = self.diagnostics
        storeQueue.async {
            do { try body(store) } catch { diagnostics("store write failed (\(what)): \(error)") }
        }
    }

    /// What the sender is told: the accepting endpoint's 2xx, or why nobody accepted.
    static func response(to request: SIPRequest, for outcome: SIPDeliveryOutcome) -> SIPResponse {
        switch outcome {
        case .accepted(let response, _):
            return request.makeResponse(response.statusCode, toTag: response.to?.tag)
        case .failed(let best?) where ![401, 407, 408].contains(best.statusCode):
            return request.makeResponse(best.statusCode, reasonPhrase: best.reasonPhrase)
        case .failed:
            // RFC 4320: no 408 to a non-INVITE; "contacted but unavailable" is 480.
            return request.makeResponse(480, reasonPhrase: "Not Accepted By Any Endpoint")
        case .offline:
            return request.makeResponse(480, reasonPhrase: "User Offline")
        }
    }

    /// Delivers a request to every endpoint of `aor` (the gateway's entry point for messages from
    /// XMPP). With no `budget`, each branch waits its class's full acceptance timeout.
    public func deliver(_ request: SIPRequest, to aor: String, budget: Duration? = nil) async -> SIPDeliveryOutcome {
        await withCheckedContinuation { continuation in
            loop.execute { [self] in
                deliver(request, to: aor, budget: budget) { continuation.resume(returning: $0) }
            }
        }
    }

    /// The same, for a caller already on the domain's loop (the gateway): no task, no hop.
    public func deliver(_ request: SIPRequest, to aor: String, budget: Duration?, completion: @escaping @Sendable (SIPDeliveryOutcome) -> Void) {
        loop.preconditionInEventLoop()
        let local = configuration.serves(aor: aor)
        deliveryBindings(aor) { [self] bindings in
            ForkedDelivery.start(request, to: bindings, edge: edge, budget: budget) { [self] outcome in
                completion(outcome)
                switch outcome {
                case .accepted: break
                case _ where !local: break  // a peer network keeps its own missed-message state
                case .failed(let best) where (best?.statusCode ?? 0) >= 600: break  // declined on purpose
                case .failed, .offline: recordMissed(request, for: aor)
                }
            }
        }
    }

    /// Where a request for `aor` goes: every registered endpoint of a local user, or the proxy
    /// of a peer network (which forks on its side) for one of its users, configured or found
    /// through RFC 3263. Never fails: no binding means offline (or unreachable). `body` runs at
    /// once when the answer is known without DNS (every message's case: a future per message
    /// cost its allocations and callback list on the hot path), else when the lookup ends.
    func deliveryBindings(_ aor: String, _ body: @escaping @Sendable ([SIPBinding]) -> Void) {
        let parts = aor.split(separator: "@", maxSplits: 1).map(String.init)
        guard parts.count == 2, let peer = configuration.peer(for: parts[1]) else {
            return body(currentBindings(aor))
        }
        let user = SIPURI.percentEncoded(parts[0], allowed: SIPURI.userAllowedCharacters)
        @Sendable func binding(_ flow: SIPTarget) -> SIPBinding {
            SIPBinding(addressOfRecord: aor, contact: SIPNameAddress(uri: SIPURI(scheme: .sip, user: user, host: peer.domain)),
                       callID: "", cseq: 0, expiresAt: .distantFuture, flow: flow, userAgent: nil,
                       endpointClass: EndpointClass(name: "peer", acceptanceTimeout: peer.acceptanceTimeout))
        }
        if let nextHop = peer.nextHop { return body([binding(nextHop)]) }
        guard let locator else {
            diagnostics("no DNS server for RFC 3263 lookups of \(peer.domain)")
            return body([])
        }
        // The best target only: the peer's proxies fork among themselves, not us across them.
        locator.locate(peer.domain).whenSuccess { targets in body(targets.prefix(1).map(binding)) }
    }

    // MARK: Missed-message notices

    func recordMissed(_ request: SIPRequest, for aor: String) {
        let text = Self.missedNotice(for: request, at: Date())
        let store = self.store
        storeQueue.async { [self] in
            do {
                try store.addNotice(for: aor, text: text)
            } catch {
                diagnostics("store write failed (missed-message notice for \(aor)): \(error)")
            }
            loop.execute { [self] in deliverNotices(to: aor) }
        }
    }

    /// "Missed message from NAME <URI> at TIME UTC: TEXT", the text cut to 200 characters.
    static func missedNotice(for request: SIPRequest, at date: Date) -> String {
        let sender = request.from.map { address in
            address.displayName.map { "\($0) <\(address.uri.addressOfRecord)>" } ?? "<\(address.uri.addressOfRecord)>"
        } ?? "an unknown sender"
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        var notice = "Missed message from \(sender) at \(formatter.string(from: date)) UTC"
        if request.contentType.map({ $0.type.lowercased() == "text" }) ?? false, let text = String(validating: request.body, as: UTF8.self) {
            let excerpt = text.count > 200 ? String(text.prefix(200)) + "…" : text
            notice += ": " + excerpt
        }
        return notice
    }

    /// Sends the notices kept for `aor` to its endpoints; one is removed once an endpoint
    /// accepts it, and otherwise waits for the user's next registration.
    private func deliverNotices(to aor: String) {
        let store = self.store
        storeQueue.async { [self] in
            let notices: [StoredNotice]
            do {
                notices = try store.notices(for: aor)
            } catch {
                // They stay stored and go out at the user's next registration.
                diagnostics("store read failed (notices for \(aor)): \(error)")
                notices = []
            }
            loop.execute { [self] in
                let bindings = currentBindings(aor)
                guard !bindings.isEmpty else { return }
                for notice in notices where !noticesDelivered.contains(notice.id) {
                    // Only the endpoints no delivery of this notice is trying yet: the one that
                    // just registered, while another device's attempt waits on its timeout.
                    let tried = noticesInFlight[notice.id] ?? []
                    let fresh = bindings.filter { !tried.contains($0.contact.uri.description) }
                    guard !fresh.isEmpty else { continue }
                    let contacts = Set(fresh.map { $0.contact.uri.description })
                    noticesInFlight[notice.id, default: []].formUnion(contacts)
                    ForkedDelivery.start(noticeRequest(notice), to: fresh, edge: edge, budget: nil) { [self] outcome in
                        noticesInFlight[notice.id]?.subtract(contacts)
                        if noticesInFlight[notice.id]?.isEmpty == true { noticesInFlight[notice.id] = nil }
                        if case .accepted = outcome, noticesDelivered.insert(notice.id).inserted {
                            storeWrite("notice \(notice.id) delivered") { try $0.removeNotice(id: notice.id) }
                        }
                    }
                }
                // What the store no longer lists needs no memory of its delivery.
                let listed = Set(notices.map(\.id))
                noticesDelivered = noticesDelivered.filter { listed.contains($0) || noticesInFlight[$0] != nil }
            }
        }
    }

    private func noticeRequest(_ notice: StoredNotice) -> SIPRequest {
        let domain = notice.addressOfRecord.split(separator: "@").last.map(String.init) ?? ""
        var type = SIPMediaType.textPlain
        type.parameters.set("charset", .some("UTF-8"))
        return SIPRequest.message(
            from: SIPNameAddress(displayName: domain, uri: SIPURI(scheme: .sip, user: nil, host: domain)),
            to: SIPURI("sip:\(notice.addressOfRecord)") ?? SIPURI(scheme: .sip, user: nil, host: domain),
            callID: "notice-\(notice.id)-\(SIPNameAddress.makeTag())", body: Array(notice.text.utf8), contentType: type)
    }

    // MARK: Helpers

    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data("stox sip-domain: \(line)\n".utf8))
    }


    static func hostPort(_ address: SocketAddress) -> String {
        let ip = address.ipAddress ?? "0.0.0.0"
        return (ip.contains(":") ? "[\(ip)]" : ip) + ":" + String(address.port ?? 0)
    }

    /// A flow as the store keeps it: a transport name and `host:port` (`[v6]:port`).
    static func target(transport name: String, source: String) -> SIPTarget? {
        guard let transport = SIPSource.Transport(rawValue: name),
              let colon = source.lastIndex(of: ":"), let port = Int(source[source.index(after: colon)...]) else {
            return nil
        }
        var host = String(source[..<colon])
        if host.hasPrefix("[") { host = String(host.dropFirst().dropLast()) }
        guard let address = try? SocketAddress(ipAddress: host, port: port) else { return nil }
        return SIPTarget(transport: transport, address: address)
    }

    static func binding(from stored: StoredBinding, configuration: EmbeddedDomainConfiguration) -> SIPBinding? {
        guard let contact = SIPNameAddress.parse(stored.contact), let flow = target(transport: stored.transport, source: stored.source) else {
            return nil
        }
        return SIPBinding(addressOfRecord: stored.addressOfRecord, contact: contact, callID: stored.callID, cseq: stored.cseq,
                          expiresAt: stored.expiresAt, flow: flow,
                          userAgent: stored.userAgent,
                          endpointClass: configuration.endpointClass(contactParameters: contact.parameters, userAgent: stored.userAgent))
    }

    private static func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }
}

/// Lets the edge's handler reach the domain, which exists only once the edge has started.
private final class DomainSlot: @unchecked Sendable {
    // Written once on the edge's loop, before which requests get 503; read on the loop.
    var domain: EmbeddedDomain?
}

/// A request refused or an input dropped by the SIP side: what the operator's log line and the
/// `stox_refusals_total` counter say.
public struct SIPRefusal: Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        case malformed = "malformed-sip"
        case strayResponse = "stray-response"
        case digestFailed = "digest-failed"
        case digestReplay = "digest-replay"
        case digestNonce = "digest-forged-nonce"
        case untrustedPeer = "untrusted-peer"
    }
    public var kind: Kind
    /// The source address (IP and port).
    public var source: String
    /// In words.
    public var reason: String

    public var description: String { "refused \(source): \(reason) [\(kind.rawValue)]" }
}

extension SocketAddress {
    /// `192.0.2.1:5060` or `[2001:db8::1]:5060`: what a log line and a fail2ban filter want.
    var hostAndPort: String {
        guard let ip = ipAddress else { return "\(self)" }
        return (ip.contains(":") ? "[\(ip)]" : ip) + ":\(port ?? 0)"
    }
}

extension SIPParseError.Kind {
    /// The fault in words, for the log (the wire gets a plain 400).
    var words: String {
        String(describing: self).reduce(into: "") { out, character in
            if character.isUppercase { out += " " + character.lowercased() } else { out.append(character) }
        }
    }
}
