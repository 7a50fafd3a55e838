import Foundation
import NIOCore
import NIOPosix
import SIPCore
import SIPEdge

/// Requests per second through the SIP edge on loopback, driven by SIPp (a real UA, as in the
/// interop tests) with the project's pager scenario: SIPp keeps `window` MESSAGEs in flight and
/// the transaction user answers 200 at once, so the figure is the edge's cost (parse,
/// transaction match, timers, serialize) plus SIPp's own, which bounds it from above.
enum SIPEdgeBench {
    static func run(rounds: Int, count: Int) async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sipp") else {
            print("stox-bench sip needs SIPp (Tests/install-peers.sh installs it)")
            return
        }
        let scenario = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Tests/Interop/sipp/pager_uac.xml").path
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let edge = try await SIPEdge.start(
            SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: 0),
            handlers: SIPEdgeHandlers(request: { $0.respond($0.request.makeResponse(200, toTag: "b")) }),
            group: group)
        let window = 64
        print("SIP edge: \(count) MESSAGEs per round from SIPp, \(window) in flight, answered 200 at once; \(rounds) rounds")
        print(StoxBench.Row.header.replacingOccurrences(of: "min ns/op   ", with: "min req/s   "))
        for (transport, address) in [("u1", edge.udpAddress!), ("t1", edge.tcpAddress!)] {
            var rates: [Double] = []
            for _ in 0..<rounds {
                let start = ContinuousClock.now
                let status = try await sipp(scenario: scenario, port: address.port!, transport: transport,
                                            count: count, window: window)
                let elapsed = start.duration(to: .now)
                guard status == 0 else {
                    print("\(transport): SIPp reported failed calls (exit \(status)); round not counted")
                    continue
                }
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                rates.append(Double(count) / seconds)
            }
            guard !rates.isEmpty else { continue }
            rates.sort()
            let name = "SIP edge + SIPp, \(transport == "u1" ? "UDP" : "TCP"), MESSAGE → 200".padding(46)
            let figures = [rates.first!, rates[rates.count / 2], rates.last!].map { String(Int($0)).leftPadding(12) }
            print(name + figures.joined())
        }
        await edge.stop()
        try await group.shutdownGracefully()
    }

    /// One SIPp run at an unbounded rate (the window is the only limit); its exit status.
    static func sipp(scenario: String, port: Int, transport: String, count: Int, window: Int) async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sipp")
        process.arguments = [
            "-sf", scenario, "-s", "juliet", "127.0.0.1:\(port)", "-i", "127.0.0.1", "-p", "0",
            "-t", transport, "-m", String(count), "-r", "1000000", "-l", String(window), "-nostdin",
            "-timeout", "120", "-timeout_error",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.currentDirectoryURL = FileManager.default.temporaryDirectory
        try process.run()
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
    }
}
