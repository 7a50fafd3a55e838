import Foundation
import GatewayStore
import Interworking
import Logging
import NIOCore
import SIPCore
import SIPDomain
import SIPEdge
import StoxNIO
import XMLCore
import XMPPCore

/// Messages across the gateway (RFC 7572 pager mode, RFC 7573 sessions). Both directions go
/// through the durable queue: a message is acknowledged to its sender only once it is stored,
/// and leaves the queue only once its fate is known (a SIP endpoint accepted it, or a final
/// failure went back to the sender as an error).
extension Gateway {
    static let towardSIP = "xmpp-to-sip"
    static let towardXMPP = "sip-to-xmpp"

    // MARK: XMPP → SIP

    /// Every stanza from the XMPP side (on the loop). `handled` runs once the stanza is dealt
    /// with: for a message, once it is stored (the peer's XEP-0198 acknowledgement waits for
    /// it, so a crash before that leaves the message with the peer, which resends it).
    func fromXMPP(_ element: XMLElement, handled: @escaping @Sendable () -> Void) {
        loop.preconditionInEventLoop()
        switch element.name {
        case "message":
            guard let message = try? XMPPMessage(element: element) else {
                handled()
                return metrics.error("bad-stanza")
            }
            xmppMessage(message, element: element, handled: handled)
            return
        case "presence":
            defer { handled() }
            guard let presence = try? XMPPPresence(element: element) else { return metrics.error("bad-stanza") }
            xmppPresence(presence)
        case "iq":
            defer { handled() }
            // disco#info and ping are answered by the federation layer; nothing else is offered
            // (RFC 6120 §8.2.3: an iq get/set must be answered).
            guard let iq = try? XMPPIQ(element: element), iq.type == .get || iq.type == .set else { return }
            var reply = XMPPIQ(from: iq.to, to: iq.from, id: iq.id, type: .error)
            reply.error = StanzaError(.serviceUnavailable)
            send(reply.element())
        default:
            handled()
        }
    }

    func xmppMessage(_ message: XMPPMessage, element: XMLElement, handled: @escaping @Sendable () -> Void) {
        // Everything but a stored message is dealt with before this returns.
        var stored = false
        defer { if !stored { handled() } }
        if message.effectiveType == .error {
            // A bounce of something we sent: the SIP sender was answered already (202).
            if let id = message.id, let row = outstanding.removeValue(forKey: id) {
                return bounced(row, message)
            }
            metrics.error("xmpp-bounce")
            logger.notice("XMPP error for a message from SIP", metadata: [
                "from": "\(message.from?.description ?? "-")", "to": "\(message.to?.description ?? "-")",
                "condition": "\(message.error?.condition.rawValue ?? "-")",
            ])
            return
        }
        guard let from = message.from, let to = message.to, let aor = aor(of: to),
              domain.configuration.serves(aor: aor) || isPeer(aor)
        else {
            return bounce(message, StanzaError(.itemNotFound, text: "no such SIP user here"))
        }
        // Inside a session the SIP user opened: the message rides the session (RFC 7573).
        if let session = sessions[SessionKey(local: aor, remote: from.bare)], message.effectiveType == .chat {
            return sendInSession(session, message)
        }
        let translated: Translated<SIPRequest?>
        do {
            translated = try toSIP.message(message, session: peerUsesSessions(aor), congestionControlled: reachedOverTCP(aor))
        } catch {
            metrics.error("translation")
            return bounce(message, error.error)
        }
        guard let request = translated.value else { return }  // a lone receipt, an unmapped chat state
        if message.bodies.isEmpty {
            // A chat state: ephemeral (XEP-0085 §5.2 notifications are not stored), not queued,
            // and never answered with an error. A session peer takes it only inside a session.
            if peerUsesSessions(aor) { return }
            domain.deliver(complete(request), to: aor, budget: nil) { _ in }
            metrics.translated("xmpp-to-sip", kind: "chat-state")
            return
        }
        let key = "\(from)|\(message.id ?? IdentifierRandom.hex128())"
        let entry = OutboundMessage(direction: Self.towardSIP, messageID: key, destination: aor, payload: XMLSerializer.bytes(element))
        stored = true
        queue.enqueue(entry) { [self] result in
            // Committed (or known already): the peer may forget it.
            handled()
            inbox.submit { [self] in
                switch result {
                case .success(.stored(let id)):
                    metrics.stored(Self.towardSIP)
                    deliverToSIP(id: id, message: message, request: request, aor: aor)
                case .success(.duplicate):
                    // The same stanza again (a peer resending after a broken link): it is
                    // queued or was delivered; sending it twice would duplicate it.
                    metrics.error("duplicate")
                case .failure(let error):
                    metrics.error("store")
                    logger.error("cannot queue a message for \(aor): \(error)")
                    bounce(message, StanzaError(.resourceConstraint, text: "the gateway cannot store the message"))
                }
            }
        }
    }

