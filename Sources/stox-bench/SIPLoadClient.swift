import Foundation
import NIOCore
import NIOPosix
import SIPCore

/// A SIP user agent built for load, not for conformance: one TCP connection (or one UDP socket)
/// to the gateway, requests written from templates with many in flight, and one flush per burst
/// rather than per request. Setup requests (REGISTER, the first MESSAGE, SUBSCRIBE, PUBLISH) go
/// through `transact`, which answers digest challenges; load requests reuse the nonce with a
/// rising nonce count (RFC 7616 §3.4.5), one MD5 each. Requests from the gateway (MESSAGE,
/// NOTIFY) are answered 200 at once and handed to `onRequest`. Everything runs on `loop`.
final class SIPLoadClient: @unchecked Sendable {
    enum Transport: String, Sendable { case tcp, udp }

    let transport: Transport
    let loop: any EventLoop
    let gateway: SocketAddress
    let domain: String
    private(set) var channel: (any Channel)!
    private(set) var localPort = 0

    /// Final responses to requests not sent through `transact` (the load).
    var onResponse: ((SIPResponse) -> Void)?
    /// Requests from the gateway, after they were answered 200.
    var onRequest: ((SIPRequest) -> Void)?
    var protocolErrors = 0

    private var transactions: [String: EventLoopPromise<SIPResponse>] = [:]
    private var counter = 0
    private let parser = SIPParser()

    init(transport: Transport, loop: any EventLoop, gateway: SocketAddress, domain: String) {
        self.transport = transport
        self.loop = loop
        self.gateway = gateway
        self.domain = domain
    }

