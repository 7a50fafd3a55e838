import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Blocking loopback sockets with receive timeouts: the simplest possible SIP peer, so the tests
/// exercise the edge and not a second NIO stack.
public struct SocketError: Error { public let call: String; public let code: Int32 }

/// Runs a blocking socket call on a Dispatch thread: blocking Swift's cooperative pool (two
/// threads on a two-core machine) would starve every other suite running in parallel.
private func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: body()) }
    }
}

private func setTimeout(_ fd: Int32, _ seconds: Double) {
    var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
}

/// A socket of `type` bound to 127.0.0.1 on an ephemeral port, with that port.
private func boundLoopbackSocket(_ type: Int32) throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, type, 0)
    guard fd >= 0 else { throw SocketError(call: "socket", code: errno) }
    var address = loopback(port: 0)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else {
        close(fd)
        throw SocketError(call: "bind", code: errno)
    }
    var local = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &local) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, Int(UInt16(bigEndian: local.sin_port)))
}

private func loopback(port: Int, host: String = "127.0.0.1") -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr(host)
    return address
}

public final class UDPClient: @unchecked Sendable {
    public let fd: Int32
    public let port: Int

    public init() throws {
        (fd, port) = try boundLoopbackSocket(Int32(SOCK_DGRAM.rawValue))
    }

    deinit { close(fd) }

    public func send(_ text: String, to port: Int) throws {
        var address = loopback(port: port)
        let bytes = Array(text.utf8)
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard sent == bytes.count else { throw SocketError(call: "sendto", code: errno) }
    }

    public func receive(timeout: Double) async -> String? {
        await offPool { self.receiveBlocking(timeout: timeout) }
    }

    private func receiveBlocking(timeout: Double) -> String? {
        setTimeout(fd, timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }
}

public final class TCPClient: @unchecked Sendable {
    public let fd: Int32
    private var pending = ""

    /// Connects to `host` (a 127.0.0.0/8 address) and `port`.
    public init(host: String = "127.0.0.1", port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        guard fd >= 0 else { throw SocketError(call: "socket", code: errno) }
        var address = loopback(port: port, host: host)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw SocketError(call: "connect", code: errno) }
    }

    deinit { close(fd) }

    public func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard Glibc.send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else {
            throw SocketError(call: "send", code: errno)
        }
    }

    /// Raw bytes as they come, for keepalive pongs.
    public func receiveRaw(timeout: Double) async -> String? {
        await offPool { self.receiveRawBlocking(timeout: timeout) }
    }

    private func receiveRawBlocking(timeout: Double) -> String? {
        setTimeout(fd, timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }

    /// Reads until `count` bodiless responses (each ending in a blank line) have arrived.
    public func receiveMessages(_ count: Int, timeout: Double) async -> [String] {
        await offPool { self.receiveMessagesBlocking(count, timeout: timeout) }
    }

    private func receiveMessagesBlocking(_ count: Int, timeout: Double) -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        var messages: [String] = []
        while messages.count < count {
            while let end = pending.range(of: "\r\n\r\n") {
                messages.append(String(pending[..<end.upperBound]))
                pending.removeSubrange(..<end.upperBound)
            }
            guard messages.count < count else { break }
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let chunk = receiveRawBlocking(timeout: left) else { break }
            pending += chunk
        }
        return messages
    }

    /// Whether the peer closed the connection (recv returns 0) before the timeout.
    public func waitForClose(timeout: Double) async -> Bool {
        await offPool { self.waitForCloseBlocking(timeout: timeout) }
    }

    private func waitForCloseBlocking(timeout: Double) -> Bool {
        setTimeout(fd, timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { return true }
            if count < 0 { return errno == ECONNRESET }
        }
    }
}

/// A listening TCP socket on loopback: what a SIP client that keeps a listener (the sent-by of
/// its Via) offers for responses that cannot go back on the original connection.
public final class TCPListener: @unchecked Sendable {
    public let fd: Int32
    public let port: Int

    public init() throws {
        (fd, port) = try boundLoopbackSocket(Int32(SOCK_STREAM.rawValue))
        guard listen(fd, 8) == 0 else { throw SocketError(call: "listen", code: errno) }
    }

    deinit { close(fd) }

    /// What the first connection made to it within `timeout` sent, read for up to `timeout`.
    public func acceptAndRead(timeout: Double) async -> String? {
        await offPool { self.acceptAndReadBlocking(timeout: timeout) }
    }

    private func acceptAndReadBlocking(timeout: Double) -> String? {
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&poll, 1, Int32(timeout * 1000)) == 1 else { return nil }
        let connection = accept(fd, nil, nil)
        guard connection >= 0 else { return nil }
        defer { close(connection) }
        setTimeout(connection, timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(connection, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }
}
