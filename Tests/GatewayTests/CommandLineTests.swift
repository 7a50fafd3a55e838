import Dispatch
import Foundation
import StoxTesting
import Synchronization
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

    @Test("check-config explains peer mode: each peer domain's proxy, the addresses trusted for it, and how messages reach its users")
    func explainsPeers() async throws {
        let (status, output) = try await Self.stox(["check-config"], environment: [
            "STOX_SIP_DOMAINS": "", "STOX_SIP_PEER_DOMAINS": "corp.example=sip:10.0.0.5:5070;transport=tcp, other.example=",
            "STOX_SIP_PEER_TRUSTED": "other.example=192.0.2.1|192.0.2.2", "STOX_SIP_PEER_IM": "other.example=session",
        ])
        #expect(status == 0, "\(output)")
        for expected in ["served by the embedded registrar: none (peer mode only)",
                         "corp.example  ->  XMPP corp.example; proxy TCP 10.0.0.5 port 5070", "requests trusted from 10.0.0.5 only",
                         "other.example  ->  XMPP other.example; proxy found through RFC 3263", "requests trusted from 192.0.2.1, 192.0.2.2 only",
                         "open Lync-style IM sessions"] {
            #expect(output.contains(expected), "missing \(expected):\n\(output)")
        }
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

    static func options(branch: String, from client: UDPClient) -> String {
        """
        OPTIONS sip:sip.test SIP/2.0\r
        Via: SIP/2.0/UDP 127.0.0.1:\(client.port);branch=z9hG4bK\(branch);rport\r
        Max-Forwards: 70\r
        From: <sip:probe@monitor.test>;tag=p1\r
        To: <sip:sip.test>\r
        Call-ID: \(branch)@monitor.test\r
        CSeq: 1 OPTIONS\r
        Content-Length: 0\r
        \r

        """
    }

    @Test("refusals leave one log line with who and why and a counter in /metrics: malformed SIP, hostile XML, a stream for an unknown host")
    func refusalsAreVisible() async throws {
        let scratch = try ScratchDirectory("refusals"), directory = scratch.url
        defer { scratch.remove() }
        let pki = try TestPKI()
        let gateway = try GatewayProcess(environment: try GatewayProcess.prepare(directory: directory, pki: pki), directory: directory, generation: 1)
        defer { Task { await gateway.kill9() } }
        #expect(await gateway.healthy(), "\(gateway.log)")
        // Malformed SIP: a header line without a colon.
        let udp = try UDPClient()
        try udp.send(Self.options(branch: "bad1", from: udp).replacingOccurrences(of: "Max-Forwards: 70", with: "Max-Forwards 70"),
                     to: GatewayProcess.sipPort)
        _ = await udp.receive(timeout: 2)
        // Hostile XML, and a stream for a host the gateway does not serve.
        let garbage = try TCPClient(port: GatewayProcess.s2sPort)
        try garbage.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='evil.test' to='sip.test' version='1.0'><<<")
        _ = await garbage.waitForClose(timeout: 5)
        let unknown = try TCPClient(port: GatewayProcess.s2sPort)
        try unknown.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='evil.test' to='nowhere.test' version='1.0'>")
        _ = await unknown.waitForClose(timeout: 5)
        let metrics = await GatewayProcess.http("/metrics") ?? ""
        for kind in ["malformed-sip", "hostile-xml", "stream"] {
            #expect(metrics.contains("stox_refusals_total{kind=\"\(kind)\"} 1"), "\(kind):\n\(metrics)")
        }
        let log = gateway.log
        let sipLines = log.split(separator: "\n").filter { $0.contains("sip request refused") }
        #expect(sipLines.count == 1 && sipLines[0].contains("source=") && sipLines[0].contains("127.0.0.1"), "\(log)")
        #expect(sipLines.first?.contains("malformed header line") == true, "\(log)")
        let xmppLines = log.split(separator: "\n").filter { $0.contains("s2s peer refused") }
        #expect(xmppLines.count == 2, "\(log)")
        #expect(xmppLines.allSatisfy { $0.contains("127.0.0.1") }, "\(log)")
        #expect(xmppLines.contains { $0.contains("kind=hostile-xml") }, "\(log)")
        #expect(xmppLines.contains { $0.contains("kind=stream") && $0.contains("evil.test") && $0.contains("nowhere.test") }, "\(log)")
    }

    @Test("a UDP flood of 20,000 requests, unauthenticated MESSAGEs (challenged statelessly) and OPTIONS (kept until Timer J): /health and OPTIONS answer within 1 s while those transactions expire, and SIGTERM stops the gateway")
    func udpFlood() async throws {
        let scratch = try ScratchDirectory("flood"), directory = scratch.url
        defer { scratch.remove() }
        let pki = try TestPKI()
        let gateway = try GatewayProcess(environment: try GatewayProcess.prepare(directory: directory, pki: pki), directory: directory, generation: 1)
        #expect(await gateway.healthy(), "\(gateway.log)")
        let total = 20_000
        let flooder = try UDPClient()
        let sent = Mutex(0)
        DispatchQueue.global().async {
            for index in 0..<total {
                // Every other one an OPTIONS: its 200 is kept for Timer J, which a 407 no longer is.
                let message = index % 2 == 1 ? Self.options(branch: "flood\(index)", from: flooder) : """
                    MESSAGE sip:bob@sip.test SIP/2.0\r
                    Via: SIP/2.0/UDP 127.0.0.1:\(flooder.port);branch=z9hG4bKflood\(index);rport\r
                    Max-Forwards: 70\r
                    From: <sip:mallory@sip.test>;tag=f\(index)\r
                    To: <sip:bob@sip.test>\r
                    Call-ID: flood\(index)@evil.test\r
                    CSeq: 1 MESSAGE\r
                    Content-Type: text/plain\r
                    Content-Length: 5\r
                    \r
                    flood
                    """
                try? flooder.send(message, to: GatewayProcess.sipPort)
                sent.withLock { $0 += 1 }
                if index % 100 == 99 { usleep(50_000) }  // about 2,000 a second
            }
        }
        // Timer J is 32 s: probe through the intake and past the last expiry.
        let prober = try UDPClient()
        var slowest = 0.0, unanswered = 0, probes = 0, unhealthy = 0
        let started = ContinuousClock.now
        while sent.withLock({ $0 }) < total || ContinuousClock.now - started < .seconds(Int64(total / 2_000 + 36)) {
            probes += 1
            let sentAt = ContinuousClock.now
            try prober.send(Self.options(branch: "probe\(probes)", from: prober), to: GatewayProcess.sipPort)
            var answered = false
            while let reply = await prober.receive(timeout: 1.0) {
                if reply.contains("z9hG4bKprobe\(probes);") { answered = true; break }
            }
            let elapsed = ContinuousClock.now - sentAt
            if answered { slowest = max(slowest, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) } else { unanswered += 1 }
            let healthAt = ContinuousClock.now
            if await GatewayProcess.http("/health")?.hasPrefix("HTTP/1.0 200") != true || ContinuousClock.now - healthAt > .seconds(1) { unhealthy += 1 }
            try await Task.sleep(for: .milliseconds(500))
            if ContinuousClock.now - started > .seconds(180) { break }
        }
        print("udp flood: \(probes) probes, slowest OPTIONS \(slowest) s, \(unanswered) unanswered, \(unhealthy) slow or failed /health")
        #expect(unanswered == 0, "\(unanswered) of \(probes) OPTIONS unanswered within 1 s")
        #expect(unhealthy == 0, "\(unhealthy) of \(probes) /health slow or failed")
        kill(gateway.pid, SIGTERM)
        let status = await gateway.exitStatus(timeout: 15)
        #expect(status == 0, "\(String(describing: status))")
        await gateway.kill9()
    }

    @Test("with the shipped digest settings, Debian's baresip 1.0 (MD5 only) and pjsua2 (offered SHA-256 first) both register")
    func shippedDigestLetsClientsRegister() async throws {
        let scratch = try ScratchDirectory("digest"), directory = scratch.url
        defer { scratch.remove() }
        let pki = try TestPKI()
        // GatewayProcess.prepare leaves the digest keys as Config/stox.conf ships them.
        let gateway = try GatewayProcess(environment: try GatewayProcess.prepare(directory: directory, pki: pki), directory: directory, generation: 1)
        defer { Task { await gateway.kill9() } }
        #expect(await gateway.healthy(), "\(gateway.log)")
        let baresip = try Baresip(user: "bob", domain: "sip.test", password: "pw-bob", registrar: GatewayProcess.sipPort, listenPort: 25091)
        let registered = await baresip.registered()
        let baresipLog = baresip.log
        await baresip.stop()
        #expect(registered, "baresip:\n\(baresipLog)\ngateway:\n\(gateway.log)")
        #expect(!baresipLog.contains("Function not implemented"), "\(baresipLog)")
        let pjsua = try PJSUAAgent(name: "carol", user: "carol", password: "pw-carol", registrar: GatewayProcess.sipPort)
        let pjsuaRegistered = await pjsua.waitFor("registration") { $0.ev == "reg" && $0.code == 200 } != nil
        await pjsua.stop()
        #expect(pjsuaRegistered)
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
