import Foundation
import Synchronization
import Testing

/// One line of Tests/Interop/pjsua2/stox_ua.py's output.
public struct UAEvent: Decodable, Sendable, CustomStringConvertible {
    public var ev: String
    public var code: Int?
    public var active: Bool?
    public var frm: String?
    public var to: String?
    public var uri: String?
    public var body: String?
    public var status: String?
    public var note: String?
    public var reason: String?
    public var activity: Int?
    public var sub_state: String?
    public var t: Double?

    public var time: Double { t ?? 0 }

    public var description: String { "\(ev) code=\(code.map(String.init) ?? "-") from=\(frm ?? "-") body=\(body ?? "-") status=\(status ?? "-") note=\(note ?? "-") activity=\(activity.map(String.init) ?? "-") sub=\(sub_state ?? "-")" }
}

/// A peer script (Python) driven through standard input, one command per line, whose output is
/// read as JSON lines of `Event`. Started and stopped by its PID; reading happens on a thread of
/// its own, never on the cooperative pool.
public final class ScriptedAgent<Event: Decodable & Sendable>: Sendable {
    public let name: String
    private let process: Process
    private let input: FileHandle
    private final class Output: Sendable {
        let events = Mutex<[Event]>([])
        let lines = Mutex<[String]>([])
    }
    private let output = Output()

    public init(name: String, executable: String, arguments: [String]) throws {
        self.name = name
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        input = stdin.fileHandleForWriting
        try process.run()
        let reader = stdout.fileHandleForReading
        let output = self.output
        Thread.detachNewThread {
            var pending = Data()
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = pending[pending.startIndex..<newline]
                    pending.removeSubrange(pending.startIndex...newline)
                    output.lines.withLock { $0.append(String(decoding: line, as: UTF8.self)) }
                    if let event = try? JSONDecoder().decode(Event.self, from: Data(line)) {
                        output.events.withLock { $0.append(event) }
                    }
                }
            }
        }
    }

    public var pid: Int32 { process.processIdentifier }

    public func command(_ line: String) {
        try? input.write(contentsOf: Data((line + "\n").utf8))
    }

    /// Waits for an event matching `predicate` (seen before the call or after); records an
    /// issue with the agent's whole output when none comes.
    public func waitFor(_ description: String, timeout: Double = 10, _ predicate: @escaping @Sendable (Event) -> Bool) async -> Event? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let event = output.events.withLock({ $0.first(where: predicate) }) { return event }
            try? await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("\(name): no \(description) within \(timeout) s; output:\n\(transcript)")
        return nil
    }

    public func all(_ predicate: (Event) -> Bool) -> [Event] { output.events.withLock { $0.filter(predicate) } }

    public var transcript: String { output.lines.withLock { $0.joined(separator: "\n") } }

    public func suspend() { kill(pid, SIGSTOP) }
    public func resume() { kill(pid, SIGCONT) }

    /// `quit`, then SIGKILL by PID if it has not left within 3 s.
    public func stop() async {
        resume()
        command("quit")
        await ChildProcess.stop(pid, signal: 0, grace: 3)
    }
}

/// A real pjsip user agent (pjsua2 from PyPI, in the venv Tests/install-peers.sh makes):
/// Tests/Interop/pjsua2/stox_ua.py.
public typealias PJSUAAgent = ScriptedAgent<UAEvent>

extension ScriptedAgent where Event == UAEvent {
    public static var script: URL { Golden.repositoryRoot.appendingPathComponent("Tests/Interop/pjsua2/stox_ua.py") }
    public static var python: String {
        ProcessInfo.processInfo.environment["STOX_PJSUA_PYTHON"]
            ?? Golden.repositoryRoot.appendingPathComponent(".build/interop-venv/bin/python").path
    }

    public convenience init(name: String, user: String, password: String, registrar: Int, extra: [String] = []) throws {
        try self.init(name: name, executable: Self.python, arguments: [
            "-u", Self.script.path, "--user", user, "--password", password,
            "--registrar", String(registrar), "--user-agent", "PJSUA stox-test \(name)",
        ] + extra)
    }
}

/// One line of Tests/Interop/xmpp_agent.py's output.
public struct XMPPEvent: Decodable, Sendable, CustomStringConvertible {
    public var ev: String
    public var frm: String?
    public var to: String?
    public var type: String?
    public var body: String?
    public var id: String?
    public var show: String?
    public var status: String?
    public var error: String?
    public var state: String?
    public var t: Double?

    public var time: Double { t ?? 0 }
    public var description: String { "\(ev) from=\(frm ?? "-") type=\(type ?? "-") body=\(body ?? "-") show=\(show ?? "-") status=\(status ?? "-") error=\(error ?? "-")" }
}

/// A scripted XMPP client on Prosody (slixmpp): Tests/Interop/xmpp_agent.py.
public typealias XMPPAgent = ScriptedAgent<XMPPEvent>

extension ScriptedAgent where Event == XMPPEvent {
    public convenience init(jid: String, password: String, server: Int, resource: String? = nil) throws {
        try self.init(name: jid, executable: "/usr/bin/python3", arguments: [
            "-u", Golden.repositoryRoot.appendingPathComponent("Tests/Interop/xmpp_agent.py").path,
            "--jid", jid, "--password", password, "--server", "127.0.0.1:\(server)",
        ] + (resource.map { ["--resource", $0] } ?? []))
    }
}
