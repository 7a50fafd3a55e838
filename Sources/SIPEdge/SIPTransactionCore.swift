import NIOCore
import NIOSSL
import SIPCore

/// Drives the SIPCore server transaction machines (§17.2) on one event loop: matches requests to
/// transactions, runs their timers, and sends what they ask for on the transport the request came
/// in on.
///
/// Thread-safety: every mutable property is read and written only on `loop` (entry points hop
/// there first), which is why the class can be `@unchecked Sendable`.
final class SIPTransactionCore: @unchecked Sendable {
    let loop: any EventLoop
    let configuration: SIPEdgeConfiguration
    private let handlers: SIPEdgeHandlers
    private let origin = NIODeadline.now()

    private enum Machine {
        case nonInvite(ServerNonInviteTransaction)
        case invite(ServerInviteTransaction)
    }

    /// A class for the reason `ClientLive` is one: every read of a struct entry copied it.
    private final class Live {
        var machine: Machine
        let source: SIPSource
        /// The generation of this transaction's armed timer in `timers`, if one is armed.
        var timer: UInt64?
        /// The To tag this transaction's responses carry when the TU gave none: one per
        /// transaction, so an INVITE's 180 and 200 agree (§8.2.6.2, §12.1.1).
        var toTag: String?

        init(machine: Machine, source: SIPSource) {
            self.machine = machine
            self.source = source
        }
    }

    private var transactions: [SIPTransactionKey: Live] = [:]
    /// Non-INVITE server transactions in Completed (UDP only: over a reliable transport they end
    /// with their final response), reduced to what §17.2.2 needs to absorb retransmissions until
    /// Timer J: the final response's bytes and where they go. The request and the machine are
    /// gone, so a flood of requests costs a few hundred bytes each for 32 s, not the whole
    /// parsed request. (Challenges skip this altogether: `respondStatelessly`.)
    private var completed: [SIPTransactionKey: Completed] = [:]
    private struct Completed {
        var response: ByteBuffer
        var destination: SocketAddress
        var channel: any Channel
        var timer: UInt64
    }
    var connectionCount = 0
    var transactionCount: Int { transactions.count + completed.count + clients.count }

    // Timers: one heap for every transaction, swept by one NIO task (DeadlineQueue.swift).
    enum TimerTarget: Hashable {
        case server(SIPTransactionKey)
        case completed(SIPTransactionKey)
        case client(SIPTransactionKey)
    }
    var timers = DeadlineHeap<TimerTarget>()
    private var timerGeneration: UInt64 = 0
    /// The earliest deadline a sweep task is scheduled for; nil when none is pending.
    private var wakeAt: SIPInstant?
    /// At most this many expiries run in one loop tick; the rest run after pending I/O, so a
    /// wave of expiries never keeps the loop from answering.
    private static let expiriesPerTick = 2048

    // Client side (SIPClientTransactions.swift). Kept here because extensions cannot store.
    var clients: [SIPTransactionKey: ClientLive] = [:]
    /// Stream connections by remote address, inbound and outbound alike: responses and requests
    /// to an address reuse its connection (§18.2.2, RFC 5626 flows).
    var connections: [ConnectionKey: any Channel] = [:]
    /// Outbound connections being set up, with what to write once they are up.
    var connecting: [ConnectionKey: [(ByteBuffer, @Sendable (Bool) -> Void)]] = [:]

    /// A TLS connection opened to reach a name is reused only for that name (RFC 5923 §5: a
    /// connection serves the identities it was authenticated for); flows the far end opened,
    /// and plain TCP, have none.
    struct ConnectionKey: Hashable {
        var address: SocketAddress
        var serverName: String?
    }
    /// Bound after start: the UDP socket requests go out on, and the sent-by for our Vias.
    var udpChannel: (any Channel)?
    var sentBy: [SIPSource.Transport: String] = [:]

    /// For TLS connections the edge opens itself.
    let clientTLS: NIOSSLContext

