import Foundation
import SIPCore
import StoxTesting
import Testing

/// RFC 4475 and the project's own SIP wire fixtures (`Tests/Golden/sip-wire`): every well-formed
/// message parses to the values in its `.expect` and round-trips; every malformed one fails with
/// the error kind the manifest names.
struct SIPWireGoldenTests {
    static let directory = Golden.directory("sip-wire")
    static let manifest: Manifest = try! Manifest(contentsOf: directory.appendingPathComponent("manifest.tsv"))
    static let cases: [[String: String]] = manifest.rows

    @Test("every fixture is in the manifest and every manifest row has its fixture")
    func manifestCoversFixtures() throws {
        let listed = Set(Self.cases.compactMap { $0["file"] })
        let present = Set(Golden.files(in: Self.directory, withExtension: "sip"))
        #expect(!present.isEmpty, "no fixtures found under \(Self.directory.path)")
        #expect(present.subtracting(listed).sorted() == [], "fixtures missing from manifest.tsv")
        #expect(listed.subtracting(present).sorted() == [], "manifest rows whose fixture is missing")
        // RFC 4475 has 49 messages in its text (plus one extra file in its archive).
        #expect(present.filter { $0.hasPrefix("rfc4475/") }.count >= 49)
    }

    @Test("fixture", arguments: cases)
    func fixture(_ row: [String: String]) throws {
        let file = try #require(row["file"])
        let bytes = try Golden.bytes(Self.directory.appendingPathComponent(file))
        let knownFailure = row["known-failure"] ?? ""
        let outcome = Result { try SIPParser().parse(datagram: bytes) }
        let problems = check(row: row, file: file, outcome: outcome)
        if knownFailure.isEmpty {
            #expect(problems == [], "\(file) (\(row["ref"] ?? ""))")
        } else {
            // A known failure must still fail; once fixed, remove it from the manifest.
            #expect(problems != [], "\(file) now passes: remove its known-failure entry")
        }
    }

    private func check(row: [String: String], file: String, outcome: Result<SIPMessage, any Error>) -> [String] {
        var problems: [String] = []
        switch (row["expect"], outcome) {
        case ("valid", .success(let message)):
            let expect: ExpectFile
            do {
                expect = try ExpectFile(contentsOf: Self.directory.appendingPathComponent(
                    file.replacingOccurrences(of: ".sip", with: ".expect")))
            } catch {
                return ["missing .expect for \(file)"]
            }
            let actual = facts(message)
            for (key, value) in expect.entries where actual[key] != value {
                problems.append("\(key): expected \(value.debugDescription), got \((actual[key] ?? "<absent>").debugDescription)")
            }
            // Round trip: what we write parses back to the same message. Serialization always
            // states Content-Length (RFC 3261 §20.14), so compare without it.
            do {
                let again = try SIPParser().parse(datagram: message.serialized())
                if again.removing(.contentLength) != message.removing(.contentLength) {
                    problems.append("round trip changed the message")
                }
            } catch {
                problems.append("round trip failed: \(error)")
            }
        case ("valid", .failure(let error)):
            problems.append("expected valid, got \(error)")
        case ("invalid", .success):
            problems.append("expected \(row["error"] ?? "") but it parsed")
        case ("invalid", .failure(let error)):
            guard let error = error as? SIPParseError else { return ["unexpected error type \(error)"] }
            if error.kind.rawValue != row["error"] {
                problems.append("expected \(row["error"] ?? ""), got \(error)")
            }
            if let header = row["header"], !header.isEmpty, error.header != header {
                problems.append("expected header \(header), got \(error.header ?? "none") (\(error))")
            }
        default:
            problems.append("bad manifest row \(row)")
        }
        return problems
    }

    /// The facts `.expect` files name, extracted through the typed accessors.
    private func facts(_ message: SIPMessage) -> [String: String] {
        var facts: [String: String] = [:]
        let headers = message.headers
        func common(_ m: some SIPMessageProtocol) {
            facts["call-id"] = m.callID
            facts["cseq"] = m.cseq?.description
            facts["from-tag"] = m.from?.tag
            facts["to-tag"] = m.to?.tag
            let via = m.via
            facts["via-count"] = String(via.count)
            if let top = via.first {
                facts["via-0-transport"] = top.transport
                facts["via-0-host"] = top.host
                facts["via-0-port"] = top.port.map(String.init)
                facts["via-0-branch"] = top.branch
            }
            facts["max-forwards"] = m.maxForwards.map(String.init)
            facts["content-type"] = m.contentType?.essence
            facts["content-length"] = m.contentLength.map(String.init)
            facts["body-length"] = String(m.body.count)
            facts["event"] = m.event?.description
            if let state = m.subscriptionState {
                facts["subscription-state"] = state.state.rawValue
                facts["subscription-expires"] = state.expires.map(String.init)
                facts["subscription-reason"] = state.reason?.rawValue
            }
            facts["expires"] = m.expires.map(String.init)
            if m.headers.contains(.contact) {
                let contacts = m.contacts
                facts["contact-count"] = String(contacts.count)
                facts["contact-0-uri"] = contacts.first?.uri.description
                facts["contact-0-expires"] = contacts.first?.expires.map(String.init)
            }
            if let auth = (m.wwwAuthenticate + m.authorization + m.proxyAuthenticate + m.proxyAuthorization).first {
                facts["auth-scheme"] = auth.scheme
                facts["auth-realm"] = auth.realm
                facts["auth-algorithm"] = auth["algorithm"]
                facts["auth-username"] = auth.username
            }
            facts["sip-etag"] = m.sipETag
            facts["sip-if-match"] = m.sipIfMatch
            if m.headers.contains(.supported) { facts["supported"] = m.supported.joined(separator: ",") }
        }
        switch message {
        case .request(let request):
            facts["kind"] = "request"
            facts["method"] = request.method.rawValue
            facts["request-uri"] = request.uri.description
            common(request)
        case .response(let response):
            facts["kind"] = "response"
            facts["status"] = String(response.statusCode)
            facts["reason"] = response.reasonPhrase
            common(response)
        }
        _ = headers
        return facts
    }
}