    /// Forks the MESSAGE to the user's endpoints; the fate decides the answer to the XMPP
    /// sender: a receipt only after a 2xx (XEP-0184), an error from the tables otherwise.
    func deliverToSIP(id: Int64, message: XMPPMessage, request: SIPRequest, aor: String) {
        if peerUsesSessions(aor), let from = message.from {
            return deliverInSession(id: id, message: message, request: request, aor: aor, from: from.bare)
        }
        domain.deliver(complete(request), to: aor, budget: nil) { [self] outcome in
            // RFC 6120 §8.3.3.19: only a watcher may learn that the user is unavailable.
            let authorized = message.from.map { xmppWatchers[aor]?[$0.bare] == .active } ?? false
            switch outcome {
            case .accepted(let response, _):
                metrics.translated("xmpp-to-sip", kind: "message")
                if let receipt = toXMPP.receipt(for: message, after: response).value { send(receipt.element()) }
            case .failed(let best):
                let response = best ?? SIPResponse(statusCode: 480, reasonPhrase: "Not Accepted By Any Endpoint")
                metrics.error("sip-\(response.statusCode)")
                bounce(message, toXMPP.error(response, senderAuthorized: authorized).value)
            case .offline:
                metrics.error("sip-480")
                bounce(message, toXMPP.error(SIPResponse(statusCode: 480, reasonPhrase: "User Offline"), senderAuthorized: authorized).value)
            }
            // Final either way: accepted, or the sender knows it was not (and the user has a
            // missed-message notice).
            acknowledge(id)
        }
    }

    /// The fields a translated request leaves to the SIP layers (RFC 3261 §8.1.1).
    func complete(_ translated: SIPRequest) -> SIPRequest {
        var request = translated
        // The tag is appended to From as written: parsing it and rendering it again cost more
        // than the rest of this function, for every message.
        if let from = request.headers[.from], !SIPNameAddress.hasTag(from) {
            request.headers.set(.from, from + ";tag=" + SIPNameAddress.makeTag())
        }
        if request.callID == nil { request.headers.set(.callID, IdentifierRandom.hex128()) }
        if request.cseq == nil { request.headers.set(.cseq, SIPCSeq(1, request.method).description) }
        if request.maxForwards == nil { request.headers.set(.maxForwards, "70") }
        return request
    }

    func bounce(_ message: XMPPMessage, _ error: StanzaError) {
        guard let from = message.from else { return }
        var reply = XMPPMessage(from: message.to, to: from, id: message.id, type: .error)
        reply.error = error
        send(reply.element())
    }

    /// Marks a row delivered in the queue's next group commit (a row marked late is sent
    /// again after a crash: the window is one commit).
    func acknowledge(_ id: Int64) {
        queue.markDelivered(id)
    }

    // MARK: SIP → XMPP

    /// A request from a local SIP user to someone on the XMPP side (authenticated by the domain).
    func fromSIP(_ server: SIPServerRequest, sender: String) {
        loop.preconditionInEventLoop()
        let request = server.request
        switch request.method {
        case .message:
            sipMessage(server)
        case .invite:
            sipSession(server, sender: sender)
        case .options:
            var response = request.makeResponse(200)
            response.headers.add(.allow, "MESSAGE, INVITE, ACK, BYE, CANCEL, SUBSCRIBE, OPTIONS")
            server.respond(response)
        default:
            var response = request.makeResponse(405)
            response.headers.add(.allow, "MESSAGE, INVITE, ACK, BYE, CANCEL, SUBSCRIBE, OPTIONS")
            server.respond(response)
        }
    }

