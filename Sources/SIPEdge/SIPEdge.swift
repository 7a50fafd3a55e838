import NIOCore
import NIOPosix
import StoxNIO
import NIOSSL
import SIPCore

/// Where a request came from and where its responses go (RFC 3261 §18.2.2).
public struct SIPSource: Sendable, CustomStringConvertible {
    public enum Transport: String, Hashable, Sendable {
        case udp = "UDP", tcp = "TCP", tls = "TLS"

        /// TCP and TLS: no retransmissions, Timers I/J/K/D zero (§17).
        public var isReliable: Bool { self != .udp }
    }
    public let transport: Transport
    public let address: SocketAddress
    /// The listening UDP socket, or the connection the request arrived on: responses go back
    /// through it (§18.2.2).
    let channel: any Channel

    public var description: String { "\(transport) \(address)" }
}

/// Certificates for SIP over TLS (RFC 3261 §26.3.1, RFC 5630), in PEM files.
public struct SIPTLSConfiguration: Sendable {
    public var certificateChainPath: String
    public var privateKeyPath: String
    /// CA file trusted for outbound TLS connections; nil trusts the system store.
    public var trustedCAPath: String?
    /// Whether outbound connections check the peer's certificate (RFC 5922 §7). Turning it off
    /// is for lab setups only.
    public var verifyPeers: Bool

    public init(certificateChainPath: String, privateKeyPath: String, trustedCAPath: String? = nil, verifyPeers: Bool = true) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
        self.trustedCAPath = trustedCAPath
        self.verifyPeers = verifyPeers
    }
}

/// Settings of the SIP edge's listeners.
public struct SIPEdgeConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port (tests); `nil` disables the transport.
    public var udpPort: Int?
    public var tcpPort: Int?
    /// SIP over TLS (5061 by default); needs `tls`.
    public var tlsPort: Int?
    public var tls: SIPTLSConfiguration?
    public var limits: SIPParser.Limits
    public var timers: SIPTimerValues
    /// The most stream connections accepted at once; further ones are closed on accept.
    public var maxConnections: Int
    /// SO_RCVBUF asked for on the UDP socket, in bytes; nil keeps the kernel's default. The
    /// kernel's default (about 208 KiB on Linux) holds a few hundred datagrams: a burst longer
    /// than one loop stall at a few thousand MESSAGEs/s is dropped in the kernel and comes back
    /// as retransmissions. See `defaultUDPReceiveBuffer`.
    public var udpReceiveBuffer: Int?

    /// 8 MiB: about 10,000 typical MESSAGE datagrams (the kernel charges roughly 700–900 bytes
    /// for a 600-byte datagram), half a second of the 20,000/s that BENCHMARKS.md measures.
    public static let defaultUDPReceiveBuffer = 8 * 1024 * 1024

    public init(host: String = "127.0.0.1", udpPort: Int? = 5060, tcpPort: Int? = 5060, tlsPort: Int? = 5061,
                tls: SIPTLSConfiguration? = nil, limits: SIPParser.Limits = .default, timers: SIPTimerValues = .rfc3261,
                maxConnections: Int = 4096, udpReceiveBuffer: Int? = SIPEdgeConfiguration.defaultUDPReceiveBuffer) {
        self.udpReceiveBuffer = udpReceiveBuffer
        self.host = host
        self.udpPort = udpPort
        self.tcpPort = tcpPort
        self.tlsPort = tlsPort
        self.tls = tls
        self.limits = limits
        self.timers = timers
        self.maxConnections = maxConnections
    }
}

/// What the edge tells its owner about traffic it did not hand to the transaction user.
public enum SIPEdgeEvent: Hashable, Sendable {
    /// A datagram or stream that did not parse: dropped (UDP) or closed (stream), §18.3.
    case malformed(SocketAddress, SIPParseError.Kind)
    /// A response with no client transaction: the edge is not a proxy, so it is dropped (§18.1.2).
    case strayResponse(SocketAddress)
    /// An INVITE transaction's final non-2xx response was never acknowledged (Timer H).
    case ackTimeout(callID: String)
    /// The connection a request came on had closed: its response went over a new connection
    /// to this address, taken from the top Via (§18.2.2).
    case responseRerouted(SocketAddress)
}

