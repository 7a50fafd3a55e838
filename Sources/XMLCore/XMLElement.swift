/// A namespace-resolved XML element: the unit an XMPP stream carries (a stanza) and the root of a
/// standalone document (a PIDF body). Prefixes are not kept: two elements are equal when their
/// expanded names, attributes and children are, whatever prefixes the sender chose.
public struct XMLElement: Hashable, Sendable {
    /// The local name.
    public var name: String
    /// The namespace URI; the empty string means "no namespace".
    public var namespace: String
    /// Attributes in document order. Namespace declarations are not attributes.
    public var attributes: [XMLAttribute]
    public var children: [XMLNode]

    public init(
        _ name: String,
        namespace: String = "",
        attributes: [XMLAttribute] = [],
        children: [XMLNode] = []
    ) {
        self.name = name
        self.namespace = namespace
        self.attributes = attributes
        self.children = children
    }

    /// Convenience for the common case of unqualified attributes given in order.
    public init(
        _ name: String,
        namespace: String = "",
        attributes: KeyValuePairs<String, String>,
        children: [XMLNode] = []
    ) {
        self.init(
            name, namespace: namespace,
            attributes: attributes.map { XMLAttribute($0.key, value: $0.value) },
            children: children)
    }

    /// An element whose only child is `text`.
    public init(_ name: String, namespace: String = "", text: String) {
        self.init(name, namespace: namespace, children: [.text(text)])
    }
}

/// An attribute with its expanded name. `xml:lang` has `namespace == XMLNamespace.xml`.
public struct XMLAttribute: Hashable, Sendable {
    public var name: String
    public var namespace: String
    public var value: String

    public init(_ name: String, namespace: String = "", value: String) {
        self.name = name
        self.namespace = namespace
        self.value = value
    }
}

public enum XMLNode: Hashable, Sendable {
    case element(XMLElement)
    case text(String)
}

/// Namespaces that XML itself reserves.
public enum XMLNamespace {
    /// Bound to the `xml` prefix by the Namespaces in XML recommendation; carries `xml:lang`.
    public static let xml = "http://www.w3.org/XML/1998/namespace"
    public static let xmlns = "http://www.w3.org/2000/xmlns/"
}

extension XMLElement {
    /// The value of the attribute with this expanded name, if present.
    public func attribute(_ name: String, namespace: String = "") -> String? {
        for attribute in attributes where attribute.name == name && attribute.namespace == namespace {
            return attribute.value
        }
        return nil
    }

    /// Sets, replaces or (with `nil`) removes an attribute, keeping document order.
    public mutating func setAttribute(_ name: String, namespace: String = "", to value: String?) {
        if let index = attributes.firstIndex(where: { $0.name == name && $0.namespace == namespace }) {
            if let value { attributes[index].value = value } else { attributes.remove(at: index) }
        } else if let value {
            attributes.append(XMLAttribute(name, namespace: namespace, value: value))
        }
    }

    /// `xml:lang`, which RFC 6120 §8.1.5 lets any stanza carry.
    public var language: String? {
        get { attribute("lang", namespace: XMLNamespace.xml) }
        set { setAttribute("lang", namespace: XMLNamespace.xml, to: newValue) }
    }

    /// Child elements, in order.
    public var elements: [XMLElement] {
        children.compactMap { if case .element(let e) = $0 { e } else { nil } }
    }

    /// The first child element with this name; a `nil` namespace matches any namespace.
    public func firstChild(_ name: String, namespace: String? = nil) -> XMLElement? {
        for case .element(let e) in children where e.name == name && (namespace == nil || e.namespace == namespace) {
            return e
        }
        return nil
    }

    /// All child elements with this name; a `nil` namespace matches any namespace.
    public func children(_ name: String, namespace: String? = nil) -> [XMLElement] {
        elements.filter { $0.name == name && (namespace == nil || $0.namespace == namespace) }
    }

    /// The concatenation of the direct text children.
    public var text: String {
        var result = ""
        for case .text(let t) in children { result += t }
        return result
    }

    /// The concatenated text of this element and all its descendants, in document order.
    public var deepText: String {
        var result = ""
        func walk(_ e: XMLElement) {
            for child in e.children {
                switch child {
                case .text(let t): result += t
                case .element(let inner): walk(inner)
                }
            }
        }
        walk(self)
        return result
    }

    /// Appends a child element.
    public mutating func append(_ element: XMLElement) { children.append(.element(element)) }
    /// Appends a text node.
    public mutating func append(text: String) { children.append(.text(text)) }
}
