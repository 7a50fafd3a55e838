import Foundation
import NIOCore
import SIPCore
import SIPEdge

/// Lync-style IM sessions (protocols.md §4.2): the gateway as UAS and as UAC.
extension EmbeddedDomain {
    // MARK: UAS

    /// Accepts an IM session INVITE (from the foreign handler: a local user writing to someone
    /// the gateway stands for). Answers 488 when the SDP offers no SIP IM media, as Lync clients
    /// do; otherwise 200 with our SDP and, when the INVITE carried the first message in
    /// `ms-text-format`, `Supported: ms-text-format` to say it was taken (it is the session's
    /// first `.message` event).
    public func acceptSession(_ server: SIPServerRequest, onEvent: @escaping @Sendable (IMSessionEvent) -> Void) -> EventLoopFuture<IMSession?> {
        loop.submit { [self] in acceptOnLoop(server, onEvent: onEvent) }
    }

    /// `announceFirst: false` when the first message was already passed on (a relayed session).
    private func acceptOnLoop(_ server: SIPServerRequest, announceFirst: Bool = true,
                              onEvent: @escaping @Sendable (IMSessionEvent) -> Void) -> IMSession? {
        let request = server.request
        guard request.contentType.map({ $0.matches(.sdp) }) ?? false, IMSessionDescription(bytes: request.body) != nil else {
            server.respond(request.makeResponse(488, reasonPhrase: "No SIP IM Media Offered"))
            return nil
        }
        let tag = SIPNameAddress.makeTag()
        guard let dialog = SIPDialog.uas(request: request, localTag: tag) else {
            server.respond(request.makeResponse(400, reasonPhrase: "Cannot Form A Dialog", toTag: tag))
            return nil
        }
        let first = request.headers[MSTextFormat.header].flatMap(MSTextFormat.init(headerValue:))
        var response = request.makeResponse(200, toTag: tag)
        response.headers.add(.contact, "<\(edge.contact(for: server.source.transport))>")
        if first != nil { response.headers.add(.supported, MSTextFormat.optionTag) }
        response.headers.add(.contentType, SIPMediaType.sdp.description)
        response.body = localDescription(for: server.source.transport).serialized()
        let session = IMSession(dialog: dialog, flow: SIPTarget(server.source), domain: self, onEvent: onEvent)
        sessions[session.id] = session
        server.respond(response)
        if server.source.transport == .udp {
            session.unacknowledged = (server, response, nil)
            retransmitOK(session, interval: edge.configuration.timers.t1, elapsed: .zero)
        }
        touch(session)
        if announceFirst, let first { onEvent(.message(contentType: first.contentType, body: first.body)) }
        return session
    }

    // MARK: Between two local users

    /// An IM INVITE from a local user to a local user: the domain stands in the middle (a
    /// back-to-back UA). The callee's endpoints get a forked INVITE carrying the first message;
    /// the caller's INVITE is answered only once one of them accepts (delivered means accepted),
    /// with the callee's failure otherwise and a missed-message notice. Then messages, typing
    /// and hang-up cross between the two sessions.
    func relaySession(_ server: SIPServerRequest) {
        let request = server.request
        guard request.contentType.map({ $0.matches(.sdp) }) ?? false, IMSessionDescription(bytes: request.body) != nil else {
            return server.respond(request.makeResponse(488, reasonPhrase: "No SIP IM Media Offered"))
        }
        withLocalSender(server) { [self] sender in
            withExistingUser(server) { [self] callee in
                let first = request.headers[MSTextFormat.header].flatMap(MSTextFormat.init(headerValue:))
                let caller = SIPNameAddress(displayName: request.from?.displayName, uri: SIPURI("sip:\(sender)") ?? request.uri)
                let bridge = SessionBridge(domain: self)
                openOnLoop(from: caller, to: callee, first: first, onEvent: { bridge.relay($0, from: .callee) }) { [self] result in
                    switch result {
                    case .success(let calleeSession):
                        bridge.callee = calleeSession
                        guard let callerSession = acceptOnLoop(server, announceFirst: false, onEvent: { bridge.relay($0, from: .caller) }) else {
                            return endSession(calleeSession, .local, sendBye: true)
                        }
                        bridge.caller = callerSession
                    case .failure(let failure):
                        server.respond(Self.response(to: request, for: failure.outcome))
                        if case .accepted = failure.outcome { return }
                        if let first {
                            // The notice quotes the first message, not the SDP.
                            var missed = request
                            missed.body = first.body
                            missed.headers.set(.contentType, first.contentType.description)
                            recordMissed(missed, for: callee)
                        }
                    }
                }
            }
        }
    }