    init(loop: any EventLoop, configuration: SIPEdgeConfiguration, handlers: SIPEdgeHandlers, clientTLS: NIOSSLContext) {
        self.loop = loop
        self.configuration = configuration
        self.handlers = handlers
        self.clientTLS = clientTLS
    }

    var now: SIPInstant {
        SIPInstant(.nanoseconds(Int64(NIODeadline.now().uptimeNanoseconds - origin.uptimeNanoseconds)))
    }

    func event(_ event: SIPEdgeEvent) { handlers.event(event) }

    /// A request that did not parse: reported, and answered 400 when a response can be built
    /// from what survived (§8.2.6); no transaction is kept for it.
    func malformed(_ bytes: [UInt8], error: SIPParseError, from source: SIPSource) {
        handlers.event(.malformed(source.address, error.kind))
        guard let response = SIPBadRequest.response(to: bytes, error: error) else { return }
        var buffer = source.channel.allocator.buffer(capacity: 512)
        response.write(into: &buffer)
        switch source.transport {
        case .tcp, .tls:
            source.channel.writeAndFlush(buffer, promise: nil)
        case .udp:
            guard let destination = Self.responseDestination(response, source: source) else { return }
            source.channel.writeAndFlush(AddressedEnvelope(remoteAddress: destination, data: buffer), promise: nil)
        }
    }

    // MARK: Receiving

    func received(_ message: SIPMessage, from source: SIPSource) {
        loop.preconditionInEventLoop()
        guard case .request(var request) = message else {
            if case .response(let response) = message, receivedResponse(response) { return }
            // Not a proxy: §18.1.2 says a response that matches no client transaction is discarded.
            handlers.event(.strayResponse(source.address))
            return
        }
        Self.stamp(&request, from: source)
        guard let key = SIPTransactionKey.server(request) else {
            // Without a Via there is nowhere to send a response (the parser requires one; this
            // guards RFC 2543 requests with no CSeq either).
            handlers.event(.malformed(source.address, .missingRequiredHeader))
            return
        }
        if request.method == .ack {
            if let live = transactions[key], case .invite = live.machine {
                let now = now
                drive(key, nonInvite: { _ in [] }, invite: { $0.receivedACK(request, now: now) })
            } else {
                // The ACK for a 2xx is its own transaction (§17.1.1.3): the dialog's business.
                handlers.ack(request, source)
            }
            return
        }
        if transactions[key] != nil {
            drive(key, nonInvite: { $0.receivedRetransmission() }, invite: { $0.receivedRetransmission() })
            return
        }
        if let entry = completed[key] {
            // §17.2.2: a retransmission in Completed gets the final response again.
            entry.channel.writeAndFlush(AddressedEnvelope(remoteAddress: entry.destination, data: entry.response), promise: nil)
            return
        }
        let reliable = source.transport.isReliable
        if request.method == .invite {
            transactions[key] = Live(machine: .invite(ServerInviteTransaction(
                request: request, reliable: reliable, timers: configuration.timers)), source: source)
            // §17.2.1: the TU answers asynchronously (often after the XMPP side has), so the
            // transaction sends 100 Trying at once to stop the client's retransmissions.
            respondOnLoop(key: key, response: request.makeResponse(100))
        } else {
            transactions[key] = Live(machine: .nonInvite(ServerNonInviteTransaction(
                request: request, reliable: reliable, timers: configuration.timers)), source: source)
        }
        if request.method == .cancel {
            cancel(request, key: key)
            return
        }
        handlers.request(SIPServerRequest(request: request, source: source, key: key, core: self))
    }

    /// §9.2: answer the CANCEL itself, and end a pending INVITE with 487.
    private func cancel(_ request: SIPRequest, key: SIPTransactionKey) {
        guard let inviteKey = SIPTransactionKey.invite(cancelledBy: request),
              let invite = transactions[inviteKey], case .invite(let machine) = invite.machine else {
            respondOnLoop(key: key, response: request.makeResponse(481))
            return
        }
        respondOnLoop(key: key, response: request.makeResponse(200))
        // The machine discards the 487 if a final response already went out.
        respondOnLoop(key: inviteKey, response: machine.request.makeResponse(487))
    }

