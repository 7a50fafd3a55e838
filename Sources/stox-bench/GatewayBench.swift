import Foundation
import NIOCore
import NIOPosix
import SIPCore
import XMLCore
import XMPPCore

/// `stox-bench gateway`: the whole gateway (`stox run`, its own process, durable queue on)
/// between a SIP load client and an XMPP s2s peer, both in this process on one event loop.
/// Scenarios: the relay baseline, messages each way (closed loop, sustained), latency at half
/// the measured maximum (open loop), presence fan-out each way, 100k subscriptions, and memory
/// per idle link. Every figure is printed, none asserted; each run is repeated and shown as
/// min / median / max, since this 2-core machine is shared with the load generator.
enum GatewayBench {
    struct Options {
        var seconds = 60.0
        var latencySeconds = 30.0
        var rounds = 3
        var window = 1000
        var transport: SIPLoadClient.Transport = .tcp
        var scenarios: [String] = GatewayBench.all
        var subscriptions = 100_000
    }

    static let all = ["baseline", "sip-to-xmpp", "xmpp-to-sip", "latency", "fanout", "scale", "idle"]

    /// The state the scenarios share: the loop, the peer, and who gets completions.
    final class Bench: @unchecked Sendable {
        let loop: any EventLoop
        let peer: BenchXMPPPeer
        var options: Options
        /// Gets sequence numbers arriving at the XMPP peer or at the SIP receiver.
        var sink: LoadDriver?
        var presence: ((XMLElement) -> Void)?
        var notify: ((SIPRequest) -> Void)?
        var unexpected: [String: Int] = [:]
        private var nextBase = 1

        init(loop: any EventLoop, peer: BenchXMPPPeer, options: Options) {
            self.loop = loop
            self.peer = peer
            self.options = options
        }

        func base() -> Int {
            defer { nextBase += 1 }
            return nextBase * 50_000_000
        }

        func stanza(_ element: XMLElement) {
            switch element.name {
            case "message":
                if element.attribute("type") == "error" {
                    unexpected["message error", default: 0] += 1
                    // A bounce of a load message (its id is "b" and the sequence): an error,
                    // and its place in the window is free.
                    if let id = element.attribute("id"), id.hasPrefix("b"), let sequence = Int(id.dropFirst()) {
                        sink?.fail(sequence)
                    } else {
                        sink?.errors += 1
                    }
                } else if let body = element.firstChild("body")?.text, let sequence = SIPLoadClient.sequence(in: body.utf8) {
                    sink?.complete(sequence)
                }
            case "presence": presence?(element)
            default: break
            }
        }

        func request(_ request: SIPRequest) {
            switch request.method {
            case .message:
                if let sequence = SIPLoadClient.sequence(in: request.body) { sink?.complete(sequence) }
            case .notify: notify?(request)
            default: break
            }
        }

        func response(_ response: SIPResponse) {
            guard !response.isSuccess else { return }
            unexpected["SIP \(response.statusCode)", default: 0] += 1
            // A refused load message never reaches XMPP: it ends here, as an error, and frees
            // its place in the window (the Call-ID carries its sequence number).
            if let sequence = response.callID.flatMap(SIPLoadClient.sequence(inCallID:)) {
                sink?.fail(sequence)
            } else {
                sink?.errors += 1
            }
        }

        func takeUnexpected() async throws -> [String: Int] {
            try await loop.submit { defer { self.unexpected = [:] }; return self.unexpected }.get()
        }
    }

