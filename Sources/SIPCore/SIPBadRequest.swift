/// RFC 3261 §8.2.6 and §16.3: a request that does not parse still gets `400 Bad Request` when
/// the headers a response needs survived: the Vias (to route it back), From, To, Call-ID and
/// CSeq, copied as they were written. Responses, ACKs (§17.1.1.3: never answered), requests
/// without those, and requests where one of them is what is broken get nothing: dropped.
public enum SIPBadRequest {
    public static func response(to bytes: [UInt8], error: SIPParseError) -> SIPResponse? {
        bytes.withUnsafeBufferPointer { response(to: $0, error: error) }
    }

    static func response(to bytes: UnsafeBufferPointer<UInt8>, error: SIPParseError) -> SIPResponse? {
        guard !bytes.isEmpty else { return nil }
        // The request line: METHOD SP ... SP SIP/2.0, method a token and not ACK.
        let first = SIPParser.lineEnd(bytes, from: 0)
        let startLine = String(decoding: UnsafeBufferPointer(rebasing: bytes[0..<first.contentEnd]), as: UTF8.self)
        let parts = startLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2] == "SIP/2.0", !parts[0].isEmpty, parts[0] != "ACK",
              parts[0].utf8.allSatisfy(SIPGrammar.isToken) else { return nil }
        var vias: [String] = []
        var copied: [SIPHeaderName: String] = [:]
        var index = first.next
        while index < bytes.count {
            let line = SIPParser.lineEnd(bytes, from: index)
            if line.contentEnd == index { break }  // the blank line: end of headers
            let content = UnsafeBufferPointer(rebasing: bytes[index..<line.contentEnd])
            index = line.next
            guard let colon = content.firstIndex(of: UInt8(ascii: ":")) else { continue }
            var nameEnd = colon
            while nameEnd > 0, SIPGrammar.isWhitespace(content[nameEnd - 1]) { nameEnd -= 1 }
            let name = SIPHeaderName.lookup(UnsafeBufferPointer(rebasing: content[..<nameEnd]))
            let value = String(decoding: UnsafeBufferPointer(rebasing: content[(colon + 1)...]), as: UTF8.self).trimmingSIPWhitespace()
            switch name {
            case .via: vias.append(value)
            case .from, .to, .callID, .cseq: if copied[name] == nil { copied[name] = value }
            default: break
            }
        }
        guard !vias.isEmpty, let from = copied[.from], var to = copied[.to], let callID = copied[.callID],
              let cseq = copied[.cseq] else { return nil }
        if var address = SIPNameAddress.parse(to), address.tag == nil {
            address.tag = SIPNameAddress.makeTag()
            to = address.description
        }
        var headers = SIPHeaders()
        for via in vias { headers.add(.via, via) }
        headers.add(.from, from)
        headers.add(.to, to)
        headers.add(.callID, callID)
        headers.add(.cseq, cseq)
        // A plain reason phrase: what was wrong goes to the operator's log with the source
        // address, not to whoever sent it (the parser's internals are nobody's business).
        let response = SIPResponse(statusCode: 400, reasonPhrase: "Bad Request", headers: headers)
        // The copied values may be the broken part (a Via, a CSeq): only a response that is
        // itself well-formed goes out, so reading it back is the test.
        guard case .response? = try? SIPParser().parse(datagram: response.serialized()) else { return nil }
        return response
    }
}