/// A request for the transaction user. Exactly one final response is expected through
/// `respond`; it may come from any thread, later than the call (for example once the XMPP side
/// has answered). Provisional responses may precede it.
public struct SIPServerRequest: Sendable {
    public let request: SIPRequest
    public let source: SIPSource
    let key: SIPTransactionKey
    let core: SIPTransactionCore

    public func respond(_ response: SIPResponse) {
        core.respond(key: key, response: response)
    }

    /// Sends a final response and forgets the request at once, as a stateless UAS does
    /// (RFC 3261 §8.2.7): no Completed state keeps it, so a retransmission of the request is a
    /// new request and gets a new answer. Meant for challenges, as §8.2.7 suggests: answered
    /// statefully, every challenged request over UDP held a transaction, a timer and the
    /// response's bytes for Timer J's 32 s. An INVITE is still answered statefully, since the
    /// ACK of its non-2xx response belongs to the transaction (§17.2.1).
    public func respondStatelessly(_ response: SIPResponse) {
        core.respondStatelessly(key: key, response: response)
    }
}

/// The transaction user's entry points.
public struct SIPEdgeHandlers: Sendable {
    /// Every new request except ACK and CANCEL, which the edge handles itself.
    public var request: @Sendable (SIPServerRequest) -> Void
    /// An ACK for a 2xx: it belongs to the dialog (§13.2.2.4, §17.2.1 with RFC 6026).
    public var ack: @Sendable (SIPRequest, SIPSource) -> Void
    public var event: @Sendable (SIPEdgeEvent) -> Void

    public init(request: @escaping @Sendable (SIPServerRequest) -> Void,
                ack: @escaping @Sendable (SIPRequest, SIPSource) -> Void = { _, _ in },
                event: @escaping @Sendable (SIPEdgeEvent) -> Void = { _ in }) {
        self.request = request
        self.ack = ack
        self.event = event
    }
}

/// The SIP edge: UDP and TCP listeners in front of the RFC 3261 §17.2 server transaction
/// layer. All transaction state lives on one event loop, so a request costs no actor hop or lock.
public final class SIPEdge: Sendable {
    public let configuration: SIPEdgeConfiguration
    private let core: SIPTransactionCore
    private let channels: [any Channel]

    /// The addresses actually bound (port 0 resolved).
    public let udpAddress: SocketAddress?
    public let tcpAddress: SocketAddress?
    public let tlsAddress: SocketAddress?
    /// The UDP receive buffer the kernel granted, in bytes (Linux reports twice the usable size
    /// it books, as `getsockopt` does); nil without a UDP listener.
    public let udpReceiveBufferGranted: Int?

    private init(configuration: SIPEdgeConfiguration, core: SIPTransactionCore, channels: [any Channel],
                 udp: SocketAddress?, tcp: SocketAddress?, tls: SocketAddress?, udpReceiveBuffer: Int?) {
        self.udpReceiveBufferGranted = udpReceiveBuffer
        self.configuration = configuration
        self.core = core
        self.channels = channels
        self.udpAddress = udp
        self.tcpAddress = tcp
        self.tlsAddress = tls
    }

