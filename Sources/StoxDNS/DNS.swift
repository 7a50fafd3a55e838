import Foundation
import NIOCore
import NIOPosix

/// An SRV record (RFC 2782).
public struct SRVRecord: Hashable, Sendable {
    public var priority: UInt16
    public var weight: UInt16
    public var port: UInt16
    /// Without the trailing dot; "." (service decidedly not available) becomes "".
    public var target: String

    public init(priority: UInt16, weight: UInt16, port: UInt16, target: String) {
        self.priority = priority
        self.weight = weight
        self.port = port
        self.target = target
    }

    /// RFC 2782 order: ascending priority; within a priority, a weighted random order, where
    /// `random(total)` picks a number in 0...total.
    public static func ordered(_ records: [SRVRecord], random: (Int) -> Int) -> [SRVRecord] {
        var result: [SRVRecord] = []
        for priority in Set(records.map(\.priority)).sorted() {
            // Zero weights first, as RFC 2782 asks, so they get a small chance.
            var group = records.filter { $0.priority == priority }.sorted { $0.weight < $1.weight }
            while !group.isEmpty {
                let total = group.reduce(0) { $0 + Int($1.weight) }
                let pick = random(total)
                var running = 0
                var index = group.count - 1
                for (i, record) in group.enumerated() {
                    running += Int(record.weight)
                    if running >= pick {
                        index = i
                        break
                    }
                }
                result.append(group.remove(at: index))
            }
        }
        return result
    }
}

/// DNS messages (RFC 1035 §4) for SRV queries: the query, and the answers of a response.
public enum DNSMessage {
    public static let typeSRV: UInt16 = 33

    public enum ParseError: Error, Hashable, Sendable {
        case truncated
        case badName
        case notAnAnswer
        /// RCODE other than 0; 3 is NXDOMAIN.
        case responseCode(UInt8)
    }

    public static func query(id: UInt16, name: String, type: UInt16) -> [UInt8] {
        var bytes: [UInt8] = []
        func u16(_ value: UInt16) { bytes.append(UInt8(value >> 8)); bytes.append(UInt8(value & 0xFF)) }
        u16(id)
        u16(0x0100)  // standard query, recursion desired
        u16(1); u16(0); u16(0); u16(0)
        for label in name.split(separator: ".") where !label.isEmpty {
            let utf8 = Array(label.utf8.prefix(63))
            bytes.append(UInt8(utf8.count))
            bytes.append(contentsOf: utf8)
        }
        bytes.append(0)
        u16(type)
        u16(1)  // IN
        return bytes
    }

    /// The SRV answers of a response to query `id`. NXDOMAIN and NOERROR-without-answers give `[]`.
    public static func srvAnswers(_ bytes: [UInt8], id: UInt16) throws(ParseError) -> [SRVRecord] {
        guard bytes.count >= 12 else { throw .truncated }
        guard UInt16(bytes[0]) << 8 | UInt16(bytes[1]) == id, bytes[2] & 0x80 != 0 else { throw .notAnAnswer }
        let code = bytes[3] & 0x0F
        if code == 3 { return [] }
        guard code == 0 else { throw .responseCode(code) }
        let questions = Int(UInt16(bytes[4]) << 8 | UInt16(bytes[5]))
        let answers = Int(UInt16(bytes[6]) << 8 | UInt16(bytes[7]))
        var offset = 12
        for _ in 0..<questions {
            _ = try name(bytes, &offset)
            offset += 4
        }
        var records: [SRVRecord] = []
        for _ in 0..<answers {
            _ = try name(bytes, &offset)
            guard offset + 10 <= bytes.count else { throw .truncated }
            let type = UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
            let length = Int(UInt16(bytes[offset + 8]) << 8 | UInt16(bytes[offset + 9]))
            offset += 10
            guard offset + length <= bytes.count else { throw .truncated }
            if type == typeSRV, length >= 7 {
                func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]) }
                var targetOffset = offset + 6
                let target = try name(bytes, &targetOffset)
                records.append(SRVRecord(priority: u16(offset), weight: u16(offset + 2), port: u16(offset + 4), target: target))
            }
            offset += length
        }
        return records
    }

    /// A domain name at `offset`, following compression pointers (with a bound against loops).
    static func name(_ bytes: [UInt8], _ offset: inout Int) throws(ParseError) -> String {
        var labels: [String] = []
        var position = offset
        var jumped = false
        var hops = 0
        while true {
            guard position < bytes.count else { throw .truncated }
            let length = Int(bytes[position])
            if length == 0 {
                if !jumped { offset = position + 1 }
                break
            }
            if length & 0xC0 == 0xC0 {
                guard position + 1 < bytes.count else { throw .truncated }
                hops += 1
                guard hops < 32 else { throw .badName }
                if !jumped { offset = position + 2 }
                jumped = true
                position = (length & 0x3F) << 8 | Int(bytes[position + 1])
                continue
            }
            guard length <= 63, position + 1 + length <= bytes.count else { throw .badName }
            labels.append(String(decoding: bytes[(position + 1)..<(position + 1 + length)], as: UTF8.self))
            position += 1 + length
        }
        return labels.joined(separator: ".")
    }
}

/// Asks one DNS server over UDP, with a timeout and retries.
public final class SRVResolver: Sendable {
    public let server: SocketAddress
    public let eventLoop: any EventLoop

    public init(server: SocketAddress, eventLoop: any EventLoop) {
        self.server = server
        self.eventLoop = eventLoop
    }

    /// The first `nameserver` of /etc/resolv.conf, or nil.
    public static func systemServer() -> SocketAddress? {
        guard let text = try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("nameserver") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if parts.count >= 2, let address = try? SocketAddress(ipAddress: String(parts[1]), port: 53) { return address }
        }
        return nil
    }

    /// The SRV records for `name` (a fully qualified name, with the final dot); none when the
    /// name has none or the server does not answer.
    public func srv(_ name: String, attempts: Int = 2) -> EventLoopFuture<[SRVRecord]> {
        let id = UInt16.random(in: 0...UInt16.max)
        let promise = eventLoop.makePromise(of: [SRVRecord].self)
        let query = DNSMessage.query(id: id, name: name, type: DNSMessage.typeSRV)
        DatagramBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DNSAnswerHandler(id: id, promise: promise))
                }
            }
            .bind(host: server.protocol == .inet6 ? "::" : "0.0.0.0", port: 0)
            .whenComplete { result in
                guard case .success(let channel) = result else {
                    promise.succeed([])
                    return
                }
                let buffer = channel.allocator.buffer(bytes: query)
                for attempt in 0..<attempts {
                    channel.eventLoop.scheduleTask(in: .seconds(Int64(attempt) * 2)) {
                        channel.writeAndFlush(AddressedEnvelope(remoteAddress: self.server, data: buffer), promise: nil)
                    }
                }
                channel.eventLoop.scheduleTask(in: .seconds(Int64(attempts) * 2 + 1)) { promise.succeed([]) }
                promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
            }
        return promise.futureResult
    }
}

final class DNSAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let id: UInt16
    private let promise: EventLoopPromise<[SRVRecord]>

    init(id: UInt16, promise: EventLoopPromise<[SRVRecord]>) {
        self.id = id
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let bytes = Array(envelope.data.readableBytesView)
        // Answers with another id are ignored (spoofing or a late answer to an earlier query).
        if let records = try? DNSMessage.srvAnswers(bytes, id: id) { promise.succeed(records) }
    }
}
