import NIOCore
import NIOSSL
import NIOTLS
import XMLCore
import XMPPCore

/// What a dialback verification found, with the reason in words for the log.
struct DialbackVerdict: Sendable {
    var outcome: DialbackElement.Outcome
    var reason: String
}

/// The receiving server's callback to an authoritative server (XEP-0220 §2.1.2 step 2): drives
/// a `DialbackVerifierNegotiation` on a connection (STARTTLS when the peer offers it), reports
/// the answer, closes.
final class DialbackVerifierHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private var negotiation: DialbackVerifierNegotiation
    private let tlsContext: () throws -> NIOSSLContext
    private let promise: EventLoopPromise<DialbackVerdict>
    private let input = StreamInput()
    private var done = false

    init(_ negotiation: DialbackVerifierNegotiation, tlsContext: @escaping () throws -> NIOSSLContext,
         promise: EventLoopPromise<DialbackVerdict>) {
        self.negotiation = negotiation
        self.tlsContext = tlsContext
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        perform(negotiation.connected(), context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        let events: [XMPPStreamEvent]
        do {
            events = try input.read(unwrapInboundIn(data))
        } catch {
            finish(DialbackVerdict(outcome: .error, reason: "bad XML from \(negotiation.sender)'s authoritative server: \(error)"), context)
            return
        }
        for event in events where !done { perform(negotiation.received(event), context) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { perform(negotiation.tlsEstablished(), context) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            promise.succeed(DialbackVerdict(outcome: .error, reason: "\(negotiation.sender)'s authoritative server closed the connection"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        perform(negotiation.tlsFailed(TLSFailure.describeAny(error)), context)
        if !done { finish(DialbackVerdict(outcome: .error, reason: TLSFailure.describeAny(error)), context) }
    }

    private func perform(_ actions: [DialbackVerifierNegotiation.Action], _ context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case .sendHeader(let header): StreamWrite.header(header, context)
            case .send(let element): StreamWrite.element(element, context)
            case .resetReader: input.reset()
            case .startTLS:
                do {
                    try context.pipeline.syncOperations.addHandler(
                        NIOSSLClientHandler(context: tlsContext(), serverHostname: negotiation.sender), position: .before(self))
                } catch {
                    perform(negotiation.tlsFailed("\(error)"), context)
                }
            case .finished(let outcome, let reason):
                finish(DialbackVerdict(outcome: outcome, reason: reason), context)
            }
        }
    }

    private func finish(_ verdict: DialbackVerdict, _ context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        promise.succeed(verdict)
        StreamWrite.close(nil, context)
    }
}
