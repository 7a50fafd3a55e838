#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Random bits for protocol identifiers: tags, branches, Call-IDs, stanza ids.
///
/// Why not `SystemRandomNumberGenerator`: on Linux it makes one `getrandom(2)` call per number,
/// and a message crossing the gateway needs three or four of them (From tag, branch, Call-ID).
/// Under load those syscalls were about a tenth of the event loop's time for XMPP → SIP. Here
/// the same kernel generator fills 4 KiB at a time and numbers are taken from that pool, so the
/// bits are as unpredictable as before (RFC 3261 §19.3 asks tags for cryptographic randomness)
/// at one syscall per 512 numbers.
public struct IdentifierRandom: RandomNumberGenerator, Sendable {
    public init() {}

    public mutating func next() -> UInt64 { Self.pool.withLock { $0.next() } }

    /// A number for an identifier, in base 36 (13 characters at most, never zero).
    public static func token() -> String {
        var generator = IdentifierRandom()
        return String(UInt64.random(in: 1 ... .max, using: &generator), radix: 36)
    }

    /// 128 random bits as 32 lowercase hex digits: a Call-ID or a stanza id.
    public static func hex128() -> String {
        let (high, low) = pool.withLock { ($0.next(), $0.next()) }
        return String(unsafeUninitializedCapacity: 32) { buffer in
            let digits: StaticString = "0123456789abcdef"
            digits.withUTF8Buffer { hex in
                for index in 0..<16 {
                    buffer[index] = hex[Int((high >> UInt64(60 - 4 * index)) & 0xF)]
                    buffer[16 + index] = hex[Int((low >> UInt64(60 - 4 * index)) & 0xF)]
                }
            }
            return 32
        }
    }

    private static let pool = Mutex(Pool())

    private struct Pool {
        private var words = [UInt64](repeating: 0, count: 512)
        private var index = 512

        mutating func next() -> UInt64 {
            if index == words.count {
                refill()
                index = 0
            }
            index += 1
            return words[index - 1]
        }

        private mutating func refill() {
            words.withUnsafeMutableBytes { bytes in
                var filled = 0
                while filled < bytes.count {
                    #if canImport(Glibc)
                    let got = systemGetRandom(bytes.baseAddress! + filled, bytes.count - filled, 0)
                    if got > 0 { filled += got; continue }
                    if got < 0 && errno == EINTR { continue }
                    #endif
                    // No getrandom: the system generator, one word at a time.
                    var system = SystemRandomNumberGenerator()
                    while filled + 8 <= bytes.count {
                        bytes.storeBytes(of: system.next(), toByteOffset: filled, as: UInt64.self)
                        filled += 8
                    }
                }
            }
        }
    }
}

#if canImport(Glibc)
/// glibc's getrandom(3): sys/random.h is not part of the Glibc module Swift imports.
@_silgen_name("getrandom")
private func systemGetRandom(_ buffer: UnsafeMutableRawPointer?, _ length: Int, _ flags: UInt32) -> Int
#endif
