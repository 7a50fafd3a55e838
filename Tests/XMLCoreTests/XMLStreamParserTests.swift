import Foundation
import StoxTesting
import Testing
import XMLCore

struct XMLStreamParserTests {
    static let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='capulet.lit' from='montague.lit' version='1.0'>"

    /// A stream made of every xmpp-wire fixture plus features, dialback and whitespace keepalives.
    static func sampleStream() throws -> [UInt8] {
        let directory = Golden.directory("xmpp-wire")
        var bytes = Array(header.utf8)
        bytes += Array("<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>\n \n".utf8)
        for file in Golden.files(in: directory, withExtension: "xml") where !file.hasPrefix("invalid/") {
            bytes += try Golden.bytes(directory.appendingPathComponent(file))
            bytes += Array(" ".utf8)
        }
        bytes += Array("<db:result from='montague.lit' to='capulet.lit'>b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:result>".utf8)
        bytes += Array("</stream:stream>".utf8)
        return bytes
    }

    @Test("one byte at a time gives exactly the events of all at once")
    func byteAtATime() throws {
        let bytes = try Self.sampleStream()
        let whole = try XMLStreamParser().feed(bytes)
        #expect(whole.count > 40)
        let parser = XMLStreamParser()
        var trickled: [XMLStreamEvent] = []
        for byte in bytes { try parser.feed([byte], into: &trickled) }
        #expect(trickled == whole)
        // And random split points.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5 {
            let parser = XMLStreamParser()
            var events: [XMLStreamEvent] = []
            var offset = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + Int.random(in: 1...97, using: &generator))
                try parser.feed(Array(bytes[offset..<end]), into: &events)
                offset = end
            }
            #expect(events == whole)
        }
    }

    @Test("emits the header with its in-scope namespaces, each stanza as a tree, and the close")
    func events() throws {
        let events = try XMLStreamParser().feed(Array((Self.header + "<message to='juliet@capulet.lit'><body>hi</body><x:y xmlns:x='urn:x' x:a='1'/></message></stream:stream>").utf8))
        #expect(events.count == 3)
        guard case .streamOpened(let header) = events[0] else { Issue.record("no header"); return }
        #expect(header.name == "stream")
        #expect(header.namespace == "http://etherx.jabber.org/streams")
        #expect(header.prefix == "stream")
        #expect(header.defaultNamespace == "jabber:server")
        #expect(header.namespaceDeclarations["db"] == "jabber:server:dialback")
        #expect(header.attribute("to") == "capulet.lit")
        guard case .element(let message) = events[1] else { Issue.record("no element"); return }
        #expect(message.namespace == "jabber:server")
        #expect(message.firstChild("body")?.namespace == "jabber:server")
        #expect(message.firstChild("body")?.text == "hi")
        let y = try #require(message.firstChild("y"))
        #expect(y.namespace == "urn:x")
        #expect(y.attribute("a", namespace: "urn:x") == "1")
        #expect(events[2] == .streamClosed)
    }

    @Test("xml:lang and entity references resolve")
    func langAndEntities() throws {
        let events = try XMLStreamParser().feed(Array((Self.header + "<message xml:lang='fr'><body>a &lt; b &amp;&#x263A;</body></message>").utf8))
        guard case .element(let message) = events.last else { Issue.record("no element"); return }
        #expect(message.language == "fr")
        #expect(message.firstChild("body")?.text == "a < b &\u{263A}")
    }

    static let refusals: [(String, XMLParseError.Kind)] = [
        ("<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'y'>]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", .restrictedXML),
        (header + "<?php echo 1 ?>", .restrictedXML),
        (header + "<!-- hello -->", .restrictedXML),
        (header + "<message>&custom;</message>", .restrictedXML),
        (header + "<message><body></message>", .notWellFormed),
        (header + "hello", .textAtStreamLevel),
        ("<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", .unsupportedEncoding),
        (header + "<message a='1' a='2'/>", .notWellFormed),
        (header + "<p:message/>", .notWellFormed),
    ]

    @Test("refuses restricted and broken XML with a typed error", arguments: XMLStreamParserTests.refusals)
    func refuses(_ example: (String, XMLParseError.Kind)) {
        #expect {
            _ = try XMLStreamParser().feed(Array(example.0.utf8))
        } throws: { error in
            (error as? XMLParseError)?.kind == example.1
        }
    }

    @Test("enforces the depth, size and attribute limits")
    func limits() throws {
        let limits = XMLParserLimits(maxDepth: 4, maxElementBytes: 1024, maxAttributes: 3)
        let deep = Self.header + String(repeating: "<a>", count: 5)
        #expect(throws: XMLParseError.self) { _ = try XMLStreamParser(limits: limits).feed(Array(deep.utf8)) }
        let wide = Self.header + "<a b='1' c='2' d='3' e='4'/>"
        #expect { _ = try XMLStreamParser(limits: limits).feed(Array(wide.utf8)) } throws: {
            ($0 as? XMLParseError)?.kind == .tooManyAttributes
        }
        let big = Self.header + "<message><body>" + String(repeating: "x", count: 2000) + "</body></message>"
        #expect { _ = try XMLStreamParser(limits: limits).feed(Array(big.utf8)) } throws: {
            ($0 as? XMLParseError)?.kind == .elementTooLarge && ($0 as? XMLParseError)?.rfc6120Condition == "policy-violation"
        }
        // A start tag that never ends cannot make the parser buffer without bound.
        let parser = XMLStreamParser(limits: XMLParserLimits(maxElementBytes: 64 * 1024))
        var events: [XMLStreamEvent] = []
        try parser.feed(Array(Self.header.utf8), into: &events)
        try parser.feed(Array("<message a='".utf8), into: &events)
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 16 * 1024)
        var refused = false
        for _ in 0..<64 {
            do { try parser.feed(chunk, into: &events) } catch { refused = error.kind == .elementTooLarge; break }
        }
        #expect(refused)
        // Stanzas under the limit pass, many of them, since the limit is per element.
        let small = XMLStreamParser(limits: limits)
        var many: [XMLStreamEvent] = []
        try small.feed(Array(Self.header.utf8), into: &many)
        for _ in 0..<100 { try small.feed(Array("<message><body>\(String(repeating: "y", count: 500))</body></message>".utf8), into: &many) }
        #expect(many.count == 101)
    }

    @Test("after an error the parser stays failed, and reset starts a new stream")
    func stickyErrorAndReset() throws {
        let parser = XMLStreamParser()
        #expect(throws: XMLParseError.self) { _ = try parser.feed(Array((Self.header + "<a></b>").utf8)) }
        #expect(throws: XMLParseError.self) { _ = try parser.feed(Array("<c/>".utf8)) }
        parser.reset()
        let events = try parser.feed(Array((Self.header + "<c/>").utf8))
        #expect(events.count == 2)
    }

    @Test("standalone documents allow comments and processing instructions but never a DTD")
    func documents() throws {
        let pidf = "<?xml version='1.0'?><!-- presence --><presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b'><?pi x?><tuple id='t'/></presence>"
        let root = try XMLDocumentParser.parse(pidf)
        #expect(root.name == "presence")
        #expect(root.elements.count == 1)
        #expect(throws: XMLParseError.self) {
            try XMLDocumentParser.parse("<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]><presence>&lol2;</presence>")
        }
        #expect { try XMLDocumentParser.parse("<presence>") } throws: { ($0 as? XMLParseError)?.kind == .notWellFormed }
    }
}

