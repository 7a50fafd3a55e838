import NIOCore
import NIOHTTP1
import NIOPosix

/// `/metrics` (Prometheus text format) and `/health` over plain HTTP, for a scraper and a load
/// balancer on the operator's network. Bind it to loopback or a management address: it has no
/// authentication, as Prometheus exporters usually do not.
public final class OperationsServer: Sendable {
    private let channel: any Channel

    public var port: Int? { channel.localAddress?.port }

    public static func start(host: String, port: Int, group: any EventLoopGroup, gateway: Gateway) async throws -> OperationsServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(OperationsHandler(gateway: gateway))
                }
            }
            .bind(host: host, port: port).get()
        return OperationsServer(channel: channel)
    }

    private init(channel: any Channel) { self.channel = channel }

    public func stop() async { try? await channel.close() }
}

private final class OperationsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private let gateway: Gateway
    private var head: HTTPRequestHead?

    init(gateway: Gateway) { self.gateway = gateway }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let (status, type, body): (HTTPResponseStatus, String, String)
            switch (head.method, head.uri.split(separator: "?").first.map(String.init) ?? head.uri) {
            case (.GET, "/metrics"):
                (status, type, body) = (.ok, "text/plain; version=0.0.4", gateway.metrics.render())
            case (.GET, "/health"):
                let health = gateway.health()
                (status, type, body) = (health.ok ? .ok : .serviceUnavailable, "application/json", health.json)
            case (.GET, _):
                (status, type, body) = (.notFound, "text/plain", "not found\n")
            default:
                (status, type, body) = (.methodNotAllowed, "text/plain", "GET only\n")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: type)
            headers.add(name: "Content-Length", value: String(body.utf8.count))
            headers.add(name: "Connection", value: head.isKeepAlive ? "keep-alive" : "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            let keepAlive = head.isKeepAlive
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { channel.close(promise: nil) }
            }
        }
    }
}
