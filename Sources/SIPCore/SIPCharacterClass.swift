/// A set of ASCII bytes as a 128-bit bitmap. The classes are computed properties over literal
/// constants, so testing a byte is two shifts and no lazy global, lookup table or hashing: these
/// tests run once per byte of every message.
struct SIPCharacterClass {
    let low: UInt64
    let high: UInt64

    @inline(__always) init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }

    @inline(__always) func contains(_ byte: UInt8) -> Bool {
        if byte < 64 { return (low >> UInt64(byte)) & 1 == 1 }
        if byte < 128 { return (high >> UInt64(byte - 64)) & 1 == 1 }
        return false
    }

    @inline(__always) func union(_ other: SIPCharacterClass) -> SIPCharacterClass {
        SIPCharacterClass(low: low | other.low, high: high | other.high)
    }

    /// "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
    @inline(__always) static var token: SIPCharacterClass { SIPCharacterClass(low: 0x03FF6CA200000000, high: 0x47FFFFFF87FFFFFE) }

    /// "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"
    @inline(__always) static var unreserved: SIPCharacterClass { SIPCharacterClass(low: 0x03FF678200000000, high: 0x47FFFFFE87FFFFFE) }

    /// '&=+$,;?/'
    @inline(__always) static var userUnreserved: SIPCharacterClass { SIPCharacterClass(low: 0xA800985000000000, high: 0x0000000000000000) }

    /// '&=+$,'
    @inline(__always) static var passwordUnreserved: SIPCharacterClass { SIPCharacterClass(low: 0x2000185000000000, high: 0x0000000000000000) }

    /// '[]/:&+$'
    @inline(__always) static var paramUnreserved: SIPCharacterClass { SIPCharacterClass(low: 0x0400885000000000, high: 0x0000000028000000) }

    /// '[]/?:+$'
    @inline(__always) static var headerUnreserved: SIPCharacterClass { SIPCharacterClass(low: 0x8400881000000000, high: 0x0000000028000000) }

    /// '0123456789abcdefABCDEF'
    @inline(__always) static var hex: SIPCharacterClass { SIPCharacterClass(low: 0x03FF000000000000, high: 0x0000007E0000007E) }

    /// 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._'
    @inline(__always) static var hostname: SIPCharacterClass { SIPCharacterClass(low: 0x03FF600000000000, high: 0x07FFFFFE87FFFFFE) }

    /// "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~:[]"
    @inline(__always) static var viaParamValue: SIPCharacterClass { SIPCharacterClass(low: 0x07FF6CA200000000, high: 0x47FFFFFFAFFFFFFE) }

    @inline(__always) static var empty: SIPCharacterClass { SIPCharacterClass(low: 0, high: 0) }
    /// Where an addr-spec outside angle brackets ends (RFC 3261 §20.10): ";" "," "?".
    @inline(__always) static var addrSpecEnd: SIPCharacterClass { SIPCharacterClass(low: 0x8800100000000000, high: 0) }
}