    // MARK: Responding

    func respond(key: SIPTransactionKey, response: SIPResponse) {
        if loop.inEventLoop {
            respondOnLoop(key: key, response: response)
        } else {
            loop.execute { self.respondOnLoop(key: key, response: response) }
        }
    }

    /// See `SIPServerRequest.respondStatelessly`.
    func respondStatelessly(key: SIPTransactionKey, response: SIPResponse) {
        guard loop.inEventLoop else {
            loop.execute { self.respondStatelessly(key: key, response: response) }
            return
        }
        guard key.method != .invite, response.statusCode >= 200, let live = transactions[key] else {
            return respondOnLoop(key: key, response: response)
        }
        var response = response
        if let to = response.headers[.to], !SIPNameAddress.hasTag(to) {
            response.headers.set(.to, to + ";tag=" + (live.toTag ?? SIPNameAddress.makeTag()))
        }
        disarm(live.timer)
        transactions[key] = nil
        send(response, to: live.source, key: key)
    }

    private func respondOnLoop(key: SIPTransactionKey, response: SIPResponse) {
        // `drive` ignores a transaction that is gone (transport failure, shutdown): the answer is moot.
        var response = response
        if response.statusCode > 100, let to = response.headers[.to], !SIPNameAddress.hasTag(to), let live = transactions[key] {
            // §8.2.6.2: the UAS adds a To tag; the TU need not invent one for every answer.
            let tag = live.toTag ?? SIPNameAddress.makeTag()
            live.toTag = tag
            response.headers.set(.to, to + ";tag=" + tag)
        }
        let now = now
        drive(key, nonInvite: { $0.respond(response, now: now) }, invite: { $0.respond(response, now: now) })
    }

    // MARK: Actions and timers

    private enum Action {
        case transmit(SIPResponse)
        case deliverACK(SIPRequest)
        case terminated(SIPTransactionOutcome)

        init(_ action: ServerNonInviteTransaction.Action) {
            switch action {
            case .transmit(let response): self = .transmit(response)
            case .terminated(let outcome): self = .terminated(outcome)
            }
        }

        init(_ action: ServerInviteTransaction.Action) {
            switch action {
            case .transmit(let response): self = .transmit(response)
            case .deliverACK(let ack): self = .deliverACK(ack)
            case .terminated(let outcome): self = .terminated(outcome)
            }
        }
    }

    /// Feeds one event to the transaction's machine, stores its new state, and carries out what
    /// it returned.
    private func drive(_ key: SIPTransactionKey,
                       nonInvite: (inout ServerNonInviteTransaction) -> [ServerNonInviteTransaction.Action],
                       invite: (inout ServerInviteTransaction) -> [ServerInviteTransaction.Action]) {
        guard let live = transactions[key] else { return }
        let actions: [Action]
        switch live.machine {
        case .nonInvite(var machine):
            actions = nonInvite(&machine).map(Action.init)
            live.machine = .nonInvite(machine)
        case .invite(var machine):
            actions = invite(&machine).map(Action.init)
            live.machine = .invite(machine)
        }
        perform(actions, key: key)
    }

    private func perform(_ actions: [Action], key: SIPTransactionKey) {
        guard let live = transactions[key] else { return }
        var lastSent: (ByteBuffer, SocketAddress)?
        for action in actions {
            switch action {
            case .transmit(let response):
                lastSent = send(response, to: live.source, key: key)
            case .deliverACK(let ack):
                handlers.ack(ack, live.source)
            case .terminated(let outcome):
                disarm(live.timer)
                transactions[key] = nil
                if outcome == .timeout, case .invite(let machine) = live.machine {
                    handlers.event(.ackTimeout(callID: machine.request.callID ?? ""))
                }
                return
            }
        }
        reschedule(key, lastSent: lastSent)
    }

