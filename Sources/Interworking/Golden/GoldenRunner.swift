import SIPCore
import XMLCore
import XMPPCore

/// Runs goldens against a mapping set and explains every difference.
public struct GoldenRunner: Sendable {
    public let mappings: MappingSet
    let toXMPP: SIPToXMPP
    let toSIP: XMPPToSIP

    public init(_ mappings: MappingSet) {
        self.mappings = mappings
        self.toXMPP = SIPToXMPP(mappings)
        self.toSIP = XMPPToSIP(mappings)
    }

    public static let kinds = [
        "address sip-to-xmpp", "address xmpp-to-sip", "message sip-to-xmpp", "message xmpp-to-sip",
        "session-invite sip-to-xmpp", "presence sip-to-xmpp", "presence xmpp-to-sip", "subscription sip-to-xmpp",
        "subscription xmpp-to-sip", "subscription-response sip-to-xmpp", "error sip-to-xmpp", "error xmpp-to-sip",
        "receipt sip-to-xmpp", "presence sip-to-lync",
    ]

    /// What running a case produced.
    public struct Outcome: Sendable {
        public var name: String
        /// Empty when the case passes.
        public var differences: [String]
        public var actual: String
        public var actualDiagnostics: [String]
        public var passed: Bool { differences.isEmpty }
    }

    /// The output of one translation, in the form the goldens compare.
    enum Output {
        case stanzas([XMLElement])
        case sip(SIPMessage)
        case text(String)
        case nothing
        case refused(TranslationRefusal, sipCode: Int?)
    }

    public func run(_ golden: GoldenCase) -> Outcome {
        var diagnostics: [String] = []
        let output: Output
        do {
            output = try translate(golden, diagnostics: &diagnostics)
        } catch let error as TranslationRefusal {
            diagnostics += error.diagnostics
            let code = golden.kind.hasSuffix("sip-to-xmpp") && golden.kind != "error sip-to-xmpp"
                ? mappings.sipCode(for: error.error.condition, qualifier: nil, bareRecipient: false)?.value : nil
            output = .refused(error, sipCode: code)
        } catch {
            return Outcome(name: golden.name, differences: ["cannot run: \(error)"], actual: "", actualDiagnostics: [])
        }
        let actual = render(output)
        var differences = compare(expected: golden.expected, actual: output, rendered: actual)
        if golden.diagnostics != diagnostics {
            differences.append(Self.diff("diagnostics", golden.diagnostics, diagnostics))
        }
        return Outcome(name: golden.name, differences: differences, actual: actual, actualDiagnostics: diagnostics)
    }

    /// Runs one translation outside a golden (`stox translate`): the rendered output and the
    /// diagnostics.
    public func perform(kind: String, inputs: [String], options: [String: String] = [:]) -> (output: String, diagnostics: [String]) {
        let golden = GoldenCase(name: "-", citation: "", kind: kind, options: options, inputs: inputs, expected: "", diagnostics: [])
        let outcome = run(golden)
        if let failure = outcome.differences.first, failure.hasPrefix("cannot run") { return (failure, []) }
        return (outcome.actual, outcome.actualDiagnostics)
    }

    struct InputError: Error, CustomStringConvertible {
        var description: String
    }

