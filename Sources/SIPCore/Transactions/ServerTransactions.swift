/// RFC 3261 §17.2.2, Figure 8: the non-INVITE server transaction. Retransmitted requests are
/// answered with the last response sent; Timer J (64*T1, unreliable only) absorbs them after the
/// final response.
public struct ServerNonInviteTransaction: Sendable {
    public enum Action: Hashable, Sendable {
        case transmit(SIPResponse)
        case terminated(SIPTransactionOutcome)
    }

    private enum State: Hashable, Sendable {
        case trying
        case proceeding(last: SIPResponse)
        case completed(last: SIPResponse, until: SIPInstant)
        case terminated
    }

    public let request: SIPRequest
    private let timers: SIPTimerValues
    private let reliable: Bool
    private var state = State.trying

    /// The request arrived; the TU now decides the response (Trying state).
    public init(request: SIPRequest, reliable: Bool, timers: SIPTimerValues = .rfc3261) {
        self.request = request
        self.reliable = reliable
        self.timers = timers
    }

    public var isTerminated: Bool { state == .terminated }

    /// Completed (§17.2.2): the final response went out and only retransmissions remain to absorb.
    public var isCompleted: Bool {
        if case .completed = state { return true }
        return false
    }

    public var nextDeadline: SIPInstant? {
        if case .completed(_, let until) = state { return until }
        return nil
    }

    /// A retransmission of the request.
    public mutating func receivedRetransmission() -> [Action] {
        switch state {
        case .trying, .terminated: return []  // absorbed
        case .proceeding(let last), .completed(let last, _): return [.transmit(last)]
        }
    }

    /// The TU's response.
    public mutating func respond(_ response: SIPResponse, now: SIPInstant) -> [Action] {
        switch state {
        case .trying, .proceeding:
            if response.isProvisional {
                state = .proceeding(last: response)
                return [.transmit(response)]
            }
            if reliable {
                state = .terminated
                return [.transmit(response), .terminated(.completed)]
            }
            state = .completed(last: response, until: now + timers.transactionTimeout)
            return [.transmit(response)]
        case .completed, .terminated:
            // "Any other final responses passed by the TU ... MUST be discarded."
            return []
        }
    }

    public mutating func deadlineReached(now: SIPInstant) -> [Action] {
        guard case .completed(_, let until) = state, now >= until else { return [] }
        state = .terminated
        return [.terminated(.completed)]
    }

    public mutating func transportFailed() -> [Action] {
        guard state != .terminated else { return [] }
        state = .terminated
        return [.terminated(.transportError)]
    }
}

/// RFC 3261 §17.2.1, Figure 7, with RFC 6026 §8.7: the INVITE server transaction. A 2xx moves it
/// to Accepted (Timer L), where retransmitted INVITEs are absorbed and the TU's 2xx
/// retransmissions go out; a 300-699 moves it to Completed, retransmitted with Timer G until
/// the ACK (Confirmed, Timer I) or Timer H (no ACK: the TU is told).
public struct ServerInviteTransaction: Sendable {
    public enum Action: Hashable, Sendable {
        case transmit(SIPResponse)
        /// An ACK for a 2xx (Accepted): it belongs to the dialog, not to this transaction.
        case deliverACK(SIPRequest)
        case terminated(SIPTransactionOutcome)
    }

    private enum State: Hashable, Sendable {
        case proceeding(last: SIPResponse?)
        case completed(last: SIPResponse, retransmitAt: SIPInstant?, interval: Duration, giveUpAt: SIPInstant)
        case confirmed(until: SIPInstant)
        case accepted(until: SIPInstant)
        case terminated
    }

    public let request: SIPRequest
    private let timers: SIPTimerValues
    private let reliable: Bool
    private var state = State.proceeding(last: nil)

    public init(request: SIPRequest, reliable: Bool, timers: SIPTimerValues = .rfc3261) {
        self.request = request
        self.reliable = reliable
        self.timers = timers
    }

    public var isTerminated: Bool { state == .terminated }

    public var nextDeadline: SIPInstant? {
        switch state {
        case .proceeding, .terminated: nil
        case .completed(_, let retransmitAt, _, let giveUpAt): retransmitAt.map { min($0, giveUpAt) } ?? giveUpAt
        case .confirmed(let until), .accepted(let until): until
        }
    }

    /// A retransmitted INVITE: answered with the most recent response, or absorbed.
    public mutating func receivedRetransmission() -> [Action] {
        switch state {
        case .proceeding(let last): return last.map { [.transmit($0)] } ?? []
        case .completed(let last, _, _, _): return [.transmit(last)]
        case .confirmed, .accepted, .terminated: return []
        }
    }

