import Foundation
import Interworking
import NIOCore
import SIPCore
import XMLCore
import XMPPCore

/// The bodies of the libFuzzer targets. Each accepts any bytes: a peer's input may produce a
/// value or a typed error, never a crash or a hang. Each also checks an invariant whose failure
/// is our bug, and traps (so libFuzzer keeps the input) when it breaks. The regression tests run
/// every saved input through the same functions.
public enum FuzzTargets {
    /// SIP: a datagram parses or throws `SIPParseError`; what parses serializes and parses back to
    /// the same message; the stream framer cuts the same bytes without trouble.
    public static func sipParser(_ data: UnsafeRawBufferPointer) {
        let parser = SIPParser()
        do {
            _ = try parser.parse(datagram: data)
        } catch {
            // What the edge answers to a request that does not parse: a 400 that is itself a
            // well-formed response, or nothing.
            if let response = SIPBadRequest.response(to: Array(data), error: error) {
                guard case .response(let reread)? = try? parser.parse(datagram: response.serialized()) else {
                    preconditionFailure("a 400 built from a broken request did not parse as a response")
                }
                precondition(reread.statusCode == 400, "the 400 changed in a round trip")
            }
        }
        if let message = try? parser.parse(datagram: data) {
            let written = message.serialized()
            guard let again = try? parser.parse(datagram: written) else {
                preconditionFailure("a parsed SIP message did not re-parse after serialization")
            }
            precondition(
                again.removing(.contentLength) == message.removing(.contentLength),
                "SIP round trip changed the message")
            // Typed accessors and every translation toward XMPP must not trap on peer data either.
            touchAccessors(message)
            translate(message)
        }
        var buffer = ByteBuffer(bytes: data)
        var framer = SIPStreamFramer(limits: .init(maxHeaderBytes: 4096, maxHeaderCount: 64, maxBodyBytes: 4096))
        for _ in 0..<64 {
            guard let frame = try? framer.next(from: &buffer) else { break }
            if case .message(let message) = frame { touchAccessors(message) }
        }
    }

    /// XML streams: parsed in one piece and in two pieces split at a data-chosen point, the
    /// events agree, or both refuse the input; every element serializes and re-parses to itself.
    /// (When an input holds two faults, which one expat reports first can depend on where a
    /// chunk ends, since it delivers character data eagerly: the kinds may differ.)
    public static func xmlStream(_ data: UnsafeRawBufferPointer) {
        let header = Array("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>".utf8)
        let input = header + Array(data)
        let limits = XMLParserLimits(maxDepth: 16, maxElementBytes: 8192, maxAttributes: 16)
        let whole = Result { () throws(XMLParseError) in try XMLStreamParser(limits: limits).feed(input) }
        let split = header.count + (data.isEmpty ? 0 : Int(data[0]) % (data.count + 1))
        let pieces = Result { () throws(XMLParseError) -> [XMLStreamEvent] in
            let parser = XMLStreamParser(limits: limits)
            var events: [XMLStreamEvent] = []
            try parser.feed(Array(input[..<split]), into: &events)
            try parser.feed(Array(input[split...]), into: &events)
            return events
        }
        switch (whole, pieces) {
        case (.success(let a), .success(let b)):
            precondition(a == b, "XML events depend on how the bytes were split")
            for case .element(let element) in a {
                let text = XMLSerializer.string(element, in: .init(defaultNamespace: "jabber:server"))
                let reread = try? XMLStreamParser().feed(header + Array(text.utf8))
                precondition(reread?.last == .element(element), "XML serializer output did not re-parse to the same element")
                if let stanza = try? XMPPStanza(element: element) {
                    translate(stanza)
                    let again = try? XMLStreamParser().feed(header + Array(stanza.serialized().utf8))
                    guard case .element(let reparsed)? = again?.last, let restanza = try? XMPPStanza(element: reparsed) else {
                        preconditionFailure("a typed stanza did not survive serialization")
                    }
                    precondition(restanza == stanza, "stanza round trip changed the stanza")
                }
            }
        case (.failure, .failure):
            break
        default:
            preconditionFailure("XML verdict depends on how the bytes were split")
        }
    }

    /// PIDF: a body parses or throws `SIPBodyError`; what parses writes and reads back equal.
    public static func pidf(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        if let document = try? PIDFDocument(bytes: bytes) {
            guard let reread = try? PIDFDocument(bytes: document.serialized()) else {
                preconditionFailure("a parsed PIDF document did not re-parse after serialization")
            }
            precondition(reread == document, "PIDF round trip changed the document")
        }
        _ = try? MSRTCCategories(bytes: bytes)
        _ = try? IsComposingDocument(bytes: bytes)
    }

    /// The shipped mapping tables, read once from the repository.
    static let mappings: MappingSet? = try? MappingDirectory.load(
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Mappings").path)

    /// Runs every SIP → XMPP translation that could apply to `message`; refusals are fine.
    private static func translate(_ message: SIPMessage) {
        guard let mappings else { preconditionFailure("the shipped Mappings/ do not load") }
        let toXMPP = SIPToXMPP(mappings)
        switch message {
        case .request(let request):
            _ = try? toXMPP.message(request)
            _ = try? toXMPP.message(request, session: true)
            _ = try? toXMPP.sessionInvite(request)
            _ = try? toXMPP.notify(request)
            _ = try? toXMPP.subscription(request)
        case .response(let response):
            _ = toXMPP.error(response)
            _ = toXMPP.error(response, senderAuthorized: false)
            _ = toXMPP.subscriptionOutcome(response)
        }
    }

    /// Runs every XMPP → SIP translation that could apply to `stanza`; refusals are fine.
    private static func translate(_ stanza: XMPPStanza) {
        guard let mappings else { preconditionFailure("the shipped Mappings/ do not load") }
        let toSIP = XMPPToSIP(mappings)
        switch stanza {
        case .message(let message):
            _ = try? toSIP.message(message)
            _ = try? toSIP.message(message, session: true)
            if let error = message.error, let from = message.from { _ = toSIP.response(for: error, failedRecipient: from) }
        case .presence(let presence):
            _ = try? toSIP.presence([presence])
            _ = try? toSIP.presence([presence], format: .msrtc)
            if presence.type != nil, presence.type != .unavailable { _ = try? toSIP.subscription(presence) }
        case .iq(let iq):
            if let error = iq.error, let from = iq.from { _ = toSIP.response(for: error, failedRecipient: from) }
        }
    }

    private static func touchAccessors(_ message: SIPMessage) {
        func touch(_ m: some SIPMessageProtocol) {
            _ = (m.via, m.from, m.to, m.cseq, m.contacts, m.routes, m.recordRoutes, m.contentType, m.accept)
            _ = (m.event, m.subscriptionState, m.expires, m.minExpires, m.supported, m.require, m.allow)
            _ = (m.wwwAuthenticate, m.authorization, m.sipETag, m.sipIfMatch, m.maxForwards, m.hasWildcardContact)
            for field in m.headers { _ = m.headers.values(field.name) }
        }
        switch message {
        case .request(let request):
            touch(request)
            _ = request.makeResponse(400, toTag: "x").serialized()
            _ = request.uri.decodedUser
        case .response(let response): touch(response)
        }
    }
}
