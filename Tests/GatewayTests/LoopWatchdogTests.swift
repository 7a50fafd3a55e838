import Foundation
@testable import Gateway
import Testing

/// Datagrams the kernel drops at the SIP socket reach no handler: the watchdog reads the
/// kernel's counter so that they show in /metrics and the log.
struct LoopWatchdogTests {
    @Test("the drop count is read from /proc/net/udp: summed over the sockets on the port, other ports ignored")
    func parse() {
        let text = """
               sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
             1193: 0100007F:5DFC 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 8123 2 0000000000000000 17
             1194: 0100007F:5DFD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 8124 2 0000000000000000 99
             1195: 0200007F:5DFC 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 8125 2 0000000000000000 3
            """
        #expect(LoopWatchdog.udpDrops(procNetUDP: text, port: 0x5DFC) == 20)
        #expect(LoopWatchdog.udpDrops(procNetUDP: text, port: 0x5DFD) == 99)
        #expect(LoopWatchdog.udpDrops(procNetUDP: text, port: 5060) == nil)
    }

    @Test("a socket that nobody reads, with a small buffer, flooded on loopback: the kernel's drops are counted")
    func realDrops() throws {
        let receiver = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        let sender = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(receiver >= 0 && sender >= 0)
        defer { close(receiver); close(sender) }
        var size: Int32 = 4096
        setsockopt(receiver, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(receiver, pointer, length) == 0 else { return -1 }
                return getsockname(receiver, pointer, &length)
            }
        }
        try #require(bound == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        #expect(LoopWatchdog.udpDrops(port: port) == 0)
        let datagram = [UInt8](repeating: 0x41, count: 1_000)
        for _ in 0..<200 {
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(sender, datagram, datagram.count, 0, $0, length) }
            }
        }
        #expect((LoopWatchdog.udpDrops(port: port) ?? 0) > 100)
    }
}