    public static func start(_ configuration: SIPEdgeConfiguration, handlers: SIPEdgeHandlers,
                             group: any EventLoopGroup) async throws -> SIPEdge {
        let loop = group.next()
        // TLS contexts are built before anything binds: a bad certificate fails the start.
        var serverContext: NIOSSLContext?
        if let tls = configuration.tls, configuration.tlsPort != nil {
            serverContext = try NIOSSLContext(configuration: .makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(tls.certificateChainPath).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.privateKeyPath, format: .pem))))
        }
        let core = SIPTransactionCore(loop: loop, configuration: configuration, handlers: handlers,
                                      clientTLS: try Self.clientContext(configuration.tls))
        var channels: [any Channel] = []
        var udpAddress: SocketAddress?
        var tcpAddress: SocketAddress?
        var tlsAddress: SocketAddress?
        var udpReceiveBuffer: Int?
        do {
            if let port = configuration.udpPort {
                // The coalescer turns a tick's datagrams into one flush, which NIO sends with
                // sendmmsg: a syscall per response was a fifth of the loop's time at 8,000
                // MESSAGEs/s. (Vector reads are not used: NIO splits one receive buffer into equal
                // slices, which would cut a large SIP datagram short.)
                let channel = try await DatagramBootstrap(group: loop)
                    .channelOption(.socketOption(.so_reuseaddr), value: 1)
                    .channelOption(.maxMessagesPerRead, value: 16)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
                            try channel.pipeline.syncOperations.addHandler(SIPDatagramHandler(core: core, limits: configuration.limits))
                        }
                    }
                    .bind(host: configuration.host, port: port).get()
                channels.append(channel)
                udpAddress = channel.localAddress
                if let requested = configuration.udpReceiveBuffer {
                    udpReceiveBuffer = try await Self.setReceiveBuffer(channel, requested)
                } else {
                    udpReceiveBuffer = Int(try await channel.getOption(.socketOption(.so_rcvbuf)).get())
                }
                try await loop.submit {
                    core.udpChannel = channel
                    core.sentBy[.udp] = Self.sentBy(configuration.host, channel.localAddress)
                }.get()
            }
            if let port = configuration.tcpPort {
                let channel = try await Self.streamListener(port: port, transport: .tcp, tls: nil, core: core, loop: loop)
                channels.append(channel)
                tcpAddress = channel.localAddress
            }
            if let port = configuration.tlsPort, let serverContext {
                let channel = try await Self.streamListener(port: port, transport: .tls, tls: serverContext, core: core, loop: loop)
                channels.append(channel)
                tlsAddress = channel.localAddress
            }
        } catch {
            for channel in channels { try? await channel.close() }
            throw error
        }
        return SIPEdge(configuration: configuration, core: core, channels: channels, udp: udpAddress, tcp: tcpAddress,
                       tls: tlsAddress, udpReceiveBuffer: udpReceiveBuffer)
    }

    /// SO_RCVBUF, which Linux caps at `net.core.rmem_max`; when that cap bites and the process
    /// may exceed it (root or CAP_NET_ADMIN), SO_RCVBUFFORCE. Returns what the kernel granted.
    private static func setReceiveBuffer(_ channel: any Channel, _ requested: Int) async throws -> Int {
        let size = SocketOptionValue(clamping: requested)
        try await channel.setOption(.socketOption(.so_rcvbuf), value: size).get()
        var granted = Int(try await channel.getOption(.socketOption(.so_rcvbuf)).get())
        #if os(Linux)
        // Linux doubles the request for its bookkeeping; less than double means capped.
        if granted < 2 * requested {
            let force = ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: 33))  // SO_RCVBUFFORCE
            if (try? await channel.setOption(force, value: size).get()) != nil {
                granted = Int(try await channel.getOption(.socketOption(.so_rcvbuf)).get())
            }
        }
        #endif
        return granted
    }

    /// A TCP or TLS listener: each connection gets (TLS, then) Content-Length framing.
    private static func streamListener(port: Int, transport: SIPSource.Transport, tls: NIOSSLContext?,
                                       core: SIPTransactionCore, loop: any EventLoop) async throws -> any Channel {
        let configuration = core.configuration
        let channel = try await ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: false)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
                    try channel.pipeline.syncOperations.addHandler(SIPStreamHandler(
                        core: core, transport: transport, limits: configuration.limits, maxConnections: configuration.maxConnections))
                }
            }
            .bind(host: configuration.host, port: port).get()
        try await loop.submit { core.sentBy[transport] = Self.sentBy(configuration.host, channel.localAddress) }.get()
        return channel
    }

    /// The context for TLS connections the edge opens (RFC 5922 §7: the server's certificate
    /// must name the domain, given as the target's server name); our certificate as client.
    private static func clientContext(_ tls: SIPTLSConfiguration?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let tls {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(tls.certificateChainPath).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: tls.privateKeyPath, format: .pem))
            if let ca = tls.trustedCAPath { configuration.trustRoots = .file(ca) }
            if !tls.verifyPeers { configuration.certificateVerification = .none }
        }
        return try NIOSSLContext(configuration: configuration)
    }

    private static func sentBy(_ host: String, _ address: SocketAddress?) -> String {
        let host = host.contains(":") ? "[\(host)]" : host
        return "\(host):\(address?.port ?? 5060)"
    }

    // MARK: Sending requests

    /// Sends a request in a new client transaction (§17.1). The edge adds its Via (fresh branch,
    /// `rport`) and Max-Forwards; everything else is the caller's. `onEvent` runs on the edge's
    /// event loop: provisional responses, then exactly one of final, timeout or transport error
    /// (an INVITE's retransmitted 2xx repeat `.final`).
    @discardableResult
    public func send(_ request: SIPRequest, to target: SIPTarget,
                     onEvent: @escaping @Sendable (SIPClientEvent) -> Void) -> SIPClientHandle {
        let branch = SIPTransactionCore.makeBranch()
        let core = self.core
        core.loop.execute { core.send(request, to: target, branch: branch, onEvent: onEvent) }
        return SIPClientHandle(key: SIPTransactionKey(branch: branch, sentBy: "", method: request.method))
    }

    /// The final outcome of a request, for callers that do not need provisional responses.
    public func send(_ request: SIPRequest, to target: SIPTarget) async -> SIPClientEvent {
        await withCheckedContinuation { continuation in
            send(request, to: target) { event in
                if case .provisional = event { return }
                continuation.resume(returning: event)
            }
        }
    }

    /// §9.1: cancels a pending INVITE (sent once it has had a provisional response). The
    /// INVITE's own final response (487, or a 2xx that crossed the CANCEL) still arrives.
    public func cancel(_ handle: SIPClientHandle) {
        let core = self.core
        core.loop.execute { core.cancelClient(handle.key) }
    }

    /// Stops a client transaction without telling its owner: no more retransmissions, and a
    /// late response is dropped as stray. A forking delivery uses it when an endpoint's
    /// acceptance time is up (a non-INVITE request cannot be cancelled on the wire, §9.1).
    public func abandon(_ handle: SIPClientHandle) {
        let core = self.core
        core.loop.execute { core.abandonClient(handle.key) }
    }

    /// Sends a request outside any transaction: the ACK for a 2xx (§13.2.2.4).
    public func sendStateless(_ request: SIPRequest, to target: SIPTarget) {
        let core = self.core
        core.loop.execute { core.sendStateless(request, to: target) }
    }

    /// Our Contact for dialogs whose requests arrived over `transport` (§8.1.1.8, §12.1.1):
    /// the listener's address, with `transport=tcp` for streams.
    public func contact(for transport: SIPSource.Transport) -> SIPURI {
        let bound = switch transport {
        case .udp: udpAddress
        case .tcp: tcpAddress
        case .tls: tlsAddress
        }
        let address = bound ?? udpAddress ?? tcpAddress
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        var uri = SIPURI(scheme: .sip, user: nil, host: host, port: address?.port.map { UInt16($0) })
        if bound != nil, transport != .udp { uri.parameters.set("transport", .some(transport.rawValue.lowercased())) }
        return uri
    }

    /// The event loop the edge runs on; handlers are called there.
    public var eventLoop: any EventLoop { core.loop }

    /// Closes the listeners and every connection; pending transactions end with a transport error.
    public func stop() async {
        for channel in channels { try? await channel.close() }
        await core.shutdown()
    }

    /// Server transactions alive now (for tests and metrics).
    public func liveTransactionCount() async -> Int {
        let core = self.core
        return (try? await core.loop.submit { core.transactionCount }.get()) ?? 0
    }
}
