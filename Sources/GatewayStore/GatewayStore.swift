import Foundation
import GRDB

/// A SIP user of a domain the gateway serves. Only the digest HA1s are kept (RFC 7616 §3.4.2),
/// so the password never touches the disk; they bind the user to the realm, which is the domain.
public struct StoredUser: Hashable, Sendable {
    public var username: String
    public var domain: String
    public var ha1MD5: String
    public var ha1SHA256: String
    public var createdAt: Date

    public init(username: String, domain: String, ha1MD5: String, ha1SHA256: String, createdAt: Date = Date()) {
        self.username = username
        self.domain = domain
        self.ha1MD5 = ha1MD5
        self.ha1SHA256 = ha1SHA256
        self.createdAt = createdAt
    }

    public var addressOfRecord: String { "\(username)@\(domain)" }
}

/// A registration (RFC 3261 §10), as persisted: enough to reach the endpoint after a restart.
public struct StoredBinding: Hashable, Sendable {
    public var addressOfRecord: String
    /// The Contact header value, parameters included (`+sip.instance`, `expires` stripped).
    public var contact: String
    public var callID: String
    public var cseq: UInt32
    public var expiresAt: Date
    /// How the REGISTER arrived ("UDP"/"TCP") and from where ("ip:port"): the flow requests use.
    public var transport: String
    public var source: String
    public var userAgent: String?

    public init(addressOfRecord: String, contact: String, callID: String, cseq: UInt32, expiresAt: Date,
                transport: String, source: String, userAgent: String?) {
        self.addressOfRecord = addressOfRecord
        self.contact = contact
        self.callID = callID
        self.cseq = cseq
        self.expiresAt = expiresAt
        self.transport = transport
        self.source = source
        self.userAgent = userAgent
    }
}

/// A presentity's decision about a watcher (RFC 3857 §3.2.4 vocabulary: allow or block).
public enum WatcherDecision: String, Hashable, Sendable, CaseIterable {
    case allow
    case block
}

public struct StoredWatcherDecision: Hashable, Sendable {
    public var presentity: String
    public var watcher: String
    public var decision: WatcherDecision
}

/// A notice the gateway owes a user (the "missed message" of a delivery nobody accepted),
/// kept until one of the user's endpoints accepts it.
/// A presence subscription that crosses the gateway.
public struct StoredSubscription: Hashable, Sendable {
    public enum Direction: String, Hashable, Sendable, CaseIterable {
        /// An XMPP user watches a SIP user of the embedded domain.
        case xmppWatchesSIP = "xmpp-watches-sip"
        /// A SIP user watches an XMPP user.
        case sipWatchesXMPP = "sip-watches-xmpp"
    }

    public enum State: String, Hashable, Sendable {
        /// Waiting for the presentity's answer.
        case pending
        /// Authorized: the watcher gets presence.
        case active
    }

    public var direction: Direction
    public var presentity: String
    public var watcher: String
    public var state: State

    public init(direction: Direction, presentity: String, watcher: String, state: State) {
        self.direction = direction
        self.presentity = presentity
        self.watcher = watcher
        self.state = state
    }
}

/// The notifier's side of a SIP presence subscription, as kept across restarts.
public struct StoredSIPWatcher: Hashable, Sendable {
    public var callID: String
    public var localTag: String
    public var remoteTag: String
    public var presentity: String
    public var watcher: String
    /// The last SUBSCRIBE of the dialog, serialized: its dialog fields, Event and Accept.
    public var subscribe: [UInt8]
    /// The CSeq of the last NOTIFY sent.
    public var localSequence: UInt32
    public var expiresAt: Date
    public var active: Bool
    public var transport: String
    public var source: String

    public init(callID: String, localTag: String, remoteTag: String, presentity: String, watcher: String, subscribe: [UInt8],
                localSequence: UInt32, expiresAt: Date, active: Bool, transport: String, source: String) {
        self.callID = callID
        self.localTag = localTag
        self.remoteTag = remoteTag
        self.presentity = presentity
        self.watcher = watcher
        self.subscribe = subscribe
        self.localSequence = localSequence
        self.expiresAt = expiresAt
        self.active = active
        self.transport = transport
        self.source = source
    }
}

public struct StoredNotice: Hashable, Sendable {
    public var id: Int64
    public var addressOfRecord: String
    public var text: String
    public var createdAt: Date
}

public enum GatewayStoreError: Error, Hashable, CustomStringConvertible {
    case userExists(String)
    case noSuchUser(String)

