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
        String(decoding: bytes(element, in: context), as: UTF8.self)
    }

    /// Serializes `element` as UTF-8 bytes, ready for the wire.
    public static func bytes(_ element: XMLElement, in context: Context = Context()) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(512)
        write(element, in: context, into: &output)
        return output
    }

    /// Appends `element` to `output`.
    public static func write(_ element: XMLElement, in context: Context = Context(), into output: inout [UInt8]) {
        write(element, context: context, generated: 0, into: &output)
    }

    /// The start tag of an XMPP stream root, left open: `<stream:stream xmlns='jabber:server' ...>`.
    /// `declarations` maps prefix (`""` for default) → URI and is written in a stable order.
    public static func openTag(
        prefix: String?, name: String, declarations: [String: String], attributes: [XMLAttribute]
    ) -> String {
        var output: [UInt8] = []
        output.append(UInt8(ascii: "<"))
        if let prefix { append(prefix + ":", to: &output) }
        append(name, to: &output)
        for key in declarations.keys.sorted() {
            append(key.isEmpty ? " xmlns='" : " xmlns:\(key)='", to: &output)
            appendEscaped(declarations[key]!, attribute: true, into: &output)
            output.append(UInt8(ascii: "'"))
        }
        for attribute in attributes {
            output.append(UInt8(ascii: " "))
            if attribute.namespace == XMLNamespace.xml { append("xml:", to: &output) }
            append(attribute.name, to: &output)
            append("='", to: &output)
            appendEscaped(attribute.value, attribute: true, into: &output)
            output.append(UInt8(ascii: "'"))
        }
        output.append(UInt8(ascii: ">"))
        return String(decoding: output, as: UTF8.self)
    }

    /// Prefixes readers expect for well-known attribute namespaces.
    private static let conventionalPrefixes = ["http://www.w3.org/2001/XMLSchema-instance": "xsi"]

    @inline(__always)
    private static func append(_ text: String, to output: inout [UInt8]) {
        var text = text
        text.withUTF8 { output.append(contentsOf: $0) }
    }

    private static func write(_ element: XMLElement, context: Context, generated: Int, into output: inout [UInt8]) {
        var inner = context
        var generatedCount = generated
        output.append(UInt8(ascii: "<"))
        var declaration: String? = nil
        var prefix: String? = nil
        if element.namespace != context.defaultNamespace {
            if !element.namespace.isEmpty, let bound = context.prefixes[element.namespace] {
                prefix = bound
                append(bound, to: &output)
                output.append(UInt8(ascii: ":"))
            } else {
                declaration = element.namespace
                inner.defaultNamespace = element.namespace
            }
        }
        append(element.name, to: &output)
        if let declaration {
            append(" xmlns='", to: &output)
            appendEscaped(declaration, attribute: true, into: &output)
            output.append(UInt8(ascii: "'"))
        }
        for attribute in element.attributes {
            output.append(UInt8(ascii: " "))
            switch attribute.namespace {
            case "": break
            case XMLNamespace.xml: append("xml:", to: &output)
            default:
                if let bound = inner.prefixes[attribute.namespace] {
                    append(bound, to: &output)
                    output.append(UInt8(ascii: ":"))
                } else {
                    generatedCount += 1
                    // The conventional prefix, unless it is already bound to something else here.
                    let conventional = Self.conventionalPrefixes[attribute.namespace].flatMap { prefix in
                        inner.prefixes.values.contains(prefix) ? nil : prefix
                    }
                    let generatedPrefix = conventional ?? "ns\(generatedCount)"
                    inner.prefixes[attribute.namespace] = generatedPrefix
                    append("xmlns:\(generatedPrefix)='", to: &output)
                    appendEscaped(attribute.namespace, attribute: true, into: &output)
                    append("' \(generatedPrefix):", to: &output)
                }
            }
            append(attribute.name, to: &output)
            append("='", to: &output)
            appendEscaped(attribute.value, attribute: true, into: &output)
            output.append(UInt8(ascii: "'"))
        }
        if element.children.isEmpty {
            append("/>", to: &output)
            return
        }
        output.append(UInt8(ascii: ">"))
        for child in element.children {
            switch child {
            case .text(let text): appendEscaped(text, attribute: false, into: &output)
            case .element(let child): write(child, context: inner, generated: generatedCount, into: &output)
            }
        }
        append("</", to: &output)
        if let prefix {
            append(prefix, to: &output)
            output.append(UInt8(ascii: ":"))
        }
        append(element.name, to: &output)
        output.append(UInt8(ascii: ">"))
    }

    /// Bytes that may need escaping: C0 controls, `"` `&` `'` `<` `>`, and 0xEF (the lead byte of
    /// U+FFFE and U+FFFF, which XML cannot carry).
    @inline(__always)
    private static func mayNeedEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == 0x22 || byte == 0x26 || byte == 0x27 || byte == 0x3C || byte == 0x3E || byte == 0xEF
    }

    /// Escapes text for element content (`attribute == false`) or a single-quoted attribute.
    public static func appendEscaped(_ text: String, attribute: Bool, into output: inout [UInt8]) {
        var text = text
        text.withUTF8 { bytes in
            var clean = true
            for byte in bytes where mayNeedEscape(byte) {
                clean = false
                break
            }
            if clean {
                output.append(contentsOf: bytes)
                return
            }
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "&"): append("&amp;", to: &output)
                case UInt8(ascii: "<"): append("&lt;", to: &output)
                case UInt8(ascii: ">"): append("&gt;", to: &output)
                case UInt8(ascii: "'") where attribute: append("&apos;", to: &output)
                case UInt8(ascii: "\"") where attribute: append("&quot;", to: &output)
                case UInt8(ascii: "\t") where attribute: append("&#9;", to: &output)
                case UInt8(ascii: "\n") where attribute: append("&#10;", to: &output)
                case UInt8(ascii: "\r"): append("&#13;", to: &output)
                case UInt8(ascii: "\t"), UInt8(ascii: "\n"): output.append(byte)
                case 0x00..<0x20: output.append(contentsOf: [0xEF, 0xBF, 0xBD])
                case 0xEF where index + 1 < bytes.count && bytes[index] == 0xBF && (bytes[index + 1] == 0xBE || bytes[index + 1] == 0xBF):
                    // U+FFFE, U+FFFF: not XML characters.
                    output.append(contentsOf: [0xEF, 0xBF, 0xBD])
                    index += 2
                default: output.append(byte)
                }
            }
        }
    }

    /// Escapes text for element content or a single-quoted attribute, appending to a string.
    public static func appendEscaped(_ text: String, attribute: Bool, into output: inout String) {
        var bytes: [UInt8] = []
        appendEscaped(text, attribute: attribute, into: &bytes)
        output += String(decoding: bytes, as: UTF8.self)
    }

    /// Escapes `text` for element content.
    public static func escape(_ text: String) -> String {
        var output: [UInt8] = []
        appendEscaped(text, attribute: false, into: &output)
        return String(decoding: output, as: UTF8.self)
    }
}

extension XMLElement {
    /// The element as XML text, with namespaces declared from scratch.
    public var xmlString: String { XMLSerializer.string(self) }
}
