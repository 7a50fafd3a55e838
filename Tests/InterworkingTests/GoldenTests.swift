import Foundation
import Interworking
import StoxTesting
import Testing

/// The translation goldens beside the tables (`Mappings/golden`), run as `stox mappings verify`
/// runs them.
struct GoldenTests {
    static let mappings = Golden.repositoryRoot.appendingPathComponent("Mappings").path
    static let goldens: [GoldenCase] = (try? MappingDirectory.goldens(mappings + "/golden")) ?? []
    static let shipped: MappingSet? = try? MappingDirectory.load(mappings)

    @Test("there are well over 100 cases, each citing its source")
    func population() {
        #expect(Self.goldens.count >= 150)
        for golden in Self.goldens {
            let cites = ["RFC ", "XEP-", ".tsv", "protocols.md", "Lync", "gg464202"].contains { golden.citation.contains($0) }
            #expect(cites, "\(golden.name) does not cite its source: \(golden.citation)")
        }
    }

    @Test("golden", arguments: goldens)
    func golden(_ golden: GoldenCase) throws {
        let set = try #require(Self.shipped)
        let outcome = GoldenRunner(set).run(golden)
        #expect(outcome.passed, "\(golden.name) (\(golden.citation))\n\(outcome.differences.joined(separator: "\n"))")
    }

    /// The names of the cases that fail with `files`.
    static func failures(_ files: [String: String]) throws -> [String: [String]] {
        let set = try MappingSet(files: files)
        let runner = GoldenRunner(set)
        var failing: [String: [String]] = [:]
        for golden in goldens {
            let outcome = runner.run(golden)
            if !outcome.passed { failing[golden.name] = outcome.differences }
        }
        return failing
    }

    @Test("editing dnd -> 9500 fails exactly the cases that publish dnd to Lync, with a readable diff")
    func editOneRow() throws {
        var files = try MappingDirectory.read(Self.mappings)
        let table = try #require(files["presence-xmpp-to-lync.tsv"])
        #expect(table.contains("dnd\t6500\t"))
        files["presence-xmpp-to-lync.tsv"] = table.replacingOccurrences(of: "dnd\t6500\t", with: "dnd\t9500\t")
        // First the audit speaks: Busy (6000-7499) now publishes 9500, outside its own range.
        do {
            _ = try MappingSet(files: files)
            Issue.record("the audit did not notice that 6000...7499 no longer round-trips")
        } catch {
            #expect(error.errors.map(\.description) == [
                "presence-lync-to-xmpp.tsv:8: 6000...7499 does not round-trip (presence-xmpp-to-lync.tsv gives 9500): mark the row lossy or fix the tables"
            ])
        }
        // The operator marks that range lossy; then exactly the affected goldens fail.
        files["presence-lync-to-xmpp.tsv"] = files["presence-lync-to-xmpp.tsv"]!.replacingOccurrences(
            of: "6000\t7499\tdnd\tLync 2013: Busy; protocols.md §4.4 default\tno", with: "6000\t7499\tdnd\tLync 2013: Busy; protocols.md §4.4 default\tyes")
        let failing = try Self.failures(files)
        // Both paths to a Lync watcher: an XMPP user's presence, and a SIP user's own document.
        #expect(failing.keys.sorted() == ["presence-to-lync/on-the-phone.golden", "presence-to-lync/steering.golden",
                                          "presence-to-sip/lync-dnd.golden", "presence-to-sip/lync-most-available.golden"])
        let diff = failing["presence-to-sip/lync-dnd.golden"]?.joined(separator: "\n") ?? ""
        #expect(diff.contains("- ") && diff.contains("6500"))
        #expect(diff.contains("+ ") && diff.contains("9500"))
    }

    /// Rewrites one data row's cell; the row is marked lossy so the audit lets the edit load.
    static func mutate(_ text: String, line: Int, column: String, to value: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = lines.first { !$0.hasPrefix("#") && !$0.isEmpty }!.split(separator: "\t").map(String.init)
        var cells = lines[line - 1].split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        cells[header.firstIndex(of: column)!] = value
        if let lossy = header.firstIndex(of: "lossy") { cells[lossy] = "yes" }
        lines[line - 1] = cells.joined(separator: "\t")
        return lines.joined(separator: "\n")
    }

    /// For each table: the column to change and a different valid value for the row's current one.
    static let mutations: [(file: String, column: String, replace: @Sendable (String) -> String)] = [
        ("presence-xmpp-to-pidf.tsv", "show", { $0 == "away" ? "dnd" : "away" }),
        ("presence-show-to-xmpp.tsv", "xmpp", { $0 == "away" ? "dnd" : "away" }),
        ("presence-rpid-to-xmpp.tsv", "xmpp", { $0 == "xa" ? "dnd" : "xa" }),
        ("presence-lync-to-xmpp.tsv", "xmpp", { $0 == "chat" ? "dnd" : "chat" }),
        ("presence-xmpp-to-lync.tsv", "availability", { String(Int($0)! + 100) }),
        ("errors-xmpp-to-sip.tsv", "full", { $0 == "499" ? "498" : "499" }),
        ("errors-sip-to-xmpp.tsv", "condition", { $0 == "conflict" ? "gone" : "conflict" }),
        ("chatstates-xmpp-to-sip.tsv", "iscomposing", { $0 == "active" ? "idle" : "active" }),
        ("chatstates-sip-to-xmpp.tsv", "chatstate", { $0 == "paused" ? "gone" : "paused" }),
        ("subscription-sip-to-xmpp.tsv", "xmpp", { $0 == "probe" ? "subscribe" : "probe" }),
        ("subscription-responses.tsv", "outcome", { $0 == "interval" ? "active" : "interval" }),
        ("message-sip-to-xmpp.tsv", "xmpp", { $0 == "-" ? "" : "-" }),
        ("aliases.tsv", "xmpp", { _ in "someone.else@biloxi.example.com" }),
    ]

    @Test("every row of every table is pinned by at least one golden", arguments: mutations.map(\.file))
    func everyRowHasACase(_ file: String) throws {
        let mutation = try #require(Self.mutations.first { $0.file == file })
        let files = try MappingDirectory.read(Self.mappings)
        let text = try #require(files[file])
        var uncovered: [String] = []
        var rows = 0
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !line.hasPrefix("#"), !line.isEmpty, line.contains("\t") else { continue }
            let header = text.split(separator: "\n").first { !$0.hasPrefix("#") }!.split(separator: "\t").map(String.init)
            let cells = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if cells == header { continue }
            let current = cells[header.firstIndex(of: mutation.column)!]
            var replacement = mutation.replace(current)
            // Field tables allow only some targets; "-" is allowed for most, skip the rest.
            if file == "message-sip-to-xmpp.tsv", replacement.isEmpty { continue }
            if file == "message-sip-to-xmpp.tsv", ["From", "Request-URI", "body"].contains(cells[0]) { continue }
            if file == "subscription-sip-to-xmpp.tsv", replacement == current { replacement = "-" }
            rows += 1
            var edited = files
            edited[file] = Self.mutate(text, line: index + 1, column: mutation.column, to: replacement)
            let failing: [String: [String]]
            do {
                failing = try Self.failures(edited)
            } catch {
                // An edit the loader refuses is caught too; the goldens need not see it.
                continue
            }
            if failing.isEmpty { uncovered.append("line \(index + 1): \(line)") }
        }
        #expect(rows > 0)
        #expect(uncovered == [], "rows of \(file) that no golden notices when changed")
    }
}

extension GoldenCase: CustomTestStringConvertible {
    public var testDescription: String { name }
}
