/// A point in time as the transaction layer sees it: a duration since an origin the driver
/// chooses. Machines never read a clock; the driver passes `now` in (tests use a manual clock).
public struct SIPInstant: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var sinceOrigin: Duration

    public init(_ sinceOrigin: Duration) { self.sinceOrigin = sinceOrigin }

    public static let origin = SIPInstant(.zero)

    public static func < (a: SIPInstant, b: SIPInstant) -> Bool { a.sinceOrigin < b.sinceOrigin }
    public static func + (a: SIPInstant, b: Duration) -> SIPInstant { SIPInstant(a.sinceOrigin + b) }
    public static func - (a: SIPInstant, b: SIPInstant) -> Duration { a.sinceOrigin - b.sinceOrigin }

    public var description: String { "\(sinceOrigin)" }
}

/// RFC 3261 §17.1.1.1 timer values (Table 4).
public struct SIPTimerValues: Hashable, Sendable {
    /// RTT estimate.
    public var t1: Duration
    /// The maximum retransmit interval for non-INVITE requests and INVITE responses.
    public var t2: Duration
    /// The maximum time a message remains in the network.
    public var t4: Duration

    public init(t1: Duration = .milliseconds(500), t2: Duration = .seconds(4), t4: Duration = .seconds(5)) {
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
    }

    public static let rfc3261 = SIPTimerValues()

    /// 64*T1: Timers B, F, H, J, and RFC 6026's L and M.
    public var transactionTimeout: Duration { t1 * 64 }
}

/// How a transaction ended, for the transaction user.
public enum SIPTransactionOutcome: Hashable, Sendable {
    /// Normal end after a final response.
    case completed
    /// No final response (client: Timer B or F) or no ACK (server: Timer H) in time.
    case timeout
    /// The transport reported a failure (§17.1.4, §17.2.4).
    case transportError
}
