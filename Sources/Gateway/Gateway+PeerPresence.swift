import Foundation
import GatewayStore
import Interworking
import Logging
import NIOCore
import SIPCore
import SIPDomain
import XMPPCore

/// XMPP users watching users of a peer SIP network (peer mode, RFC 8048 §5.2): the gateway is
/// the SIP subscriber. One SIP subscription per peer user serves all of that user's XMPP
/// watchers; the network decides the authorization (its NOTIFY says active, pending or
/// rejected), the tables decide what each answer means, and the watchers are kept in the store so
/// that a restart subscribes again.
extension Gateway {
    func isPeer(_ aor: String) -> Bool {
        domain.configuration.peer(forAOR: aor) != nil
    }

    /// An XMPP user subscribes to a peer user.
    func peerSubscribe(_ presence: XMPPPresence, watcher: JID, watcherAOR: String, presentity: String) {
        guard let me = jid(ofAOR: presentity)?.bare else { return }
        if xmppWatchers[presentity]?[watcher] == .active || peerAuthorized.contains(presentity) {
            // Idempotent for an active watcher; a new one joins the subscription the network has
            // already authorized (one subscription per user, see the README's peer-mode notes).
            activatePeerWatcher(watcher, presentity: presentity, me: me)
            return
        }
        xmppWatchers[presentity, default: [:]][watcher] = .pending
        storeWrite("peer watcher pending") {
            try $0.setSubscription(.pending, direction: .xmppWatchesSIP, presentity: presentity, watcher: watcher.description)
        }
        startPeerSubscription(presentity, as: watcherAOR, watcher: watcher)
    }

    func startPeerSubscription(_ presentity: String, as watcherAOR: String, watcher: JID) {
        // How long to ask for: what the tables make of an XMPP subscribe (RFC 3856's 3600 s).
        var expires: UInt32 = 3600
        if let me = jid(ofAOR: presentity)?.bare, let translated = try? toSIP.subscription(XMPPPresence(from: watcher, to: me, type: .subscribe)),
           let requested = translated.value?.expires, requested > 0 {
            expires = requested
        }
        domain.watchPeer(presentity, as: watcherAOR, expires: expires) { [self] event in
            peerSubscriptionEvent(event, presentity: presentity)
        }
    }

    private func activatePeerWatcher(_ watcher: JID, presentity: String, me: JID) {
        let wasActive = xmppWatchers[presentity]?[watcher] == .active
        xmppWatchers[presentity, default: [:]][watcher] = .active
        if !wasActive {
            storeWrite("peer watcher allowed") {
                try $0.setSubscription(.active, direction: .xmppWatchesSIP, presentity: presentity, watcher: watcher.description)
            }
        }
        send(XMPPPresence(from: me, to: watcher, type: .subscribed).element())
        sendPeerPresence(of: presentity, to: [watcher])
    }

    /// An XMPP watcher leaves: when it was the last, the SIP subscription ends (Expires 0).
    func peerWatcherLeft(_ watcher: JID, presentity: String) {
        if xmppWatchers[presentity]?.removeValue(forKey: watcher) != nil {
            storeWrite("peer watcher left") {
                try $0.setSubscription(nil, direction: .xmppWatchesSIP, presentity: presentity, watcher: watcher.description)
            }
        }
        if xmppWatchers[presentity]?.isEmpty ?? true {
            xmppWatchers[presentity] = nil
            peerAuthorized.remove(presentity)
            peerPresences[presentity] = nil
            domain.unwatchPeer(presentity)
        }
    }

    /// A probe for a peer user: what the network last said, to an authorized watcher.
    func peerProbe(from watcher: JID, presentity: String) {
        guard let me = jid(ofAOR: presentity)?.bare else { return }
        if xmppWatchers[presentity]?[watcher] == .active {
            sendPeerPresence(of: presentity, to: [watcher])
        } else if xmppWatchers[presentity]?[watcher] == nil {
            send(XMPPPresence(from: me, to: watcher, type: .unsubscribed).element())
        }
    }

