import Foundation
import GatewayStore
import NIOCore
import NIOPosix
import SIPCore
import SIPEdge
import Synchronization

/// Figures for what floods and long runs cost (printed, never asserted):
/// - `timers`: the SIP edge takes N UDP MESSAGEs (answered 200 at once, so each leaves a
///   Completed transaction until Timer J); RSS per completed transaction, then the CPU the
///   wave of Timer J expiries costs and the longest the event loop was held up meanwhile.
/// - `store`: N messages through the durable queue (enqueue, acknowledge, background prune at a
///   zero retention), with the database and WAL sizes along the way.
enum HardeningBench {
    static func rssKiB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    // MARK: Timers

    static func timers(count: Int) async throws {
        #if DEBUG
        print("warning: debug build; run `swift run -c release stox-bench timers` for meaningful figures")
        #endif
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // T1 = 100 ms: Timer J (64*T1) is 6.4 s instead of 32 s; the work per expiry is the same.
        let timers = SIPTimerValues(t1: .milliseconds(100), t2: .milliseconds(400), t4: .milliseconds(500))
        let edge = try await SIPEdge.start(
            SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: nil, tlsPort: nil, timers: timers),
            handlers: SIPEdgeHandlers(request: { $0.respond($0.request.makeResponse(200, toTag: "b")) }),
            group: group)
        let port = edge.udpAddress!.port!
        let socket = try BenchUDPSocket()
        let rssBefore = rssKiB()
        let intakeStart = ContinuousClock.now
        var sent = 0
        while sent < count {
            let batch = min(1_000, count - sent)
            for index in sent..<(sent + batch) {
                socket.send("""
                    MESSAGE sip:bob@stox.example SIP/2.0\r
                    Via: SIP/2.0/UDP 127.0.0.1:\(socket.port);branch=z9hG4bKtimer\(index);rport\r
                    Max-Forwards: 70\r
                    From: <sip:alice@corp.example>;tag=a\(index)\r
                    To: <sip:bob@stox.example>\r
                    Call-ID: timer\(index)@corp.example\r
                    CSeq: 1 MESSAGE\r
                    Content-Type: text/plain\r
                    Content-Length: 5\r
                    \r
                    hello
                    """, to: port)
            }
            sent += batch
            socket.drain()
            // Keep the socket buffer from overflowing: wait until the edge has caught up.
            var last = -1, stalledSince = ContinuousClock.now
            while true {
                let live = await edge.liveTransactionCount()
                if live >= sent - 2_000 { break }
                // A datagram lost in the kernel never arrives: go on once the edge stops moving.
                if live != last { last = live; stalledSince = .now } else if ContinuousClock.now - stalledSince > .seconds(1) { break }
                socket.drain()
                try await Task.sleep(for: .milliseconds(2))
            }
        }
        let intake = seconds(ContinuousClock.now - intakeStart)
        let peak = await edge.liveTransactionCount()
        let rssPeak = rssKiB()
        print("SIP edge, \(count) UDP MESSAGEs answered 200: \(Int(Double(count) / intake)) req/s intake; \(peak) Completed transactions held")
        print("  RSS: \(rssBefore / 1024) MiB before, \(rssPeak / 1024) MiB with them: \((rssPeak - rssBefore) * 1024 / max(peak, 1)) bytes per completed transaction")
        // The expiry wave: a 1 ms probe on the edge's loop measures how late it runs.
        let loop = edge.eventLoop
        let lateness = Mutex<(worst: Int64, expected: NIODeadline)>((0, .now() + .milliseconds(1)))
        let probe = try await loop.submit {
            lateness.withLock { $0.expected = .now() + .milliseconds(1) }
            return loop.scheduleRepeatedTask(initialDelay: .milliseconds(1), delay: .milliseconds(1)) { _ in
                lateness.withLock { state in
                    state.worst = max(state.worst, (NIODeadline.now() - state.expected).nanoseconds)
                    state.expected = .now() + .milliseconds(1)
                }
            }
        }.get()
        let cpuStart = cpuSeconds()
        let waveStart = ContinuousClock.now
        var firstExpiry: ContinuousClock.Instant?
        while true {
            let live = await edge.liveTransactionCount()
            if live < peak, firstExpiry == nil { firstExpiry = .now }
            if live == 0 || ContinuousClock.now - waveStart > .seconds(120) { break }
            socket.drain()
            try await Task.sleep(for: .milliseconds(5))
        }
        let cpu = cpuSeconds() - cpuStart
        probe.cancel()
        let wave = seconds(ContinuousClock.now - (firstExpiry ?? waveStart))
        let worst = Double(lateness.withLock { $0.worst }) / 1e6
        print("  expiring all \(peak): over \(String(format: "%.2f", wave)) s, \(String(format: "%.0f", cpu * 1000)) ms CPU in all"
            + " (\(String(format: "%.2f", cpu * 1e6 / Double(max(peak, 1)))) µs each, polling included); longest loop delay \(String(format: "%.1f", worst)) ms")
        await edge.stop()
        try await group.shutdownGracefully()
    }

    // MARK: Store

    static func store(count: Int) async throws {
        #if DEBUG
        print("warning: debug build; run `swift run -c release stox-bench store` for meaningful figures")
        #endif
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stox-bench-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try GatewayStore(path: directory.appendingPathComponent("stox.sqlite").path)
        let queue = OutboundQueue(store: store)
        let payload = Array(String(repeating: "x", count: 600).utf8)
        let batch = 10_000
        let report = max(batch, count / 10)
        print("Durable queue, \(count) messages of 600 bytes: enqueue (group commit), acknowledge, prune (retention 0)")
        print("  messages      msg/s    rows kept   database     WAL")
        let start = ContinuousClock.now
        var done = 0
        var peak = (database: 0, wal: 0)
        while done < count {
            let base = done
            let ids = try await withThrowingTaskGroup(of: Int64?.self) { group in
                for n in 0..<batch {
                    let message = OutboundMessage(direction: "sip-to-xmpp", messageID: "b\(base + n)", destination: "juliet@xmpp.test", payload: payload)
                    group.addTask { try await queue.enqueue(message).id }
                }
                return try await group.reduce(into: [Int64]()) { if let id = $1 { $0.append(id) } }
            }
            try queue.acknowledge(ids)
            done += batch
            if done % (batch * 5) == 0 || done >= count {
                // What the gateway's background prune does on its schedule.
                try queue.prune(deliveredBefore: Date(timeIntervalSinceNow: 1))
                store.checkpoint()
            }
            let size = store.sizeOnDisk()
            peak = (max(peak.database, size.database), max(peak.wal, size.wal))
            if done % report == 0 || done >= count {
                let rate = Double(done) / seconds(ContinuousClock.now - start)
                print("  \(String(done).leftPadding(8))  \(String(Int(rate)).leftPadding(9))  \(String(try queue.rowCount()).leftPadding(11))"
                    + "  \(String(size.database / 1024).leftPadding(7)) KiB \(String(size.wal / 1024).leftPadding(7)) KiB")
            }
        }
        print("  peak on disk: database \(peak.database / 1024) KiB, WAL \(peak.wal / 1024) KiB")
    }
}

/// A blocking UDP socket on loopback for the bench's load.
final class BenchUDPSocket {
    let fd: Int32
    let port: Int
    private var buffer = [UInt8](repeating: 0, count: 65536)

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: local.sin_port))
    }

    deinit { close(fd) }

    func send(_ text: String, to port: Int) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bytes = Array(text.utf8)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

    /// Reads and discards the responses waiting (non-blocking).
    func drain() {
        while recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
    }
}
