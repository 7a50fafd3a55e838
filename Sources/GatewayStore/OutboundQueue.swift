import Dispatch
import Foundation
import GRDB

/// A message waiting to cross the gateway, as stored.
public struct QueuedMessage: Hashable, Sendable {
    public var id: Int64
    /// "sip-to-xmpp" or "xmpp-to-sip" (any label: the queue does not interpret it).
    public var direction: String
    /// The sender's identity for the message (a stanza id, a SIP Call-ID and CSeq): the key that
    /// makes enqueueing the same message twice harmless.
    public var messageID: String
    public var destination: String
    public var payload: [UInt8]
    public var attempts: Int
    public var enqueuedAt: Date
    public var notBefore: Date
}

/// What a producer hands the queue.
public struct OutboundMessage: Hashable, Sendable {
    public var direction: String
    public var messageID: String
    public var destination: String
    public var payload: [UInt8]

    public init(direction: String, messageID: String, destination: String, payload: [UInt8]) {
        self.direction = direction
        self.messageID = messageID
        self.destination = destination
        self.payload = payload
    }
}

/// The durable outbound queue with group commit: enqueues that arrive while a write is in
/// progress are committed together in the next transaction, so a burst costs one commit per
/// batch instead of one per message, and batches grow with the load by themselves. A message
/// at low load is committed at once, not held back for company (a 2 ms window once was most of
/// the gateway's median latency). Under sustained load, though, committing at once gave
/// batches of one or two: a commit (BEGIN, the WAL frames, their share of checkpoints) costs far
/// more than an insert, and at 8,000 messages/s it was half of the store thread's time. So a
/// commit follows the previous one by at least `commitInterval`: idle, a message is written at
/// once; busy, each commit takes what one interval gathered. A producer's completion runs only
/// after its message is committed: acknowledging the sender then never loses a message to a crash.
///
/// Thread-safety: the pending batch is guarded by `lock`; writes run on one serial queue.
public final class OutboundQueue: @unchecked Sendable {
    public enum Enqueued: Hashable, Sendable {
        /// Written, as this row (what `acknowledge` and `retry` take).
        case stored(id: Int64)
        /// The same (direction, messageID) is already queued or was: nothing written.
        case duplicate

        public var id: Int64? {
            if case .stored(let id) = self { return id }
            return nil
        }
    }

    private let store: GatewayStore
    private let writes = DispatchQueue(label: "stox.outbound.commit")
    private let lock = NSLock()
    private var pending: [(OutboundMessage, @Sendable (Result<Enqueued, any Error>) -> Void)] = []
    /// Rows delivered and not yet marked: they ride the next group commit.
    private var delivered: [Int64] = []
    private var flushScheduled = false
    /// When the last commit ended (uptime nanoseconds); guarded by `lock`.
    private var lastCommitEnd: UInt64 = 0
    private let commitInterval: UInt64
    private var committed = 0
    /// Transactions committed (for tests and metrics).
    public var commits: Int {
        lock.lock()
        defer { lock.unlock() }
        return committed
    }

    /// `commitInterval`: the least time between the end of one commit and the start of the
    /// next. 1 ms adds at most 1 ms to a message under load, and none when the queue is idle.
    public init(store: GatewayStore, commitInterval: Duration = .milliseconds(1)) {
        self.store = store
        let (seconds, attoseconds) = commitInterval.components
        self.commitInterval = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    /// Queues a message; `completion` runs (on the commit queue) once it is durable.
    public func enqueue(_ message: OutboundMessage, completion: @escaping @Sendable (Result<Enqueued, any Error>) -> Void) {
        lock.lock()
        pending.append((message, completion))
        let schedule = scheduleFlushLocked()
        lock.unlock()
        // One flush scheduled at a time: it takes everything pending when it runs, including
        // what arrived while the previous commit was under way.
        if let schedule { startFlush(after: schedule) }
    }

    /// Under `lock`: nil when a flush is already scheduled, else how long to wait before it.
    private func scheduleFlushLocked() -> UInt64? {
        guard !flushScheduled else { return nil }
        flushScheduled = true
        let now = DispatchTime.now().uptimeNanoseconds
        let earliest = lastCommitEnd &+ commitInterval
        return lastCommitEnd == 0 || now >= earliest ? 0 : earliest - now
    }

    private func startFlush(after wait: UInt64) {
        writes.async {
            // The commit thread waits out the interval itself. `asyncAfter` cost a timer in
            // GCD's manager thread, its epoll and an eventfd wakeup for every commit: 8% of the
            // store's CPU at 10,000 messages/s. The queue is serial and only commits run on it.
            if wait > 0 {
                var pause = timespec(tv_sec: Int(wait / 1_000_000_000), tv_nsec: Int(wait % 1_000_000_000))
                var left = timespec()
                while nanosleep(&pause, &left) != 0 && errno == EINTR { pause = left }
            }
            self.flush()
        }
    }

    public func enqueue(_ message: OutboundMessage) async throws -> Enqueued {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(message) { continuation.resume(with: $0) }
        }
    }