    private func localDescription(for transport: SIPSource.Transport) -> IMSessionDescription {
        let uri = edge.contact(for: transport)
        return IMSessionDescription(address: uri.host.trimmingCharacters(in: ["[", "]"]), port: uri.port ?? 5060)
    }

    /// §13.3.1.4: the 2xx goes again at T1, doubling to T2, until the ACK; after 64*T1 without
    /// one the session ends with BYE.
    private func retransmitOK(_ session: IMSession, interval: Duration, elapsed: Duration) {
        let timers = edge.configuration.timers
        session.unacknowledged?.timer = loop.scheduleTask(in: TimeAmount(interval)) { [self] in
            guard let (server, response, _) = session.unacknowledged, !session.closed else { return }
            let total = elapsed + interval
            if total >= timers.transactionTimeout {
                session.unacknowledged = nil
                return endSession(session, .failed(statusCode: nil), sendBye: true)
            }
            server.respond(response)
            retransmitOK(session, interval: min(interval * 2, timers.t2), elapsed: total)
        }
    }

    /// The ACK for our 2xx (the edge hands 2xx ACKs to the dialog layer).
    func receivedACK(_ ack: SIPRequest) {
        guard let id = Self.dialogID(of: ack), let session = sessions[id] else { return }
        session.unacknowledged?.timer?.cancel()
        session.unacknowledged = nil
    }

    /// The UAS's view of a request's dialog: our tag is the To tag.
    static func dialogID(of request: SIPRequest) -> SIPDialog.ID? {
        guard let callID = request.callID, let local = request.to?.tag, let remote = request.from?.tag else { return nil }
        return SIPDialog.ID(callID: callID, localTag: local, remoteTag: remote)
    }

    /// A request inside a dialog that is not a SUBSCRIBE refresh.
    func inDialog(_ server: SIPServerRequest) {
        let request = server.request
        guard let id = Self.dialogID(of: request), let session = sessions[id] else {
            return server.respond(request.makeResponse(481))
        }
        guard session.dialog.acceptRemote(request) else {
            return server.respond(request.makeResponse(500, reasonPhrase: "CSeq Out Of Order"))
        }
        switch request.method {
        case .message:
            server.respond(request.makeResponse(200))
            touch(session)
            if request.contentType.map({ $0.matches(.isComposing) }) ?? false {
                let active = (try? IsComposingDocument(bytes: request.body))?.state == .active
                session.onEvent(.composing(active: active))
            } else {
                session.onEvent(.message(contentType: request.contentType ?? .textPlain, body: request.body))
            }
        case .bye:
            server.respond(request.makeResponse(200))
            endSession(session, .remoteBye, sendBye: false)
        case .invite:
            // A re-INVITE refreshes the session; the media stays SIP.
            session.dialog.refreshTarget(from: request)
            var response = request.makeResponse(200)
            response.headers.add(.contact, "<\(edge.contact(for: server.source.transport))>")
            response.headers.add(.contentType, SIPMediaType.sdp.description)
            response.body = localDescription(for: server.source.transport).serialized()
            server.respond(response)
        case .info, .update:
            server.respond(request.makeResponse(200))
        default:
            var response = request.makeResponse(405)
            response.headers.add(.allow, "MESSAGE, BYE, INVITE, ACK, INFO")
            server.respond(response)
        }
    }

