/// A SIP dialog (RFC 3261 §12): its identity, the route set, the remote target and the two
/// sequence numbers, and how requests inside it are built.
public struct SIPDialog: Hashable, Sendable {
    /// §12: Call-ID, local tag, remote tag.
    public struct ID: Hashable, Sendable {
        public var callID: String
        public var localTag: String
        public var remoteTag: String

        public init(callID: String, localTag: String, remoteTag: String) {
            self.callID = callID
            self.localTag = localTag
            self.remoteTag = remoteTag
        }
    }

    public var id: ID
    public var localURI: SIPNameAddress
    public var remoteURI: SIPNameAddress
    public var remoteTarget: SIPURI
    /// In the order requests traverse it.
    public var routeSet: [SIPNameAddress]
    public var localSequence: UInt32
    public var remoteSequence: UInt32?
    /// §12.1.1: the request arrived over TLS with a SIPS Request-URI.
    public var secure: Bool

    /// §12.1.2: the UAC side, from the request it sent and a response with a To tag (a
    /// reliable 1xx or a 2xx): the route set is the response's Record-Route reversed and the
    /// remote target its Contact.
    public static func uac(request: SIPRequest, response: SIPResponse) -> SIPDialog? {
        guard let callID = request.callID, let from = request.from, let localTag = from.tag,
            let to = response.to, let remoteTag = to.tag, let contact = response.contacts.first, let cseq = request.cseq
        else { return nil }
        return SIPDialog(
            id: ID(callID: callID, localTag: localTag, remoteTag: remoteTag), localURI: from, remoteURI: to,
            remoteTarget: contact.uri, routeSet: response.recordRoutes.reversed(), localSequence: cseq.sequence,
            remoteSequence: nil, secure: request.uri.scheme == .sips)
    }

    /// §12.1.1: the UAS side, from the request it answers with `localTag` in its To: the route
    /// set is the request's Record-Route in order, the remote target its Contact.
    public static func uas(request: SIPRequest, localTag: String, localSequence: UInt32 = 1) -> SIPDialog? {
        guard let callID = request.callID, let from = request.from, let remoteTag = from.tag, var to = request.to,
            let contact = request.contacts.first, let cseq = request.cseq
        else { return nil }
        to.tag = localTag
        return SIPDialog(
            id: ID(callID: callID, localTag: localTag, remoteTag: remoteTag), localURI: to, remoteURI: from,
            remoteTarget: contact.uri, routeSet: request.recordRoutes, localSequence: localSequence,
            remoteSequence: cseq.sequence, secure: request.uri.scheme == .sips)
    }

    /// §12.2.1.1: a new request in the dialog, with the next local CSeq, From/To with their
    /// tags, and the Request-URI and Route set by loose or strict routing. Via, Max-Forwards and
    /// Contact are the transport's and the caller's to add.
    public mutating func makeRequest(_ method: SIPMethod) -> SIPRequest {
        // ACK and CANCEL reuse the sequence of the request they belong to (§13.2.2.4, §9.1).
        if method != .ack && method != .cancel { localSequence += 1 }
        var headers = SIPHeaders()
        headers.add(.from, localURI.description)
        headers.add(.to, remoteURI.description)
        headers.add(.callID, id.callID)
        headers.add(.cseq, SIPCSeq(localSequence, method).description)
        let uri: SIPURI
        if let first = routeSet.first, !first.uri.isLooseRouter {
            // Strict routing: the first route is the Request-URI; the remote target goes last.
            uri = first.uri
            for route in routeSet.dropFirst() { headers.add(.route, route.description) }
            headers.add(.route, "<\(remoteTarget)>")
        } else {
            uri = remoteTarget
            for route in routeSet { headers.add(.route, route.description) }
        }
        return SIPRequest(method: method, uri: uri, headers: headers)
    }

    /// §12.2.2: whether an in-dialog request's CSeq is acceptable (higher than the last one);
    /// a lower one "MUST" be rejected with 500. Records it when accepted.
    public mutating func acceptRemote(_ request: SIPRequest) -> Bool {
        guard let sequence = request.cseq?.sequence else { return false }
        // ACK and CANCEL carry the sequence of the request they belong to.
        if request.method == .ack || request.method == .cancel { return true }
        if let last = remoteSequence, sequence <= last { return false }
        remoteSequence = sequence
        return true
    }

    /// A target refresh (§12.2.1.2/§12.2.2): a new Contact replaces the remote target.
    public mutating func refreshTarget(from message: some SIPMessageProtocol) {
        if let contact = message.contacts.first { remoteTarget = contact.uri }
    }
}