    private func sipMessage(_ server: SIPServerRequest) {
        let request = server.request
        guard !stopping else {
            var response = request.makeResponse(503)
            response.headers.add(.retryAfter, "5")
            return server.respond(response)
        }
        let translated: Translated<XMPPMessage>
        do {
            translated = try toXMPP.message(request)
        } catch {
            metrics.error("translation")
            let recipient = request.to.flatMap { try? toXMPP.addresses.jid($0.uri).value } ?? JID.placeholder
            return server.respond(withTag(toSIP.response(for: error.error, failedRecipient: recipient).value, for: request))
        }
        var message = translated.value
        if message.bodies.isEmpty {
            // isComposing: ephemeral, straight through.
            send(message.element())
            metrics.translated("sip-to-xmpp", kind: "chat-state")
            return server.respond(request.makeResponse(200))
        }
        // RFC 3261 §8.1.1.4, §17.2.3: Call-ID and CSeq name the request across retries.
        let key = "\(request.callID ?? "")|\(request.cseq?.description ?? "")|\(request.from?.tag ?? "")"
        if message.id == nil { message.id = IdentifierRandom.hex128() }
        let element = message.element()
        let destination = message.to?.description ?? ""
        queue.enqueue(OutboundMessage(direction: Self.towardXMPP, messageID: key, destination: destination,
                                      payload: XMLSerializer.bytes(element))) { [self] result in
            inbox.submit { [self] in
                switch result {
                case .success(.stored(let id)):
                    metrics.stored(Self.towardXMPP)
                    // RFC 3428 §7: 202, accepted for delivery; XMPP will not say more.
                    server.respond(request.makeResponse(202))
                    sendTowardXMPP(id: id, element)
                case .success(.duplicate):
                    server.respond(request.makeResponse(202))
                case .failure(let error):
                    metrics.error("store")
                    logger.error("cannot queue a message for \(destination): \(error)")
                    var response = request.makeResponse(500, reasonPhrase: "Cannot Store The Message")
                    response.headers.add(.retryAfter, "5")
                    server.respond(response)
                }
            }
        }
    }

    /// The row leaves the queue once the XMPP server acknowledged the stanza (XEP-0198), so a
    /// link that dies, or a gateway killed, before that sends it again. Until then the stanza is
    /// kept by id, so that a bounce finds its row (`bounced`).
    func sendTowardXMPP(id: Int64, _ element: XMLElement, attempt: Int = 0) {
        let stanzaID = element.attribute("id")
        if let stanzaID { outstanding[stanzaID] = (id, element, attempt) }
        // The acknowledgement comes on the XMPP side's loop, which is this one.
        xmpp.send(element) { [self] in
            acknowledge(id)
            if let stanzaID { outstanding[stanzaID] = nil }
        }
        if attempt == 0 { metrics.translated("sip-to-xmpp", kind: "message") }
    }

    /// The XMPP side could not take a stored message. A link that failed (the peer down, a
    /// timeout) is tried again with a growing wait, as long as the message is younger than a
    /// day; the recipient's own refusal ends it (the sender had 202: it is logged and counted).
    private func bounced(_ row: (id: Int64, element: XMLElement, attempt: Int), _ error: XMPPMessage) {
        let condition = error.error?.condition
        let transient: Set<StanzaError.Condition> = [.remoteServerTimeout, .remoteServerNotFound, .serviceUnavailable, .resourceConstraint, .internalServerError]
        metrics.error("xmpp-bounce")
        guard let condition, transient.contains(condition), row.attempt < 12, !stopping else {
            logger.notice("a message from SIP was refused on the XMPP side", metadata: [
                "to": "\(error.from?.description ?? "-")", "condition": "\(condition?.rawValue ?? "-")",
            ])
            return acknowledge(row.id)
        }
        // 5 s, 10 s, 20 s … capped at 10 minutes: about a day in all.
        let wait = min(600, 5 << min(row.attempt, 7))
        logger.info("sending a message from SIP again", metadata: ["in": "\(wait)s", "condition": "\(condition.rawValue)"])
        loop.scheduleTask(in: .seconds(Int64(wait))) { [self] in
            guard !stopping else { return }
            sendTowardXMPP(id: row.id, row.element, attempt: row.attempt + 1)
        }
    }

    private func withTag(_ response: SIPResponse, for request: SIPRequest) -> SIPResponse {
        var answer = request.makeResponse(response.statusCode, reasonPhrase: response.reasonPhrase)
        for field in response.headers where field.name == .contact { answer.headers.add(field.name, field.value) }
        return answer
    }

    // MARK: Lync-style IM sessions (RFC 7573 over protocols.md §4.2)

    private func sipSession(_ server: SIPServerRequest, sender: String) {
        let invite = server.request
        guard let remote = try? toXMPP.addresses.jid(invite.uri).value.bare else {
            return server.respond(invite.makeResponse(404))
        }
        let key = SessionKey(local: sender, remote: remote)
        domain.acceptSession(server) { [weak self] event in
            self?.sessionEvent(event, invite: invite, key: key)
        }.whenSuccess { [self] session in
            guard let session else { return }
            sessions[key]?.close()
            sessions[key] = session
        }
    }

