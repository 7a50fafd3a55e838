import Foundation
import SIPCore
import XMLCore
import XMPPCore

/// Translations from SIP to XMPP, driven by the tables of a `MappingSet`. Pure functions: no I/O,
/// no clock, no state between calls.
/// A class, immutable: the gateway calls it for every message, and a struct holding a
/// `MappingSet` was copied on each call, retaining and releasing every one of its tables.
public final class SIPToXMPP: Sendable {
    public let mappings: MappingSet
    public let addresses: AddressMapper

    public init(_ mappings: MappingSet) {
        self.mappings = mappings
        self.addresses = AddressMapper(mappings)
    }

    // MARK: - Messages (RFC 7572 §5; sessions RFC 7573)

    /// A MESSAGE as a `<message/>`. In pager mode the stanza has no type (RFC 7572 §5); inside a
    /// Lync-style IM session (`session: true`) it is a chat message (RFC 7573).
    public func message(_ request: SIPRequest, session: Bool = false) throws(TranslationRefusal) -> Translated<XMPPMessage> {
        var diagnostics: [String] = []
        var message = try envelope(request, session: session, diagnostics: &diagnostics)
        try keepingDiagnostics(diagnostics) { () throws(TranslationRefusal) in
            try body(request.body, contentType: request.contentType, into: &message, diagnostics: &diagnostics)
        }
        return Translated(message, diagnostics: diagnostics)
    }

    /// The first message of a Lync IM INVITE, carried base64 in `ms-text-format` (protocols.md
    /// §4.2); `nil` when the INVITE carries none.
    public func sessionInvite(_ invite: SIPRequest) throws(TranslationRefusal) -> Translated<XMPPMessage?> {
        var diagnostics: [String] = []
        guard let value = invite.headers[MSTextFormat.header] else {
            return Translated(nil, diagnostics: ["no ms-text-format: the INVITE carries no first message"])
        }
        guard let format = MSTextFormat(headerValue: value) else {
            throw TranslationRefusal(.badRequest, "ms-text-format without a media type and a base64 ms-body")
        }
        var message = try envelope(invite, session: true, diagnostics: &diagnostics)
        var media = SIPMediaType(format.contentType.type, format.contentType.subtype)
        if let charset = format.contentType.charset { media.parameters.set("charset", .some(charset)) }
        try keepingDiagnostics(diagnostics) { () throws(TranslationRefusal) in
            try body(format.body, contentType: media, into: &message, diagnostics: &diagnostics)
        }
        return Translated(message, diagnostics: diagnostics)
    }

    /// Runs `work`; a refusal it throws carries the diagnostics gathered before it.
    private func keepingDiagnostics(_ before: [String], _ work: () throws(TranslationRefusal) -> Void) throws(TranslationRefusal) {
        do {
            try work()
        } catch {
            var refusal = error
            refusal.diagnostics = before + refusal.diagnostics
            throw refusal
        }
    }

    /// Addresses and header fields, per message-sip-to-xmpp.tsv.
    private func envelope(_ request: SIPRequest, session: Bool, diagnostics: inout [String]) throws(TranslationRefusal) -> XMPPMessage {
        // RFC 7247 §8: never gateway a SIPS-addressed request.
        if request.uri.scheme == .sips || request.to?.uri.scheme == .sips {
            throw TranslationRefusal(.policyViolation, "a SIPS request must not be gatewayed to XMPP (RFC 7247 §8)")
        }
        guard let fromHeader = request.from else { throw TranslationRefusal(.badRequest, "no From") }
        let from = try addresses.jid(fromHeader.uri)
        let to = try addresses.jid(request.uri)
        diagnostics += from.diagnostics + to.diagnostics
        var message = XMPPMessage(from: from.value, to: to.value, type: session ? .chat : nil)
        let fields = mappings.messageSIPToXMPP
        func field(_ name: String, present: Bool, _ apply: () -> Void) {
            guard present else { return }
            if fields[name]?.value == "-" {
                diagnostics.append("dropped \(name): no XMPP equivalent (message-sip-to-xmpp.tsv)")
            } else {
                apply()
            }
        }
        field("Call-ID", present: request.callID != nil) { message.thread = request.callID }
        field("Subject", present: request.headers[.subject].map { !$0.isEmpty } ?? false) {
            message.subjects = [XMPPLocalizedText(request.headers[.subject]!)]
        }
        field("Content-Language", present: request.headers[.contentLanguage] != nil) {
            message.language = request.headers[.contentLanguage]?.split(separator: ",").first.map { String($0).trimmingXMLSpaceAndNewlines() }
        }
        field("CSeq", present: request.cseq != nil) {}
        let branch = request.topVia?.branch
        field("transaction", present: branch != nil) { message.id = branch }
        return message
    }

