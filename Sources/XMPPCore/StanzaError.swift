import XMLCore

/// A stanza error (RFC 6120 §8.3): a type, one defined condition, optional text and an optional
/// application-specific condition.
public struct StanzaError: Error, Hashable, Sendable, CustomStringConvertible {
    /// §8.3.2: the closed set of error types.
    public enum ErrorType: String, Hashable, Sendable, CaseIterable {
        case auth, cancel, `continue`, modify, wait
    }

    /// §8.3.3: the closed set of defined conditions.
    public enum Condition: String, Hashable, Sendable, CaseIterable {
        case badRequest = "bad-request"
        case conflict
        case featureNotImplemented = "feature-not-implemented"
        case forbidden
        case gone
        case internalServerError = "internal-server-error"
        case itemNotFound = "item-not-found"
        case jidMalformed = "jid-malformed"
        case notAcceptable = "not-acceptable"
        case notAllowed = "not-allowed"
        case notAuthorized = "not-authorized"
        case policyViolation = "policy-violation"
        case recipientUnavailable = "recipient-unavailable"
        case redirect
        case registrationRequired = "registration-required"
        case remoteServerNotFound = "remote-server-not-found"
        case remoteServerTimeout = "remote-server-timeout"
        case resourceConstraint = "resource-constraint"
        case serviceUnavailable = "service-unavailable"
        case subscriptionRequired = "subscription-required"
        case undefinedCondition = "undefined-condition"
        case unexpectedRequest = "unexpected-request"

        /// The type each condition's §8.3.3 subsection shows in its example, used when a sender
        /// states none.
        public var defaultType: ErrorType {
            switch self {
            case .badRequest, .jidMalformed, .notAcceptable, .policyViolation, .redirect: .modify
            case .forbidden, .notAuthorized, .registrationRequired, .subscriptionRequired: .auth
            case .conflict, .featureNotImplemented, .gone, .internalServerError, .itemNotFound, .notAllowed,
                .remoteServerNotFound, .serviceUnavailable, .undefinedCondition:
                .cancel
            case .recipientUnavailable, .remoteServerTimeout, .resourceConstraint, .unexpectedRequest: .wait
            }
        }
    }

    public var type: ErrorType
    public var condition: Condition
    public var text: String?
    public var textLanguage: String?
    /// The entity that returned the error (§8.3.2 `by`).
    public var by: String?
    /// The alternate address of `<gone/>` and `<redirect/>`.
    public var alternateAddress: String?
    public var applicationCondition: XMLElement?

    public init(
        _ condition: Condition, type: ErrorType? = nil, text: String? = nil, textLanguage: String? = nil,
        by: String? = nil, alternateAddress: String? = nil, applicationCondition: XMLElement? = nil
    ) {
        self.condition = condition
        self.type = type ?? condition.defaultType
        self.text = text
        self.textLanguage = textLanguage
        self.by = by
        self.alternateAddress = alternateAddress
        self.applicationCondition = applicationCondition
    }

    public var description: String {
        "\(type.rawValue)/\(condition.rawValue)" + (text.map { ": \($0)" } ?? "")
    }

    /// Reads an `<error/>` child. A missing or unknown condition becomes `undefined-condition`,
    /// and a missing or unknown type takes the condition's default, so a peer's sloppy error
    /// still reaches the sender.
    public init(element: XMLElement) {
        var condition = Condition.undefinedCondition
        var alternate: String? = nil
        var text: String? = nil
        var language: String? = nil
        var application: XMLElement? = nil
        for child in element.elements {
            if child.namespace == XMPPNamespace.stanzaErrors {
                if child.name == "text" {
                    text = child.text
                    language = child.language
                } else if let known = Condition(rawValue: child.name) {
                    condition = known
                    let target = child.text
                    if !target.isEmpty { alternate = target }
                }
            } else if application == nil {
                application = child
            }
        }
        self.init(
            condition, type: element.attribute("type").flatMap(ErrorType.init(rawValue:)), text: text,
            textLanguage: language, by: element.attribute("by"), alternateAddress: alternate,
            applicationCondition: application)
    }

    /// The `<error/>` element, in the stanza's content namespace.
    public func element(namespace: String) -> XMLElement {
        var error = XMLElement("error", namespace: namespace, attributes: ["type": type.rawValue])
        if let by { error.setAttribute("by", to: by) }
        var condition = XMLElement(self.condition.rawValue, namespace: XMPPNamespace.stanzaErrors)
        if let alternateAddress { condition.append(text: alternateAddress) }
        error.append(condition)
        if let text {
            var textElement = XMLElement("text", namespace: XMPPNamespace.stanzaErrors, text: text)
            if let textLanguage { textElement.language = textLanguage }
            error.append(textElement)
        }
        if let applicationCondition { error.append(applicationCondition) }
        return error
    }
}
