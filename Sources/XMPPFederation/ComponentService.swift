import NIOCore
import NIOPosix
import StoxNIO
import XMLCore
import XMPPCore

/// The gateway as an XEP-0114 external component of a local XMPP server (Prosody, ejabberd):
/// the server does the federation; the gateway connects to it, authenticates with the shared
/// secret, and exchanges stanzas. It reconnects with backoff when the connection drops, and
/// queues stanzas meanwhile. Stanzas cross in `jabber:server` terms on both sides of this type.
public final class ComponentService: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var componentName: String
        public var secret: String
        public var host: String
        public var port: Int
        /// Stanzas kept while disconnected; beyond this, new ones bounce.
        public var queueLimit: Int

        public init(componentName: String, secret: String, host: String = "127.0.0.1", port: Int = 5347, queueLimit: Int = 10_000) {
            self.componentName = componentName
            self.secret = secret
            self.host = host
            self.port = port
            self.queueLimit = queueLimit
        }
    }

    public enum Event: Hashable, Sendable {
        case connected
        case disconnected(reason: String)
    }

    public let configuration: Configuration
    public let eventLoop: any EventLoop
    private let onStanza: @Sendable (XMLElement) -> Void
    private let onEvent: @Sendable (Event) -> Void
    private var channel: (any Channel)?
    private var established = false
    private var pending: [XMLElement] = []
    private var backoff = Backoff()
    private var stopped = false

    public init(
        configuration: Configuration, eventLoop: any EventLoop, onStanza: @escaping @Sendable (XMLElement) -> Void,
        onEvent: @escaping @Sendable (Event) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.onStanza = onStanza
        self.onEvent = onEvent
    }

    public func start() {
        eventLoop.execute { self.connect() }
    }

    public func shutdown() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            self.stopped = true
            return self.channel?.close() ?? self.eventLoop.makeSucceededVoidFuture()
        }
    }

    /// The same as `send(_:)`; `acknowledged` runs once the stanza is written or queued (the
    /// component protocol has no acknowledgements).
    public func send(_ element: XMLElement, acknowledged: @escaping @Sendable () -> Void) {
        send(element)
        acknowledged()
    }

    /// Sends a stanza (in `jabber:server`) through the server, queueing while disconnected.
    public func send(_ element: XMLElement) {
        eventLoop.execute {
            let stanza = element.movingNamespace(from: XMPPNamespace.server, to: XMPPNamespace.componentAccept)
            if self.established, let channel = self.channel {
                Self.write(stanza, on: channel)
            } else if self.pending.count < self.configuration.queueLimit {
                self.pending.append(stanza)
            } else {
                self.onStanza(Self.bounce(element))
            }
        }
    }

    private func connect() {
        guard !stopped else { return }
        ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
                    try channel.pipeline.syncOperations.addHandler(ComponentLinkHandler(service: self))
                }
            }
            .connect(host: configuration.host, port: configuration.port)
            .whenComplete { result in
                switch result {
                case .success(let channel): self.channel = channel
                case .failure(let error): self.retry("cannot connect: \(error)")
                }
            }
    }

    // MARK: called by the handler, on the loop

    func linkEstablished() {
        established = true
        backoff.reset()
        onEvent(.connected)
        guard let channel else { return }
        let queued = pending
        pending = []
        for stanza in queued { Self.write(stanza, on: channel) }
    }

    func received(_ element: XMLElement) {
        onStanza(element.movingNamespace(from: XMPPNamespace.componentAccept, to: XMPPNamespace.server))
    }

    func linkClosed(_ reason: String) {
        channel = nil
        established = false
        retry(reason)
    }

    private func retry(_ reason: String) {
        onEvent(.disconnected(reason: reason))
        guard !stopped else { return }
        let delay = backoff.next(random: Double.random(in: 0..<1))
        eventLoop.scheduleTask(in: .milliseconds(Int64(delay * 1000))) { self.connect() }
    }

    private static func write(_ stanza: XMLElement, on channel: any Channel) {
        let bytes = XMLSerializer.bytes(stanza, in: XMPPStreamHeader.context(XMPPNamespace.componentAccept))
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        channel.writeAndFlush(buffer, promise: nil)
    }

    private static func bounce(_ element: XMLElement) -> XMLElement {
        var error = element
        error.setAttribute("from", to: element.attribute("to"))
        error.setAttribute("to", to: element.attribute("from"))
        error.setAttribute("type", to: "error")
        error.append(StanzaError(.resourceConstraint, text: "the component queue is full").element(namespace: element.namespace))
        return error
    }
}

/// Drives a `ComponentNegotiation` on the connection to the server.
final class ComponentLinkHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private var negotiation: ComponentNegotiation
    private let input = StreamInput()
    private let service: ComponentService
    private var closeReason = "the connection closed"

    init(service: ComponentService) {
        self.service = service
        self.negotiation = ComponentNegotiation(componentName: service.configuration.componentName, secret: service.configuration.secret)
    }

    func channelActive(context: ChannelHandlerContext) {
        perform(negotiation.connected(), context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let events: [XMPPStreamEvent]
        do {
            events = try input.read(unwrapInboundIn(data))
        } catch {
            closeReason = "bad XML from the server: \(error)"
            StreamWrite.close(error, context)
            return
        }
        for event in events {
            if negotiation.isEstablished, case .element(let element) = event, element.namespace == XMPPNamespace.componentAccept {
                service.received(element)
                continue
            }
            perform(negotiation.received(event), context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        service.linkClosed(closeReason)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closeReason = "\(error)"
        context.close(promise: nil)
    }

    private func perform(_ actions: [ComponentNegotiation.Action], _ context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case .sendHeader(let header): StreamWrite.header(header, context)
            case .send(let element):
                let bytes = XMLSerializer.bytes(element, in: XMPPStreamHeader.context(XMPPNamespace.componentAccept))
                var buffer = context.channel.allocator.buffer(capacity: bytes.count)
                buffer.writeBytes(bytes)
                context.writeAndFlush(NIOAny(buffer), promise: nil)
            case .established: service.linkEstablished()
            case .close(let error, let reason):
                closeReason = reason
                StreamWrite.close(error, context)
            }
        }
    }
}
