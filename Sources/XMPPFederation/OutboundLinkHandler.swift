import NIOCore
import NIOSSL
import NIOTLS
import XMLCore
import XMPPCore

/// Drives an `OutboundNegotiation` on a channel, then carries the link's stanzas.
final class OutboundLinkHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private var negotiation: OutboundNegotiation
    private let input = StreamInput()
    private let link: OutboundLink
    private let configuration: S2SConfiguration
    private let directTLS: Bool

    init(link: OutboundLink, configuration: S2SConfiguration, directTLS: Bool = false) {
        self.link = link
        self.configuration = configuration
        self.directTLS = directTLS
        self.negotiation = OutboundNegotiation(.init(
            localDomain: link.localDomain, remoteDomain: link.remoteDomain, policy: configuration.policy(for: link.remoteDomain),
            hasCertificate: configuration.hasCertificate(for: link.localDomain), dialbackSecret: configuration.dialbackSecret))
    }

    func channelActive(context: ChannelHandlerContext) {
        perform(negotiation.connected(directTLS: directTLS), context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let events: [XMPPStreamEvent]
        do {
            events = try input.read(unwrapInboundIn(data))
        } catch {
            link.failed(NegotiationFailure(.remoteServerNotFound, "bad XML from \(link.remoteDomain): \(error)"))
            StreamWrite.close(error, context)
            return
        }
        for event in events {
            // XEP-0198 answers on an established link belong to the link, not the negotiation.
            if negotiation.isEstablished, case .element(let element) = event, element.namespace == XMPPNamespace.streamManagement {
                link.streamManagement(element)
                continue
            }
            perform(negotiation.received(event), context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate
            let valid = configuration.policy(for: link.remoteDomain).requireValidCertificate
            perform(negotiation.tlsEstablished(peerCertificate: certificate?.peerCertificate(chainValid: valid)), context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        link.failed(NegotiationFailure(.remoteServerNotFound, "\(link.remoteDomain): \(TLSFailure.describeAny(error))"))
        if let reason = TLSFailure.describe(error) {
            link.report(.refused(peer: "\(link.remoteDomain) (\(context.channel.remoteAddress.map { "\($0)" } ?? "unknown address"))", .certificate, reason: reason))
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        link.closed()
        context.fireChannelInactive()
    }

    private func perform(_ actions: [OutboundNegotiation.Action], _ context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case .sendHeader(let header): StreamWrite.header(header, context)
            case .send(let element): StreamWrite.element(element, context)
            case .resetReader: input.reset()
            case .startTLS:
                do {
                    let tls = try NIOSSLClientHandler(
                        context: configuration.clientContext(for: link.remoteDomain, from: link.localDomain, directTLS: directTLS), serverHostname: link.remoteDomain)
                    // Above the flush coalescer, like the inbound side (InboundLinkHandler).
                    try context.pipeline.syncOperations.addHandler(tls, position: .before(self))
                } catch {
                    perform(negotiation.tlsFailed("\(error)"), context)
                }
            case .established(let method):
                link.established(context.channel, method: method,
                                 streamManagement: configuration.streamManagement && negotiation.peerOffersStreamManagement)
            case .close(let error, let failure):
                link.failed(failure)
                StreamWrite.close(error, context)
            case .verifyAnswer:
                // Verification is asked over dedicated connections (DialbackVerifier).
                break
            }
        }
    }
}
