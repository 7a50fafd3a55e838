import Foundation
import Histogram
import NIOCore

/// Keeps a load going and measures it, on one event loop. Closed loop: at most `window`
/// messages in flight end to end, topped up in bursts (one flush per burst). Open loop: a fixed
/// `rate`, each message's latency counted from when it was due, not from when it left, so a
/// stall shows in the figures instead of slowing the load (no coordinated omission). A message
/// completes when it arrives at the far side; each sequence number is counted once, and a second
/// arrival is a duplicate.
final class LoadDriver: @unchecked Sendable {
    let loop: any EventLoop
    /// Writes message `sequence`; `flush` sends the burst.
    var send: (Int) -> Void = { _ in }
    var flush: () -> Void = {}

    private(set) var sent = 0
    private(set) var completed = 0
    private(set) var duplicates = 0
    var errors = 0
    private var dueAt: [UInt64] = []
    private var seen: [Bool] = []
    /// Microseconds, up to two minutes.
    private(set) var latency = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
    private var window = 0
    private var running = false
    private var perSecond: [Int] = []
    private var lastCount = 0
    private var pacer: RepeatedTask?

    /// Added to every sequence number, so that a straggler from an earlier run is not taken
    /// for one of this run's.
    let base: Int

    init(loop: any EventLoop, base: Int) {
        self.loop = loop
        self.base = base
    }

    struct Result {
        var seconds: Double
        var sent: Int
        var completed: Int
        var duplicates: Int
        var errors: Int
        /// Completions per second over the run (only those inside it).
        var rate: Double
        /// Completions in each whole second of the run.
        var perSecond: [Int]
        var p50: Double, p99: Double, p999: Double, max: Double
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Called on `loop` when message `sequence` arrives at the far side.
    func complete(_ numbered: Int) {
        let sequence = numbered - base
        guard sequence >= 0, sequence < sent else { errors += 1; return }
        if seen[sequence] {
            duplicates += 1
            return
        }
        seen[sequence] = true
        completed += 1
        let elapsed = Self.now() &- dueAt[sequence]
        _ = latency.record(elapsed / 1000)
        if running, window > 0, sent - completed - failed <= window - Swift.max(1, window / 4) { pump() }
    }

    /// Called on `loop` when message `sequence` was refused on the way: it counts as an error,
    /// not as an arrival, and its place in the window is free again.
    func fail(_ numbered: Int) {
        let sequence = numbered - base
        errors += 1
        guard sequence >= 0, sequence < sent, !seen[sequence] else { return }
        seen[sequence] = true
        failed += 1
        if running, window > 0, sent - completed - failed <= window - Swift.max(1, window / 4) { pump() }
    }

    private(set) var failed = 0

    private func emit(dueAt time: UInt64) {
        dueAt.append(time)
        seen.append(false)
        send(base + sent)
        sent += 1
    }

    private func pump() {
        let now = Self.now()
        var wrote = false
        while sent - completed - failed < window {
            emit(dueAt: now)
            wrote = true
        }
        if wrote { flush() }
    }

    /// Runs for `seconds` with `window` in flight (closed loop) or at `rate` per second (open
    /// loop), then waits up to `drain` seconds for what is still in flight.
    func run(seconds: Double, window: Int = 0, rate: Double? = nil, drain: Double = 30) async throws -> Result {
        let start: UInt64 = try await loop.submit { [self] in
            self.window = window
            running = true
            lastCount = 0
            latency.reset()
            let start = Self.now()
            if rate == nil { pump() }
            return start
        }.get()
        if let rate {
            // Every millisecond, send what is due by now; each is stamped with when it was due.
            let pacer = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(1)) { [self] _ in
                guard running else { return }
                let now = Self.now()
                let due = Int(Double(now - start) / 1e9 * rate)
                guard due > sent else { return }
                while sent < due { emit(dueAt: start + UInt64(Double(sent) / rate * 1e9)) }
                flush()
            }
            try await loop.submit { self.pacer = pacer }.get()
        }
        let sampler = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
            guard running else { return }
            perSecond.append(completed - lastCount)
            lastCount = completed
        }
        try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        let (inRun, end) = try await loop.submit { [self] in
            running = false
            pacer?.cancel()
            sampler.cancel()
            return (completed, Self.now())
        }.get()
        let deadline = Date().addingTimeInterval(drain)
        while Date() < deadline {
            let done = try await loop.submit { [self] in completed + failed >= sent }.get()
            if done { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await loop.submit { [self] in
            let elapsed = Double(end - start) / 1e9
            return Result(seconds: elapsed, sent: sent, completed: completed, duplicates: duplicates, errors: errors,
                          rate: Double(inRun) / elapsed, perSecond: perSecond,
                          p50: Double(latency.valueAtPercentile(50)) / 1000, p99: Double(latency.valueAtPercentile(99)) / 1000,
                          p999: Double(latency.valueAtPercentile(99.9)) / 1000, max: Double(latency.max) / 1000)
        }.get()
    }
}
