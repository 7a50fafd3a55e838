import SIPCore
import XMLCore
import XMPPCore

/// Translations from XMPP to SIP, driven by the tables of a `MappingSet`. The requests carry the
/// fields the translation decides (Request-URI, From, To, Call-ID, Subject, Content-*, Event,
/// Expires, body); Via, CSeq, Max-Forwards and tags belong to the SIP edge's transaction and
/// dialog layers.
/// A class, immutable: the gateway calls it for every message, and a struct holding a
/// `MappingSet` was copied on each call, retaining and releasing every one of its tables.
public final class XMPPToSIP: Sendable {
    public let mappings: MappingSet
    public let addresses: AddressMapper

    public init(_ mappings: MappingSet) {
        self.mappings = mappings
        self.addresses = AddressMapper(mappings)
    }

    // MARK: - Messages (RFC 7572 §4; sessions RFC 7573)

    /// A `<message/>` as a SIP MESSAGE, or `nil` when nothing in it has a SIP form (a lone
    /// receipt, a chat state mapped to nothing). A pager message over the pager limit is refused
    /// with `policy-violation` (RFC 7572 §6) unless it travels in a session (`session: true`).
    /// `congestionControlled`: the MESSAGE will travel over TCP or TLS (RFC 3428 §5 limits only
    /// what goes over UDP), so the pager limit does not apply either.
    public func message(_ message: XMPPMessage, session: Bool = false, congestionControlled: Bool = false) throws(TranslationRefusal) -> Translated<SIPRequest?> {
        var diagnostics: [String] = []
        guard message.effectiveType != .error else {
            throw TranslationRefusal(.badRequest, "an error message is answered as an error, not sent as a MESSAGE")
        }
        guard let body = message.bodies.preferred(for: message.language) else {
            return try bodiless(message, diagnostics: diagnostics)
        }
        var request = try addressed(.message, message.from, message.to, diagnostics: &diagnostics)
        let fields = mappings.messageXMPPToSIP
        func field(_ name: String, present: Bool, _ apply: () -> Void) {
            guard present else { return }
            if fields[name]?.value == "-" {
                diagnostics.append("dropped \(name == "type" ? "type='\(message.type?.rawValue ?? "")'" : "<\(name)/>"): no SIP equivalent (message-xmpp-to-sip.tsv)")
            } else {
                apply()
            }
        }
        field("thread", present: message.thread != nil) { request.headers.add(.callID, message.thread!) }
        field("subject", present: message.subject != nil) { request.headers.add(.subject, message.subject!) }
        field("xml:lang", present: message.language != nil) { request.headers.add(.contentLanguage, message.language!) }
        field("type", present: message.type != nil) {}
        field("id", present: message.id != nil) {}
        field("body", present: true) {
            request.headers.add(.contentType, "text/plain;charset=UTF-8")
            request.body = Array(body.text.utf8)
        }
        for other in message.bodies where other != body {
            diagnostics.append("dropped <body xml:lang='\(other.language ?? "")'/>: a MESSAGE carries one body")
        }
        for element in message.extensions {
            switch (element.namespace, element.name) {
            case (XMPPNamespace.receipts, "request"):
                // Answered after the SIP 2xx, by the bridge (XEP-0184 via SIPToXMPP.receipt).
                continue
            case (XMPPNamespace.xhtmlIM, "html"):
                diagnostics.append("dropped XHTML-IM: the plain <body/> is sent")
            default:
                diagnostics.append("dropped <\(element.name) xmlns='\(element.namespace)'/>: no SIP equivalent")
            }
        }
        if !session && !congestionControlled {
            let size = request.serialized().count
            if size > mappings.pagerMaxBytes {
                throw TranslationRefusal(
                    .policyViolation,
                    "a MESSAGE of \(size) bytes exceeds the \(mappings.pagerMaxBytes)-byte pager limit (RFC 3428 §8, RFC 7572 §6)",
                    diagnostics: diagnostics)
            }
        }
        return Translated(request, diagnostics: diagnostics)
    }

