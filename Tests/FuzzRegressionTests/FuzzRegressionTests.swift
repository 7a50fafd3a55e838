import Foundation
import FuzzTargets
import StoxTesting
import Testing

/// Replays every input the fuzzers ever failed on (`Tests/Fuzz/regressions/<target>/`) and every
/// golden fixture through the fuzz targets, whose invariants (no trap, round trips, split
/// independence) must hold for them all.
struct FuzzRegressionTests {
    static let root = Golden.repositoryRoot.appendingPathComponent("Tests/Fuzz/regressions")

    static func regressions(_ target: String) -> [String] {
        FuzzReplay.inputs(at: root.appendingPathComponent(target).path)
    }

    static func replay(_ files: [String], _ body: (UnsafeRawBufferPointer) -> Void) throws {
        for file in files {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            data.withUnsafeBytes { body($0) }
        }
    }

    @Test("the regression folders exist for each target")
    func folders() {
        for target in ["sip", "xml", "pidf"] {
            #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(target).path))
        }
    }

    @Test("SIP parser: saved crashes and every SIP fixture")
    func sip() throws {
        let seeds = FuzzReplay.inputs(at: Golden.directory("sip-wire").path).filter { $0.hasSuffix(".sip") }
        #expect(seeds.count >= 49)
        try Self.replay(Self.regressions("sip") + seeds, FuzzTargets.sipParser)
    }

    @Test("XML stream parser: saved crashes and every stanza fixture")
    func xml() throws {
        let seeds = FuzzReplay.inputs(at: Golden.directory("xmpp-wire").path).filter { $0.hasSuffix(".xml") }
        #expect(seeds.count >= 25)
        try Self.replay(Self.regressions("xml") + seeds, FuzzTargets.xmlStream)
    }

    @Test("PIDF parser: saved crashes and every body fixture")
    func pidf() throws {
        let seeds = FuzzReplay.inputs(at: Golden.directory("bodies").path).filter { $0.hasSuffix(".xml") }
        #expect(seeds.count >= 10)
        try Self.replay(Self.regressions("pidf") + seeds, FuzzTargets.pidf)
    }
}
