import Foundation
import Logging
import NIOCore

/// Two failures nobody sees from outside unless the gateway says so: the event loop held up
/// (every message waits behind it, and over UDP the kernel drops whatever no longer fits the
/// socket's receive buffer), and datagrams the kernel dropped at the SIP UDP socket, which
/// reach no handler and so leave no other trace. The loop is sampled every `period`, the
/// kernel's drop counter every second; each becomes a metric, and a warning line at most every
/// 10 s with the count since the previous one.
final class LoopWatchdog: @unchecked Sendable {
    // Loop-bound: touched only from `loop` (started and stopped there, ticks run there).
    private let loop: any EventLoop
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let udpPort: Int?
    private static let period = TimeAmount.milliseconds(100)
    private static let stall = TimeAmount.milliseconds(50)
    private var task: RepeatedTask?
    private var last = NIODeadline.now()
    private var ticks = 0
    private var windowMax = TimeAmount.zero
    private var stallsSinceWarning = 0, worstSinceWarning = TimeAmount.zero
    private var lastLoopWarning = NIODeadline.distantPast, lastDropWarning = NIODeadline.distantPast
    private var dropsWarned: UInt64 = 0

    init(loop: any EventLoop, metrics: GatewayMetrics, logger: Logger, udpPort: Int?) {
        self.loop = loop
        self.metrics = metrics
        self.logger = logger
        self.udpPort = udpPort
    }

    func start() {
        loop.preconditionInEventLoop()
        last = .now()
        task = loop.scheduleRepeatedTask(initialDelay: Self.period, delay: Self.period) { [self] _ in tick() }
    }

    func stop() {
        loop.preconditionInEventLoop()
        task?.cancel()
    }

    private func tick() {
        let now = NIODeadline.now()
        let lag = max(.zero, now - last - Self.period)
        last = now
        ticks += 1
        windowMax = max(windowMax, lag)
        if lag >= Self.stall {
            metrics.loopStalled()
            stallsSinceWarning += 1
            worstSinceWarning = max(worstSinceWarning, lag)
        }
        if stallsSinceWarning > 0, now - lastLoopWarning >= .seconds(10) {
            logger.warning("the event loop was held up: messages waited, and SIP over UDP may have lost datagrams", metadata: [
                "component": "loop", "worst_ms": "\(worstSinceWarning.nanoseconds / 1_000_000)",
                "stalls_over_50ms": "\(stallsSinceWarning)",
            ])
            lastLoopWarning = now
            stallsSinceWarning = 0
            worstSinceWarning = .zero
        }
        guard ticks % 10 == 0 else { return }
        // Once a second: the worst lag of the last second, and the kernel's drop counter.
        metrics.loopLag(seconds: Double(windowMax.nanoseconds) / 1e9)
        windowMax = .zero
        guard let udpPort, let total = Self.udpDrops(port: udpPort) else { return }
        metrics.udpDrops(total)
        let warned = dropsWarned
        if total > warned, now - lastDropWarning >= .seconds(10) {
            logger.warning("the kernel dropped SIP datagrams at the UDP socket: its receive buffer was full", metadata: [
                "component": "sip", "dropped": "\(total - warned)", "port": "\(udpPort)",
                "hint": "a held-up loop or more load than it carries; sip.udp_receive_buffer sets the buffer",
            ])
            lastDropWarning = now
            dropsWarned = total
        }
    }

    /// The kernel's drop count, summed over the UDP sockets bound to `port` (IPv4 and IPv6).
    static func udpDrops(port: Int) -> UInt64? {
        var total: UInt64?
        for path in ["/proc/net/udp", "/proc/net/udp6"] {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                  let drops = udpDrops(procNetUDP: text, port: port) else { continue }
            total = (total ?? 0) + drops
        }
        return total
    }

    /// The same, from the text of /proc/net/udp or udp6: the local address is `ADDR:PORT` in
    /// hex, and the drop count is the last column.
    static func udpDrops(procNetUDP text: String, port: Int) -> UInt64? {
        let suffix = ":" + String(format: "%04X", port)
        var total: UInt64?
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 13, fields[1].hasSuffix(suffix), let drops = UInt64(fields[fields.count - 1]) else { continue }
            total = (total ?? 0) + drops
        }
        return total
    }
}