    /// Marks a row delivered in the next group commit, with whatever enqueues gather meanwhile.
    /// A separate transaction on another queue would contend with the commits for SQLite's
    /// write lock, and its busy-wait backoff let the mark trail the delivery by over a second:
    /// a crash in that window delivered the message again. Here the window is one commit.
    public func markDelivered(_ id: Int64) {
        lock.lock()
        delivered.append(id)
        let schedule = scheduleFlushLocked()
        lock.unlock()
        if let schedule { startFlush(after: schedule) }
    }

    /// Commits whatever is pending now and returns once it is
    /// written (graceful shutdown: nothing acknowledged to a sender stays in memory).
    public func flushNow() {
        writes.sync { flush() }
    }

    /// Writes everything pending in one transaction. Runs on `writes`.
    private func flush() {
        lock.lock()
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        let marks = delivered
        delivered.removeAll(keepingCapacity: true)
        flushScheduled = false
        lock.unlock()
        guard !batch.isEmpty || !marks.isEmpty else { return }
        let now = Date().timeIntervalSince1970
        let outcome = Result { () throws -> [Enqueued] in
            try store.write { db in
                for id in marks {
                    try db.cachedStatement(sql: "UPDATE outbound SET delivered_at = ?, payload = x'' WHERE id = ?")
                        .execute(arguments: [now, id])
                }
                return try batch.map { message, _ in
                    // A cached statement: compiling the SQL (and GRDB's authorizer pass over it)
                    // cost more than the insert itself, once per message.
                    try db.cachedStatement(sql: """
                        INSERT OR IGNORE INTO outbound (direction, message_id, destination, payload, enqueued_at, not_before)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """).execute(arguments: [message.direction, message.messageID, message.destination, Data(message.payload), now, now])
                    return db.changesCount == 1 ? .stored(id: db.lastInsertedRowID) : .duplicate
                }
            }
        }
        lock.lock()
        committed += 1
        lastCommitEnd = DispatchTime.now().uptimeNanoseconds
        lock.unlock()
        switch outcome {
        case .success(let results):
            for (index, (_, completion)) in batch.enumerated() { completion(.success(results[index])) }
        case .failure(let error):
            for (_, completion) in batch { completion(.failure(error)) }
        }
    }

    /// Up to `limit` messages of `direction` due now, oldest first.
    public func due(direction: String, limit: Int = 256, now: Date = Date()) throws -> [QueuedMessage] {
        try store.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM outbound WHERE direction = ? AND delivered_at IS NULL AND not_before <= ? ORDER BY id LIMIT ?
                """, arguments: [direction, now.timeIntervalSince1970, limit]).map { row in
                QueuedMessage(id: row["id"], direction: row["direction"], messageID: row["message_id"], destination: row["destination"],
                              payload: Array((row["payload"] as Data?) ?? Data()), attempts: row["attempts"],
                              enqueuedAt: Date(timeIntervalSince1970: row["enqueued_at"]),
                              notBefore: Date(timeIntervalSince1970: row["not_before"]))
            }
        }
    }

    /// Delivered: out of the queue, kept as a tombstone so that the same message enqueued
    /// again (a sender retrying after a lost acknowledgement) is recognised. The payload is
    /// dropped at once: the tombstone needs only the key. One transaction.
    public func acknowledge(_ ids: [Int64], at date: Date = Date()) throws {
        guard !ids.isEmpty else { return }
        try store.write { db in
            for id in ids {
                try db.cachedStatement(sql: "UPDATE outbound SET delivered_at = ?, payload = x'' WHERE id = ?")
                    .execute(arguments: [date.timeIntervalSince1970, id])
            }
        }
    }

    /// Forgets tombstones of messages delivered before `date`, in transactions of at most
    /// `batch` rows so that the group commit is never held up for long; returns how many.
    @discardableResult
    public func prune(deliveredBefore date: Date, batch: Int = 5_000) throws -> Int {
        var total = 0
        while true {
            let removed = try store.write { db in
                try db.cachedStatement(sql: """
                    DELETE FROM outbound WHERE id IN
                      (SELECT id FROM outbound WHERE delivered_at IS NOT NULL AND delivered_at < ? LIMIT ?)
                    """).execute(arguments: [date.timeIntervalSince1970, batch])
                return db.changesCount
            }
            total += removed
            if removed < batch { return total }
        }
    }

    /// Payload bytes kept in every row (for tests).
    public func storedPayloadBytes() throws -> Int {
        try store.read { db in try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbound") ?? 0 }
    }

    /// Rows kept, delivered or not (for the bench and tests).
    public func rowCount() throws -> Int {
        try store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbound") ?? 0 }
    }

    /// Not delivered this time: try again no earlier than `notBefore`.
    public func retry(_ id: Int64, notBefore: Date) throws {
        try store.write { db in
            try db.execute(sql: "UPDATE outbound SET attempts = attempts + 1, not_before = ? WHERE id = ?",
                           arguments: [notBefore.timeIntervalSince1970, id])
        }
    }

    public func depth() throws -> Int {
        try store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbound WHERE delivered_at IS NULL") ?? 0 }
    }
}
