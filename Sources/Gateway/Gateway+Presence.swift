import Foundation
import GatewayStore
import Interworking
import Logging
import NIOCore
import SIPCore
import SIPDomain
import XMPPCore

/// Presence across the gateway (RFC 8048). An XMPP user watching a SIP user is a watcher the
/// gateway keeps itself: authorized by the SIP user's decisions (the same ones SIP watchers
/// get), sent one presence per change, the aggregate of every endpoint. A SIP user watching an
/// XMPP user is a SIP subscription the embedded domain serves as notifier, with documents and
/// authorization supplied from the XMPP side.
extension Gateway {
    /// The resource SIP users appear under on XMPP: one per user, whatever their endpoints.
    static let presenceResource = "sip"

    // MARK: XMPP users watching SIP users

    func xmppPresence(_ presence: XMPPPresence) {
        guard let from = presence.from, let to = presence.to, let local = aor(of: to), let remote = aor(of: from) else { return }
        let localIsServed = domain.configuration.serves(local.split(separator: "@").last.map(String.init) ?? "")
        let peer = isPeer(local)
        guard localIsServed || peer else { return }
        switch presence.type {
        case .subscribe where peer:
            peerSubscribe(presence, watcher: from.bare, watcherAOR: remote, presentity: local)
        case .subscribe:
            xmppSubscribe(watcher: from.bare, watcherAOR: remote, presentity: local)
        case .unsubscribe where peer:
            peerWatcherLeft(from.bare, presentity: local)
            if let me = jid(ofAOR: local) { send(XMPPPresence(from: me.bare, to: from.bare, type: .unavailable).element()) }
        case .probe where peer:
            peerProbe(from: from.bare, presentity: local)
        case .unsubscribe:
            // RFC 6121 §3.3: the subscription ends; the contact's server sends unavailable.
            if xmppWatchers[local]?.removeValue(forKey: from.bare) != nil {
                storeWrite("unsubscribe") { try $0.setSubscription(nil, direction: .xmppWatchesSIP, presentity: local, watcher: from.bare.description) }
            }
            if let me = jid(ofAOR: local) { send(XMPPPresence(from: me.bare, to: from.bare, type: .unavailable).element()) }
        case .probe:
            // RFC 6121 §4.3.2: the current presence to an authorized watcher; an unauthorized
            // one learns nothing but `unsubscribed`.
            if xmppWatchers[local]?[from.bare] == .active {
                sendPresence(of: local, to: [from.bare], force: true)
            } else if let me = jid(ofAOR: local) {
                send(XMPPPresence(from: me.bare, to: from.bare, type: .unsubscribed).element())
            }
        case .subscribed:
            // The XMPP user lets a SIP user see them: the SIP subscription becomes active.
            sipWatcherAnswered(presentity: remote, watcher: local, allowed: true)
        case .unsubscribed:
            sipWatcherAnswered(presentity: remote, watcher: local, allowed: false)
        case nil, .unavailable:
            foreignPresence(presence, presentity: remote)
        case .error:
            metrics.error("xmpp-presence-error")
        }
    }

    private func xmppSubscribe(watcher: JID, watcherAOR: String, presentity: String) {
        guard let me = jid(ofAOR: presentity)?.bare else { return }
        // Idempotent: a repeated subscribe (the Lync gateway re-sends every 8 hours) gets the
        // same answer and the current presence again, never a second subscription.
        if xmppWatchers[presentity]?[watcher] == .active {
            send(XMPPPresence(from: me, to: watcher, type: .subscribed).element())
            return sendPresence(of: presentity, to: [watcher], force: true)
        }
        let parts = presentity.split(separator: "@", maxSplits: 1).map(String.init)
        let store = self.store
        storeQueue.async { [self] in
            let exists = (try? store.user(username: parts.first ?? "", domain: parts.last ?? "")) != nil
            loop.execute { [self] in
                guard exists else {
                    // RFC 6121 §3.1.3: no such user: unsubscribed.
                    return send(XMPPPresence(from: me, to: watcher, type: .unsubscribed).element())
                }
                domain.watcherDecision(presentity: presentity, watcher: watcherAOR).whenSuccess { [self] decision in
                    apply(decision, watcher: watcher, watcherAOR: watcherAOR, presentity: presentity)
                }
            }
        }
    }

