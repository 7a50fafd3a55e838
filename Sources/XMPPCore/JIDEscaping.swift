/// XEP-0106 JID Escaping: lets a localpart stand for an identifier that contains characters a
/// localpart may not (space `"` `&` `'` `/` `:` `<` `>` `@`). Escapes are `\` plus two lowercase
/// hex digits; a backslash is escaped (`\5c`) only where it would otherwise start an escape.
public enum JIDEscaping {
    private static let escapes: [(Character, String)] = [
        (" ", "20"), ("\"", "22"), ("&", "26"), ("'", "27"), ("/", "2f"), (":", "3a"), ("<", "3c"), (">", "3e"),
        ("@", "40"), ("\\", "5c"),
    ]
    private static let byCharacter: [Character: String] = Dictionary(uniqueKeysWithValues: escapes)
    private static let byCode: [String: Character] = Dictionary(uniqueKeysWithValues: escapes.map { ($0.1, $0.0) })

    /// Escapes an unescaped identifier for use as a localpart (XEP-0106 §4.2).
    public static func escape(_ identifier: String) -> String {
        // Nearly every identifier has none of the ten characters: returned as it is, without the
        // Character array and the dictionary look-up per character (every SIP→XMPP message).
        guard identifier.utf8.contains(where: { byte in
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\""), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "/"),
                 UInt8(ascii: ":"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "@"), UInt8(ascii: "\\"): true
            default: false
            }
        }) else { return identifier }
        var output = ""
        let characters = Array(identifier)
        for (index, character) in characters.enumerated() {
            if character == "\\" {
                // Only a backslash that precedes an escape-like sequence needs escaping.
                if index + 2 < characters.count, byCode[String(characters[index + 1...index + 2])] != nil {
                    output += "\\5c"
                } else {
                    output.append(character)
                }
            } else if let code = byCharacter[character] {
                output += "\\" + code
            } else {
                output.append(character)
            }
        }
        return output
    }

    /// Undoes the ten XEP-0106 escapes (§4.3); any other backslash sequence is left alone.
    public static func unescape(_ localpart: String) -> String {
        guard localpart.contains("\\") else { return localpart }
        var output = ""
        let characters = Array(localpart)
        var index = 0
        while index < characters.count {
            if characters[index] == "\\", index + 2 < characters.count,
                let character = byCode[String(characters[index + 1...index + 2])]
            {
                output.append(character)
                index += 3
            } else {
                output.append(characters[index])
                index += 1
            }
        }
        return output
    }
}
