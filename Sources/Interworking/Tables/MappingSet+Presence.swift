import SIPCore
import XMPPCore

extension MappingSet {
    /// What a SIP presence document says, source by source.
    public struct PresenceEvidence: Hashable, Sendable {
        public var embeddedShow: XMPPPresence.Show?
        public var lyncAvailability: Int?
        public var activities: [String]
        public var basic: PIDFBasic?

        public init(embeddedShow: XMPPPresence.Show? = nil, lyncAvailability: Int? = nil, activities: [String] = [], basic: PIDFBasic? = nil) {
            self.embeddedShow = embeddedShow
            self.lyncAvailability = lyncAvailability
            self.activities = activities
            self.basic = basic
        }
    }

    /// The XMPP presence state a SIP document means, and the source that decided it: the first
    /// source in `presence-precedence.tsv` with an opinion. PIDF `closed` is unavailable whatever
    /// the order (RFC 8048 §6.3 Table 2 note 1). `nil` when no source says anything.
    public func presenceState(_ evidence: PresenceEvidence) -> (state: PresenceState, source: PresenceSource)? {
        if evidence.basic == .closed, let closed = basicToXMPP[.closed] { return (closed.value, .basic) }
        for source in precedence {
            switch source {
            case .embeddedShow:
                if let show = evidence.embeddedShow, let state = showToXMPP[show] { return (state.value, source) }
            case .lyncAvailability:
                if let availability = evidence.lyncAvailability, let state = lyncState(availability) { return (state.value, source) }
            case .rpidActivity:
                for activity in evidence.activities {
                    if let state = rpidToXMPP[activity]?.value { return (state, source) }
                }
            case .basic:
                if let basic = evidence.basic, let state = basicToXMPP[basic] { return (state.value, source) }
            }
        }
        return nil
    }

    /// The state a Lync availability number falls in (`presence-lync-to-xmpp.tsv`).
    public func lyncState(_ availability: Int) -> Sourced<PresenceState>? {
        lyncToXMPP.first { $0.range.contains(availability) }?.state
    }

    /// The stanza error a SIP final response becomes (`errors-sip-to-xmpp.tsv`).
    public func errorTarget(forStatus code: Int) -> Sourced<XMPPErrorTarget>? {
        errorsSIPToXMPP.lookup(code)
    }

    /// What a final response to the gateway's SUBSCRIBE means (`subscription-responses.tsv`).
    public func subscriptionOutcome(forStatus code: Int) -> Sourced<SubscriptionOutcome>? {
        subscriptionResponses.lookup(code)
    }

    /// The SIP code for a stanza error sent to `recipient` (`errors-xmpp-to-sip.tsv`): the
    /// qualified row when one exists, the plain one otherwise.
    public func sipCode(for condition: StanzaError.Condition, qualifier: String?, bareRecipient: Bool) -> Sourced<Int>? {
        let row = qualifier.flatMap { errorsXMPPToSIP[ErrorKey(condition: condition, qualifier: $0)] }
            ?? errorsXMPPToSIP[ErrorKey(condition: condition, qualifier: nil)]
        guard let row else { return nil }
        return Sourced(value: bareRecipient ? row.value.bare : row.value.full, file: row.file, line: row.line, ref: row.ref, lossy: row.lossy)
    }
}

// MARK: - Round-trip audit

