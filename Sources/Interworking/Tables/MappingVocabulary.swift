import SIPCore
import XMPPCore

/// The six presence states XMPP can express (RFC 6121 §4.7.2.1 show values, plus plain available
/// and unavailable): the pivot every presence table maps to or from.
public enum PresenceState: String, Hashable, Sendable, CaseIterable {
    case available, chat, away, xa, dnd, unavailable

    public init(_ presence: XMPPPresence) {
        if presence.type == .unavailable {
            self = .unavailable
            return
        }
        switch presence.show {
        case nil: self = .available
        case .chat: self = .chat
        case .away: self = .away
        case .xa: self = .xa
        case .dnd: self = .dnd
        }
    }

    /// The `type` and `<show/>` of a presence in this state.
    public var typeAndShow: (XMPPPresence.PresenceType?, XMPPPresence.Show?) {
        switch self {
        case .available: (nil, nil)
        case .chat: (nil, .chat)
        case .away: (nil, .away)
        case .xa: (nil, .xa)
        case .dnd: (nil, .dnd)
        case .unavailable: (.unavailable, nil)
        }
    }
}

/// The sources a SIP presence document may carry, in `presence-precedence.tsv`.
public enum PresenceSource: String, Hashable, Sendable, CaseIterable {
    case embeddedShow = "embedded-show"
    case lyncAvailability = "lync-availability"
    case rpidActivity = "rpid-activity"
    case basic
}

/// The RPID activity tokens of RFC 4480 §3.2, plus `other`.
enum RPIDVocabulary {
    static let activities: [String] = [
        "appointment", "away", "breakfast", "busy", "dinner", "holiday", "in-transit", "looking-for-work", "lunch",
        "meal", "meeting", "on-the-phone", "performance", "permanent-absence", "playing", "presentation", "shopping",
        "sleeping", "spectator", "steering", "travel", "tv", "unknown", "vacation", "working", "worship", "other",
    ]
}

/// XEP-0085 chat states.
public enum ChatState: String, Hashable, Sendable, CaseIterable {
    case active, inactive, gone, composing, paused
}

/// What answers a SUBSCRIBE the gateway sent (`subscription-responses.tsv`).
public enum SubscriptionOutcome: String, Hashable, Sendable, CaseIterable {
    /// The subscription dialog exists.
    case active
    /// The authorization is cancelled: the XMPP subscriber gets `unsubscribed` (RFC 8048 §5.2.2).
    case permanent
    /// Keep the authorization; subscribe again later.
    case transient
    /// 423: subscribe again with the Min-Expires the response gave.
    case interval
}

/// A SIP-side subscription action (`subscription-*.tsv`).
public enum SIPSubscriptionAction: Hashable, Sendable, CustomStringConvertible {
    /// SUBSCRIBE with this Expires in the subscription dialog.
    case subscribe(expires: UInt32)
    /// SUBSCRIBE Expires 0 inside an existing dialog: the subscription ends.
    case unsubscribeInDialog
    /// SUBSCRIBE Expires 0 in a new dialog: a one-time poll (RFC 3856 §6.6.1, "fetch").
    case fetch
    /// NOTIFY with this Subscription-State (state and optional reason).
    case notify(SIPSubscriptionState.State, reason: SIPSubscriptionState.Reason?)

    public var description: String {
        switch self {
        case .subscribe(let expires): "subscribe \(expires)"
        case .unsubscribeInDialog: "subscribe 0 in-dialog"
        case .fetch: "fetch"
        case .notify(let state, let reason): "notify \(state.rawValue)" + (reason.map { ";reason=\($0.rawValue)" } ?? "")
        }
    }

    static func parse(_ text: String) -> SIPSubscriptionAction? {
        let words = text.split(separator: " ").map(String.init)
        switch (words.first, words.count) {
        case ("fetch", 1): return .fetch
        case ("subscribe", 2):
            guard let expires = UInt32(words[1]) else { return nil }
            return .subscribe(expires: expires)
        case ("subscribe", 3) where words[1] == "0" && words[2] == "in-dialog": return .unsubscribeInDialog
        case ("notify", 2):
            guard let state = SIPSubscriptionState.parse(words[1]) else { return nil }
            guard [.active, .pending, .terminated].contains(state.state) else { return nil }
            return .notify(state.state, reason: state.reason)
        default: return nil
        }
    }
}

/// The XMPP-side result of a SIP subscription event.
public enum XMPPSubscriptionResult: Hashable, Sendable, CustomStringConvertible {
    /// Send a presence stanza of this type (`subscribe`, `subscribed`, `unsubscribed`, `probe`,
    /// or `unavailable`).
    case stanza(XMPPPresence.PresenceType)
    /// No stanza; the gateway renews the SIP subscription.
    case resubscribe
    /// Nothing.
    case none

    public var description: String {
        switch self {
        case .stanza(let type): type.rawValue
        case .resubscribe: "resubscribe"
        case .none: "-"
        }
    }

    static func parse(_ text: String) -> XMPPSubscriptionResult? {
        switch text {
        case "-": return XMPPSubscriptionResult.none
        case "resubscribe": return .resubscribe
        default: return XMPPPresence.PresenceType(rawValue: text).map(XMPPSubscriptionResult.stanza)
        }
    }
}

/// A key of the SIP-side subscription tables: what happened on the SIP side.
public enum SIPSubscriptionEvent: Hashable, Sendable, CustomStringConvertible {
    case subscribe
    case unsubscribeInDialog
    case fetch
    case notify(SIPSubscriptionState.State, reason: SIPSubscriptionState.Reason?)

    public var description: String {
        switch self {
        case .subscribe: "subscribe"
        case .unsubscribeInDialog: "subscribe 0 in-dialog"
        case .fetch: "fetch"
        case .notify(let state, let reason): "notify \(state.rawValue)" + (reason.map { ";reason=\($0.rawValue)" } ?? "")
        }
    }

    static func parse(_ text: String) -> SIPSubscriptionEvent? {
        switch text {
        case "subscribe": return .subscribe
        case "subscribe 0 in-dialog": return .unsubscribeInDialog
        case "fetch": return .fetch
        default:
            guard text.hasPrefix("notify "), let state = SIPSubscriptionState.parse(String(text.dropFirst(7))) else { return nil }
            return .notify(state.state, reason: state.reason)
        }
    }
}

/// A status code or a status class in a table (`486`, `4xx`).
enum StatusKey: Hashable, Sendable, CustomStringConvertible {
    case code(Int)
    case statusClass(Int)

    static func parse(_ text: String) -> StatusKey? {
        if text.count == 3, text.hasSuffix("xx"), let digit = Int(text.prefix(1)), (1...6).contains(digit) {
            return .statusClass(digit)
        }
        guard text.count == 3, let code = Int(text), (100...699).contains(code) else { return nil }
        return .code(code)
    }

    var description: String {
        switch self {
        case .code(let code): String(code)
        case .statusClass(let digit): "\(digit)xx"
        }
    }
}

extension Dictionary where Key == StatusKey {
    /// The row for `code`, else the row for its class.
    func lookup(_ code: Int) -> Value? {
        self[.code(code)] ?? self[.statusClass(code / 100)]
    }
}
