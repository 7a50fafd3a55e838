import Foundation
import NIOCore
import NIOPosix
import SIPCore
import SIPEdge
import StoxTesting
import Synchronization
import Testing

/// The edge on loopback, driven by plain sockets the way a SIP user agent would drive it.
@Suite(.serialized)
struct SIPEdgeTests {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    /// Short timers keep the retransmission tests fast: T1 50 ms makes Timer G fire at 50, 100,
    /// 200 ms and Timers H and J at 3.2 s.
    static let fastTimers = SIPTimerValues(t1: .milliseconds(50), t2: .milliseconds(400), t4: .milliseconds(500))

    final class Recorder: Sendable {
        let requests = Mutex<[SIPRequest]>([])
        let acks = Mutex<[SIPRequest]>([])
        let events = Mutex<[SIPEdgeEvent]>([])
    }

    static func start(timers: SIPTimerValues = .rfc3261, answer: @escaping @Sendable (SIPServerRequest) -> Void)
        async throws -> (SIPEdge, Recorder) {
        let recorder = Recorder()
        let handlers = SIPEdgeHandlers(
            request: { request in
                recorder.requests.withLock { $0.append(request.request) }
                answer(request)
            },
            ack: { ack, _ in recorder.acks.withLock { $0.append(ack) } },
            event: { event in recorder.events.withLock { $0.append(event) } })
        let edge = try await SIPEdge.start(
            SIPEdgeConfiguration(host: "127.0.0.1", udpPort: 0, tcpPort: 0, timers: timers),
            handlers: handlers, group: group)
        return (edge, recorder)
    }

