import Foundation
import NIOCore
import SIPCore
import SIPEdge

/// What the gateway hears about its subscription to a peer network's user.
public enum PeerSubscriptionEvent: Sendable {
    /// A NOTIFY in the subscription (already answered 200): its Subscription-State and body.
    case notified(SIPRequest)
    /// A final failure response to a SUBSCRIBE (initial or refresh).
    case refused(SIPResponse)
    /// No final response (Timer F) or the request could not be sent.
    case unreachable
}

/// What the domain does next with a subscription, as the gateway's tables decide (RFC 8048 §5.2.2,
/// RFC 6665 §4.1.3).
public enum PeerSubscriptionDirective: Sendable, Equatable {
    /// Nothing changes.
    case keep
    /// Subscribe again in a new dialog, after `after` (nil: a growing wait, 5 s doubling to ten
    /// minutes), asking for `expires` seconds when the notifier said how long (423 Min-Expires).
    case retry(after: Duration?, expires: UInt32?)
    /// The subscription ends here; the gateway tells its watchers.
    case end
}

/// The domain as subscriber (RFC 6665 §4.1) to users of a peer SIP network, on the gateway's
/// behalf: the SUBSCRIBE goes through the network's proxy, the dialog is formed by the 2xx or by
/// the first NOTIFY (§4.1.2.4, whichever comes first), refreshed before it expires, and renewed
/// or ended as the gateway's directive says after a failure or a terminated NOTIFY.
struct PeerSubscriptionState {
    let presentity: String
    let watcher: String
    let handler: @Sendable (PeerSubscriptionEvent) -> PeerSubscriptionDirective
    var expires: UInt32
    var callID = ""
    var localTag = ""
    var sequence: UInt32 = 0
    var dialog: SIPDialog?
    /// Where the dialog's requests go: the proxy the SUBSCRIBE went to (it routes by the dialog's
    /// Request-URI and Route set).
    var flow: SIPTarget?
    var timer: Scheduled<Void>?
    /// Failures in a row, for the retry wait.
    var failures = 0
    /// An answer to the newest SUBSCRIBE is awaited: a timer must not send another over it.
    var inFlight = false
}

extension EmbeddedDomain {
    /// Subscribes (as `watcher`, a SIP address-of-record the gateway stands for) to the presence
    /// of `presentity`, a user of a peer network. One subscription per presentity: a second call
    /// while one exists changes nothing. Every event goes to `handler`, on the loop.
    public func watchPeer(_ presentity: String, as watcher: String, expires: UInt32 = 3600,
                          handler: @escaping @Sendable (PeerSubscriptionEvent) -> PeerSubscriptionDirective) {
        loop.execute { [self] in
            guard peerSubscriptions[presentity] == nil else { return }
            peerSubscriptions[presentity] = PeerSubscriptionState(presentity: presentity, watcher: watcher, handler: handler, expires: expires)
            sendPeerSubscribe(presentity)
        }
    }

    /// Ends the subscription to `presentity` (SUBSCRIBE with Expires 0, RFC 6665 §4.1.2.3) and
    /// forgets it; a NOTIFY that follows gets 481.
    public func unwatchPeer(_ presentity: String) {
        loop.execute { [self] in endPeerSubscription(presentity, unsubscribe: true) }
    }

    /// The presentities the domain subscribes to now, and whether each subscription's dialog is up.
    public func peerSubscriptionStates() -> EventLoopFuture<[String: Bool]> {
        loop.submit { [self] in peerSubscriptions.mapValues { $0.dialog != nil } }
    }

    func endPeerSubscription(_ presentity: String, unsubscribe: Bool) {
        guard let state = peerSubscriptions.removeValue(forKey: presentity) else { return }
        peerSubscriptionsByCallID[state.callID] = nil
        state.timer?.cancel()
        guard unsubscribe, var dialog = state.dialog, let flow = state.flow else { return }
        var request = dialog.makeRequest(.subscribe)
        decorate(&request, expires: 0, flow: flow)
        peerUnsubscribing += 1
        edge.send(request, to: flow) { [self] event in
            if case .provisional = event { return }
            peerUnsubscribing -= 1
        }
    }

    func endAllPeerSubscriptions() {
        for presentity in Array(peerSubscriptions.keys) { endPeerSubscription(presentity, unsubscribe: true) }
    }

    private func decorate(_ request: inout SIPRequest, expires: UInt32, flow: SIPTarget) {
        request.headers.set(.event, "presence")
        request.headers.set(.expires, String(expires))
        request.headers.set(.accept, SIPMediaType.pidf.essence)
        request.headers.set(.contact, "<\(edge.contact(for: flow.transport))>")
        if request.maxForwards == nil { request.headers.set(.maxForwards, "70") }
    }