    public var description: String {
        switch self {
        case .userExists(let aor): "user \(aor) already exists"
        case .noSuchUser(let aor): "no user \(aor)"
        }
    }
}

/// The gateway's durable state in SQLite. A file database runs in WAL mode (readers never wait
/// for the writer); migrations are append-only, so a database written by an older release opens
/// in a newer one. All calls are synchronous: callers on an event loop run them on a thread pool.
public final class GatewayStore: Sendable {
    private let writer: any DatabaseWriter

    /// Opens (creating when missing) the database at `path`.
    public init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        writer = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(writer)
    }

    /// A private in-memory database (tests).
    public init() throws {
        writer = try DatabaseQueue()
        try Self.migrator.migrate(writer)
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        // Append new migrations below; never edit a released one.
        migrator.registerMigration("v1: users, bindings, watcher decisions, notices") { db in
            try db.execute(sql: """
                CREATE TABLE users (
                    username TEXT NOT NULL, domain TEXT NOT NULL,
                    ha1_md5 TEXT NOT NULL, ha1_sha256 TEXT NOT NULL, created_at REAL NOT NULL,
                    PRIMARY KEY (username, domain));
                CREATE TABLE bindings (
                    aor TEXT NOT NULL, contact TEXT NOT NULL, call_id TEXT NOT NULL, cseq INTEGER NOT NULL,
                    expires_at REAL NOT NULL, transport TEXT NOT NULL, source TEXT NOT NULL, user_agent TEXT,
                    PRIMARY KEY (aor, contact));
                CREATE TABLE watcher_decisions (
                    presentity TEXT NOT NULL, watcher TEXT NOT NULL, decision TEXT NOT NULL, decided_at REAL NOT NULL,
                    PRIMARY KEY (presentity, watcher));
                CREATE TABLE notices (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, aor TEXT NOT NULL, text TEXT NOT NULL, created_at REAL NOT NULL);
                CREATE INDEX notices_by_aor ON notices (aor);
                """)
        }
        migrator.registerMigration("v2: the durable outbound queue") { db in
            // One row per message to cross; (direction, message_id) makes a repeated enqueue of
            // the same message a no-op, also after delivery: delivered rows stay as tombstones
            // (delivered_at) until pruned.
            try db.execute(sql: """
                CREATE TABLE outbound (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, direction TEXT NOT NULL, message_id TEXT NOT NULL,
                    destination TEXT NOT NULL, payload BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                    enqueued_at REAL NOT NULL, not_before REAL NOT NULL, delivered_at REAL,
                    UNIQUE (direction, message_id));
                CREATE INDEX outbound_due ON outbound (direction, delivered_at, not_before, id);
                """)
        }
        migrator.registerMigration("v3: presence subscriptions across the gateway") { db in
            // Who watches whom across the two networks, in both directions, with where the
            // authorization stands: what lets a restarted gateway send every XMPP watcher of a
            // SIP user its current presence and ask XMPP contacts again for what SIP users watch.
            try db.execute(sql: """
                CREATE TABLE subscriptions (
                    direction TEXT NOT NULL, presentity TEXT NOT NULL, watcher TEXT NOT NULL,
                    state TEXT NOT NULL, updated_at REAL NOT NULL,
                    PRIMARY KEY (direction, presentity, watcher));
                """)
        }
        migrator.registerMigration("v4: SIP watcher dialogs and publications") { db in
            // What a restart needs to tell every SIP watcher the current state at once: the
            // notifier's side of each subscription dialog (its last SUBSCRIBE, our CSeq, the
            // flow NOTIFYs go down) and each endpoint's published presence (RFC 3903 soft state).
            try db.execute(sql: """
                CREATE TABLE sip_watchers (
                    call_id TEXT NOT NULL, local_tag TEXT NOT NULL, remote_tag TEXT NOT NULL,
                    presentity TEXT NOT NULL, watcher TEXT NOT NULL, subscribe BLOB NOT NULL,
                    local_cseq INTEGER NOT NULL, expires_at REAL NOT NULL, state TEXT NOT NULL,
                    transport TEXT NOT NULL, source TEXT NOT NULL,
                    PRIMARY KEY (call_id, local_tag, remote_tag));
                CREATE TABLE publications (
                    aor TEXT NOT NULL, etag TEXT NOT NULL, document BLOB NOT NULL, sequence INTEGER NOT NULL,
                    expires_at REAL NOT NULL,
                    PRIMARY KEY (aor, etag));
                """)
        }
        migrator.registerMigration("v5: process secrets") { db in
            // Keys that must outlive a restart: the digest nonce key, so that a UA retransmitting
            // a request it sent before a crash is still authenticated and its resend is
            // recognised as one, instead of earning `stale=true` and a new transaction.
            try db.execute(sql: """
                CREATE TABLE secrets (name TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, created_at REAL NOT NULL);
                """)
        }
        migrator.registerMigration("v6: pruning delivered queue rows") { db in
            // The background prune finds delivered rows by age without scanning the queue.
            try db.execute(sql: """
                CREATE INDEX outbound_delivered ON outbound (delivered_at) WHERE delivered_at IS NOT NULL;
                """)
        }
        return migrator
    }

    /// Moves the WAL's contents into the database and truncates it, giving its space back
    /// (SQLite otherwise keeps the WAL at its high-water mark). False when readers or writers
    /// were busy and the WAL could not be truncated this time.
    @discardableResult
    public func checkpoint() -> Bool {
        guard let pool = writer as? DatabasePool else { return true }
        return (try? pool.writeWithoutTransaction { db in
            try db.checkpoint(.truncate)
        }) != nil
    }

    /// The bytes the database and its WAL take on disk (0 for an in-memory store).
    public func sizeOnDisk() -> (database: Int, wal: Int) {
        guard let pool = writer as? DatabasePool else { return (0, 0) }
        let path = pool.path
        func size(_ file: String) -> Int {
            ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? NSNumber)?.intValue ?? 0
        }
        return (size(path), size(path + "-wal"))
    }

    // MARK: Secrets

    /// The secret called `name`: created at random (32 bytes) the first time, the same after.
    public func secret(named name: String) throws -> [UInt8] {
        try write { db in
            if let value = try Data.fetchOne(db, sql: "SELECT value FROM secrets WHERE name = ?", arguments: [name]) {
                return Array(value)
            }
            var generator = SystemRandomNumberGenerator()
            let value = (0..<32).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }
            try db.execute(sql: "INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?)",
                           arguments: [name, Data(value), Date().timeIntervalSince1970])
            return value
        }
    }

    /// Runs `body` in one write transaction (the queue's group commit uses it).
    func write<T>(_ body: (Database) throws -> T) throws -> T {
        try writer.write(body)
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        try writer.read(body)
    }

    // MARK: Users

    public func addUser(_ user: StoredUser) throws {
        try writer.write { db in
            if try Row.fetchOne(db, sql: "SELECT 1 FROM users WHERE username = ? AND domain = ?",
                                arguments: [user.username, user.domain]) != nil {
                throw GatewayStoreError.userExists(user.addressOfRecord)
            }
            try db.execute(sql: "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                           arguments: [user.username, user.domain, user.ha1MD5, user.ha1SHA256, user.createdAt.timeIntervalSince1970])
        }
    }

    public func updatePassword(username: String, domain: String, ha1MD5: String, ha1SHA256: String) throws {
        try writer.write { db in
            try db.execute(sql: "UPDATE users SET ha1_md5 = ?, ha1_sha256 = ? WHERE username = ? AND domain = ?",
                           arguments: [ha1MD5, ha1SHA256, username, domain])
            if db.changesCount == 0 { throw GatewayStoreError.noSuchUser("\(username)@\(domain)") }
        }
    }

    /// Removes the user and everything kept for them (bindings, decisions, notices).
    public func removeUser(username: String, domain: String) throws {
        let aor = "\(username)@\(domain)"
        try writer.write { db in
            try db.execute(sql: "DELETE FROM users WHERE username = ? AND domain = ?", arguments: [username, domain])
            if db.changesCount == 0 { throw GatewayStoreError.noSuchUser(aor) }
            try db.execute(sql: "DELETE FROM bindings WHERE aor = ?", arguments: [aor])
            try db.execute(sql: "DELETE FROM watcher_decisions WHERE presentity = ?", arguments: [aor])
            try db.execute(sql: "DELETE FROM notices WHERE aor = ?", arguments: [aor])
        }
    }

    public func user(username: String, domain: String) throws -> StoredUser? {
        try writer.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE username = ? AND domain = ?", arguments: [username, domain])
                .map(Self.user)
        }
    }

    public func users() throws -> [StoredUser] {
        try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM users ORDER BY domain, username").map(Self.user)
        }
    }

    private static func user(_ row: Row) -> StoredUser {
        StoredUser(username: row["username"], domain: row["domain"], ha1MD5: row["ha1_md5"], ha1SHA256: row["ha1_sha256"],
                   createdAt: Date(timeIntervalSince1970: row["created_at"]))
    }

    // MARK: Bindings

    /// Replaces every binding of an address-of-record (the registrar's view after a REGISTER).
    public func replaceBindings(of aor: String, with bindings: [StoredBinding]) throws {
        try writer.write { db in
            try db.execute(sql: "DELETE FROM bindings WHERE aor = ?", arguments: [aor])
            for binding in bindings {
                try db.execute(sql: "INSERT INTO bindings VALUES (?, ?, ?, ?, ?, ?, ?, ?)", arguments: [
                    binding.addressOfRecord, binding.contact, binding.callID, Int64(binding.cseq),
                    binding.expiresAt.timeIntervalSince1970, binding.transport, binding.source, binding.userAgent,
                ])
            }
        }
    }

    /// Every binding not yet expired at `now` (expired ones are deleted on the way).
    public func bindings(at now: Date = Date()) throws -> [StoredBinding] {
        try writer.write { db in
            try db.execute(sql: "DELETE FROM bindings WHERE expires_at <= ?", arguments: [now.timeIntervalSince1970])
            return try Row.fetchAll(db, sql: "SELECT * FROM bindings ORDER BY aor, contact").map { row in
                StoredBinding(addressOfRecord: row["aor"], contact: row["contact"], callID: row["call_id"],
                              cseq: UInt32(clamping: row["cseq"] as Int64), expiresAt: Date(timeIntervalSince1970: row["expires_at"]),
                              transport: row["transport"], source: row["source"], userAgent: row["user_agent"])
            }
        }
    }

    // MARK: Watcher decisions

    public func setDecision(_ decision: WatcherDecision?, presentity: String, watcher: String) throws {
        try writer.write { db in
            if let decision {
                try db.execute(sql: "INSERT OR REPLACE INTO watcher_decisions VALUES (?, ?, ?, ?)",
                               arguments: [presentity, watcher, decision.rawValue, Date().timeIntervalSince1970])
            } else {
                try db.execute(sql: "DELETE FROM watcher_decisions WHERE presentity = ? AND watcher = ?", arguments: [presentity, watcher])
            }
        }
    }

    public func decisions(presentity: String? = nil) throws -> [StoredWatcherDecision] {
        try writer.read { db in
            let rows = if let presentity {
                try Row.fetchAll(db, sql: "SELECT * FROM watcher_decisions WHERE presentity = ? ORDER BY watcher", arguments: [presentity])
            } else {
                try Row.fetchAll(db, sql: "SELECT * FROM watcher_decisions ORDER BY presentity, watcher")
            }
            return rows.compactMap { row in
                WatcherDecision(rawValue: row["decision"]).map {
                    StoredWatcherDecision(presentity: row["presentity"], watcher: row["watcher"], decision: $0)
                }
            }
        }
    }

    // MARK: Subscriptions across the gateway

    /// Records (or, with nil, removes) a subscription across the gateway.
    public func setSubscription(_ state: StoredSubscription.State?, direction: StoredSubscription.Direction,
                                presentity: String, watcher: String) throws {
        try writer.write { db in
            if let state {
                try db.execute(sql: "INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?, ?, ?)",
                               arguments: [direction.rawValue, presentity, watcher, state.rawValue, Date().timeIntervalSince1970])
            } else {
                try db.execute(sql: "DELETE FROM subscriptions WHERE direction = ? AND presentity = ? AND watcher = ?",
                               arguments: [direction.rawValue, presentity, watcher])
            }
        }
    }

    /// How many subscriptions each direction holds (the metrics gauge reads it at scrape time).
    public func subscriptionCounts() throws -> [StoredSubscription.Direction: Int] {
        try writer.read { db in
            var counts: [StoredSubscription.Direction: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT direction, COUNT(*) AS n FROM subscriptions GROUP BY direction") {
                if let direction = StoredSubscription.Direction(rawValue: row["direction"]) { counts[direction] = row["n"] }
            }
            return counts
        }
    }

    public func subscriptions(direction: StoredSubscription.Direction) throws -> [StoredSubscription] {
        try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM subscriptions WHERE direction = ? ORDER BY presentity, watcher",
                             arguments: [direction.rawValue]).compactMap { row in
                StoredSubscription.State(rawValue: row["state"]).map {
                    StoredSubscription(direction: direction, presentity: row["presentity"], watcher: row["watcher"], state: $0)
                }
            }
        }
    }

    // MARK: SIP watcher dialogs and publications

    public func saveSIPWatcher(_ watcher: StoredSIPWatcher) throws {
        try writer.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO sip_watchers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", arguments: [
                watcher.callID, watcher.localTag, watcher.remoteTag, watcher.presentity, watcher.watcher, Data(watcher.subscribe),
                Int64(watcher.localSequence), watcher.expiresAt.timeIntervalSince1970, watcher.active ? "active" : "pending",
                watcher.transport, watcher.source,
            ])
        }
    }

    /// Records the CSeq of the NOTIFY about to be sent in a dialog.
    public func updateSIPWatcherSequence(callID: String, localTag: String, remoteTag: String, localSequence: UInt32) throws {
        try writer.write { db in
            try db.execute(sql: "UPDATE sip_watchers SET local_cseq = ? WHERE call_id = ? AND local_tag = ? AND remote_tag = ?",
                           arguments: [Int64(localSequence), callID, localTag, remoteTag])
        }
    }

    public func removeSIPWatcher(callID: String, localTag: String, remoteTag: String) throws {
        try writer.write { db in
            try db.execute(sql: "DELETE FROM sip_watchers WHERE call_id = ? AND local_tag = ? AND remote_tag = ?",
                           arguments: [callID, localTag, remoteTag])
        }
    }

    /// The watcher dialogs that have not expired by `now`; expired ones are forgotten.
    public func sipWatchers(at now: Date = Date()) throws -> [StoredSIPWatcher] {
        try writer.write { db in
            try db.execute(sql: "DELETE FROM sip_watchers WHERE expires_at <= ?", arguments: [now.timeIntervalSince1970])
            return try Row.fetchAll(db, sql: "SELECT * FROM sip_watchers").map { row in
                StoredSIPWatcher(
                    callID: row["call_id"], localTag: row["local_tag"], remoteTag: row["remote_tag"], presentity: row["presentity"],
                    watcher: row["watcher"], subscribe: Array((row["subscribe"] as Data?) ?? Data()),
                    localSequence: UInt32(clamping: row["local_cseq"] as Int64), expiresAt: Date(timeIntervalSince1970: row["expires_at"]),
                    active: (row["state"] as String) == "active", transport: row["transport"], source: row["source"])
            }
        }
    }

    public func savePublication(aor: String, etag: String, document: [UInt8], sequence: UInt64, expiresAt: Date) throws {
        try writer.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO publications VALUES (?, ?, ?, ?, ?)",
                           arguments: [aor, etag, Data(document), Int64(clamping: sequence), expiresAt.timeIntervalSince1970])
        }
    }

    public func removePublication(aor: String, etag: String) throws {
        try writer.write { db in
            try db.execute(sql: "DELETE FROM publications WHERE aor = ? AND etag = ?", arguments: [aor, etag])
        }
    }

    /// Publications that have not expired by `now`; expired ones are forgotten.
    public func publications(at now: Date = Date()) throws -> [(aor: String, etag: String, document: [UInt8], sequence: UInt64, expiresAt: Date)] {
        try writer.write { db in
            try db.execute(sql: "DELETE FROM publications WHERE expires_at <= ?", arguments: [now.timeIntervalSince1970])
            return try Row.fetchAll(db, sql: "SELECT * FROM publications ORDER BY sequence").map { row in
                (row["aor"], row["etag"], Array((row["document"] as Data?) ?? Data()), UInt64(clamping: row["sequence"] as Int64),
                 Date(timeIntervalSince1970: row["expires_at"]))
            }
        }
    }

    // MARK: Notices

    @discardableResult
    public func addNotice(for aor: String, text: String, at date: Date = Date()) throws -> Int64 {
        try writer.write { db in
            try db.execute(sql: "INSERT INTO notices (aor, text, created_at) VALUES (?, ?, ?)",
                           arguments: [aor, text, date.timeIntervalSince1970])
            return db.lastInsertedRowID
        }
    }

    public func notices(for aor: String) throws -> [StoredNotice] {
        try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM notices WHERE aor = ? ORDER BY id", arguments: [aor]).map { row in
                StoredNotice(id: row["id"], addressOfRecord: row["aor"], text: row["text"],
                             createdAt: Date(timeIntervalSince1970: row["created_at"]))
            }
        }
    }

    public func removeNotice(id: Int64) throws {
        try writer.write { db in try db.execute(sql: "DELETE FROM notices WHERE id = ?", arguments: [id]) }
    }
}
