import NIOCore

/// Cuts SIP messages out of a stream transport (TCP, TLS) using Content-Length (RFC 3261
/// §18.3), and recognises RFC 5626 §3.5.1 keepalives between messages. It bounds how much a peer
/// can make it buffer: a header section over `limits.maxHeaderBytes` or a Content-Length over
/// `limits.maxBodyBytes` is an error, after which the connection should be closed.
public struct SIPStreamFramer: Sendable {
    public enum Frame: Hashable, Sendable {
        case message(SIPMessage)
        /// A double-CRLF "ping"; the answer is a single CRLF "pong".
        case keepAlivePing
        /// A single CRLF "pong" received in answer to our ping.
        case keepAlivePong
    }

    public let parser: SIPParser
    /// Set by the owner after sending a ping. A lone CRLF is then read as the pong at once;
    /// otherwise the framer waits for a possible second CRLF, since a ping split across reads
    /// must not be mistaken for two pongs.
    public var awaitingPong = false

    public init(limits: SIPParser.Limits = .default) {
        self.parser = SIPParser(limits: limits)
    }

    /// Reads the next frame from `buffer`, consuming its bytes; `nil` when more bytes are needed.
    public mutating func next(from buffer: inout ByteBuffer) throws(SIPParseError) -> Frame? {
        let outcome: Result<(Frame, Int)?, SIPParseError> = buffer.withUnsafeReadableBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            return Result { () throws(SIPParseError) in try frame(bytes) }
        }
        guard let (frame, consumed) = try outcome.get() else { return nil }
        buffer.moveReaderIndex(forwardBy: consumed)
        if frame == .keepAlivePong { awaitingPong = false }
        return frame
    }

    private func frame(_ bytes: UnsafeBufferPointer<UInt8>) throws(SIPParseError) -> (Frame, Int)? {
        guard !bytes.isEmpty else { return nil }
        if bytes[0] == 0x0D || bytes[0] == 0x0A {
            // RFC 5626 §3.5.1: CRLFCRLF is a ping, CRLF a pong.
            if bytes.count >= 4, bytes[0] == 0x0D, bytes[1] == 0x0A, bytes[2] == 0x0D, bytes[3] == 0x0A {
                return (.keepAlivePing, 4)
            }
            let pong = bytes.count >= 2 && bytes[0] == 0x0D && bytes[1] == 0x0A
            if pong, awaitingPong || (bytes.count > 2 && bytes[2] != 0x0D) { return (.keepAlivePong, 2) }
            // A prefix of CRLFCRLF: wait for the rest. Any other stray line ending is skipped.
            let prefix: [UInt8] = [0x0D, 0x0A, 0x0D]
            if bytes.count < 4, bytes.elementsEqual(prefix.prefix(bytes.count)) { return nil }
            return (.keepAlivePong, bytes[0] == 0x0D && bytes.count > 1 && bytes[1] == 0x0A ? 2 : 1)
        }
        // Find the blank line that ends the headers.
        guard let headerEnd = Self.headerEnd(bytes, limit: parser.limits.maxHeaderBytes) else {
            if bytes.count > parser.limits.maxHeaderBytes {
                throw SIPParseError(.messageTooLarge, at: 0, "no end of headers within \(parser.limits.maxHeaderBytes) bytes")
            }
            return nil
        }
        let length = try Self.contentLength(UnsafeBufferPointer(rebasing: bytes[..<headerEnd]))
        guard let length else {
            throw SIPParseError(.missingRequiredHeader, header: "Content-Length", at: headerEnd, "required on streams (§18.3)")
        }
        guard length <= parser.limits.maxBodyBytes else {
            throw SIPParseError(.messageTooLarge, header: "Content-Length", at: 0, "body over \(parser.limits.maxBodyBytes) bytes")
        }
        let total = headerEnd + length
        guard bytes.count >= total else { return nil }
        do {
            let message = try parser.parse(streamMessage: UnsafeBufferPointer(rebasing: bytes[..<total]))
            return (.message(message), total)
        } catch {
            var error = error
            error.frameLength = total
            throw error
        }
    }

    /// The offset just past CRLFCRLF (or LFLF), searching at most `limit` bytes.
    private static func headerEnd(_ bytes: UnsafeBufferPointer<UInt8>, limit: Int) -> Int? {
        let end = min(bytes.count, limit + 4)
        var index = 0
        while index < end {
            if bytes[index] == 0x0A {
                if index + 1 < bytes.count, bytes[index + 1] == 0x0A { return index + 2 }
                if index + 2 < bytes.count, bytes[index + 1] == 0x0D, bytes[index + 2] == 0x0A { return index + 3 }
            }
            index += 1
        }
        return nil
    }

    /// Finds Content-Length (or `l`) in a header section without parsing the rest.
    private static func contentLength(_ bytes: UnsafeBufferPointer<UInt8>) throws(SIPParseError) -> Int? {
        var index = 0
        var found: Int? = nil
        while index < bytes.count {
            let line = SIPParser.lineEnd(bytes, from: index)
            let content = UnsafeBufferPointer(rebasing: bytes[index..<line.contentEnd])
            if let colon = content.firstIndex(of: UInt8(ascii: ":")) {
                var nameEnd = colon
                while nameEnd > 0, SIPGrammar.isWhitespace(content[nameEnd - 1]) { nameEnd -= 1 }
                let name = SIPHeaderName.lookup(UnsafeBufferPointer(rebasing: content[..<nameEnd]))
                if name == .contentLength {
                    let value = String(decoding: UnsafeBufferPointer(rebasing: content[(colon + 1)...]), as: UTF8.self)
                    guard found == nil else {
                        throw SIPParseError(.duplicateHeader, header: "Content-Length", at: index, "Content-Length must appear once")
                    }
                    guard let parsed = SIPHeaderValue.contentLength(value) else {
                        throw SIPParseError(.invalidHeaderValue, header: "Content-Length", at: index, "bad Content-Length")
                    }
                    found = parsed
                }
            }
            index = line.next
        }
        return found
    }
}
