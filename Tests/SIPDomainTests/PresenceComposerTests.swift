import SIPCore
import SIPDomain
import Testing

@Suite("Composing one presence view from several endpoints (RFC 3903 publications, RFC 4479 model)")
struct PresenceComposerTests {
    static func document(_ basic: PIDFBasic, tuple: String, activities: [RPIDActivity] = [], note: String? = nil) -> PIDFDocument {
        PIDFDocument(entity: "sip:bob@sip.test", tuples: [PIDFTuple(id: tuple, basic: basic, notes: note.map { [LanguageText($0)] } ?? [])],
                     notes: note.map { [LanguageText($0)] } ?? [],
                     persons: activities.isEmpty ? [] : [PIDFPerson(id: "p-\(tuple)", activities: activities)])
    }

    @Test("availability ranks available > busy > dnd > away > offline, from basic, embedded show and RPID activities")
    func ranking() {
        #expect(PresenceAvailability(Self.document(.closed, tuple: "a")) == .offline)
        #expect(PresenceAvailability(Self.document(.open, tuple: "a")) == .available)
        #expect(PresenceAvailability(Self.document(.open, tuple: "a", activities: [.onThePhone])) == .busy)
        #expect(PresenceAvailability(Self.document(.open, tuple: "a", activities: [.lunch])) == .away)
        #expect(PresenceAvailability.allCases.sorted().map(\.lyncAvailability) == [18500, 15500, 9500, 6500, 3500])
    }

    @Test("the most available endpoint gives the person and notes; every endpoint's tuple is kept, ids made unique")
    func compose() {
        let laptop = PresenceComposer.Publication(etag: "e1", document: Self.document(.open, tuple: "t", activities: [.away], note: "idle"), sequence: 2)
        let phone = PresenceComposer.Publication(etag: "e2", document: Self.document(.open, tuple: "t", note: "on the move"), sequence: 1)
        let composed = PresenceComposer.compose(entity: "sip:bob@sip.test", publications: [laptop, phone])
        #expect(composed.tuples.map(\.id) == ["t", "t-2"])
        #expect(composed.notes.map(\.text) == ["on the move"])
        #expect(composed.persons.isEmpty, "the phone's document has no person; the laptop's away must not leak in")
        #expect(PresenceAvailability(composed) == .available)
        let categories = PresenceComposer.categories(entity: "sip:bob@sip.test", document: composed)
        #expect(categories.availability == 3500)
        #expect(categories.note == "on the move")
    }

    @Test("equal availability: the most recent publication wins; no publication at all is one closed tuple")
    func tiesAndNothing() {
        let older = PresenceComposer.Publication(etag: "e1", document: Self.document(.open, tuple: "a", note: "old"), sequence: 1)
        let newer = PresenceComposer.Publication(etag: "e2", document: Self.document(.open, tuple: "b", note: "new"), sequence: 2)
        #expect(PresenceComposer.compose(entity: "sip:bob@sip.test", publications: [older, newer]).notes.map(\.text) == ["new"])
        let nothing = PresenceComposer.compose(entity: "sip:bob@sip.test", publications: [])
        #expect(nothing.tuples.map(\.basic) == [.closed])
        #expect(PresenceAvailability(nothing) == .offline)
    }
}