    /// A message without a body: a chat state becomes isComposing (RFC 7573 §6), a receipt has no
    /// SIP form in pager mode.
    private func bodiless(_ message: XMPPMessage, diagnostics: [String]) throws(TranslationRefusal) -> Translated<SIPRequest?> {
        var diagnostics = diagnostics
        let chatState = message.extensions.lazy.filter { $0.namespace == XMPPNamespace.chatStates }.compactMap { ChatState(rawValue: $0.name) }.first
        if let chatState {
            guard let state = mappings.chatStatesXMPPToSIP[chatState]?.value else {
                diagnostics.append("chat state \(chatState.rawValue) has no isComposing form (chatstates-xmpp-to-sip.tsv)")
                return Translated(nil, diagnostics: diagnostics)
            }
            var request = try addressed(.message, message.from, message.to, diagnostics: &diagnostics)
            if let thread = message.thread { request.headers.add(.callID, thread) }
            request.headers.add(.contentType, SIPMediaType.isComposing.essence)
            request.body = IsComposingDocument(state: state, contentType: "text/plain").serialized()
            return Translated(request, diagnostics: diagnostics)
        }
        if message.extensionElement("received", namespace: XMPPNamespace.receipts) != nil {
            diagnostics.append("dropped <received/>: SIP pager mode has no delivery receipts (RFC 7572 §4)")
        } else {
            diagnostics.append("nothing to send: the message has no body")
        }
        return Translated(nil, diagnostics: diagnostics)
    }

    /// A request with Request-URI and To from `to`, and From from `from` (bare JID, resource as
    /// `gr` in the URI: RFC 7572 §4 Table 1 note 1).
    private func addressed(_ method: SIPMethod, _ from: JID?, _ to: JID?, diagnostics: inout [String]) throws(TranslationRefusal) -> SIPRequest {
        guard let from else { throw TranslationRefusal(.badRequest, "no 'from'") }
        guard let to else { throw TranslationRefusal(.badRequest, "no 'to'") }
        let fromURI = try addresses.sipURI(from)
        let toURI = try addresses.sipURI(to)
        diagnostics += fromURI.diagnostics + toURI.diagnostics
        var request = SIPRequest(method: method, uri: toURI.value)
        request.headers.add(.from, "<\(fromURI.value)>")
        request.headers.add(.to, "<\(toURI.value)>")
        return request
    }

    // MARK: - Presence (RFC 8048 §6.2)

    public enum PresenceFormat: String, Sendable, CaseIterable {
        /// application/pidf+xml: RFC 8048 with the embedded show and RPID activities.
        case pidf
        /// application/msrtc-event-categories+xml, for Lync-style watchers.
        case msrtc
    }

    /// The current presence of a user's resources as one NOTIFY: a PIDF tuple per resource
    /// (RFC 8048 §6.2 "multiple resources"), or one Lync state for the most available resource.
    public func presence(_ presences: [XMPPPresence], format: PresenceFormat = .pidf) throws(TranslationRefusal) -> Translated<SIPRequest> {
        guard let first = presences.first, let from = first.from else {
            throw TranslationRefusal(.badRequest, "no presence with a 'from'")
        }
        guard presences.allSatisfy({ $0.from?.bare == from.bare }) else {
            throw TranslationRefusal(.badRequest, "presences of different users cannot share a document")
        }
        var diagnostics: [String] = []
        var request = try addressed(.notify, from.bare, first.to, diagnostics: &diagnostics)
        request.headers.add(.event, "presence")
        if let language = presences.lazy.compactMap(\.language).first { request.headers.add(.contentLanguage, language) }
        for presence in presences {
            if presence.id != nil { diagnostics.append("dropped presence id: no SIP equivalent (RFC 8048 §6.2 Table 1 note 3)") }
            for element in presence.extensions {
                diagnostics.append("dropped <\(element.name) xmlns='\(element.namespace)'/>: no PIDF equivalent")
            }
        }
        switch format {
        case .pidf:
            let document = try presenceDocument(presences)
            diagnostics += document.diagnostics
            request.headers.add(.contentType, SIPMediaType.pidf.essence)
            request.body = document.value.serialized()
        case .msrtc:
            let best = mostAvailable(presences)
            let state = PresenceState(best)
            guard let target = mappings.xmppToLync[state]?.value else {
                throw TranslationRefusal(.internalServerError, "no Lync availability for \(state.rawValue)")
            }
            let uri = try addresses.sipURI(from.bare, includeResource: false).value
            let document = MSRTCCategories.notification(
                uri: uri.description, availability: target.availability, activityToken: target.activity, note: best.status)
            request.headers.add(.contentType, SIPMediaType.msrtcEventCategories.essence)
            request.body = document.serialized()
        }
        return Translated(request, diagnostics: diagnostics)
    }

