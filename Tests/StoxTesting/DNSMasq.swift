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
