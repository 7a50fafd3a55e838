import Foundation
import Gateway
import Synchronization
import Testing
import XMLCore

@Suite("Stanzas that arrive while the gateway starts")
struct StanzaGateTests {
    static func message(_ n: Int) -> XMLElement {
        XMLElement("message", namespace: "jabber:server", attributes: ["from": "alice@a.test/r", "to": "bob@sip.test", "id": "m\(n)"])
    }

    @Test("held until the gateway is ready, then each handled once, in arrival order, before any later stanza; none dropped")
    func heldThenHandled() async throws {
        let gate = StanzaGate()
        let delivered = Mutex<[String]>([])
        let acknowledged = Mutex(0)
        // A peer that starts sending the moment the listener is up, while the gateway restores.
        let sender = Task.detached {
            for n in 0..<2_000 {
                gate.stanza(Self.message(n)) { acknowledged.withLock { $0 += 1 } }
                if n % 100 == 0 { await Task.yield() }
            }
        }
        try await Task.sleep(for: .milliseconds(5))
        let held = gate.open { element, handled in
            delivered.withLock { $0.append(element.attribute("id") ?? "?") }
            handled()
        }
        await sender.value
        #expect(held > 0, "the test should catch stanzas before the gateway is ready")
        let ids = delivered.withLock { $0 }
        #expect(ids == (0..<2_000).map { "m\($0)" }, "every stanza once, in order")
        #expect(acknowledged.withLock { $0 } == 2_000, "every stanza marked handled (XEP-0198)")
        #expect(gate.held == 0)
    }
}
