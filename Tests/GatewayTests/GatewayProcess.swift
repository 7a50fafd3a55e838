import Foundation
import GatewayStore
import SIPCore
import StoxTesting

/// `stox run` as a separate process, the way an operator runs it, on fixed loopback ports
/// (SIP 25060 UDP/TCP, s2s 25269, HTTP 25280); the configuration is the shipped
/// Config/stox.conf with environment overrides. Killed by its PID.
final class GatewayProcess: @unchecked Sendable {
    static let sipPort = 25060, s2sPort = 25269, httpPort = 25280
    static var binary: String { Golden.repositoryRoot.appendingPathComponent(".build/debug/stox").path }

    private let process = Process()
    let logFile: URL

    init(environment: [String: String], directory: URL, generation: Int) throws {
        logFile = directory.appendingPathComponent("stox-\(generation).log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["run", "--config", Golden.repositoryRoot.appendingPathComponent("Config/stox.conf").path]
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let log = try FileHandle(forWritingTo: logFile)
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Whether `/health` answered 200 within `timeout`.
    func healthy(timeout: Double = 20) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if await Self.http("/health")?.hasPrefix("HTTP/1.0 200") == true { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// GET `path` from the operations server: the whole answer, or nil.
    static func http(_ path: String) async -> String? {
        guard let client = try? TCPClient(port: httpPort) else { return nil }
        try? client.send("GET \(path) HTTP/1.0\r\n\r\n")
        var answer = ""
        while let more = await client.receiveRaw(timeout: 2) { answer += more }
        return answer.isEmpty ? nil : answer
    }

    /// The durable queue's depth as `/health` reports it: what the store has committed, so 0
    /// means every delivery was acknowledged and written (nil when the gateway does not answer).
    func queueDepth() async -> Int? {
        guard let answer = await Self.http("/health"), let range = answer.range(of: "\"queue_depth\":") else { return nil }
        return Int(answer[range.upperBound...].prefix { $0 == "-" || $0.isNumber })
    }

    /// Its exit status once it exits within `timeout` (waited for off the cooperative pool).
    func exitStatus(timeout: Double) async -> Int32? {
        let pid = self.pid, process = self.process
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                switch ChildProcess.wait(pid, timeout: timeout) {
                case .status(let status)?: continuation.resume(returning: status)
                case .reapedByFoundation?:
                    process.waitUntilExit()
                    continuation.resume(returning: process.terminationStatus)
                case nil: continuation.resume(returning: nil)
                }
            }
        }
    }

    /// SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
    func kill9() async {
        await ChildProcess.stop(pid, signal: SIGKILL, grace: 5)
    }

    /// SIGTERM (graceful), SIGKILL after 10 s.
    func stop() async {
        await ChildProcess.stop(pid, signal: SIGTERM, grace: 10)
    }

    /// The environment for a gateway on sip.test with its state in `directory`, users bob and
    /// carol added to its store, and Prosody's a.test reached over SASL EXTERNAL.
    static func prepare(directory: URL, pki: TestPKI, domain: String = "sip.test", selfSigned: Bool = false) throws -> [String: String] {
        let storePath = directory.appendingPathComponent("stox.sqlite").path
        try GatewayFixture.addUsers(to: GatewayStore(path: storePath), domain: domain)
        let (certificate, key) = try pki.leaf("sip", dnsNames: [domain], selfSigned: selfSigned)
        return [
            "STOX_SIP_DOMAINS": domain, "STOX_SIP_UDP_PORT": String(sipPort), "STOX_SIP_TCP_PORT": String(sipPort),
            "STOX_SIP_WATCHER_POLICY": "all", "STOX_SIP_ACCEPT_TIMEOUT_DESKTOP": "5",
            "STOX_XMPP_PORT": String(s2sPort), "STOX_XMPP_CERTIFICATE": certificate, "STOX_XMPP_KEY": key,
            "STOX_XMPP_CA": pki.path("ca.crt"), "STOX_XMPP_PEER_POLICY": "secure",
            "STOX_XMPP_ROUTES": "a.test=127.0.0.1:\(Prosody.s2sPort)",
            "STOX_STORE_PATH": storePath, "STOX_MAPPINGS_PATH": Golden.repositoryRoot.appendingPathComponent("Mappings").path,
            "STOX_HTTP_LISTEN": "127.0.0.1:\(httpPort)", "STOX_LOG_LEVEL": ProcessInfo.processInfo.environment["STOX_TEST_LOG"] ?? "info",
        ]
    }
}
