import SIPCore
import XMPPCore

/// How a SIP presence document ranks and reads for a Lync watcher, decided by the same tables
/// the XMPP translation uses: each tuple's state comes from `presence-precedence.tsv` and the
/// tables it names (embedded show, RPID activities, basic), exactly as `SIPToXMPP` reads it, and
/// a state's place in the order of availability is the Lync availability number
/// `presence-xmpp-to-lync.tsv` gives it (lower is more available). The embedded registrar uses
/// these to pick a user's most available endpoint and to answer watchers that take only
/// `application/msrtc-event-categories+xml`; an edited table changes both, and the goldens and
/// `stox mappings verify` check the same code.
extension MappingSet {
    /// The state each tuple of `document` means, in document order (nil: the tuple says nothing).
    public func tupleStates(_ document: PIDFDocument) -> [PresenceState?] {
        let activities = document.persons.flatMap(\.activities).map(\.name)
        return document.tuples.map { tuple in
            presenceState(.init(embeddedShow: tuple.embeddedShow.flatMap(XMPPPresence.Show.init(rawValue:)),
                                activities: activities, basic: tuple.basic))?.state
        }
    }

    /// Where `state` stands in the order of availability: its Lync availability number, lower
    /// is more available; a state without a row ranks below every state with one.
    public func availabilityOrder(_ state: PresenceState) -> Int {
        xmppToLync[state]?.value.availability ?? Int.max
    }

    /// The most available state any tuple of `document` means (unavailable when none says).
    public func documentState(_ document: PIDFDocument) -> PresenceState {
        tupleStates(document).compactMap { $0 }.min { availabilityOrder($0) < availabilityOrder($1) } ?? .unavailable
    }

    /// The Lync aggregate state category for `document` (`presence-xmpp-to-lync.tsv`).
    public func lyncCategories(entity: String, document: PIDFDocument) -> MSRTCCategories {
        let state = documentState(document)
        // The table covers every state (checked when it loads).
        let target = xmppToLync[state]!.value
        let note = document.notes.first?.text ?? document.tuples.lazy.compactMap { $0.notes.first?.text }.first
            ?? document.persons.first?.notes.first?.text
        return MSRTCCategories.notification(uri: entity, availability: target.availability, activityToken: target.activity, note: note)
    }
}