    /// The next SUBSCRIBE of a subscription: a refresh inside its dialog, or an initial one in a
    /// new dialog.
    private func sendPeerSubscribe(_ presentity: String) {
        guard var state = peerSubscriptions[presentity], !state.inFlight else { return }
        state.timer?.cancel()
        state.timer = nil
        if var dialog = state.dialog, let flow = state.flow {
            var request = dialog.makeRequest(.subscribe)
            decorate(&request, expires: state.expires, flow: flow)
            state.dialog = dialog
            state.inFlight = true
            peerSubscriptions[presentity] = state
            return send(request, of: presentity, to: flow)
        }
        // A new dialog: fresh Call-ID and tag, so that nothing of an old one is mistaken for it.
        peerSubscriptionsByCallID[state.callID] = nil
        state.callID = "sub-\(SIPNameAddress.makeTag())-\(SIPNameAddress.makeTag())"
        state.localTag = SIPNameAddress.makeTag()
        state.sequence = 1
        state.inFlight = true
        peerSubscriptionsByCallID[state.callID] = presentity
        peerSubscriptions[presentity] = state
        let (watcher, callID, tag, expires) = (state.watcher, state.callID, state.localTag, state.expires)
        deliveryBindings(presentity) { [self] bindings in
            guard let current = peerSubscriptions[presentity], current.callID == callID else { return }
            guard let binding = bindings.first else { return peerFailed(presentity, .unreachable) }
            var headers = SIPHeaders()
            headers.add(.from, "<sip:\(watcher)>;tag=\(tag)")
            headers.add(.to, "<sip:\(presentity)>")
            headers.add(.callID, callID)
            headers.add(.cseq, SIPCSeq(1, .subscribe).description)
            var request = SIPRequest(method: .subscribe, uri: binding.contact.uri, headers: headers)
            decorate(&request, expires: expires, flow: binding.flow)
            peerSubscriptions[presentity]?.flow = binding.flow
            send(request, of: presentity, to: binding.flow)
        }
    }

    private func send(_ request: SIPRequest, of presentity: String, to flow: SIPTarget) {
        let callID = request.callID
        edge.send(request, to: flow) { [self] event in
            guard var state = peerSubscriptions[presentity], state.callID == callID else { return }
            switch event {
            case .provisional:
                return
            case .final(let response) where response.isSuccess:
                state.inFlight = false
                state.failures = 0
                if state.dialog == nil { state.dialog = SIPDialog.uac(request: request, response: response) }
                if let contact = response.contacts.first { state.dialog?.remoteTarget = contact.uri }
                let granted = response.expires ?? state.expires
                peerSubscriptions[presentity] = state
                if granted == 0 {
                    // Granted no time: the notifier ended it (a NOTIFY terminated follows, or not).
                    return peerFailed(presentity, .refused(response))
                }
                scheduleRefresh(presentity, granted: granted)
            case .final(let response):
                state.inFlight = false
                peerSubscriptions[presentity] = state
                peerFailed(presentity, .refused(response))
            case .timeout, .transportError:
                state.inFlight = false
                peerSubscriptions[presentity] = state
                peerFailed(presentity, .unreachable)
            }
        }
    }

    /// §4.1.2.2: refreshed before it expires: at four fifths of the time granted.
    private func scheduleRefresh(_ presentity: String, granted: UInt32) {
        guard var state = peerSubscriptions[presentity] else { return }
        state.timer?.cancel()
        let delay = TimeAmount.milliseconds(Int64(max(1, granted)) * 800)
        let callID = state.callID
        state.timer = loop.scheduleTask(in: delay) { [self] in
            guard peerSubscriptions[presentity]?.callID == callID else { return }
            sendPeerSubscribe(presentity)
        }
        peerSubscriptions[presentity] = state
    }

    private func peerFailed(_ presentity: String, _ event: PeerSubscriptionEvent) {
        guard let state = peerSubscriptions[presentity] else { return }
        apply(state.handler(event), to: presentity)
    }

    private func apply(_ directive: PeerSubscriptionDirective, to presentity: String) {
        guard var state = peerSubscriptions[presentity] else { return }
        switch directive {
        case .keep:
            return
        case .end:
            endPeerSubscription(presentity, unsubscribe: false)
        case .retry(let after, let expires):
            // The dialog is gone (or never was): the next SUBSCRIBE forms a new one.
            state.dialog = nil
            state.inFlight = false
            state.timer?.cancel()
            if let expires { state.expires = max(state.expires, expires) }
            let wait = after ?? .seconds(min(600, 5 << min(state.failures, 7)))
            state.failures += 1
            let callID = state.callID
            state.timer = loop.scheduleTask(in: TimeAmount(wait)) { [self] in
                guard peerSubscriptions[presentity]?.callID == callID else { return }
                sendPeerSubscribe(presentity)
            }
            peerSubscriptions[presentity] = state
        }
    }

    /// A NOTIFY for one of the domain's subscriptions (RFC 6665 §4.1.3): matched by Call-ID and
    /// our tag; the first one may come before the 2xx and then forms the dialog.
    func peerNotify(_ server: SIPServerRequest) {
        let request = server.request
        guard let callID = request.callID, let presentity = peerSubscriptionsByCallID[callID],
              var state = peerSubscriptions[presentity], request.to?.tag == state.localTag,
              request.event?.package.lowercased() == "presence" else {
            return server.respond(request.makeResponse(481))
        }
        if state.dialog == nil {
            state.dialog = SIPDialog.uas(request: request, localTag: state.localTag, localSequence: state.sequence)
        } else if state.dialog?.id.remoteTag != request.from?.tag {
            // A second dialog from a forked SUBSCRIBE: one is enough; 481 ends the other.
            return server.respond(request.makeResponse(481))
        } else if state.dialog?.acceptRemote(request) == false {
            return server.respond(request.makeResponse(500, reasonPhrase: "CSeq Out Of Order"))
        }
        state.dialog?.refreshTarget(from: request)
        peerSubscriptions[presentity] = state
        server.respond(request.makeResponse(200))
        let subscriptionState = request.subscriptionState
        let directive = state.handler(.notified(request))
        if subscriptionState?.state == .terminated {
            // The dialog is over whatever the gateway says; keeping it would refresh a dead one.
            return apply(directive == .keep ? .end : directive, to: presentity)
        }
        apply(directive, to: presentity)
        if let expires = subscriptionState?.expires, expires > 0, !state.inFlight {
            // The notifier may shorten the subscription (§4.2.2): refresh in time for it.
            scheduleRefresh(presentity, granted: expires)
        }
    }
}
