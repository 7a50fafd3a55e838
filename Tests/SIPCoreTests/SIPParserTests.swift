import NIOCore
import SIPCore
import Testing

/// Parser, framer, header and response behaviour beyond the RFC 4475 goldens.
struct SIPParserTests {
    static let message = """
        MESSAGE sip:bob@biloxi.example.com SIP/2.0\r
        Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r
        Via: SIP/2.0/UDP proxy.atlanta.example.com;branch=z9hG4bKnashds8;received=192.0.2.1\r
        Max-Forwards: 70\r
        f: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r
        TO: <sip:bob@biloxi.example.com>\r
        i: a84b4c76e66710@pc33.atlanta.example.com\r
        CSeq: 314159 MESSAGE\r
        Supported: timer,\r
         ms-text-format\r
        Content-Type: text/plain;charset=UTF-8\r
        Content-Length: 5\r
        \r
        hello
        """

    static func request(_ text: String = message) throws -> SIPRequest {
        guard case .request(let request) = try SIPParser().parse(datagram: text) else {
            throw SIPParseError(.malformedStartLine)
        }
        return request
    }

    @Test("compact forms, case-insensitive names, folding and lists")
    func headers() throws {
        let request = try Self.request()
        #expect(request.headers[.from] == "\"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774")
        #expect(request.headers[SIPHeaderName("from")] != nil)
        #expect(request.headers.fields.map(\.name.rawValue).contains("Call-ID"))
        #expect(request.supported == ["timer", "ms-text-format"])
        #expect(request.headers[.supported] == "timer, ms-text-format")
        #expect(request.via.count == 2)
        #expect(request.headers.values(.via).count == 2)
        #expect(request.bodyText == "hello")
    }

    @Test("typed Via, From, To, CSeq and media type")
    func typedAccessors() throws {
        let request = try Self.request()
        let top = try #require(request.topVia)
        #expect(top.transport == "TCP")
        #expect(top.host == "client.atlanta.example.com")
        #expect(top.port == 5060)
        #expect(top.branch == "z9hG4bK776asdhds")
        #expect(top.rport == .requested)
        #expect(top.hasRFC3261Branch)
        #expect(request.via[1].received == "192.0.2.1")
        #expect(request.from?.displayName == "Alice")
        #expect(request.from?.tag == "1928301774")
        #expect(request.to?.tag == nil)
        #expect(request.cseq == SIPCSeq(314159, .message))
        #expect(request.contentType?.essence == "text/plain")
        #expect(request.contentType?.charset == "UTF-8")
        #expect(request.maxForwards == 70)
    }

    @Test("Contact parameters, wildcard and GRUU")
    func contacts() throws {
        let contact = try #require(SIPContact.parse("<sip:bob@192.0.2.4;transport=tcp;gr=urn:uuid:f81d>;expires=3600;q=0.7;+sip.instance=\"<urn:uuid:f81d>\", sip:bob@host2"))
        guard case .addresses(let list) = contact else { Issue.record("not a list"); return }
        #expect(list.count == 2)
        #expect(list[0].expires == 3600)
        #expect(list[0].q == 0.7)
        #expect(list[0].parameters["+sip.instance"] == "<urn:uuid:f81d>")
        #expect(list[0].uri.gr == "urn:uuid:f81d")
        #expect(list[0].uri.transport == "tcp")
        #expect(list[1].uri.host == "host2")
        #expect(SIPContact.parse(" * ") == .wildcard)
    }

    @Test("URIs: escapes, gr, IPv6, headers, other schemes (RFC 7247 §6 examples)")
    func uris() throws {
        #expect(SIPURI("sip:f%C3%BC@sip.example")?.decodedUser == "fü")
        #expect(SIPURI("sip:o'malley@sip.example")?.user == "o'malley")
        let gruu = try #require(SIPURI("sip:foo@sip.example;gr=bar"))
        #expect(gruu.gr == "bar")
        #expect(gruu.addressOfRecord.description == "sip:foo@sip.example")
        let full = try #require(SIPURI("sips:alice:secret@[2001:db8::1]:5061;transport=tls;lr?subject=hi&priority=urgent"))
        #expect(full.scheme == .sips)
        #expect(full.password == "secret")
        #expect(full.host == "[2001:db8::1]")
        #expect(full.port == 5061)
        #expect(full.isLooseRouter)
        #expect(full.headers == [SIPURI.Header("subject", "hi"), SIPURI.Header("priority", "urgent")])
        #expect(SIPURI(full.description) == full)
        #expect(SIPURI("tel:+1-201-555-0123")?.opaque == "+1-201-555-0123")
        #expect(SIPURI("SIP:bob@example.com")?.scheme == .sip)
        for bad in ["sip:", "sip:bob@", "sip:bob@host:99999", "sip:bo b@host", "<sip:bob@host>", "sip:bob@host;", "sip:%zz@host", "nocolon"] {
            #expect(SIPURI(bad) == nil, "\(bad)")
        }
        #expect(SIPURI.percentEncoded("tschüss", allowed: []) == "tsch%C3%BCss")
    }

