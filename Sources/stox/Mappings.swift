import ArgumentParser
import Foundation
import Interworking

/// `stox mappings verify`: runs the translation goldens against a mapping directory, so an
/// operator who edits a table sees exactly which cases change.
struct Mappings: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check mapping tables.", subcommands: [Verify.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load and audit the mapping tables, then run every golden case against them.",
            discussion: """
                Exits non-zero when a table does not load (each problem with its file and line) or when \
                a golden case gives a different translation (each with a diff: - expected, + actual).
                """)

        @Option(help: "The mapping directory.")
        var mappings = "Mappings"

        @Option(help: "The golden cases (default: <mappings>/golden).")
        var goldens: String?

        @Flag(help: "Print every case, not only the failures.")
        var verbose = false

        func run() throws {
            let set = try loadMappings(mappings)
            let directory = goldens ?? (mappings as NSString).appendingPathComponent("golden")
            let cases = try MappingDirectory.goldens(directory)
            guard !cases.isEmpty else {
                print("no golden cases under \(directory)")
                throw ExitCode(1)
            }
            let runner = GoldenRunner(set)
            var failed = 0
            for golden in cases {
                let outcome = runner.run(golden)
                if outcome.passed {
                    if verbose { print("ok   \(golden.name)") }
                    continue
                }
                failed += 1
                print("FAIL \(golden.name)  (\(golden.citation))")
                for difference in outcome.differences { print(difference) }
            }
            print("\(cases.count - failed) passed, \(failed) failed")
            if failed > 0 { throw ExitCode(1) }
        }
    }
}

/// `stox translate --from sip|xmpp FILE`: prints what the gateway would make of a message.
struct Translate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Translate a SIP message or XMPP stanza and print the result with its diagnostics.",
        discussion: """
            The kind of translation follows from the input: a SIP MESSAGE, INVITE (Lync first message), \
            NOTIFY, SUBSCRIBE or response; an XMPP message, presence (several presences make one PIDF \
            document) or subscription stanza, or an error stanza.
            """)

    enum Side: String, ExpressibleByArgument { case sip, xmpp }

    @Option(help: "The protocol of the input: sip or xmpp.")
    var from: Side

    @Argument(help: "The file to translate; - for standard input.")
    var file: String

    @Option(help: "The mapping directory.")
    var mappings = "Mappings"

    @Option(help: "Presence document format toward SIP: pidf or msrtc.")
    var format = "pidf"

    @Flag(help: "Translate as part of an IM session (no pager size limit; chat type).")
    var session = false

    func run() throws {
        let set = try loadMappings(mappings)
        let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: file)
        guard let data else { throw ValidationError("cannot read \(file)") }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let kind = from == .sip ? Self.sipKind(text) : Self.xmppKind(text)
        var options = ["format": format]
        if session { options["session"] = "yes" }
        let (output, diagnostics) = GoldenRunner(set).perform(kind: kind, inputs: [text], options: options)
        print("# \(kind)")
        print(output)
        if !diagnostics.isEmpty {
            print("--- diagnostics")
            for line in diagnostics { print(line) }
        }
    }

    static func sipKind(_ text: String) -> String {
        let method = text.prefix { $0 != " " }
        switch method {
        case "MESSAGE": return "message sip-to-xmpp"
        case "INVITE": return "session-invite sip-to-xmpp"
        case "NOTIFY": return "presence sip-to-xmpp"
        case "SUBSCRIBE": return "subscription sip-to-xmpp"
        default: return method.hasPrefix("SIP/") ? "error sip-to-xmpp" : "message sip-to-xmpp"
        }
    }

    static func xmppKind(_ text: String) -> String {
        if text.contains("type='error'") || text.contains("type=\"error\"") { return "error xmpp-to-sip" }
        if text.hasPrefix("<presence") {
            for type in ["subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe"]
            where text.contains("type='\(type)'") || text.contains("type=\"\(type)\"") {
                return "subscription xmpp-to-sip"
            }
            return "presence xmpp-to-sip"
        }
        return "message xmpp-to-sip"
    }
}

/// Loads a mapping directory, or prints every problem (file:line: reason) and exits 1.
func loadMappings(_ path: String) throws -> MappingSet {
    do {
        return try MappingDirectory.load(path)
    } catch {
        for problem in error.errors { print(problem) }
        print("the tables in \(path) do not load: \(error.errors.count) problem(s)")
        throw ExitCode(1)
    }
}