    private func reschedule(_ key: SIPTransactionKey, lastSent: (ByteBuffer, SocketAddress)?) {
        guard let live = transactions[key] else { return }
        disarm(live.timer)
        live.timer = nil
        switch live.machine {
        case .nonInvite(let machine):
            if machine.isCompleted, let deadline = machine.nextDeadline, let (bytes, destination) = lastSent,
               live.source.transport == .udp {
                // Completed: keep only the final response until Timer J.
                transactions[key] = nil
                completed[key] = Completed(response: bytes, destination: destination, channel: live.source.channel,
                                           timer: arm(.completed(key), at: deadline))
                return
            }
            live.timer = machine.nextDeadline.map { arm(.server(key), at: $0) }
        case .invite(let machine):
            live.timer = machine.nextDeadline.map { arm(.server(key), at: $0) }
        }
    }

    // MARK: The timer heap

    /// Arms a timer for `target` at `deadline` and returns its generation, which the owner keeps:
    /// an entry fires only while its owner still holds that generation.
    func arm(_ target: TimerTarget, at deadline: SIPInstant) -> UInt64 {
        timerGeneration &+= 1
        timers.push(target, at: deadline, generation: timerGeneration)
        scheduleSweep(at: deadline)
        return timerGeneration
    }

    /// The owner dropped the generation it held: its entry, still in the heap, is now stale.
    func disarm(_ generation: UInt64?) {
        guard generation != nil else { return }
        timers.noteStale(isLive: { [self] in isLive($0, generation: $1) })
    }

    private func isLive(_ target: TimerTarget, generation: UInt64) -> Bool {
        switch target {
        case .server(let key): transactions[key]?.timer == generation
        case .completed(let key): completed[key]?.timer == generation
        case .client(let key): clients[key]?.timer == generation
        }
    }

    private func scheduleSweep(at deadline: SIPInstant) {
        if let wakeAt, wakeAt <= deadline { return }
        wakeAt = deadline
        // A later sweep already scheduled is not cancelled (that is the linear search this
        // design avoids): it finds nothing due, or something armed since, and costs one wakeup.
        loop.scheduleTask(in: TimeAmount(max(deadline - now, .zero))) { [weak self] in self?.sweep() }
    }

    /// Fires every due timer, at most `expiriesPerTick` of them before yielding to I/O.
    private func sweep() {
        let now = now
        if let wakeAt, wakeAt <= now { self.wakeAt = nil }
        var fired = 0
        while fired < Self.expiriesPerTick, let entry = timers.popDue(now: now) {
            guard isLive(entry.target, generation: entry.generation) else {
                timers.stalePopped()
                continue
            }
            fired += 1
            fire(entry.target, now: now)
        }
        if fired == Self.expiriesPerTick, let next = timers.earliest, next <= now {
            loop.execute { [weak self] in self?.sweep() }
        } else if let next = timers.earliest {
            scheduleSweep(at: next)
        }
    }

    private func fire(_ target: TimerTarget, now: SIPInstant) {
        // The entry just left the heap: the owner's generation no longer names a heap entry.
        switch target {
        case .server(let key):
            transactions[key]?.timer = nil
            drive(key, nonInvite: { $0.deadlineReached(now: now) }, invite: { $0.deadlineReached(now: now) })
            // `perform` re-arms the timer, also when the deadline produced no action (an early read).
        case .completed(let key):
            // Timer J: the retransmissions it absorbed are over.
            completed[key] = nil
        case .client(let key):
            clientTimerFired(key, now: now)
        }
    }

    var pendingTimerCount: Int { timers.count }

    // MARK: Transport

    /// Writes a response; over UDP returns the bytes and destination, which a Completed
    /// transaction keeps to answer retransmissions.
    @discardableResult
    private func send(_ response: SIPResponse, to source: SIPSource, key: SIPTransactionKey) -> (ByteBuffer, SocketAddress)? {
        var buffer = source.channel.allocator.buffer(capacity: 512 + response.body.count)
        response.write(into: &buffer)
        switch source.transport {
        case .tcp, .tls:
            guard source.channel.isActive else {
                sendOverNewConnection(buffer, response, source: source, key: key)
                return nil
            }
            let written = buffer
            source.channel.writeAndFlush(written).whenFailure { [weak self] _ in
                self?.sendOverNewConnection(written, response, source: source, key: key)
            }
            return nil
        case .udp:
            guard let destination = Self.responseDestination(response, source: source) else { return nil }
            source.channel.writeAndFlush(AddressedEnvelope(remoteAddress: destination, data: buffer))
                .whenFailure { [weak self] _ in self?.transportFailed(key) }
            return (buffer, destination)
        }
    }

