import NIOCore
import NIOSSL
import NIOTLS
import XMLCore
import XMPPCore

/// Drives an `InboundNegotiation` on an accepted connection and hands authenticated stanzas to
/// the service.
final class InboundLinkHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private var negotiation: InboundNegotiation
    private let input = StreamInput()
    private let service: S2SService
    private let configuration: S2SConfiguration

    init(service: S2SService, configuration: S2SConfiguration, directTLS: Bool = false) {
        self.service = service
        self.configuration = configuration
        self.negotiation = InboundNegotiation(
            configuration.inboundConfiguration, streamIDs: (0..<4).map { _ in Self.streamID() }, directTLS: directTLS)
    }

    /// Unpredictable stream ids: the dialback key depends on them (XEP-0185 §3).
    static func streamID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(generator.next() as UInt32, radix: 36) }.joined()
    }

    /// Set once the stream is being closed: whatever the peer still sends is discarded, so a
    /// refusal is one header, one error and one closing tag however many reads follow
    /// (RFC 6120 §4.9.1.3: nothing after the error).
    private var closing = false
    /// Whether our stream header has gone out for the current stream.
    private var headerSent = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let events: [XMPPStreamEvent]
        do {
            events = try input.read(unwrapInboundIn(data))
        } catch {
            // The peer's XML is refused with the matching stream error (RFC 6120 §4.9.3).
            refused(.hostileXML, "\(error)", context)
            if !headerSent { StreamWrite.header(XMPPStreamHeader(id: Self.streamID()), context) }
            close(error, context)
            return
        }
        if paused {
            backlog.append(contentsOf: events)
            return
        }
        process(events[...], context)
    }

    /// Events read while the peer was over its rate wait here, in order (at most about one
    /// read's worth, since reading stops meanwhile).
    private var backlog: [XMPPStreamEvent] = []
    private var paused = false

    private func process(_ events: ArraySlice<XMPPStreamEvent>, _ context: ChannelHandlerContext) {
        var index = events.startIndex
        while index < events.endIndex {
            let pause = perform(negotiation.received(events[index]), context)
            index += 1
            if let pause {
                // Over the per-peer rate: hold the rest, stop reading, resume after the pause.
                paused = true
                backlog = Array(events[index...]) + backlog
                let channel = context.channel
                try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: pause) {
                    let (handler, context) = bound.value
                    handler.paused = false
                    let pending = handler.backlog
                    handler.backlog = []
                    try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
                    channel.read()
                    handler.process(pending[...], context)
                }
                return
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
            let verifying = configuration.policy(for: negotiation.peerDomain ?? "").requireValidCertificate
            // With verification on, a presented certificate reached here only if its chain validated.
            perform(negotiation.tlsEstablished(peerCertificate: certificate?.peerCertificate(chainValid: verifying)), context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let reason = TLSFailure.describe(error) { refused(.certificate, reason, context) }
        closing = true
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The inbound gauge must go down with the stream, or /health counts a dead link.
        for domain in negotiation.authenticatedDomains { service.event(.inboundClosed(remote: domain)) }
        context.fireChannelInactive()
    }

    /// Who the peer is, for the log: its domain when it said one, and its address.
    private func peer(_ context: ChannelHandlerContext) -> String {
        let address = context.channel.remoteAddress.map { address in
            address.ipAddress.map { ($0.contains(":") ? "[\($0)]" : $0) + ":\(address.port ?? 0)" } ?? "\(address)"
        } ?? "unknown address"
        return negotiation.peerDomain.map { "\($0) (\(address))" } ?? address
    }

    private func refused(_ kind: Refusal, _ reason: String, _ context: ChannelHandlerContext) {
        service.event(.refused(peer: peer(context), kind, reason: reason))
    }

    private func close(_ error: StreamError?, _ context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        StreamWrite.close(error, context)
    }

    /// Carries out the actions; returns how long to pause when a delivered stanza put its peer
    /// over the rate.
    @discardableResult
    private func perform(_ actions: [InboundNegotiation.Action], _ context: ChannelHandlerContext) -> TimeAmount? {
        var pause: TimeAmount? = nil
        for action in actions {
            switch action {
            case .sendHeader(let header):
                headerSent = true
                StreamWrite.header(header, context)
            case .send(let element): StreamWrite.element(element, context)
            case .resetReader:
                headerSent = false
                input.reset()
            case .startTLS:
                do {
                    guard let tls = try configuration.serverContext(for: negotiation.peerDomain, localDomain: negotiation.localDomain) else {
                        throw S2SError.noCertificate
                    }
                    // Above the flush coalescer, not at the head: the `<proceed/>` written just
                    // now waits below for the tick's flush, which must reach the socket in the
                    // clear (NIOSSL holds flushes back until its handshake is done).
                    try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .before(self))
                } catch {
                    context.close(promise: nil)
                }
            case .authenticated(let domain, let method):
                service.event(.inboundAuthenticated(remote: domain, method))
            case .verifyDialback(let sender, let target, let key, let streamID):
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                service.verify(sender: sender, target: target, key: key, streamID: streamID).whenComplete { result in
                    let (handler, context) = loopBound.value
                    let verdict = (try? result.get()) ?? DialbackVerdict(outcome: .error, reason: "verification failed")
                    let outcome = verdict.outcome
                    if outcome != .valid {
                        handler.refused(.dialback, "\(sender)'s dialback claim for \(target) was not confirmed: \(verdict.reason)", context)
                    }
                    handler.perform(handler.negotiation.dialbackVerified(sender: sender, target: target, outcome: outcome), context)
                }
            case .deliver(let element):
                if streamManagement {
                    received &+= 1
                    let sequence = received
                    let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                    let loop = context.eventLoop
                    service.deliver(element) {
                        loop.execute {
                            let (handler, context) = bound.value
                            handler.handled(sequence, context)
                        }
                    }
                } else {
                    service.deliver(element, handled: nil)
                }
                // Per-peer rate limit: pause this stream instead of dropping anything.
                if let domain = element.attribute("from").flatMap({ try? JID(parsing: $0) })?.domainpart {
                    pause = service.admit(from: domain)
                }
            case .enableStreamManagement:
                streamManagement = true
            case .acknowledge:
                acknowledge(context)
            case .close(let error, let reason):
                if let kind = Self.refusal(error, reason: reason) { refused(kind, reason, context) }
                close(error, context)
            }
        }
        return pause
    }

    // MARK: XEP-0198 (receiving side)

    private var streamManagement = false
    /// Stanzas delivered since `<enable/>` (the sequence number of the last one).
    private var received: UInt32 = 0
    /// Every stanza up to this one has been handled: the `h` we may claim.
    private var handledThrough: UInt32 = 0
    /// Handled out of order, waiting for the ones before them.
    private var handledAhead: Set<UInt32> = []
    private var lastAcknowledged: UInt32 = 0

    private func handled(_ sequence: UInt32, _ context: ChannelHandlerContext) {
        handledAhead.insert(sequence)
        while handledAhead.remove(handledThrough &+ 1) != nil { handledThrough &+= 1 }
        // Say what is stored without being asked (XEP-0198 §4 allows an unrequested <a/>), once
        // per loop tick: the stanzas of one group commit are handled in consecutive tasks, so
        // this acknowledges each commit as it completes. Waiting for the peer's <r/>, or for the
        // end of a burst, let the peer's count trail the store by hundreds of stanzas, which it
        // bounced on a crash although they were delivered after the restart, and which could
        // exceed its resend queue (500 in Prosody).
        guard handledThrough != lastAcknowledged, !acknowledgementScheduled else { return }
        acknowledgementScheduled = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = bound.value
            handler.acknowledgementScheduled = false
            if handler.handledThrough != handler.lastAcknowledged, context.channel.isActive { handler.acknowledge(context) }
        }
    }

    private var acknowledgementScheduled = false

    private func acknowledge(_ context: ChannelHandlerContext) {
        lastAcknowledged = handledThrough
        StreamWrite.element(XMLElement("a", namespace: XMPPNamespace.streamManagement, attributes: ["h": String(handledThrough)]), context)
    }
}

extension InboundLinkHandler {
    /// Which closes are refusals (a peer's own close or stream error is not).
    static func refusal(_ error: StreamError?, reason: String) -> Refusal? {
        switch error?.condition {
        case .invalidFrom?: return .invalidFrom
        case .some: return .stream
        // A certificate that does not validate closes without a stream error. A dialback key
        // refused was already reported when its verification came back.
        case nil: return reason.contains("certificate") ? .certificate : nil
        }
    }
}

enum S2SError: Error {
    case noCertificate
    case noRoute(String)
    case timeout
}