    /// What the SIP subscription's events mean, through the tables (subscription-responses.tsv,
    /// subscription-sip-to-xmpp.tsv), and what the domain does next.
    func peerSubscriptionEvent(_ event: PeerSubscriptionEvent, presentity: String) -> PeerSubscriptionDirective {
        switch event {
        case .notified(let notify):
            let notification: SIPToXMPP.Notification
            do {
                notification = try toXMPP.notify(notify).value
            } catch {
                metrics.error("translation")
                logger.notice("presence of \(presentity) not translated: \(error)", metadata: ["component": "peer-presence"])
                return .keep
            }
            switch notification.subscription {
            case .stanza(.subscribed):
                if peerAuthorized.insert(presentity).inserted, let me = jid(ofAOR: presentity)?.bare {
                    for (watcher, state) in xmppWatchers[presentity] ?? [:] where state == .pending {
                        // The presence follows below, from this NOTIFY.
                        xmppWatchers[presentity]?[watcher] = .active
                        storeWrite("peer watcher allowed") {
                            try $0.setSubscription(.active, direction: .xmppWatchesSIP, presentity: presentity, watcher: watcher.description)
                        }
                        send(XMPPPresence(from: me, to: watcher, type: .subscribed).element())
                    }
                }
            case .stanza(.unsubscribed):
                peerRefused(presentity, because: "NOTIFY \(notify.subscriptionState.map { "\($0.state.rawValue)" } ?? "-") reason=\(notify.subscriptionState?.reason?.rawValue ?? "-")")
                return .end
            case .resubscribe:
                let state = notify.subscriptionState
                // RFC 6665 §4.1.3: deactivated and timeout at once; probation and giveup after
                // retry-after, or the growing wait.
                let now: Bool = [SIPSubscriptionState.Reason.deactivated, .timeout].contains { $0 == state?.reason } || state?.reason == nil
                let after: Duration? = state?.retryAfter.map { .seconds(Int64($0)) } ?? (now ? .zero : nil)
                logger.info("peer subscription ended by the notifier; subscribing again", metadata: [
                    "component": "peer-presence", "presentity": "\(presentity)", "reason": "\(state?.reason?.rawValue ?? "-")"])
                return .retry(after: after, expires: nil)
            default:
                break
            }
            if peerAuthorized.contains(presentity), !notification.presences.isEmpty {
                updatePeerPresence(presentity, notification.presences)
            }
            return .keep
        case .refused(let response):
            let outcome = toXMPP.subscriptionOutcome(response).value
            switch outcome {
            case .active:
                return .keep
            case .permanent:
                peerRefused(presentity, because: "\(response.statusCode) \(response.reasonPhrase)")
                return .end
            case .interval:
                return .retry(after: .zero, expires: response.minExpires)
            case .transient:
                metrics.error("peer-subscribe-\(response.statusCode)")
                logger.notice("peer subscription failed; retrying", metadata: [
                    "component": "peer-presence", "presentity": "\(presentity)", "response": "\(response.statusCode) \(response.reasonPhrase)"])
                return .retry(after: nil, expires: nil)
            }
        case .unreachable:
            metrics.error("peer-subscribe-unreachable")
            logger.notice("peer subscription got no answer; retrying", metadata: ["component": "peer-presence", "presentity": "\(presentity)"])
            return .retry(after: nil, expires: nil)
        }
    }

    /// The network refused or ended the subscription for good: every watcher is told
    /// `unsubscribed` (RFC 8048 §5.2.2) and forgotten.
    private func peerRefused(_ presentity: String, because reason: String) {
        metrics.refused("peer-subscription")
        logger.notice("peer network refused a presence subscription", metadata: [
            "component": "peer-presence", "presentity": "\(presentity)", "reason": "\(reason)"])
        let me = jid(ofAOR: presentity)?.bare
        for watcher in (xmppWatchers[presentity] ?? [:]).keys {
            if let me { send(XMPPPresence(from: me, to: watcher, type: .unsubscribed).element()) }
            storeWrite("peer watcher refused") {
                try $0.setSubscription(nil, direction: .xmppWatchesSIP, presentity: presentity, watcher: watcher.description)
            }
        }
        xmppWatchers[presentity] = nil
        peerAuthorized.remove(presentity)
        peerPresences[presentity] = nil
    }

    /// New presence from a NOTIFY: to every authorized watcher, only when it changed; a resource
    /// (tuple) that disappeared goes unavailable.
    private func updatePeerPresence(_ presentity: String, _ presences: [XMPPPresence]) {
        let general = presences.map { presence -> XMPPPresence in
            var copy = presence
            copy.to = nil
            copy.id = nil
            return copy
        }
        let before = peerPresences[presentity] ?? []
        guard general != before else { return }
        let now = Set(general.compactMap { $0.from?.description })
        var outgoing = general
        for gone in before where gone.type != .unavailable {
            guard let from = gone.from, !now.contains(from.description) else { continue }
            outgoing.append(XMPPPresence(from: from, to: nil, type: .unavailable))
        }
        peerPresences[presentity] = general
        let watchers = (xmppWatchers[presentity] ?? [:]).filter { $0.value == .active }.map(\.key)
        deliver(outgoing, to: watchers)
    }

    private func sendPeerPresence(of presentity: String, to watchers: [JID]) {
        if let known = peerPresences[presentity] {
            return deliver(known, to: watchers)
        }
        // Nothing known yet (the first NOTIFY has not come): offline until it does.
        guard let me = jid(ofAOR: presentity) else { return }
        let resource = (try? me.with(resource: Self.presenceResource)) ?? me
        deliver([XMPPPresence(from: resource, to: nil, type: .unavailable)], to: watchers)
    }

    private func deliver(_ presences: [XMPPPresence], to watchers: [JID]) {
        guard !watchers.isEmpty else { return }
        for watcher in watchers {
            for presence in presences {
                var copy = presence
                copy.to = watcher
                send(copy.element())
            }
        }
        metrics.translated("sip-to-xmpp", kind: "presence", count: watchers.count)
    }

    /// At start: the peer users XMPP users watch are subscribed to again, one subscription each.
    func restorePeerSubscriptions() {
        for (presentity, watchers) in xmppWatchers where isPeer(presentity) {
            guard let first = watchers.keys.sorted(by: { $0.description < $1.description }).first, let watcherAOR = aor(of: first) else { continue }
            startPeerSubscription(presentity, as: watcherAOR, watcher: first)
        }
    }
}
