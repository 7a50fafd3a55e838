import Foundation

/// Kamailio (Debian's package and its presence modules, installed by Tests/install-peers.sh) as
/// the SIP server of a partner network, corp.test, with the project's configuration in
/// Tests/Interop/kamailio: registrar, proxy and presence server on 127.0.0.2, sending everything
/// for other domains to the gateway. Started in the foreground and stopped by its PID.
public final class Kamailio: Sendable {
    public static let host = "127.0.0.2"
    public let port: Int
    private let pid: Int32
    private let directory: URL

    /// `maxExpires`: the longest subscription its presence server grants.
    public init(gatewayPort: Int, port: Int? = nil, maxExpires: Int = 3600) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("stox-kamailio-\(UUID().uuidString)")
        let database = directory.appendingPathComponent("db")
        try FileManager.default.createDirectory(at: database, withIntermediateDirectories: true)
        // Fresh db_text tables on every start: a row left by a publisher that never unpublished
        // makes the next start fail in the presence module's init.
        for table in ["version", "presentity", "active_watchers", "watchers", "xcap", "pua"] {
            try FileManager.default.copyItem(atPath: "/usr/share/kamailio/dbtext/kamailio/\(table)",
                                             toPath: database.appendingPathComponent(table).path)
        }
        self.port = port ?? 20000 + Int.random(in: 0..<9000)
        let template = try String(contentsOf: Golden.repositoryRoot.appendingPathComponent("Tests/Interop/kamailio/kamailio.cfg"), encoding: .utf8)
        let configuration = directory.appendingPathComponent("kamailio.cfg")
        try template.replacingOccurrences(of: "@KAM_PORT@", with: String(self.port))
            .replacingOccurrences(of: "@GW_PORT@", with: String(gatewayPort))
            .replacingOccurrences(of: "@DB_DIR@", with: database.path)
            .replacingOccurrences(of: "@MAX_EXPIRES@", with: String(maxExpires))
            .write(to: configuration, atomically: true, encoding: .utf8)
        // Spawned and reaped with waitpid, not Foundation's Process: Kamailio's start closes
        // the descriptors it inherited, and Process's monitor then blocks on it, leaving every
        // later Process of the test run (openssl, prosodyctl) an unreaped zombie and its
        // waitUntilExit hanging.
        pid = try ChildProcess.spawn("/usr/sbin/kamailio",
                                     ["-f", configuration.path, "-DD", "-E", "-Y", directory.path, "-m", "64", "-M", "8"],
                                     output: directory.appendingPathComponent("kamailio.log").path)
    }

    /// A Kamailio that is up, tried on up to three random ports (one may be taken).
    public static func started(gatewayPort: Int, maxExpires: Int = 3600) async throws -> Kamailio {
        for _ in 0..<3 {
            let candidate = try Kamailio(gatewayPort: gatewayPort, maxExpires: maxExpires)
            if await candidate.ready() { return candidate }
            let log = candidate.log
            await candidate.stop()
            if log.contains("ERROR") && !log.contains("bind") { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "Kamailio did not start:\n\(log.suffix(3000))"]) }
        }
        throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "Kamailio did not start on three ports"])
    }

    /// Waits until its TCP listener accepts (UDP and TCP are bound together at startup).
    public func ready(timeout: Double = 10) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline, ChildProcess.wait(pid, timeout: 0) == nil {
            if (try? TCPClient(host: Self.host, port: port)) != nil { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    public var log: String { (try? String(contentsOf: directory.appendingPathComponent("kamailio.log"), encoding: .utf8)) ?? "" }

    /// SIGTERM (it takes its workers along); if it lingers, SIGKILL to each worker and to it,
    /// by PID. Started under the test runner it may not see SIGTERM (an inherited signal mask,
    /// as with Prosody).
    public func stop() async {
        await ChildProcess.stopTree(pid, signal: SIGTERM, grace: 3)
        try? FileManager.default.removeItem(at: directory)
    }
}