extension MappingSet {
    /// Runs each pair of opposite tables A→B→A. A row that does not come back to itself must be
    /// marked lossy; the problems name the row and what it came back as.
    public func auditRoundTrips() -> [MappingError] {
        var problems: [MappingError] = []
        func require<V>(_ row: Sourced<V>, _ key: String, _ back: String?, _ path: String) {
            guard back != key, !row.lossy else { return }
            problems.append(MappingError(
                row.file, line: row.line,
                "\(key) does not round-trip (\(path) gives \(back ?? "nothing")): mark the row lossy or fix the tables"))
        }

        // Presence: XMPP state → PIDF → XMPP state.
        for (state, row) in xmppToPIDF {
            let target = row.value
            let back = presenceState(PresenceEvidence(
                embeddedShow: target.show, activities: target.activity.map { [$0] } ?? [], basic: target.basic))
            require(row, state.rawValue, back?.state.rawValue, "PIDF then the precedence")
        }
        for (show, row) in showToXMPP {
            require(row, show.rawValue, xmppToPIDF[row.value]?.value.show?.rawValue, "presence-xmpp-to-pidf.tsv")
        }
        for (activity, row) in rpidToXMPP {
            let back = row.value.flatMap { xmppToPIDF[$0]?.value.activity }
            require(row, activity, back, "presence-xmpp-to-pidf.tsv")
        }
        for (basic, row) in basicToXMPP {
            require(row, basic.rawValue, xmppToPIDF[row.value]?.value.basic.rawValue, "presence-xmpp-to-pidf.tsv")
        }
        // Lync: range → state → published number, which must fall back in the range; and back.
        for range in lyncToXMPP {
            let published = xmppToLync[range.state.value]?.value.availability
            let back = published.flatMap { range.range.contains($0) ? "\(range.range)" : "\($0)" }
            require(range.state, "\(range.range)", back, "presence-xmpp-to-lync.tsv")
        }
        for (state, row) in xmppToLync {
            require(row, state.rawValue, lyncState(row.value.availability)?.value.rawValue, "presence-lync-to-xmpp.tsv")
        }

        // Errors: condition → full and bare code → condition; code → condition → full code.
        for (key, row) in errorsXMPPToSIP {
            for code in Set([row.value.full, row.value.bare]) {
                require(row, key.condition.rawValue, errorTarget(forStatus: code)?.value.condition.rawValue, "\(code) in errors-sip-to-xmpp.tsv")
            }
        }
        for (key, row) in errorsSIPToXMPP {
            guard case .code(let code) = key else {
                // A class row cannot come back as the class; it is lossy by nature.
                require(row, key.description, nil, "a class row")
                continue
            }
            let back = sipCode(for: row.value.condition, qualifier: nil, bareRecipient: false)?.value
            require(row, String(code), back.map(String.init), "errors-xmpp-to-sip.tsv")
        }

        // Message fields.
        for (field, row) in messageXMPPToSIP {
            let back = row.value == "-" ? nil : messageSIPToXMPP[row.value]?.value
            require(row, field, back == "-" ? nil : back, "message-sip-to-xmpp.tsv")
        }
        for (field, row) in messageSIPToXMPP {
            let back = row.value == "-" ? nil : messageXMPPToSIP[row.value]?.value
            require(row, field, back == "-" ? nil : back, "message-xmpp-to-sip.tsv")
        }

        // Chat states.
        for (state, row) in chatStatesXMPPToSIP {
            require(row, state.rawValue, row.value.flatMap { chatStatesSIPToXMPP[$0.rawValue]?.value.rawValue }, "chatstates-sip-to-xmpp.tsv")
        }
        for (state, row) in chatStatesSIPToXMPP {
            require(row, state, chatStatesXMPPToSIP[row.value]?.value?.rawValue, "chatstates-xmpp-to-sip.tsv")
        }

        // Subscriptions: XMPP type → SIP action → XMPP result; SIP event → XMPP → SIP event.
        for (type, row) in subscriptionXMPPToSIP {
            let back = row.value.flatMap { subscriptionSIPToXMPP[$0.event]?.value }
            require(row, type.rawValue, back?.description, "subscription-sip-to-xmpp.tsv")
        }
        for (event, row) in subscriptionSIPToXMPP {
            var back: String? = nil
            if case .stanza(let type) = row.value, let action = subscriptionXMPPToSIP[type]?.value {
                back = action.event.description
            }
            require(row, event.description, back, "subscription-xmpp-to-sip.tsv")
        }
        return problems.sorted { ($0.file, $0.line ?? 0) < ($1.file, $1.line ?? 0) }
    }
}

extension SIPSubscriptionAction {
    /// The SIP-side event this action is, as the other direction's table keys it.
    var event: SIPSubscriptionEvent {
        switch self {
        case .subscribe(let expires): expires == 0 ? .unsubscribeInDialog : .subscribe
        case .unsubscribeInDialog: .unsubscribeInDialog
        case .fetch: .fetch
        case .notify(let state, let reason): .notify(state, reason: reason)
        }
    }
}
