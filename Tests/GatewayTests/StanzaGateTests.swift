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
        // A peer that starts sending the moment the listener is up: 500 stanzas before the
        // gateway is ready, and more while it opens.
        for n in 0..<500 { gate.stanza(Self.message(n)) { acknowledged.withLock { $0 += 1 } } }
        let sender = Task.detached {
            for n in 500..<2_000 {
                gate.stanza(Self.message(n)) { acknowledged.withLock { $0 += 1 } }
                if n % 100 == 0 { await Task.yield() }
            }
        }
        let held = gate.open { element, handled in
            delivered.withLock { $0.append(element.attribute("id") ?? "?") }
            handled()
        }
        await sender.value
        #expect(held >= 500, "what came before the gateway was ready waited for it")
        let ids = delivered.withLock { $0 }
        #expect(ids == (0..<2_000).map { "m\($0)" }, "every stanza once, in order")
        #expect(acknowledged.withLock { $0 } == 2_000, "every stanza marked handled (XEP-0198)")
        #expect(gate.held == 0)
    }
}
