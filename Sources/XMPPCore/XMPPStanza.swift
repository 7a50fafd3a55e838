import XMLCore

/// One of the three stanza kinds (RFC 6120 §8).
public enum XMPPStanza: Hashable, Sendable {
    case message(XMPPMessage)
    case presence(XMPPPresence)
    case iq(XMPPIQ)

    /// Reads a top-level element of the content namespace as a stanza.
    public init(element: XMLElement) throws(StanzaParseError) {
        switch element.name {
        case "message": self = .message(try XMPPMessage(element: element))
        case "presence": self = .presence(try XMPPPresence(element: element))
        case "iq": self = .iq(try XMPPIQ(element: element))
        default: throw .notAStanza(element.name)
        }
    }

    public func element(namespace: String = XMPPNamespace.server) -> XMLElement {
        switch self {
        case .message(let message): message.element(namespace: namespace)
        case .presence(let presence): presence.element(namespace: namespace)
        case .iq(let iq): iq.element(namespace: namespace)
        }
    }

    public var from: JID? {
        switch self {
        case .message(let s): s.from
        case .presence(let s): s.from
        case .iq(let s): s.from
        }
    }

    public var to: JID? {
        switch self {
        case .message(let s): s.to
        case .presence(let s): s.to
        case .iq(let s): s.to
        }
    }

    public var id: String? {
        switch self {
        case .message(let s): s.id
        case .presence(let s): s.id
        case .iq(let s): s.id
        }
    }

    /// Wire text inside a stream whose content namespace is `namespace`.
    public func serialized(namespace: String = XMPPNamespace.server) -> String {
        XMLSerializer.string(element(namespace: namespace), in: XMPPStreamHeader.context(namespace))
    }
}

/// Why an element is not a usable stanza; `stanzaError` is the answer to its sender.
public enum StanzaParseError: Error, Hashable, Sendable, CustomStringConvertible {
    case notAStanza(String)
    case invalidJID(attribute: String, JIDError)
    case invalidType(String)
    case missingAttribute(String)
    case invalidContent(String)

    public var stanzaError: StanzaError {
        switch self {
        case .invalidJID(_, let error): StanzaError(.jidMalformed, text: error.description)
        case .notAStanza, .invalidType, .missingAttribute, .invalidContent: StanzaError(.badRequest, text: description)
        }
    }

    public var description: String {
        switch self {
        case .notAStanza(let name): "<\(name)/> is not a stanza"
        case .invalidJID(let attribute, let error): "'\(attribute)' is not a JID: \(error)"
        case .invalidType(let type): "unknown type '\(type)'"
        case .missingAttribute(let name): "missing '\(name)'"
        case .invalidContent(let detail): detail
        }
    }
}

/// Attributes every stanza has (RFC 6120 §8.1).
struct StanzaEnvelope {
    var from: JID?
    var to: JID?
    var id: String?
    var type: String?
    var language: String?

    init(_ element: XMLElement) throws(StanzaParseError) {
        from = try Self.jid(element, "from")
        to = try Self.jid(element, "to")
        id = element.attribute("id")
        type = element.attribute("type")
        language = element.language
    }

    private static func jid(_ element: XMLElement, _ name: String) throws(StanzaParseError) -> JID? {
        guard let value = element.attribute(name) else { return nil }
        do {
            return try JID(parsing: value)
        } catch {
            throw .invalidJID(attribute: name, error)
        }
    }

    static func write(_ element: inout XMLElement, from: JID?, to: JID?, id: String?, type: String?, language: String?) {
        if let from { element.setAttribute("from", to: from.description) }
        if let to { element.setAttribute("to", to: to.description) }
        if let id { element.setAttribute("id", to: id) }
        if let type { element.setAttribute("type", to: type) }
        if let language { element.language = language }
    }
}

func localizedText(_ element: XMLElement) -> XMPPLocalizedText {
    XMPPLocalizedText(element.text, language: element.language)
}

func localizedElement(_ name: String, _ text: XMPPLocalizedText, namespace: String) -> XMLElement {
    var element = XMLElement(name, namespace: namespace, text: text.text)
    if let language = text.language { element.language = language }
    return element
}

/// `<message/>` (RFC 6121 §5).
public struct XMPPMessage: Hashable, Sendable {
    /// §5.2.2: the closed set of message types.
    public enum MessageType: String, Hashable, Sendable, CaseIterable {
        case chat, error, groupchat, headline, normal
    }

