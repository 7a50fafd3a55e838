import NIOCore
import SIPCore

/// UDP: one message per datagram (§18.3: Content-Length optional, the datagram bounds it).
final class SIPDatagramHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let core: SIPTransactionCore
    private let parser: SIPParser

    init(core: SIPTransactionCore, limits: SIPParser.Limits) {
        self.core = core
        self.parser = SIPParser(limits: limits)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let source = SIPSource(transport: .udp, address: envelope.remoteAddress, channel: context.channel)
        // RFC 5626 §4.4.1 / common practice: CRLF keepalives over UDP carry no message.
        if envelope.data.readableBytesView.allSatisfy({ $0 == 0x0D || $0 == 0x0A }) { return }
        do {
            core.received(try parser.parse(datagram: envelope.data), from: source)
        } catch {
            // §18.3: 400 if the essentials survived, else dropped (both reported).
            core.malformed(Array(envelope.data.readableBytesView), error: error, from: source)
        }
    }
}

/// TCP and TLS (behind NIOSSL's handler): Content-Length framing with RFC 5626 keepalives. A framing error loses the message
/// boundary, so the connection is closed (§18.3).
final class SIPStreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let core: SIPTransactionCore
    private let transport: SIPSource.Transport
    private var framer: SIPStreamFramer
    private let maxConnections: Int
    private var buffer: ByteBuffer?
    private var counted = false
    private var remoteAddress: SocketAddress?

    init(core: SIPTransactionCore, transport: SIPSource.Transport, limits: SIPParser.Limits, maxConnections: Int) {
        self.core = core
        self.transport = transport
        self.framer = SIPStreamFramer(limits: limits)
        self.maxConnections = maxConnections
    }

    func channelActive(context: ChannelHandlerContext) {
        guard core.connectionCount < maxConnections else {
            context.close(promise: nil)
            return
        }
        core.connectionCount += 1
        counted = true
        if let remote = context.remoteAddress {
            remoteAddress = remote
            core.connections[.init(address: remote, serverName: nil)] = context.channel
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted { core.connectionCount -= 1 }
        counted = false
        if let remoteAddress { core.connectionClosed(remoteAddress, channel: context.channel) }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil {
            buffer = incoming
        } else {
            buffer!.writeBuffer(&incoming)
        }
        guard let address = context.remoteAddress else { return }
        let source = SIPSource(transport: transport, address: address, channel: context.channel)
        while var pending = buffer {
            let frame: SIPStreamFramer.Frame?
            do {
                frame = try framer.next(from: &pending)
            } catch {
                guard let length = error.frameLength, let bytes = pending.readBytes(length: length) else {
                    // The boundary is lost (bad or missing Content-Length): close (§18.3).
                    core.event(.malformed(source.address, error.kind))
                    buffer = nil
                    context.close(promise: nil)
                    return
                }
                // A well-framed message that did not parse: 400 if possible, then the next one.
                core.malformed(bytes, error: error, from: source)
                buffer = pending.readableBytes > 0 ? pending : nil
                continue
            }
            buffer = pending.readableBytes > 0 ? pending : nil
            guard let frame else { break }
            switch frame {
            case .message(let message): core.received(message, from: source)
            case .keepAlivePing:
                // RFC 5626 §3.5.1: a double-CRLF ping is answered with a single CRLF pong.
                context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(staticString: "\r\n")), promise: nil)
            case .keepAlivePong: break
            }
        }
        // Reclaim the consumed prefix so a long-lived connection's buffer does not grow.
        buffer?.discardReadBytes()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
