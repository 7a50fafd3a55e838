import NIOCore

/// Turns the flushes of one event-loop tick into one. The protocol layers answer each request
/// or stanza with `writeAndFlush`, which is simple and right for a single message, but under
/// load a read of 50 requests then costs 50 `write` syscalls: on this VM each one costs about
/// as much as parsing the request. Here the first flush of a tick schedules a real flush as a
/// task, which NIO runs after the tick's I/O, and later flushes in the same tick ride on it. A
/// lone message waits for nothing but the end of the current tick.
///
/// Put it between the socket (or TLS) and the protocol handler. A TLS handler added later, for
/// STARTTLS, goes above it (`.before(protocolHandler)`), never at `.first`: the plaintext
/// `<proceed/>` is still waiting for this tick's flush, and a TLS handler beneath would hold that
/// flush back until its handshake, which the peer starts only after reading `<proceed/>`.
public final class FlushCoalescingHandler: ChannelOutboundHandler, RemovableChannelHandler {
    public typealias OutboundIn = NIOAny
    public typealias OutboundOut = NIOAny

    private var scheduled = false
    private var removed = false

    public init() {}

    public func flush(context: ChannelHandlerContext) {
        guard !scheduled else { return }
        scheduled = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = bound.value
            handler.scheduled = false
            guard !handler.removed else { return }
            context.flush()
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        // Whatever was written before removal still goes out.
        if scheduled { context.flush() }
        removed = true
    }
}
