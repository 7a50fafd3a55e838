/// A request method. The set is open (RFC 3261 §7.1: any token), so this is a struct with the
/// methods Stox knows as static members. Methods are case-sensitive.
public struct SIPMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public var description: String { rawValue }

    public static let invite = SIPMethod("INVITE")
    public static let ack = SIPMethod("ACK")
    public static let bye = SIPMethod("BYE")
    public static let cancel = SIPMethod("CANCEL")
    public static let options = SIPMethod("OPTIONS")
    public static let register = SIPMethod("REGISTER")
    public static let message = SIPMethod("MESSAGE")
    public static let subscribe = SIPMethod("SUBSCRIBE")
    public static let notify = SIPMethod("NOTIFY")
    public static let publish = SIPMethod("PUBLISH")
    public static let info = SIPMethod("INFO")
    public static let update = SIPMethod("UPDATE")
    public static let refer = SIPMethod("REFER")
    public static let prack = SIPMethod("PRACK")

    /// Interned instances for the common methods, so parsing them allocates nothing.
    static func interned(_ bytes: UnsafeBufferPointer<UInt8>) -> SIPMethod? {
        for method in common where method.rawValue.utf8.count == bytes.count {
            if method.rawValue.utf8.elementsEqual(bytes) { return method }
        }
        return nil
    }

    /// Whether the method is one this implementation recognizes (RFC 3261 §8.2.1: a request
    /// with a recognized but unsupported method gets 405, an unrecognized one 501).
    public var isRecognized: Bool { Self.common.contains(self) }

    private static let common: [SIPMethod] = [
        .message, .invite, .ack, .bye, .cancel, .options, .register, .subscribe, .notify, .publish,
        .info, .update, .refer, .prack,
    ]
}
