import SIPCore

/// How available a published state is, for choosing among a user's endpoints. The order is
/// Lync's (an endpoint in a call is "more available" than one the user walked away from), and
/// so are the availability numbers watchers of msrtc categories receive
/// (../shared/reference/protocols.md §4.4: Online 3500, Busy 6500, DND 9500, Away 15500,
/// Offline 18500).
public enum PresenceAvailability: Int, Comparable, Hashable, Sendable, CaseIterable {
    case offline = 0
    case away = 1
    case doNotDisturb = 2
    case busy = 3
    case available = 4

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public var lyncAvailability: Int {
        switch self {
        case .available: 3500
        case .busy: 6500
        case .doNotDisturb: 9500
        case .away: 15500
        case .offline: 18500
        }
    }

    /// RFC 3863 basic, the RFC 8048 §6.3 embedded show, then RFC 4480 activities.
    public init(_ document: PIDFDocument) {
        guard document.tuples.contains(where: { $0.basic == .open }) else {
            self = .offline
            return
        }
        switch document.embeddedShow {
        case "dnd": self = .doNotDisturb; return
        case "away", "xa": self = .away; return
        case "chat": self = .available; return
        default: break
        }
        let activities = Set(document.persons.flatMap(\.activities).map(\.name))
        if !activities.isDisjoint(with: Self.busyActivities) {
            self = .busy
        } else if !activities.isDisjoint(with: Self.awayActivities) {
            self = .away
        } else {
            self = .available
        }
    }

    // RFC 4480 §3.2 activities that mean "here but occupied" and "not here".
    static let busyActivities: Set<String> = ["busy", "on-the-phone", "meeting", "presentation", "performance", "playing", "worship"]
    static let awayActivities: Set<String> = [
        "away", "vacation", "holiday", "lunch", "meal", "breakfast", "dinner", "sleeping", "travel", "in-transit",
        "permanent-absence", "steering", "shopping",
    ]
}

/// Composes what watchers of a user see from the publications of each of the user's endpoints
/// (RFC 3903 soft state): one PIDF document with every endpoint's tuples, and the person (RFC
/// 4479) and notes of the most available endpoint, so that a laptop left "away" does not hide
/// the phone the user is answering on. Ties go to the most recent publication.
public enum PresenceComposer {
    public struct Publication: Hashable, Sendable {
        public var etag: String
        public var document: PIDFDocument
        /// Order of publication (higher is more recent).
        public var sequence: UInt64

        public init(etag: String, document: PIDFDocument, sequence: UInt64) {
            self.etag = etag
            self.document = document
            self.sequence = sequence
        }
    }

    public static func compose(entity: String, publications: [Publication]) -> PIDFDocument {
        guard let best = publications.max(by: { (PresenceAvailability($0.document), $0.sequence) < (PresenceAvailability($1.document), $1.sequence) })
        else {
            // No endpoint publishes: the user is offline (RFC 3856 §6.6.2 "closed").
            return PIDFDocument(entity: entity, tuples: [PIDFTuple(id: "stox-offline", basic: .closed)])
        }
        var tuples: [PIDFTuple] = []
        var seen: Set<String> = []
        for publication in publications.sorted(by: { $0.sequence > $1.sequence }) {
            for var tuple in publication.document.tuples {
                // Tuple ids must be unique in a document (RFC 3863 §4.1.2); two devices of the
                // same make may publish the same id.
                var id = tuple.id, suffix = 1
                while seen.contains(id) {
                    suffix += 1
                    id = "\(tuple.id)-\(suffix)"
                }
                seen.insert(id)
                tuple.id = id
                tuples.append(tuple)
            }
        }
        return PIDFDocument(entity: entity, tuples: tuples, notes: best.document.notes,
                            persons: Array(best.document.persons.prefix(1)),
                            devices: publications.flatMap(\.document.devices))
    }

    /// One state for a user: the most available endpoint's document, reduced to a single tuple
    /// named `tupleID` (an open one when there is), for networks that show one presence per
    /// contact. Several endpoints would otherwise look like several resources, and a change on
    /// one would send one presence per resource to every watcher.
    public static func aggregate(entity: String, publications: [Publication], tupleID: String) -> PIDFDocument {
        guard let best = publications.max(by: { (PresenceAvailability($0.document), $0.sequence) < (PresenceAvailability($1.document), $1.sequence) }),
              var tuple = best.document.tuples.first(where: { $0.basic == .open }) ?? best.document.tuples.first
        else {
            return PIDFDocument(entity: entity, tuples: [PIDFTuple(id: tupleID, basic: .closed)])
        }
        tuple.id = tupleID
        tuple.contact = nil  // one device's address says nothing about the user
        return PIDFDocument(entity: entity, tuples: [tuple], notes: best.document.notes,
                            persons: Array(best.document.persons.prefix(1)))
    }

    /// The same state as Lync categories, for watchers that accept them.
    public static func categories(entity: String, document: PIDFDocument) -> MSRTCCategories {
        let availability = PresenceAvailability(document)
        let note = document.notes.first?.text ?? document.tuples.lazy.compactMap { $0.notes.first?.text }.first
            ?? document.persons.first?.notes.first?.text
        return MSRTCCategories.notification(uri: entity, availability: availability.lyncAvailability, note: note)
    }
}
