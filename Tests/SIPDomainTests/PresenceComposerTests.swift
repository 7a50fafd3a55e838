import Foundation
import Gateway
import Interworking
import SIPCore
import SIPDomain
import StoxTesting
import Testing

@Suite("Composing one presence view from several endpoints (RFC 3903 publications, RFC 4479 model), ranked by the mapping tables")
struct PresenceComposerTests {
    static func document(_ basic: PIDFBasic, tuple: String, activities: [RPIDActivity] = [], note: String? = nil) -> PIDFDocument {
        PIDFDocument(entity: "sip:bob@sip.test", tuples: [PIDFTuple(id: tuple, basic: basic, notes: note.map { [LanguageText($0)] } ?? [])],
                     notes: note.map { [LanguageText($0)] } ?? [],
                     persons: activities.isEmpty ? [] : [PIDFPerson(id: "p-\(tuple)", activities: activities)])
    }

    static func tables(_ directory: URL = Golden.repositoryRoot.appendingPathComponent("Mappings")) throws -> MappingSet {
        try MappingDirectory.load(directory.path)
    }

    @Test("the rank follows the tables: available > dnd (on-the-phone, steering) > away (lunch) > offline, in presence-xmpp-to-lync.tsv's order")
    func ranking() throws {
        let rules = CurrentTables(try Self.tables()).presenceRules
        let offline = rules.rank(Self.document(.closed, tuple: "a"))
        let available = rules.rank(Self.document(.open, tuple: "a"))
        let phone = rules.rank(Self.document(.open, tuple: "a", activities: [.onThePhone]))
        let driving = rules.rank(Self.document(.open, tuple: "a", activities: [RPIDActivity("steering")]))
        let lunch = rules.rank(Self.document(.open, tuple: "a", activities: [.lunch]))
        #expect(available > phone && phone > lunch && lunch > offline)
        // presence-rpid-to-xmpp.tsv says steering is dnd, so it ranks with on-the-phone.
        #expect(driving == phone)
    }

    @Test("the most available endpoint gives the person and notes, and its tuple comes first; every endpoint's tuple is kept, ids made unique")
    func compose() throws {
        let rules = CurrentTables(try Self.tables()).presenceRules
        let laptop = PresenceComposer.Publication(etag: "e1", document: Self.document(.open, tuple: "t", activities: [.away], note: "idle"), sequence: 2)
        let phone = PresenceComposer.Publication(etag: "e2", document: Self.document(.open, tuple: "t", note: "on the move"), sequence: 1)
        let composed = PresenceComposer.compose(entity: "sip:bob@sip.test", publications: [laptop, phone], rules: rules)
        // The phone is more available though the laptop published last: user agents that show the
        // first tuple (pjsua2) must show the phone's.
        #expect(composed.tuples.map(\.id) == ["t", "t-2"])
        #expect(composed.tuples.first?.notes.map(\.text) == ["on the move"])
        #expect(composed.notes.map(\.text) == ["on the move"])
        #expect(composed.persons.isEmpty, "the phone's document has no person; the laptop's away must not leak in")
        let categories = try #require(rules.categories?("sip:bob@sip.test", composed))
        #expect(categories.availability == 3500)
        #expect(categories.note == "on the move")
    }

    @Test("a Lync watcher gets the number presence-xmpp-to-lync.tsv gives (dnd 6500 as shipped), and an edited table changes it")
    func lyncNumbersFromTheTable() throws {
        let busy = Self.document(.open, tuple: "a", activities: [.onThePhone])
        let shipped = CurrentTables(try Self.tables()).presenceRules
        #expect(shipped.categories?("sip:bob@sip.test", busy).availability == 6500)
        // An operator's edited copy: dnd published as Lync's Do Not Disturb.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stox-tables-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.copyItem(at: Golden.repositoryRoot.appendingPathComponent("Mappings"), to: directory)
        let table = directory.appendingPathComponent("presence-xmpp-to-lync.tsv")
        let edited = try String(contentsOf: table, encoding: .utf8).replacingOccurrences(of: "dnd\t6500\t", with: "dnd\t9500\t")
        try edited.write(to: table, atomically: true, encoding: .utf8)
        // The loader checks round trips: Busy (6000...7499) no longer comes back as what dnd sends.
        let reverse = directory.appendingPathComponent("presence-lync-to-xmpp.tsv")
        let lines = try String(contentsOf: reverse, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("6000\t") ? line.replacingOccurrences(of: "\tno", with: "\tyes") : String(line)
        }
        try lines.joined(separator: "\n").write(to: reverse, atomically: true, encoding: .utf8)
        let operators = CurrentTables(try Self.tables(directory)).presenceRules
        #expect(operators.categories?("sip:bob@sip.test", busy).availability == 9500)
    }

    @Test("equal availability: the most recent publication wins; no publication at all is one closed tuple")
    func tiesAndNothing() throws {
        let rules = CurrentTables(try Self.tables()).presenceRules
        let older = PresenceComposer.Publication(etag: "e1", document: Self.document(.open, tuple: "a", note: "old"), sequence: 1)
        let newer = PresenceComposer.Publication(etag: "e2", document: Self.document(.open, tuple: "b", note: "new"), sequence: 2)
        #expect(PresenceComposer.compose(entity: "sip:bob@sip.test", publications: [older, newer], rules: rules).notes.map(\.text) == ["new"])
        let nothing = PresenceComposer.compose(entity: "sip:bob@sip.test", publications: [], rules: rules)
        #expect(nothing.tuples.map(\.basic) == [.closed])
        #expect(rules.categories?("sip:bob@sip.test", nothing).availability == 18500)
    }
}