    private func translate(_ golden: GoldenCase, diagnostics: inout [String]) throws -> Output {
        let input = golden.inputs[0]
        let session = golden.options["session"] == "yes"
        switch golden.kind {
        case "address sip-to-xmpp":
            guard let uri = SIPURI(input) else { throw InputError(description: "not a URI: \(input)") }
            let result = try toXMPP.addresses.jid(uri)
            diagnostics += result.diagnostics
            return .text(result.value.description)
        case "address xmpp-to-sip":
            let result = try toSIP.addresses.sipURI(try JID(parsing: input))
            diagnostics += result.diagnostics
            return .text(result.value.description)
        case "message sip-to-xmpp":
            let result = try toXMPP.message(try Self.sipRequest(input), session: session)
            diagnostics += result.diagnostics
            return .stanzas([XMPPStanza.message(result.value).element()])
        case "session-invite sip-to-xmpp":
            let result = try toXMPP.sessionInvite(try Self.sipRequest(input))
            diagnostics += result.diagnostics
            return result.value.map { .stanzas([XMPPStanza.message($0).element()]) } ?? .nothing
        case "message xmpp-to-sip":
            let result = try toSIP.message(try XMPPMessage(element: Self.stanza(input)), session: session)
            diagnostics += result.diagnostics
            return result.value.map { .sip(.request($0)) } ?? .nothing
        case "presence sip-to-xmpp":
            let result = try toXMPP.notify(try Self.sipRequest(input))
            diagnostics += result.diagnostics
            let stanzas = (result.value.subscriptionStanza.map { [$0] } ?? []) + result.value.presences
            return stanzas.isEmpty ? .nothing : .stanzas(stanzas.map { XMPPStanza.presence($0).element() })
        case "presence sip-to-lync":
            // A SIP user's published document as the embedded registrar renders it for a Lync
            // watcher of that user (SIPPresenceRules.swift).
            let document = try PIDFDocument(bytes: Array(input.utf8))
            let categories = mappings.lyncCategories(entity: document.entity ?? "", document: document)
            return .text(String(decoding: categories.serialized(), as: UTF8.self))
        case "presence xmpp-to-sip":
            let presences = try Self.stanzas(input).map { try XMPPPresence(element: $0) }
            let format = XMPPToSIP.PresenceFormat(rawValue: golden.options["format"] ?? "pidf") ?? .pidf
            let result = try toSIP.presence(presences, format: format)
            diagnostics += result.diagnostics
            return .sip(.request(result.value))
        case "subscription sip-to-xmpp":
            let result = try toXMPP.subscription(try Self.sipRequest(input))
            diagnostics += result.diagnostics
            return result.value.map { .stanzas([XMPPStanza.presence($0).element()]) } ?? .nothing
        case "subscription xmpp-to-sip":
            let result = try toSIP.subscription(try XMPPPresence(element: Self.stanza(input)))
            diagnostics += result.diagnostics
            return result.value.map { .sip(.request($0)) } ?? .nothing
        case "subscription-response sip-to-xmpp":
            let result = toXMPP.subscriptionOutcome(try Self.sipResponse(input))
            diagnostics += result.diagnostics
            return .text(result.value.rawValue)
        case "error sip-to-xmpp":
            let result = toXMPP.error(try Self.sipResponse(input), senderAuthorized: golden.options["sender-authorized"] != "no")
            diagnostics += result.diagnostics
            return .stanzas([result.value.element(namespace: XMPPNamespace.server)])
        case "error xmpp-to-sip":
            let stanza = try XMPPStanza(element: Self.stanza(input))
            let error: StanzaError?
            switch stanza {
            case .message(let m): error = m.error
            case .presence(let p): error = p.error
            case .iq(let i): error = i.error
            }
            guard let error, let recipient = stanza.from else { throw InputError(description: "an error stanza with 'from' is needed") }
            let result = toSIP.response(for: error, failedRecipient: recipient, qualifier: golden.options["qualifier"])
            diagnostics += result.diagnostics
            return .sip(.response(result.value))
        case "receipt sip-to-xmpp":
            guard golden.inputs.count == 2 else { throw InputError(description: "a receipt case takes the message, then the response") }
            let original = try XMPPMessage(element: Self.stanza(input))
            let result = toXMPP.receipt(for: original, after: try Self.sipResponse(golden.inputs[1]))
            diagnostics += result.diagnostics
            return result.value.map { .stanzas([XMPPStanza.message($0).element()]) } ?? .nothing
        default:
            throw InputError(description: "unknown kind '\(golden.kind)'; known: \(Self.kinds.joined(separator: ", "))")
        }
    }

    // MARK: rendering and comparison

    func render(_ output: Output) -> String {
        switch output {
        case .stanzas(let elements):
            return elements.map { XMLSerializer.string($0, in: XMPPStreamHeader.context(XMPPNamespace.server)) }.joined(separator: "\n")
        case .sip(let message):
            return Self.sipText(message)
        case .text(let text):
            return text
        case .nothing:
            return "(nothing)"
        case .refused(let refusal, let code):
            return "refused: \(refusal.error.condition.rawValue)" + (code.map { "\nsip-status: \($0)" } ?? "")
        }
    }

