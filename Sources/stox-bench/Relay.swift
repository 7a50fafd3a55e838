import Foundation
import NIOCore
import NIOPosix

/// The baseline: a plain TCP relay in its own process, on one event loop like the gateway,
/// that forwards every read to the other side unparsed and flushes once per read burst. The
/// same load through it gives the machine's ceiling for those bytes on this path (two loopback
/// hops and a process in the middle), so each gateway figure can be quoted as a fraction of it.
enum Relay {
    /// `stox-bench relay LISTEN_PORT TARGET_PORT`: runs until killed.
    static func serve(listen: Int, target: Int) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .connect(host: "127.0.0.1", port: target)
                    .flatMap { outbound in
                        inbound.eventLoop.makeCompletedFuture {
                            try inbound.pipeline.syncOperations.addHandler(Forwarder(peer: outbound))
                            try outbound.pipeline.syncOperations.addHandler(Forwarder(peer: inbound))
                        }
                    }
            }
            .bind(host: "127.0.0.1", port: listen).wait()
        print("relay 127.0.0.1:\(listen) -> 127.0.0.1:\(target)")
        try server.closeFuture.wait()
    }

    final class Forwarder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let peer: any Channel

        init(peer: any Channel) { self.peer = peer }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            peer.write(unwrapInboundIn(data), promise: nil)
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            peer.flush()
        }

        func channelInactive(context: ChannelHandlerContext) {
            peer.close(promise: nil)
        }
    }

    /// Starts `stox-bench relay` as a child process and waits until it listens.
    static func spawn(listen: Int, target: Int) async throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.arguments = ["relay", String(listen), String(target)]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        // The relay prints one line once it is bound.
        _ = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: output.fileHandleForReading.availableData)
            }
        }
        return process
    }
}
