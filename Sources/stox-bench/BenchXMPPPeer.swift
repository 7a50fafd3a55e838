import Foundation
import NIOCore
import NIOPosix
import XMLCore
import XMPPCore
import XMPPFederation

/// The XMPP side of the bench: a server for `xmpp.bench` that federates with the gateway over
/// plain s2s with dialback and XEP-0198, both sinking what the gateway sends (acknowledged at
/// once, as a server with nothing to store would) and sourcing stanzas toward SIP users. It is
/// Stox's own s2s stack, so its cost per stanza is known (the `s2s` bench measures it alone)
/// and it shares the bench's single event loop with the SIP load client: no locks, no hops.
final class BenchXMPPPeer: @unchecked Sendable {
    static let domain = "xmpp.bench"
    let loop: any EventLoop
    private(set) var service: S2SService!
    private(set) var port = 0
    /// Every stanza the gateway sends, on `loop`.
    var onStanza: ((XMLElement) -> Void)?

    init(loop: any EventLoop) {
        self.loop = loop
    }

    func start(gatewayPort: Int, extraDomains: [String] = []) async throws {
        var configuration = S2SConfiguration(
            servedDomains: Set([Self.domain] + extraDomains), dialbackSecret: "stox-bench-peer-secret",
            defaultPolicy: PeerPolicy(tls: .optional, allowDialback: true, requireValidCertificate: false),
            routes: ["sip.bench": (host: "127.0.0.1", port: gatewayPort)], listenPort: 0)
        configuration.streamManagement = true
        // A sink, not a guard: the gateway may send as fast as it can.
        configuration.peerRate = (10_000_000, 40_000_000)
        service = S2SService(configuration: configuration, eventLoop: loop, onStanza: { [self] element, handled in
            onStanza?(element)
            handled()
        })
        port = try await service.start().get()
    }

    func send(_ element: XMLElement) { service.send(element) }

    func shutdown() async {
        try? await service.shutdown().get()
    }

    /// A chat message from an XMPP user to a SIP user, carrying `sequence` like the SIP load.
    static func message(from: String, to: String, sequence: Int) -> XMLElement {
        var message = XMLElement("message", namespace: XMPPNamespace.server, attributes: [
            "from": from, "to": to, "type": "chat", "id": "b" + SIPLoadClient.fixed(sequence),
        ])
        message.append(XMLElement("body", namespace: XMPPNamespace.server,
                                  text: "Load message #" + SIPLoadClient.fixed(sequence) + ": wherefore art thou, Romeo? Deny thy father."))
        return message
    }

    static func presence(from: String, to: String, type: String? = nil, show: String? = nil) -> XMLElement {
        var attributes = [XMLAttribute("from", value: from), XMLAttribute("to", value: to)]
        if let type { attributes.append(XMLAttribute("type", value: type)) }
        var presence = XMLElement("presence", namespace: XMPPNamespace.server, attributes: attributes)
        if let show { presence.append(XMLElement("show", namespace: XMPPNamespace.server, text: show)) }
        return presence
    }
}
