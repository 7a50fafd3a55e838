import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Stopping and reaping the peers the tests start, by PID. Foundation's `Process` was seen to
/// leave a child a zombie (never reaped, `isRunning` stuck at true, `waitUntilExit` hanging)
/// once a Kamailio had been started in the same test process, so the tests reap their children
/// themselves with `waitpid`.
public enum ChildProcess {
    public enum Exit: Hashable, Sendable {
        /// Reaped here: the exit status, or the signal number for a killed process (as
        /// `Process.terminationStatus` gives it).
        case status(Int32)
        /// Foundation's monitor reaped it first: `Process.terminationStatus` has the status.
        case reapedByFoundation
    }

    /// Starts `executable` with `arguments` (standard streams to /dev/null) without Foundation's
    /// `Process`: a daemon that closes every inherited descriptor at start (dnsmasq does) closes
    /// the socket `Process` watches, and its monitor then blocks in `wait4` on the live child,
    /// hanging every other `Process` of the test run. Stop it with `stop(_:)`.
    /// `output`: a file for standard output and error (created or truncated), else /dev/null.
    public static func spawn(_ executable: String, _ arguments: [String], output: String? = nil) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        if let output {
            posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)
        } else {
            posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard result == 0 else { throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(executable): posix_spawn \(result)"]) }
        return pid
    }

    /// Waits up to `timeout` seconds for `pid` to exit; nil if it is still running. Blocks the
    /// calling thread (call it off the cooperative pool), except with timeout 0: one look.
    public static func wait(_ pid: Int32, timeout: Double) -> Exit? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                let signal = status & 0x7f
                return .status(signal == 0 ? (status >> 8) & 0xff : signal)
            }
            if result == -1, errno == ECHILD { return .reapedByFoundation }
            if Date() >= deadline { return nil }
            usleep(20_000)
        }
    }

    /// Sends `signal`, waits `grace` seconds, then SIGKILL, and reaps it.
    public static func stop(_ pid: Int32, signal: Int32 = SIGTERM, grace: Double = 3) {
        kill(pid, signal)
        if wait(pid, timeout: grace) != nil { return }
        kill(pid, SIGKILL)
        _ = wait(pid, timeout: 5)
    }

    /// The processes `pid` started, and theirs, read from /proc (Linux): a server that forks its
    /// workers (Kamailio) is stopped by each of their PIDs too.
    public static func descendants(of pid: Int32) -> [Int32] {
        var parents: [Int32: [Int32]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let child = Int32(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // "pid (comm) state ppid ...": the command may hold spaces, so read after the ")".
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, let parent = Int32(fields[1]) else { continue }
            parents[parent, default: []].append(child)
        }
        var found: [Int32] = []
        var queue = [pid]
        while let next = queue.popLast() {
            for child in parents[next] ?? [] {
                found.append(child)
                queue.append(child)
            }
        }
        return found
    }

    /// Stops a server and every process it forked: `signal` to the main PID, then after
    /// `grace` seconds SIGKILL to each descendant and to the main PID, which is reaped.
    public static func stopTree(_ pid: Int32, signal: Int32 = SIGTERM, grace: Double = 3) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                let children = descendants(of: pid)
                kill(pid, signal)
                if wait(pid, timeout: grace) == nil {
                    for child in children { kill(child, SIGKILL) }
                    kill(pid, SIGKILL)
                    _ = wait(pid, timeout: 5)
                }
                // Workers that outlived their parent (it did not take them along).
                for child in children where kill(child, 0) == 0 { kill(child, SIGKILL) }
                continuation.resume()
            }
        }
    }

    /// `stop` off the cooperative pool.
    public static func stop(_ pid: Int32, signal: Int32 = SIGTERM, grace: Double = 3) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                stop(pid, signal: signal, grace: grace)
                continuation.resume()
            }
        }
    }
}
