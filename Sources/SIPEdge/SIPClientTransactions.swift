import NIOCore
import NIOPosix
import StoxNIO
import NIOSSL
import SIPCore

/// Where a request goes: a transport and an address. A stream target reuses an open connection
/// to that address (one the peer opened to us included) before it opens a new one.
public struct SIPTarget: Hashable, Sendable, CustomStringConvertible {
    public var transport: SIPSource.Transport
    public var address: SocketAddress
    /// For TLS: the name the server's certificate must carry (RFC 5922 §7), also sent as SNI.
    public var serverName: String?

    public init(transport: SIPSource.Transport, address: SocketAddress, serverName: String? = nil) {
        self.transport = transport
        self.address = address
        self.serverName = serverName
    }

    /// Responses to a request go back the way it came; so do requests to the same flow.
    public init(_ source: SIPSource) {
        self.init(transport: source.transport, address: source.address)
    }

    /// RFC 3263 §4.1–4.2 for a URI whose host is an IP literal: the transport from `transport=`
    /// (a SIPS URI means TLS), the port from the URI or the transport's default (5060, 5061 for
    /// TLS). Names need DNS, which is the caller's business.
    public init?(uri: SIPURI) {
        guard uri.isSIP else { return nil }
        let transport: SIPSource.Transport
        switch (uri.scheme == .sips, uri.transport?.lowercased()) {
        case (true, nil), (_, "tls"), (true, "tcp"): transport = .tls
        case (false, nil), (false, "udp"): transport = .udp
        case (false, "tcp"): transport = .tcp
        default: return nil
        }
        var host = uri.host
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = Int(uri.port ?? (transport == .tls ? 5061 : 5060))
        guard let address = try? SocketAddress(ipAddress: host, port: port) else { return nil }
        self.init(transport: transport, address: address)
    }

    public var description: String { "\(transport) \(address)" }
}

/// What a client transaction tells its owner, on the edge's event loop.
public enum SIPClientEvent: Hashable, Sendable {
    case provisional(SIPResponse)
    /// The final response; for an INVITE, also each retransmitted 2xx (RFC 6026 §8.4), which
    /// the dialog acknowledges again.
    case final(SIPResponse)
    /// Timer B or F: no final response in 64*T1.
    case timeout
    /// The request could not be sent, or the connection it went on closed before the answer.
    case transportError
}

/// Identifies a request sent through `SIPEdge.send`, so that an INVITE can be cancelled.
public struct SIPClientHandle: Hashable, Sendable {
    let key: SIPTransactionKey

    public var isInvite: Bool { key.method == .invite }
}

extension SIPTransactionCore {
    /// A class: the table of live transactions is read and written several times per request
    /// and response, and as a struct each read copied (retained) the request, the target and
    /// the closure, and each write released them again.
    final class ClientLive {
        enum Machine {
            case nonInvite(ClientNonInviteTransaction)
            case invite(ClientInviteTransaction)
        }
        var machine: Machine
        var target: SIPTarget
        /// The generation of the armed timer in the core's heap.
        var timer: UInt64?
        let onEvent: @Sendable (SIPClientEvent) -> Void
        var finalSeen = false
        var provisionalSeen = false
        /// §9.1: a CANCEL waits for a provisional response.
        var cancelPending = false

        init(machine: Machine, target: SIPTarget, onEvent: @escaping @Sendable (SIPClientEvent) -> Void) {
            self.machine = machine
            self.target = target
            self.onEvent = onEvent
        }
    }

    private enum ClientAction {
        case transmit(SIPRequest)
        case deliver(SIPResponse)
        case terminated(SIPTransactionOutcome)

        init(_ action: ClientNonInviteTransaction.Action) {
            switch action {
            case .transmit(let request): self = .transmit(request)
            case .deliver(let response): self = .deliver(response)
            case .terminated(let outcome): self = .terminated(outcome)
            }
        }

