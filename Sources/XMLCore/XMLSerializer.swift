/// Writes elements as XML text. Element namespaces are expressed by (re)declaring the default
/// namespace where it changes, so output never depends on the prefixes a sender happened to use;
/// prefixes already bound in the enclosing context (such as `stream` on an XMPP stream) are reused.
/// Characters that XML 1.0 cannot carry (C0 controls other than TAB, LF, CR; U+FFFE, U+FFFF) are
/// replaced by U+FFFD, so a value translated from another protocol can never make the output
/// ill-formed and get the stream closed.
public struct XMLSerializer {
    /// The namespace context an element is written into.
    public struct Context: Sendable {
        /// The default namespace in scope at the insertion point.
        public var defaultNamespace: String
        /// Prefix bindings in scope: namespace URI → prefix.
        public var prefixes: [String: String]

        public init(defaultNamespace: String = "", prefixes: [String: String] = [:]) {
            self.defaultNamespace = defaultNamespace
            self.prefixes = prefixes
        }
    }

    /// Serializes `element` as it should appear inside `context`.
    public static func string(_ element: XMLElement, in context: Context = Context()) -> String {
        var output = ""
        output.reserveCapacity(256)
        write(element, context: context, generated: 0, into: &output)
        return output
    }

    /// Serializes `element` as UTF-8 bytes, ready for the wire.
    public static func bytes(_ element: XMLElement, in context: Context = Context()) -> [UInt8] {
        Array(string(element, in: context).utf8)
    }

    /// The start tag of an XMPP stream root, left open: `<stream:stream xmlns='jabber:server' ...>`.
    /// `declarations` maps prefix (`""` for default) → URI and is written in a stable order.
    public static func openTag(
        prefix: String?, name: String, declarations: [String: String], attributes: [XMLAttribute]
    ) -> String {
        var output = "<"
        if let prefix { output += prefix + ":" }
        output += name
        for key in declarations.keys.sorted() {
            output += key.isEmpty ? " xmlns='" : " xmlns:\(key)='"
            appendEscaped(declarations[key]!, attribute: true, into: &output)
            output += "'"
        }
        for attribute in attributes {
            output += " "
            if attribute.namespace == XMLNamespace.xml { output += "xml:" }
            output += attribute.name + "='"
            appendEscaped(attribute.value, attribute: true, into: &output)
            output += "'"
        }
        output += ">"
        return output
    }

    private static func write(_ element: XMLElement, context: Context, generated: Int, into output: inout String) {
        var inner = context
        var generatedCount = generated
        output += "<"
        var declaration: String? = nil
        if element.namespace != context.defaultNamespace,
            let prefix = context.prefixes[element.namespace], !element.namespace.isEmpty
        {
            output += prefix + ":"
        } else if element.namespace != context.defaultNamespace {
            declaration = element.namespace
            inner.defaultNamespace = element.namespace
        }
        output += element.name
        if let declaration {
            output += " xmlns='"
            appendEscaped(declaration, attribute: true, into: &output)
            output += "'"
        }
        for attribute in element.attributes {
            output += " "
            switch attribute.namespace {
            case "": break
            case XMLNamespace.xml: output += "xml:"
            default:
                if let prefix = inner.prefixes[attribute.namespace] {
                    output += prefix + ":"
                } else {
                    generatedCount += 1
                    let prefix = "ns\(generatedCount)"
                    inner.prefixes[attribute.namespace] = prefix
                    output += "xmlns:\(prefix)='"
                    appendEscaped(attribute.namespace, attribute: true, into: &output)
                    output += "' \(prefix):"
                }
            }
            output += attribute.name + "='"
            appendEscaped(attribute.value, attribute: true, into: &output)
            output += "'"
        }
        if element.children.isEmpty {
            output += "/>"
            return
        }
        output += ">"
        for child in element.children {
            switch child {
            case .text(let text): appendEscaped(text, attribute: false, into: &output)
            case .element(let child): write(child, context: inner, generated: generatedCount, into: &output)
            }
        }
        output += "</"
        if element.namespace != context.defaultNamespace, declaration == nil,
            let prefix = context.prefixes[element.namespace]
        {
            output += prefix + ":"
        }
        output += element.name + ">"
    }

    /// Escapes text for element content (`attribute == false`) or a single-quoted attribute.
    public static func appendEscaped(_ text: String, attribute: Bool, into output: inout String) {
        // Fast path: nothing to escape.
        var clean = true
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "&"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "'"), UInt8(ascii: "\""),
                0x00...0x1F, 0xEF:
                clean = false
            default: continue
            }
            if !clean { break }
        }
        if clean {
            output += text
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "'" where attribute: output += "&apos;"
            case "\"" where attribute: output += "&quot;"
            case "\t" where attribute: output += "&#9;"
            case "\n" where attribute: output += "&#10;"
            case "\r": output += "&#13;"
            case "\t", "\n": output.unicodeScalars.append(scalar)
            case "\u{0}"..."\u{1F}", "\u{FFFE}", "\u{FFFF}": output += "\u{FFFD}"
            default: output.unicodeScalars.append(scalar)
            }
        }
    }

    /// Escapes `text` for element content.
    public static func escape(_ text: String) -> String {
        var output = ""
        appendEscaped(text, attribute: false, into: &output)
        return output
    }
}

extension XMLElement {
    /// The element as XML text, with namespaces declared from scratch.
    public var xmlString: String { XMLSerializer.string(self) }
}
