import SIPCore
import Testing

@Suite("Lync IM session bodies (protocols.md §4.2)")
struct IMSessionBodyTests {
    @Test("SDP with m=message <port> sip null is an IM offer; LCS 2005's m=x-ms-message too; audio alone is not")
    func sdp() throws {
        let lync = "v=0\r\no=- 0 0 IN IP4 192.0.2.10\r\ns=session\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=message 5061 sip null\r\n"
            + "a=accept-types:text/plain text/html application/im-iscomposing+xml\r\n"
        let offer = try #require(IMSessionDescription(bytes: Array(lync.utf8)))
        #expect(offer.address == "192.0.2.10" && offer.port == 5061)
        #expect(offer.acceptTypes.contains("application/im-iscomposing+xml"))
        #expect(IMSessionDescription(bytes: Array("v=0\r\nc=IN IP4 10.0.0.1\r\nm=x-ms-message 5060 sip sip:a@b\r\n".utf8)) != nil)
        #expect(IMSessionDescription(bytes: Array("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n".utf8)) == nil)
        // Our own answer reads back.
        let answer = IMSessionDescription(address: "127.0.0.1", port: 5060)
        #expect(IMSessionDescription(bytes: answer.serialized()) == answer)
    }

    @Test("ms-text-format carries the first message base64 in ms-body; msgr is dropped; a bad ms-body is refused")
    func msTextFormat() throws {
        let format = try #require(MSTextFormat(headerValue: "text/plain; charset=UTF-8;msgr=WAAtAE0ATQBTAC;ms-body=SGVsbG8="))
        #expect(format.body == Array("Hello".utf8))
        #expect(format.contentType.essence == "text/plain" && format.contentType.charset == "UTF-8")
        #expect(format.contentType.parameters["msgr"] == nil)
        let written = MSTextFormat(contentType: .textPlain, body: Array("héllo".utf8))
        #expect(MSTextFormat(headerValue: written.headerValue) == MSTextFormat(contentType: written.contentType.withCharset, body: written.body))
        #expect(MSTextFormat(headerValue: "text/plain;ms-body=@@@") == nil)
        #expect(MSTextFormat(headerValue: "text/plain") == nil)
    }
}

extension SIPMediaType {
    fileprivate var withCharset: SIPMediaType {
        var type = self
        type.parameters.set("charset", .some("UTF-8"))
        return type
    }
}
