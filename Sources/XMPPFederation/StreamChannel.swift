import NIOCore
import XMLCore
import XMPPCore

/// Writing XMPP stream text on a channel.
enum StreamWrite {
    static func header(_ header: XMPPStreamHeader, _ context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 256)
        buffer.writeString(header.openingTag)
        context.writeAndFlush(NIOAny(buffer), promise: nil)
    }

    static func element(_ element: XMLElement, _ context: ChannelHandlerContext) {
        let bytes = XMLSerializer.bytes(element, in: XMPPStreamHeader.context(XMPPNamespace.server))
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.writeAndFlush(NIOAny(buffer), promise: nil)
    }

    /// Sends the stream error, if any, and the closing tag, then closes (RFC 6120 §4.4, §4.9.1).
    static func close(_ error: StreamError?, _ context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 256)
        if let error {
            buffer.writeBytes(XMLSerializer.bytes(error.element, in: XMPPStreamHeader.context(XMPPNamespace.server)))
        }
        buffer.writeString(XMPPStreamHeader.closingTag)
        let channel = context.channel
        context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in
            // Half-close first: closing a socket with unread input sends a reset, and the peer's
            // kernel may then throw away the error before the peer reads it. Whatever the peer
            // still sends is read and discarded until it closes too, or for two seconds.
            channel.close(mode: .output).whenComplete { result in
                guard case .success = result else { return channel.close(promise: nil) }
                channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
            }
        }
    }
}

/// A stream reader with a reusable event buffer: what each handler's channelRead needs.
final class StreamInput {
    let reader = XMPPStreamReader()
    private var events: [XMPPStreamEvent] = []

    /// The events in `buffer`, or the stream error to close with.
    func read(_ buffer: ByteBuffer) throws(StreamError) -> [XMPPStreamEvent] {
        events.removeAll(keepingCapacity: true)
        try reader.feed(buffer, into: &events)
        return events
    }

    func reset() { reader.reset() }
}

extension XMPPStreamReader {
    /// Feeds a NIO buffer.
    func feed(_ buffer: ByteBuffer, into events: inout [XMPPStreamEvent]) throws(StreamError) {
        let result: Result<Void, StreamError> = buffer.withUnsafeReadableBytes { raw in
            Result { () throws(StreamError) in try self.feed(raw, into: &events) }
        }
        try result.get()
    }
}
