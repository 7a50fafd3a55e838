import Dispatch
import Foundation
import GatewayStore
import NIOCore
import SIPCore
import SIPEdge

/// One endpoint's published presence (RFC 3903 §6): soft state with an entity tag.
struct PublicationState {
    var publication: PresenceComposer.Publication
    var timer: Scheduled<Void>?
}

/// A watcher's subscription to a local user's presence, with the flow its NOTIFYs go down.
struct WatcherSubscription {
    var subscription: SIPSubscription
    let presentity: String
    let watcher: String
    let flow: SIPTarget
    /// The dialog's last SUBSCRIBE, kept in the store so a restart can rebuild the dialog.
    var subscribe: SIPRequest
    var timer: Scheduled<Void>?
    /// RFC 6665 §4.2.2 ordering: one NOTIFY outstanding at a time; a change meanwhile is sent
    /// once the outstanding one is answered, with the state as it is then (no flood).
    var notifying = false
    var dirty = false
}

/// Presence for the domain's users (RFC 3856 over RFC 6665, PUBLISH per RFC 3903): each
/// endpoint publishes, watchers see one composed document, and unknown watchers wait for the
/// user's decision.
extension EmbeddedDomain {
    static let publicationLimits = SIPSubscription.Limits()

    // MARK: PUBLISH (RFC 3903 §6)

    func publish(_ server: SIPServerRequest) {
        let request = server.request
        guard request.event?.package.lowercased() == "presence" else { return badEvent(server) }
        withLocalSender(server) { [self] sender in
            // A user publishes their own presence only.
            guard let user = request.uri.decodedUser, "\(user)@\(request.uri.host.lowercased())" == sender else {
                return server.respond(request.makeResponse(403, reasonPhrase: "Not Your Presence"))
            }
            let limits = Self.publicationLimits
            let requested = request.expires ?? limits.default
            if requested != 0, requested < limits.minimum {
                var response = request.makeResponse(423)
                response.headers.add(.minExpires, String(limits.minimum))
                return server.respond(response)
            }
            let granted = min(requested, limits.maximum)
            var document: PIDFDocument?
            if !request.body.isEmpty {
                guard request.contentType.map({ $0.matches(.pidf) }) ?? false else {
                    var response = request.makeResponse(415)
                    response.headers.add(.accept, SIPMediaType.pidf.description)
                    return server.respond(response)
                }
                do {
                    document = try PIDFDocument(bytes: request.body)
                } catch {
                    return server.respond(request.makeResponse(400, reasonPhrase: "Bad PIDF: \(error)"))
                }
            }
            var mine = publications[sender] ?? [:]
            let etag: String
            if let match = request.headers[.sipIfMatch] {
                // Step 3: refresh, modify or remove an existing publication.
                guard var state = mine.removeValue(forKey: match) else {
                    return server.respond(request.makeResponse(412))
                }
                state.timer?.cancel()
                storeWrite("publication replaced") { try $0.removePublication(aor: sender, etag: match) }
                if granted == 0 {
                    publications[sender] = mine.isEmpty ? nil : mine
                    presenceChanged(sender)
                    var response = request.makeResponse(200)
                    response.headers.add(.sipETag, match)
                    response.headers.add(.expires, "0")
                    return server.respond(response)
                }
                if let document {
                    publicationSequence += 1
                    state.publication.document = document
                    state.publication.sequence = publicationSequence
                }
                // Step 7: a fresh entity-tag on every successful refresh or modification.
                etag = SIPNameAddress.makeTag()
                state.publication.etag = etag
                mine[etag] = state
            } else {
                // Step 4: an initial publication must carry state.
                guard let document, granted > 0 else {
                    return server.respond(request.makeResponse(400, reasonPhrase: "Initial PUBLISH Without State"))
                }
                publicationSequence += 1
                etag = SIPNameAddress.makeTag()
                mine[etag] = PublicationState(publication: PresenceComposer.Publication(etag: etag, document: document, sequence: publicationSequence))
            }
            mine[etag]?.timer = loop.scheduleTask(in: .seconds(Int64(granted))) { [self] in
                publicationExpired(sender, etag: etag)
            }
            publications[sender] = mine
            if let publication = mine[etag]?.publication {
                let expiresAt = Date().addingTimeInterval(TimeInterval(granted))
                storeWrite("publication") {
                    try $0.savePublication(aor: sender, etag: etag, document: publication.document.serialized(),
                                           sequence: publication.sequence, expiresAt: expiresAt)
                }
            }
            var response = request.makeResponse(200)
            response.headers.add(.sipETag, etag)
            response.headers.add(.expires, String(granted))
            server.respond(response)
            if document != nil { presenceChanged(sender) }
        }
    }

