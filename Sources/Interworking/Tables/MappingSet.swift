import SIPCore
import XMPPCore

/// Every mapping table, loaded and validated. Build one from the files of a mapping directory
/// (name → contents); a problem anywhere refuses the whole set with every problem listed.
public struct MappingSet: Sendable {
    /// The files a mapping directory must hold.
    public static let fileNames: [String] = [
        "presence-xmpp-to-pidf.tsv", "presence-show-to-xmpp.tsv", "presence-rpid-to-xmpp.tsv", "presence-basic-to-xmpp.tsv",
        "presence-lync-to-xmpp.tsv", "presence-xmpp-to-lync.tsv", "presence-precedence.tsv",
        "errors-xmpp-to-sip.tsv", "errors-sip-to-xmpp.tsv",
        "domains.tsv", "aliases.tsv",
        "message-xmpp-to-sip.tsv", "message-sip-to-xmpp.tsv",
        "chatstates-xmpp-to-sip.tsv", "chatstates-sip-to-xmpp.tsv",
        "subscription-xmpp-to-sip.tsv", "subscription-sip-to-xmpp.tsv", "subscription-responses.tsv",
        "settings.tsv",
    ]

    // MARK: presence

    public struct PIDFTarget: Hashable, Sendable {
        public var basic: PIDFBasic
        public var show: XMPPPresence.Show?
        public var activity: String?
    }

    public struct LyncTarget: Hashable, Sendable {
        public var availability: Int
        public var activity: String?
    }

    public struct LyncRange: Hashable, Sendable {
        public var range: ClosedRange<Int>
        public var state: Sourced<PresenceState>
    }

    public internal(set) var xmppToPIDF: [PresenceState: Sourced<PIDFTarget>] = [:]
    public internal(set) var showToXMPP: [XMPPPresence.Show: Sourced<PresenceState>] = [:]
    /// `nil` value: the activity gives no opinion.
    public internal(set) var rpidToXMPP: [String: Sourced<PresenceState?>] = [:]
    public internal(set) var basicToXMPP: [PIDFBasic: Sourced<PresenceState>] = [:]
    public internal(set) var lyncToXMPP: [LyncRange] = []
    public internal(set) var xmppToLync: [PresenceState: Sourced<LyncTarget>] = [:]
    public internal(set) var precedence: [PresenceSource] = []

    // MARK: errors

    public struct ErrorKey: Hashable, Sendable, CustomStringConvertible {
        public var condition: StanzaError.Condition
        /// `nil` for the plain condition; `with-address`, `unreachable`.
        public var qualifier: String?
        public var description: String { condition.rawValue + (qualifier.map { "/\($0)" } ?? "") }
    }

    public struct SIPCodes: Hashable, Sendable {
        public var full: Int
        public var bare: Int
    }

    public struct XMPPErrorTarget: Hashable, Sendable {
        public var condition: StanzaError.Condition
        public var type: StanzaError.ErrorType
        public var ifUnauthorized: StanzaError.Condition?
    }

    public internal(set) var errorsXMPPToSIP: [ErrorKey: Sourced<SIPCodes>] = [:]
    var errorsSIPToXMPP: [StatusKey: Sourced<XMPPErrorTarget>] = [:]

    // MARK: addresses

    /// SIP domain → XMPP domain; `*` → `*` is identity for unlisted domains.
    public internal(set) var sipToXMPPDomains: [String: Sourced<String>] = [:]
    public internal(set) var xmppToSIPDomains: [String: Sourced<String>] = [:]
    /// Address-of-record (`sip:user@host`, lowercased host) → bare JID, and back.
    public internal(set) var aliasesToXMPP: [String: Sourced<JID>] = [:]
    public internal(set) var aliasesToSIP: [JID: Sourced<String>] = [:]

    // MARK: messages, chat states, subscriptions, settings

    public internal(set) var messageXMPPToSIP: [String: Sourced<String>] = [:]
    public internal(set) var messageSIPToXMPP: [String: Sourced<String>] = [:]
    public internal(set) var chatStatesXMPPToSIP: [ChatState: Sourced<IsComposingDocument.State?>] = [:]
    public internal(set) var chatStatesSIPToXMPP: [String: Sourced<ChatState>] = [:]
    public internal(set) var subscriptionXMPPToSIP: [XMPPPresence.PresenceType: Sourced<SIPSubscriptionAction?>] = [:]
    public internal(set) var subscriptionSIPToXMPP: [SIPSubscriptionEvent: Sourced<XMPPSubscriptionResult>] = [:]
    var subscriptionResponses: [StatusKey: Sourced<SubscriptionOutcome>] = [:]

