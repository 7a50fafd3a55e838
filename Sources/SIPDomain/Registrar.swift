import Foundation
import SIPCore
import SIPEdge

/// One registered endpoint of an address-of-record (RFC 3261 §10). A user signed in on several
/// devices has several (MPOP), each reached through the flow its REGISTER came on.
public struct SIPBinding: Hashable, Sendable {
    public var addressOfRecord: String
    /// The Contact as registered, without `expires` (which the registrar states itself).
    public var contact: SIPNameAddress
    public var callID: String
    public var cseq: UInt32
    public var expiresAt: Date
    /// Where requests for this endpoint go: the REGISTER's source (RFC 3581 and connection
    /// reuse make that reachable even behind NAT or over a UA-opened TCP connection).
    public var flow: SIPTarget
    public var userAgent: String?
    public var endpointClass: EndpointClass

    /// RFC 5626 §4.2's `+sip.instance`: the same device re-registering with a new Contact.
    public var instance: String? { contact.parameters["+sip.instance"] }
}

/// The registrar's decision for one REGISTER (RFC 3261 §10.3 steps 6–8), computed without I/O.
enum Registrar {
    enum Failure: Error, Equatable {
        /// 423 with Min-Expires (§10.3 step 7).
        case intervalTooBrief(UInt32)
        case badRequest(String)
        case forbidden(String)
    }

    /// Applies a REGISTER to an address-of-record's bindings; returns the new set.
    static func apply(_ request: SIPRequest, aor: String, to existing: [SIPBinding], flow: SIPTarget, now: Date,
                      configuration: EmbeddedDomainConfiguration) -> Result<[SIPBinding], Failure> {
        var bindings = existing.filter { $0.expiresAt > now }
        guard let callID = request.callID, let cseq = request.cseq?.sequence else {
            return .failure(.badRequest("missing Call-ID or CSeq"))
        }
        let contactLines = request.headers.lines(.contact)
        if contactLines.isEmpty { return .success(bindings) }  // a query (§10.2.3)
        let parsed = contactLines.map(SIPContact.parse)
        if parsed.contains(where: { $0 == nil }) { return .failure(.badRequest("unparsable Contact")) }
        let contacts = parsed.compactMap { $0 }
        if contacts.contains(.wildcard) {
            // §10.3 step 6: `*` only alone, with Expires: 0; it removes every binding.
            guard contacts.count == 1, request.expires == 0 else {
                return .failure(.badRequest("wildcard Contact needs Expires: 0 and no other Contact"))
            }
            return .success([])
        }
        let userAgent = request.headers[.userAgent]
        for case .addresses(let addresses) in contacts {
            for address in addresses {
                let requested = address.expires ?? request.expires ?? configuration.defaultExpires
                if requested != 0, requested < configuration.minimumExpires {
                    return .failure(.intervalTooBrief(configuration.minimumExpires))
                }
                var contact = address
                contact.parameters.set("expires", nil)
                let sameURI = { (binding: SIPBinding) in binding.contact.uri == contact.uri }
                let instance = contact.parameters["+sip.instance"]
                if let index = bindings.firstIndex(where: { sameURI($0) || (instance != nil && $0.instance == instance) }) {
                    // §10.3 step 7: same Call-ID needs a higher CSeq, else the request is stale.
                    if bindings[index].callID == callID, cseq <= bindings[index].cseq {
                        return .failure(.badRequest("CSeq not above the binding's"))
                    }
                    bindings.remove(at: index)
                }
                guard requested > 0 else { continue }
                let seconds = min(requested, configuration.maximumExpires)
                bindings.append(SIPBinding(
                    addressOfRecord: aor, contact: contact, callID: callID, cseq: cseq,
                    expiresAt: now.addingTimeInterval(TimeInterval(seconds)), flow: flow, userAgent: userAgent,
                    endpointClass: configuration.endpointClass(contactParameters: contact.parameters, userAgent: userAgent)))
            }
        }
        if bindings.count > configuration.maximumBindings {
            return .failure(.forbidden("more than \(configuration.maximumBindings) registrations"))
        }
        return .success(bindings)
    }

    /// §10.3 step 8: the 200 lists every current binding with its remaining time.
    static func success(_ request: SIPRequest, bindings: [SIPBinding], now: Date, toTag: String? = nil) -> SIPResponse {
        var response = request.makeResponse(200, toTag: toTag)
        for binding in bindings {
            var contact = binding.contact
            contact.parameters.set("expires", .some(String(max(0, Int(binding.expiresAt.timeIntervalSince(now).rounded())))))
            response.headers.add(.contact, contact.description)
        }
        response.headers.add(.date, Self.httpDate(now))
        return response
    }

    /// RFC 3261 §20.17: an RFC 1123 date in GMT.
    static func httpDate(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: date)
    }
}