    static func run(_ options: Options) async throws {
        #if DEBUG
        print("warning: debug build; build with `swift build -c release` for meaningful figures")
        #endif
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let peer = BenchXMPPPeer(loop: loop)
        try await peer.start(gatewayPort: BenchGateway.s2sPort, extraDomains: options.scenarios.contains("idle") ? idleDomains : [])
        let bench = Bench(loop: loop, peer: peer, options: options)
        peer.onStanza = { bench.stanza($0) }
        print("stox-bench gateway: stox run (own process) <-> SIP load client + XMPP s2s peer (this process, one event loop)")
        print("SIP over \(options.transport.rawValue.uppercased()); \(Int(options.seconds)) s per run, \(options.rounds) runs, window \(options.window) messages in flight")
        print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; figures are min / median / max over the runs")
        print("")
        var baseline: [Double] = []
        var maxima: [Direction: Double] = [:]
        for scenario in options.scenarios {
            do {
                switch scenario {
                case "baseline": baseline = try await Self.baseline(bench)
                case "sip-to-xmpp": maxima[.sipToXMPP] = try await Self.sustained(bench, .sipToXMPP, baseline: baseline)
                case "xmpp-to-sip": maxima[.xmppToSIP] = try await Self.sustained(bench, .xmppToSIP, baseline: baseline)
                case "latency": try await Self.latency(bench, maxima: maxima)
                case "fanout": try await Self.fanout(bench)
                case "scale": try await Self.scale(bench)
                case "idle": try await Self.idle(bench)
                default: print("unknown scenario \(scenario); known: \(all.joined(separator: ", "))")
                }
            } catch {
                // One scenario failing (a peer misbehaving, a timeout) does not end the others.
                print("  \(scenario) FAILED: \(error)")
                print("")
            }
            await BenchGateway.stopAll()
            try? await loop.submit { bench.presence = nil; bench.notify = nil; bench.sink = nil; peer.onStanza = { bench.stanza($0) } }.get()
        }
        await peer.shutdown()
        try await group.shutdownGracefully()
    }

    // MARK: Printing

    static func summary(_ values: [Double]) -> (min: Double, median: Double, max: Double) {
        let sorted = values.sorted()
        return (sorted.first ?? 0, sorted.isEmpty ? 0 : sorted[sorted.count / 2], sorted.last ?? 0)
    }

    static func row(_ name: String, _ values: [Double], unit: String, digits: Int = 0) {
        let (low, median, high) = summary(values)
        func f(_ value: Double) -> String { digits == 0 ? String(Int(value.rounded())) : String(format: "%.\(digits)f", value) }
        print("  " + name.padding(44) + f(low).leftPadding(10) + f(median).leftPadding(10) + f(high).leftPadding(10) + "  " + unit)
    }

    static func header(_ title: String) {
        print(title)
        print("  " + "".padding(44) + "min".leftPadding(10) + "median".leftPadding(10) + "max".leftPadding(10))
    }

    static func describe(_ result: LoadDriver.Result) -> String {
        let seconds = result.perSecond.map(Double.init)
        let (low, median, high) = summary(seconds)
        return "rate \(Int(result.rate))/s (per second: min \(Int(low)), median \(Int(median)), max \(Int(high))); "
            + "sent \(result.sent), arrived \(result.completed), duplicates \(result.duplicates), errors \(result.errors); "
            + String(format: "latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.1f ms", result.p50, result.p99, result.p999, result.max)
    }

    // MARK: Clients

    static func sipClient(_ bench: Bench) async throws -> SIPLoadClient {
        let client = SIPLoadClient(transport: bench.options.transport, loop: bench.loop,
                                   gateway: try SocketAddress(ipAddress: "127.0.0.1", port: BenchGateway.sipPort), domain: BenchGateway.domain)
        try await client.connect().get()
        client.onRequest = { bench.request($0) }
        client.onResponse = { bench.response($0) }
        return client
    }

    static func register(_ client: SIPLoadClient, user: String) async throws {
        let response = try await client.transact(
            method: "REGISTER", uri: "sip:\(BenchGateway.domain)", user: user, password: BenchGateway.password,
            to: "sip:\(user)@\(BenchGateway.domain)", headers: ["Expires: 3600"]).get()
        guard response.isSuccess else { throw BenchError("REGISTER \(user): \(response.statusCode) \(response.reasonPhrase)") }
    }

    /// A first MESSAGE through `transact`: it takes the 407 and opens the digest session the
    /// load then reuses.
    static func authenticate(_ client: SIPLoadClient, user: String, target: String) async throws {
        let response = try await client.transact(
            method: "MESSAGE", uri: target, user: user, password: BenchGateway.password, to: target,
            contentType: "text/plain", body: "warming up").get()
        guard response.isSuccess else { throw BenchError("MESSAGE \(user) -> \(target): \(response.statusCode) \(response.reasonPhrase)") }
    }

    // MARK: Baseline

