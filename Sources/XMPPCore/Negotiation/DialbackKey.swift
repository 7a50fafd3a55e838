import Crypto

/// Dialback keys (XEP-0185, recommended by XEP-0220 §2.4): a key any of our servers can recompute
/// from the shared secret, so verifying needs no state between the connections.
public enum DialbackKey {
    /// `hex(HMAC-SHA256(key: hex(SHA256(secret)), message: receiving ' ' originating ' ' streamID))`.
    public static func generate(secret: String, receiving: String, originating: String, streamID: String) -> String {
        let keyMaterial = hex(SHA256.hash(data: Array(secret.utf8)))
        let message = Array("\(receiving) \(originating) \(streamID)".utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(keyMaterial.utf8)))
        return hex(mac)
    }

    /// Compares in constant time, so a peer cannot probe a key byte by byte.
    public static func matches(_ key: String, secret: String, receiving: String, originating: String, streamID: String) -> Bool {
        let expected = Array(generate(secret: secret, receiving: receiving, originating: originating, streamID: streamID).utf8)
        let given = Array(key.lowercased().utf8)
        guard expected.count == given.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(expected, given) { difference |= a ^ b }
        return difference == 0
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var output: [UInt8] = []
        for byte in bytes {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// The XEP-0114 §3 component handshake: lowercase hex SHA-1 of the stream id followed by the secret.
public enum ComponentHandshake {
    public static func digest(streamID: String, secret: String) -> String {
        DialbackKey.hex(Insecure.SHA1.hash(data: Array((streamID + secret).utf8)))
    }
}
