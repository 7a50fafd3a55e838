import XMLCore

/// The opening of an XMPP stream (RFC 6120 §4.7), validated.
public struct XMPPStreamHeader: Hashable, Sendable {
    public var from: String?
    public var to: String?
    public var id: String?
    public var version: String?
    public var language: String?
    /// `jabber:server` for s2s, `jabber:client` for c2s, `jabber:component:accept` for XEP-0114.
    public var contentNamespace: String
    /// Whether `xmlns:db='jabber:server:dialback'` is declared (XEP-0220 §2.1 signals support).
    public var declaresDialback: Bool

    public init(
        from: String? = nil, to: String? = nil, id: String? = nil, version: String? = "1.0", language: String? = nil,
        contentNamespace: String = XMPPNamespace.server, declaresDialback: Bool = false
    ) {
        self.from = from
        self.to = to
        self.id = id
        self.version = version
        self.language = language
        self.contentNamespace = contentNamespace
        self.declaresDialback = declaresDialback
    }

    /// Validates a parsed root start tag (§4.8).
    public init(_ header: XMLStreamHeader) throws(StreamError) {
        // §4.8.1: the root must be <stream> in the streams namespace.
        guard header.name == "stream", header.namespace == XMPPNamespace.streams else {
            throw StreamError(.invalidNamespace, text: "the stream root must be {\(XMPPNamespace.streams)}stream")
        }
        // §4.8.2: the content namespace must be one this kind of stream carries.
        let content = header.defaultNamespace ?? ""
        guard [XMPPNamespace.server, XMPPNamespace.client, XMPPNamespace.componentAccept].contains(content) else {
            throw StreamError(.invalidNamespace, text: "unsupported content namespace '\(content)'")
        }
        self.init(
            from: header.attribute("from"), to: header.attribute("to"), id: header.attribute("id"),
            version: header.attribute("version"), language: header.attribute("lang", namespace: XMLNamespace.xml),
            contentNamespace: content,
            declaresDialback: header.namespaceDeclarations.values.contains(XMPPNamespace.dialback))
        // §4.7.5: a major version above 1 is not ours.
        if let version, let major = version.split(separator: ".").first.flatMap({ Int($0) }), major > 1 {
            throw StreamError(.unsupportedVersion, text: "version \(version)")
        }
    }

    /// The opening tag to send, with the XML declaration.
    public var openingTag: String {
        var declarations = ["": contentNamespace, "stream": XMPPNamespace.streams]
        if declaresDialback { declarations["db"] = XMPPNamespace.dialback }
        var attributes: [XMLAttribute] = []
        if let from { attributes.append(XMLAttribute("from", value: from)) }
        if let to { attributes.append(XMLAttribute("to", value: to)) }
        if let id { attributes.append(XMLAttribute("id", value: id)) }
        if let version { attributes.append(XMLAttribute("version", value: version)) }
        if let language { attributes.append(XMLAttribute("lang", namespace: XMLNamespace.xml, value: language)) }
        return "<?xml version='1.0'?>"
            + XMLSerializer.openTag(prefix: "stream", name: "stream", declarations: declarations, attributes: attributes)
    }

    public static let closingTag = "</stream:stream>"

    /// The namespace context of top-level elements in a stream with this content namespace.
    public static func context(_ contentNamespace: String) -> XMLSerializer.Context {
        XMLSerializer.Context(
            defaultNamespace: contentNamespace,
            prefixes: [XMPPNamespace.streams: "stream", XMPPNamespace.dialback: "db"])
    }
}

public enum XMPPStreamEvent: Hashable, Sendable {
    case opened(XMPPStreamHeader)
    /// A top-level element: a stanza, features, a TLS/SASL/dialback element, or a stream error.
    case element(XMLElement)
    case closed
}

/// Reads an XMPP stream: XML events from `XMLStreamParser`, the header validated, every failure
/// expressed as the `StreamError` to send before closing.
public final class XMPPStreamReader {
    private let parser: XMLStreamParser
    private var xmlEvents: [XMLStreamEvent] = []

    public init(limits: XMLParserLimits = .default) {
        parser = XMLStreamParser(limits: limits)
    }

    public func feed(_ bytes: UnsafeRawBufferPointer, into events: inout [XMPPStreamEvent]) throws(StreamError) {
        do {
            try parser.feed(bytes, into: &xmlEvents)
        } catch {
            throw StreamError(error)
        }
        try translate(into: &events)
    }

    public func feed(_ bytes: [UInt8], into events: inout [XMPPStreamEvent]) throws(StreamError) {
        do {
            try parser.feed(bytes, into: &xmlEvents)
        } catch {
            throw StreamError(error)
        }
        try translate(into: &events)
    }

    private func translate(into events: inout [XMPPStreamEvent]) throws(StreamError) {
        defer { xmlEvents.removeAll(keepingCapacity: true) }
        for event in xmlEvents {
            switch event {
            case .streamOpened(let header): events.append(.opened(try XMPPStreamHeader(header)))
            case .element(let element): events.append(.element(element))
            case .streamClosed: events.append(.closed)
            }
        }
    }

    /// A stream restart after STARTTLS or SASL (RFC 6120 §5.4.3.3, §6.4.6).
    public func reset() {
        parser.reset()
        xmlEvents.removeAll()
    }
}

extension String {
    func trimmingXMLSpace() -> String {
        var scalars = Substring(self).unicodeScalars[...]
        while let first = scalars.first, first == " " || first == "\t" || first == "\n" || first == "\r" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" || last == "\n" || last == "\r" { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