    @Test("Event, Subscription-State, Expires and entity tags")
    func presenceHeaders() throws {
        #expect(SIPEvent.parse("presence;id=7")?.id == "7")
        #expect(SIPEvent.parse("Presence")?.matches(.presence) == true)
        let state = try #require(SIPSubscriptionState.parse("terminated;reason=timeout;retry-after=30"))
        #expect(state.state == .terminated)
        #expect(state.reason == .timeout)
        #expect(state.retryAfter == 30)
        #expect(SIPSubscriptionState.parse("active;expires=600")?.expires == 600)
        #expect(SIPSubscriptionState(.pending, expires: 60).description == "pending;expires=60")
        #expect(SIPHeaderValue.deltaSeconds("3600") == 3600)
        #expect(SIPHeaderValue.deltaSeconds("4294967296") == nil)
        #expect(SIPHeaderValue.maxForwards("256") == nil)
        var request = try Self.request()
        request.headers.add(.sipIfMatch, " dx200xyz ")
        #expect(request.sipIfMatch == "dx200xyz")
    }

    @Test("digest challenges and credentials parse and write back (RFC 7616)")
    func digest() throws {
        let challenge = try #require(SIPAuthorization.parse(#"Digest realm="atlanta.example.com", qop="auth", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", stale=FALSE"#))
        #expect(challenge.isDigest)
        #expect(challenge.realm == "atlanta.example.com")
        #expect(challenge.algorithm == "SHA-256")
        #expect(challenge.qop == ["auth"])
        #expect(!challenge.stale)
        #expect(SIPAuthorization.parse(challenge.description) == challenge)
        var credentials = SIPAuthorization(scheme: "Digest")
        credentials.add("username", "bob")
        credentials.add("realm", "atlanta.example.com")
        credentials.add("nonce", "abc")
        credentials.add("uri", "sip:atlanta.example.com")
        credentials.add("response", "0123")
        credentials.add("algorithm", "MD5")
        credentials.add("qop", "auth", quoted: false)
        credentials.add("nc", "00000001")
        #expect(credentials.description == #"Digest username="bob", realm="atlanta.example.com", nonce="abc", uri="sip:atlanta.example.com", response="0123", algorithm=MD5, qop=auth, nc=00000001"#)
        #expect(SIPAuthorization.parse(credentials.description) == credentials)
        #expect(SIPAuthorization.parse("NoOneKnowsThisScheme opaque-data=here")?.scheme == "NoOneKnowsThisScheme")
    }

    @Test("responses are built as RFC 3261 §8.2.6 says")
    func responses() throws {
        var request = try Self.request()
        request.headers.add(.timestamp, "54")
        let ok = request.makeResponse(200, toTag: "a6c85cf")
        #expect(ok.reasonPhrase == "OK")
        #expect(ok.headers.lines(.via) == request.headers.lines(.via))
        #expect(ok.to?.tag == "a6c85cf")
        #expect(ok.from == request.from)
        #expect(ok.callID == request.callID)
        #expect(ok.cseq == request.cseq)
        #expect(ok.headers[.timestamp] == nil)
        let trying = request.makeResponse(100, toTag: "ignored")
        #expect(trying.to?.tag == nil)
        #expect(trying.headers[.timestamp] == "54")
        // A To that already has a tag keeps it.
        request.headers.set(.to, "<sip:bob@biloxi.example.com>;tag=existing")
        #expect(request.makeResponse(486, toTag: "new").to?.tag == "existing")
        let text = ok.serializedString
        #expect(text.hasPrefix("SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"))
        #expect(text.hasSuffix("Content-Length: 0\r\n\r\n"))
    }

    @Test("serialization states the real Content-Length whatever the header said")
    func contentLength() throws {
        var request = try Self.request()
        request.body = Array("a longer body".utf8)
        request.headers.add(.contentLength, "999")
        let reparsed = try SIPParser().parse(datagram: request.serialized())
        #expect(reparsed.body == Array("a longer body".utf8))
        #expect(reparsed.headers.lines(.contentLength) == ["13"])
    }

    @Test("header editing keeps wire order")
    func headerEditing() {
        var headers: SIPHeaders = [.via: "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2", .to: "<sip:x@y>"]
        headers.prepend(.via, "SIP/2.0/TCP me;branch=z9hG4bK0")
        #expect(headers.values(.via).count == 3)
        headers.removeFirstValue(.via)
        headers.removeFirstValue(.via)
        #expect(headers.values(.via) == ["SIP/2.0/UDP b;branch=z9hG4bK2"])
        headers.set(.to, "<sip:z@y>")
        #expect(headers[.to] == "<sip:z@y>")
        headers.remove(.to)
        #expect(!headers.contains(.to))
    }

