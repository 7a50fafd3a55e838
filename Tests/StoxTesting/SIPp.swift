import Foundation

/// SIPp (Debian's `sip-tester`, installed by Tests/install-peers.sh), a real and strict user
/// agent, running the project's scenarios in Tests/Interop/sipp. SIPp exits 0 only when every
/// call of its scenario succeeded. Each run is stopped by its PID.
public enum SIPp {
    public static let scenarios = Golden.repositoryRoot.appendingPathComponent("Tests/Interop/sipp")

    public struct Run: Sendable {
        public var status: Int32
        public var output: String
        /// Every message SIPp sent and received (`-trace_msg`), when asked for.
        public var messages: String
    }

    /// Runs SIPp to completion (or kills it after `limit` seconds), off the cooperative pool.
    public static func run(_ scenario: String, port: Int, transport: String, calls: Int, rate: Int,
                           limit: Double = 60, traceMessages: Bool = false, service: String = "juliet",
                           arguments extra: [String] = []) async throws -> Run {
        // A directory of its own: SIPp names its trace files after the scenario and its PID.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stox-sipp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sipp")
        process.arguments = [
            "-sf", scenarios.appendingPathComponent(scenario).path, "-s", service, "127.0.0.1:\(port)",
            "-i", "127.0.0.1", "-p", "0", "-t", transport, "-m", String(calls), "-r", String(rate),
            "-l", "100", "-nostdin", "-timeout", String(Int(limit)), "-timeout_error",
        ] + (traceMessages ? ["-trace_msg"] : []) + extra
        // A file, not a pipe: SIPp can never block on a reader that is not keeping up.
        let log = directory.appendingPathComponent("output.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let output = try FileHandle(forWritingTo: log)
        defer { try? output.close() }
        process.standardOutput = output
        process.standardError = output
        process.currentDirectoryURL = directory
        try process.run()
        let pid = process.processIdentifier
        let status: Int32 = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var exit = ChildProcess.wait(pid, timeout: limit + 10)
                if exit == nil {
                    kill(pid, SIGKILL)
                    exit = ChildProcess.wait(pid, timeout: 5)
                }
                switch exit {
                case .status(let status): continuation.resume(returning: status)
                case .reapedByFoundation:
                    // Foundation saw the exit, so it has the real status: never take it for 0.
                    process.waitUntilExit()
                    continuation.resume(returning: process.terminationStatus)
                case nil: continuation.resume(returning: SIGKILL)
                }
            }
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        let traces = (try? FileManager.default.contentsOfDirectory(atPath: directory.path))?.filter { $0.hasSuffix("_messages.log") } ?? []
        let messages = traces.compactMap { try? String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8) }.joined()
        return Run(status: status, output: text, messages: messages)
    }

    /// The figures SIPp prints at the end, for the failure message.
    public static func summary(_ output: String) -> String {
        output.split(separator: "\n").filter { $0.contains("Successful call") || $0.contains("Failed call")
            || $0.contains("Retransmissions") || $0.contains("Unexpected") }.joined(separator: "\n")
    }
}