    /// SIP as goldens write it: LF line ends, no Content-Length.
    static func sipText(_ message: SIPMessage) -> String {
        var lines: [String]
        switch message {
        case .request(let request): lines = [request.startLine]
        case .response(let response): lines = [response.startLine]
        }
        for field in message.headers where field.name != .contentLength { lines.append("\(field.name): \(field.value)") }
        var text = lines.joined(separator: "\n")
        if !message.body.isEmpty { text += "\n\n" + String(decoding: message.body, as: UTF8.self) }
        return text
    }

    private func compare(expected: String, actual output: Output, rendered: String) -> [String] {
        switch output {
        case .stanzas(let actual):
            guard let expectedElements = try? Self.stanzas(expected) else {
                return [Self.diff("output", expected.lines, rendered.lines)]
            }
            let a = expectedElements.map(XMLCanonical.form), b = actual.map(XMLCanonical.form)
            return a == b ? [] : [Self.diff("output (canonical XML)", a.flatMap(\.lines), b.flatMap(\.lines))]
        case .sip:
            return Self.compareSIP(LooseSIP(expected), LooseSIP(rendered))
        case .text, .nothing, .refused:
            return expected.lines == rendered.lines ? [] : [Self.diff("output", expected.lines, rendered.lines)]
        }
    }

    /// SIP text read without validation, as an expected output is written: start line, headers
    /// (names canonicalized, Content-Length ignored), body.
    struct LooseSIP {
        var startLine: String
        var headers: [String]
        var body: String

        init(_ text: String) {
            let normalized = text.replacingCRLF()
            let parts = normalized.split(separator: "\n\n", maxSplits: 1, omittingEmptySubsequences: false)
            let head = parts[0].split(separator: "\n").map(String.init)
            startLine = head.first ?? ""
            headers = head.dropFirst().compactMap { line in
                guard let colon = line.firstIndex(of: ":") else { return line }
                let name = SIPHeaderName(String(line[..<colon]).trimmingXMLSpaceAndNewlines())
                if name == .contentLength { return nil }
                return "\(name): " + String(line[line.index(after: colon)...]).trimmingXMLSpaceAndNewlines()
            }.sorted()
            body = parts.count > 1 ? String(parts[1]).trimmingXMLSpaceAndNewlines() : ""
        }
    }

    /// Start line, then header by header, then the body: canonical XML for XML bodies, text
    /// otherwise.
    static func compareSIP(_ expected: LooseSIP, _ actual: LooseSIP) -> [String] {
        var differences: [String] = []
        if expected.startLine != actual.startLine { differences.append(diff("start line", [expected.startLine], [actual.startLine])) }
        if expected.headers != actual.headers { differences.append(diff("headers", expected.headers, actual.headers)) }
        if let a = try? XMLDocumentParser.parse(expected.body), let b = try? XMLDocumentParser.parse(actual.body) {
            if !XMLCanonical.equivalent(a, b) {
                differences.append(diff("body (canonical XML)", XMLCanonical.form(a).lines, XMLCanonical.form(b).lines))
            }
        } else if expected.body != actual.body {
            differences.append(diff("body", expected.body.lines, actual.body.lines))
        }
        return differences
    }

    /// A readable line diff: `-` expected only, `+` actual only, in order.
    static func diff(_ what: String, _ expected: [String], _ actual: [String]) -> String {
        var output = ["  \(what):"]
        let common = longestCommonSubsequence(expected, actual)
        var i = 0, j = 0
        for line in common {
            while i < expected.count, expected[i] != line { output.append("    - \(expected[i])"); i += 1 }
            while j < actual.count, actual[j] != line { output.append("    + \(actual[j])"); j += 1 }
            output.append("      \(line)")
            i += 1
            j += 1
        }
        while i < expected.count { output.append("    - \(expected[i])"); i += 1 }
        while j < actual.count { output.append("    + \(actual[j])"); j += 1 }
        return output.joined(separator: "\n")
    }

