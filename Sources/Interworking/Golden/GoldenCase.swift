/// One translation golden (`Mappings/golden/<area>/<name>.golden`): a readable file that an
/// operator can run against edited tables.
///
/// ```
/// # RFC 8048 §6.2 Table 1: show=away is embedded and becomes RPID away      <- required citation
/// translate: presence xmpp-to-sip                                           <- what to run
/// option: format=msrtc                                                      <- optional, repeatable
/// --- input
/// <presence from='juliet@example.com/balcony' to='romeo@example.net'><show>away</show></presence>
/// --- expected
/// NOTIFY sip:romeo@example.net SIP/2.0
/// ...
/// --- diagnostics
/// dropped presence id: ...
/// ```
/// A case may have several `--- input` sections (a receipt needs the message and the response).
/// `(nothing)` as the expected text means no output; `refused: <condition>` a refusal.
public struct GoldenCase: Sendable {
    public var name: String
    public var citation: String
    public var kind: String
    public var options: [String: String]
    public var inputs: [String]
    public var expected: String
    public var diagnostics: [String]

    public struct FormatError: Error, CustomStringConvertible {
        public var name: String
        public var problem: String
        public var description: String { "\(name): \(problem)" }
    }

    public static func parse(name: String, text: String) throws(FormatError) -> GoldenCase {
        var citation: String? = nil
        var kind: String? = nil
        var options: [String: String] = [:]
        var inputs: [String] = []
        var expected: String? = nil
        var diagnostics: [String]? = nil
        var section: String? = nil
        var buffer: [Substring] = []

        func close() throws(FormatError) {
            let text = buffer.joined(separator: "\n").trimmingXMLSpaceAndNewlines()
            switch section {
            case "input": inputs.append(text)
            case "expected": expected = text
            case "diagnostics": diagnostics = text.isEmpty ? [] : text.split(separator: "\n").map { String($0).trimmingXMLSpaceAndNewlines() }
            case nil: break
            case let other?: throw FormatError(name: name, problem: "unknown section '--- \(other)'")
            }
            buffer = []
        }

        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = line.hasSuffix("\r") ? line.dropLast() : line
            if line.hasPrefix("--- ") {
                try close()
                section = String(line.dropFirst(4)).trimmingXMLSpaceAndNewlines()
                continue
            }
            if section != nil {
                buffer.append(line)
                continue
            }
            if index == 0 {
                guard line.hasPrefix("#"), line.count > 2 else {
                    throw FormatError(name: name, problem: "the first line must be a '# ' comment citing the RFC section")
                }
                citation = String(line.dropFirst()).trimmingXMLSpaceAndNewlines()
            } else if line.hasPrefix("translate:") {
                kind = String(line.dropFirst("translate:".count)).trimmingXMLSpaceAndNewlines()
            } else if line.hasPrefix("option:") {
                let option = String(line.dropFirst("option:".count)).trimmingXMLSpaceAndNewlines()
                guard let equals = option.firstIndex(of: "=") else { throw FormatError(name: name, problem: "option must be name=value") }
                options[String(option[..<equals])] = String(option[option.index(after: equals)...])
            } else if !line.hasPrefix("#") && !line.allSatisfy(\.isWhitespace) {
                throw FormatError(name: name, problem: "unexpected line before the first section: \(line)")
            }
        }
        try close()
        guard let citation else { throw FormatError(name: name, problem: "no citation") }
        guard let kind else { throw FormatError(name: name, problem: "no 'translate:' line") }
        guard !inputs.isEmpty else { throw FormatError(name: name, problem: "no '--- input' section") }
        guard let expected else { throw FormatError(name: name, problem: "no '--- expected' section") }
        return GoldenCase(
            name: name, citation: citation, kind: kind, options: options, inputs: inputs, expected: expected,
            diagnostics: diagnostics ?? [])
    }
}
