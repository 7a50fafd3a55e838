import Testing
import XMLCore
import XMPPCore

struct JIDTests {
    @Test("parses the three parts as RFC 7622 §3.1 splits them")
    func parts() throws {
        let jid = try JID(parsing: "juliet@capulet.lit/balcony/window@night")
        #expect(jid.localpart == "juliet")
        #expect(jid.domainpart == "capulet.lit")
        #expect(jid.resourcepart == "balcony/window@night")
        #expect(jid.bare.description == "juliet@capulet.lit")
        #expect(jid.domain.description == "capulet.lit")
        #expect(try JID(parsing: "capulet.lit").isDomain)
    }

    @Test("normalises case, the trailing dot and Unicode composition")
    func normalisation() throws {
        #expect(try JID(parsing: "Juliet@Capulet.LIT./Balcony").description == "juliet@capulet.lit/Balcony")
        // U+0065 U+0301 composes to U+00E9 (NFC); the localpart is case-mapped.
        #expect(try JID(parsing: "Rene\u{301}@example.com").localpart == "ren\u{E9}")
        #expect(try JID(parsing: "juliet@capulet.lit") == JID(parsing: "JULIET@capulet.lit"))
        // Resource keeps its case and maps non-ASCII spaces (OpaqueString).
        #expect(try JID(parsing: "a@b/Hello\u{00A0}World").resourcepart == "Hello World")
    }

    @Test("refuses what RFC 7622 forbids", arguments: [
        "", "@capulet.lit", "juliet@", "juliet@capulet.lit/", "jul'iet@capulet.lit", "ju\"liet@capulet.lit",
        "ju<liet@capulet.lit", "ju liet@capulet.lit", "juliet@cap ulet.lit", "juliet@capulet..lit",
        "ch@r@cters@muc.example.com", "a@b/\u{7}",
    ])
    func refuses(_ string: String) {
        #expect(throws: JIDError.self) { try JID(parsing: string) }
    }

    @Test("each part is limited to 1023 bytes")
    func lengths() throws {
        let long = String(repeating: "a", count: 1023)
        #expect(try JID(parsing: "\(long)@example.com").localpart?.utf8.count == 1023)
        #expect(throws: JIDError.tooLong(.localpart, 1024)) { try JID(parsing: "\(long)a@example.com") }
        #expect(throws: JIDError.tooLong(.resourcepart, 1024)) { try JID(parsing: "a@example.com/\(long)a") }
    }

    @Test("IPv6 literal domains")
    func ipv6() throws {
        #expect(try JID(parsing: "juliet@[::1]/r").domainpart == "[::1]")
        #expect(throws: JIDError.self) { try JID(parsing: "juliet@[::g]") }
    }

    // XEP-0106 §5 examples (unescaped ⇄ escaped localpart).
    static let escapingExamples: [(String, String)] = [
        ("space cadet", "space\\20cadet"),
        ("call me \"ishmael\"", "call\\20me\\20\\22ishmael\\22"),
        ("at&t guy", "at\\26t\\20guy"),
        ("d'artagnan", "d\\27artagnan"),
        ("/.fanboy", "\\2f.fanboy"),
        ("::foo::", "\\3a\\3afoo\\3a\\3a"),
        ("<foo>", "\\3cfoo\\3e"),
        ("user@host", "user\\40host"),
        ("c:\\net", "c\\3a\\net"),
        ("c:\\\\net", "c\\3a\\\\net"),
        ("c:\\cool stuff", "c\\3a\\cool\\20stuff"),
        ("c:\\5commas", "c\\3a\\5c5commas"),
    ]

    @Test("XEP-0106 escaping and unescaping follow the XEP's examples", arguments: escapingExamples)
    func escaping(_ example: (String, String)) throws {
        #expect(JIDEscaping.escape(example.0) == example.1)
        #expect(JIDEscaping.unescape(example.1) == example.0)
        // The escaped form is a valid localpart.
        #expect(try JID(localpart: example.1, domainpart: "example.com").localpart == example.1)
    }

    @Test("unescaping leaves unknown backslash sequences alone")
    func unknownEscapes() {
        #expect(JIDEscaping.unescape("a\\41b\\") == "a\\41b\\")
        #expect(JIDEscaping.unescape("\\5c27") == "\\27")
    }
}

struct StanzaTests {
    @Test("stanza error conditions default to their RFC 6120 §8.3.3 types")
    func defaultTypes() {
        #expect(StanzaError(.serviceUnavailable).type == .cancel)
        #expect(StanzaError(.badRequest).type == .modify)
        #expect(StanzaError(.forbidden).type == .auth)
        #expect(StanzaError(.remoteServerTimeout).type == .wait)
        #expect(StanzaError.Condition.allCases.count == 22)
        #expect(StreamError.Condition.allCases.count == 25)
    }

    @Test("a stanza error survives writing and reading")
    func errorRoundTrip() {
        let error = StanzaError(.gone, text: "moved", textLanguage: "en", by: "capulet.lit", alternateAddress: "xmpp:juliet@verona.lit")
        let reread = StanzaError(element: error.element(namespace: XMPPNamespace.server))
        #expect(reread == error)
    }

    @Test("an unknown error condition from a peer becomes undefined-condition, not a failure")
    func sloppyError() throws {
        let element = try XMLDocumentParser.parse("<error xmlns='jabber:server'><made-up xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")
        let error = StanzaError(element: element)
        #expect(error.condition == .undefinedCondition)
        #expect(error.type == .cancel)
    }

    @Test("messages and presences are written in the stream's content namespace")
    func serialisation() throws {
        var message = XMPPMessage(
            from: try JID(parsing: "romeo@montague.lit/orchard"), to: try JID(parsing: "juliet@capulet.lit"), id: "m1",
            type: .chat, body: "Neither, fair saint, if either thee dislike.")
        message.extensions.append(XMLElement("active", namespace: XMPPNamespace.chatStates))
        #expect(XMPPStanza.message(message).serialized() == "<message from='romeo@montague.lit/orchard' to='juliet@capulet.lit' id='m1' type='chat'><body>Neither, fair saint, if either thee dislike.</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
        let presence = XMPPPresence(show: .dnd, status: "In a meeting", priority: 5)
        #expect(XMPPStanza.presence(presence).serialized(namespace: XMPPNamespace.client) == "<presence><show>dnd</show><status>In a meeting</status><priority>5</priority></presence>")
    }

    @Test("iq get/set must carry exactly one payload")
    func iqPayload() throws {
        let bad = try XMLDocumentParser.parse("<iq xmlns='jabber:server' id='1' type='get'/>")
        #expect(throws: StanzaParseError.self) { try XMPPIQ(element: bad) }
        let ping = try XMLDocumentParser.parse("<iq xmlns='jabber:server' id='2' type='get' from='a.lit' to='b.lit'><ping xmlns='urn:xmpp:ping'/></iq>")
        let iq = try XMPPIQ(element: ping)
        #expect(iq.result().element().attribute("to") == "a.lit")
    }

    @Test("the stream header is validated and written")
    func header() throws {
        let header = XMPPStreamHeader(from: "sip.example", to: "capulet.lit", id: "s1", declaresDialback: true)
        let reader = XMPPStreamReader()
        var events: [XMPPStreamEvent] = []
        try reader.feed(Array(header.openingTag.utf8), into: &events)
        #expect(events == [.opened(header)])
        let bad = XMPPStreamReader()
        #expect(throws: StreamError(.unsupportedVersion, text: "version 2.0")) {
            try bad.feed(Array("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='2.0'>".utf8), into: &events)
        }
    }
}
