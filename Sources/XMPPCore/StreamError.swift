import XMLCore

/// A stream error (RFC 6120 §4.9): sent as `<stream:error/>` before the stream is closed.
public struct StreamError: Error, Hashable, Sendable, CustomStringConvertible {
    /// §4.9.3: the closed set of defined conditions.
    public enum Condition: String, Hashable, Sendable, CaseIterable {
        case badFormat = "bad-format"
        case badNamespacePrefix = "bad-namespace-prefix"
        case conflict
        case connectionTimeout = "connection-timeout"
        case hostGone = "host-gone"
        case hostUnknown = "host-unknown"
        case improperAddressing = "improper-addressing"
        case internalServerError = "internal-server-error"
        case invalidFrom = "invalid-from"
        case invalidNamespace = "invalid-namespace"
        case invalidXML = "invalid-xml"
        case notAuthorized = "not-authorized"
        case notWellFormed = "not-well-formed"
        case policyViolation = "policy-violation"
        case remoteConnectionFailed = "remote-connection-failed"
        case reset
        case resourceConstraint = "resource-constraint"
        case restrictedXML = "restricted-xml"
        case seeOtherHost = "see-other-host"
        case systemShutdown = "system-shutdown"
        case undefinedCondition = "undefined-condition"
        case unsupportedEncoding = "unsupported-encoding"
        case unsupportedFeature = "unsupported-feature"
        case unsupportedStanzaType = "unsupported-stanza-type"
        case unsupportedVersion = "unsupported-version"
    }

    public var condition: Condition
    public var text: String?
    public var applicationCondition: XMLElement?

    public init(_ condition: Condition, text: String? = nil, applicationCondition: XMLElement? = nil) {
        self.condition = condition
        self.text = text
        self.applicationCondition = applicationCondition
    }

    /// The stream error that answers a refused byte stream.
    public init(_ error: XMLParseError) {
        let condition: Condition =
            switch error.kind {
            case .notWellFormed, .incompleteDocument: .notWellFormed
            case .restrictedXML: .restrictedXML
            case .unsupportedEncoding: .unsupportedEncoding
            case .depthLimitExceeded, .elementTooLarge, .tooManyAttributes: .policyViolation
            case .textAtStreamLevel: .badFormat
            }
        self.init(condition, text: error.detail)
    }

    public var description: String { condition.rawValue + (text.map { ": \($0)" } ?? "") }

    /// `<stream:error>` in the streams namespace.
    public var element: XMLElement {
        var error = XMLElement("error", namespace: XMPPNamespace.streams)
        error.append(XMLElement(condition.rawValue, namespace: XMPPNamespace.streamErrors))
        if let text { error.append(XMLElement("text", namespace: XMPPNamespace.streamErrors, text: text)) }
        if let applicationCondition { error.append(applicationCondition) }
        return error
    }

    /// Reads a received `<stream:error/>`.
    public init?(element: XMLElement) {
        guard element.name == "error", element.namespace == XMPPNamespace.streams else { return nil }
        var condition = Condition.undefinedCondition
        var text: String? = nil
        var application: XMLElement? = nil
        for child in element.elements {
            if child.namespace == XMPPNamespace.streamErrors {
                if child.name == "text" { text = child.text } else if let known = Condition(rawValue: child.name) { condition = known }
            } else {
                application = child
            }
        }
        self.init(condition, text: text, applicationCondition: application)
    }
}