        init(_ action: ClientInviteTransaction.Action) {
            switch action {
            case .transmit(let request): self = .transmit(request)
            case .deliver(let response): self = .deliver(response)
            case .terminated(let outcome): self = .terminated(outcome)
            }
        }
    }

    static func makeBranch() -> String {
        SIPVia.magicCookie + IdentifierRandom.token() + IdentifierRandom.token()
    }

    /// Sends a new request in its own client transaction (§17.1): our Via with a fresh
    /// magic-cookie branch and `rport` (RFC 3581 §3), Max-Forwards, then the machine.
    func send(_ request: SIPRequest, to target: SIPTarget, branch: String,
              onEvent: @escaping @Sendable (SIPClientEvent) -> Void) {
        loop.preconditionInEventLoop()
        var request = request
        var target = target
        // §18.1.1: a request within 200 bytes of the path MTU (1500 assumed, so 1300 bytes) goes
        // over a congestion-controlled transport; `clientTransportFailed` falls back to UDP.
        if target.transport == .udp, configuration.tcpPort != nil, request.estimatedSize > 1300 {
            target.transport = .tcp
        }
        stampVia(&request, transport: target.transport, branch: branch)
        if !request.headers.contains(.maxForwards) { request.headers.add(.maxForwards, "70") }
        let key = SIPTransactionKey(branch: branch, sentBy: "", method: request.method)
        startClient(request, to: target, key: key, onEvent: onEvent)
    }

    private func stampVia(_ request: inout SIPRequest, transport: SIPSource.Transport, branch: String) {
        let sentBy = sentBy[transport] ?? configuration.host
        request.headers.prepend(.via, "SIP/2.0/\(transport.rawValue) \(sentBy);branch=\(branch);rport")
    }

    /// Sends a request outside any transaction: the ACK for a 2xx (§13.2.2.4), which the
    /// dialog owns. It needs its own branch (§8.1.1.7).
    func sendStateless(_ request: SIPRequest, to target: SIPTarget) {
        loop.preconditionInEventLoop()
        var request = request
        stampVia(&request, transport: target.transport, branch: Self.makeBranch())
        if !request.headers.contains(.maxForwards) { request.headers.add(.maxForwards, "70") }
        transmit(request, to: target) { _ in }
    }

    private func startClient(_ request: SIPRequest, to target: SIPTarget, key: SIPTransactionKey,
                             onEvent: @escaping @Sendable (SIPClientEvent) -> Void) {
        let reliable = target.transport != .udp
        let now = now
        let live: ClientLive
        let actions: [ClientAction]
        if request.method == .invite {
            let (machine, first) = ClientInviteTransaction.start(request: request, reliable: reliable, now: now, timers: configuration.timers)
            live = ClientLive(machine: .invite(machine), target: target, onEvent: onEvent)
            actions = first.map(ClientAction.init)
        } else {
            let (machine, first) = ClientNonInviteTransaction.start(request: request, reliable: reliable, now: now, timers: configuration.timers)
            live = ClientLive(machine: .nonInvite(machine), target: target, onEvent: onEvent)
            actions = first.map(ClientAction.init)
        }
        clients[key] = live
        performClient(actions, key: key)
    }

    /// A response arrived: hand it to its client transaction. False when none matches.
    func receivedResponse(_ response: SIPResponse) -> Bool {
        guard let key = SIPTransactionKey.client(response), clients[key] != nil else { return false }
        let now = now
        driveClient(key, nonInvite: { $0.received(response, now: now) }, invite: { $0.received(response, now: now) })
        return true
    }

    /// §9.1: CANCEL a pending INVITE; sent once a provisional response has arrived.
    func cancelClient(_ key: SIPTransactionKey) {
        loop.preconditionInEventLoop()
        guard let live = clients[key], case .invite = live.machine, !live.finalSeen else { return }
        if live.provisionalSeen {
            sendCancel(for: live)
        } else {
            live.cancelPending = true
        }
    }