    /// RFC 3261 §18.2.2: when the connection a request came on is gone by the time its response
    /// is ready (a mobile client's connection dropped while the fork waited), the response goes
    /// over a new connection to the top Via's address: `received` if set, else the sent-by host,
    /// at the `rport` value if set, else the sent-by port or the transport's default. A sender
    /// that is told nothing would resend what was delivered, and its user would see it twice.
    private func sendOverNewConnection(_ buffer: ByteBuffer, _ response: SIPResponse, source: SIPSource, key: SIPTransactionKey) {
        guard let target = Self.viaTarget(response, transport: source.transport) else { return transportFailed(key) }
        handlers.event(.responseRerouted(target.address))
        write(buffer, toStream: target) { [weak self] sent in
            guard !sent, let self else { return }
            self.loop.execute { self.transportFailed(key) }
        }
    }

    static func viaTarget(_ response: SIPResponse, transport: SIPSource.Transport) -> SIPTarget? {
        guard let via = response.topVia else { return nil }
        let host = (via.received ?? String(via.host.trimmingBrackets))
        let port: Int = switch via.rport {
        case .value(let value): Int(value)
        case .absent, .requested: via.port.map(Int.init) ?? (transport == .tls ? 5061 : 5060)
        }
        guard let address = try? SocketAddress(ipAddress: host, port: port) else { return nil }
        return SIPTarget(transport: transport, address: address, serverName: transport == .tls ? String(via.host.trimmingBrackets) : nil)
    }

    private func transportFailed(_ key: SIPTransactionKey) {
        loop.preconditionInEventLoop()
        drive(key, nonInvite: { $0.transportFailed() }, invite: { $0.transportFailed() })
    }

    /// §18.2.2 with RFC 3581 §4: an unreliable response goes to the `received` address, at the
    /// source port when the client asked for `rport`, else at the Via's sent-by port.
    static func responseDestination(_ response: SIPResponse, source: SIPSource) -> SocketAddress? {
        guard let via = response.topVia, let ip = source.address.ipAddress else { return nil }
        let port: Int = switch via.rport {
        case .requested, .value: source.address.port ?? 5060
        case .absent: Int(via.port ?? 5060)
        }
        return try? SocketAddress(ipAddress: ip, port: port)
    }

    /// §18.2.1: a `received` parameter when the sent-by host is not the packet's source, and
    /// RFC 3581 §4: the source port in an `rport` the client left empty.
    static func stamp(_ request: inout SIPRequest, from source: SIPSource) {
        guard var via = request.topVia, let ip = source.address.ipAddress else { return }
        var changed = false
        if case .requested = via.rport {
            via.parameters.set("rport", .some(String(source.address.port ?? 0)))
            via.parameters.set("received", .some(ip))
            changed = true
        } else if via.host.trimmingBrackets != ip {
            via.parameters.set("received", .some(ip))
            changed = true
        }
        guard changed else { return }
        request.headers.removeFirstValue(.via)
        request.headers.prepend(.via, via.description)
    }


    // MARK: Connections and shutdown

    func shutdown() async {
        try? await loop.submit {
            self.transactions.removeAll()
            self.completed.removeAll()
            self.timers.removeAll()
            self.failAllClients()
        }.get()
    }
}

extension String {
    /// An IPv6 reference in a Via (`[::1]`) compared with a bare address.
    fileprivate var trimmingBrackets: Substring {
        hasPrefix("[") && hasSuffix("]") ? dropFirst().dropLast() : Substring(self)
    }
}
