import Foundation
import SIPCore
import Testing

/// RFC 3261 §12 dialogs, on the §24.2 call flow's shapes (Alice calls Bob through proxies).
struct DialogTests {
    static func parse(_ text: String) throws -> SIPMessage {
        try SIPParser().parse(datagram: text.replacingOccurrences(of: "\n", with: "\r\n"))
    }

    static let invite = """
        INVITE sip:bob@biloxi.example.com SIP/2.0
        Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9
        Max-Forwards: 70
        From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
        To: Bob <sip:bob@biloxi.example.com>
        Call-ID: 3848276298220188511@atlanta.example.com
        CSeq: 1 INVITE
        Contact: <sip:alice@client.atlanta.example.com;transport=tcp>
        Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>
        Content-Length: 0


        """

    static let ok = """
        SIP/2.0 200 OK
        Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9
        Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>
        From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
        To: Bob <sip:bob@biloxi.example.com>;tag=8321234356
        Call-ID: 3848276298220188511@atlanta.example.com
        CSeq: 1 INVITE
        Contact: <sip:bob@client.biloxi.example.com;transport=tcp>
        Content-Length: 0


        """

    @Test("the UAC dialog reverses Record-Route and targets the 2xx Contact; its BYE follows the route (§12.1.2, §12.2.1.1)")
    func uac() throws {
        guard case .request(let request) = try Self.parse(Self.invite), case .response(let response) = try Self.parse(Self.ok) else {
            Issue.record("fixtures")
            return
        }
        var dialog = try #require(SIPDialog.uac(request: request, response: response))
        #expect(dialog.id == .init(callID: "3848276298220188511@atlanta.example.com", localTag: "9fxced76sl", remoteTag: "8321234356"))
        #expect(dialog.routeSet.map(\.uri.host) == ["ss1.atlanta.example.com", "ss2.biloxi.example.com"])
        let bye = dialog.makeRequest(.bye)
        #expect(bye.uri.description == "sip:bob@client.biloxi.example.com;transport=tcp")
        #expect(bye.routes.map(\.uri.host) == ["ss1.atlanta.example.com", "ss2.biloxi.example.com"])
        #expect(bye.cseq == SIPCSeq(2, .bye))
        #expect(bye.from?.tag == "9fxced76sl" && bye.to?.tag == "8321234356")
        #expect(dialog.makeRequest(.ack).cseq == SIPCSeq(2, .ack))
    }

    @Test("the UAS dialog keeps Record-Route in order, tags its side, and orders remote CSeqs (§12.1.1, §12.2.2)")
    func uas() throws {
        guard case .request(let request) = try Self.parse(Self.invite) else { Issue.record("fixture"); return }
        var dialog = try #require(SIPDialog.uas(request: request, localTag: "8321234356"))
        #expect(dialog.routeSet.map(\.uri.host) == ["ss2.biloxi.example.com", "ss1.atlanta.example.com"])
        #expect(dialog.remoteTarget.host == "client.atlanta.example.com")
        #expect(dialog.localURI.tag == "8321234356")
        guard case .request(var bye) = try Self.parse(Self.invite.replacingOccurrences(of: "CSeq: 1 INVITE", with: "CSeq: 2 BYE")
            .replacingOccurrences(of: "INVITE sip:", with: "BYE sip:")) else { Issue.record("bye"); return }
        let first = dialog.acceptRemote(bye)
        #expect(first)
        let replay = dialog.acceptRemote(bye)
        #expect(!replay)  // the same CSeq again: 500 (§12.2.2)
        bye.headers.set(.cseq, "1 BYE")
        let older = dialog.acceptRemote(bye)
        #expect(!older)
    }

    @Test("a strict router in the route set becomes the Request-URI, the remote target the last Route (§12.2.1.1)")
    func strictRouting() throws {
        guard case .request(let request) = try Self.parse(Self.invite.replacingOccurrences(
            of: "Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>",
            with: "Record-Route: <sip:strict.biloxi.example.com>")),
            case .response(let response) = try Self.parse(Self.ok.replacingOccurrences(
                of: "Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>",
                with: "Record-Route: <sip:strict.biloxi.example.com>"))
        else { Issue.record("fixtures"); return }
        var dialog = try #require(SIPDialog.uac(request: request, response: response))
        let bye = dialog.makeRequest(.bye)
        #expect(bye.uri.host == "strict.biloxi.example.com")
        #expect(bye.routes.map(\.uri.description) == ["sip:bob@client.biloxi.example.com;transport=tcp"])
    }
}

/// The tag check that responses and gateway requests use instead of parsing From/To: a wrong
/// answer either gives a dialog two tags or none (RFC 3261 §8.1.1.3, §8.2.6.2).
struct HeaderTagScanTests {
    @Test("a tag is found after the name-addr or the bare URI, in any case, and nowhere else", arguments: [
        ("<sip:alice@a.test>;tag=1928301774", true),
        ("\"Alice\" <sip:alice@a.test>;TAG=x", true),
        ("<sip:alice@a.test>;epid=9;tag=x", true),
        ("sip:alice@a.test;tag=abc", true),
        ("<sip:alice@a.test>", false),
        ("<sip:alice@a.test;tag=inside>", false),
        ("\"Bob;tag=x\" <sip:bob@b.test>", false),
        ("<sip:alice@a.test>;tagged=1", false),
        ("<sip:alice@a.test>;tag", false),
        ("<sip:alice@a.test>;", false),
    ])
    func hasTag(value: String, expected: Bool) {
        #expect(SIPNameAddress.hasTag(value) == expected, "\(value)")
    }
}