    private func publicationExpired(_ aor: String, etag: String) {
        guard publications[aor]?.removeValue(forKey: etag) != nil else { return }
        storeWrite("publication expired") { try $0.removePublication(aor: aor, etag: etag) }
        if publications[aor]?.isEmpty ?? false { publications[aor] = nil }
        presenceChanged(aor)
    }

    private func badEvent(_ server: SIPServerRequest) {
        var response = server.request.makeResponse(489)
        response.headers.add(.allowEvents, "presence")
        server.respond(response)
    }

    /// What watchers of `aor` see now: a local user's endpoints composed, or the document the
    /// gateway supplied for a foreign presentity (closed until it has one). On the loop.
    public func composedPresence(of aor: String) -> PIDFDocument {
        if presenceHooks != nil, isForeign(String(aor.split(separator: "@").last ?? "")) {
            return foreignDocuments[aor] ?? PIDFDocument(entity: "sip:\(aor)", tuples: [PIDFTuple(id: "stox-offline", basic: .closed)])
        }
        return PresenceComposer.compose(entity: "sip:\(aor)", publications: (publications[aor] ?? [:]).values.map(\.publication),
                                        rules: configuration.presenceRules)
    }

    /// A local user's presence as one state, for watchers on a network that shows one
    /// presence per contact (the most available endpoint's document). On the loop.
    public func aggregatedPresence(of aor: String, tupleID: String) -> PIDFDocument {
        PresenceComposer.aggregate(entity: "sip:\(aor)", publications: (publications[aor] ?? [:]).values.map(\.publication), tupleID: tupleID,
                                   rules: configuration.presenceRules)
    }

    /// Sets the document of a foreign presentity (from the gateway) and notifies the local
    /// users watching it; nil forgets it (closed).
    public func setForeignPresence(_ presentity: String, _ document: PIDFDocument?) {
        loop.execute { [self] in
            foreignDocuments[presentity] = document
            for id in watchersByPresentity[presentity] ?? [] { notify(id) }
        }
    }

    /// Whether any local user watches `presentity` now.
    public func hasWatchers(_ presentity: String) -> EventLoopFuture<Bool> {
        loop.submit { [self] in !(watchersByPresentity[presentity]?.isEmpty ?? true) }
    }

    /// The decision that applies to `watcher` seeing `presentity`: stored, else the domain's
    /// policy; nil means the presentity has to be asked.
    public func watcherDecision(presentity: String, watcher: String) -> EventLoopFuture<WatcherDecision?> {
        let promise = loop.makePromise(of: WatcherDecision?.self)
        loop.execute { [self] in decision(presentity: presentity, watcher: watcher) { promise.succeed($0) } }
        return promise.futureResult
    }

    // MARK: SUBSCRIBE / NOTIFY (RFC 6665 §4.2, RFC 3856 §6)

    func subscribe(_ server: SIPServerRequest) {
        let request = server.request
        guard request.event?.package.lowercased() == "presence" else { return badEvent(server) }
        if let toTag = request.to?.tag {
            return refreshSubscription(server, toTag: toTag)
        }
        withLocalSender(server) { [self] watcher in
            withExistingUser(server) { [self] presentity in
                decision(presentity: presentity, watcher: watcher) { [self] decision in
                    if decision == .block {
                        // RFC 6665 §4.2.1.1: a refused subscription; the watcher learns no state.
                        return server.respond(request.makeResponse(403, reasonPhrase: "Watcher Blocked"))
                    }
                    let tag = SIPNameAddress.makeTag()
                    guard let (created, answer) = SIPSubscription.create(
                        request, localTag: tag, authorized: decision == .allow, now: now, limits: Self.publicationLimits) else {
                        return server.respond(request.makeResponse(400, reasonPhrase: "Cannot Form A Dialog", toTag: tag))
                    }
                    server.respond(subscribeResponse(request, answer: answer, toTag: tag, transport: server.source.transport))
                    guard let created else { return }
                    let id = created.dialog.id
                    subscriptions[id] = WatcherSubscription(subscription: created, presentity: presentity, watcher: watcher,
                                                            flow: SIPTarget(server.source), subscribe: request)
                    watchersByPresentity[presentity, default: []].insert(id)
                    persist(id)
                    armExpiry(id)
                    notify(id)
                    if let hooks = presenceHooks, isForeign(String(presentity.split(separator: "@").last ?? "")) {
                        hooks.foreignSubscription(presentity, watcher, decision)
                    }
                }
            }
        }
    }

