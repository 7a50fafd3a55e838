import SIPCore
import Testing

/// The RFC 3261 §17 transaction state machines, driven by a manual clock: each test reads the
/// one deadline the machine asks for, jumps to it, and checks what happens there.
struct TransactionTests {
    static func request(_ method: SIPMethod, branch: String = "z9hG4bK74bf9") throws -> SIPRequest {
        let text = """
            \(method) sip:bob@biloxi.example.com SIP/2.0\r
            Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=\(branch)\r
            Max-Forwards: 70\r
            From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r
            To: Bob <sip:bob@biloxi.example.com>\r
            Call-ID: 3848276298220188511@atlanta.example.com\r
            CSeq: 1 \(method)\r
            Route: <sip:proxy.biloxi.example.com;lr>\r
            Content-Length: 0\r
            \r

            """
        guard case .request(let request) = try SIPParser().parse(datagram: text) else { throw SIPParseError(.malformedStartLine) }
        return request
    }

    static func at(_ seconds: Double) -> SIPInstant { SIPInstant(.milliseconds(Int64(seconds * 1000))) }

    @Test("non-INVITE client over UDP: Timer E doubles to T2, Timer F gives up at 64*T1")
    func nonInviteTimeout() throws {
        let request = try Self.request(.message)
        var (transaction, actions) = ClientNonInviteTransaction.start(request: request, reliable: false, now: .origin)
        #expect(actions == [.transmit(request)])
        var times: [Double] = []
        var outcome: SIPTransactionOutcome? = nil
        while let deadline = transaction.nextDeadline {
            for action in transaction.deadlineReached(now: deadline) {
                switch action {
                case .transmit: times.append(Double(deadline.sinceOrigin.components.seconds) + Double(deadline.sinceOrigin.components.attoseconds) / 1e18)
                case .terminated(let result): outcome = result
                case .deliver: Issue.record("nothing to deliver")
                }
            }
        }
        #expect(times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
        #expect(outcome == .timeout)
    }

    @Test("non-INVITE client: a 1xx moves to Proceeding (retransmits every T2), a final to Completed, Timer K ends it")
    func nonInviteSuccess() throws {
        let request = try Self.request(.message)
        var (transaction, _) = ClientNonInviteTransaction.start(request: request, reliable: false, now: .origin)
        let trying = request.makeResponse(100)
        #expect(transaction.received(trying, now: Self.at(0.2)) == [.deliver(trying)])
        #expect(transaction.deadlineReached(now: Self.at(0.5)) == [.transmit(request)])
        #expect(transaction.nextDeadline == Self.at(4.5))
        let ok = request.makeResponse(200, toTag: "a6c85cf")
        #expect(transaction.received(ok, now: Self.at(1)) == [.deliver(ok)])
        #expect(transaction.received(ok, now: Self.at(1.5)) == [])
        #expect(transaction.nextDeadline == Self.at(6))
        #expect(transaction.deadlineReached(now: Self.at(6)) == [.terminated(.completed)])
        // Over TCP nothing is retransmitted and the final ends it at once.
        var (tcp, _) = ClientNonInviteTransaction.start(request: request, reliable: true, now: .origin)
        #expect(tcp.nextDeadline == Self.at(32))
        #expect(tcp.received(ok, now: Self.at(1)) == [.deliver(ok), .terminated(.completed)])
        #expect(tcp.isTerminated)
    }

    @Test("INVITE client: Timer A doubles without cap, Timer B gives up at 64*T1")
    func inviteTimeout() throws {
        let invite = try Self.request(.invite)
        var (transaction, _) = ClientInviteTransaction.start(request: invite, reliable: false, now: .origin)
        var transmits = 1
        var outcome: SIPTransactionOutcome? = nil
        while let deadline = transaction.nextDeadline {
            for action in transaction.deadlineReached(now: deadline) {
                if case .transmit = action { transmits += 1 }
                if case .terminated(let result) = action { outcome = result }
            }
        }
        // Sent at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s.
        #expect(transmits == 7)
        #expect(outcome == .timeout)
    }

    @Test("INVITE client, 486: the transaction ACKs (§17.1.1.3), re-ACKs retransmissions, Timer D ends it")
    func inviteFailure() throws {
        let invite = try Self.request(.invite)
        var (transaction, _) = ClientInviteTransaction.start(request: invite, reliable: false, now: .origin)
        _ = transaction.received(invite.makeResponse(180, toTag: "314159"), now: Self.at(0.3))
        #expect(transaction.nextDeadline == nil)
        let busy = invite.makeResponse(486, toTag: "314159")
        let actions = transaction.received(busy, now: Self.at(2))
        guard case .transmit(let ack)? = actions.first else { Issue.record("no ACK"); return }
        #expect(actions.dropFirst() == [.deliver(busy)])
        #expect(ack.method == .ack)
        #expect(ack.cseq == SIPCSeq(1, .ack))
        #expect(ack.to?.tag == "314159")
        #expect(ack.topVia?.branch == invite.topVia?.branch)
        #expect(ack.uri == invite.uri)
        #expect(ack.routes == invite.routes)
        #expect(transaction.received(busy, now: Self.at(3)) == [.transmit(ack)])
        #expect(transaction.nextDeadline == Self.at(34))
        #expect(transaction.deadlineReached(now: Self.at(34)) == [.terminated(.completed)])
    }