    /// 200 OK from another thread, later, as the gateway answers once XMPP has.
    static let okLater: @Sendable (SIPServerRequest) -> Void = { request in
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.02) {
            request.respond(request.request.makeResponse(200, toTag: "edge1"))
        }
    }

    static func message(branch: String, via: String, cseq: Int = 1, body: String = "hello") -> String {
        """
        MESSAGE sip:bob@stox.example SIP/2.0\r
        Via: \(via);branch=\(branch)\r
        Max-Forwards: 70\r
        From: <sip:alice@corp.example>;tag=a1\r
        To: <sip:bob@stox.example>\r
        Call-ID: \(branch)@corp.example\r
        CSeq: \(cseq) MESSAGE\r
        Content-Type: text/plain\r
        Content-Length: \(body.utf8.count)\r
        \r
        \(body)
        """
    }

    @Test("a UDP request is answered at its rport with received and rport filled in; a retransmission gets the same response and is not handed up twice (§17.2.2, §18.2.1, RFC 3581)")
    func udpMessage() async throws {
        let (edge, recorder) = try await Self.start(answer: Self.okLater)
        let client = try UDPClient()
        let request = Self.message(branch: "z9hG4bKudp1", via: "SIP/2.0/UDP alice-pc.corp.example:5099;rport")
        try client.send(request, to: edge.udpAddress!.port!)
        let response = try #require(await client.receive(timeout: 5))
        #expect(response.hasPrefix("SIP/2.0 200 OK\r\n"))
        #expect(response.contains("received=127.0.0.1"))
        #expect(response.contains("rport=\(client.port)"))
        #expect(response.contains("tag=edge1"))
        try client.send(request, to: edge.udpAddress!.port!)
        #expect(await client.receive(timeout: 5) == response)
        #expect(recorder.requests.withLock { $0.count } == 1)
        await edge.stop()
    }

    @Test("an unparseable datagram is dropped and reported; the socket keeps serving (§18.3)")
    func udpGarbage() async throws {
        let (edge, recorder) = try await Self.start(answer: Self.okLater)
        let client = try UDPClient()
        try client.send("MESSAGE sip:bob@stox.example SIP/2.0\r\nVia: nonsense\r\n\r\n", to: edge.udpAddress!.port!)
        try client.send("\r\n\r\n", to: edge.udpAddress!.port!)  // a keepalive: silently ignored
        try client.send(Self.message(branch: "z9hG4bKafter", via: "SIP/2.0/UDP 127.0.0.1:\(client.port)"),
                        to: edge.udpAddress!.port!)
        let response = try #require(await client.receive(timeout: 5))
        #expect(response.hasPrefix("SIP/2.0 200 OK"))
        // No rport requested and the sent-by is the source: the response went to the Via port.
        #expect(!response.contains("received="))
        let events = recorder.events.withLock { $0 }
        #expect(events.count == 1)
        if case .malformed(_, let kind)? = events.first { #expect(kind == .invalidHeaderValue || kind == .missingRequiredHeader) }
        else { Issue.record("expected a malformed event, got \(events)") }
        await edge.stop()
    }

    @Test("a request whose essentials survive gets a plain 400 (the fault goes to the log, not the wire), over UDP and over TCP, where the connection then goes on (§8.2.6, §18.3)")
    func badRequest() async throws {
        let (edge, recorder) = try await Self.start(answer: Self.okLater)
        let udp = try UDPClient()
        let broken = Self.message(branch: "z9hG4bKbad1", via: "SIP/2.0/UDP 127.0.0.1:\(udp.port)")
            .replacingOccurrences(of: "Content-Type: text/plain", with: "Content-Type: ///")
        try udp.send(broken, to: edge.udpAddress!.port!)
        let answer = try #require(await udp.receive(timeout: 5))
        #expect(answer.hasPrefix("SIP/2.0 400 Bad Request\r\n"))
        #expect(answer.contains("Call-ID: z9hG4bKbad1@corp.example") && answer.contains("CSeq: 1 MESSAGE"))
        #expect(answer.contains(";tag="), "the 400 adds a To tag")
        // An ACK or a request without a Via gets nothing.
        try udp.send(broken.replacingOccurrences(of: "MESSAGE sip:", with: "ACK sip:").replacingOccurrences(of: "1 MESSAGE", with: "1 ACK"),
                     to: edge.udpAddress!.port!)
        #expect(await udp.receive(timeout: 0.5) == nil)

        let tcp = try TCPClient(port: edge.tcpAddress!.port!)
        let via = "SIP/2.0/TCP 127.0.0.1:5060"
        try tcp.send(Self.message(branch: "z9hG4bKbad2", via: via).replacingOccurrences(of: "Content-Type: text/plain", with: "Content-Type: ///")
                     + Self.message(branch: "z9hG4bKgood", via: via))
        let answers = await tcp.receiveMessages(2, timeout: 5)
        #expect(answers.count == 2)
        #expect(answers.first?.hasPrefix("SIP/2.0 400 Bad Request\r\n") == true)
        #expect(answers.last?.hasPrefix("SIP/2.0 200 OK") == true)
        #expect(recorder.requests.withLock { $0.map(\.callID) } == ["z9hG4bKgood@corp.example"])
        #expect(recorder.events.withLock { $0.filter { if case .malformed = $0 { true } else { false } }.count } == 3)
        await edge.stop()
    }

    @Test("responses the transaction user sends without a To tag get one, the same for every response of the transaction (§8.2.6.2)")
    func toTagPerTransaction() async throws {
        let (edge, _) = try await Self.start { request in
            request.respond(request.request.makeResponse(180))
            request.respond(request.request.makeResponse(486))
        }
        let client = try UDPClient()
        let invite = Self.message(branch: "z9hG4bKtag1", via: "SIP/2.0/UDP 127.0.0.1:\(client.port)")
            .replacingOccurrences(of: "MESSAGE sip:", with: "INVITE sip:").replacingOccurrences(of: "1 MESSAGE", with: "1 INVITE")
        try client.send(invite, to: edge.udpAddress!.port!)
        var tags: [Int: String] = [:]
        while tags.count < 3, let text = await client.receive(timeout: 5),
              case .response(let response)? = try? SIPParser().parse(datagram: text) {
            tags[response.statusCode] = response.to?.tag ?? ""
        }
        #expect(tags[100] == "", "a 100 carries no tag (§8.2.6.1)")
        let ringing = try #require(tags[180])
        #expect(!ringing.isEmpty)
        #expect(tags[486] == ringing)
        await edge.stop()
    }

    @Test("an INVITE gets 100 Trying at once; its 486 is retransmitted over UDP until the ACK, which the transaction absorbs (§17.2.1)")
    func inviteRetransmissions() async throws {
        // T1 100 ms: Timer G fires at 100, 200, 400, 400 ... ms and Timer H at 6.4 s, far beyond
        // any scheduling delay of a loaded test machine.
        let timers = SIPTimerValues(t1: .milliseconds(100), t2: .milliseconds(400), t4: .milliseconds(500))
        let (edge, recorder) = try await Self.start(timers: timers) { request in
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) {
                request.respond(request.request.makeResponse(486, toTag: "busy1"))
            }
        }
        let client = try UDPClient()
        let via = "SIP/2.0/UDP 127.0.0.1:\(client.port)"
        try client.send(Self.invite(branch: "z9hG4bKinv1", via: via), to: edge.udpAddress!.port!)
        #expect(try #require(await client.receive(timeout: 3)).hasPrefix("SIP/2.0 100 Trying"))
        var busy = 0
        while busy < 3, let response = await client.receive(timeout: 3) {
            #expect(response.hasPrefix("SIP/2.0 486"))
            busy += 1
        }
        #expect(busy == 3)  // the first and two Timer G retransmissions
        try client.send(Self.ack(branch: "z9hG4bKinv1", via: via, toTag: "busy1"), to: edge.udpAddress!.port!)
        // Retransmissions come at most 400 ms apart, so a second of silence means they stopped;
        // only what was already in flight may still arrive (without the ACK, about 15 more would).
        var late = 0
        while await client.receive(timeout: 1) != nil { late += 1 }
        #expect(late <= 4)
        #expect(recorder.acks.withLock { $0.isEmpty })  // a non-2xx ACK stays in the transaction
        #expect(recorder.events.withLock { $0.isEmpty })
        await edge.stop()
    }

    @Test("CANCEL is answered 200 and ends the pending INVITE with 487; a CANCEL matching nothing gets 481 (§9.2)")
    func cancel() async throws {
        let (edge, _) = try await Self.start { _ in }  // the TU never answers the INVITE
        let client = try UDPClient()
        let via = "SIP/2.0/UDP 127.0.0.1:\(client.port)"
        try client.send(Self.invite(branch: "z9hG4bKinv2", via: via), to: edge.udpAddress!.port!)
        #expect(try #require(await client.receive(timeout: 5)).hasPrefix("SIP/2.0 100"))
        try client.send(Self.cancel(branch: "z9hG4bKinv2", via: via), to: edge.udpAddress!.port!)
        let answers = [await client.receive(timeout: 5), await client.receive(timeout: 5)].compactMap { $0 }
        #expect(answers.contains { $0.hasPrefix("SIP/2.0 200 OK") && $0.contains("CSeq: 1 CANCEL") })
        #expect(answers.contains { $0.hasPrefix("SIP/2.0 487") && $0.contains("CSeq: 1 INVITE") })
        try client.send(Self.cancel(branch: "z9hG4bKnothing", via: via), to: edge.udpAddress!.port!)
        #expect(try #require(await client.receive(timeout: 5)).hasPrefix("SIP/2.0 481"))
        await edge.stop()
    }

    @Test("over UDP a non-INVITE transaction lingers for Timer J; over TCP it ends with the response (§17.2.2)")
    func timerJ() async throws {
        let (edge, _) = try await Self.start(timers: Self.fastTimers) { $0.respond($0.request.makeResponse(200, toTag: "j")) }
        let client = try UDPClient()
        try client.send(Self.message(branch: "z9hG4bKj1", via: "SIP/2.0/UDP 127.0.0.1:\(client.port)"),
                        to: edge.udpAddress!.port!)
        _ = try #require(await client.receive(timeout: 5))
        #expect(await edge.liveTransactionCount() == 1)
        // Timer J is 3.2 s; not gone by 1.5 s, gone soon after (polled, for a loaded machine).
        try await Task.sleep(for: .milliseconds(1500))
        #expect(await edge.liveTransactionCount() == 1)
        var waited = 0
        while await edge.liveTransactionCount() > 0, waited < 100 {
            try await Task.sleep(for: .milliseconds(100))
            waited += 1
        }
        #expect(await edge.liveTransactionCount() == 0)

        let tcp = try TCPClient(port: edge.tcpAddress!.port!)
        try tcp.send(Self.message(branch: "z9hG4bKj2", via: "SIP/2.0/TCP 127.0.0.1:5060"))
        _ = try #require(await tcp.receiveMessages(1, timeout: 5).first)
        #expect(await edge.liveTransactionCount() == 0)
        await edge.stop()
    }

    @Test("TCP frames pipelined and split messages by Content-Length, answers CRLF pings, and closes on a framing error (§18.3, RFC 5626 §3.5.1)")
    func tcpFraming() async throws {
        let (edge, recorder) = try await Self.start(answer: Self.okLater)
        let tcp = try TCPClient(port: edge.tcpAddress!.port!)
        let via = "SIP/2.0/TCP 127.0.0.1:5060"
        try tcp.send(Self.message(branch: "z9hG4bKt1", via: via, body: "one") + Self.message(branch: "z9hG4bKt2", via: via, body: "two"))
        let third = Self.message(branch: "z9hG4bKt3", via: via, body: "three")
        let cut = third.index(third.startIndex, offsetBy: 40)
        try tcp.send(String(third[..<cut]))
        try await Task.sleep(for: .milliseconds(50))
        try tcp.send(String(third[cut...]))
        let responses = await tcp.receiveMessages(3, timeout: 5)
        #expect(responses.count == 3)
        #expect(responses.allSatisfy { $0.hasPrefix("SIP/2.0 200 OK") })
        #expect(recorder.requests.withLock { $0.map { String(decoding: $0.body, as: UTF8.self) } }.sorted() == ["one", "three", "two"])

        try tcp.send("\r\n\r\n")
        #expect(await tcp.receiveRaw(timeout: 2) == "\r\n")

        try tcp.send("MESSAGE sip:bob@stox.example SIP/2.0\r\nContent-Length: 999999999\r\n\r\n")
        #expect(await tcp.waitForClose(timeout: 2))
        #expect(recorder.events.withLock { $0.contains { if case .malformed = $0 { true } else { false } } })
        await edge.stop()
    }

    @Test("a burst of 64 pipelined MESSAGEs in one TCP write gets 64 answers")
    func tcpBurst() async throws {
        let (edge, recorder) = try await Self.start { $0.respond($0.request.makeResponse(200, toTag: "t")) }
        let tcp = try TCPClient(port: edge.tcpAddress!.port!)
        let burst = (0..<64).map { Self.message(branch: "z9hG4bKburst\($0)", via: "SIP/2.0/TCP 127.0.0.1:5060") }.joined()
        try tcp.send(burst)
        let responses = await tcp.receiveMessages(64, timeout: 5)
        #expect(responses.count == 64)
        #expect(recorder.requests.withLock { $0.count } == 64)
        await edge.stop()
    }

    @Test("a response whose TCP connection closed meanwhile goes over a new connection to the Via's sent-by (§18.2.2)")
    func responseOverNewConnection() async throws {
        // The answer comes 300 ms later, as a forked delivery's would; the client's connection
        // is gone by then, but its Via names where it listens.
        let (edge, recorder) = try await Self.start { request in
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) {
                request.respond(request.request.makeResponse(200, toTag: "late"))
            }
        }
        let listener = try TCPListener()
        do {
            let client = try TCPClient(port: edge.tcpAddress!.port!)
            try client.send(Self.message(branch: "z9hG4bKgone1", via: "SIP/2.0/TCP 127.0.0.1:\(listener.port)"))
            #expect(await eventually { recorder.requests.withLock { $0.count } == 1 })
        }  // the client's connection closes here
        let response = try #require(await listener.acceptAndRead(timeout: 5))
        #expect(response.hasPrefix("SIP/2.0 200 OK\r\n"), "\(response)")
        #expect(response.contains("branch=z9hG4bKgone1"))
        #expect(recorder.events.withLock { $0.contains { if case .responseRerouted = $0 { true } else { false } } })
        await edge.stop()
    }

    @Test("a wave of 30,000 UDP transactions whose Timer J expires together does not stall the loop: an OPTIONS is answered within 1 s throughout, and every transaction is gone after (§17.2.2)")
    func timerWave() async throws {
        // Timer J is 3.2 s with these timers, so the expiries overlap the intake. With one NIO
        // task per transaction, each expiry cancelled its (already fired) task by a linear search
        // of NIO's timer heap: the wave cost O(n²) and the loop stopped answering for seconds.
        let (edge, recorder) = try await Self.start(timers: Self.fastTimers) { request in
            request.respond(request.request.makeResponse(200, toTag: "wave"))
        }
        let port = edge.udpAddress!.port!
        let total = 30_000
        let sender = try UDPClient()
        let sent = Mutex(0)
        Task.detached {
            var last = -1, stalledSince = ContinuousClock.now
            for index in 0..<total {
                try? sender.send(Self.message(branch: "z9hG4bKwave\(index)", via: "SIP/2.0/UDP 127.0.0.1:\(sender.port)"), to: port)
                sent.withLock { $0 += 1 }
                guard index % 100 == 99 else { continue }
                // Paced by the edge itself: at most a few hundred datagrams wait in its socket
                // buffer, so a probe is not queued behind the intake (on a busy machine the
                // edge is slower), and what the probes measure is the expiry wave.
                while true {
                    let live = recorder.requests.withLock { $0.count }
                    if live >= index - 300 { break }
                    if live != last { last = live; stalledSince = .now } else if ContinuousClock.now - stalledSince > .seconds(1) { break }
                    try? await Task.sleep(for: .milliseconds(2))
                }
            }
        }
        let prober = try UDPClient()
        var slowest = 0.0
        var unanswered = 0
        var probe = 0
        let started = ContinuousClock.now
        // Through the intake and past the last Timer J.
        while sent.withLock({ $0 }) < total || ContinuousClock.now - started < .seconds(6) {
            probe += 1
            let options = Self.bodiless("OPTIONS", branch: "z9hG4bKprobe\(probe)", via: "SIP/2.0/UDP 127.0.0.1:\(prober.port)")
            let sentAt = ContinuousClock.now
            try prober.send(options, to: port)
            var answered = false
            while let reply = await prober.receive(timeout: 1.0) {
                if reply.contains("z9hG4bKprobe\(probe)") { answered = true; break }
            }
            let elapsed = ContinuousClock.now - sentAt
            if answered { slowest = max(slowest, Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds)) } else { unanswered += 1 }
            try await Task.sleep(for: .milliseconds(100))
            if ContinuousClock.now - started > .seconds(120) { break }
        }
        print("timer wave: \(probe) OPTIONS, slowest answer \(slowest) s, \(unanswered) unanswered")
        #expect(unanswered == 0, "\(unanswered) of \(probe) OPTIONS went unanswered for 1 s")
        #expect(slowest < 1.0, "slowest OPTIONS answer: \(slowest) s")
        let drained = await eventually(timeout: 15) { await edge.liveTransactionCount() == 0 }
        let left = await edge.liveTransactionCount()
        #expect(drained, "\(left) transactions left after Timer J")
        await edge.stop()
    }

    /// A bodiless request of the INVITE transaction's family (INVITE, its ACK, its CANCEL).
    static func bodiless(_ method: String, branch: String, via: String, toTag: String? = nil) -> String {
        """
        \(method) sip:bob@stox.example SIP/2.0\r
        Via: \(via);branch=\(branch)\r
        Max-Forwards: 70\r
        From: <sip:alice@corp.example>;tag=a1\r
        To: <sip:bob@stox.example>\(toTag.map { ";tag=" + $0 } ?? "")\r
        Call-ID: \(branch)@corp.example\r
        CSeq: 1 \(method)\r
        Contact: <sip:alice@127.0.0.1>\r
        Content-Length: 0\r
        \r

        """
    }

    static func invite(branch: String, via: String) -> String { bodiless("INVITE", branch: branch, via: via) }
    static func ack(branch: String, via: String, toTag: String) -> String { bodiless("ACK", branch: branch, via: via, toTag: toTag) }
    static func cancel(branch: String, via: String) -> String { bodiless("CANCEL", branch: branch, via: via) }
}