    private func refreshSubscription(_ server: SIPServerRequest, toTag: String) {
        let request = server.request
        guard let callID = request.callID, let fromTag = request.from?.tag,
              var live = subscriptions[SIPDialog.ID(callID: callID, localTag: toTag, remoteTag: fromTag)] else {
            return server.respond(request.makeResponse(481))
        }
        let id = live.subscription.dialog.id
        let answer = live.subscription.refresh(request, now: now, limits: Self.publicationLimits)
        subscriptions[id] = live
        server.respond(subscribeResponse(request, answer: answer, toTag: toTag, transport: server.source.transport))
        guard case .accepted = answer else { return }
        live.timer?.cancel()
        live.subscribe = request
        subscriptions[id] = live
        persist(id)
        armExpiry(id)
        notify(id)
    }

    private func subscribeResponse(_ request: SIPRequest, answer: SIPSubscription.Answer, toTag: String,
                                   transport: SIPSource.Transport) -> SIPResponse {
        switch answer {
        case .accepted(let expires):
            // RFC 6665 §8.3.1: 200 whether active or pending (202 is deprecated).
            var response = request.makeResponse(200, toTag: toTag)
            response.headers.add(.expires, String(expires))
            response.headers.add(.contact, "<\(edge.contact(for: transport))>")
            return response
        case .intervalTooBrief(let minimum):
            var response = request.makeResponse(423, toTag: toTag)
            response.headers.add(.minExpires, String(minimum))
            return response
        case .outOfOrder:
            return request.makeResponse(500, reasonPhrase: "CSeq Out Of Order", toTag: toTag)
        }
    }

    private func armExpiry(_ id: SIPDialog.ID) {
        guard var live = subscriptions[id], !live.subscription.isTerminated else { return }
        let delay = live.subscription.expiresAt - now
        live.timer = loop.scheduleTask(in: TimeAmount(max(delay, .zero))) { [self] in
            guard var live = subscriptions[id], live.subscription.expire(now: now) else { return }
            subscriptions[id] = live
            live.timer = nil
            notify(id)
        }
        subscriptions[id] = live
    }

    /// Sends the subscription's next NOTIFY, or marks it to be sent when the outstanding one
    /// is answered. A terminated subscription is forgotten once its final NOTIFY is sent.
    func notify(_ id: SIPDialog.ID) {
        guard var live = subscriptions[id] else { return }
        if live.notifying {
            live.dirty = true
            subscriptions[id] = live
            return
        }
        let body = notifyBody(for: live)
        var request = live.subscription.makeNotify(body: body, now: now)
        if !live.subscription.isTerminated {
            // The CSeq goes on from here after a restart (§12.2.1.1: increasing in the dialog).
            let sequence = live.subscription.dialog.localSequence
            storeWrite("NOTIFY sequence") {
                try $0.updateSIPWatcherSequence(callID: id.callID, localTag: id.localTag, remoteTag: id.remoteTag, localSequence: sequence)
            }
        }
        request.headers.add(.contact, "<\(edge.contact(for: live.flow.transport))>")
        live.notifying = true
        live.dirty = false
        let terminated = live.subscription.isTerminated
        if terminated {
            live.timer?.cancel()
            forget(id, presentity: live.presentity)
        } else {
            subscriptions[id] = live
        }
        edge.send(request, to: live.flow) { [self] event in
            guard !terminated, case let outcome = event, !isProvisional(outcome) else { return }
            guard var live = subscriptions[id] else { return }
            live.notifying = false
            subscriptions[id] = live
            switch outcome {
            case .final(let response) where response.isSuccess:
                if live.dirty { notify(id) }
            default:
                // RFC 6665 §4.2.2: a failed NOTIFY (481, timeout, an unreachable watcher) ends
                // the subscription.
                live.timer?.cancel()
                forget(id, presentity: live.presentity)
            }
        }
    }

