import Foundation

/// A private DNS server on loopback (dnsmasq, Debian's dnsmasq-base), authoritative for the
/// test zones with no upstream, serving the SRV records through which peers find each other
/// as they would in production. Stopped by PID.
public final class DNSMasq: @unchecked Sendable {
    public static let binary = "/usr/sbin/dnsmasq"
    public static var available: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    public struct SRV: Sendable {
        public var name: String
        public var target: String
        public var port: Int
        public init(_ name: String, target: String = "127.0.0.1", port: Int) {
            self.name = name
            self.target = target
            self.port = port
        }
    }

    private var pid: Int32 = 0
    public let port: Int
    public let run: URL

    /// Serves `zones` (e.g. `test`, `internal`) with `hosts` (name → IPv4) and `srv` records.
    public init(port: Int, zones: [String], hosts: [String: String], srv: [SRV]) throws {
        self.port = port
        run = FileManager.default.temporaryDirectory.appendingPathComponent("stox-dnsmasq-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        var arguments = [
            "--keep-in-foreground", "--user=root", "--group=root", "--port=\(port)", "--listen-address=127.0.0.1",
            "--bind-interfaces", "--interface=lo", "--no-resolv", "--no-hosts", "--no-poll",
            "--pid-file=\(run.appendingPathComponent("dnsmasq.pid").path)", "--log-queries",
            "--log-facility=\(run.appendingPathComponent("dnsmasq.log").path)",
        ]
        arguments += zones.map { "--local=/\($0)/" }
        arguments += hosts.sorted { $0.key < $1.key }.map { "--host-record=\($0.key),\($0.value)" }
        arguments += srv.map { "--srv-host=\($0.name),\($0.target),\($0.port),0,5" }
        pid = try ChildProcess.spawn(Self.binary, arguments)
        // Ready once it answers on its port (UDP: a bound socket refuses our bind).
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, !Self.bound(port) { usleep(50_000) }
    }

    public var log: String { (try? String(contentsOf: run.appendingPathComponent("dnsmasq.log"), encoding: .utf8)) ?? "" }

    private static func bound(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return result != 0
    }

    public func stop() {
        ChildProcess.stop(pid, signal: SIGTERM, grace: 3)
        try? FileManager.default.removeItem(at: run)
    }
}

/// ejabberd 23.01 as Debian ships it, serving e.test on loopback (Tests/Interop/ejabberd),
/// resolving peers through `dnsServerPort` only. Users register with `register`. Stopped by PID
/// (its Erlang VM and children).
public final class Ejabberd: @unchecked Sendable {
    public static let ctl = "/usr/sbin/ejabberdctl"
    public static var available: Bool { FileManager.default.isExecutableFile(atPath: ctl) }
    public static let c2sPort = 35222
    public static let s2sPort = 35269

    private var pid: Int32 = 0
    public let run: URL

    public init(certificate: (String, String), dnsServerPort: Int, users: [(String, String)] = [("juliet", "pw")]) throws {
        // A stale instance (a test run killed before its cleanup) would answer in its place.
        if (try? TCPClient(port: Self.c2sPort)) != nil {
            throw CocoaError(.fileWriteFileExists, userInfo: [NSLocalizedDescriptionKey: "127.0.0.1:\(Self.c2sPort) is taken: a stale ejabberd?"])
        }
        run = URL(fileURLWithPath: "/tmp").appendingPathComponent("stox-ejabberd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: run.appendingPathComponent("logs"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: run.appendingPathComponent("spool"), withIntermediateDirectories: true)
        // ejabberdctl run as root drops to the ejabberd user: it must read the certificate.
        let cert = run.appendingPathComponent("e.test.crt").path, key = run.appendingPathComponent("e.test.key").path
        try FileManager.default.copyItem(atPath: certificate.0, toPath: cert)
        try FileManager.default.copyItem(atPath: certificate.1, toPath: key)
        let source = Golden.repositoryRoot.appendingPathComponent("Tests/Interop/ejabberd")
        for file in ["ejabberd.yml", "ejabberdctl.cfg", "inetrc"] {
            let text = try String(contentsOf: source.appendingPathComponent(file), encoding: .utf8)
                .replacingOccurrences(of: "@RUN@", with: run.path).replacingOccurrences(of: "@CERT@", with: cert)
                .replacingOccurrences(of: "@KEY@", with: key).replacingOccurrences(of: "@DNSPORT@", with: String(dnsServerPort))
            try text.write(to: run.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        try Self.shell(["chown", "-R", "ejabberd:ejabberd", run.path])
        pid = try ChildProcess.spawn(Self.ctl, control(["foreground"]))
        let deadline = Date().addingTimeInterval(60)
        var up = false
        while Date() < deadline {
            if (try? Self.shell([Self.ctl] + control(["status"]))) == 0 { up = true; break }
            usleep(500_000)
        }
        guard up else {
            stop()
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "ejabberd did not start; see \(run.path)/logs"])
        }
        for (user, password) in users { _ = try? Self.shell([Self.ctl] + control(["register", user, "e.test", password])) }
    }

    private func control(_ command: [String]) -> [String] {
        ["--config-dir", run.path, "--logs", run.appendingPathComponent("logs").path,
         "--spool", run.appendingPathComponent("spool").path] + command
    }

    public var log: String {
        (try? String(contentsOf: run.appendingPathComponent("logs/ejabberd.log"), encoding: .utf8)) ?? ""
    }

    /// Runs a command to completion (spawned and reaped here, as the servers are); its status.
    @discardableResult
    static func shell(_ arguments: [String]) throws -> Int32 {
        let executable = arguments[0].hasPrefix("/") ? arguments[0] : "/usr/bin/" + arguments[0]
        let pid = try ChildProcess.spawn(executable, Array(arguments.dropFirst()))
        guard case .status(let status)? = ChildProcess.wait(pid, timeout: 60) else {
            ChildProcess.stop(pid, signal: SIGKILL, grace: 1)
            return -1
        }
        return status
    }

    public func stop() {
        // The Erlang VM runs under the ejabberdctl script (su to the ejabberd user): stop the tree.
        let tree = ChildProcess.descendants(of: pid)
        for child in tree.reversed() { kill(child, SIGTERM) }
        ChildProcess.stop(pid, signal: SIGTERM, grace: 5)
        for child in tree { kill(child, SIGKILL) }
        try? FileManager.default.removeItem(at: run)
    }
}
