import Foundation
import Synchronization

/// A loopback TCP relay that a test can cut: every connection through it is reset at once
/// (SO_LINGER 0), as a link dies when a middlebox or the network fails, with bytes in flight
/// lost both ways. New connections are relayed again afterwards. Blocking sockets on threads of
/// their own: nothing here runs on the cooperative pool.
public final class TCPProxy: Sendable {
    public let port: Int
    private let upstream: Int
    private let listener: Int32
    /// One relayed connection: its two sockets are closed by the last of its two pumps to
    /// finish, so a descriptor is never used after it was closed (and reused).
    private final class Pair: Sendable {
        let client: Int32, server: Int32
        let finished = Mutex(0)
        init(client: Int32, server: Int32) {
            self.client = client
            self.server = server
        }
        func pumpEnded() {
            guard finished.withLock({ count in count += 1; return count == 2 }) else { return }
            close(client)
            close(server)
        }
    }
    private let pairs = Mutex<[Pair]>([])
    private let closed = Mutex(false)

    public init(to upstream: Int) throws {
        self.upstream = upstream
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            _ = $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 { return }
                let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var target = Self.loopback(port: upstream)
                let connected = withUnsafePointer(to: &target) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard connected == 0 else {
                    close(client)
                    close(server)
                    continue
                }
                let pair = Pair(client: client, server: server)
                pairs.withLock { $0.append(pair) }
                Thread.detachNewThread { Self.pump(from: client, to: server); pair.pumpEnded() }
                Thread.detachNewThread { Self.pump(from: server, to: client); pair.pumpEnded() }
            }
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private static func pump(from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = read(source, &buffer, buffer.count)
            if count <= 0 {
                // The source finished: pass the end on (a cut resets both right after).
                shutdown(destination, Int32(SHUT_WR))
                return
            }
            var offset = 0
            while offset < count {
                let written = buffer.withUnsafeBytes { write(destination, $0.baseAddress! + offset, count - offset) }
                if written <= 0 { return }
                offset += written
            }
        }
    }

    /// Resets every connection relayed so far: both ends see the link die (SO_LINGER 0, so
    /// the close is a reset), and whatever was in flight is lost.
    public func cut() {
        let current = pairs.withLock { pairs in
            defer { pairs.removeAll() }
            return pairs
        }
        for pair in current {
            for fd in [pair.client, pair.server] {
                var linger = Foundation.linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Foundation.linger>.size))
                Foundation.shutdown(fd, Int32(SHUT_RD))
            }
        }
    }

    /// How many connections it has relayed and not cut.
    public var connections: Int { pairs.withLock { $0.count } }

    public func stop() {
        guard closed.withLock({ done in defer { done = true }; return !done }) else { return }
        Foundation.shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        cut()
    }

    deinit { stop() }
}
