import SIPCore
import Testing

@Suite("RFC 6665 subscriptions, notifier side")
struct SIPSubscriptionTests {
    static func subscribe(expires: UInt32?, cseq: UInt32 = 1, toTag: String? = nil, accept: String? = nil) -> SIPRequest {
        var request = SIPRequest(method: .subscribe, uri: SIPURI("sip:bob@sip.test")!)
        request.headers.add(.from, "<sip:alice@sip.test>;tag=w1")
        request.headers.add(.to, toTag.map { "<sip:bob@sip.test>;tag=\($0)" } ?? "<sip:bob@sip.test>")
        request.headers.add(.callID, "sub-1")
        request.headers.add(.cseq, "\(cseq) SUBSCRIBE")
        request.headers.add(.contact, "<sip:alice@127.0.0.1:5070>")
        request.headers.add(.event, "presence")
        if let expires { request.headers.add(.expires, String(expires)) }
        if let accept { request.headers.add(.accept, accept) }
        return request
    }

    static let t0 = SIPInstant(.seconds(100))
    static let body = (contentType: SIPMediaType.pidf, bytes: Array("<presence/>".utf8))

    @Test("an authorized SUBSCRIBE is active: NOTIFY in the dialog with Event, Subscription-State active;expires and the body (§4.2.2)")
    func active() throws {
        let (created, answer) = try #require(SIPSubscription.create(Self.subscribe(expires: 600), localTag: "n1", authorized: true, now: Self.t0))
        var subscription = try #require(created)
        #expect(answer == .accepted(expires: 600))
        let notify = subscription.makeNotify(body: Self.body, now: Self.t0 + .seconds(10))
        #expect(notify.method == .notify)
        #expect(notify.uri.description == "sip:alice@127.0.0.1:5070")
        #expect(notify.to?.tag == "w1" && notify.from?.tag == "n1")
        #expect(notify.event == .presence)
        #expect(notify.subscriptionState == SIPSubscriptionState(.active, expires: 590))
        #expect(notify.body == Self.body.bytes)
        #expect(notify.cseq?.sequence == 2)
    }

    @Test("a pending subscription's NOTIFY carries no state (RFC 3856 §6.6.2); allowing makes it active, blocking ends it with rejected and no body")
    func pendingThenDecided() throws {
        var pending = try #require(SIPSubscription.create(Self.subscribe(expires: nil), localTag: "n1", authorized: false, now: Self.t0)?.0)
        #expect(pending.state == .pending)
        var notify = pending.makeNotify(body: Self.body, now: Self.t0)
        #expect(notify.subscriptionState == SIPSubscriptionState(.pending, expires: 3600))
        #expect(notify.body.isEmpty)
        var allowed = pending
        let r1 = allowed.authorize(true)

        #expect(r1)
        #expect(allowed.state == .active)
        #expect(allowed.makeNotify(body: Self.body, now: Self.t0).body == Self.body.bytes)
        let r2 = pending.authorize(false)

        #expect(r2)
        notify = pending.makeNotify(body: Self.body, now: Self.t0)
        #expect(notify.subscriptionState?.state == .terminated && notify.subscriptionState?.reason == .rejected)
        #expect(notify.body.isEmpty)
    }

    @Test("refresh extends, Expires 0 ends with reason=timeout, a stale CSeq is out of order, too short gets 423 (§4.2.1)")
    func refreshAndEnd() throws {
        var subscription = try #require(SIPSubscription.create(Self.subscribe(expires: 600), localTag: "n1", authorized: true, now: Self.t0)?.0)
        let r3 = subscription.refresh(Self.subscribe(expires: 1200, cseq: 2, toTag: "n1"), now: Self.t0 + .seconds(500))

        #expect(r3 == .accepted(expires: 1200))
        #expect(subscription.expiresAt == Self.t0 + .seconds(1700))
        let r4 = subscription.refresh(Self.subscribe(expires: 600, cseq: 2, toTag: "n1"), now: Self.t0)

        #expect(r4 == .outOfOrder)
        let tooShort = subscription.refresh(Self.subscribe(expires: 5, cseq: 3, toTag: "n1"), now: Self.t0)
        #expect(tooShort == .intervalTooBrief(minimum: 60))
        let r5 = subscription.refresh(Self.subscribe(expires: 0, cseq: 4, toTag: "n1"), now: Self.t0)

        #expect(r5 == .accepted(expires: 0))
        let last = subscription.makeNotify(body: Self.body, now: Self.t0)
        #expect(last.subscriptionState?.state == .terminated && last.subscriptionState?.reason == .timeout)
        #expect(last.body == Self.body.bytes, "the final NOTIFY still tells the state")
        #expect(SIPSubscription.create(Self.subscribe(expires: 10), localTag: "n2", authorized: true, now: Self.t0)?.1 == .intervalTooBrief(minimum: 60))
    }

    @Test("the deadline ends it with timeout once; Accept decides the body format")
    func expiryAndAccept() throws {
        var subscription = try #require(SIPSubscription.create(
            Self.subscribe(expires: 60, accept: "application/msrtc-event-categories+xml"), localTag: "n1", authorized: true, now: Self.t0)?.0)
        let r6 = subscription.expire(now: Self.t0 + .seconds(59))

        #expect(!r6)
        let ended = subscription.expire(now: Self.t0 + .seconds(60))
        #expect(ended)
        let r7 = subscription.expire(now: Self.t0 + .seconds(61))

        #expect(!r7)
        #expect(subscription.accepts(.msrtcEventCategories) && !subscription.accepts(.pidf))
        let plain = try #require(SIPSubscription.create(Self.subscribe(expires: 60), localTag: "n1", authorized: true, now: Self.t0)?.0)
        #expect(plain.accepts(.pidf) && !plain.accepts(.msrtcEventCategories))
    }
}
