import XMLCore

/// XEP-0220 elements: `<db:result/>` and `<db:verify/>`.
public struct DialbackElement: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable { case result, verify }
    public enum Outcome: String, Hashable, Sendable { case valid, invalid, error }

    public var kind: Kind
    public var from: String
    public var to: String
    /// The stream id (`db:verify` only).
    public var id: String?
    /// Absent on a request.
    public var type: Outcome?
    /// The key (requests only).
    public var key: String?
    /// The condition of a `type='error'` (XEP-0220 §2.5).
    public var errorCondition: StanzaError.Condition?

    public init(kind: Kind, from: String, to: String, id: String? = nil, type: Outcome? = nil, key: String? = nil, errorCondition: StanzaError.Condition? = nil) {
        self.kind = kind
        self.from = from
        self.to = to
        self.id = id
        self.type = type
        self.key = key
        self.errorCondition = errorCondition
    }

    public init?(element: XMLElement) {
        guard element.namespace == XMPPNamespace.dialback, let kind = Kind(rawValue: element.name),
            let from = element.attribute("from"), let to = element.attribute("to")
        else { return nil }
        let type = element.attribute("type").flatMap(Outcome.init(rawValue:))
        if element.attribute("type") != nil, type == nil { return nil }
        let key = element.text.trimmingXMLSpace()
        var condition: StanzaError.Condition? = nil
        if type == .error, let error = element.firstChild("error") {
            condition = StanzaError(element: error).condition
        }
        self.init(kind: kind, from: from.lowercased(), to: to.lowercased(), id: element.attribute("id"), type: type,
                  key: key.isEmpty ? nil : key, errorCondition: condition)
    }

    public var element: XMLElement {
        var element = XMLElement(kind.rawValue, namespace: XMPPNamespace.dialback, attributes: ["from": from, "to": to])
        if let id { element.setAttribute("id", to: id) }
        if let type { element.setAttribute("type", to: type.rawValue) }
        if let key { element.append(text: key) }
        if let errorCondition { element.append(StanzaError(errorCondition).element(namespace: XMPPNamespace.server)) }
        return element
    }
}

/// Why a negotiation ended without a usable stream; for logs and for bouncing queued stanzas.
public struct NegotiationFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// The stanza error queued stanzas are bounced with (XEP-0220 §2.3: internal-server-error
    /// after `invalid`, remote-server-timeout after `error`).
    public var bounce: StanzaError.Condition
    public var reason: String

    public init(_ bounce: StanzaError.Condition, _ reason: String) {
        self.bounce = bounce
        self.reason = reason
    }

    public var description: String { "\(bounce.rawValue): \(reason)" }
}

/// How the peer proved its domain.
public enum AuthenticationMethod: String, Hashable, Sendable {
    case saslExternal = "sasl-external"
    case dialback
    /// XEP-0344: a dialback request answered from the certificate alone.
    case dialbackByCertificate = "dialback-by-certificate"
}
