import Foundation

/// A running Prosody, stopped by PID when the test ends.
public final class Prosody {
    public static let c2sPort = 15222
    public static let s2sPort = 15269
    public static let componentPort = 15347
    public static let componentSecret = "component-secret-for-tests"
    static let interop = Golden.repositoryRoot.appendingPathComponent("Tests/Interop")

    let process = Process()
    public let run: URL

    /// Prosody for a.test (Tests/Interop/prosody/prosody.cfg.lua) with `users` (name, password)
    /// registered; `gatewayPort` is where sip.test's s2s listener is.
    /// With `dnsPort`, Prosody finds peers through SRV records at that DNS server instead of
    /// the static route to the gateway.
    public init(mode: String, certificate: (String, String), ca: String?, gatewayPort: Int,
                users: [(String, String)] = [("alice", "pw")], dnsPort: Int? = nil, gatewayDomains: [String] = ["sip.test"]) throws {
        run = FileManager.default.temporaryDirectory.appendingPathComponent("stox-prosody-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: run.appendingPathComponent("data"), withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        environment["STOX_PROSODY_RUN"] = run.path
        environment["STOX_PROSODY_MODE"] = mode
        environment["STOX_PROSODY_CERT"] = certificate.0
        environment["STOX_PROSODY_KEY"] = certificate.1
        environment["STOX_CA"] = ca
        environment["STOX_GATEWAY_PORT"] = String(gatewayPort)
        environment["STOX_GATEWAY_DOMAINS"] = gatewayDomains.joined(separator: ",")
        environment["STOX_C2S_PORT"] = String(Prosody.c2sPort)
        environment["STOX_S2S_PORT"] = String(Prosody.s2sPort)
        environment["STOX_COMPONENT_PORT"] = String(Prosody.componentPort)
        environment["STOX_COMPONENT_SECRET"] = Prosody.componentSecret
        if let dnsPort { environment["STOX_PROSODY_DNS"] = String(dnsPort) }
        environment["STOX_PLUGINS"] = Self.interop.appendingPathComponent("prosody/plugins").path
        let config = Self.interop.appendingPathComponent("prosody/prosody.cfg.lua").path
        for (user, password) in users {
            let register = Process()
            register.executableURL = URL(fileURLWithPath: "/usr/bin/prosodyctl")
            register.arguments = ["--config", config, "register", user, "a.test", password]
            register.environment = environment
            register.standardOutput = FileHandle.nullDevice
            register.standardError = FileHandle.nullDevice
            try register.run()
            register.waitUntilExit()
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prosody")
        process.arguments = ["-F", "--config", config]
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        guard Self.waitForPort(Prosody.c2sPort), Self.waitForPort(Prosody.s2sPort) else {
            stop()
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "Prosody did not start; see \(run.path)/prosody.log"])
        }
    }

    /// SIGTERM, then SIGKILL after five seconds: a Prosody started under the test runner may
    /// inherit a signal mask that holds SIGTERM back. Reaped with waitpid (ChildProcess).
    public func stop() {
        guard !stopped else { return }
        stopped = true
        ChildProcess.stop(process.processIdentifier, signal: SIGTERM, grace: 5)
    }

    private var stopped = false

    /// Its run directory (data, log) goes with it; the log stays readable until then.
    deinit {
        stop()
        try? FileManager.default.removeItem(at: run)
    }

    public var log: String { (try? String(contentsOf: run.appendingPathComponent("prosody.log"), encoding: .utf8)) ?? "" }

    public static func waitForPort(_ port: Int, seconds: Double = 15) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            close(socket)
            if connected == 0 { return true }
            usleep(100_000)
        }
        return false
    }
}