    private func sessionEvent(_ event: IMSessionEvent, invite: SIPRequest, key: SessionKey) {
        sessionEvent(event, uri: invite.uri, from: invite.headers[.from] ?? "", to: invite.headers[.to] ?? "", callID: invite.callID, key: key)
    }

    /// An event of a session, as a MESSAGE from the SIP user (`from`) to the XMPP user would be.
    func sessionEvent(_ event: IMSessionEvent, uri: SIPURI, from: String, to: String, callID: String?, key: SessionKey) {
        var request = SIPRequest(method: .message, uri: uri)
        request.headers.add(.from, from)
        request.headers.add(.to, to)
        if let callID { request.headers.add(.callID, callID) }
        switch event {
        case .message(let contentType, let body):
            request.headers.add(.contentType, contentType.description)
            request.body = body
        case .composing(let active):
            request.headers.add(.contentType, SIPMediaType.isComposing.essence)
            request.body = IsComposingDocument(state: active ? .active : .idle, contentType: "text/plain").serialized()
        case .closed:
            if sessions[key]?.closed ?? true { sessions[key] = nil }
            return
        }
        do {
            send(try toXMPP.message(request, session: true).value.element())
            metrics.translated("sip-to-xmpp", kind: "session")
        } catch {
            metrics.error("translation")
            logger.notice("session message not translated: \(error)")
        }
    }

    private func sendInSession(_ session: IMSession, _ message: XMPPMessage) {
        let text = message.body
        let composing = message.extensions.first { $0.namespace == XMPPNamespace.chatStates }.map(\.name)
        let loop = self.loop
        Task { [self] in
            let delivered: Bool
            if let text {
                delivered = await session.send(text: text)
            } else if let composing {
                delivered = await session.setComposing(composing == "composing")
            } else {
                return
            }
            loop.execute { [self] in
                guard text != nil else { return }
                if delivered {
                    metrics.translated("xmpp-to-sip", kind: "session")
                    if let receipt = toXMPP.receipt(for: message, after: SIPResponse(statusCode: 200)).value { send(receipt.element()) }
                } else {
                    bounce(message, StanzaError(.recipientUnavailable, text: "the IM session ended"))
                }
            }
        }
    }

    // MARK: Peer networks that take sessions, and the pager limit

    /// Whether messages to `aor` travel in Lync-style sessions (`sip.peer_im = domain=session`).
    func peerUsesSessions(_ aor: String) -> Bool {
        domain.configuration.peer(forAOR: aor)?.messaging == .session
    }

    /// Whether a MESSAGE to `aor` goes over TCP or TLS whatever its size: a peer's proxy reached
    /// over a stream, or over UDP with a TCP listener here, which the edge uses for anything
    /// over 1,300 bytes (RFC 3261 §18.1.1). A local user's endpoint may be reachable over UDP
    /// only, so the pager limit stays for them.
    func reachedOverTCP(_ aor: String) -> Bool {
        guard let peer = domain.configuration.peer(forAOR: aor) else { return false }
        if let hop = peer.nextHop, hop.transport != .udp { return true }
        return configuration.sipTCPPort != nil
    }

    /// A stored message to a session peer's user: in the session the XMPP user has with them,
    /// opened by this message when there is none (the first message rides the INVITE in
    /// `ms-text-format`). Messages that arrive while it opens wait for it, in order.
    func deliverInSession(id: Int64, message: XMPPMessage, request: SIPRequest, aor: String, from: JID) {
        let key = SessionKey(local: aor, remote: from)
        let entry = PendingSessionMessage(id: id, message: message, request: request)
        if let session = sessions[key], !session.closed {
            return sendStored(entry, in: session)
        }
        if sessionsOpening[key] != nil {
            sessionsOpening[key]?.append(entry)
            return
        }
        sessionsOpening[key] = [entry]
        let caller = SIPNameAddress(uri: request.from?.uri ?? SIPURI(scheme: .sip, user: nil, host: "invalid"))
        var type = request.contentType ?? .textPlain
        if type.parameters["charset"] == nil { type.parameters.set("charset", .some("UTF-8")) }
        let first = MSTextFormat(contentType: type, body: request.body)
        let (fromHeader, toHeader) = (request.headers[.to] ?? "<sip:\(aor)>", "<\(caller.uri)>")
        let uri = caller.uri
        Task { [self, domain] in
            let opened = await domain!.openSession(from: caller, to: aor, first: first) { [weak self] event in
                guard let self else { return }
                loop.execute { self.sessionEvent(event, uri: uri, from: fromHeader, to: toHeader, callID: nil, key: key) }
            }
            loop.execute { [self] in
                let waiting = sessionsOpening.removeValue(forKey: key) ?? []
                switch opened {
                case .success(let session):
                    sessions[key]?.close()
                    sessions[key] = session
                    // The first message went with the INVITE: accepted with the session.
                    if let head = waiting.first { settled(head, by: .accepted(SIPResponse(statusCode: 200), contact: SIPNameAddress(uri: SIPURI("sip:\(aor)") ?? uri))) }
                    for entry in waiting.dropFirst() { sendStored(entry, in: session) }
                case .failure(let failure):
                    for entry in waiting { settled(entry, by: failure.outcome) }
                }
            }
        }
    }

