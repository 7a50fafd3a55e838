import Foundation
import XMLCore
import XMPPCore

/// `text/html` bodies (RFC 7572 §7): converted to XEP-0071 XHTML-IM when the markup is
/// well-formed XML, and always reduced to plain text for `<body/>`.
enum HTMLText {
    /// XEP-0071 §7 Integration Set: elements kept, with the attributes each may carry.
    static let integrationSet: [String: Set<String>] = [
        "a": ["href", "style", "type"], "br": [], "blockquote": ["style"], "cite": ["style"], "em": [],
        "img": ["alt", "height", "src", "style", "width"], "li": ["style"], "ol": ["style"], "p": ["style"],
        "span": ["style"], "strong": [], "ul": ["style"],
    ]
    /// Elements dropped with their content.
    static let dropped: Set<String> = ["script", "style", "head", "title", "object", "iframe"]

    /// The XHTML-IM `<html/>` element for `html`, or `nil` if the markup is not well-formed.
    static func xhtmlIM(_ html: String) -> XMLElement? {
        var inner = html
        // Take the content of <body> when the part is a whole document.
        if let open = inner.range(of: "<body", options: .caseInsensitive), let close = inner.range(of: "</body>", options: [.caseInsensitive, .backwards]),
            let end = inner[open.upperBound...].firstIndex(of: ">"), end < close.lowerBound
        {
            inner = String(inner[inner.index(after: end)..<close.lowerBound])
        }
        guard let parsed = try? XMLDocumentParser.parse("<body xmlns='\(XMPPNamespace.xhtml)'>\(inner)</body>") else { return nil }
        var body = XMLElement("body", namespace: XMPPNamespace.xhtml)
        body.children = sanitize(parsed.children)
        return XMLElement("html", namespace: XMPPNamespace.xhtmlIM, children: [.element(body)])
    }

    private static func sanitize(_ nodes: [XMLNode]) -> [XMLNode] {
        var result: [XMLNode] = []
        for node in nodes {
            switch node {
            case .text: result.append(node)
            case .element(let element):
                let name = element.name.lowercased()
                if dropped.contains(name) { continue }
                guard let allowed = integrationSet[name] else {
                    // Not in the Integration Set: keep what it contains.
                    result.append(contentsOf: sanitize(element.children))
                    continue
                }
                var kept = XMLElement(name, namespace: XMPPNamespace.xhtml)
                kept.attributes = element.attributes.filter { $0.namespace.isEmpty && allowed.contains($0.name.lowercased()) }
                    .filter { !($0.name.lowercased() == "href" && $0.value.lowercased().hasPrefix("javascript:")) }
                kept.children = sanitize(element.children)
                result.append(.element(kept))
            }
        }
        return result
    }

    /// Plain text of `html`: tags removed, line breaks for `<br>` and block ends, entities decoded.
    static func strip(_ html: String) -> String {
        var output = ""
        var index = html.startIndex
        var skipping: String? = nil
        while index < html.endIndex {
            let character = html[index]
            if character == "<", let close = html[index...].firstIndex(of: ">") {
                let tag = html[html.index(after: index)..<close].lowercased()
                let name = String(tag.drop { $0 == "/" }.prefix { $0.isLetter || $0.isNumber })
                if let current = skipping {
                    if tag.hasPrefix("/") && name == current { skipping = nil }
                } else if dropped.contains(name) && !tag.hasPrefix("/") && !tag.hasSuffix("/") {
                    skipping = name
                } else if name == "br" || (tag.hasPrefix("/") && ["p", "div", "li", "tr", "blockquote"].contains(name)) {
                    output += "\n"
                }
                index = html.index(after: close)
                continue
            }
            if skipping == nil { output.append(character) }
            index = html.index(after: index)
        }
        return decodeEntities(output).trimmingXMLSpaceAndNewlines()
    }

    static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        let named: [String: String] = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{A0}"]
        var output = ""
        var index = text.startIndex
        while index < text.endIndex {
            if text[index] == "&", let semicolon = text[index...].prefix(12).firstIndex(of: ";") {
                let entity = String(text[text.index(after: index)..<semicolon])
                var replacement: String? = named[entity]
                if entity.hasPrefix("#x") || entity.hasPrefix("#X"), let value = UInt32(entity.dropFirst(2), radix: 16), let scalar = Unicode.Scalar(value) {
                    replacement = String(scalar)
                } else if entity.hasPrefix("#"), let value = UInt32(entity.dropFirst()), let scalar = Unicode.Scalar(value) {
                    replacement = String(scalar)
                }
                if let replacement {
                    output += replacement
                    index = text.index(after: semicolon)
                    continue
                }
            }
            output.append(text[index])
            index = text.index(after: index)
        }
        return output
    }
}

extension String {
    func trimmingXMLSpaceAndNewlines() -> String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}
