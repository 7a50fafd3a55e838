import NIOCore
import SIPCore

/// Every transaction timer of one `SIPTransactionCore`, in one binary min-heap swept by a single
/// NIO task.
///
/// Why not one `Scheduled` per transaction: SwiftNIO cancels a scheduled task by searching its
/// timer heap linearly, and a transaction cancels its timer each time it re-arms or ends. After a
/// flood of tens of thousands of UDP transactions, each Timer J expiry then cost O(n) and the wave
/// of expiries O(n²): the loop stalled for minutes. Here arming is a push (O(log n)), expiry is a
/// pop (O(log n)), and disarming costs nothing: an entry carries the generation it was armed with,
/// and an entry whose transaction has since re-armed or ended is discarded when it comes up. When
/// such stale entries outnumber live ones the heap is rebuilt without them, so memory follows the
/// live timer count (O(n) amortised over the disarms that made them stale).
struct DeadlineHeap<Target: Hashable> {
    struct Entry {
        var deadline: SIPInstant
        var target: Target
        var generation: UInt64
    }

    private(set) var entries: [Entry] = []
    /// Entries known to be stale (their timer was disarmed or re-armed) still in the heap.
    private(set) var staleCount = 0

    var count: Int { entries.count }
    var earliest: SIPInstant? { entries.first?.deadline }

    mutating func push(_ entry: Entry) {
        entries.append(entry)
        siftUp(entries.count - 1)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popDue(now: SIPInstant) -> Entry? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            siftDown(0)
        }
        return first
    }

    /// One entry became stale. `isLive` is asked only when the heap is rebuilt.
    mutating func noteStale(isLive: (Entry) -> Bool) {
        staleCount += 1
        if staleCount > 1024, staleCount > entries.count / 2 {
            entries.removeAll(where: { !isLive($0) })
            staleCount = 0
            heapify()
        }
    }

    /// A stale entry left the heap by being popped.
    mutating func stalePopped() {
        if staleCount > 0 { staleCount -= 1 }
    }

    mutating func removeAll() {
        entries.removeAll()
        staleCount = 0
    }

    private mutating func heapify() {
        guard entries.count > 1 else { return }
        for index in stride(from: entries.count / 2 - 1, through: 0, by: -1) { siftDown(index) }
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        let entry = entries[child]
        while child > 0 {
            let parent = (child - 1) / 2
            guard entry.deadline < entries[parent].deadline else { break }
            entries[child] = entries[parent]
            child = parent
        }
        entries[child] = entry
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        let entry = entries[parent]
        let count = entries.count
        while true {
            var child = 2 * parent + 1
            guard child < count else { break }
            if child + 1 < count, entries[child + 1].deadline < entries[child].deadline { child += 1 }
            guard entries[child].deadline < entry.deadline else { break }
            entries[parent] = entries[child]
            parent = child
        }
        entries[parent] = entry
    }
}