    /// Applies a decision to an XMPP watcher: allowed (kept as the user's decision, so that a
    /// later policy change does not silently revoke it), refused, or pending.
    private func apply(_ decision: WatcherDecision?, watcher: JID, watcherAOR: String, presentity: String) {
        guard let me = jid(ofAOR: presentity)?.bare else { return }
        switch decision {
        case .allow:
            xmppWatchers[presentity, default: [:]][watcher] = .active
            storeWrite("watcher allowed") { store in
                try store.setDecision(.allow, presentity: presentity, watcher: watcherAOR)
                try store.setSubscription(.active, direction: .xmppWatchesSIP, presentity: presentity, watcher: watcher.description)
            }
            send(XMPPPresence(from: me, to: watcher, type: .subscribed).element())
            sendPresence(of: presentity, to: [watcher], force: true)
        case .block:
            xmppWatchers[presentity]?[watcher] = nil
            storeWrite("watcher refused") { try $0.setSubscription(nil, direction: .xmppWatchesSIP, presentity: presentity, watcher: watcher.description) }
            send(XMPPPresence(from: me, to: watcher, type: .unsubscribed).element())
        case nil:
            // The SIP user decides (`stox watchers allow`); until then nothing is revealed.
            xmppWatchers[presentity, default: [:]][watcher] = .pending
            storeWrite("watcher pending") { try $0.setSubscription(.pending, direction: .xmppWatchesSIP, presentity: presentity, watcher: watcher.description) }
        }
    }

    /// Decisions made outside the process (`stox watchers`) reach pending XMPP watchers within
    /// a few seconds, as they do pending SIP watchers.
    func startPendingPoll() {
        pendingPoll = loop.scheduleRepeatedTask(initialDelay: .seconds(3), delay: .seconds(3)) { [weak self] _ in
            self?.pollPending()
        }
    }

    private func pollPending() {
        let pending = xmppWatchers.flatMap { presentity, watchers in
            watchers.filter { $0.value == .pending }.map { (presentity, $0.key) }
        }
        guard !pending.isEmpty else { return }
        for (presentity, watcher) in pending {
            guard let watcherAOR = aor(of: watcher) else { continue }
            domain.watcherDecision(presentity: presentity, watcher: watcherAOR).whenSuccess { [self] decision in
                guard let decision, xmppWatchers[presentity]?[watcher] == .pending else { return }
                apply(decision, watcher: watcher, watcherAOR: watcherAOR, presentity: presentity)
            }
        }
    }

    /// A local user's presence changed: one presence to each authorized XMPP watcher.
    func localPresenceChanged(_ aor: String) {
        guard let watchers = xmppWatchers[aor] else { return }
        let active = watchers.filter { $0.value == .active }.map(\.key)
        guard !active.isEmpty else { return }
        sendPresence(of: aor, to: active, force: false)
    }

    /// The user's aggregated state, translated through the tables (RFC 8048 §6.3) as a NOTIFY
    /// from the user would be. Not sent again when unchanged, unless `force` (a probe, a new
    /// watcher).
    func sendPresence(of aor: String, to watchers: [JID], force: Bool) {
        guard let first = watchers.first, let presence = currentPresence(of: aor, watcher: first) else { return }
        var general = presence
        general.to = nil
        if !force, lastSentPresence[aor] == general { return }
        logger.debug("presence of \(aor) to \(watchers.count) watcher(s)", metadata: ["force": "\(force)", "presence": "\(general)", "before": "\(lastSentPresence[aor].map { "\($0)" } ?? "-")"])
        lastSentPresence[aor] = general
        for watcher in watchers {
            var copy = presence
            copy.to = watcher
            send(copy.element())
        }
        metrics.translated("sip-to-xmpp", kind: "presence", count: watchers.count)
    }

