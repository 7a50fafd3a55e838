import SIPCore
import XMPPCore

/// Addresses across the gateway (RFC 7247 §6): SIP URIs ⇄ JIDs, with XEP-0106 escaping of the
/// local part, the resource ⇄ `gr` parameter, the domain map and per-user aliases of
/// `Mappings/`. SIPS-addressed requests never become XMPP (§8).
/// A class, immutable: the gateway calls it for every message, and a struct holding a
/// `MappingSet` was copied on each call, retaining and releasing every one of its tables.
public final class AddressMapper: Sendable {
    public let mappings: MappingSet

    public init(_ mappings: MappingSet) {
        self.mappings = mappings
    }

    /// RFC 7247 §6.4: a SIP (or im:/pres:) URI as a JID; its `gr` parameter becomes the resource.
    public func jid(_ uri: SIPURI) throws(TranslationRefusal) -> Translated<JID> {
        var diagnostics: [String] = []
        if uri.scheme == .sips {
            throw TranslationRefusal(.policyViolation, "a SIPS address must not be gatewayed to XMPP (RFC 7247 §8)")
        }
        var user: String?
        var host: String
        if uri.isSIP {
            user = uri.user
            host = uri.host.lowercased()
            if uri.password != nil { diagnostics.append("dropped the password of \(uri): no XMPP equivalent") }
            if uri.port != nil { diagnostics.append("dropped the port of \(uri): an XMPP address has none") }
            for parameter in uri.parameters where !parameter.name.caseInsensitiveEquals("gr") && !parameter.name.caseInsensitiveEquals("user") {
                diagnostics.append("dropped URI parameter \(parameter.name) of \(uri): no XMPP equivalent")
            }
        } else if uri.scheme == .im || uri.scheme == .pres, let opaque = uri.opaque, let at = opaque.lastIndex(of: "@") {
            // RFC 3860/3859: im:user@host, pres:user@host.
            user = String(opaque[..<at])
            host = String(opaque[opaque.index(after: at)...]).lowercased()
        } else {
            throw TranslationRefusal(.jidMalformed, "\(uri.scheme.rawValue): URIs have no XMPP address (RFC 7247 §6.4)")
        }
        let resource = uri.isSIP ? uri.gr.map(SIPURI.percentDecoded) : nil
        // An alias wins over the algorithm.
        let aor = "sip:\(user.map { $0 + "@" } ?? "")\(host)"
        if let alias = mappings.aliasesToXMPP[aor] {
            return try build(alias.value.localpart, alias.value.domainpart, resource, diagnostics)
        }
        guard let domain = mapDomain(host, mappings.sipToXMPPDomains) else {
            throw TranslationRefusal(.itemNotFound, "the SIP domain \(host) is not presented to XMPP (domains.tsv)")
        }
        // §6.4 steps 3-5: percent-decode, read as UTF-8, escape what a localpart may not carry.
        let localpart = user.map { JIDEscaping.escape(SIPURI.percentDecoded($0)) }
        return try build(localpart, domain, resource, diagnostics)
    }

    private func build(_ localpart: String?, _ domain: String, _ resource: String?, _ diagnostics: [String]) throws(TranslationRefusal) -> Translated<JID> {
        do {
            return Translated(try JID(localpart: localpart, domainpart: domain, resourcepart: resource), diagnostics: diagnostics)
        } catch {
            throw TranslationRefusal(.jidMalformed, "no valid JID: \(error)")
        }
    }

    /// RFC 7247 §6.5: a JID as a SIP URI; the resource becomes `;gr=` when `includeResource`.
    public func sipURI(_ jid: JID, includeResource: Bool = true) throws(TranslationRefusal) -> Translated<SIPURI> {
        var uri: SIPURI
        if let alias = mappings.aliasesToSIP[jid.bare], let parsed = SIPURI(alias.value) {
            uri = parsed
        } else {
            guard let domain = mapDomain(jid.domainpart, mappings.xmppToSIPDomains) else {
                throw TranslationRefusal(.itemNotFound, "the XMPP domain \(jid.domainpart) is not presented to SIP (domains.tsv)")
            }
            // §6.5 steps 3 and 5: undo XEP-0106, then percent-encode what a SIP user part may not carry.
            let user = jid.localpart.map { SIPURI.percentEncoded(JIDEscaping.unescape($0), allowed: SIPURI.userAllowedCharacters) }
            uri = SIPURI(scheme: .sip, user: user, host: domain)
        }
        if includeResource, let resource = jid.resourcepart {
            // §6.5 step 8 (as its example shows): the resource as a gr parameter, percent-encoded.
            uri.parameters.append("gr", raw: SIPURI.percentEncoded(resource, allowed: Self.paramAllowed))
        }
        return Translated(uri)
    }

    /// The `pres:` URI of a bare JID, as a PIDF entity (RFC 3863 §4.1.1, RFC 8048 §6.2).
    public func presenceEntity(_ jid: JID) throws(TranslationRefusal) -> String {
        let uri = try sipURI(jid.bare, includeResource: false).value
        return "pres:" + (uri.user.map { $0 + "@" } ?? "") + uri.host
    }

    private func mapDomain(_ domain: String, _ table: [String: Sourced<String>]) -> String? {
        if let mapped = table[domain] { return mapped.value }
        return table["*"] != nil ? domain : nil
    }

    /// Characters a URI parameter value may carry unescaped besides unreserved (RFC 3261 §25 paramchar).
    static let paramAllowed: Set<UInt8> = Set("[]/:&+$".utf8)
}

extension String {
    func caseInsensitiveEquals(_ other: String) -> Bool { lowercased() == other.lowercased() }
}