    /// Puts a SIP body into `message` by its media type (RFC 7572 §7).
    private func body(_ bytes: [UInt8], contentType: SIPMediaType?, into message: inout XMPPMessage, diagnostics: inout [String]) throws(TranslationRefusal) {
        guard !bytes.isEmpty else {
            diagnostics.append("the MESSAGE has no body")
            return
        }
        let type = contentType ?? .textPlain
        switch type.essence {
        case "text/plain":
            message.bodies = [XMPPLocalizedText(text(bytes, charset: type.charset, diagnostics: &diagnostics))]
        case "text/html":
            let html = text(bytes, charset: type.charset, diagnostics: &diagnostics)
            message.bodies = [XMPPLocalizedText(HTMLText.strip(html))]
            if mappings.htmlHandling == "xhtml-im", let xhtml = HTMLText.xhtmlIM(html) {
                message.extensions.append(xhtml)
            } else if mappings.htmlHandling == "xhtml-im" {
                diagnostics.append("text/html is not well-formed: sent as plain text only")
            } else {
                diagnostics.append("text/html reduced to plain text (settings.tsv html=strip)")
            }
        case "application/im-iscomposing+xml":
            let document: IsComposingDocument
            do {
                document = try IsComposingDocument(bytes: bytes)
            } catch {
                throw TranslationRefusal(.badRequest, "isComposing body: \(error)")
            }
            guard let state = mappings.chatStatesSIPToXMPP[document.state.rawValue]?.value else {
                diagnostics.append("isComposing state \(document.state.rawValue) has no chat state")
                return
            }
            message.type = .chat
            message.extensions.append(XMLElement(state.rawValue, namespace: XMPPNamespace.chatStates))
            if document.refresh != nil || document.lastActive != nil {
                diagnostics.append("dropped isComposing refresh/lastactive: XEP-0085 has no equivalent")
            }
        default:
            throw TranslationRefusal(.notAcceptable, "\(type.essence) cannot be carried to XMPP (RFC 7572 §7)")
        }
    }