    func abandonClient(_ key: SIPTransactionKey) {
        loop.preconditionInEventLoop()
        disarm(clients.removeValue(forKey: key)?.timer)
    }

    private func sendCancel(for live: ClientLive) {
        guard case .invite(let machine) = live.machine else { return }
        let invite = machine.request
        var headers = SIPHeaders()
        if let via = invite.headers.values(.via).first { headers.add(.via, via) }
        for name in [SIPHeaderName.from, .to, .callID] { if let value = invite.headers[name] { headers.add(name, value) } }
        if let cseq = invite.cseq { headers.add(.cseq, SIPCSeq(cseq.sequence, .cancel).description) }
        for route in invite.headers.lines(.route) { headers.add(.route, route) }
        headers.add(.maxForwards, "70")
        let cancel = SIPRequest(method: .cancel, uri: invite.uri, headers: headers)
        guard let key = SIPTransactionKey.client(cancel) else { return }
        // The CANCEL's own outcome does not matter to the TU: the INVITE's 487 (or 2xx) does.
        startClient(cancel, to: live.target, key: key, onEvent: { _ in })
    }

    private func driveClient(_ key: SIPTransactionKey,
                             nonInvite: (inout ClientNonInviteTransaction) -> [ClientNonInviteTransaction.Action],
                             invite: (inout ClientInviteTransaction) -> [ClientInviteTransaction.Action]) {
        guard let live = clients[key] else { return }
        let actions: [ClientAction]
        switch live.machine {
        case .nonInvite(var machine):
            actions = nonInvite(&machine).map(ClientAction.init)
            live.machine = .nonInvite(machine)
        case .invite(var machine):
            actions = invite(&machine).map(ClientAction.init)
            live.machine = .invite(machine)
        }
        performClient(actions, key: key)
    }

    private func performClient(_ actions: [ClientAction], key: SIPTransactionKey) {
        for action in actions {
            guard let live = clients[key] else { return }
            switch action {
            case .transmit(let request):
                transmit(request, to: live.target) { [weak self] sent in
                    guard !sent, let self else { return }
                    self.clientTransportFailed(key)
                }
            case .deliver(let response):
                if response.isProvisional {
                    live.provisionalSeen = true
                    let cancel = live.cancelPending
                    live.cancelPending = false
                    live.onEvent(.provisional(response))
                    if cancel { sendCancel(for: live) }
                } else {
                    live.finalSeen = true
                    live.onEvent(.final(response))
                }
            case .terminated(let outcome):
                disarm(live.timer)
                clients[key] = nil
                guard !live.finalSeen else { return }
                switch outcome {
                case .timeout: live.onEvent(.timeout)
                case .transportError: live.onEvent(.transportError)
                case .completed: break
                }
                return
            }
        }
        guard let live = clients[key] else { return }
        disarm(live.timer)
        let deadline: SIPInstant? = switch live.machine {
        case .nonInvite(let machine): machine.nextDeadline
        case .invite(let machine): machine.nextDeadline
        }
        live.timer = deadline.map { arm(.client(key), at: $0) }
    }

    /// The heap popped this client transaction's timer.
    func clientTimerFired(_ key: SIPTransactionKey, now: SIPInstant) {
        clients[key]?.timer = nil
        driveClient(key, nonInvite: { $0.deadlineReached(now: now) }, invite: { $0.deadlineReached(now: now) })
    }

    private func clientTransportFailed(_ key: SIPTransactionKey) {
        // §18.1.1: a request moved to TCP for its size goes over UDP when TCP cannot connect.
        if let live = clients[key], live.target.transport == .tcp, !live.provisionalSeen, !live.finalSeen,
           case .nonInvite(let machine) = live.machine, machine.request.estimatedSize > 1300,
           udpChannel != nil {
            disarm(live.timer)
            live.timer = nil
            clients[key] = nil
            var request = machine.request
            request.headers.removeFirstValue(.via)
            live.target.transport = .udp
            stampVia(&request, transport: .udp, branch: key.branch)
            let (udpMachine, first) = ClientNonInviteTransaction.start(request: request, reliable: false, now: now, timers: configuration.timers)
            live.machine = .nonInvite(udpMachine)
            clients[key] = live
            performClient(first.map(ClientAction.init), key: key)
            return
        }
        driveClient(key, nonInvite: { $0.transportFailed() }, invite: { $0.transportFailed() })
    }