    /// The same SIP MESSAGE bytes, window and driver, through a plain relay process into a sink
    /// that only counts bytes.
    static func baseline(_ bench: Bench) async throws -> [Double] {
        let relayPort = 35400, sinkPort = 35401
        let loop = bench.loop
        let client = SIPLoadClient(transport: .tcp, loop: loop, gateway: try SocketAddress(ipAddress: "127.0.0.1", port: relayPort),
                                   domain: BenchGateway.domain)
        // A digest session of the same shape as the gateway's, so the bytes are the same size.
        let challenge = {
            var challenge = SIPAuthorization(scheme: "Digest")
            challenge.add("realm", BenchGateway.domain)
            challenge.add("nonce", "6a1f2c3d.0000000000000000.00112233445566778899aabbccddeeff")
            challenge.add("qop", "auth")
            return challenge
        }()
        let target = "sip:x0@\(BenchXMPPPeer.domain)"
        let size = try await loop.submit {
            client.digest = DigestSession(challenge: challenge, user: "u0", password: BenchGateway.password, proxy: true)
            return client.loadMessage(user: "u0", target: target, sequence: 0).readableBytes
        }.get()
        let counter = ByteCounter(size: size)
        let sink = try await ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(counter) }
            }
            .bind(host: "127.0.0.1", port: sinkPort).get()
        let relay = try await Relay.spawn(listen: relayPort, target: sinkPort)
        defer {
            kill(relay.processIdentifier, SIGKILL)
            relay.waitUntilExit()
            sink.close(promise: nil)
        }
        try await client.connect().get()
        header("baseline: plain TCP relay process, same \(size)-byte SIP MESSAGEs, same window (\(bench.options.window))")
        var rates: [Double] = []
        var p99: [Double] = []
        for _ in 0..<bench.options.rounds {
            let driver = LoadDriver(loop: loop, base: bench.base())
            try await loop.submit {
                // Counting starts again with each run's sequence numbers (the last run drained).
                counter.bytes = 0
                counter.driver = driver
                driver.send = { client.write(client.loadMessage(user: "u0", target: target, sequence: $0)) }
                driver.flush = { client.flush() }
            }.get()
            let result = try await driver.run(seconds: min(bench.options.seconds, 20), window: bench.options.window)
            rates.append(result.rate)
            p99.append(result.p99)
        }
        row("messages/s", rates, unit: "msg/s")
        row("latency p99 (closed loop, window full)", p99, unit: "ms", digits: 2)
        try? await client.close().get()
        print("")
        return rates
    }

    /// Counts relayed bytes; every `size` bytes is one message, in order.
    final class ByteCounter: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let size: Int
        var bytes = 0
        var driver: LoadDriver?

        init(size: Int) { self.size = size }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let before = bytes / size
            bytes += unwrapInboundIn(data).readableBytes
            guard let driver else { return }
            for index in before..<(bytes / size) { driver.complete(driver.base + index) }
        }

        func channelInactive(context: ChannelHandlerContext) { bytes = 0 }
    }

    // MARK: Messages

    enum Direction: String {
        case sipToXMPP = "sip-to-xmpp", xmppToSIP = "xmpp-to-sip"

        var path: String {
            switch self {
            case .sipToXMPP: "SIP -> XMPP: MESSAGE -> stored -> 202 -> s2s -> XEP-0198 ack -> row removed"
            case .xmppToSIP: "XMPP -> SIP: s2s -> stored -> XEP-0198 ack -> MESSAGE -> 200 -> row removed"
            }
        }
    }

    /// A fresh gateway with users u0 … u`users - 1`; `BenchGateway.stopAll`, after the
    /// scenario, stops it and removes its files.
    static func startGateway(_ bench: Bench, users: Int, extraDomains: [String] = []) async throws -> BenchGateway {
        let gateway = try BenchGateway(peerPort: bench.peer.port, extraDomains: extraDomains)
        try gateway.addUsers(prefix: "u", count: users)
        try await gateway.start()
        return gateway
    }

    /// A fresh gateway and a SIP client ready for message load in `direction`: u0 sends to
    /// x0 (the 407 answered, the nonce kept), or u1 is registered to receive from x0.
    static func messageGateway(_ bench: Bench, _ direction: Direction) async throws -> (BenchGateway, SIPLoadClient) {
        let gateway = try await startGateway(bench, users: 2)
        let client = try await sipClient(bench)
        switch direction {
        case .sipToXMPP: try await authenticate(client, user: "u0", target: loadTarget)
        case .xmppToSIP: try await register(client, user: "u1")
        }
        return (gateway, client)
    }

    static let loadTarget = "sip:x0@\(BenchXMPPPeer.domain)"

    /// A driver for one run, wired to the bench's sinks and to the side that sends.
    static func driver(_ bench: Bench, _ direction: Direction, client: SIPLoadClient) async throws -> LoadDriver {
        let driver = LoadDriver(loop: bench.loop, base: bench.base())
        let peer = bench.peer
        try await bench.loop.submit {
            bench.sink = driver
            switch direction {
            case .sipToXMPP:
                driver.send = { client.sendLoad(user: "u0", target: loadTarget, sequence: $0) }
                driver.flush = { client.flush() }
            case .xmppToSIP:
                driver.send = { peer.send(BenchXMPPPeer.message(from: "x0@\(BenchXMPPPeer.domain)/load", to: "u1@\(BenchGateway.domain)", sequence: $0)) }
            }
        }.get()
        return driver
    }

    /// Closed loop for `--seconds`, `--rounds` times; the median rate.
    static func sustained(_ bench: Bench, _ direction: Direction, baseline: [Double]) async throws -> Double {
        let (gateway, client) = try await messageGateway(bench, direction)
        header(direction.path + " (SIP over \(bench.options.transport.rawValue.uppercased()))")
        var rates: [Double] = []
        for round in 0..<bench.options.rounds {
            let driver = try await driver(bench, direction, client: client)
            let result = try await driver.run(seconds: bench.options.seconds, window: bench.options.window)
            rates.append(result.rate)
            let (resent, abandoned) = try await bench.loop.submit { (client.retransmissions, client.timedOut) }.get()
            let udp = client.transport == .udp ? "; UDP retransmissions so far \(resent), abandoned \(abandoned)" : ""
            print("  run \(round + 1): " + describe(result) + (try await unexpectedText(bench)) + udp + "; gateway RSS \(gateway.residentKiB / 1024) MiB")
        }
        row("messages/s, sustained", rates, unit: "msg/s")
        ratio(rates, baseline)
        try? await client.close().get()
        print("")
        return summary(rates).median
    }

    static func unexpectedText(_ bench: Bench) async throws -> String {
        let unexpected = try await bench.takeUnexpected()
        guard !unexpected.isEmpty else { return "" }
        return "; unexpected: " + unexpected.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
    }

    static func ratio(_ rates: [Double], _ baseline: [Double]) {
        guard !baseline.isEmpty else { return }
        let ours = summary(rates).median, theirs = summary(baseline).median
        print(String(format: "  ratio to the relay baseline (medians): %.3f (%.1f%% of the machine's ceiling for these bytes)", ours / theirs, 100 * ours / theirs))
    }

    // MARK: Latency

    /// The issue's throughput targets on this machine (messages per second, TCP, durable queue).
    static let targets: [Direction: Double] = [.sipToXMPP: 40_000, .xmppToSIP: 60_000]

    /// Open loop at half the measured maximum of each direction, and at half the target too
    /// when the gateway can carry that.
    static func latency(_ bench: Bench, maxima: [Direction: Double]) async throws {
        var runs: [(direction: Direction, rate: Double, why: String)] = []
        for direction in [Direction.sipToXMPP, .xmppToSIP] {
            guard let maximum = maxima[direction], maximum > 0 else {
                print("latency, \(direction.rawValue): run the \(direction.rawValue) scenario first (its maximum sets the rate)")
                continue
            }
            runs.append((direction, (maximum / 2).rounded(), "half the median maximum"))
            if let target = targets[direction], target / 2 < maximum * 0.9 {
                runs.append((direction, target / 2, "half the target"))
            } else if let target = targets[direction] {
                print("latency, \(direction.rawValue): half the target (\(Int(target / 2))/s) is over 90% of the measured maximum; not run")
            }
        }
        for (direction, rate, why) in runs {
            let (_, client) = try await messageGateway(bench, direction)
            header("latency, \(direction.rawValue), open loop at \(Int(rate))/s (\(why)), \(Int(bench.options.latencySeconds)) s per run")
            var p50: [Double] = [], p99: [Double] = [], p999: [Double] = []
            for round in 0..<bench.options.rounds {
                let driver = try await driver(bench, direction, client: client)
                let result = try await driver.run(seconds: bench.options.latencySeconds, rate: rate)
                p50.append(result.p50)
                p99.append(result.p99)
                p999.append(result.p999)
                print("  run \(round + 1): " + describe(result) + (try await unexpectedText(bench)))
            }
            row("p50", p50, unit: "ms", digits: 2)
            row("p99", p99, unit: "ms", digits: 2)
            row("p99.9", p999, unit: "ms", digits: 2)
            try? await client.close().get()
            await BenchGateway.stopAll()
            print("")
        }
    }
}
