import Foundation

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
