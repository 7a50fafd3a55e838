import Foundation
import StoxTesting
import Testing
import XMLCore
import XMPPCore

/// RFC 6120/6121 and XEP stanza examples (`Tests/Golden/xmpp-wire`) read from a real stream, and
/// hostile streams (`invalid/`) refused with the right RFC 6120 §4.9.3 condition.
struct XMPPWireGoldenTests {
    static let directory = Golden.directory("xmpp-wire")
    static let streamOpen = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"
    static let valid = Golden.files(in: directory, withExtension: "xml").filter { !$0.hasPrefix("invalid/") }
    static let invalid = Golden.files(in: directory, withExtension: "xml").filter { $0.hasPrefix("invalid/") }

    static func readElement(_ bytes: [UInt8]) throws -> XMLElement {
        let reader = XMPPStreamReader()
        var events: [XMPPStreamEvent] = []
        try reader.feed(Array(streamOpen.utf8) + bytes + Array("</stream:stream>".utf8), into: &events)
        let elements = events.compactMap { if case .element(let e) = $0 { e } else { nil } }
        try #require(elements.count == 1)
        return elements[0]
    }

    @Test("the fixture folders are populated")
    func populated() {
        #expect(Self.valid.count >= 25)
        #expect(Self.invalid.count >= 10)
    }

    @Test("stanza", arguments: valid)
    func stanza(_ file: String) throws {
        let bytes = try Golden.bytes(Self.directory.appendingPathComponent(file))
        let expect = try ExpectFile(contentsOf: Self.directory.appendingPathComponent(file.replacingOccurrences(of: ".xml", with: ".expect")))
        let element = try Self.readElement(bytes)
        #expect(element.namespace == XMPPNamespace.server)

        var actual: [(String, String)] = [("kind", element.name), ("type", element.attribute("type") ?? "")]
        for name in ["from", "to", "id"] {
            if let value = element.attribute(name) { actual.append((name, value)) }
        }
        let typed = Result { try XMPPStanza(element: element) }
        switch typed {
        case .success(let stanza):
            actual += Self.typedFacts(stanza)
            // Writing the typed stanza and reading it back gives the same stanza.
            let reread = try XMPPStanza(element: Self.readElement(Array(stanza.serialized().utf8)))
            #expect(reread == stanza, "round trip of \(file)")
        case .failure(let error):
            let error = try #require(error as? StanzaParseError)
            guard case .invalidJID(let attribute, _) = error else {
                Issue.record("\(file): \(error)")
                return
            }
            actual.append(("parse-error", "\(error.stanzaError.condition.rawValue) \(attribute)"))
            // The error a refused stanza carried can still be read from the element.
            if let errorElement = element.firstChild("error", namespace: XMPPNamespace.server) {
                let carried = StanzaError(element: errorElement)
                actual += [("error-type", carried.type.rawValue), ("error-condition", carried.condition.rawValue)]
            }
        }
        for child in element.elements where child.namespace != XMPPNamespace.server {
            if element.name != "iq" || !actual.contains(where: { $0.0 == "payload-ns" }) {
                actual.append(("payload-ns", child.namespace))
            }
        }
        let order = ["kind", "type", "from", "to", "id", "body", "subject", "thread", "show", "status", "priority",
                     "error-type", "error-condition", "payload-ns", "parse-error"]
        let sortedActual = actual.sorted { order.firstIndex(of: $0.0)! < order.firstIndex(of: $1.0)! }.map { "\($0.0): \($0.1)" }
        let sortedExpected = expect.entries.sorted { order.firstIndex(of: $0.key) ?? 99 < order.firstIndex(of: $1.key) ?? 99 }.map {
            "\($0.key): \($0.value)"
        }
        #expect(sortedActual == sortedExpected, "\(file) (\(expect.source))")
    }

    static func typedFacts(_ stanza: XMPPStanza) -> [(String, String)] {
        var facts: [(String, String)] = []
        func trim(_ s: String) -> String { s.trimmingCharacters(in: .whitespacesAndNewlines) }
        switch stanza {
        case .message(let message):
            if let body = message.body { facts.append(("body", trim(body))) }
            if let subject = message.subject { facts.append(("subject", trim(subject))) }
            if let thread = message.thread { facts.append(("thread", trim(thread))) }
            if let error = message.error { facts += [("error-type", error.type.rawValue), ("error-condition", error.condition.rawValue)] }
        case .presence(let presence):
            if let show = presence.show { facts.append(("show", show.rawValue)) }
            if let status = presence.status { facts.append(("status", trim(status))) }
            if let priority = presence.priority { facts.append(("priority", String(priority))) }
            if let error = presence.error { facts += [("error-type", error.type.rawValue), ("error-condition", error.condition.rawValue)] }
        case .iq(let iq):
            if let error = iq.error { facts += [("error-type", error.type.rawValue), ("error-condition", error.condition.rawValue)] }
        }
        return facts
    }

    @Test("hostile stream", arguments: invalid)
    func hostile(_ file: String) throws {
        let bytes = try Golden.bytes(Self.directory.appendingPathComponent(file))
        let expect = try ExpectFile(contentsOf: Self.directory.appendingPathComponent(file.replacingOccurrences(of: ".xml", with: ".expect")))
        let expected = try #require(expect["stream-error"])
        // Whole, and one byte at a time: the verdict must not depend on how bytes arrive.
        for chunk in [bytes.count, 1] {
            let reader = XMPPStreamReader()
            var events: [XMPPStreamEvent] = []
            var thrown: StreamError? = nil
            var offset = 0
            while offset < bytes.count, thrown == nil {
                let end = min(offset + chunk, bytes.count)
                do {
                    try reader.feed(Array(bytes[offset..<end]), into: &events)
                } catch {
                    thrown = error
                }
                offset = end
            }
            #expect(thrown?.condition.rawValue == expected, "\(file) in chunks of \(chunk): got \(String(describing: thrown))")
        }
    }
}
