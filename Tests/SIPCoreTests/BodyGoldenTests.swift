import Foundation
import SIPCore
import StoxTesting
import Testing

/// PIDF (RFC 3863/4479/4480/8048), Lync msrtc categories and isComposing (RFC 3994) examples:
/// each parses to the facts in its `.expect` and survives a write/read round trip.
struct BodyGoldenTests {
    static func cases(_ folder: String) -> [String] {
        Golden.files(in: Golden.directory("bodies/\(folder)"), withExtension: "xml")
    }

    static func load(_ folder: String, _ file: String) throws -> ([UInt8], ExpectFile) {
        let directory = Golden.directory("bodies/\(folder)")
        let bytes = try Golden.bytes(directory.appendingPathComponent(file))
        let expect = try ExpectFile(contentsOf: directory.appendingPathComponent(file.replacingOccurrences(of: ".xml", with: ".expect")))
        return (bytes, expect)
    }

    @Test("the body fixture folders are populated")
    func fixturesExist() {
        #expect(Self.cases("pidf").count >= 10)
        #expect(Self.cases("msrtc").count >= 5)
        #expect(Self.cases("iscomposing").count >= 2)
    }

    @Test("PIDF", arguments: cases("pidf"))
    func pidf(_ file: String) throws {
        let (bytes, expect) = try Self.load("pidf", file)
        let document = try PIDFDocument(bytes: bytes)
        let expected = expect.entries.map { "\($0.key): \($0.value)" }
        #expect(Self.facts(document) == expected, "\(file) (\(expect.source))")
        let reread = try PIDFDocument(bytes: document.serialized())
        #expect(reread == document, "round trip of \(file)")
    }

    static func facts(_ document: PIDFDocument) -> [String] {
        var lines: [String] = []
        if let entity = document.entity { lines.append("entity: \(entity)") }
        for tuple in document.tuples {
            var line = "tuple: \(tuple.id)"
            if let basic = tuple.basic { line += " basic=\(basic.rawValue)" }
            if let contact = tuple.contact { line += " contact=\(contact)" }
            if let priority = tuple.contactPriority { line += " priority=\(priority)" }
            if let note = tuple.notes.preferred { line += " note=\(note.text)" }
            lines.append(line)
        }
        for note in document.notes { lines.append("note: \(note.text)") }
        for person in document.persons {
            var line = "person: \(person.id ?? "")"
            if !person.activities.isEmpty { line += " activities=" + person.activities.map(\.name).joined(separator: ",") }
            if let note = person.notes.preferred { line += " note=\(note.text)" }
            lines.append(line)
        }
        for device in document.devices {
            var line = "device: \(device.id ?? "")"
            if let deviceID = device.deviceID { line += " deviceID=\(deviceID)" }
            lines.append(line)
        }
        if let show = document.embeddedShow { lines.append("show: \(show)") }
        return lines
    }

    @Test("msrtc categories", arguments: cases("msrtc"))
    func msrtc(_ file: String) throws {
        let (bytes, expect) = try Self.load("msrtc", file)
        let document = try MSRTCCategories(bytes: bytes)
        var facts: [String] = ["uri: \(document.uri)"]
        if let availability = document.availability { facts.append("availability: \(availability)") }
        if let token = document.activityToken { facts.append("activity: \(token)") }
        if let note = document.note { facts.append("note: \(note)") }
        #expect(facts == expect.entries.map { "\($0.key): \($0.value)" }, "\(file) (\(expect.source))")
        // What Stox writes for a watcher reads back to the same state and note.
        if let availability = document.availability {
            let written = MSRTCCategories.notification(
                uri: document.uri, availability: availability, activityToken: document.activityToken, note: document.note)
            let reread = try MSRTCCategories(bytes: written.serialized())
            #expect(reread.availability == availability)
            #expect(reread.activityToken == document.activityToken)
            #expect(reread.note == document.note)
        }
    }

    @Test("isComposing", arguments: cases("iscomposing"))
    func isComposing(_ file: String) throws {
        let (bytes, expect) = try Self.load("iscomposing", file)
        let document = try IsComposingDocument(bytes: bytes)
        var facts: [String: String] = ["state": document.state.rawValue]
        facts["contenttype"] = document.contentType
        facts["refresh"] = document.refresh.map(String.init)
        facts["lastactive"] = document.lastActive
        #expect(facts == Dictionary(uniqueKeysWithValues: expect.entries.map { ($0.key, $0.value) }), "\(file)")
        #expect(try IsComposingDocument(bytes: document.serialized()) == document)
    }

    @Test("a PIDF document Stox builds carries the RFC 8048 embedded show, RPID activity and note")
    func buildPIDF() throws {
        var tuple = PIDFTuple(id: "ID-balcony", basic: .open, contact: "xmpp:juliet@capulet.lit/balcony", notes: [LanguageText("Wherefore", language: "en")])
        tuple.embeddedShow = "away"
        let document = PIDFDocument(
            entity: "pres:juliet@capulet.lit", tuples: [tuple],
            persons: [PIDFPerson(id: "p1", activities: [.away])])
        let text = String(decoding: document.serialized(), as: UTF8.self)
        #expect(text.contains("<show xmlns='jabber:client'>away</show>"))
        let reread = try PIDFDocument(bytes: document.serialized())
        #expect(reread.embeddedShow == "away")
        #expect(reread.persons.first?.activities == [.away])
        #expect(reread.tuples.first?.notes.first == LanguageText("Wherefore", language: "en"))
    }

    @Test("non-PIDF and hostile bodies are refused with a typed error")
    func refusesBadBodies() {
        #expect(throws: SIPBodyError.self) { try PIDFDocument(bytes: Array("<presence xmlns='urn:other'/>".utf8)) }
        #expect(throws: SIPBodyError.self) {
            try PIDFDocument(bytes: Array("<!DOCTYPE x [<!ENTITY a 'b'>]><presence xmlns='urn:ietf:params:xml:ns:pidf'/>".utf8))
        }
        #expect(throws: SIPBodyError.self) { try PIDFDocument(bytes: Array("<presence xmlns='urn:ietf:params:xml:ns:pidf'>".utf8)) }
        #expect(throws: SIPBodyError.self) { try IsComposingDocument(bytes: Array("<isComposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'/>".utf8)) }
    }
}
