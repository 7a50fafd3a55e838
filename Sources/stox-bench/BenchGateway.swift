import Foundation
import GatewayStore
import NIOCore
import NIOPosix
import SIPCore

/// `stox run` as its own process, as an operator runs it: the shipped Config/stox.conf with
/// the bench's values in STOX_* variables, a store of its own, and the SIP domain `sip.bench`
/// served by the embedded registrar. The bench talks to it only over sockets, so the figures
/// include every parse, store commit and write a real deployment pays, and its memory is read
/// from /proc without the load generator's mixed in.
final class BenchGateway: @unchecked Sendable {
    static let sipPort = 35060, s2sPort = 35269, httpPort = 35280
    static let domain = "sip.bench"
    static let password = "bench-password"

    let directory: URL
    var storePath: String { directory.appendingPathComponent("stox.sqlite").path }
    private var process: Process?
    private var generation = 0
    let peerPort: Int
    /// Further XMPP domains routed to the bench peer (the idle-link scenario).
    let extraDomains: [String]

    /// Where the built `stox` is: next to this executable (`swift build -c release` builds both).
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("stox").path
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Every gateway of the current scenario: `stopAll` stops them and removes their files
    /// when it ends, whether it finished or failed half-way.
    nonisolated(unsafe) private static var created: [BenchGateway] = []
    private static let lock = NSLock()

    static func stopAll() async {
        let all = lock.withLock { () -> [BenchGateway] in
            defer { created = [] }
            return created
        }
        for gateway in all {
            await gateway.stop()
            gateway.remove()
        }
    }

    init(peerPort: Int, extraDomains: [String] = []) throws {
        self.peerPort = peerPort
        self.extraDomains = extraDomains
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("stox-bench-gw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        Self.lock.withLock { Self.created.append(self) }
    }

    /// Adds `count` users named `prefix0`, `prefix1`, … with the bench password, in one
    /// transaction-per-user pass before the gateway starts (the CLI does the same per user).
    func addUsers(prefix: String, count: Int) throws {
        let store = try GatewayStore(path: storePath)
        for index in 0..<count {
            let name = "\(prefix)\(index)"
            try store.addUser(StoredUser(
                username: name, domain: Self.domain,
                ha1MD5: DigestAlgorithm.md5.ha1(username: name, realm: Self.domain, password: Self.password),
                ha1SHA256: DigestAlgorithm.sha256.ha1(username: name, realm: Self.domain, password: Self.password)))
        }
    }

    var environment: [String: String] {
        [
            "STOX_SIP_DOMAINS": Self.domain, "STOX_SIP_LISTEN": "127.0.0.1",
            "STOX_SIP_UDP_PORT": String(Self.sipPort), "STOX_SIP_TCP_PORT": String(Self.sipPort), "STOX_SIP_TLS_PORT": "",
            "STOX_SIP_WATCHER_POLICY": "all", "STOX_SIP_DIGEST_ALGORITHMS": "MD5",
            "STOX_XMPP_MODE": "s2s", "STOX_XMPP_LISTEN": "127.0.0.1", "STOX_XMPP_PORT": String(Self.s2sPort),
            "STOX_XMPP_PEER_POLICY": "dialback-plain", "STOX_XMPP_ROUTES": (["xmpp.bench"] + extraDomains).map { "\($0)=127.0.0.1:\(peerPort)" }.joined(separator: ","),
            "STOX_XMPP_DIALBACK_SECRET": "stox-bench-dialback-secret", "STOX_XMPP_PEER_RATE": "10000000",
            "STOX_XMPP_CERTIFICATE": "", "STOX_XMPP_KEY": "",
            "STOX_STORE_PATH": storePath, "STOX_MAPPINGS_PATH": Self.repositoryRoot.appendingPathComponent("Mappings").path,
            "STOX_HTTP_LISTEN": "127.0.0.1:\(Self.httpPort)",
            "STOX_LOG_LEVEL": ProcessInfo.processInfo.environment["STOX_BENCH_LOG_LEVEL"] ?? "warning",
        ]
    }

    func start() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw BenchError("no stox binary at \(Self.binary): build with `swift build -c release` first")
        }
        generation += 1
        let log = directory.appendingPathComponent("stox-\(generation).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["run", "--config", Self.repositoryRoot.appendingPathComponent("Config/stox.conf").path]
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            if await Self.healthy() { return }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        throw BenchError("stox run did not become healthy:\n\(text.suffix(2000))")
    }

    var pid: Int32? { process?.processIdentifier }

    /// Resident memory of the gateway process, in KiB (VmRSS).
    var residentKiB: Int {
        guard let pid, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    /// SIGTERM (graceful), then SIGKILL after `grace` seconds.
    func stop(grace: Double = 20) async {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning, Date() < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        self.process = nil
    }

    /// Removes the store and logs, unless STOX_BENCH_KEEP is set (to read the gateway's log).
    func remove() {
        if ProcessInfo.processInfo.environment["STOX_BENCH_KEEP"] != nil {
            print("  (kept \(directory.path))")
            return
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// GET /health on the operations port, with a plain socket (no HTTP client dependency).
    static func healthy() async -> Bool {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                guard fd >= 0 else { return continuation.resume(returning: false) }
                defer { close(fd) }
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = in_port_t(UInt16(httpPort).bigEndian)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard connected == 0 else { return continuation.resume(returning: false) }
                let request = Array("GET /health HTTP/1.0\r\n\r\n".utf8)
                _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
                var buffer = [UInt8](repeating: 0, count: 64)
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                continuation.resume(returning: count > 12 && String(decoding: buffer[0..<count], as: UTF8.self).hasPrefix("HTTP/1.0 200"))
            }
        }
    }
}