    /// A stream connection closed: requests waiting on it for an answer fail (§18.4). Only
    /// those that went down this connection: another one to the same address may be fine.
    func connectionClosed(_ address: SocketAddress, channel: any Channel) {
        let keys = Set(connections.filter { $0.value === channel }.map(\.key))
        for key in keys { connections[key] = nil }
        for (key, live) in clients where live.target.transport.isReliable && !live.finalSeen && keys.contains(Self.connectionKey(live.target)) {
            driveClient(key, nonInvite: { $0.transportFailed() }, invite: { $0.transportFailed() })
        }
    }

    static func connectionKey(_ target: SIPTarget) -> ConnectionKey {
        ConnectionKey(address: target.address, serverName: target.transport == .tls ? target.serverName : nil)
    }

    func failAllClients() {
        for (key, _) in clients {
            driveClient(key, nonInvite: { $0.transportFailed() }, invite: { $0.transportFailed() })
        }
    }

    // MARK: Transport for requests

    /// Writes a request to its target; `done(false)` when it could not be sent.
    func transmit(_ request: SIPRequest, to target: SIPTarget, done: @escaping @Sendable (Bool) -> Void) {
        switch target.transport {
        case .udp:
            guard let channel = udpChannel else { return done(false) }
            var buffer = channel.allocator.buffer(capacity: 512 + request.body.count)
            request.write(into: &buffer)
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: target.address, data: buffer)).whenComplete { result in
                if case .failure = result { done(false) }
            }
        case .tcp, .tls:
            var buffer = ByteBufferAllocator().buffer(capacity: 512 + request.body.count)
            request.write(into: &buffer)
            write(buffer, toStream: target, done: done)
        }
    }

    func write(_ buffer: ByteBuffer, toStream target: SIPTarget, done: @escaping @Sendable (Bool) -> Void) {
        let address = target.address
        let key = Self.connectionKey(target)
        if let channel = connections[key] {
            channel.writeAndFlush(buffer).whenComplete { result in
                if case .failure = result { done(false) }
            }
            return
        }
        if connecting[key] != nil {
            connecting[key]!.append((buffer, done))
            return
        }
        connecting[key] = [(buffer, done)]
        let limits = configuration.limits
        let maxConnections = configuration.maxConnections
        let clientTLS = target.transport == .tls ? self.clientTLS : nil
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let clientTLS {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: clientTLS, serverHostname: target.serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
                    try channel.pipeline.syncOperations.addHandler(
                        SIPStreamHandler(core: self, transport: target.transport, limits: limits, maxConnections: maxConnections))
                }
            }
            .connect(to: address)
            .whenComplete { [self] result in
                let pending = connecting.removeValue(forKey: key) ?? []
                switch result {
                case .success(let channel):
                    connections[key] = channel
                    for (buffer, done) in pending {
                        channel.writeAndFlush(buffer).whenComplete { result in
                            if case .failure = result { done(false) }
                        }
                    }
                case .failure:
                    for (_, done) in pending { done(false) }
                }
            }
    }
}

extension SIPRequest {
    /// Enough to size a buffer and to apply §18.1.1's 1300-byte rule: the serialized size
    /// without the Via the edge is about to add (which the rule's 200-byte margin covers).
    var estimatedSize: Int {
        var size = 64 + body.count
        for field in headers { size += field.name.rawValue.utf8.count + field.value.utf8.count + 4 }
        return size
    }
}