struct XMLSerializerTests {
    @Test("escapes text and attributes and never emits characters XML cannot carry")
    func escaping() {
        let element = XMLElement("body", namespace: "jabber:server", attributes: ["a": "it's <\"quoted\"> & \n"], children: [.text("1 < 2 & 3 > 2 \u{1}\u{FFFE}")])
        let text = XMLSerializer.string(element, in: .init(defaultNamespace: "jabber:server"))
        #expect(text == "<body a='it&apos;s &lt;&quot;quoted&quot;&gt; &amp; &#10;'>1 &lt; 2 &amp; 3 &gt; 2 \u{FFFD}\u{FFFD}</body>")
    }

    @Test("declares the default namespace where it changes and reuses bound prefixes")
    func namespaces() throws {
        var message = XMLElement("message", namespace: "jabber:server")
        message.append(XMLElement("body", namespace: "jabber:server", text: "x"))
        message.append(XMLElement("active", namespace: "http://jabber.org/protocol/chatstates"))
        var html = XMLElement("html", namespace: "http://jabber.org/protocol/xhtml-im")
        html.append(XMLElement("body", namespace: "http://www.w3.org/1999/xhtml", text: "y"))
        message.append(html)
        message.append(XMLElement("plain"))
        message.setAttribute("lang", namespace: XMLNamespace.xml, to: "en")
        message.setAttribute("attr", namespace: "urn:ext", to: "v")
        let text = XMLSerializer.string(message, in: .init(defaultNamespace: "jabber:server"))
        #expect(text == "<message xml:lang='en' xmlns:ns1='urn:ext' ns1:attr='v'><body>x</body><active xmlns='http://jabber.org/protocol/chatstates'/><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>y</body></html><plain xmlns=''/></message>")
        // Reading it back inside a stream gives the same tree.
        let events = try XMLStreamParser().feed(Array((XMLStreamParserTests.header + text).utf8))
        #expect(events.last == .element(message))
        let features = XMLElement("features", namespace: "http://etherx.jabber.org/streams")
        #expect(XMLSerializer.string(features, in: .init(defaultNamespace: "jabber:server", prefixes: ["http://etherx.jabber.org/streams": "stream"])) == "<stream:features/>")
    }

    @Test("canonical form ignores prefixes, quoting, attribute order and indentation")
    func canonical() throws {
        let a = try XMLDocumentParser.parse("<p:x xmlns:p='urn:a' b='2' a='1'>\n  <p:y>t</p:y>\n</p:x>")
        let b = try XMLDocumentParser.parse("<x xmlns=\"urn:a\" a=\"1\" b=\"2\"><y>t</y></x>")
        #expect(XMLCanonical.equivalent(a, b))
        let c = try XMLDocumentParser.parse("<x xmlns='urn:a' a='1' b='2'><y>u</y></x>")
        #expect(!XMLCanonical.equivalent(a, c))
    }
}
