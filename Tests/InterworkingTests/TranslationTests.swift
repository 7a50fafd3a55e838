import Foundation
import Interworking
import SIPCore
import StoxTesting
import Testing
import XMLCore
import XMPPCore

/// Translator behaviour the goldens cannot express as text files.
struct TranslationTests {
    static let mappings = try! MappingDirectory.load(Golden.repositoryRoot.appendingPathComponent("Mappings").path)

    static func message(_ body: [UInt8], contentType: String) throws -> SIPRequest {
        let head = "MESSAGE sip:juliet@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:romeo@example.net>;tag=1\r\nTo: <sip:juliet@example.com>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n\r\n"
        guard case .request(let request) = try SIPParser().parse(datagram: Array(head.utf8) + body) else { throw SIPParseError(.malformedStartLine) }
        return request
    }

    @Test("an ISO-8859-1 body reaches XMPP as UTF-8 (RFC 7572 §8)")
    func latin1() throws {
        let request = try Self.message([0x5A, 0x75, 0x72, 0xFC, 0x63, 0x6B], contentType: "text/plain;charset=ISO-8859-1")
        #expect(try SIPToXMPP(Self.mappings).message(request).value.body == "Zurück")
    }

    @Test("XHTML-IM keeps the Integration Set and drops scripts and javascript: links")
    func xhtmlSanitising() throws {
        let html = "<p style='color:red' onclick='evil()'>a <a href='javascript:alert(1)'>x</a> <a href='https://example.com/'>y</a></p><iframe>z</iframe>"
        let request = try Self.message(Array(html.utf8), contentType: "text/html")
        let message = try SIPToXMPP(Self.mappings).message(request).value
        let xhtml = try #require(message.extensionElement("html", namespace: XMPPNamespace.xhtmlIM))
        let text = xhtml.xmlString
        #expect(!text.contains("onclick"))
        #expect(!text.contains("javascript:"))
        #expect(!text.contains("iframe"))
        #expect(text.contains("href='https://example.com/'"))
        #expect(text.contains("style='color:red'"))
        #expect(message.body == "a x y")
    }

    @Test("priority scaling keeps every value distinct and reversible (RFC 8048 §6.2 note 6)")
    func priorities() throws {
        let toSIP = XMPPToSIP(Self.mappings)
        let toXMPP = SIPToXMPP(Self.mappings)
        var seen: Set<String> = []
        for priority in Int8(0)...Int8(127) {
            let presence = XMPPPresence(from: try JID(parsing: "juliet@example.com/r"), to: try JID(parsing: "romeo@example.net"), priority: priority)
            var notify = try toSIP.presence([presence]).value
            let document = try PIDFDocument(bytes: notify.body)
            let written = try #require(priority == 0 ? "0" : document.tuples.first?.contactPriority)
            #expect(seen.insert(written).inserted, "priority \(priority) wrote \(written), like another")
            notify.headers.add(.via, "SIP/2.0/TCP h;branch=z9hG4bK1")
            notify.headers.add(.callID, "c")
            notify.headers.add(.cseq, "1 NOTIFY")
            notify.headers.add(.subscriptionState, "active")
            let back = try toXMPP.notify(notify).value.presences.first?.priority ?? 0
            #expect(back == priority)
        }
    }

    @Test("resources with any character survive the tuple id and come back")
    func tupleIDs() throws {
        let resource = "Mon téléphone/2 <work>"
        let presence = XMPPPresence(from: try JID(parsing: "juliet@example.com/\(resource)"), to: try JID(parsing: "romeo@example.net"), show: .away)
        var notify = try XMPPToSIP(Self.mappings).presence([presence]).value
        notify.headers.add(.via, "SIP/2.0/TCP h;branch=z9hG4bK1")
        notify.headers.add(.callID, "c")
        notify.headers.add(.cseq, "1 NOTIFY")
        let back = try SIPToXMPP(Self.mappings).notify(notify).value.presences
        #expect(back.first?.from?.resourcepart == resource)
        #expect(back.first?.show == .away)
    }

    @Test("addresses that must not cross are refused with a condition the tables map")
    func refusals() throws {
        let mapper = AddressMapper(Self.mappings)
        #expect(throws: TranslationRefusal.self) { try mapper.jid(#require(SIPURI("sips:a@b.example"))) }
        #expect(throws: TranslationRefusal.self) { try mapper.jid(#require(SIPURI("tel:+15551234"))) }
        let nul = try #require(SIPURI("sip:a%00b@example.com"))
        #expect { try mapper.jid(nul) } throws: { ($0 as? TranslationRefusal)?.error.condition == .jidMalformed }
    }

    @Test("a mapping set without the identity row refuses unlisted domains")
    func domainMap() throws {
        var files = try MappingDirectory.read(Golden.repositoryRoot.appendingPathComponent("Mappings").path)
        files["domains.tsv"] = "sip_domain\txmpp_domain\tref\tlossy\nlync.example.com\txmpp.example.com\ttest\tno\n"
        let set = try MappingSet(files: files)
        let mapper = AddressMapper(set)
        #expect(try mapper.jid(#require(SIPURI("sip:alice@lync.example.com"))).value.description == "alice@xmpp.example.com")
        #expect(try mapper.sipURI(JID(parsing: "alice@xmpp.example.com")).value.description == "sip:alice@lync.example.com")
        #expect(throws: TranslationRefusal.self) { try mapper.jid(#require(SIPURI("sip:alice@elsewhere.example.com"))) }
    }
}