    static let errorCases: [(String, SIPParseError.Kind, String?)] = [
        ("INVITE sip:a@b SIP/2.0\r\nVia SIP/2.0/UDP h\r\n\r\n", .malformedHeaderLine, nil),
        ("INVITE sip:a@b SIP/2.0\r\n Via: SIP/2.0/UDP h\r\n\r\n", .malformedHeaderLine, nil),
        ("MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Type: text\r\n\r\n", .invalidHeaderValue, "Content-Type"),
        ("MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nFrom: <sip:e@f>\r\n\r\n", .duplicateHeader, "From"),
        ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCSeq: 1 MESSAGE\r\n\r\n", .missingRequiredHeader, "Call-ID"),
        ("MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContact: <sip:a@b\r\n\r\n", .invalidHeaderValue, "Contact"),
    ]

    @Test("errors name their kind and header", arguments: errorCases)
    func errors(_ example: (String, SIPParseError.Kind, String?)) {
        #expect {
            _ = try SIPParser().parse(datagram: example.0)
        } throws: { error in
            guard let error = error as? SIPParseError else { return false }
            return error.kind == example.1 && error.header == example.2
        }
    }

    @Test("the error offset points at the offending line")
    func errorOffset() {
        let text = "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: x MESSAGE\r\n\r\n"
        do {
            _ = try SIPParser().parse(datagram: text)
            Issue.record("parsed")
        } catch {
            #expect(error.byteOffset == text.utf8.count - "CSeq: x MESSAGE\r\n\r\n".utf8.count)
            #expect(error.header == "CSeq")
        }
    }

    @Test("header count and size limits")
    func limits() {
        var text = "OPTIONS sip:a@b SIP/2.0\r\n"
        for index in 0..<300 { text += "X-Filler-\(index): value\r\n" }
        #expect { _ = try SIPParser().parse(datagram: text + "\r\n") } throws: { ($0 as? SIPParseError)?.kind == .messageTooLarge }
        let long = "OPTIONS sip:a@b SIP/2.0\r\nX-Long: " + String(repeating: "a", count: 40_000) + "\r\n\r\n"
        #expect { _ = try SIPParser().parse(datagram: long) } throws: { ($0 as? SIPParseError)?.kind == .messageTooLarge }
    }
}

struct SIPStreamFramerTests {
    static let two: [UInt8] = Array((SIPParserTests.message + "\r\n\r\n" + SIPParserTests.message).utf8)

    @Test("messages split at any byte come out whole, with keepalives between them")
    func anySplit() throws {
        var framer = SIPStreamFramer()
        for split in stride(from: 0, through: Self.two.count, by: 7) {
            var buffer = ByteBuffer()
            var frames: [SIPStreamFramer.Frame] = []
            buffer.writeBytes(Self.two[..<split])
            while let frame = try framer.next(from: &buffer) { frames.append(frame) }
            buffer.writeBytes(Self.two[split...])
            while let frame = try framer.next(from: &buffer) { frames.append(frame) }
            let messages = frames.filter { if case .message = $0 { true } else { false } }
            #expect(messages.count == 2, "split at \(split)")
            #expect(frames.contains(.keepAlivePing), "split at \(split)")
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test("a stream message without Content-Length is refused")
    func missingContentLength() {
        var buffer = ByteBuffer(string: "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n")
        var framer = SIPStreamFramer()
        #expect { _ = try framer.next(from: &buffer) } throws: {
            ($0 as? SIPParseError)?.kind == .missingRequiredHeader && ($0 as? SIPParseError)?.header == "Content-Length"
        }
    }

    @Test("a peer cannot make the framer buffer without bound")
    func bounded() {
        var framer = SIPStreamFramer(limits: .init(maxHeaderBytes: 1024, maxHeaderCount: 64, maxBodyBytes: 2048))
        var endless = ByteBuffer(string: "OPTIONS sip:a@b SIP/2.0\r\n" + String(repeating: "X-A: b\r\n", count: 200))
        #expect { _ = try framer.next(from: &endless) } throws: { ($0 as? SIPParseError)?.kind == .messageTooLarge }
        var huge = ByteBuffer(string: "MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 100000\r\n\r\n")
        #expect { _ = try framer.next(from: &huge) } throws: { ($0 as? SIPParseError)?.kind == .messageTooLarge }
        var partial = ByteBuffer(string: "MESSAGE sip:a@b SIP/2.0\r\nContent-")
        #expect((try? framer.next(from: &partial)) == .some(nil))
    }

    @Test("a lone CRLF is a pong only while one is awaited (RFC 5626 §3.5.1)")
    func pong() throws {
        var framer = SIPStreamFramer()
        var buffer = ByteBuffer(string: "\r\n")
        #expect(try framer.next(from: &buffer) == nil)
        buffer.writeString("\r\n")
        #expect(try framer.next(from: &buffer) == .keepAlivePing)
        framer.awaitingPong = true
        buffer.writeString("\r\n")
        #expect(try framer.next(from: &buffer) == .keepAlivePong)
        #expect(!framer.awaitingPong)
    }
}