    // MARK: UAC

    /// Opens an IM session from `from` (the address the gateway stands for) to every endpoint of
    /// the local user `aor`: the INVITE is forked, the first 2xx wins and the other branches are
    /// cancelled (a branch that accepted anyway gets ACK and BYE). `first` travels in
    /// `ms-text-format`; if the 200 does not say `Supported: ms-text-format`, it is sent again
    /// as the session's first MESSAGE. Failure is the delivery outcome (offline, or the best
    /// final response).
    public func openSession(from: SIPNameAddress, to aor: String, first: MSTextFormat?,
                            onEvent: @escaping @Sendable (IMSessionEvent) -> Void) async -> Result<IMSession, IMSessionFailure> {
        await withCheckedContinuation { continuation in
            loop.execute { [self] in
                openOnLoop(from: from, to: aor, first: first, onEvent: onEvent) { continuation.resume(returning: $0) }
            }
        }
    }

    private func openOnLoop(from: SIPNameAddress, to aor: String, first: MSTextFormat?,
                            onEvent: @escaping @Sendable (IMSessionEvent) -> Void,
                            completion: @escaping @Sendable (Result<IMSession, IMSessionFailure>) -> Void) {
        var caller = from
        caller.tag = SIPNameAddress.makeTag()
        var headers = SIPHeaders()
        headers.add(.from, caller.description)
        headers.add(.to, "<sip:\(aor)>")
        headers.add(.callID, "im-\(SIPNameAddress.makeTag())-\(SIPNameAddress.makeTag())")
        headers.add(.cseq, "1 INVITE")
        headers.add(.supported, MSTextFormat.optionTag)
        // Lync rejects a reused conversation ID (protocols.md §4.2): a fresh random one.
        headers.add(SIPHeaderName("Ms-Conversation-ID"), SIPNameAddress.makeTag())
        if let first { headers.add(MSTextFormat.header, first.headerValue) }
        headers.add(.contentType, SIPMediaType.sdp.description)
        let invite = SIPRequest(method: .invite, uri: SIPURI(scheme: .sip, user: String(aor.split(separator: "@").first ?? ""),
                                                             host: String(aor.split(separator: "@").last ?? "")),
                                headers: headers, body: localDescription(for: .udp).serialized())
        let edge = self.edge
        deliveryBindings(aor) { [self] bindings in
            ForkedDelivery.start(invite, to: bindings, edge: edge, budget: nil,
                                 prepare: { request, binding in
                                     request.headers.add(.contact, "<\(edge.contact(for: binding.flow.transport))>")
                                     request.body = self.localDescription(for: binding.flow.transport).serialized()
                                 },
                                 late: { [self] winner, response in lateAcceptance(winner, response) },
                                 completion: { [self] outcome, winner in
                                     guard case .accepted(let response, _) = outcome, let winner,
                                           let dialog = SIPDialog.uac(request: winner.request, response: response) else {
                                         return completion(.failure(IMSessionFailure(outcome: outcome)))
                                     }
                                     let session = IMSession(dialog: dialog, flow: winner.binding.flow, domain: self, onEvent: onEvent)
                                     sessions[session.id] = session
                                     acknowledge(session.dialog, flow: session.flow)
                                     touch(session)
                                     completion(.success(session))
                                     if let first, !response.supported.contains(MSTextFormat.optionTag) {
                                         // The callee did not take the first message from the INVITE.
                                         sendInSession(session, body: first.body, contentType: first.contentType) { _ in }
                                     }
                                 })
        }
    }

    /// §13.2.2.4: the ACK for a 2xx is the dialog's, with the INVITE's CSeq number.
    private func acknowledge(_ dialog: SIPDialog, flow: SIPTarget) {
        var dialog = dialog
        edge.sendStateless(dialog.makeRequest(.ack), to: flow)
    }