    private func sendStored(_ entry: PendingSessionMessage, in session: IMSession) {
        let text = entry.message.body ?? ""
        Task { [self] in
            let delivered = await session.send(text: text)
            loop.execute { [self] in
                settled(entry, by: delivered ? .accepted(SIPResponse(statusCode: 200), contact: SIPNameAddress(uri: session.remoteURI))
                                             : .failed(best: SIPResponse(statusCode: 481, reasonPhrase: "The IM Session Ended")))
            }
        }
    }

    /// The fate of a stored message to a session peer, told to the XMPP sender as for a MESSAGE.
    private func settled(_ entry: PendingSessionMessage, by outcome: SIPDeliveryOutcome) {
        let aor = entry.request.uri.addressOfRecord.description.replacingOccurrences(of: "sip:", with: "")
        let authorized = entry.message.from.map { xmppWatchers[aor]?[$0.bare] == .active } ?? false
        switch outcome {
        case .accepted(let response, _):
            metrics.translated("xmpp-to-sip", kind: "session")
            if let receipt = toXMPP.receipt(for: entry.message, after: response).value { send(receipt.element()) }
        case .failed(let best):
            let response = best ?? SIPResponse(statusCode: 480, reasonPhrase: "Not Accepted")
            metrics.error("sip-\(response.statusCode)")
            bounce(entry.message, toXMPP.error(response, senderAuthorized: authorized).value)
        case .offline:
            metrics.error("sip-480")
            bounce(entry.message, toXMPP.error(SIPResponse(statusCode: 480, reasonPhrase: "User Offline"), senderAuthorized: authorized).value)
        }
        acknowledge(entry.id)
    }

    // MARK: Redelivery

    /// Messages a previous run left in the queue (accepted from their senders, fate unknown):
    /// they go out again. Only rows older than this process: newer ones are in flight here.
    func redeliverLeftovers() {
        let queue = self.queue
        let cutoff = startedAt
        storeQueue.async { [self] in
            let towardSIP: [QueuedMessage], towardXMPP: [QueuedMessage]
            do {
                towardSIP = try queue.due(direction: Self.towardSIP, limit: 100_000, now: cutoff)
                towardXMPP = try queue.due(direction: Self.towardXMPP, limit: 100_000, now: cutoff)
            } catch {
                metrics.error("store")
                logger.error("cannot read the queue left by the previous run: \(error)")
                return
            }
            loop.execute { [self] in
                if !(towardSIP.isEmpty && towardXMPP.isEmpty) {
                    logger.info("sending what the previous run left queued", metadata: [
                        "toward-sip": "\(towardSIP.count)", "toward-xmpp": "\(towardXMPP.count)",
                    ])
                }
                for row in towardXMPP {
                    guard let element = try? XMLDocumentParser.parse(row.payload) else {
                        acknowledge(row.id)
                        continue
                    }
                    sendTowardXMPP(id: row.id, element)
                }
                for row in towardSIP {
                    guard let element = try? XMLDocumentParser.parse(row.payload), let message = try? XMPPMessage(element: element),
                          let request = try? toSIP.message(message, session: peerUsesSessions(row.destination),
                                                           congestionControlled: reachedOverTCP(row.destination)).value else {
                        acknowledge(row.id)
                        continue
                    }
                    deliverToSIP(id: row.id, message: message, request: request, aor: row.destination)
                }
            }
        }
    }
}

extension JID {
    /// A syntactically valid address for error mapping when the real one is unknown.
    static let placeholder = try! JID(parsing: "unknown.invalid")
}