    @Test("INVITE client, 2xx: Accepted (RFC 6026) passes retransmitted 2xx to the TU until Timer M")
    func inviteAccepted() throws {
        let invite = try Self.request(.invite)
        var (transaction, _) = ClientInviteTransaction.start(request: invite, reliable: false, now: .origin)
        let ok = invite.makeResponse(200, toTag: "a1")
        #expect(transaction.received(ok, now: Self.at(1)) == [.deliver(ok)])
        #expect(transaction.received(ok, now: Self.at(2)) == [.deliver(ok)])
        #expect(transaction.nextDeadline == Self.at(33))
        #expect(transaction.deadlineReached(now: Self.at(33)) == [.terminated(.completed)])
    }

    @Test("non-INVITE server: retransmissions are absorbed, then answered with the last response; Timer J")
    func nonInviteServer() throws {
        let request = try Self.request(.message)
        var transaction = ServerNonInviteTransaction(request: request, reliable: false)
        #expect(transaction.receivedRetransmission() == [])
        let trying = request.makeResponse(100)
        #expect(transaction.respond(trying, now: Self.at(0.1)) == [.transmit(trying)])
        #expect(transaction.receivedRetransmission() == [.transmit(trying)])
        let ok = request.makeResponse(200, toTag: "x")
        #expect(transaction.respond(ok, now: Self.at(1)) == [.transmit(ok)])
        #expect(transaction.receivedRetransmission() == [.transmit(ok)])
        #expect(transaction.respond(request.makeResponse(500), now: Self.at(1.1)) == [])
        #expect(transaction.nextDeadline == Self.at(33))
        #expect(transaction.deadlineReached(now: Self.at(33)) == [.terminated(.completed)])
    }

    @Test("INVITE server, 486: Timer G retransmits (capped at T2) until the ACK; Confirmed; Timer I")
    func inviteServerFailure() throws {
        let invite = try Self.request(.invite)
        var transaction = ServerInviteTransaction(request: invite, reliable: false)
        let busy = invite.makeResponse(486, toTag: "t")
        #expect(transaction.respond(busy, now: .origin) == [.transmit(busy)])
        var retransmits: [SIPInstant] = []
        while let deadline = transaction.nextDeadline, deadline < Self.at(12) {
            if transaction.deadlineReached(now: deadline) == [.transmit(busy)] { retransmits.append(deadline) }
        }
        #expect(retransmits == [0.5, 1.5, 3.5, 7.5, 11.5].map(Self.at))
        #expect(transaction.receivedRetransmission() == [.transmit(busy)])
        #expect(transaction.receivedACK(try Self.request(.ack), now: Self.at(12)) == [])
        #expect(transaction.nextDeadline == Self.at(17))
        #expect(transaction.deadlineReached(now: Self.at(17)) == [.terminated(.completed)])
    }

    @Test("INVITE server, no ACK: Timer H tells the TU")
    func inviteServerNoACK() throws {
        let invite = try Self.request(.invite)
        var transaction = ServerInviteTransaction(request: invite, reliable: true)
        _ = transaction.respond(invite.makeResponse(603, toTag: "t"), now: .origin)
        #expect(transaction.nextDeadline == Self.at(32))
        #expect(transaction.deadlineReached(now: Self.at(32)) == [.terminated(.timeout)])
    }

    @Test("INVITE server, 2xx: Accepted (RFC 6026) absorbs INVITE retransmissions and passes the ACK up; Timer L")
    func inviteServerAccepted() throws {
        let invite = try Self.request(.invite)
        var transaction = ServerInviteTransaction(request: invite, reliable: false)
        let ringing = invite.makeResponse(180, toTag: "t")
        _ = transaction.respond(ringing, now: .origin)
        #expect(transaction.receivedRetransmission() == [.transmit(ringing)])
        let ok = invite.makeResponse(200, toTag: "t")
        #expect(transaction.respond(ok, now: Self.at(1)) == [.transmit(ok)])
        #expect(transaction.receivedRetransmission() == [])
        #expect(transaction.respond(ok, now: Self.at(1.5)) == [.transmit(ok)])
        let ack = try Self.request(.ack, branch: "z9hG4bKnew")
        #expect(transaction.receivedACK(ack, now: Self.at(2)) == [.deliverACK(ack)])
        #expect(transaction.deadlineReached(now: Self.at(33)) == [.terminated(.completed)])
    }

    @Test("transaction keys: ACK and CANCEL find their INVITE; RFC 2543 requests are keyed too (§17.2.3)")
    func keys() throws {
        let invite = try Self.request(.invite)
        let ack = try Self.request(.ack)
        let cancel = try Self.request(.cancel)
        #expect(SIPTransactionKey.server(ack) == SIPTransactionKey.server(invite))
        #expect(SIPTransactionKey.server(cancel) != SIPTransactionKey.server(invite))
        #expect(SIPTransactionKey.invite(cancelledBy: cancel) == SIPTransactionKey.server(invite))
        #expect(SIPTransactionKey.client(invite.makeResponse(180)) == SIPTransactionKey.client(invite))
        let legacy = try Self.request(.invite, branch: "1")
        let legacyCancel = try Self.request(.cancel, branch: "1")
        #expect(SIPTransactionKey.server(legacy)?.branch.hasPrefix("rfc2543:") == true)
        #expect(SIPTransactionKey.invite(cancelledBy: legacyCancel) == SIPTransactionKey.server(legacy))
        #expect(SIPTransactionKey.server(try Self.request(.invite, branch: "z9hG4bKother")) != SIPTransactionKey.server(invite))
    }
}
