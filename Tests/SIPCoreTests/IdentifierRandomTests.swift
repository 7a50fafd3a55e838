import SIPCore
import Testing

/// Tags, branches and Call-IDs come from a pool refilled by the kernel's generator: they must
/// still look and behave like fresh random identifiers (RFC 3261 §19.3, §8.1.1.4, §8.1.1.7).
struct IdentifierRandomTests {
    @Test("tags and Call-IDs do not repeat across many pool refills, and Call-IDs are 32 lowercase hex digits")
    func distinct() {
        var tags = Set<String>(), callIDs = Set<String>()
        for _ in 0..<20_000 {
            tags.insert(SIPNameAddress.makeTag())
            let callID = IdentifierRandom.hex128()
            #expect(callID.utf8.count == 32 && callID.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }, "\(callID)")
            callIDs.insert(callID)
        }
        #expect(tags.count == 20_000)
        #expect(callIDs.count == 20_000)
    }

    @Test("the bits are spread: every hex digit position takes many values")
    func spread() {
        let samples = (0..<2_000).map { _ in Array(IdentifierRandom.hex128().utf8) }
        for position in 0..<32 {
            let values = Set(samples.map { $0[position] })
            #expect(values.count == 16, "position \(position) took \(values.count) values")
        }
    }
}
