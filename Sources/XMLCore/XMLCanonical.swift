/// A canonical text form for comparing XML in tests and goldens. Names are written in expanded
/// `{namespace}local` form, attributes are sorted, adjacent text is merged, and whitespace-only
/// text is dropped from elements that also have element children (indentation in fixtures).
/// Two elements with the same canonical form are the same information, whatever prefixes,
/// quoting or attribute order the sender chose.
public enum XMLCanonical {
    public static func form(_ element: XMLElement) -> String {
        var output = ""
        write(element, indent: 0, into: &output)
        return output
    }

    private static func expanded(_ name: String, _ namespace: String) -> String {
        namespace.isEmpty ? name : "{\(namespace)}\(name)"
    }

    private static func write(_ element: XMLElement, indent: Int, into output: inout String) {
        let pad = String(repeating: "  ", count: indent)
        output += pad + "<" + expanded(element.name, element.namespace)
        let attributes = element.attributes.sorted {
            ($0.namespace, $0.name) < ($1.namespace, $1.name)
        }
        for attribute in attributes {
            output += " " + expanded(attribute.name, attribute.namespace) + "=\""
            XMLSerializer.appendEscaped(attribute.value, attribute: true, into: &output)
            output += "\""
        }
        let children = normalizedChildren(element)
        if children.isEmpty {
            output += "/>\n"
            return
        }
        if children.count == 1, case .text(let text) = children[0] {
            output += ">"
            XMLSerializer.appendEscaped(text, attribute: false, into: &output)
            output += "</" + expanded(element.name, element.namespace) + ">\n"
            return
        }
        output += ">\n"
        for child in children {
            switch child {
            case .element(let e): write(e, indent: indent + 1, into: &output)
            case .text(let text):
                output += pad + "  \""
                XMLSerializer.appendEscaped(text, attribute: false, into: &output)
                output += "\"\n"
            }
        }
        output += pad + "</" + expanded(element.name, element.namespace) + ">\n"
    }

    private static func normalizedChildren(_ element: XMLElement) -> [XMLNode] {
        var merged: [XMLNode] = []
        for child in element.children {
            if case .text(let text) = child, case .text(let previous)? = merged.last {
                merged[merged.count - 1] = .text(previous + text)
            } else {
                merged.append(child)
            }
        }
        let hasElements = merged.contains { if case .element = $0 { true } else { false } }
        if hasElements {
            merged.removeAll {
                if case .text(let t) = $0 { t.allSatisfy(\.isWhitespace) } else { false }
            }
        }
        return merged
    }

    /// Whether two elements carry the same information (see the type's discussion).
    public static func equivalent(_ a: XMLElement, _ b: XMLElement) -> Bool {
        form(a) == form(b)
    }
}
