import Dispatch
import Foundation
import NIOCore
import SIPEdge
import StoxDNS

/// RFC 3263 §4 for a peer network's domain: which transport, address and port its requests go
/// to. No NAPTR (§4.1 lets a client go straight to SRV when it has no NAPTR preference): SRV for
/// TLS (when the edge can speak it), then TCP, then UDP, the first that has records winning;
/// targets in RFC 2782 order; with no SRV at all, the domain's own address on 5060/UDP (§4.2).
/// Answers are kept for a minute, so one resolution serves a burst.
final class SIPLocator: @unchecked Sendable {
    private let resolver: SRVResolver
    private let tls: Bool
    private let loop: any EventLoop
    // On `loop` only.
    private var cache: [String: (targets: [SIPTarget], until: NIODeadline)] = [:]

    init(server: SocketAddress, loop: any EventLoop, tls: Bool) {
        self.resolver = SRVResolver(server: server, eventLoop: loop)
        self.loop = loop
        self.tls = tls
    }

    /// The targets for `domain`, best first; empty when nothing resolves.
    func locate(_ domain: String) -> EventLoopFuture<[SIPTarget]> {
        loop.preconditionInEventLoop()
        if let cached = cache[domain], cached.until > .now() { return loop.makeSucceededFuture(cached.targets) }
        var services: [(String, SIPSource.Transport)] = [("_sip._tcp", .tcp), ("_sip._udp", .udp)]
        if tls { services.insert(("_sips._tcp", .tls), at: 0) }
        return firstAnswer(services[...], domain: domain).flatMap { [self] found -> EventLoopFuture<[SIPTarget]> in
            guard let (transport, records) = found else {
                return addresses(of: domain, port: 5060, transport: .udp, serverName: domain)
            }
            // RFC 2782: a target of "." (the root, read as "") means no such service here.
            let ordered = SRVRecord.ordered(records.filter { $0.target != "." && !$0.target.isEmpty }) { Int.random(in: 0..<max($0, 1)) }
            let lookups = ordered.map { record in
                addresses(of: record.target, port: Int(record.port), transport: transport, serverName: domain)
            }
            return EventLoopFuture.whenAllSucceed(lookups, on: loop).map { $0.flatMap { $0 } }
        }.map { [self] targets in
            cache[domain] = (targets, .now() + .seconds(60))
            return targets
        }
    }

    private func firstAnswer(_ services: ArraySlice<(String, SIPSource.Transport)>, domain: String)
        -> EventLoopFuture<(SIPSource.Transport, [SRVRecord])?> {
        guard let (service, transport) = services.first else { return loop.makeSucceededFuture(nil) }
        return resolver.srv("\(service).\(domain).").flatMap { [self] records in
            records.isEmpty ? firstAnswer(services.dropFirst(), domain: domain) : loop.makeSucceededFuture((transport, records))
        }
    }

    /// A and AAAA through the system resolver (getaddrinfo blocks: it runs off the loop).
    private func addresses(of host: String, port: Int, transport: SIPSource.Transport, serverName: String)
        -> EventLoopFuture<[SIPTarget]> {
        let promise = loop.makePromise(of: [SIPTarget].self)
        DispatchQueue.global().async {
            let name = host.hasSuffix(".") ? String(host.dropLast()) : host
            var targets: [SIPTarget] = []
            if let literal = try? SocketAddress(ipAddress: name, port: port) {
                targets = [SIPTarget(transport: transport, address: literal, serverName: serverName)]
            } else if let resolved = try? SocketAddress.makeAddressResolvingHost(name, port: port) {
                targets = [SIPTarget(transport: transport, address: resolved, serverName: serverName)]
            }
            promise.succeed(targets)
        }
        return promise.futureResult
    }
}