    private func isProvisional(_ event: SIPClientEvent) -> Bool {
        if case .provisional = event { return true }
        return false
    }

    private func forget(_ id: SIPDialog.ID, presentity: String) {
        storeWrite("watcher dialog ended") { try $0.removeSIPWatcher(callID: id.callID, localTag: id.localTag, remoteTag: id.remoteTag) }
        subscriptions[id] = nil
        watchersByPresentity[presentity]?.remove(id)
        if watchersByPresentity[presentity]?.isEmpty ?? false { watchersByPresentity[presentity] = nil }
    }

    /// PIDF for watchers that take it (the RFC 3856 default); Lync categories for those that
    /// only take `application/msrtc-event-categories+xml`.
    private func notifyBody(for live: WatcherSubscription) -> (contentType: SIPMediaType, bytes: [UInt8])? {
        let document = composedPresence(of: live.presentity)
        if live.subscription.accepts(.pidf) { return (.pidf, document.serialized()) }
        if live.subscription.accepts(.msrtcEventCategories), let categories = configuration.presenceRules.categories {
            return (.msrtcEventCategories, categories("sip:\(live.presentity)", document).serialized())
        }
        return nil
    }

    func presenceChanged(_ aor: String) {
        for id in watchersByPresentity[aor] ?? [] { notify(id) }
        presenceHooks?.localPresenceChanged(aor)
    }

    func terminateAllSubscriptions() {
        for (id, var live) in subscriptions {
            live.subscription.terminate(.deactivated)
            live.notifying = false
            subscriptions[id] = live
            notify(id)
        }
    }

    // MARK: Across restarts

    /// Keeps a watcher dialog in the store (created, refreshed, authorized).
    func persist(_ id: SIPDialog.ID) {
        guard let live = subscriptions[id], !live.subscription.isTerminated else { return }
        let stored = StoredSIPWatcher(
            callID: id.callID, localTag: id.localTag, remoteTag: id.remoteTag, presentity: live.presentity, watcher: live.watcher,
            subscribe: live.subscribe.serialized(), localSequence: live.subscription.dialog.localSequence,
            expiresAt: Date().addingTimeInterval(Double((live.subscription.expiresAt - now).components.seconds)),
            active: live.subscription.state == .active, transport: live.flow.transport.rawValue, source: Self.hostPort(live.flow.address))
        storeWrite("watcher dialog") { try $0.saveSIPWatcher(stored) }
    }

    /// What a previous run left (on the loop, at start): every endpoint's publication that has
    /// not expired, and every watcher dialog, each of which gets a NOTIFY with the state now.
    func restore(publications stored: [(aor: String, etag: String, document: [UInt8], sequence: UInt64, expiresAt: Date)],
                 watchers: [StoredSIPWatcher]) {
        for entry in stored {
            guard let document = try? PIDFDocument(bytes: entry.document) else { continue }
            let remaining = entry.expiresAt.timeIntervalSinceNow
            guard remaining > 0 else { continue }
            var state = PublicationState(publication: PresenceComposer.Publication(etag: entry.etag, document: document, sequence: entry.sequence))
            let (aor, etag) = (entry.aor, entry.etag)
            state.timer = loop.scheduleTask(in: .milliseconds(Int64(remaining * 1000))) { [self] in publicationExpired(aor, etag: etag) }
            publications[aor, default: [:]][etag] = state
            publicationSequence = max(publicationSequence, entry.sequence)
        }
        let parser = SIPParser()
        for watcher in watchers {
            guard case .request(let request)? = try? parser.parse(datagram: watcher.subscribe),
                  let flow = Self.target(transport: watcher.transport, source: watcher.source),
                  let subscription = SIPSubscription.restored(
                    request, localTag: watcher.localTag, localSequence: watcher.localSequence, active: watcher.active,
                    expiresAt: now + .milliseconds(Int64(max(0, watcher.expiresAt.timeIntervalSinceNow) * 1000)))
            else {
                storeWrite("unreadable watcher dialog") {
                    try $0.removeSIPWatcher(callID: watcher.callID, localTag: watcher.localTag, remoteTag: watcher.remoteTag)
                }
                continue
            }
            let id = subscription.dialog.id
            subscriptions[id] = WatcherSubscription(subscription: subscription, presentity: watcher.presentity, watcher: watcher.watcher,
                                                    flow: flow, subscribe: request)
            watchersByPresentity[watcher.presentity, default: []].insert(id)
            armExpiry(id)
            notify(id)
            if let hooks = presenceHooks, isForeign(String(watcher.presentity.split(separator: "@").last ?? "")) {
                hooks.foreignSubscription(watcher.presentity, watcher.watcher, watcher.active ? .allow : nil)
            }
        }
    }

