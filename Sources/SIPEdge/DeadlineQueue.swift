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
///
/// The heap holds plain values only (deadline, generation, slot); the targets, which hold
/// transaction keys (strings), sit in a slab beside it. A sift moves about twenty entries in a
/// heap of a few hundred thousand timers (at 10,000 UDP transactions a second, Timer F's stale
/// entries stay for 32 s), and with the key inside each entry every move retained and released
/// its strings: 3% of the event loop.
struct DeadlineHeap<Target> {
    struct Entry {
        var deadline: SIPInstant
        var generation: UInt64
        /// Where the target is in `targets`.
        var slot: Int
    }

    private(set) var entries: [Entry] = []
    private var targets: [Target?] = []
    private var freeSlots: [Int] = []
    /// Entries known to be stale (their timer was disarmed or re-armed) still in the heap.
    private(set) var staleCount = 0

    var count: Int { entries.count }
    var earliest: SIPInstant? { entries.first?.deadline }

    mutating func push(_ target: Target, at deadline: SIPInstant, generation: UInt64) {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            targets[slot] = target
        } else {
            slot = targets.count
            targets.append(target)
        }
        entries.append(Entry(deadline: deadline, generation: generation, slot: slot))
        siftUp(entries.count - 1)
    }

    /// Removes and returns the earliest entry's target and generation if it is due at `now`.
    mutating func popDue(now: SIPInstant) -> (target: Target, generation: UInt64)? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            siftDown(0)
        }
        return (release(first.slot), first.generation)
    }

    private mutating func release(_ slot: Int) -> Target {
        let target = targets[slot]!
        targets[slot] = nil
        freeSlots.append(slot)
        return target
    }

    /// One entry became stale. `isLive` is asked only when the heap is rebuilt.
    mutating func noteStale(isLive: (Target, UInt64) -> Bool) {
        staleCount += 1
        if staleCount > 1024, staleCount > entries.count / 2 {
            var kept: [Entry] = []
            kept.reserveCapacity(entries.count - staleCount / 2)
            for entry in entries {
                if isLive(targets[entry.slot]!, entry.generation) {
                    kept.append(entry)
                } else {
                    _ = release(entry.slot)
                }
            }
            entries = kept
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
        targets.removeAll()
        freeSlots.removeAll()
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
