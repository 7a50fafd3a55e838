import Foundation
import NIOCore
import NIOPosix
import XMLCore
import XMPPCore
import XMPPFederation

/// `stox-bench s2s`: stanzas per second over one server-to-server link on loopback, between two
/// gateways in this process (each on its own event loop), with and without TLS. The sender
/// writes N messages; the clock stops when the receiver has them all.
enum S2SBench {
    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        private var continuation: CheckedContinuation<Void, Never>?
        private var target = Int.max

        func add() {
            lock.lock()
            count += 1
            let done = count >= target ? continuation : nil
            if done != nil { continuation = nil }
            lock.unlock()
            done?.resume()
        }

        func wait(for target: Int) async {
            await withCheckedContinuation { continuation in
                lock.lock()
                if count >= target {
                    lock.unlock()
                    continuation.resume()
                    return
                }
                self.target = target
                self.continuation = continuation
                lock.unlock()
            }
        }

        func reset() { lock.withLock { count = 0; target = .max } }
    }

    static func run(rounds: Int, count: Int) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stox-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        print("s2s link: \(count) messages of ~200 bytes per round, \(rounds) rounds; sender and receiver in this process")
        print(StoxBench.Row.header.replacingOccurrences(of: "min ns/op   ", with: "min msg/s   "))
        for tls in [false, true] {
            var material: (S2SConfiguration.TLSMaterial, S2SConfiguration.TLSMaterial)? = nil
            if tls {
                material = (try certificate("sip.test", directory), try certificate("capulet.test", directory))
            }
            // Self-signed certificates: TLS with dialback, as with most legacy peers.
            let policy = PeerPolicy(tls: tls ? .required : .optional, allowDialback: true, requireValidCertificate: false)
            let counter = Counter()
            let a = S2SService(
                configuration: .init(servedDomains: ["sip.test"], tls: material?.0, dialbackSecret: "a", defaultPolicy: policy, listenPort: 0),
                eventLoop: group.next(), onStanza: { _ in })
            let b = S2SService(
                configuration: .init(servedDomains: ["capulet.test"], tls: material?.1, dialbackSecret: "b", defaultPolicy: policy, listenPort: 0),
                eventLoop: group.next(), onStanza: { _ in counter.add() })
            let aPort = try await a.start().get()
            let bPort = try await b.start().get()
            try await a.addRoute("capulet.test", host: "127.0.0.1", port: bPort).get()
            try await b.addRoute("sip.test", host: "127.0.0.1", port: aPort).get()
            // Establish the link first.
            a.send(message(0))
            await counter.wait(for: 1)
            var rates: [Double] = []
            for _ in 0..<rounds {
                counter.reset()
                let start = ContinuousClock.now
                for index in 0..<count { a.send(message(index)) }
                await counter.wait(for: count)
                let elapsed = start.duration(to: .now)
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                rates.append(Double(count) / seconds)
            }
            rates.sort()
            let name = tls ? "s2s, STARTTLS + dialback" : "s2s, plain TCP + dialback"
            print(name.padding(46) + String(Int(rates.first!)).leftPadding(12) + String(Int(rates[rates.count / 2])).leftPadding(12)
                + String(Int(rates.last!)).leftPadding(12))
            try await a.shutdown().get()
            try await b.shutdown().get()
        }
        try await group.shutdownGracefully()
    }

    static func message(_ index: Int) -> XMLElement {
        var message = XMLElement("message", namespace: XMPPNamespace.server, attributes: [
            "from": "romeo@sip.test/desk", "to": "juliet@capulet.test", "type": "chat", "id": "m\(index)",
        ])
        message.append(XMLElement("body", namespace: XMPPNamespace.server, text: "Wherefore art thou, Romeo? Message \(index)."))
        return message
    }

    static func certificate(_ domain: String, _ directory: URL) throws -> S2SConfiguration.TLSMaterial {
        let key = directory.appendingPathComponent("\(domain).key").path
        let cert = directory.appendingPathComponent("\(domain).crt").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=\(domain)",
                             "-addext", "subjectAltName=DNS:\(domain)", "-keyout", key, "-out", cert]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return .init(certificateChainPath: cert, privateKeyPath: key)
    }
}