    public var from: JID?
    public var to: JID?
    public var id: String?
    /// As written; `nil` when absent, which means `normal` (§5.2.2).
    public var type: MessageType?
    public var language: String?
    public var bodies: [XMPPLocalizedText]
    public var subjects: [XMPPLocalizedText]
    public var thread: String?
    public var threadParent: String?
    public var error: StanzaError?
    /// Extension elements (chat states, receipts, XHTML-IM, delay, ...), in order.
    public var extensions: [XMLElement]

    public init(
        from: JID? = nil, to: JID? = nil, id: String? = nil, type: MessageType? = nil, language: String? = nil,
        body: String? = nil, subject: String? = nil, thread: String? = nil, extensions: [XMLElement] = []
    ) {
        self.from = from
        self.to = to
        self.id = id
        self.type = type
        self.language = language
        self.bodies = body.map { [XMPPLocalizedText($0)] } ?? []
        self.subjects = subject.map { [XMPPLocalizedText($0)] } ?? []
        self.thread = thread
        self.threadParent = nil
        self.error = nil
        self.extensions = extensions
    }

    /// The effective type: unknown or absent types are `normal` (§5.2.2).
    public var effectiveType: MessageType { type ?? .normal }

    /// The body in the stanza's language, or the first one.
    public var body: String? { bodies.preferred(for: language)?.text }
    public var subject: String? { subjects.preferred(for: language)?.text }

    /// The first extension element with this name and namespace.
    public func extensionElement(_ name: String, namespace: String) -> XMLElement? {
        extensions.first { $0.name == name && $0.namespace == namespace }
    }

    public init(element: XMLElement) throws(StanzaParseError) {
        guard element.name == "message" else { throw .notAStanza(element.name) }
        let envelope = try StanzaEnvelope(element)
        self.init(from: envelope.from, to: envelope.to, id: envelope.id, language: envelope.language)
        // §5.2.2: an unknown type is treated as normal, not refused.
        type = envelope.type.flatMap(MessageType.init(rawValue:)) ?? (envelope.type == nil ? nil : .normal)
        for child in element.elements {
            if child.namespace == element.namespace {
                switch child.name {
                case "body": bodies.append(localizedText(child)); continue
                case "subject": subjects.append(localizedText(child)); continue
                case "thread":
                    thread = child.text
                    threadParent = child.attribute("parent")
                    continue
                case "error": error = StanzaError(element: child); continue
                default: break
                }
            }
            extensions.append(child)
        }
    }

    public func element(namespace: String = XMPPNamespace.server) -> XMLElement {
        var element = XMLElement("message", namespace: namespace)
        StanzaEnvelope.write(&element, from: from, to: to, id: id, type: type?.rawValue, language: language)
        for subject in subjects { element.append(localizedElement("subject", subject, namespace: namespace)) }
        for body in bodies { element.append(localizedElement("body", body, namespace: namespace)) }
        if let thread {
            var threadElement = XMLElement("thread", namespace: namespace, text: thread)
            if let threadParent { threadElement.setAttribute("parent", to: threadParent) }
            element.append(threadElement)
        }
        for child in extensions { element.append(child) }
        if let error { element.append(error.element(namespace: namespace)) }
        return element
    }
}

/// `<presence/>` (RFC 6121 §4).
public struct XMPPPresence: Hashable, Sendable {
    /// RFC 6121 §4.7.1 types; absence means available.
    public enum PresenceType: String, Hashable, Sendable, CaseIterable {
        case error, probe, subscribe, subscribed, unavailable, unsubscribe, unsubscribed
    }

    /// §4.7.2.1: the closed set of `<show/>` values.
    public enum Show: String, Hashable, Sendable, CaseIterable {
        case away, chat, dnd, xa
    }

    public var from: JID?
    public var to: JID?
    public var id: String?
    /// `nil` for available presence.
    public var type: PresenceType?
    public var language: String?
    public var show: Show?
    public var statuses: [XMPPLocalizedText]
    /// -128...127 (§4.7.2.3); `nil` when absent (meaning 0).
    public var priority: Int8?
    public var error: StanzaError?
    public var extensions: [XMLElement]

    public init(
        from: JID? = nil, to: JID? = nil, id: String? = nil, type: PresenceType? = nil, show: Show? = nil,
        status: String? = nil, priority: Int8? = nil, extensions: [XMLElement] = []
    ) {
        self.from = from
        self.to = to
        self.id = id
        self.type = type
        self.language = nil
        self.show = show
        self.statuses = status.map { [XMPPLocalizedText($0)] } ?? []
        self.priority = priority
        self.error = nil
        self.extensions = extensions
    }

