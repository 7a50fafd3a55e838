/// Event (RFC 6665 §8.2.1): a package name with optional template and `id`.
public struct SIPEvent: Hashable, Sendable, CustomStringConvertible {
    /// The event package, e.g. `presence` or `presence.winfo`; compared case-insensitively.
    public var package: String
    public var parameters: SIPParameters

    public init(_ package: String, parameters: SIPParameters = SIPParameters()) {
        self.package = package
        self.parameters = parameters
    }

    public var id: String? { parameters["id"] }
    public var description: String { package + parameters.serialized }

    public static let presence = SIPEvent("presence")

    public static func parse(_ value: String) -> SIPEvent? {
        value.withSIPScanner { scanner in
            scanner.skipWhitespace()
            guard let package = scanner.token(), let parameters = scanner.parameters(stopAtComma: false) else { return nil }
            return scanner.isAtEnd ? SIPEvent(package, parameters: parameters) : nil
        }
    }

    /// Event packages match case-insensitively and, per RFC 6665 §8.2.1, with their `id`.
    public func matches(_ other: SIPEvent) -> Bool {
        package.caseInsensitiveEquals(other.package) && id == other.id
    }
}

/// Subscription-State (RFC 6665 §8.2.3, §4.1.3).
public struct SIPSubscriptionState: Hashable, Sendable, CustomStringConvertible {
    public struct State: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue.lowercased() }
        public static let active = State(rawValue: "active")
        public static let pending = State(rawValue: "pending")
        public static let terminated = State(rawValue: "terminated")
    }

    /// RFC 6665 §4.1.3 reason codes for `terminated`.
    public struct Reason: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue.lowercased() }
        public static let deactivated = Reason(rawValue: "deactivated")
        public static let probation = Reason(rawValue: "probation")
        public static let rejected = Reason(rawValue: "rejected")
        public static let timeout = Reason(rawValue: "timeout")
        public static let giveup = Reason(rawValue: "giveup")
        public static let noresource = Reason(rawValue: "noresource")
        public static let invariant = Reason(rawValue: "invariant")
    }

    public var state: State
    public var parameters: SIPParameters

    public init(_ state: State, expires: UInt32? = nil, reason: Reason? = nil, retryAfter: UInt32? = nil) {
        self.state = state
        self.parameters = SIPParameters()
        if let reason { parameters.set("reason", .some(reason.rawValue)) }
        if let expires { parameters.set("expires", .some(String(expires))) }
        if let retryAfter { parameters.set("retry-after", .some(String(retryAfter))) }
    }

    public var expires: UInt32? { parameters["expires"].flatMap(SIPHeaderValue.deltaSeconds) }
    public var retryAfter: UInt32? { parameters["retry-after"].flatMap(SIPHeaderValue.deltaSeconds) }
    public var reason: Reason? { parameters["reason"].map { Reason(rawValue: $0) } }

    public var description: String { state.rawValue + parameters.serialized }

    public static func parse(_ value: String) -> SIPSubscriptionState? {
        value.withSIPScanner { scanner in
            scanner.skipWhitespace()
            guard let state = scanner.token(), let parameters = scanner.parameters(stopAtComma: false), scanner.isAtEnd
            else { return nil }
            var result = SIPSubscriptionState(State(rawValue: state))
            result.parameters = parameters
            return result
        }
    }
}
