import SIPCore

/// How the domain ranks a published document and renders it for a Lync watcher. These are
/// translation decisions, so the mapping tables make them (`Interworking`'s
/// `MappingSet.presenceRules`, which the gateway passes in): the domain keeps no availability
/// order or Lync number of its own that could drift from the tables and their goldens.
public struct PresenceRules: Sendable {
    /// Higher is more available: a user's most available endpoint speaks for the user.
    public var rank: @Sendable (PIDFDocument) -> Int
    /// The Lync categories for `document`, for watchers that take only
    /// `application/msrtc-event-categories+xml`; nil: such watchers get no body.
    public var categories: (@Sendable (_ entity: String, _ document: PIDFDocument) -> MSRTCCategories)?

    public init(rank: @escaping @Sendable (PIDFDocument) -> Int,
                categories: (@Sendable (_ entity: String, _ document: PIDFDocument) -> MSRTCCategories)?) {
        self.rank = rank
        self.categories = categories
    }

    /// Without tables (the domain on its own): an open tuple beats none, nothing more.
    public static let basicOnly = PresenceRules(rank: { $0.tuples.contains { $0.basic == .open } ? 1 : 0 }, categories: nil)
}

/// Composes what watchers of a user see from the publications of each of the user's endpoints
/// (RFC 3903 soft state): one PIDF document with every endpoint's tuples, and the person (RFC
/// 4479) and notes of the most available endpoint, so that a laptop left "away" does not hide
/// the phone the user is answering on. Ties go to the most recent publication. Tuples are listed
/// most available first: user agents that show a contact's first tuple (pjsua2 does) then show
/// the state the person element states.
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

    public static func compose(entity: String, publications: [Publication], rules: PresenceRules) -> PIDFDocument {
        let ranked = publications.map { (publication: $0, rank: rules.rank($0.document)) }
            .sorted { ($0.rank, $0.publication.sequence) > ($1.rank, $1.publication.sequence) }
        guard let best = ranked.first?.publication
        else {
            // No endpoint publishes: the user is offline (RFC 3856 §6.6.2 "closed").
            return PIDFDocument(entity: entity, tuples: [PIDFTuple(id: "stox-offline", basic: .closed)])
        }
        var tuples: [PIDFTuple] = []
        var seen: Set<String> = []
        for publication in ranked.map(\.publication) {
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
    public static func aggregate(entity: String, publications: [Publication], tupleID: String, rules: PresenceRules) -> PIDFDocument {
        guard let best = publications.max(by: { (rules.rank($0.document), $0.sequence) < (rules.rank($1.document), $1.sequence) }),
              var tuple = best.document.tuples.first(where: { $0.basic == .open }) ?? best.document.tuples.first
        else {
            return PIDFDocument(entity: entity, tuples: [PIDFTuple(id: tupleID, basic: .closed)])
        }
        tuple.id = tupleID
        tuple.contact = nil  // one device's address says nothing about the user
        return PIDFDocument(entity: entity, tuples: [tuple], notes: best.document.notes,
                            persons: Array(best.document.persons.prefix(1)))
    }
}
