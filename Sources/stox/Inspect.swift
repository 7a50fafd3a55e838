import ArgumentParser
import Foundation
import SIPCore
import XMLCore
import XMPPCore

/// `stox inspect sip|xmpp|pidf FILE`: parses a captured message with the gateway's own codecs and
/// prints what they see, or the exact error (kind, header, byte offset) a peer would be answered
/// with. Useful when a partner's traffic is refused.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parse a captured SIP message, XMPP stream or presence body and print the result.")

    enum Kind: String, ExpressibleByArgument, CaseIterable {
        case sip, xmpp, pidf
    }

    @Argument(help: "What the file holds: sip (one message), xmpp (a stream or stanzas), pidf (a presence body).")
    var kind: Kind

    @Argument(help: "The file to read; - for standard input.")
    var file: String

    func run() throws {
        let bytes: [UInt8]
        if file == "-" {
            bytes = Array(FileHandle.standardInput.readDataToEndOfFile())
        } else {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read \(file)")
            }
            bytes = Array(data)
        }
        switch kind {
        case .sip: try inspectSIP(bytes)
        case .xmpp: try inspectXMPP(bytes)
        case .pidf: try inspectPIDF(bytes)
        }
    }

    private func inspectSIP(_ bytes: [UInt8]) throws {
        let message: SIPMessage
        do {
            message = try SIPParser().parse(datagram: bytes)
        } catch {
            print("refused: \(error)")
            throw ExitCode(2)
        }
        func common(_ m: some SIPMessageProtocol) {
            print("call-id: \(m.callID ?? "-")")
            print("cseq: \(m.cseq?.description ?? "-")")
            print("from: \(m.from?.description ?? "-")")
            print("to: \(m.to?.description ?? "-")")
            for (index, via) in m.via.enumerated() { print("via[\(index)]: \(via)") }
            for contact in m.contacts { print("contact: \(contact)") }
            if let type = m.contentType { print("content-type: \(type)") }
            print("body: \(m.body.count) bytes")
        }
        switch message {
        case .request(let request):
            print("request: \(request.method) \(request.uri)")
            common(request)
        case .response(let response):
            print("response: \(response.statusCode) \(response.reasonPhrase)")
            common(response)
        }
    }

    private func inspectXMPP(_ bytes: [UInt8]) throws {
        // A bare stanza is wrapped in an s2s stream header so it can be read as on the wire.
        let prefix = String(decoding: bytes.prefix(200), as: UTF8.self)
        var input = bytes
        if !prefix.contains("<stream:stream") {
            input = Array("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>".utf8) + bytes
        }
        let reader = XMPPStreamReader()
        var events: [XMPPStreamEvent] = []
        do {
            try reader.feed(input, into: &events)
        } catch {
            for event in events { describe(event) }
            print("stream error: \(error.condition.rawValue)\(error.text.map { " (\($0))" } ?? "")")
            throw ExitCode(2)
        }
        for event in events { describe(event) }
    }

    private func describe(_ event: XMPPStreamEvent) {
        switch event {
        case .opened(let header):
            print("stream: from=\(header.from ?? "-") to=\(header.to ?? "-") ns=\(header.contentNamespace)")
        case .closed:
            print("stream closed")
        case .element(let element):
            do {
                let stanza = try XMPPStanza(element: element)
                print("\(element.name): from=\(stanza.from?.description ?? "-") to=\(stanza.to?.description ?? "-") id=\(stanza.id ?? "-")")
            } catch {
                print("<\(element.name)> {\(element.namespace)}: \(error)")
            }
        }
    }

    private func inspectPIDF(_ bytes: [UInt8]) throws {
        do {
            let document = try PIDFDocument(bytes: bytes)
            print("entity: \(document.entity ?? "-")")
            for tuple in document.tuples {
                print("tuple \(tuple.id): basic=\(tuple.basic?.rawValue ?? "-") show=\(tuple.embeddedShow ?? "-") note=\(tuple.notes.preferred?.text ?? "-")")
            }
            for person in document.persons {
                print("person \(person.id ?? "-"): activities=\(person.activities.map(\.name).joined(separator: ","))")
            }
        } catch {
            print("refused: \(error)")
            throw ExitCode(2)
        }
    }
}
