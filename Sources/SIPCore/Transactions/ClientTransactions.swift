/// RFC 3261 §17.1.2, Figure 6: the non-INVITE client transaction.
///
///                     |Request from TU, send request
///     Timer E         V
///     send request +-----------+
///         +--------|  Trying   |-------------+
///         +------->|           |  Timer F    |
///                  +-----------+  or Transport Err.
///        200-699      |  |        inform TU  |
///        resp. to TU  |  |1xx                |
///     +---------------+  |resp. to TU        |
///     |                  V                   |
///     |  Timer E   +-----------+             |
///     |  send req  |Proceeding |------------>|
///     |     +------|           |  Timer F    |
///     |     +----->|           |  or Transport Err.
///     |            +-----------+             |
///     |  200-699      |                      |
///     |  resp. to TU  |                      |
///     |               V                      |
///     |        +-----------+                 |
///     +------->| Completed |--Timer K------->| Terminated
///              +-----------+
public struct ClientNonInviteTransaction: Sendable {
    public enum Action: Hashable, Sendable {
        case transmit(SIPRequest)
        case deliver(SIPResponse)
        case terminated(SIPTransactionOutcome)
    }

    private enum State: Hashable, Sendable {
        case trying(retransmitAt: SIPInstant?, interval: Duration, giveUpAt: SIPInstant)
        case proceeding(retransmitAt: SIPInstant?, giveUpAt: SIPInstant)
        case completed(until: SIPInstant)
        case terminated
    }

    public let request: SIPRequest
    private let timers: SIPTimerValues
    private let reliable: Bool
    private var state: State

    private init(request: SIPRequest, reliable: Bool, timers: SIPTimerValues, state: State) {
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = state
    }

    /// Creates the transaction with its first transmission (§17.1.2.2: "the request MUST be
    /// passed to the transport layer"); Timer E runs only on unreliable transports.
    public static func start(request: SIPRequest, reliable: Bool, now: SIPInstant, timers: SIPTimerValues = .rfc3261) -> (ClientNonInviteTransaction, [Action]) {
        let transaction = ClientNonInviteTransaction(
            request: request, reliable: reliable, timers: timers,
            state: .trying(retransmitAt: reliable ? nil : now + timers.t1, interval: timers.t1, giveUpAt: now + timers.transactionTimeout))
        return (transaction, [.transmit(request)])
    }

    public var isTerminated: Bool { state == .terminated }

    /// The one timer the driver arms.
    public var nextDeadline: SIPInstant? {
        switch state {
        case .trying(let retransmitAt, _, let giveUpAt): retransmitAt.map { min($0, giveUpAt) } ?? giveUpAt
        case .proceeding(let retransmitAt, let giveUpAt): retransmitAt.map { min($0, giveUpAt) } ?? giveUpAt
        case .completed(let until): until
        case .terminated: nil
        }
    }

    public mutating func received(_ response: SIPResponse, now: SIPInstant) -> [Action] {
        switch state {
        case .trying(let retransmitAt, _, let giveUpAt), .proceeding(let retransmitAt, let giveUpAt):
            if response.isProvisional {
                // "the client transaction MUST pass the response to the TU" and enter Proceeding;
                // Timer E keeps firing, at T2.
                state = .proceeding(retransmitAt: retransmitAt, giveUpAt: giveUpAt)
                return [.deliver(response)]
            }
            // Final response: Completed; Timer K = T4 for unreliable transports, zero otherwise.
            if reliable {
                state = .terminated
                return [.deliver(response), .terminated(.completed)]
            }
            state = .completed(until: now + timers.t4)
            return [.deliver(response)]
        case .completed, .terminated:
            // Retransmitted finals are absorbed in Completed.
            return []
        }
    }

    public mutating func deadlineReached(now: SIPInstant) -> [Action] {
        switch state {
        case .trying(let retransmitAt, let interval, let giveUpAt):
            if now >= giveUpAt {
                // Timer F: "the client transaction SHOULD inform the TU about the timeout".
                state = .terminated
                return [.terminated(.timeout)]
            }
            guard let retransmitAt, now >= retransmitAt else { return [] }
            // Timer E: retransmit and double the interval, up to T2.
            let next = min(interval * 2, timers.t2)
            state = .trying(retransmitAt: now + next, interval: next, giveUpAt: giveUpAt)
            return [.transmit(request)]
        case .proceeding(let retransmitAt, let giveUpAt):
            if now >= giveUpAt {
                state = .terminated
                return [.terminated(.timeout)]
            }
            guard let retransmitAt, now >= retransmitAt else { return [] }
            // In Proceeding, Timer E is reset with T2.
            state = .proceeding(retransmitAt: now + timers.t2, giveUpAt: giveUpAt)
            return [.transmit(request)]
        case .completed(let until):
            guard now >= until else { return [] }
            state = .terminated
            return [.terminated(.completed)]
        case .terminated:
            return []
        }
    }

    public mutating func transportFailed() -> [Action] {
        guard state != .terminated else { return [] }
        state = .terminated
        return [.terminated(.transportError)]
    }
}