    public var status: String? { statuses.preferred(for: language)?.text }
    public var isAvailable: Bool { type == nil }

    public init(element: XMLElement) throws(StanzaParseError) {
        guard element.name == "presence" else { throw .notAStanza(element.name) }
        let envelope = try StanzaEnvelope(element)
        self.init(from: envelope.from, to: envelope.to, id: envelope.id)
        language = envelope.language
        if let type = envelope.type {
            guard let known = PresenceType(rawValue: type) else { throw .invalidType(type) }
            self.type = known
        }
        for child in element.elements {
            if child.namespace == element.namespace {
                switch child.name {
                case "show":
                    guard let show = Show(rawValue: child.text.trimmingXMLSpace()) else {
                        throw .invalidContent("unknown <show/> value '\(child.text)'")
                    }
                    self.show = show
                    continue
                case "status": statuses.append(localizedText(child)); continue
                case "priority":
                    guard let value = Int8(child.text.trimmingXMLSpace()) else {
                        throw .invalidContent("<priority/> must be -128...127")
                    }
                    priority = value
                    continue
                case "error": error = StanzaError(element: child); continue
                default: break
                }
            }
            extensions.append(child)
        }
    }

    public func element(namespace: String = XMPPNamespace.server) -> XMLElement {
        var element = XMLElement("presence", namespace: namespace)
        StanzaEnvelope.write(&element, from: from, to: to, id: id, type: type?.rawValue, language: language)
        if let show { element.append(XMLElement("show", namespace: namespace, text: show.rawValue)) }
        for status in statuses { element.append(localizedElement("status", status, namespace: namespace)) }
        if let priority { element.append(XMLElement("priority", namespace: namespace, text: String(priority))) }
        for child in extensions { element.append(child) }
        if let error { element.append(error.element(namespace: namespace)) }
        return element
    }
}

/// `<iq/>` (RFC 6120 §8.2.3).
public struct XMPPIQ: Hashable, Sendable {
    public enum IQType: String, Hashable, Sendable, CaseIterable {
        case get, set, result, error
    }

    public var from: JID?
    public var to: JID?
    public var id: String
    public var type: IQType
    public var language: String?
    /// The single child of a get or set, the optional child of a result.
    public var payload: XMLElement?
    public var error: StanzaError?

    public init(from: JID? = nil, to: JID? = nil, id: String, type: IQType, payload: XMLElement? = nil) {
        self.from = from
        self.to = to
        self.id = id
        self.type = type
        self.payload = payload
    }

    public init(element: XMLElement) throws(StanzaParseError) {
        guard element.name == "iq" else { throw .notAStanza(element.name) }
        let envelope = try StanzaEnvelope(element)
        guard let id = envelope.id else { throw .missingAttribute("id") }
        guard let typeName = envelope.type else { throw .missingAttribute("type") }
        guard let type = IQType(rawValue: typeName) else { throw .invalidType(typeName) }
        self.init(from: envelope.from, to: envelope.to, id: id, type: type)
        language = envelope.language
        var payloads: [XMLElement] = []
        for child in element.elements {
            if child.name == "error", child.namespace == element.namespace {
                error = StanzaError(element: child)
            } else {
                payloads.append(child)
            }
        }
        // §8.2.3: get and set carry exactly one payload; a result zero or one.
        switch type {
        case .get, .set:
            guard payloads.count == 1 else { throw .invalidContent("an iq of type \(type) needs exactly one child") }
        case .result:
            guard payloads.count <= 1 else { throw .invalidContent("an iq result has at most one child") }
        case .error:
            break
        }
        payload = payloads.first
    }

    public func element(namespace: String = XMPPNamespace.server) -> XMLElement {
        var element = XMLElement("iq", namespace: namespace)
        StanzaEnvelope.write(&element, from: from, to: to, id: id, type: type.rawValue, language: language)
        if let payload { element.append(payload) }
        if let error { element.append(error.element(namespace: namespace)) }
        return element
    }

    /// The result answering this get or set (§8.2.3), addressed back to the sender.
    public func result(payload: XMLElement? = nil) -> XMPPIQ {
        XMPPIQ(from: to, to: from, id: id, type: .result, payload: payload)
    }

    /// The error answering this iq, echoing the payload as §8.3.1 allows.
    public func errorReply(_ error: StanzaError) -> XMPPIQ {
        var reply = XMPPIQ(from: to, to: from, id: id, type: .error, payload: payload)
        reply.error = error
        return reply
    }
}