    private func currentPresence(of aor: String, watcher: JID) -> XMPPPresence? {
        let document = domain.aggregatedPresence(of: aor, tupleID: mappings.tupleIDPrefix + Self.presenceResource)
        guard let presentityURI = SIPURI("sip:\(aor)"), let watcherURI = try? toSIP.addresses.sipURI(watcher, includeResource: false).value else {
            return nil
        }
        var notify = SIPRequest(method: .notify, uri: watcherURI)
        notify.headers.add(.from, "<\(presentityURI)>")
        notify.headers.add(.to, "<\(watcherURI)>")
        notify.headers.add(.event, "presence")
        notify.headers.add(.subscriptionState, "active")
        notify.headers.add(.contentType, SIPMediaType.pidf.essence)
        notify.body = document.serialized()
        do {
            return try toXMPP.notify(notify).value.presences.first
        } catch {
            metrics.error("translation")
            logger.notice("presence of \(aor) not translated: \(error)")
            return nil
        }
    }

    // MARK: SIP users watching XMPP users

    /// A local user subscribed (SIP) to an XMPP user: ask the XMPP user, or fetch the current
    /// presence when they already agreed (RFC 8048 §5.2.1: subscribe, or probe).
    func sipWatcherAdded(presentity: String, watcher: String, decision: WatcherDecision?) {
        switch decision {
        case .allow:
            storeWrite("sip watcher") { try $0.setSubscription(.active, direction: .sipWatchesXMPP, presentity: presentity, watcher: watcher) }
            probe(presentity: presentity, watcher: watcher)
        case nil:
            storeWrite("sip watcher") { try $0.setSubscription(.pending, direction: .sipWatchesXMPP, presentity: presentity, watcher: watcher) }
            guard let from = jid(ofAOR: watcher)?.bare, let to = jid(ofAOR: presentity)?.bare else { return }
            send(XMPPPresence(from: from, to: to, type: .subscribe).element())
        case .block:
            break
        }
    }

    func probe(presentity: String, watcher: String) {
        guard let from = jid(ofAOR: watcher)?.bare, let to = jid(ofAOR: presentity)?.bare else { return }
        send(XMPPPresence(from: from, to: to, type: .probe).element())
    }

    private func sipWatcherAnswered(presentity: String, watcher: String, allowed: Bool) {
        let domain = self.domain!
        let logger = self.logger
        storeWrite("sip watcher answered") {
            try $0.setSubscription(allowed ? .active : nil, direction: .sipWatchesXMPP, presentity: presentity, watcher: watcher)
        }
        Task {
            do {
                try await domain.decide(presentity: presentity, watcher: watcher, allowed ? .allow : .block, remember: allowed)
            } catch {
                logger.error("cannot record \(presentity)'s answer to \(watcher): \(error)")
            }
        }
    }

    /// Presence of an XMPP user's resource: the document SIP watchers see is rebuilt from every
    /// resource (RFC 8048 §6.2, a tuple each, the most available first).
    private func foreignPresence(_ presence: XMPPPresence, presentity: String) {
        guard let from = presence.from else { return }
        var resources = foreignResources[presentity] ?? [:]
        let resource = from.resourcepart ?? ""
        // XMPP broadcasts one change as one stanza per subscriber (RFC 6121 §4.4.2): with N SIP
        // users watching, the same presence arrives N times, addressed to each. Only the first
        // is a change; notifying every watcher for each copy would be N² NOTIFYs.
        var kept = presence
        kept.to = nil
        kept.id = nil
        if presence.type == .unavailable {
            if from.resourcepart == nil { resources = [:] } else { resources[resource] = nil }
            // Offline already (an empty entry: the watchers were told): a copy of the same news.
            if resources.isEmpty, foreignResources[presentity]?.isEmpty == true { return }
        } else {
            if resources[resource] == kept { return }
            resources[resource] = kept
        }
        foreignResources[presentity] = resources
        var presences = toSIP.ordered(Array(resources.values))
        if presences.isEmpty { presences = [XMPPPresence(from: from.bare, to: presence.to, type: .unavailable)] }
        do {
            domain.setForeignPresence(presentity, try toSIP.presenceDocument(presences).value)
            metrics.translated("xmpp-to-sip", kind: "presence")
        } catch {
            metrics.error("translation")
            logger.notice("presence of \(presentity) not translated: \(error)")
        }
    }
}
