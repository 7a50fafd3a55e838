import NIOCore
import Synchronization

/// Work handed to one event loop from other threads, run there in batches. The store's commit
/// thread finishes messages in groups (one group commit), and a `loop.execute` for each of them
/// cost a lock, a task and often an `eventfd` wakeup, per message. Here the first item of a
/// group schedules one task and the rest ride on it; items run in the order they were
/// submitted. A loop that is idle still gets its item at once (the first submit schedules).
public final class LoopInbox: Sendable {
    private struct State {
        var pending: [@Sendable () -> Void] = []
        var scheduled = false
    }

    public let loop: any EventLoop
    private let state = Mutex(State())

    public init(loop: any EventLoop) {
        self.loop = loop
    }

    /// Runs `work` on the loop, after everything submitted before it.
    public func submit(_ work: @escaping @Sendable () -> Void) {
        let schedule = state.withLock { state in
            state.pending.append(work)
            guard !state.scheduled else { return false }
            state.scheduled = true
            return true
        }
        if schedule { loop.execute { self.drain() } }
    }

    private func drain() {
        let batch = state.withLock { state in
            state.scheduled = false
            defer { state.pending = [] }
            return state.pending
        }
        for work in batch { work() }
    }
}
