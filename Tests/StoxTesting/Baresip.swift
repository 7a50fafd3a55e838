import Foundation

/// baresip as Debian ships it (package baresip-core), registering one account through a
/// registrar on loopback (given as its outbound proxy, so no DNS is needed). Its configuration
/// is Tests/Interop/baresip/config; it runs with its default digest handling. Stopped by PID.
public final class Baresip: @unchecked Sendable {
    public static let binary = "/usr/bin/baresip"
    public static var available: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    private let process = Process()
    private let directory: URL
    private let output: URL

    /// Registers `user@domain` with `password` at 127.0.0.1:`registrar` over UDP.
    public init(user: String, domain: String, password: String, registrar: Int, listenPort: Int) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("stox-baresip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let template = try String(contentsOf: Golden.repositoryRoot.appendingPathComponent("Tests/Interop/baresip/config"), encoding: .utf8)
        try template.replacingOccurrences(of: "@LISTEN@", with: "127.0.0.1:\(listenPort)")
            .write(to: directory.appendingPathComponent("config"), atomically: true, encoding: .utf8)
        try "<sip:\(user)@\(domain);transport=udp>;auth_pass=\(password);outbound=\"sip:127.0.0.1:\(registrar);transport=udp\";regint=60\n"
            .write(to: directory.appendingPathComponent("accounts"), atomically: true, encoding: .utf8)
        output = directory.appendingPathComponent("out.txt")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["-f", directory.path]
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// Everything baresip printed so far.
    public var log: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }

    /// Whether the registration was answered 200 within `timeout`.
    public func registered(timeout: Double = 10) async -> Bool {
        await eventually(timeout: timeout) { self.log.contains("200 OK") && self.log.contains("binding") }
    }

    public func stop() async {
        await ChildProcess.stop(process.processIdentifier, signal: SIGTERM, grace: 3)
        try? FileManager.default.removeItem(at: directory)
    }
}
