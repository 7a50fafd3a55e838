/// The notifier's side of an RFC 6665 subscription: the dialog it lives in, its state (pending,
/// active, terminated), its expiry, and the NOTIFYs it owes. A pure value: time comes in as a
/// parameter, and the driver arms one timer at `expiresAt`.
///
///     SUBSCRIBE --> pending --(authorized)--> active
///         |            |                        |
///         |            +--(rejected)----------->+--> terminated;reason=rejected
///         +--(expires / Expires: 0)----------------> terminated;reason=timeout
public struct SIPSubscription: Hashable, Sendable {
    public enum State: Hashable, Sendable {
        case pending
        case active
        case terminated(SIPSubscriptionState.Reason?)
    }

    public private(set) var dialog: SIPDialog
    public let event: SIPEvent
    /// What the subscriber accepts (RFC 6665 §4.1.2.1): the body format of its NOTIFYs.
    public let accept: [SIPMediaType]
    public private(set) var state: State
    public private(set) var expiresAt: SIPInstant

    /// The outcome of a SUBSCRIBE, for the response to it.
    public enum Answer: Hashable, Sendable {
        /// 200 with Expires.
        case accepted(expires: UInt32)
        /// 423 with Min-Expires (RFC 6665 §4.2.1.1).
        case intervalTooBrief(minimum: UInt32)
        /// 500: a CSeq not above the last (§12.2.2).
        case outOfOrder
    }

    /// Bounds the notifier applies to requested durations.
    public struct Limits: Hashable, Sendable {
        public var minimum: UInt32
        public var maximum: UInt32
        /// RFC 3856 §6.4: 3600 s when the SUBSCRIBE has no Expires.
        public var `default`: UInt32

        public init(minimum: UInt32 = 60, maximum: UInt32 = 3600, default: UInt32 = 3600) {
            self.minimum = minimum
            self.maximum = maximum
            self.default = `default`
        }
    }

    /// §4.2.1: a dialog-creating SUBSCRIBE. Nil when the request cannot form a dialog (no From
    /// tag or Contact), which gets 400; `.intervalTooBrief` leaves no subscription.
    public static func create(_ request: SIPRequest, localTag: String, authorized: Bool, now: SIPInstant,
                              limits: Limits = Limits()) -> (SIPSubscription?, Answer)? {
        guard let event = request.event, let dialog = SIPDialog.uas(request: request, localTag: localTag) else { return nil }
        let requested = request.expires ?? limits.default
        if requested != 0, requested < limits.minimum { return (nil, .intervalTooBrief(minimum: limits.minimum)) }
        let granted = min(requested, limits.maximum)
        // Expires: 0 on a new subscription is a fetch: one NOTIFY, then terminated (§4.2.1).
        let state: State = granted == 0 ? .terminated(.timeout) : (authorized ? .active : .pending)
        let subscription = SIPSubscription(dialog: dialog, event: event, accept: request.accept, state: state,
                                           expiresAt: now + .seconds(Int64(granted)))
        return (subscription, .accepted(expires: granted))
    }

    /// A subscription kept across a restart of the notifier: the dialog rebuilt from its last
    /// SUBSCRIBE, with the CSeq of the last NOTIFY sent, active or pending, until `expiresAt`.
    public static func restored(_ request: SIPRequest, localTag: String, localSequence: UInt32, active: Bool,
                                expiresAt: SIPInstant) -> SIPSubscription? {
        guard let event = request.event, let dialog = SIPDialog.uas(request: request, localTag: localTag, localSequence: localSequence)
        else { return nil }
        return SIPSubscription(dialog: dialog, event: event, accept: request.accept, state: active ? .active : .pending, expiresAt: expiresAt)
    }

    /// §4.2.1.2–4.2.1.4: a SUBSCRIBE inside the dialog refreshes it; Expires: 0 ends it.
    public mutating func refresh(_ request: SIPRequest, now: SIPInstant, limits: Limits = Limits()) -> Answer {
        guard dialog.acceptRemote(request) else { return .outOfOrder }
        dialog.refreshTarget(from: request)
        let requested = request.expires ?? limits.default
        if requested != 0, requested < limits.minimum { return .intervalTooBrief(minimum: limits.minimum) }
        let granted = min(requested, limits.maximum)
        expiresAt = now + .seconds(Int64(granted))
        if granted == 0 { state = .terminated(.timeout) }
        return .accepted(expires: granted)
    }

    /// The presentity decided about this watcher (RFC 3857 vocabulary): allow activates a
    /// pending subscription; block ends it with `rejected`. True when the state changed.
    public mutating func authorize(_ allowed: Bool) -> Bool {
        switch (state, allowed) {
        case (.pending, true):
            state = .active
            return true
        case (.pending, false), (.active, false):
            state = .terminated(.rejected)
            return true
        default:
            return false
        }
    }

    /// The deadline passed: terminated with `timeout` (§4.2.2). True when it ended now.
    public mutating func expire(now: SIPInstant) -> Bool {
        guard now >= expiresAt, !isTerminated else { return false }
        state = .terminated(.timeout)
        return true
    }

    /// The notifier shuts down or the resource goes away (§4.2.2: `deactivated`, `noresource`).
    public mutating func terminate(_ reason: SIPSubscriptionState.Reason) {
        guard !isTerminated else { return }
        state = .terminated(reason)
    }

    public var isTerminated: Bool {
        if case .terminated = state { return true }
        return false
    }

    /// The next NOTIFY (§4.2.2): in the dialog, with Event (and its id), Subscription-State
    /// with the time left, and the body only when the watcher may see it (not while pending,
    /// RFC 3856 §6.6.2's "no state" answer; and a final NOTIFY for a rejection carries none).
    public mutating func makeNotify(body: (contentType: SIPMediaType, bytes: [UInt8])?, now: SIPInstant) -> SIPRequest {
        var notify = dialog.makeRequest(.notify)
        notify.headers.add(.event, event.description)
        let remaining = UInt32(clamping: max(0, (expiresAt - now).components.seconds))
        let subscriptionState: SIPSubscriptionState
        var withBody = body
        switch state {
        case .active:
            subscriptionState = SIPSubscriptionState(.active, expires: remaining)
        case .pending:
            subscriptionState = SIPSubscriptionState(.pending, expires: remaining)
            withBody = nil
        case .terminated(let reason):
            subscriptionState = SIPSubscriptionState(.terminated, reason: reason)
            if reason == .rejected { withBody = nil }
        }
        notify.headers.add(.subscriptionState, subscriptionState.description)
        if let withBody {
            notify.headers.add(.contentType, withBody.contentType.description)
            notify.body = withBody.bytes
        }
        return notify
    }

    /// Whether the watcher accepts `type` (no Accept means the package default, §4.1.2.1).
    public func accepts(_ type: SIPMediaType) -> Bool {
        accept.isEmpty ? type.matches(.pidf) : accept.contains { $0.matches(type) }
    }
}