    /// The PIDF document `presence(_:format: .pidf)` carries, for a notifier that keeps the
    /// document and writes its own NOTIFYs (the gateway's embedded domain): the same
    /// translation without a request to serialize and parse back.
    public func presenceDocument(_ presences: [XMPPPresence]) throws(TranslationRefusal) -> Translated<PIDFDocument> {
        guard let from = presences.first?.from else { throw TranslationRefusal(.badRequest, "no presence with a 'from'") }
        guard presences.allSatisfy({ $0.from?.bare == from.bare }) else {
            throw TranslationRefusal(.badRequest, "presences of different users cannot share a document")
        }
        var diagnostics: [String] = []
        let document = try pidf(presences, entity: addresses.presenceEntity(from), diagnostics: &diagnostics)
        return Translated(document, diagnostics: diagnostics)
    }

    private func pidf(_ presences: [XMPPPresence], entity: String, diagnostics: inout [String]) throws(TranslationRefusal) -> PIDFDocument {
        var document = PIDFDocument(entity: entity)
        for presence in presences {
            let state = PresenceState(presence)
            guard let target = mappings.xmppToPIDF[state]?.value else { continue }
            let resource = presence.from?.resourcepart
            var tuple = PIDFTuple(id: mappings.tupleIDPrefix + TupleID.encode(resource ?? ""), basic: target.basic)
            tuple.embeddedShow = target.show?.rawValue
            if let from = presence.from { tuple.contact = try addresses.sipURI(from).value.description }
            if let priority = presence.priority, state != .unavailable {
                if priority < 0 {
                    diagnostics.append("negative priority \(priority) not mapped (RFC 8048 §6.2 Table 1 note 6)")
                } else {
                    tuple.contactPriority = Self.scaled(priority, scale: mappings.priorityScale)
                }
            }
            tuple.notes = presence.statuses.map { LanguageText($0.text, language: $0.language) }
            document.tuples.append(tuple)
        }
        // The person (RFC 4479): the activity of the most available resource.
        let best = mostAvailable(presences)
        if let activity = mappings.xmppToPIDF[PresenceState(best)]?.value.activity {
            document.persons = [PIDFPerson(id: "p", activities: [RPIDActivity(activity)])]
        }
        return document
    }

    /// RFC 8048 §6.2 Table 1 note 6: 0 → 0, `scale` → 1, three decimals, truncated so every
    /// value stays distinct (1 → 0.007, 126 → 0.992).
    static func scaled(_ priority: Int8, scale: Int) -> String {
        let thousandths = min(1000, Int(priority) * 1000 / scale)
        if thousandths >= 1000 { return "1" }
        let digits = String(thousandths).leftPadded(3)
        var trimmed = Substring(digits)
        while trimmed.count > 1, trimmed.last == "0" { trimmed.removeLast() }
        return thousandths == 0 ? "0" : "0." + trimmed
    }

    /// Resources most available first (then by priority): the order of tuples in a document, so
    /// that a user agent reading only the first tuple shows the best one.
    public func ordered(_ presences: [XMPPPresence]) -> [XMPPPresence] {
        func rank(_ presence: XMPPPresence) -> (Int, Int) {
            let state = PresenceState(presence)
            return (mappings.xmppToLync[state]?.value.availability ?? Int.max, -Int(presence.priority ?? 0))
        }
        return presences.sorted { rank($0) < rank($1) }
    }

    /// The presence a SIP user should see for several resources: the most available one, ordered
    /// by the Lync availability each state publishes (presence-xmpp-to-lync.tsv), lowest first.
    func mostAvailable(_ presences: [XMPPPresence]) -> XMPPPresence {
        func rank(_ presence: XMPPPresence) -> (Int, Int) {
            let state = PresenceState(presence)
            return (mappings.xmppToLync[state]?.value.availability ?? Int.max, -Int(presence.priority ?? 0))
        }
        return presences.min { rank($0) < rank($1) }!
    }

    // MARK: - Subscriptions (RFC 8048 §5, §7)

