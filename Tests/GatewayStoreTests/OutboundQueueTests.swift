import Foundation
import GatewayStore
import Testing

@Suite("The durable outbound queue: group commit, deduplication, survival across a restart")
struct OutboundQueueTests {
    static func message(_ n: Int, direction: String = "sip-to-xmpp") -> OutboundMessage {
        OutboundMessage(direction: direction, messageID: "m\(n)", destination: "juliet@xmpp.test", payload: Array("hello \(n)".utf8))
    }

    static func databasePath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("stox-queue-\(UUID().uuidString)/stox.sqlite").path
    }

    @Test("1,000 concurrent enqueues are committed in far fewer transactions, each completion after its commit, none lost")
    func groupCommit() async throws {
        let path = Self.databasePath()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        let queue = OutboundQueue(store: try GatewayStore(path: path))
        let results = try await withThrowingTaskGroup(of: OutboundQueue.Enqueued.self) { group in
            for n in 0..<1000 { group.addTask { try await queue.enqueue(Self.message(n)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 1000 && results.allSatisfy { $0.id != nil })
        #expect(try queue.depth() == 1000)
        #expect(queue.commits < 200, "1,000 messages took \(queue.commits) transactions")
        // Oldest first (in commit order: the producers raced), every message once, payloads intact.
        let due = try queue.due(direction: "sip-to-xmpp", limit: 2000)
        #expect(due.map(\.id) == due.map(\.id).sorted())
        #expect(Set(due.map(\.messageID)) == Set((0..<1000).map { "m\($0)" }))
        #expect(due.allSatisfy { String(decoding: $0.payload, as: UTF8.self) == "hello \($0.messageID.dropFirst())" })
    }

    @Test("the same message enqueued again is a duplicate, before delivery and after it, until pruned")
    func deduplication() async throws {
        let queue = OutboundQueue(store: try GatewayStore())
        #expect(try await queue.enqueue(Self.message(1)).id != nil)
        #expect(try await queue.enqueue(Self.message(1)) == .duplicate)
        #expect(try await queue.enqueue(Self.message(1, direction: "xmpp-to-sip")).id != nil, "directions are separate")
        let due = try queue.due(direction: "sip-to-xmpp")
        try queue.acknowledge(due.map(\.id), at: Date(timeIntervalSinceNow: -3600))
        #expect(try queue.due(direction: "sip-to-xmpp").isEmpty)
        #expect(try await queue.enqueue(Self.message(1)) == .duplicate, "a retry after delivery is recognised")
        #expect(try queue.prune(deliveredBefore: Date()) == 1)
        #expect(try await queue.enqueue(Self.message(1)).id != nil)
    }

    @Test("a long run stays bounded on disk: 200,000 messages through the queue with the background prune leave the database and WAL no bigger than after the first 20,000")
    func boundedOverALongRun() async throws {
        let path = Self.databasePath()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        let store = try GatewayStore(path: path)
        let queue = OutboundQueue(store: store)
        let payload = Array(String(repeating: "x", count: 600).utf8)  // a MESSAGE's size
        var sizes: [Int] = []
        for round in 0..<10 {
            let ids = try await withThrowingTaskGroup(of: Int64?.self) { group in
                for n in 0..<20_000 {
                    let message = OutboundMessage(direction: "sip-to-xmpp", messageID: "r\(round)-\(n)", destination: "juliet@xmpp.test", payload: payload)
                    group.addTask { try await queue.enqueue(message).id }
                }
                return try await group.reduce(into: [Int64]()) { if let id = $1 { $0.append(id) } }
            }
            #expect(ids.count == 20_000)
            // Delivered, then (as the gateway's prune does once the retention has passed) forgotten.
            try queue.acknowledge(ids)
            try queue.prune(deliveredBefore: Date(timeIntervalSinceNow: 1))
            store.checkpoint()
            let (database, wal) = store.sizeOnDisk()
            sizes.append(database + wal)
        }
        #expect(try queue.rowCount() == 0)
        // Freed pages are reused and the WAL is truncated: the tenth round costs no more disk
        // than the first (a little slack for SQLite's page bookkeeping).
        #expect(sizes.last! <= sizes.first! + sizes.first! / 10, "bytes on disk per round: \(sizes)")
    }

    @Test("an acknowledged row keeps only its key: the payload goes at once, the tombstone until pruned")
    func tombstoneHasNoPayload() async throws {
        let store = try GatewayStore()
        let queue = OutboundQueue(store: store)
        let id = try #require(try await queue.enqueue(Self.message(3)).id)
        try queue.acknowledge([id])
        #expect(try await queue.enqueue(Self.message(3)) == .duplicate)
        #expect(try queue.rowCount() == 1)
        #expect(try queue.storedPayloadBytes() == 0)
    }

    @Test("a delivery mark rides the group commit: once a later enqueue is durable, so is the mark")
    func markRidesTheCommit() async throws {
        let queue = OutboundQueue(store: try GatewayStore())
        let first = try #require(try await queue.enqueue(Self.message(1)).id)
        queue.markDelivered(first)
        _ = try await queue.enqueue(Self.message(2))
        // The same serial commit queue carried both, the mark first: a crash after the second
        // message's acknowledgement can no longer deliver the first again.
        #expect(try queue.due(direction: "sip-to-xmpp").map(\.messageID) == ["m2"])
    }

    @Test("a failed delivery waits until its retry time and counts its attempts")
    func retry() async throws {
        let queue = OutboundQueue(store: try GatewayStore())
        _ = try await queue.enqueue(Self.message(7))
        let first = try #require(try queue.due(direction: "sip-to-xmpp").first)
        try queue.retry(first.id, notBefore: Date(timeIntervalSinceNow: 60))
        #expect(try queue.due(direction: "sip-to-xmpp").isEmpty)
        let later = try #require(try queue.due(direction: "sip-to-xmpp", now: Date(timeIntervalSinceNow: 61)).first)
        #expect(later.attempts == 1 && later.messageID == "m7")
    }

    @Test("what was acknowledged as stored is still there when the database is opened again (a restart)")
    func survivesReopen() async throws {
        let path = Self.databasePath()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        do {
            let queue = OutboundQueue(store: try GatewayStore(path: path))
            for n in 0..<50 { _ = try await queue.enqueue(Self.message(n)) }
        }
        let reopened = OutboundQueue(store: try GatewayStore(path: path))
        #expect(try reopened.depth() == 50)
        #expect(try reopened.due(direction: "sip-to-xmpp", limit: 100).map(\.messageID) == (0..<50).map { "m\($0)" })
    }
}
