import XMLCore

/// What the gateway answers itself for the domains it serves: XEP-0030 disco#info on the domain
/// (identity `gateway/sip`, features), XEP-0199 pings to the domain or any of its addresses, and
/// `service-unavailable` for any other request to the bare domain (RFC 6120 §8.4).
public struct ServedDomainResponder: Sendable {
    public var servedDomains: Set<String>
    /// The features advertised in disco#info.
    public var features: [String]
    public var name: String

    public init(servedDomains: Set<String>, name: String = "Stox SIP gateway") {
        self.servedDomains = servedDomains
        self.name = name
        self.features = [
            XMPPNamespace.discoInfo, XMPPNamespace.ping, XMPPNamespace.receipts, XMPPNamespace.chatStates,
        ]
    }

    /// The answer to `element`, if the gateway answers it itself; `nil` passes it on.
    public func answer(_ element: XMLElement) -> XMLElement? {
        guard element.name == "iq", let iq = try? XMPPIQ(element: element), let to = iq.to,
            servedDomains.contains(to.domainpart), iq.type == .get || iq.type == .set
        else { return nil }
        let namespace = element.namespace
        if iq.type == .get, let payload = iq.payload, payload.name == "ping", payload.namespace == XMPPNamespace.ping {
            return iq.result().element(namespace: namespace)
        }
        guard to.isDomain else { return nil }
        if iq.type == .get, let payload = iq.payload, payload.name == "query", payload.namespace == XMPPNamespace.discoInfo,
            payload.attribute("node") == nil
        {
            var query = XMLElement("query", namespace: XMPPNamespace.discoInfo)
            // XEP-0030 §3.1; the registrar's gateway/sip identity (disco-categories).
            query.append(XMLElement("identity", namespace: XMPPNamespace.discoInfo, attributes: ["category": "gateway", "type": "sip", "name": name]))
            for feature in features { query.append(XMLElement("feature", namespace: XMPPNamespace.discoInfo, attributes: ["var": feature])) }
            return iq.result(payload: query).element(namespace: namespace)
        }
        return iq.errorReply(StanzaError(.serviceUnavailable)).element(namespace: namespace)
    }
}
