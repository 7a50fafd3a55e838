import XMLCore

/// `<stream:features/>` (RFC 6120 §4.3.2) as s2s uses it: STARTTLS (§5), SASL mechanisms (§6),
/// dialback (XEP-0220 §2.1 with `<errors/>`), bidi (XEP-0288). Unknown features are kept.
public struct StreamFeatures: Hashable, Sendable {
    public var startTLS: Bool
    public var startTLSRequired: Bool
    public var saslMechanisms: [String]
    public var dialback: Bool
    /// The peer can take dialback errors (XEP-0220 §2.5).
    public var dialbackErrors: Bool
    public var bidi: Bool
    public var others: [XMLElement]

    public init(
        startTLS: Bool = false, startTLSRequired: Bool = false, saslMechanisms: [String] = [], dialback: Bool = false,
        dialbackErrors: Bool = false, bidi: Bool = false, others: [XMLElement] = []
    ) {
        self.startTLS = startTLS
        self.startTLSRequired = startTLSRequired
        self.saslMechanisms = saslMechanisms
        self.dialback = dialback
        self.dialbackErrors = dialbackErrors
        self.bidi = bidi
        self.others = others
    }

    /// `nil` if `element` is not `<stream:features/>`.
    public init?(element: XMLElement) {
        guard element.name == "features", element.namespace == XMPPNamespace.streams else { return nil }
        self.init()
        for child in element.elements {
            switch (child.namespace, child.name) {
            case (XMPPNamespace.tls, "starttls"):
                startTLS = true
                startTLSRequired = child.firstChild("required", namespace: XMPPNamespace.tls) != nil
            case (XMPPNamespace.sasl, "mechanisms"):
                saslMechanisms = child.children("mechanism", namespace: XMPPNamespace.sasl).map { $0.text.trimmingXMLSpace() }
            case (XMPPNamespace.dialbackFeature, "dialback"):
                dialback = true
                dialbackErrors = child.firstChild("errors") != nil
            case ("urn:xmpp:features:bidi", "bidi"):
                bidi = true
            default:
                others.append(child)
            }
        }
    }

    public var element: XMLElement {
        var features = XMLElement("features", namespace: XMPPNamespace.streams)
        if startTLS {
            var tls = XMLElement("starttls", namespace: XMPPNamespace.tls)
            if startTLSRequired { tls.append(XMLElement("required", namespace: XMPPNamespace.tls)) }
            features.append(tls)
        }
        if !saslMechanisms.isEmpty {
            var mechanisms = XMLElement("mechanisms", namespace: XMPPNamespace.sasl)
            for mechanism in saslMechanisms { mechanisms.append(XMLElement("mechanism", namespace: XMPPNamespace.sasl, text: mechanism)) }
            features.append(mechanisms)
        }
        if dialback {
            var element = XMLElement("dialback", namespace: XMPPNamespace.dialbackFeature)
            if dialbackErrors { element.append(XMLElement("errors", namespace: XMPPNamespace.dialbackFeature)) }
            features.append(element)
        }
        for other in others { features.append(other) }
        return features
    }
}

/// What a peer's TLS certificate proves, as the NIO shell found it: whether the chain validated
/// against the trust store (or configured CA), and the identities it names.
public struct PeerCertificate: Hashable, Sendable {
    public var chainValid: Bool
    /// subjectAltName dNSName entries.
    public var dnsNames: [String]
    /// subjectAltName otherName id-on-xmppAddr entries (RFC 6120 §13.7.1.4).
    public var xmppAddresses: [String]

    public init(chainValid: Bool, dnsNames: [String], xmppAddresses: [String] = []) {
        self.chainValid = chainValid
        self.dnsNames = dnsNames
        self.xmppAddresses = xmppAddresses
    }

    /// Whether the certificate is valid for `domain` (RFC 6125 §6.4): a trusted chain, and a
    /// dNSName or xmppAddr equal to the domain, or a dNSName wildcard `*.` standing for exactly
    /// the left-most label.
    public func isValid(for domain: String) -> Bool {
        guard chainValid else { return false }
        let domain = domain.lowercased()
        if xmppAddresses.contains(where: { $0.lowercased() == domain }) { return true }
        for name in dnsNames.map({ $0.lowercased() }) {
            if name == domain { return true }
            if name.hasPrefix("*."), let dot = domain.firstIndex(of: "."), domain[domain.index(after: dot)...] == name.dropFirst(2),
                domain[..<dot].count > 0
            {
                return true
            }
        }
        return false
    }
}

/// Per-peer-domain policy, secure by default: TLS required, a certificate valid for the peer's
/// domain required, dialback allowed as the authentication where SASL EXTERNAL is not offered.
/// Relax it per peer for legacy servers or Lync/SfB partner presets.
public struct PeerPolicy: Hashable, Sendable {
    public enum TLS: String, Hashable, Sendable, CaseIterable { case required, optional, disabled }

    public var tls: TLS
    public var allowDialback: Bool
    public var requireValidCertificate: Bool

    public init(tls: TLS = .required, allowDialback: Bool = true, requireValidCertificate: Bool = true) {
        self.tls = tls
        self.allowDialback = allowDialback
        self.requireValidCertificate = requireValidCertificate
    }

    public static let secure = PeerPolicy()
}
