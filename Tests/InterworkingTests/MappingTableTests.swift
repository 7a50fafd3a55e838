import Foundation
import Interworking
import StoxTesting
import Testing

/// The shipped tables load, pass the round-trip audit, and bad edits are refused with file,
/// line and problem.
struct MappingTableTests {
    static let directory = Golden.repositoryRoot.appendingPathComponent("Mappings").path

    static func shippedFiles() throws -> [String: String] {
        try MappingDirectory.read(directory)
    }

    /// Loads the shipped files with one file's text changed by `edit`.
    static func load(editing file: String, _ edit: (String) -> String) throws -> Result<MappingSet, MappingProblems> {
        var files = try shippedFiles()
        files[file] = edit(try #require(files[file]))
        return Result { () throws(MappingProblems) in try MappingSet(files: files) }
    }

    static func problems(editing file: String, _ edit: (String) -> String) throws -> [String] {
        switch try load(editing: file, edit) {
        case .success: return []
        case .failure(let problems): return problems.errors.map(\.description)
        }
    }

    @Test("the shipped Mappings/ load and round-trip")
    func shipped() throws {
        do {
            let set = try MappingDirectory.load(Self.directory)
            #expect(set.auditRoundTrips() == [])
            #expect(Set(try Self.shippedFiles().keys) == Set(MappingSet.fileNames))
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test("service-unavailable never maps to 503")
    func serviceUnavailable() throws {
        let problems = try Self.problems(editing: "errors-xmpp-to-sip.tsv") {
            $0.replacingOccurrences(of: "service-unavailable\t-\t403\t403", with: "service-unavailable\t-\t503\t403")
        }
        #expect(problems.contains { $0.hasPrefix("errors-xmpp-to-sip.tsv:") && $0.contains("must not map to 503") })
    }

    @Test("a duplicate row is refused with both lines")
    func duplicate() throws {
        let problems = try Self.problems(editing: "chatstates-sip-to-xmpp.tsv") { $0 + "idle\tpaused\tdup\tyes\n" }
        #expect(problems.contains { $0.contains("chatstates-sip-to-xmpp.tsv:") && $0.contains("duplicate row for idle") })
    }

    @Test("a missing row breaks coverage")
    func coverage() throws {
        let problems = try Self.problems(editing: "presence-rpid-to-xmpp.tsv") {
            $0.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("vacation\t") }.joined(separator: "\n")
        }
        #expect(problems == ["presence-rpid-to-xmpp.tsv: no row for vacation: every value must have one"])
    }

    @Test("a target that does not parse is refused")
    func badTarget() throws {
        let problems = try Self.problems(editing: "presence-xmpp-to-pidf.tsv") {
            $0.replacingOccurrences(of: "dnd\topen\tdnd\tbusy", with: "dnd\topen\tdnd\tbusyish")
        }
        #expect(problems.contains { $0.contains("'busyish' is not an RPID activity") })
    }

    @Test("a gap in the Lync ranges is refused")
    func lyncGap() throws {
        let problems = try Self.problems(editing: "presence-lync-to-xmpp.tsv") {
            $0.replacingOccurrences(of: "6000\t7499", with: "6100\t7499")
        }
        #expect(problems.contains { $0.contains("gap: nothing covers 6000...6099") })
    }

    @Test("a header that does not match is refused")
    func header() throws {
        let problems = try Self.problems(editing: "domains.tsv") {
            $0.replacingOccurrences(of: "sip_domain\txmpp_domain\tref\tlossy", with: "sip\txmpp\tref\tlossy")
        }
        #expect(problems.first?.hasPrefix("domains.tsv:") == true)
        #expect(problems.first?.contains("expected sip_domain, xmpp_domain, ref, lossy") == true)
    }

    @Test("the audit catches a one-way row not marked lossy")
    func audit() throws {
        let problems = try Self.problems(editing: "presence-xmpp-to-lync.tsv") {
            $0.replacingOccurrences(of: "xa\t15500\t-\tgg464202 Away; Lync has no extended away\tyes", with: "xa\t15500\t-\tgg464202 Away; Lync has no extended away\tno")
        }
        #expect(problems.count == 1)
        #expect(problems.first?.contains("xa does not round-trip") == true)
    }
}