/// RFC 3261 §17.1.1, Figure 5, with RFC 6026 §8.4: the INVITE client transaction. A 2xx moves it
/// to Accepted (Timer M), where further 2xx go to the TU, which acknowledges them itself; a
/// 300-699 moves it to Completed, where the transaction sends the ACK (§17.1.1.3).
///
///     calling --1xx--> proceeding --2xx--> accepted --Timer M--> terminated
///        |  \--2xx-------------------------^
///        |  \--300-699--> completed --Timer D--> terminated    (ACK sent, re-sent on retransmits)
///        +--Timer B or transport error--> terminated
public struct ClientInviteTransaction: Sendable {
    public enum Action: Hashable, Sendable {
        case transmit(SIPRequest)
        case deliver(SIPResponse)
        case terminated(SIPTransactionOutcome)
    }

    private enum State: Hashable, Sendable {
        case calling(retransmitAt: SIPInstant?, interval: Duration, giveUpAt: SIPInstant)
        case proceeding
        case completed(ack: SIPRequest, until: SIPInstant)
        case accepted(until: SIPInstant)
        case terminated
    }

    public let request: SIPRequest
    private let timers: SIPTimerValues
    private let reliable: Bool
    private var state: State

    private init(request: SIPRequest, reliable: Bool, timers: SIPTimerValues, state: State) {
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = state
    }

    /// Sends the INVITE; Timer A (unreliable only) and Timer B start.
    public static func start(request: SIPRequest, reliable: Bool, now: SIPInstant, timers: SIPTimerValues = .rfc3261) -> (ClientInviteTransaction, [Action]) {
        let transaction = ClientInviteTransaction(
            request: request, reliable: reliable, timers: timers,
            state: .calling(retransmitAt: reliable ? nil : now + timers.t1, interval: timers.t1, giveUpAt: now + timers.transactionTimeout))
        return (transaction, [.transmit(request)])
    }

    public var isTerminated: Bool { state == .terminated }

    public var nextDeadline: SIPInstant? {
        switch state {
        case .calling(let retransmitAt, _, let giveUpAt): retransmitAt.map { min($0, giveUpAt) } ?? giveUpAt
        case .proceeding: nil
        case .completed(_, let until), .accepted(let until): until
        case .terminated: nil
        }
    }

    public mutating func received(_ response: SIPResponse, now: SIPInstant) -> [Action] {
        switch state {
        case .calling, .proceeding:
            if response.isProvisional {
                // "the client transaction MUST ... pass the response to the TU"; no more retransmits.
                state = .proceeding
                return [.deliver(response)]
            }
            if response.isSuccess {
                // RFC 6026 §8.4: Accepted, Timer M = 64*T1; the TU sends the ACK.
                state = .accepted(until: now + timers.transactionTimeout)
                return [.deliver(response)]
            }
            // 300-699: ACK it here (§17.1.1.3); Timer D = 32 s unreliable, zero reliable.
            let ack = Self.ack(for: request, response: response)
            if reliable {
                state = .terminated
                return [.transmit(ack), .deliver(response), .terminated(.completed)]
            }
            state = .completed(ack: ack, until: now + .seconds(32))
            return [.transmit(ack), .deliver(response)]
        case .completed(let ack, _):
            // "Any retransmissions of the final response ... MUST cause the ACK to be re-passed".
            return response.isFinal && !response.isSuccess ? [.transmit(ack)] : []
        case .accepted:
            // RFC 6026: retransmitted 2xx go to the TU (which re-sends its ACK).
            return response.isSuccess ? [.deliver(response)] : []
        case .terminated:
            return []
        }
    }

    public mutating func deadlineReached(now: SIPInstant) -> [Action] {
        switch state {
        case .calling(let retransmitAt, let interval, let giveUpAt):
            if now >= giveUpAt {
                // Timer B: "the client transaction SHOULD inform the TU that a timeout occurred".
                state = .terminated
                return [.terminated(.timeout)]
            }
            guard let retransmitAt, now >= retransmitAt else { return [] }
            // Timer A: retransmit, doubling each time (no T2 cap for INVITE).
            state = .calling(retransmitAt: now + interval * 2, interval: interval * 2, giveUpAt: giveUpAt)
            return [.transmit(request)]
        case .completed(_, let until), .accepted(let until):
            guard now >= until else { return [] }
            state = .terminated
            return [.terminated(.completed)]
        case .proceeding, .terminated:
            return []
        }
    }

    public mutating func transportFailed() -> [Action] {
        guard state != .terminated else { return [] }
        state = .terminated
        return [.terminated(.transportError)]
    }

    /// §17.1.1.3: the ACK for a non-2xx final response: same Request-URI, Call-ID, From, top
    /// Via and CSeq number; To from the response (with its tag); Route from the INVITE.
    static func ack(for invite: SIPRequest, response: SIPResponse) -> SIPRequest {
        var headers = SIPHeaders()
        if let via = invite.headers.values(.via).first { headers.add(.via, via) }
        headers.add(.maxForwards, "70")
        if let from = invite.headers[.from] { headers.add(.from, from) }
        if let to = response.headers[.to] ?? invite.headers[.to] { headers.add(.to, to) }
        if let callID = invite.headers[.callID] { headers.add(.callID, callID) }
        if let cseq = invite.cseq { headers.add(.cseq, SIPCSeq(cseq.sequence, .ack).description) }
        for route in invite.headers.lines(.route) { headers.add(.route, route) }
        return SIPRequest(method: .ack, uri: invite.uri, headers: headers)
    }
}
