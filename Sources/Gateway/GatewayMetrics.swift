import Foundation
import XMPPFederation

/// The gateway's counters and gauges, rendered in the Prometheus text format (version 0.0.4)
/// for `/metrics`. Updated from the event loop and read by the HTTP handler, hence the lock;
/// each update is a dictionary write, cheap next to the message it counts.
public final class GatewayMetrics: @unchecked Sendable {
    private let lock = NSLock()
    /// The per-message counters are keyed by their label values, not by the rendered label
    /// text: building that text on every message was two allocations each, for nothing until
    /// a scrape.
    private struct Translation: Hashable { var direction: String, kind: String }
    private var translated: [Translation: Int] = [:]
    private var errors: [String: Int] = [:]
    private var stored: [String: Int] = [:]
    private var linksUp: [String: Int] = [:]
    private var refusals: [String: Int] = [:]
    private var loopStalls = 0
    private var loopLagSeconds = 0.0
    private var sipUDPDrops: UInt64 = 0
    /// Read at scrape time from the store, which is where the queue and the subscriptions are:
    /// counting them again here by hand could only drift from it.
    var queueDepth: @Sendable () -> Int? = { nil }
    var subscriptionCounts: @Sendable () -> [String: Int] = { [:] }

    public init() {}

    func translated(_ direction: String, kind: String, count: Int = 1) {
        lock.withLock { translated[Translation(direction: direction, kind: kind), default: 0] += count }
    }

    /// A message taken into the durable queue.
    func stored(_ direction: String) {
        lock.withLock { stored[direction, default: 0] += 1 }
    }

    public func count(stored direction: String) -> Int {
        lock.withLock { stored[direction] ?? 0 }
    }

    /// A peer or request refused, by kind (certificate, invalid-from, dialback, hostile-xml,
    /// stream, malformed-sip, digest-*, component-secret).
    func refused(_ kind: String) {
        lock.withLock { refusals["kind=\"\(kind)\"", default: 0] += 1 }
    }

    public func count(refused kind: String) -> Int {
        lock.withLock { refusals["kind=\"\(kind)\""] ?? 0 }
    }

    func error(_ kind: String) {
        lock.withLock { errors["kind=\"\(kind)\"", default: 0] += 1 }
    }

    func linkEvent(_ event: S2SEvent) {
        lock.withLock {
            switch event {
            case .outboundUp(_, let remote, _): linksUp["peer=\"\(remote)\",direction=\"outbound\""] = 1
            case .outboundDown(_, let remote, _): linksUp["peer=\"\(remote)\",direction=\"outbound\""] = 0
            // Counted: a peer may hold several inbound streams, and each closes on its own.
            case .inboundAuthenticated(let remote, _): linksUp["peer=\"\(remote)\",direction=\"inbound\"", default: 0] += 1
            case .inboundClosed(let remote):
                let key = "peer=\"\(remote)\",direction=\"inbound\""
                linksUp[key] = max(0, (linksUp[key] ?? 0) - 1)
            case .refused(_, let kind, _): refusals["kind=\"\(kind.rawValue)\"", default: 0] += 1
            case .reconnectDelayed: break
            }
        }
    }

    func componentEvent(_ event: ComponentService.Event, name: String) {
        lock.withLock {
            switch event {
            case .connected: linksUp["peer=\"\(name)\",direction=\"component\""] = 1
            case .disconnected: linksUp["peer=\"\(name)\",direction=\"component\""] = 0
            }
        }
    }

    /// The event loop ran a sampling tick 50 ms or more late.
    func loopStalled() {
        lock.withLock { loopStalls += 1 }
    }

    /// The worst lateness of the event loop in the last second.
    func loopLag(seconds: Double) {
        lock.withLock { loopLagSeconds = seconds }
    }

    /// The kernel's count of datagrams dropped at the SIP UDP socket.
    func udpDrops(_ total: UInt64) {
        lock.withLock { sipUDPDrops = total }
    }

    /// A counter's value, for tests and `/health`.
    public func count(translated direction: String, kind: String) -> Int {
        lock.withLock { translated[Translation(direction: direction, kind: kind)] ?? 0 }
    }

    public var linksUpCount: Int { lock.withLock { linksUp.values.reduce(0, +) } }

    public func render() -> String {
        let depth = queueDepth()
        let subscriptions = Dictionary(uniqueKeysWithValues: subscriptionCounts().map { ("direction=\"\($0.key)\"", $0.value) })
        return lock.withLock {
            var out = ""
            func family(_ name: String, _ type: String, _ help: String, _ values: [String: Int]) {
                out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
                for (labels, value) in values.sorted(by: { $0.key < $1.key }) { out += "\(name){\(labels)} \(value)\n" }
            }
            family("stox_messages_translated_total", "counter", "Stanzas and SIP requests translated across the gateway.",
                   Dictionary(uniqueKeysWithValues: translated.map { ("direction=\"\($0.key.direction)\",kind=\"\($0.key.kind)\"", $0.value) }))
            family("stox_messages_stored_total", "counter", "Messages taken into the durable queue (acknowledged to their sender).",
                   Dictionary(uniqueKeysWithValues: stored.map { ("direction=\"\($0.key)\"", $0.value) }))
            family("stox_errors_total", "counter", "Failures by kind (translation, store, SIP status, XMPP bounces).", errors)
            family("stox_refusals_total", "counter", "Peers and requests refused, by kind; each also leaves one log line with who and why.", refusals)
            family("stox_xmpp_links_up", "gauge", "XMPP links authenticated, per peer and direction.", linksUp)
            family("stox_subscriptions", "gauge", "Presence subscriptions across the gateway.", subscriptions)
            func single(_ name: String, _ type: String, _ help: String, _ value: String) {
                out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
            }
            single("stox_event_loop_stalls_total", "counter", "Times the event loop ran a 100 ms sampling tick 50 ms or more late.", "\(loopStalls)")
            single("stox_event_loop_lag_seconds", "gauge", "The event loop's worst lateness in the last second.", "\(loopLagSeconds)")
            single("stox_sip_udp_drops_total", "counter", "Datagrams the kernel dropped at the SIP UDP socket (receive buffer full).", "\(sipUDPDrops)")
            single("stox_queue_depth", "gauge", "Messages in the durable queue not yet delivered.", "\(depth ?? -1)")
            return out
        }
    }
}