    public mutating func receivedACK(_ ack: SIPRequest, now: SIPInstant) -> [Action] {
        switch state {
        case .completed:
            // Confirmed; Timer I = T4 unreliable, zero reliable.
            if reliable {
                state = .terminated
                return [.terminated(.completed)]
            }
            state = .confirmed(until: now + timers.t4)
            return []
        case .accepted:
            // RFC 6026 §8.7: an ACK for the 2xx is passed to the TU.
            return [.deliverACK(ack)]
        case .proceeding, .confirmed, .terminated:
            return []
        }
    }

    public mutating func respond(_ response: SIPResponse, now: SIPInstant) -> [Action] {
        switch state {
        case .proceeding:
            if response.isProvisional {
                state = .proceeding(last: response)
                return [.transmit(response)]
            }
            if response.isSuccess {
                // RFC 6026: Accepted; the TU retransmits the 2xx until its ACK arrives.
                state = .accepted(until: now + timers.transactionTimeout)
                return [.transmit(response)]
            }
            state = .completed(
                last: response, retransmitAt: reliable ? nil : now + timers.t1, interval: timers.t1,
                giveUpAt: now + timers.transactionTimeout)
            return [.transmit(response)]
        case .accepted:
            // The TU's retransmissions of its 2xx (RFC 6026 §8.7).
            return response.isSuccess ? [.transmit(response)] : []
        case .completed, .confirmed, .terminated:
            return []
        }
    }

    public mutating func deadlineReached(now: SIPInstant) -> [Action] {
        switch state {
        case .completed(let last, let retransmitAt, let interval, let giveUpAt):
            if now >= giveUpAt {
                // Timer H: no ACK; "the server transaction ... SHOULD inform the TU".
                state = .terminated
                return [.terminated(.timeout)]
            }
            guard let retransmitAt, now >= retransmitAt else { return [] }
            // Timer G: retransmit, doubling up to T2.
            let next = min(interval * 2, timers.t2)
            state = .completed(last: last, retransmitAt: now + next, interval: next, giveUpAt: giveUpAt)
            return [.transmit(last)]
        case .confirmed(let until), .accepted(let until):
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
}

/// Transaction identity (RFC 3261 §17.1.3, §17.2.3).
public struct SIPTransactionKey: Hashable, Sendable, CustomStringConvertible {
    /// The RFC 3261 form: branch, sent-by and method (ACK and CANCEL are keyed with their own
    /// method; `forCancel`/`forACK` find the INVITE's key).
    public var branch: String
    public var sentBy: String
    public var method: SIPMethod

    public var description: String { "\(branch)|\(sentBy)|\(method)" }

    public init(branch: String, sentBy: String, method: SIPMethod) {
        self.branch = branch
        self.sentBy = sentBy
        self.method = method
    }

    /// §17.2.3: the server key of a request with a magic-cookie branch; RFC 2543 requests
    /// (no cookie) are keyed by Request-URI, tags, Call-ID, CSeq and top Via instead.
    public static func server(_ request: SIPRequest) -> SIPTransactionKey? {
        guard let via = request.topVia else { return nil }
        let sentBy = via.host.lowercased() + ":" + String(via.port ?? 5060)
        let method = request.method == .ack ? .invite : request.method
        if let branch = via.branch, branch.hasPrefix(SIPVia.magicCookie) {
            return SIPTransactionKey(branch: branch, sentBy: sentBy, method: method)
        }
        // RFC 2543 compatibility (§17.2.3): everything that identified a transaction then. The
        // To tag is left out so that an ACK for a non-2xx (which carries it) still matches.
        guard let cseq = request.cseq else { return nil }
        let legacy = [request.uri.description, request.from?.tag ?? "", request.callID ?? "", String(cseq.sequence),
                      via.description].joined(separator: "|")
        return SIPTransactionKey(branch: "rfc2543:" + legacy, sentBy: sentBy, method: method)
    }

    /// §17.1.3: the client key of a response: the top Via's branch and the CSeq method.
    public static func client(_ response: SIPResponse) -> SIPTransactionKey? {
        guard let via = response.topVia, let branch = via.branch, let cseq = response.cseq else { return nil }
        let method = cseq.method == .ack ? .invite : cseq.method
        return SIPTransactionKey(branch: branch, sentBy: "", method: method)
    }

    public static func client(_ request: SIPRequest) -> SIPTransactionKey? {
        guard let branch = request.topVia?.branch else { return nil }
        return SIPTransactionKey(branch: branch, sentBy: "", method: request.method)
    }

    /// §9.2: a CANCEL targets the INVITE server transaction with the same key but method INVITE.
    public static func invite(cancelledBy cancel: SIPRequest) -> SIPTransactionKey? {
        guard cancel.method == .cancel, var key = server(cancel) else { return nil }
        key.method = .invite
        return key
    }
}