    private static func longestCommonSubsequence(_ a: [String], _ b: [String]) -> [String] {
        guard !a.isEmpty, !b.isEmpty else { return [] }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in stride(from: a.count - 1, through: 0, by: -1) {
            for j in stride(from: b.count - 1, through: 0, by: -1) {
                table[i][j] = a[i] == b[j] ? table[i + 1][j + 1] + 1 : max(table[i + 1][j], table[i][j + 1])
            }
        }
        var result: [String] = []
        var i = 0, j = 0
        while i < a.count, j < b.count {
            if a[i] == b[j] {
                result.append(a[i])
                i += 1
                j += 1
            } else if table[i + 1][j] >= table[i][j + 1] {
                i += 1
            } else {
                j += 1
            }
        }
        return result
    }

    // MARK: input parsing

    static let streamHeader = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"

    /// Top-level elements of a text, read as stanzas of an s2s stream.
    static func stanzas(_ text: String) throws -> [XMLElement] {
        let events = try XMLStreamParser().feed(Array((streamHeader + text).utf8))
        return events.compactMap { if case .element(let element) = $0 { element } else { nil } }
    }

    static func stanza(_ text: String) throws -> XMLElement {
        let elements = try stanzas(text)
        guard elements.count == 1 else { throw InputError(description: "expected one stanza, found \(elements.count)") }
        return elements[0]
    }

    /// A SIP message as goldens write it: LF or CRLF lines, Content-Length optional (it is set
    /// from the body, which runs to the end of the section).
    static func sipMessage(_ text: String) throws -> SIPMessage {
        let normalized = text.replacingCRLF()
        let parts = normalized.split(separator: "\n\n", maxSplits: 1, omittingEmptySubsequences: false)
        var head = parts[0].split(separator: "\n").filter { !$0.lowercased().hasPrefix("content-length:") && !$0.hasPrefix("l:") }
        let body = parts.count > 1 ? String(parts[1]) : ""
        head.append("Content-Length: \(body.utf8.count)")
        // Goldens may omit what a translation does not decide; the parser needs these to accept
        // a message, so add neutral ones where missing.
        let text = head.joined(separator: "\r\n") + "\r\n\r\n" + body
        if let message = try? SIPParser().parse(datagram: text) { return message }
        return try SIPParser().parse(datagram: completed(head, body: body))
    }

    private static func completed(_ head: [Substring], body: String) -> String {
        var lines = head.map(String.init)
        let names = lines.dropFirst().map { $0.split(separator: ":").first.map { String($0).lowercased() } ?? "" }
        let fillers: [(String, String)] = [
            ("via", "Via: SIP/2.0/TCP golden.invalid;branch=z9hG4bKgolden"), ("from", "From: <sip:golden@golden.invalid>"),
            ("to", "To: <sip:golden@golden.invalid>"), ("call-id", "Call-ID: golden"),
        ]
        for (name, line) in fillers where !names.contains(name) { lines.insert(line, at: 1) }
        if !names.contains("cseq"), let method = lines.first?.split(separator: " ").first, !method.hasPrefix("SIP/") {
            lines.insert("CSeq: 1 \(method)", at: 1)
        } else if !names.contains("cseq") {
            lines.insert("CSeq: 1 MESSAGE", at: 1)
        }
        return lines.joined(separator: "\r\n") + "\r\n\r\n" + body
    }

    static func sipRequest(_ text: String) throws -> SIPRequest {
        guard case .request(let request) = try sipMessage(text) else { throw InputError(description: "expected a SIP request") }
        return request
    }

    static func sipResponse(_ text: String) throws -> SIPResponse {
        guard case .response(let response) = try sipMessage(text) else { throw InputError(description: "expected a SIP response") }
        return response
    }
}

extension String {
    var lines: [String] { split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }

    func replacingCRLF() -> String {
        var output = ""
        output.reserveCapacity(utf8.count)
        var previousCR = false
        for scalar in unicodeScalars {
            if scalar == "\r" {
                previousCR = true
                output.unicodeScalars.append("\n")
                continue
            }
            if scalar == "\n", previousCR {
                previousCR = false
                continue
            }
            previousCR = false
            output.unicodeScalars.append(scalar)
        }
        return output
    }
}