    private func text(_ bytes: [UInt8], charset: String?, diagnostics: inout [String]) -> String {
        switch charset?.lowercased() {
        case nil, "utf-8", "utf8", "us-ascii":
            return String(decoding: bytes, as: UTF8.self)
        case "iso-8859-1", "latin1":
            return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
        case let other?:
            diagnostics.append("charset \(other) read as UTF-8")
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    // MARK: - Presence (RFC 8048 §6.3)

    /// What a NOTIFY means on the XMPP side: a subscription stanza (or renewal) and the
    /// presence of each resource.
    public struct Notification: Sendable, Equatable {
        public var subscription: XMPPSubscriptionResult
        /// The `subscribed`/`unsubscribed` stanza, when `subscription` calls for one.
        public var subscriptionStanza: XMPPPresence?
        public var presences: [XMPPPresence]
    }

    /// A presence NOTIFY (PIDF, msrtc categories, or empty). A `pending` NOTIFY produces no
    /// presence (RFC 8048 §5.2.1 F6-F7).
    public func notify(_ request: SIPRequest) throws(TranslationRefusal) -> Translated<Notification> {
        var diagnostics: [String] = []
        guard let fromHeader = request.from, let toHeader = request.to else { throw TranslationRefusal(.badRequest, "no From or To") }
        let from = try addresses.jid(fromHeader.uri)
        // The watcher: the Request-URI carries the gr of the subscribing resource (RFC 8048 F2).
        let watcherURI = request.uri.gr != nil ? request.uri : toHeader.uri
        let to = try addresses.jid(watcherURI)
        diagnostics += from.diagnostics
        let contact = from.value.bare
        let state = request.subscriptionState ?? SIPSubscriptionState(.active)
        let event = SIPSubscriptionEvent.notify(state.state, reason: state.state == .terminated ? state.reason : nil)
        let result = mappings.subscriptionSIPToXMPP[event]?.value
            ?? mappings.subscriptionSIPToXMPP[.notify(state.state, reason: nil)]?.value ?? .none
        var notification = Notification(subscription: result, subscriptionStanza: nil, presences: [])
        if case .stanza(let type) = result {
            notification.subscriptionStanza = XMPPPresence(from: contact, to: to.value.bare, type: type)
        }
        if case .resubscribe = result {
            diagnostics.append("\(state): renew the SIP subscription; the authorization stands (RFC 8048 §5.2.2)")
        }
        guard state.state == .active else {
            if state.state == .pending { diagnostics.append("pending: no presence until the subscription is active (RFC 8048 §5.2.1)") }
            return Translated(notification, diagnostics: diagnostics)
        }
        let language = request.headers[.contentLanguage]?.trimmingXMLSpaceAndNewlines()
        var presences: [XMPPPresence]
        if request.body.isEmpty {
            // RFC 8048 §5.2.1: a NOTIFY without a body means unknown: closed.
            diagnostics.append("empty NOTIFY: presence unknown, sent as unavailable (RFC 8048 §5.2.1)")
            presences = [XMPPPresence(from: contact, to: to.value, type: .unavailable)]
        } else {
            switch request.contentType?.essence {
            case SIPMediaType.pidf.essence:
                presences = try pidfPresences(request.body, from: contact, to: to.value, diagnostics: &diagnostics)
            case SIPMediaType.msrtcEventCategories.essence:
                presences = try msrtcPresences(request.body, from: contact, to: to.value, diagnostics: &diagnostics)
            default:
                throw TranslationRefusal(.notAcceptable, "\(request.contentType?.essence ?? "no Content-Type") is not a presence document Stox reads")
            }
        }
        for index in presences.indices where language != nil { presences[index].language = language }
        notification.presences = presences
        return Translated(notification, diagnostics: diagnostics)
    }

    private func pidfPresences(_ body: [UInt8], from: JID, to: JID, diagnostics: inout [String]) throws(TranslationRefusal) -> [XMPPPresence] {
        let document: PIDFDocument
        do {
            document = try PIDFDocument(bytes: body)
        } catch {
            throw TranslationRefusal(.badRequest, "PIDF body: \(error)")
        }
        let activities = document.persons.flatMap(\.activities)
        let personNote = document.persons.lazy.compactMap(\.notes.preferred).first
        var presences: [XMPPPresence] = []
        for tuple in document.tuples {
            let resource = resourceName(tuple)
            let evidence = MappingSet.PresenceEvidence(
                embeddedShow: tuple.embeddedShow.flatMap(XMPPPresence.Show.init(rawValue:)),
                activities: activities.map(\.name), basic: tuple.basic)
            guard let (state, _) = mappings.presenceState(evidence) else {
                diagnostics.append("tuple \(tuple.id) says nothing about availability: skipped")
                continue
            }
            let fullFrom = (try? from.with(resource: resource)) ?? from
            let (type, show) = state.typeAndShow
            var presence = XMPPPresence(from: fullFrom, to: to, type: type, show: show)
            let notes = tuple.notes.isEmpty ? (personNote.map { [$0] } ?? document.notes) : tuple.notes
            presence.statuses = notes.map { XMPPLocalizedText($0.text, language: $0.language) }
            if presence.statuses.isEmpty, let other = activities.first(where: { $0.name == "other" })?.text {
                presence.statuses = [XMPPLocalizedText(other)]
            }
            if type == nil, let written = tuple.contactPriority, let value = Double(written) {
                // RFC 8048 §6.3 Table 2 note 2 (Table 1 note 6): 0...1 back to 0...127.
                presence.priority = Int8(clamping: Int((value * Double(mappings.priorityScale)).rounded()))
            }
            presences.append(presence)
        }
        if presences.isEmpty {
            diagnostics.append("no usable tuple: presence unknown, sent as unavailable")
            presences = [XMPPPresence(from: from, to: to, type: .unavailable)]
        }
        return presences
    }

    /// The resource a tuple stands for: its id without the tuple-id prefix (RFC 8048 §6.2
    /// note 2), decoded; else its contact's `gr`; else the id.
    private func resourceName(_ tuple: PIDFTuple) -> String {
        if tuple.id.hasPrefix(mappings.tupleIDPrefix) {
            let rest = String(tuple.id.dropFirst(mappings.tupleIDPrefix.count))
            if !rest.isEmpty { return TupleID.decode(rest) }
        }
        if let contact = tuple.contact, let uri = SIPURI(contact), let gr = uri.gr { return SIPURI.percentDecoded(gr) }
        return tuple.id
    }

    private func msrtcPresences(_ body: [UInt8], from: JID, to: JID, diagnostics: inout [String]) throws(TranslationRefusal) -> [XMPPPresence] {
        let document: MSRTCCategories
        do {
            document = try MSRTCCategories(bytes: body)
        } catch {
            throw TranslationRefusal(.badRequest, "msrtc categories: \(error)")
        }
        guard let (state, _) = mappings.presenceState(.init(lyncAvailability: document.availability)) else {
            diagnostics.append("no availability in the categories: presence unknown, sent as unavailable")
            return [XMPPPresence(from: from, to: to, type: .unavailable)]
        }
        let (type, show) = state.typeAndShow
        var presence = XMPPPresence(from: from, to: to, type: type, show: show)
        if let note = document.note, !note.isEmpty { presence.statuses = [XMPPLocalizedText(note)] }
        if let token = document.activityToken { diagnostics.append("Lync activity \(token) carried only as the state's availability") }
        return [presence]
    }

    // MARK: - Subscriptions (RFC 8048 §5, §7)

    /// A SUBSCRIBE from a SIP watcher as the XMPP stanza it calls for, if any.
    public func subscription(_ request: SIPRequest) throws(TranslationRefusal) -> Translated<XMPPPresence?> {
        guard let fromHeader = request.from, let toHeader = request.to else { throw TranslationRefusal(.badRequest, "no From or To") }
        if let event = request.event, !event.package.caseInsensitiveEquals("presence") {
            throw TranslationRefusal(.featureNotImplemented, "event package \(event.package) is not presence")
        }
        let from = try addresses.jid(fromHeader.uri)
        let to = try addresses.jid(request.uri.isSIP ? request.uri : toHeader.uri)
        let key: SIPSubscriptionEvent
        if request.expires == 0 {
            // An existing dialog (the To has a tag) ends; a new one is a one-time fetch.
            key = toHeader.tag != nil ? .unsubscribeInDialog : .fetch
        } else {
            key = .subscribe
        }
        var diagnostics = from.diagnostics + to.diagnostics
        guard let row = mappings.subscriptionSIPToXMPP[key] else { return Translated(nil, diagnostics: diagnostics) }
        switch row.value {
        case .stanza(let type):
            return Translated(XMPPPresence(from: from.value.bare, to: to.value.bare, type: type), diagnostics: diagnostics)
        case .resubscribe, .none:
            diagnostics.append("\(key): no stanza (subscription-sip-to-xmpp.tsv)")
            return Translated(nil, diagnostics: diagnostics)
        }
    }

    /// What a final response to the gateway's SUBSCRIBE means (RFC 8048 §5.2.2).
    public func subscriptionOutcome(_ response: SIPResponse) -> Translated<SubscriptionOutcome> {
        guard let row = mappings.subscriptionOutcome(forStatus: response.statusCode) else {
            return Translated(.transient, diagnostics: ["\(response.statusCode) has no row: treated as transient"])
        }
        var diagnostics: [String] = []
        if row.value == .interval, let minimum = response.minExpires {
            diagnostics.append("subscribe again with Expires \(minimum) (Min-Expires)")
        }
        return Translated(row.value, diagnostics: diagnostics)
    }

    // MARK: - Errors (RFC 7247 §7.2)

    /// The stanza error a SIP failure response becomes. `senderAuthorized` is false when the
    /// XMPP sender has no presence subscription to the recipient: conditions that would reveal
    /// presence are then replaced (RFC 6120 §8.3.3.19).
    public func error(_ response: SIPResponse, senderAuthorized: Bool = true) -> Translated<StanzaError> {
        var diagnostics: [String] = []
        guard let row = mappings.errorTarget(forStatus: response.statusCode) else {
            return Translated(StanzaError(.undefinedCondition, text: response.reasonPhrase), diagnostics: ["\(response.statusCode) has no row"])
        }
        var condition = row.value.condition
        var type = row.value.type
        if !senderAuthorized, let replacement = row.value.ifUnauthorized {
            diagnostics.append("\(condition.rawValue) would reveal presence to an unauthorized sender: \(replacement.rawValue) instead (RFC 6120 §8.3.3.19)")
            condition = replacement
            type = replacement.defaultType
        }
        // RFC 7247 §7: the Reason-Phrase, or Lync's ms-diagnostics reason, becomes <text/>.
        var text = response.reasonPhrase
        if let msDiagnostics = response.headers[.msDiagnostics], let reason = SIPParameters.parseTokenWithParameters(msDiagnostics)?.parameters["reason"] {
            text = reason
        }
        var error = StanzaError(condition, type: type, text: text.isEmpty ? nil : text)
        if condition == .gone || condition == .redirect, let contact = response.contacts.first {
            // RFC 7247 §7.2 note 1: 301 carries the new address; an XMPP URI when it maps.
            if let jid = try? addresses.jid(contact.uri) {
                error.alternateAddress = "xmpp:\(jid.value)"
            } else {
                error.alternateAddress = contact.uri.description
            }
        }
        return Translated(error, diagnostics: diagnostics)
    }

    // MARK: - Receipts (XEP-0184)

    /// The `<received/>` for `original` once SIP accepted it: only after a 2xx, and only if the
    /// sender asked (XEP-0184 §5).
    public func receipt(for original: XMPPMessage, after response: SIPResponse) -> Translated<XMPPMessage?> {
        guard original.extensionElement("request", namespace: XMPPNamespace.receipts) != nil else {
            return Translated(nil, diagnostics: ["no receipt requested"])
        }
        guard response.isSuccess else {
            return Translated(nil, diagnostics: ["\(response.statusCode): not accepted, so no receipt; the sender gets an error"])
        }
        guard let id = original.id else {
            return Translated(nil, diagnostics: ["the message has no id to acknowledge (XEP-0184 §5)"])
        }
        let received = XMLElement("received", namespace: XMPPNamespace.receipts, attributes: ["id": id])
        return Translated(XMPPMessage(from: original.to, to: original.from, extensions: [received]))
    }
}

/// Tuple ids are xs:ID values (RFC 8048 §6.2 note 2): resources are written with any byte outside
/// `[A-Za-z0-9.-]` as `_XX`, and read back the same way.
enum TupleID {
    static func encode(_ resource: String) -> String {
        var output = ""
        for byte in resource.utf8 {
            if (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || byte == 0x2E || byte == 0x2D {
                output.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                output += "_" + String(byte, radix: 16, uppercase: true).leftPadded(2)
            }
        }
        return output
    }

    static func decode(_ id: String) -> String {
        var bytes: [UInt8] = []
        let utf8 = Array(id.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "_"), index + 2 < utf8.count,
                let value = UInt8(String(decoding: utf8[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                index += 3
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
