import NIOCore
import SIPCore
import SIPEdge

/// What an IM session tells its owner, on the edge's event loop.
public enum IMSessionEvent: Hashable, Sendable {
    /// A message: the first one from the INVITE's `ms-text-format`, or an in-dialog MESSAGE.
    case message(contentType: SIPMediaType, body: [UInt8])
    /// RFC 3994 isComposing inside the session (RFC 7573 maps it to XEP-0085 chat states).
    case composing(active: Bool)
    case closed(IMSessionEnd)
}

public enum IMSessionEnd: Hashable, Sendable {
    /// The far end sent BYE.
    case remoteBye
    /// `close()` was called.
    case local
    /// No message either way for the configured time (BYE sent).
    case inactivity
    /// A MESSAGE in the session failed with this status (408/480/481: the dialog is gone at the
    /// far end) or got no answer (nil); or our 2xx was never acknowledged.
    case failed(statusCode: Int?)
    /// The gateway is stopping (BYE sent).
    case shutdown
}

/// A Lync-style IM session (../shared/reference/protocols.md §4.2): an INVITE dialog whose SDP
/// says `m=message <port> sip null`, carrying in-dialog MESSAGEs. One side of it is the gateway,
/// as UAS (a Lync user writes to someone on XMPP) or as UAC (the gateway opens a session to a
/// local user's endpoints, forked, for an XMPP user).
///
/// Loop-bound: its state changes only on the edge's event loop; the public methods hop there.
public final class IMSession: @unchecked Sendable {
    public let id: SIPDialog.ID
    /// Our side and theirs, as the dialog's From/To carry them.
    public let localURI: SIPURI
    public let remoteURI: SIPURI
    var dialog: SIPDialog
    let flow: SIPTarget
    let onEvent: @Sendable (IMSessionEvent) -> Void
    weak var domain: EmbeddedDomain?
    var inactivity: Scheduled<Void>?
    /// UAS: our 2xx, retransmitted over UDP until the ACK (RFC 3261 §13.3.1.4).
    var unacknowledged: (server: SIPServerRequest, response: SIPResponse, timer: Scheduled<Void>?)?
    public internal(set) var closed = false

    init(dialog: SIPDialog, flow: SIPTarget, domain: EmbeddedDomain, onEvent: @escaping @Sendable (IMSessionEvent) -> Void) {
        self.id = dialog.id
        self.localURI = dialog.localURI.uri
        self.remoteURI = dialog.remoteURI.uri
        self.dialog = dialog
        self.flow = flow
        self.domain = domain
        self.onEvent = onEvent
    }

    /// Sends a message in the session; true once the far end accepted it (2xx). A 408, 480 or
    /// 481, or no answer, ends the session (the far end has lost the dialog; SIPE does the same).
    public func send(_ body: [UInt8], contentType: SIPMediaType) async -> Bool {
        guard let domain else { return false }
        return await withCheckedContinuation { continuation in
            domain.loop.execute { [self] in
                domain.sendInSession(self, body: body, contentType: contentType) { continuation.resume(returning: $0) }
            }
        }
    }

    public func send(text: String) async -> Bool {
        var type = SIPMediaType.textPlain
        type.parameters.set("charset", .some("UTF-8"))
        return await send(Array(text.utf8), contentType: type)
    }

    /// RFC 3994 isComposing: active while typing, idle after.
    public func setComposing(_ active: Bool) async -> Bool {
        let document = IsComposingDocument(state: active ? .active : .idle, contentType: "text/plain", refresh: active ? 60 : nil)
        return await send(document.serialized(), contentType: .isComposing)
    }

    /// Ends the session with BYE.
    public func close() {
        domain?.loop.execute { [self] in domain?.endSession(self, .local, sendBye: true) }
    }
}