    /// A 2xx after the fork was settled: the winner's retransmission (our ACK was lost) gets the
    /// ACK again; another endpoint that accepted before its CANCEL arrived gets ACK and BYE.
    private func lateAcceptance(_ winner: ForkWinner, _ response: SIPResponse) {
        guard var dialog = SIPDialog.uac(request: winner.request, response: response) else { return }
        acknowledge(dialog, flow: winner.binding.flow)
        if sessions[dialog.id] == nil {
            edge.send(dialog.makeRequest(.bye), to: winner.binding.flow) { _ in }
        }
    }

    // MARK: Both sides

    func sendInSession(_ session: IMSession, body: [UInt8], contentType: SIPMediaType, completion: @escaping @Sendable (Bool) -> Void) {
        guard !session.closed else { return completion(false) }
        var message = session.dialog.makeRequest(.message)
        message.headers.add(.contentType, contentType.description)
        message.body = body
        touch(session)
        edge.send(message, to: session.flow) { [self] event in
            switch event {
            case .provisional:
                return
            case .final(let response) where response.isSuccess:
                completion(true)
            case .final(let response):
                completion(false)
                // SIPE's rule: these mean the far end lost the dialog.
                if [408, 480, 481].contains(response.statusCode) {
                    endSession(session, .failed(statusCode: response.statusCode), sendBye: response.statusCode != 481)
                }
            case .timeout, .transportError:
                completion(false)
                endSession(session, .failed(statusCode: nil), sendBye: false)
            }
        }
    }

    /// Restarts the inactivity timer (any message in or out).
    private func touch(_ session: IMSession) {
        session.inactivity?.cancel()
        session.inactivity = loop.scheduleTask(in: TimeAmount(configuration.imSessionInactivity)) { [self] in
            endSession(session, .inactivity, sendBye: true)
        }
    }

    func endSession(_ session: IMSession, _ end: IMSessionEnd, sendBye: Bool) {
        guard !session.closed else { return }
        session.closed = true
        session.inactivity?.cancel()
        session.unacknowledged?.timer?.cancel()
        session.unacknowledged = nil
        if sendBye {
            // The session is gone for us at once; the BYE's own answer does not matter, but it
            // is kept until it comes so that shutdown can wait for it.
            edge.send(session.dialog.makeRequest(.bye), to: session.flow) { [self] event in
                if case .provisional = event { return }
                sessions[session.id] = nil
            }
        } else {
            sessions[session.id] = nil
        }
        session.onEvent(.closed(end))
    }

    func closeAllSessions() {
        for session in sessions.values { endSession(session, .shutdown, sendBye: true) }
    }
}

/// The two halves of a relayed session; loop-bound. Each side's events go to the other; the
/// references are dropped when either side ends, which breaks the cycle through the closures.
final class SessionBridge: @unchecked Sendable {
    enum Side { case caller, callee }
    weak var domain: EmbeddedDomain?
    var caller: IMSession?
    var callee: IMSession?

    init(domain: EmbeddedDomain) { self.domain = domain }

    func relay(_ event: IMSessionEvent, from side: Side) {
        guard let domain, let other = side == .caller ? callee : caller else { return }
        switch event {
        case .message(let type, let body):
            domain.sendInSession(other, body: body, contentType: type) { _ in }
        case .composing(let active):
            let document = IsComposingDocument(state: active ? .active : .idle, contentType: "text/plain")
            domain.sendInSession(other, body: document.serialized(), contentType: .isComposing) { _ in }
        case .closed:
            caller = nil
            callee = nil
            domain.endSession(other, .local, sendBye: true)
        }
    }
}

/// Why a session could not be opened.
public struct IMSessionFailure: Error, Hashable, Sendable {
    public let outcome: SIPDeliveryOutcome
}