    public internal(set) var pagerMaxBytes = 1300
    public internal(set) var htmlHandling = "xhtml-im"
    public internal(set) var tupleIDPrefix = "ID-"
    public internal(set) var priorityScale = 127

    /// The fields each message table may map, and where each may go.
    static let xmppMessageFields: [String: Set<String>] = [
        "body": ["body", "-"], "subject": ["Subject", "-"], "thread": ["Call-ID", "-"], "from": ["From"],
        "id": ["transaction", "-"], "to": ["Request-URI"], "type": ["-"], "xml:lang": ["Content-Language", "-"],
    ]
    static let sipMessageFields: [String: Set<String>] = [
        "Call-ID": ["thread", "-"], "Content-Language": ["xml:lang", "-"], "CSeq": ["-"], "From": ["from"],
        "Subject": ["subject", "-"], "Request-URI": ["to"], "body": ["body"], "transaction": ["id", "-"],
    ]

    // MARK: loading

    public init(files: [String: String]) throws(MappingProblems) {
        var problems: [MappingError] = []
        func table(_ name: String, _ columns: [String]) -> MappingTable? {
            guard let text = files[name] else {
                problems.append(MappingError(name, "missing: a mapping directory must hold \(name)"))
                return nil
            }
            return MappingTable.parse(file: name, text: text, columns: columns, problems: &problems)
        }
        func bad(_ table: MappingTable, _ row: MappingTable.Row, _ problem: String) {
            problems.append(MappingError(table.file, line: row.line, problem))
        }
        func state(_ text: String) -> PresenceState? { PresenceState(rawValue: text) }

        if let t = table("presence-xmpp-to-pidf.tsv", ["xmpp", "basic", "show", "activity", "ref", "lossy"]) {
            var builder = KeyedTableBuilder<PresenceState, PIDFTarget>(t)
            for row in t.rows {
                guard let key = state(row["xmpp"]) else { bad(t, row, "'\(row["xmpp"])' is not an XMPP presence state"); continue }
                guard let basic = PIDFBasic(rawValue: row["basic"]) else { bad(t, row, "basic must be open or closed"); continue }
                let show = row["show"] == "-" ? nil : XMPPPresence.Show(rawValue: row["show"])
                if row["show"] != "-", show == nil { bad(t, row, "'\(row["show"])' is not an XMPP show value"); continue }
                let activity = row["activity"] == "-" ? nil : row["activity"]
                if let activity, !RPIDVocabulary.activities.contains(activity) {
                    bad(t, row, "'\(activity)' is not an RPID activity (RFC 4480 §3.2)")
                    continue
                }
                builder.add(key, PIDFTarget(basic: basic, show: show, activity: activity), row: row, problems: &problems)
            }
            builder.checkCoverage(PresenceState.allCases, describe: \.rawValue, problems: &problems)
            xmppToPIDF = builder.entries
        }
        if let t = table("presence-show-to-xmpp.tsv", ["show", "xmpp", "ref", "lossy"]) {
            var builder = KeyedTableBuilder<XMPPPresence.Show, PresenceState>(t)
            for row in t.rows {
                guard let key = XMPPPresence.Show(rawValue: row["show"]) else { bad(t, row, "'\(row["show"])' is not a show value"); continue }
                guard let value = state(row["xmpp"]) else { bad(t, row, "'\(row["xmpp"])' is not an XMPP presence state"); continue }
                builder.add(key, value, row: row, problems: &problems)
            }
            builder.checkCoverage(XMPPPresence.Show.allCases, describe: \.rawValue, problems: &problems)
            showToXMPP = builder.entries
        }
        if let t = table("presence-rpid-to-xmpp.tsv", ["activity", "xmpp", "ref", "lossy"]) {
            var builder = KeyedTableBuilder<String, PresenceState?>(t)
            for row in t.rows {
                let key = row["activity"]
                guard RPIDVocabulary.activities.contains(key) else { bad(t, row, "'\(key)' is not an RPID activity (RFC 4480 §3.2)"); continue }
                let value = row["xmpp"] == "-" ? nil : state(row["xmpp"])
                if row["xmpp"] != "-", value == nil { bad(t, row, "'\(row["xmpp"])' is not an XMPP presence state"); continue }
                builder.add(key, value, row: row, problems: &problems)
            }
            builder.checkCoverage(RPIDVocabulary.activities, describe: { $0 }, problems: &problems)
            rpidToXMPP = builder.entries
        }
        if let t = table("presence-basic-to-xmpp.tsv", ["basic", "xmpp", "ref", "lossy"]) {
            var builder = KeyedTableBuilder<PIDFBasic, PresenceState>(t)
            for row in t.rows {
                guard let key = PIDFBasic(rawValue: row["basic"]) else { bad(t, row, "basic must be open or closed"); continue }
                guard let value = state(row["xmpp"]) else { bad(t, row, "'\(row["xmpp"])' is not an XMPP presence state"); continue }
                if key == .closed, value != .unavailable {
                    bad(t, row, "closed must map to unavailable (RFC 8048 §6.3 Table 2 note 1: MUST)")
                    continue
                }
                builder.add(key, value, row: row, problems: &problems)
            }
            builder.checkCoverage([PIDFBasic.open, .closed], describe: \.rawValue, problems: &problems)
            basicToXMPP = builder.entries
        }
        if let t = table("presence-lync-to-xmpp.tsv", ["min", "max", "xmpp", "ref", "lossy"]) {
            var ranges: [LyncRange] = []
            for row in t.rows {
                guard let low = Int(row["min"]), low >= 0 else { bad(t, row, "min must be a non-negative number"); continue }
                let high = row["max"] == "*" ? Int.max : Int(row["max"])
                guard let high, high >= low else { bad(t, row, "max must be a number ≥ min, or *"); continue }
                guard let value = state(row["xmpp"]) else { bad(t, row, "'\(row["xmpp"])' is not an XMPP presence state"); continue }
                ranges.append(LyncRange(range: low...high, state: Sourced(value: value, file: t.file, line: row.line, ref: row.ref, lossy: row.isLossy)))
            }
            ranges.sort { $0.range.lowerBound < $1.range.lowerBound }
            var next = 0
            for range in ranges {
                if range.range.lowerBound != next {
                    problems.append(MappingError(
                        t.file, line: range.state.line,
                        range.range.lowerBound > next ? "gap: nothing covers \(next)...\(range.range.lowerBound - 1)" : "overlaps the previous range at \(range.range.lowerBound)"))
                }
                next = range.range.upperBound == Int.max ? Int.max : range.range.upperBound + 1
            }
            if !ranges.isEmpty, next != Int.max {
                problems.append(MappingError(t.file, "the last range must end with * so every availability maps"))
            }
            if ranges.isEmpty { problems.append(MappingError(t.file, "no ranges")) }
            lyncToXMPP = ranges
        }
        if let t = table("presence-xmpp-to-lync.tsv", ["xmpp", "availability", "activity", "ref", "lossy"]) {
            var builder = KeyedTableBuilder<PresenceState, LyncTarget>(t)
            for row in t.rows {
                guard let key = state(row["xmpp"]) else { bad(t, row, "'\(row["xmpp"])' is not an XMPP presence state"); continue }
                guard let availability = Int(row["availability"]), availability >= 0 else {
                    bad(t, row, "availability must be a non-negative number")
                    continue
                }
                builder.add(key, LyncTarget(availability: availability, activity: row["activity"] == "-" ? nil : row["activity"]), row: row, problems: &problems)
            }
            builder.checkCoverage(PresenceState.allCases, describe: \.rawValue, problems: &problems)
            xmppToLync = builder.entries
        }
        if let t = table("presence-precedence.tsv", ["rank", "source", "ref"]) {
            var ranked: [(Int, PresenceSource)] = []
            for row in t.rows {
                guard let rank = Int(row["rank"]) else { bad(t, row, "rank must be a number"); continue }
                guard let source = PresenceSource(rawValue: row["source"]) else {
                    bad(t, row, "'\(row["source"])' is not a source (\(PresenceSource.allCases.map(\.rawValue).joined(separator: ", ")))")
                    continue
                }
                if ranked.contains(where: { $0.1 == source }) { bad(t, row, "\(source.rawValue) is listed twice"); continue }
                if ranked.contains(where: { $0.0 == rank }) { bad(t, row, "rank \(rank) is used twice"); continue }
                ranked.append((rank, source))
            }
            for source in PresenceSource.allCases where !ranked.contains(where: { $0.1 == source }) {
                problems.append(MappingError(t.file, "no row for \(source.rawValue): every source must be ranked"))
            }
            precedence = ranked.sorted { $0.0 < $1.0 }.map(\.1)
        }

        if let t = table("errors-xmpp-to-sip.tsv", ["condition", "qualifier", "full", "bare", "ref", "lossy"]) {
            var builder = KeyedTableBuilder<ErrorKey, SIPCodes>(t)
            for row in t.rows {
                guard let condition = StanzaError.Condition(rawValue: row["condition"]) else {
                    bad(t, row, "'\(row["condition"])' is not an RFC 6120 §8.3.3 condition")
                    continue
                }
                let qualifier = row["qualifier"] == "-" ? nil : row["qualifier"]
                if let qualifier, !["with-address", "unreachable"].contains(qualifier) {
                    bad(t, row, "qualifier must be -, with-address or unreachable")
                    continue
                }
                guard let full = Int(row["full"]), (300...699).contains(full), let bare = Int(row["bare"]), (300...699).contains(bare) else {
                    bad(t, row, "full and bare must be SIP final failure codes 300...699")
                    continue
                }
                if condition == .serviceUnavailable, full == 503 || bare == 503 {
                    bad(t, row, "service-unavailable must not map to 503 (RFC 7247 §7.1 note 5: 503 means the server is down)")
                    continue
                }
                builder.add(ErrorKey(condition: condition, qualifier: qualifier), SIPCodes(full: full, bare: bare), row: row, problems: &problems)
            }
            builder.checkCoverage(StanzaError.Condition.allCases.map { ErrorKey(condition: $0, qualifier: nil) }, describe: \.description, problems: &problems)
            errorsXMPPToSIP = builder.entries
        }
        if let t = table("errors-sip-to-xmpp.tsv", ["code", "condition", "type", "if_unauthorized", "ref", "lossy"]) {
            var builder = KeyedTableBuilder<StatusKey, XMPPErrorTarget>(t)
            for row in t.rows {
                guard let key = StatusKey.parse(row["code"]), (3...6).contains(key.statusClass) else {
                    bad(t, row, "code must be 300...699 or 3xx...6xx")
                    continue
                }
                guard let condition = StanzaError.Condition(rawValue: row["condition"]) else {
                    bad(t, row, "'\(row["condition"])' is not an RFC 6120 §8.3.3 condition")
                    continue
                }
                guard let type = StanzaError.ErrorType(rawValue: row["type"]) else {
                    bad(t, row, "type must be auth, cancel, continue, modify or wait")
                    continue
                }
                let unauthorized = row["if_unauthorized"] == "-" ? nil : StanzaError.Condition(rawValue: row["if_unauthorized"])
                if row["if_unauthorized"] != "-", unauthorized == nil { bad(t, row, "if_unauthorized must be - or a condition"); continue }
                builder.add(key, XMPPErrorTarget(condition: condition, type: type, ifUnauthorized: unauthorized), row: row, problems: &problems)
            }
            builder.checkCoverage((3...6).map(StatusKey.statusClass), describe: \.description, problems: &problems)
            errorsSIPToXMPP = builder.entries
        }

        if let t = table("domains.tsv", ["sip_domain", "xmpp_domain", "ref", "lossy"]) {
            var forward = KeyedTableBuilder<String, String>(t)
            var backward = KeyedTableBuilder<String, String>(t)
            for row in t.rows {
                let sip = row["sip_domain"].lowercased(), xmpp = row["xmpp_domain"].lowercased()
                if (sip == "*") != (xmpp == "*") { bad(t, row, "* must be on both sides (identity) or neither"); continue }
                if sip != "*" {
                    guard SIPURI("sip:\(sip)") != nil else { bad(t, row, "'\(sip)' is not a SIP host"); continue }
                    guard (try? JID(parsing: xmpp))?.isDomain == true else { bad(t, row, "'\(xmpp)' is not an XMPP domain"); continue }
                }
                forward.add(sip, xmpp, row: row, problems: &problems)
                backward.add(xmpp, sip, row: row, problems: &problems)
            }
            sipToXMPPDomains = forward.entries
            xmppToSIPDomains = backward.entries
        }
        if let t = table("aliases.tsv", ["sip", "xmpp", "ref", "lossy"]) {
            var forward = KeyedTableBuilder<String, JID>(t)
            var backward = KeyedTableBuilder<JID, String>(t)
            for row in t.rows {
                guard let uri = SIPURI(row["sip"]), uri.isSIP, uri.user != nil, uri.parameters.isEmpty, uri.headers.isEmpty else {
                    bad(t, row, "'\(row["sip"])' is not a sip: address-of-record (sip:user@host)")
                    continue
                }
                guard let jid = try? JID(parsing: row["xmpp"]), jid.localpart != nil, jid.isBare else {
                    bad(t, row, "'\(row["xmpp"])' is not a bare JID")
                    continue
                }
                let aor = uri.addressOfRecord.description
                forward.add(aor, jid, row: row, problems: &problems)
                backward.add(jid, aor, row: row, problems: &problems)
            }
            aliasesToXMPP = forward.entries
            aliasesToSIP = backward.entries
        }

        func fieldTable(_ name: String, _ from: String, _ to: String, _ allowed: [String: Set<String>]) -> [String: Sourced<String>] {
            guard let t = table(name, [from, to, "ref", "lossy"]) else { return [:] }
            var builder = KeyedTableBuilder<String, String>(t)
            for row in t.rows {
                guard let targets = allowed[row[from]] else {
                    bad(t, row, "'\(row[from])' is not a field (\(allowed.keys.sorted().joined(separator: ", ")))")
                    continue
                }
                guard targets.contains(row[to]) else {
                    bad(t, row, "\(row[from]) cannot go to '\(row[to])' (\(targets.sorted().joined(separator: " or ")))")
                    continue
                }
                builder.add(row[from], row[to], row: row, problems: &problems)
            }
            builder.checkCoverage(allowed.keys.sorted(), describe: { $0 }, problems: &problems)
            return builder.entries
        }
        messageXMPPToSIP = fieldTable("message-xmpp-to-sip.tsv", "xmpp", "sip", Self.xmppMessageFields)
        messageSIPToXMPP = fieldTable("message-sip-to-xmpp.tsv", "sip", "xmpp", Self.sipMessageFields)

        if let t = table("chatstates-xmpp-to-sip.tsv", ["chatstate", "iscomposing", "ref", "lossy"]) {
            var builder = KeyedTableBuilder<ChatState, IsComposingDocument.State?>(t)
            for row in t.rows {
                guard let key = ChatState(rawValue: row["chatstate"]) else { bad(t, row, "'\(row["chatstate"])' is not a XEP-0085 chat state"); continue }
                guard ["active", "idle", "-"].contains(row["iscomposing"]) else { bad(t, row, "iscomposing must be active, idle or -"); continue }
                builder.add(key, row["iscomposing"] == "-" ? nil : IsComposingDocument.State(rawValue: row["iscomposing"]), row: row, problems: &problems)
            }
            builder.checkCoverage(ChatState.allCases, describe: \.rawValue, problems: &problems)
            chatStatesXMPPToSIP = builder.entries
        }
        if let t = table("chatstates-sip-to-xmpp.tsv", ["iscomposing", "chatstate", "ref", "lossy"]) {
            var builder = KeyedTableBuilder<String, ChatState>(t)
            for row in t.rows {
                guard ["active", "idle"].contains(row["iscomposing"]) else { bad(t, row, "iscomposing must be active or idle (RFC 3994 §3)"); continue }
                guard let value = ChatState(rawValue: row["chatstate"]) else { bad(t, row, "'\(row["chatstate"])' is not a XEP-0085 chat state"); continue }
                builder.add(row["iscomposing"], value, row: row, problems: &problems)
            }
            builder.checkCoverage(["active", "idle"], describe: { $0 }, problems: &problems)
            chatStatesSIPToXMPP = builder.entries
        }

        if let t = table("subscription-xmpp-to-sip.tsv", ["xmpp", "sip", "ref", "lossy"]) {
            var builder = KeyedTableBuilder<XMPPPresence.PresenceType, SIPSubscriptionAction?>(t)
            let vocabulary: [XMPPPresence.PresenceType] = [.subscribe, .unsubscribe, .probe, .subscribed, .unsubscribed]
            for row in t.rows {
                guard let key = XMPPPresence.PresenceType(rawValue: row["xmpp"]), vocabulary.contains(key) else {
                    bad(t, row, "'\(row["xmpp"])' is not a subscription stanza type")
                    continue
                }
                let action = row["sip"] == "-" ? nil : SIPSubscriptionAction.parse(row["sip"])
                if row["sip"] != "-", action == nil { bad(t, row, "'\(row["sip"])' is not a SIP action (see the file's header)"); continue }
                builder.add(key, action, row: row, problems: &problems)
            }
            builder.checkCoverage(vocabulary, describe: \.rawValue, problems: &problems)
            subscriptionXMPPToSIP = builder.entries
        }
        if let t = table("subscription-sip-to-xmpp.tsv", ["sip", "xmpp", "ref", "lossy"]) {
            var builder = KeyedTableBuilder<SIPSubscriptionEvent, XMPPSubscriptionResult>(t)
            for row in t.rows {
                guard let key = SIPSubscriptionEvent.parse(row["sip"]) else { bad(t, row, "'\(row["sip"])' is not a SIP subscription event"); continue }
                guard let value = XMPPSubscriptionResult.parse(row["xmpp"]) else { bad(t, row, "'\(row["xmpp"])' is not a presence type, resubscribe or -"); continue }
                builder.add(key, value, row: row, problems: &problems)
            }
            let required: [SIPSubscriptionEvent] = [
                .subscribe, .unsubscribeInDialog, .fetch, .notify(.active, reason: nil), .notify(.pending, reason: nil),
                .notify(.terminated, reason: nil),
            ]
            builder.checkCoverage(required, describe: \.description, problems: &problems)
            subscriptionSIPToXMPP = builder.entries
        }
        if let t = table("subscription-responses.tsv", ["code", "outcome", "ref", "lossy"]) {
            var builder = KeyedTableBuilder<StatusKey, SubscriptionOutcome>(t)
            for row in t.rows {
                guard let key = StatusKey.parse(row["code"]), key.statusClass >= 2 else { bad(t, row, "code must be 200...699 or 2xx...6xx"); continue }
                guard let value = SubscriptionOutcome(rawValue: row["outcome"]) else {
                    bad(t, row, "outcome must be active, permanent, transient or interval")
                    continue
                }
                builder.add(key, value, row: row, problems: &problems)
            }
            builder.checkCoverage((2...6).map(StatusKey.statusClass), describe: \.description, problems: &problems)
            subscriptionResponses = builder.entries
        }

        if let t = table("settings.tsv", ["name", "value", "ref"]) {
            var seen: Set<String> = []
            for row in t.rows {
                let name = row["name"], value = row["value"]
                if !seen.insert(name).inserted { bad(t, row, "\(name) is set twice"); continue }
                switch name {
                case "pager-max-bytes":
                    guard let bytes = Int(value), bytes > 0 else { bad(t, row, "pager-max-bytes must be a positive number"); continue }
                    pagerMaxBytes = bytes
                case "html":
                    guard ["xhtml-im", "strip"].contains(value) else { bad(t, row, "html must be xhtml-im or strip"); continue }
                    htmlHandling = value
                case "tuple-id-prefix":
                    guard let first = value.unicodeScalars.first, first.properties.isAlphabetic || first == "_" else {
                        bad(t, row, "tuple-id-prefix must start with a letter or _ (tuple ids are xs:ID)")
                        continue
                    }
                    tupleIDPrefix = value
                case "priority-scale":
                    guard let scale = Int(value), (1...127).contains(scale) else { bad(t, row, "priority-scale must be 1...127"); continue }
                    priorityScale = scale
                default:
                    bad(t, row, "unknown setting \(name)")
                }
            }
            for name in ["pager-max-bytes", "html", "tuple-id-prefix", "priority-scale"] where !seen.contains(name) {
                problems.append(MappingError(t.file, "\(name) is not set"))
            }
        }

        if !problems.isEmpty { throw MappingProblems(errors: problems) }
        // Every table parsed: now each pair of opposite tables must round-trip or say lossy.
        let audit = auditRoundTrips()
        if !audit.isEmpty { throw MappingProblems(errors: audit) }
    }
}

extension StatusKey {
    var statusClass: Int {
        switch self {
        case .code(let code): code / 100
        case .statusClass(let digit): digit
        }
    }
}
