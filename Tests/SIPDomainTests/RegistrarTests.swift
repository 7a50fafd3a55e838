import Foundation
import NIOCore
import SIPCore
@testable import SIPDomain
import SIPEdge
import Testing

/// RFC 3261 §10.3's binding rules, on the pure registrar (no sockets, no store).
@Suite("Registrar (RFC 3261 §10.3) with several bindings per user")
struct RegistrarTests {
    static let configuration = EmbeddedDomainConfiguration(domains: ["sip.test"], maximumBindings: 3)
    static let flow = SIPTarget(transport: .udp, address: try! SocketAddress(ipAddress: "127.0.0.1", port: 5070))
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func register(_ contacts: [String], expires: UInt32? = nil, callID: String = "c1", cseq: UInt32 = 1,
                         userAgent: String? = nil) -> SIPRequest {
        var request = SIPRequest(method: .register, uri: SIPURI("sip:sip.test")!)
        request.headers.add(.to, "<sip:bob@sip.test>")
        request.headers.add(.callID, callID)
        request.headers.add(.cseq, "\(cseq) REGISTER")
        for contact in contacts { request.headers.add(.contact, contact) }
        if let expires { request.headers.add(.expires, String(expires)) }
        if let userAgent { request.headers.add(.userAgent, userAgent) }
        return request
    }

    static func apply(_ request: SIPRequest, to existing: [SIPBinding] = [], at now: Date = now) -> Result<[SIPBinding], Registrar.Failure> {
        Registrar.apply(request, aor: "bob@sip.test", to: existing, flow: flow, now: now, configuration: configuration)
    }

    @Test("two devices of one user hold two bindings; a refresh updates one in place (MPOP)")
    func multipleBindings() throws {
        let laptop = try Self.apply(Self.register(["<sip:bob@127.0.0.1:5070>"], callID: "laptop")).get()
        let both = try Self.apply(Self.register(["<sip:bob@127.0.0.1:5080>"], callID: "phone"), to: laptop).get()
        #expect(both.map(\.contact.uri.port) == [5070, 5080])
        let later = Self.now.addingTimeInterval(100)
        let refreshed = try Self.apply(Self.register(["<sip:bob@127.0.0.1:5070>"], expires: 600, callID: "laptop", cseq: 2),
                                       to: both, at: later).get()
        #expect(refreshed.count == 2)
        #expect(refreshed.first { $0.contact.uri.port == 5070 }?.expiresAt == later.addingTimeInterval(600))
    }

    @Test("Expires 0 removes one binding; `*` with Expires 0 removes all; `*` otherwise is a 400")
    func removal() throws {
        let two = try Self.apply(Self.register(["<sip:bob@127.0.0.1:5070>", "<sip:bob@127.0.0.1:5080>"])).get()
        let one = try Self.apply(Self.register(["<sip:bob@127.0.0.1:5070>;expires=0"], cseq: 2), to: two).get()
        #expect(one.map(\.contact.uri.port) == [5080])
        #expect(try Self.apply(Self.register(["*"], expires: 0, cseq: 3), to: two).get().isEmpty)
        guard case .failure(.badRequest) = Self.apply(Self.register(["*"], expires: 60, cseq: 3), to: two) else {
            Issue.record("a wildcard with a non-zero Expires was accepted")
            return
        }
    }

    @Test("a too-short interval gets 423 with the minimum; a long one is cut to the maximum")
    func intervals() throws {
        #expect(Self.apply(Self.register(["<sip:bob@127.0.0.1:5070>"], expires: 10)) == .failure(.intervalTooBrief(60)))
        let long = try Self.apply(Self.register(["<sip:bob@127.0.0.1:5070>"], expires: 86_400)).get()
        #expect(long[0].expiresAt == Self.now.addingTimeInterval(3600))
    }

    @Test("a REGISTER on the same Call-ID with a CSeq not above the binding's is refused (§10.3 step 7)")
    func staleCSeq() throws {
        let bound = try Self.apply(Self.register(["<sip:bob@127.0.0.1:5070>"], callID: "x", cseq: 5)).get()
        guard case .failure(.badRequest) = Self.apply(Self.register(["<sip:bob@127.0.0.1:5070>"], callID: "x", cseq: 5), to: bound) else {
            Issue.record("a replayed REGISTER was applied")
            return
        }
    }

    @Test("a device re-registering with a new Contact but the same +sip.instance replaces its binding (RFC 5626 §4.2)")
    func instanceReplaces() throws {
        let instance = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\""
        let first = try Self.apply(Self.register(["<sip:bob@127.0.0.1:5070>;\(instance)"], callID: "a")).get()
        let second = try Self.apply(Self.register(["<sip:bob@127.0.0.1:6000>;\(instance)"], callID: "b"), to: first).get()
        #expect(second.map(\.contact.uri.port) == [6000])
    }

    @Test("bindings beyond the configured maximum are refused with 403")
    func cap() throws {
        let three = try Self.apply(Self.register((1...3).map { "<sip:bob@127.0.0.1:\(5070 + $0)>" })).get()
        guard case .failure(.forbidden) = Self.apply(Self.register(["<sip:bob@127.0.0.1:6000>"], callID: "other"), to: three) else {
            Issue.record("a fourth binding was accepted")
            return
        }
    }

    @Test("endpoint classes: RFC 3840's +sip.mobility or a mobile User-Agent picks the mobile timeout, else desktop")
    func classes() throws {
        let mobileTag = try Self.apply(Self.register(["<sip:bob@127.0.0.1:5070>;+sip.mobility=\"mobile\""])).get()
        #expect(mobileTag[0].endpointClass == .mobile)
        let android = try Self.apply(Self.register(["<sip:bob@127.0.0.1:5070>"], userAgent: "Lync Mobile (Android 14)")).get()
        #expect(android[0].endpointClass.acceptanceTimeout == .seconds(60))
        let desktop = try Self.apply(Self.register(["<sip:bob@127.0.0.1:5070>"], userAgent: "UCCAPI/16.0 OC/16.0")).get()
        #expect(desktop[0].endpointClass == .desktop)
    }

    @Test("a fork's best response follows §16.7: a 6xx first, else the lowest class")
    func bestResponse() {
        let busy = SIPResponse(statusCode: 486), decline = SIPResponse(statusCode: 603), moved = SIPResponse(statusCode: 302)
        #expect(ForkedDelivery.best([busy, decline, moved])?.statusCode == 603)
        #expect(ForkedDelivery.best([busy, moved])?.statusCode == 302)
        #expect(ForkedDelivery.best([]) == nil)
    }
}