    func connect() -> EventLoopFuture<Void> {
        switch transport {
        case .tcp:
            return ClientBootstrap(group: loop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(StreamHandler(client: self)) }
                }
                .connect(to: gateway)
                .map { channel in
                    self.channel = channel
                    self.localPort = channel.localAddress?.port ?? 0
                }
        case .udp:
            return DatagramBootstrap(group: loop)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(DatagramHandler(client: self)) }
                }
                .bind(host: "127.0.0.1", port: 0)
                .map { channel in
                    self.channel = channel
                    self.localPort = channel.localAddress?.port ?? 0
                }
        }
    }

    func close() -> EventLoopFuture<Void> {
        loop.submit { self.retransmitter?.cancel() }.flatMap { self.channel.close() }.recover { _ in }
    }

    // MARK: Writing

    /// Queues bytes; nothing leaves before `flush` (one syscall per burst).
    func write(_ buffer: ByteBuffer) {
        switch transport {
        case .tcp: channel.write(buffer, promise: nil)
        case .udp: channel.write(AddressedEnvelope(remoteAddress: gateway, data: buffer), promise: nil)
        }
    }

    func flush() { channel.flush() }

    var viaTransport: String { transport == .tcp ? "TCP" : "UDP" }
    var contactParameters: String { transport == .tcp ? ";transport=tcp" : "" }

    func nextTag() -> Int {
        counter += 1
        return counter
    }

    // MARK: Setup transactions, with digest

    /// Sends a request and completes with its final response, answering one 401/407 challenge
    /// with `password`. The digest session the challenge opened is kept for `messageLoad`.
    func transact(method: String, uri: String, user: String, password: String, to: String,
                  headers: [String] = [], contentType: String? = nil, body: String = "") -> EventLoopFuture<SIPResponse> {
        let callID = "setup-\(nextTag())-\(localPort)@bench"
        return send(method: method, uri: uri, user: user, to: to, callID: callID, cseq: 1, headers: headers,
                    contentType: contentType, body: body).flatMap { response in
            guard response.statusCode == 401 || response.statusCode == 407 else { return self.loop.makeSucceededFuture(response) }
            let proxy = response.statusCode == 407
            let challenges = response.headers.values(proxy ? .proxyAuthenticate : .wwwAuthenticate).compactMap(SIPAuthorization.parse)
            guard let challenge = challenges.first(where: { $0.algorithm.uppercased() == "MD5" }),
                  var session = DigestSession(challenge: challenge, user: user, password: password, proxy: proxy) else {
                return self.loop.makeSucceededFuture(response)
            }
            let authorization = session.authorization(method: SIPMethod(method), uri: uri)
            self.digest = session
            return self.send(method: method, uri: uri, user: user, to: to, callID: callID, cseq: 2,
                             headers: headers + ["\(proxy ? "Proxy-Authorization" : "Authorization"): \(authorization)"],
                             contentType: contentType, body: body)
        }
    }

    /// The digest session opened by the last challenge (realm, nonce, count).
    var digest: DigestSession?

    private func send(method: String, uri: String, user: String, to: String, callID: String, cseq: Int,
                      headers: [String], contentType: String?, body: String) -> EventLoopFuture<SIPResponse> {
        let promise = loop.makePromise(of: SIPResponse.self)
        transactions[callID] = promise
        var text = "\(method) \(uri) SIP/2.0\r\n"
        text += "Via: SIP/2.0/\(viaTransport) 127.0.0.1:\(localPort);branch=z9hG4bK-s\(nextTag());rport\r\n"
        text += "Max-Forwards: 70\r\n"
        text += "From: <sip:\(user)@\(domain)>;tag=f\(nextTag())\r\n"
        text += "To: <\(to)>\r\n"
        text += "Call-ID: \(callID)\r\n"
        text += "CSeq: \(cseq) \(method)\r\n"
        text += "Contact: <sip:\(user)@127.0.0.1:\(localPort)\(contactParameters)>\r\n"
        for header in headers { text += header + "\r\n" }
        if let contentType { text += "Content-Type: \(contentType)\r\n" }
        text += "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
        write(ByteBuffer(string: text))
        flush()
        // A setup transaction that gets no answer fails the run instead of hanging it.
        let timeout = loop.scheduleTask(in: .seconds(10)) {
            if let pending = self.transactions.removeValue(forKey: callID) {
                pending.fail(BenchError("no answer to \(method) \(uri) within 10 s"))
            }
        }
        return promise.futureResult.always { _ in timeout.cancel() }
    }

    // MARK: Load messages

    /// A MESSAGE from `user` to `target` whose body carries `sequence` in a fixed width, so that
    /// every request of a run has the same size (the relay baseline relies on it).
    func loadMessage(user: String, target: String, sequence: Int) -> ByteBuffer {
        let tag = nextTag()
        let body = "Load message #" + Self.fixed(sequence) + ": wherefore art thou, Romeo? Deny thy father."
        var buffer = ByteBufferAllocator().buffer(capacity: 900)
        buffer.writeString("MESSAGE \(target) SIP/2.0\r\n")
        buffer.writeString("Via: SIP/2.0/\(viaTransport) 127.0.0.1:\(localPort);branch=z9hG4bK-")
        buffer.writeString(Self.fixed(tag))
        buffer.writeString(";rport\r\nMax-Forwards: 70\r\nFrom: <sip:\(user)@\(domain)>;tag=")
        buffer.writeString(Self.fixed(tag))
        buffer.writeString("\r\nTo: <\(target)>\r\nCall-ID: ")
        buffer.writeString(Self.callID(sequence, port: localPort))
        buffer.writeString("\r\nCSeq: 1 MESSAGE\r\n")
        if var digest {
            buffer.writeString(digest.proxy ? "Proxy-Authorization: " : "Authorization: ")
            buffer.writeString(digest.authorization(method: .message, uri: target))
            buffer.writeString("\r\n")
            self.digest = digest
        }
        buffer.writeString("Content-Type: text/plain;charset=UTF-8\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
        buffer.writeString(body)
        return buffer
    }

    /// Writes a load MESSAGE. Over UDP it is also kept until its final response and sent
    /// again, byte for byte, after 500 ms, 1 s, 2 s, then every 4 s (RFC 3261 §17.1.2.2, Timer
    /// E), so that a datagram the kernel dropped under load delays a message instead of losing
    /// it; the gateway's transaction layer absorbs the copies. After 32 s (Timer F) it is given up.
    func sendLoad(user: String, target: String, sequence: Int) {
        let buffer = loadMessage(user: user, target: target, sequence: sequence)
        write(buffer)
        guard transport == .udp else { return }
        let now = LoadDriver.now()
        unanswered[Self.callID(sequence, port: localPort)] = (buffer, now, now, 500_000_000)
        if retransmitter == nil {
            retransmitter = loop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { [self] _ in
                retransmit()
            }
        }
    }

    /// Load requests over UDP without a final response yet: bytes, first and last sending, interval.
    private var unanswered: [String: (buffer: ByteBuffer, first: UInt64, last: UInt64, interval: UInt64)] = [:]
    private var retransmitter: RepeatedTask?
    private(set) var retransmissions = 0
    private(set) var timedOut = 0

    private func retransmit() {
        let now = LoadDriver.now()
        var wrote = false
        for (callID, entry) in unanswered where now &- entry.last >= entry.interval {
            if now &- entry.first >= 32_000_000_000 {
                unanswered[callID] = nil
                timedOut += 1
                continue
            }
            write(entry.buffer)
            wrote = true
            retransmissions += 1
            unanswered[callID] = (entry.buffer, entry.first, now, min(entry.interval * 2, 4_000_000_000))
        }
        if wrote { flush() }
    }

    static func callID(_ sequence: Int, port: Int) -> String { "load-" + fixed(sequence) + "-\(port)@bench" }

    /// Ten digits, zero-padded.
    static func fixed(_ value: Int) -> String {
        let digits = String(value)
        return digits.count >= 10 ? digits : String(repeating: "0", count: 10 - digits.count) + digits
    }

    /// The sequence number in a load request's Call-ID (`load-<sequence>-<port>@bench`).
    static func sequence(inCallID callID: String) -> Int? {
        guard callID.hasPrefix("load-") else { return nil }
        return Int(callID.dropFirst(5).prefix(10))
    }

    /// The sequence number a load message carries in its body, if any.
    static func sequence(in body: some Collection<UInt8>) -> Int? {
        // "#" then ten digits.
        guard let hash = body.firstIndex(of: UInt8(ascii: "#")) else { return nil }
        var value = 0
        var index = body.index(after: hash)
        var digits = 0
        while index != body.endIndex, digits < 10 {
            let byte = body[index]
            guard byte >= 0x30, byte <= 0x39 else { break }
            value = value * 10 + Int(byte - 0x30)
            digits += 1
            index = body.index(after: index)
        }
        return digits == 10 ? value : nil
    }

    // MARK: Reading

    fileprivate func received(_ message: SIPMessage, from source: SocketAddress?) {
        switch message {
        case .response(let response):
            guard response.isFinal else { return }
            if let callID = response.callID, !unanswered.isEmpty, unanswered.removeValue(forKey: callID) != nil {
                onResponse?(response)
            } else if let callID = response.callID, let promise = transactions.removeValue(forKey: callID) {
                promise.succeed(response)
            } else {
                onResponse?(response)
            }
        case .request(let request):
            guard request.method != .ack else { return }
            let response = request.makeResponse(200, toTag: "ua\(localPort)")
            let bytes = ByteBuffer(bytes: response.serialized())
            switch transport {
            case .tcp: channel.write(bytes, promise: nil)
            case .udp: channel.write(AddressedEnvelope(remoteAddress: source ?? gateway, data: bytes), promise: nil)
            }
            onRequest?(request)
        }
    }

    private final class StreamHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let client: SIPLoadClient
        var framer = SIPStreamFramer()
        var pending: ByteBuffer?

        init(client: SIPLoadClient) { self.client = client }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            if var kept = pending {
                kept.writeBuffer(&bytes)
                bytes = kept
            }
            do {
                while let frame = try framer.next(from: &bytes) {
                    if case .message(let message) = frame { client.received(message, from: nil) }
                }
            } catch {
                client.protocolErrors += 1
                context.close(promise: nil)
                return
            }
            if bytes.readableBytes > 0 {
                bytes.discardReadBytes()
                pending = bytes
            } else {
                pending = nil
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
    }

    private final class DatagramHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let client: SIPLoadClient

        init(client: SIPLoadClient) { self.client = client }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            guard let message = try? client.parser.parse(datagram: envelope.data) else {
                client.protocolErrors += 1
                return
            }
            client.received(message, from: envelope.remoteAddress)
        }

        func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
    }
}

/// A client's digest session: the challenge's nonce reused with a rising count (RFC 7616
/// §3.4.5), the HA1 computed once; SIPCore's `DigestClient` builds each set of credentials.
struct DigestSession: Sendable {
    let challenge: SIPAuthorization
    let user: String
    let ha1: String
    let proxy: Bool
    var count: UInt32 = 0

    init?(challenge: SIPAuthorization, user: String, password: String, proxy: Bool) {
        guard let realm = challenge.realm, challenge.nonce != nil,
              let algorithm = DigestAlgorithm(token: challenge.algorithm) else { return nil }
        self.challenge = challenge
        self.user = user
        self.proxy = proxy
        self.ha1 = algorithm.ha1(username: user, realm: realm, password: password)
    }

    mutating func authorization(method: SIPMethod, uri: String) -> String {
        count += 1
        return DigestClient.credentials(for: challenge, method: method, uri: uri, username: user, ha1: ha1,
                                        nonceCount: count, cnonce: "bench")?.description ?? ""
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
