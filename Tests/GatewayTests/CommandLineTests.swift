import Dispatch
import Foundation
import StoxTesting
import Testing

/// `stox check-config` and `stox run` as an operator uses them: the built binary, the shipped
/// configuration, environment overrides.
// Takes turns with the interop suites: `stox run` binds the same fixed ports as the crash tests.
@Suite("stox check-config and stox run", .serialized, .interopPeers)
struct CommandLineTests {
    /// Runs the built `stox` with `arguments`; its exit status and everything it printed.
    static func stox(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: GatewayProcess.binary)
        process.arguments = arguments
        process.currentDirectoryURL = Golden.repositoryRoot
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        // Reading and waiting block: on a Dispatch thread, never on the cooperative pool.
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                continuation.resume(returning: (process.terminationStatus, output))
            }
        }
    }

    @Test("check-config explains the shipped configuration: the domain served, listeners, policies, tables, and the missing certificate")
    func explains() async throws {
        let (status, output) = try await Self.stox(["check-config"])
        #expect(status == 0, "\(output)")
        for expected in ["sip.localhost", "UDP 5060", "TCP 5060", "127.0.0.1:5269 (plain: no certificate, so no STARTTLS)",
                         "secure by default", "loaded and checked", "var/stox.sqlite",
                         "SIP UDP receive buffer: 8388608 bytes asked for", "warning: xmpp.certificate: not set"] {
            #expect(output.contains(expected), "missing \(expected):\n\(output)")
        }
        // It says one thing: no STARTTLS is promised when the warning says there is none.
        #expect(!output.contains("(STARTTLS)"), "\(output)")
    }

    @Test("a STOX_ variable that names no key is refused like the same key in the file (exit 78); other STOX_ variables are left alone")
    func unknownEnvironmentKey() async throws {
        let (status, output) = try await Self.stox(["check-config"], environment: ["STOX_SIP_UDP_PROT": "5070", "STOX_TEST_LOG": "1"])
        #expect(status == 78, "\(output)")
        #expect(output.contains("STOX_SIP_UDP_PROT: names no known key"), "\(output)")
        #expect(!output.contains("STOX_TEST_LOG"), "\(output)")
    }

    @Test("bad values are refused with the key and the reason, all at once, and exit 78 (EX_CONFIG)")
    func refuses() async throws {
        let (status, output) = try await Self.stox(["check-config"], environment: [
            "STOX_SIP_UDP_PORT": "70000", "STOX_SIP_WATCHER_POLICY": "everyone", "STOX_XMPP_DIALBACK_SECRET": "short",
            "STOX_XMPP_CERTIFICATE": "/nonexistent.pem", "STOX_XMPP_DIRECT_TLS_PORT": "5270", "STOX_XMPP_PEER_RATE": "0",
        ])
        #expect(status == 78)
        for expected in ["STOX_SIP_UDP_PORT: sip.udp_port: 70000 is not a port", "sip.watcher_policy: everyone: expected ask, same-domain or all",
                         "xmpp.dialback_secret: shorter than 16 bytes", "xmpp.certificate: /nonexistent.pem is not a readable file",
                         "xmpp.direct_tls_port: needs xmpp.certificate and xmpp.key",
                         "xmpp.peer_rate: 0: expected stanzas per second, 1 to 10000000"] {
            #expect(output.contains(expected), "missing \(expected):\n\(output)")
        }
    }

    @Test("a configured certificate is read and its expiry shown")
    func certificateExpiry() async throws {
        let pki = try TestPKI()
        let (certificate, key) = try pki.leaf("sip", dnsNames: ["sip.localhost"])
        let (status, output) = try await Self.stox(["check-config"], environment: ["STOX_XMPP_CERTIFICATE": certificate, "STOX_XMPP_KEY": key])
        #expect(status == 0, "\(output)")
        #expect(output.contains("XMPP certificate \(certificate): expires"), "\(output)")
        #expect(output.contains("127.0.0.1:5269 (STARTTLS)"), "\(output)")
        #expect(!output.contains("xmpp.certificate: not set"))
    }

    @Test("stox run reloads the mapping tables on SIGHUP, keeps the old ones when the new ones do not load, and stops gracefully on SIGTERM")
    func reloadAndStop() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stox-reload-\(UUID().uuidString)")
        let mappings = directory.appendingPathComponent("Mappings")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.copyItem(at: Golden.repositoryRoot.appendingPathComponent("Mappings"), to: mappings)
        let pki = try TestPKI()
        var environment = try GatewayProcess.prepare(directory: directory, pki: pki)
        environment["STOX_MAPPINGS_PATH"] = mappings.path
        let gateway = try GatewayProcess(environment: environment, directory: directory, generation: 1)
        #expect(await gateway.healthy(), "\(gateway.log)")
        // A broken table: refused, the old tables stay in force.
        let settings = mappings.appendingPathComponent("settings.tsv")
        let original = try String(contentsOf: settings, encoding: .utf8)
        try (original + "not a valid row\n").write(to: settings, atomically: true, encoding: .utf8)
        kill(gateway.pid, SIGHUP)
        #expect(await eventually(timeout: 10) { gateway.log.contains("do not load; the old ones stay") }, "\(gateway.log)")
        #expect(await gateway.healthy(timeout: 5), "still serving")
        // Mended: swapped in.
        try original.write(to: settings, atomically: true, encoding: .utf8)
        kill(gateway.pid, SIGHUP)
        #expect(await eventually(timeout: 10) { gateway.log.contains("mapping tables reloaded") }, "\(gateway.log)")
        // SIGTERM: a graceful stop, exit status 0.
        kill(gateway.pid, SIGTERM)
        let status = await gateway.exitStatus(timeout: 15)
        #expect(status == 0, "\(String(describing: status))\n\(gateway.log)")
        #expect(gateway.log.contains("gateway stopped"))
        await gateway.kill9()
    }
}