    // MARK: Watcher authorization

    /// The presentity's stored decision about a watcher, else the domain's policy; nil means
    /// "ask" (the subscription stays pending).
    private func decision(presentity: String, watcher: String, then: @escaping @Sendable (WatcherDecision?) -> Void) {
        if presentity == watcher { return then(.allow) }  // one's own other devices
        // A foreign presentity decides for itself (its network answers the subscription): only
        // what it said counts, never this domain's policy.
        let foreignPresentity = presenceHooks != nil && isForeign(String(presentity.split(separator: "@").last ?? ""))
        let store = self.store
        storeQueue.async { [self] in
            // A failed read leaves the watcher pending (reported): never allowed by accident.
            let stored: WatcherDecision?
            do {
                stored = try store.decisions(presentity: presentity).first { $0.watcher == watcher }?.decision
            } catch {
                diagnostics("store read failed (watcher decision): \(error)")
                return loop.execute { then(nil) }
            }
            loop.execute { [self] in
                if let stored { return then(stored) }
                if foreignPresentity { return then(nil) }
                switch configuration.watcherPolicy {
                case .allowAll: then(.allow)
                case .allowSameDomain:
                    let domain = watcher.split(separator: "@").last.map(String.init) ?? ""
                    then(configuration.serves(domain) ? .allow : nil)
                case .ask: then(nil)
                }
            }
        }
    }

    /// Records the user's decision about a watcher (it persists) and applies it to live
    /// subscriptions at once: pending ones become active, or end with `rejected`. With
    /// `remember: false` a refusal ends live subscriptions but is not kept: the watcher may ask
    /// again (an XMPP contact that said `unsubscribed` can be asked anew, RFC 6121 §3.2).
    public func decide(presentity: String, watcher: String, _ decision: WatcherDecision, remember: Bool = true) async throws {
        let store = self.store
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            storeQueue.async {
                continuation.resume(with: Result {
                    try store.setDecision(remember ? decision : nil, presentity: presentity, watcher: watcher)
                })
            }
        }
        try await loop.submit { [self] in apply(decision, presentity: presentity, watcher: watcher) }.get()
    }

    private func apply(_ decision: WatcherDecision, presentity: String, watcher: String) {
        for id in watchersByPresentity[presentity] ?? [] {
            guard var live = subscriptions[id], live.watcher == watcher else { continue }
            if live.subscription.authorize(decision == .allow) {
                subscriptions[id] = live
                persist(id)
                notify(id)
            }
        }
    }

    /// Decisions can also be made outside this process (`stox watchers`); pending subscriptions
    /// pick them up within a few seconds.
    func startDecisionPoll() {
        decisionPoll = loop.scheduleRepeatedTask(initialDelay: .seconds(3), delay: .seconds(3)) { [weak self] _ in
            self?.pollPendingDecisions()
        }
    }

    private func pollPendingDecisions() {
        let pending = subscriptions.values.filter { $0.subscription.state == .pending }.map { ($0.presentity, $0.watcher) }
        guard !pending.isEmpty else { return }
        let store = self.store
        storeQueue.async { [self] in
            var found: [(String, String, WatcherDecision)] = []
            for presentity in Set(pending.map(\.0)) {
                do {
                    for stored in try store.decisions(presentity: presentity) {
                        found.append((presentity, stored.watcher, stored.decision))
                    }
                } catch {
                    diagnostics("store read failed (watcher decisions): \(error)")
                }
            }
            let decided = found
            loop.execute { [self] in
                for (presentity, watcher, decision) in decided { apply(decision, presentity: presentity, watcher: watcher) }
            }
        }
    }
}