    /// A subscription stanza (subscribe, unsubscribe, probe, subscribed, unsubscribed) as the SIP
    /// request it calls for, or `nil` (subscription-xmpp-to-sip.tsv).
    public func subscription(_ presence: XMPPPresence) throws(TranslationRefusal) -> Translated<SIPRequest?> {
        guard let type = presence.type, let row = mappings.subscriptionXMPPToSIP[type] else {
            throw TranslationRefusal(.badRequest, "not a subscription stanza")
        }
        guard let action = row.value else {
            return Translated(nil, diagnostics: ["\(type.rawValue): nothing on the SIP side (subscription-xmpp-to-sip.tsv)"])
        }
        guard let from = presence.from, let to = presence.to else { throw TranslationRefusal(.badRequest, "no 'from' or 'to'") }
        var diagnostics: [String] = []
        switch action {
        case .subscribe(let expires):
            return Translated(try subscribe(from: from, to: to, expires: expires, diagnostics: &diagnostics), diagnostics: diagnostics)
        case .unsubscribeInDialog:
            return Translated(try subscribe(from: from, to: to, expires: 0, diagnostics: &diagnostics), diagnostics: diagnostics)
        case .fetch:
            diagnostics.append("a new dialog: a one-time fetch of the current state (RFC 8048 §7.1)")
            return Translated(try subscribe(from: from, to: to, expires: 0, diagnostics: &diagnostics), diagnostics: diagnostics)
        case .notify(let state, let reason):
            // The XMPP user answers a SIP watcher: a NOTIFY in the watcher's dialog, no body
            // (RFC 8048 §5.3.1 F32).
            var request = try addressed(.notify, from.bare, to, diagnostics: &diagnostics)
            request.headers.add(.event, "presence")
            request.headers.add(.subscriptionState, SIPSubscriptionState(state, reason: reason).description)
            return Translated(request, diagnostics: diagnostics)
        }
    }

    /// RFC 8048 §5.2.1 F2: From the bare JID, the resource in the Contact's `gr`.
    private func subscribe(from: JID, to: JID, expires: UInt32, diagnostics: inout [String]) throws(TranslationRefusal) -> SIPRequest {
        var request = try addressed(.subscribe, from.bare, to.bare, diagnostics: &diagnostics)
        request.headers.add(.event, "presence")
        request.headers.add(.accept, SIPMediaType.pidf.essence)
        request.headers.add(.expires, String(expires))
        let contact = try addresses.sipURI(from.bare, includeResource: false).value
        var contactValue = "<\(contact)>"
        if let resource = from.resourcepart {
            contactValue += ";gr=" + SIPURI.percentEncoded(resource, allowed: AddressMapper.paramAllowed)
        }
        request.headers.add(.contact, contactValue)
        return request
    }

    // MARK: - Errors (RFC 7247 §7.1)

    /// The SIP final response for a stanza error returned by `failedRecipient` (the `to` of the
    /// stanza that failed): 4xx for a full JID, the 6xx of errors-xmpp-to-sip.tsv for a bare JID.
    /// `qualifier` is `unreachable` when a remote domain could not be reached.
    public func response(for error: StanzaError, failedRecipient: JID, qualifier: String? = nil) -> Translated<SIPResponse> {
        var diagnostics: [String] = []
        let withAddress = (error.condition == .gone || error.condition == .redirect) && error.alternateAddress != nil
        let rowQualifier = withAddress ? "with-address" : qualifier
        let code = mappings.sipCode(for: error.condition, qualifier: rowQualifier, bareRecipient: failedRecipient.isBare)?.value ?? 500
        var response = SIPResponse(statusCode: code, reasonPhrase: error.text ?? SIPResponse.defaultReasonPhrase(code))
        if let address = error.alternateAddress, withAddress {
            // The new address as Contact (RFC 7247 §7.1 note 3).
            if address.hasPrefix("xmpp:"), let jid = try? JID(parsing: String(address.dropFirst(5))), let uri = try? addresses.sipURI(jid) {
                response.headers.add(.contact, "<\(uri.value)>")
            } else if let uri = SIPURI(address) {
                response.headers.add(.contact, "<\(uri)>")
            } else {
                diagnostics.append("dropped the new address \(address): not a URI")
            }
        }
        if error.applicationCondition != nil { diagnostics.append("dropped the application-specific condition: no SIP equivalent") }
        return Translated(response, diagnostics: diagnostics)
    }
}
