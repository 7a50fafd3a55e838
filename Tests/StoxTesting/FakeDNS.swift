import NIOCore
import NIOPosix
import StoxDNS

/// A DNS server on loopback that answers SRV queries from a table, writing the answer bytes by
/// hand (with a compression pointer), independently of the code under test.
public final class FakeDNS: ChannelInboundHandler, @unchecked Sendable {
    public typealias InboundIn = AddressedEnvelope<ByteBuffer>
    public typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    /// name (with trailing dot) → records; absent names are NXDOMAIN.
    public let table: [String: [SRVRecord]]
    public private(set) var channel: (any Channel)?

    public init(_ table: [String: [SRVRecord]]) { self.table = table }

    public func start(on group: any EventLoopGroup) async throws -> Int {
        let channel = try await DatagramBootstrap(group: group)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(self) } }
            .bind(host: "127.0.0.1", port: 0).get()
        self.channel = channel
        return channel.localAddress!.port!
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let query = Array(envelope.data.readableBytesView)
        // The question's name, read label by label.
        var labels: [String] = []
        var offset = 12
        while offset < query.count, query[offset] != 0 {
            let length = Int(query[offset])
            labels.append(String(decoding: query[(offset + 1)..<(offset + 1 + length)], as: UTF8.self))
            offset += 1 + length
        }
        let name = labels.joined(separator: ".") + "."
        let question = Array(query[12..<(offset + 5)])
        var answer: [UInt8] = [query[0], query[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]
        guard let records = table[name] else {
            answer[3] = 0x83  // NXDOMAIN
            answer.append(contentsOf: question)
            send(answer, to: envelope.remoteAddress, context)
            return
        }
        answer[7] = UInt8(records.count)
        answer.append(contentsOf: question)
        for record in records {
            answer += [0xC0, 12]  // the owner name: a pointer to the question
            answer += [0, 33, 0, 1, 0, 0, 0, 60]
            var target: [UInt8] = []
            for label in record.target.split(separator: ".") { target.append(UInt8(label.utf8.count)); target += Array(label.utf8) }
            target.append(0)
            let rdata: [UInt8] = [UInt8(record.priority >> 8), UInt8(record.priority & 0xFF), UInt8(record.weight >> 8), UInt8(record.weight & 0xFF),
                                  UInt8(record.port >> 8), UInt8(record.port & 0xFF)] + target
            answer += [UInt8(rdata.count >> 8), UInt8(rdata.count & 0xFF)] + rdata
        }
        send(answer, to: envelope.remoteAddress, context)
    }

    private func send(_ bytes: [UInt8], to address: SocketAddress, _ context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: address, data: buffer)), promise: nil)
    }
}
