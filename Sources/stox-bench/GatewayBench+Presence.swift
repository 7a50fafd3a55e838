import Foundation
import NIOCore
import NIOPosix
import SIPCore
import XMLCore
import XMPPCore

extension GatewayBench {
    static let idleDomains = (0..<100).map { "idle\($0).bench" }

    static func pidf(entity: String, note: String, open: Bool = true) -> String {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"\(entity)\">"
            + "<tuple id=\"bench\"><status><basic>\(open ? "open" : "closed")</basic></status><note>\(note)</note></tuple></presence>"
    }

    /// Polls `condition` on the loop every 10 ms until it holds or `timeout` passes; the elapsed
    /// seconds, or nil on timeout.
    static func wait(_ bench: Bench, from start: UInt64, timeout: Double, _ condition: @escaping @Sendable () -> Bool) async throws -> Double? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let end: UInt64 = try await bench.loop.submit({ condition() ? LoadDriver.now() : nil }).get() {
                return Double(end - start) / 1e9
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    final class Tally: @unchecked Sendable {
        var count = 0
        var seen: Set<String> = []
        var marker = ""
        var last: UInt64 = 0
    }

    // MARK: Fan-out

    static func fanout(_ bench: Bench) async throws {
        let watchers = 1000
        _ = try await startGateway(bench, users: watchers)
        let peer = bench.peer
        let domain = BenchGateway.domain, xmpp = BenchXMPPPeer.domain

        // SIP user u0 -> 1,000 XMPP watchers.
        let tally = Tally()
        try await bench.loop.submit {
            bench.presence = { element in
                guard element.attribute("from")?.hasPrefix("u0@\(domain)") == true, let to = element.attribute("to") else { return }
                if element.attribute("type") == "subscribed" {
                    tally.seen.insert(to)
                } else if element.firstChild("status")?.text == tally.marker, element.attribute("type") == nil {
                    tally.count += 1
                    tally.last = LoadDriver.now()
                }
            }
            for index in 0..<watchers {
                peer.send(BenchXMPPPeer.presence(from: "w\(index)@\(xmpp)", to: "u0@\(domain)", type: "subscribe"))
            }
        }.get()
        guard try await wait(bench, from: LoadDriver.now(), timeout: 60, { tally.seen.count >= watchers }) != nil else {
            throw BenchError("fan-out: only \(tally.seen.count) of \(watchers) XMPP subscriptions were accepted")
        }
        let publisher = try await sipClient(bench)
        try await register(publisher, user: "u0")
        header("presence fan-out: one PUBLISH by a SIP user with \(watchers) XMPP watchers, until the last <presence/> arrives")
        var times: [Double] = []
        var etag: String? = nil
        for round in 0..<max(3, bench.options.rounds) {
            let marker = "round \(round)"
            let start = try await bench.loop.submit { tally.count = 0; tally.marker = marker; return LoadDriver.now() }.get()
            var headers = ["Event: presence", "Expires: 3600"]
            if let etag { headers.append("SIP-If-Match: \(etag)") }
            let response = try await publisher.transact(
                method: "PUBLISH", uri: "sip:u0@\(domain)", user: "u0", password: BenchGateway.password, to: "sip:u0@\(domain)",
                headers: headers, contentType: "application/pidf+xml", body: pidf(entity: "sip:u0@\(domain)", note: marker)).get()
            guard response.isSuccess else { throw BenchError("PUBLISH: \(response.statusCode) \(response.reasonPhrase)") }
            etag = response.headers[.sipETag] ?? etag
            guard let seconds = try await wait(bench, from: start, timeout: 60, { tally.count >= watchers }) else {
                throw BenchError("fan-out: \(tally.count) of \(watchers) presences arrived in 60 s")
            }
            times.append(seconds * 1000)
        }
        row("time to the last watcher", times, unit: "ms", digits: 1)
        row("presences per second", times.map { Double(watchers) / ($0 / 1000) }, unit: "/s")
        try? await publisher.close().get()
        print("")

        // XMPP user x1 -> 1,000 SIP watchers (u0 … u999), one TCP connection.
        let watcherClient = try await sipClient(bench)
        let notified = Tally()
        try await bench.loop.submit {
            bench.presence = { element in
                // The XMPP user's server: approve the gateway's subscription requests, answer probes.
                guard let from = element.attribute("from"), let to = element.attribute("to"), to.hasPrefix("x1@") else { return }
                switch element.attribute("type") {
                case "subscribe":
                    // RFC 6121 §3.1.5: approve, then send the contact's current presence.
                    peer.send(BenchXMPPPeer.presence(from: "x1@\(xmpp)", to: from, type: "subscribed"))
                    peer.send(BenchXMPPPeer.presence(from: "x1@\(xmpp)/desk", to: from))
                case "probe":
                    peer.send(BenchXMPPPeer.presence(from: "x1@\(xmpp)/desk", to: from))
                default: break
                }
            }
            bench.notify = { request in
                let body = String(decoding: request.body, as: UTF8.self)
                guard body.contains("<basic>open</basic>"), let watcher = request.to?.uri.user else { return }
                if notified.marker.isEmpty || body.contains(notified.marker) {
                    notified.seen.insert(watcher)
                    notified.count += 1
                }
            }
        }.get()
        // SUBSCRIBE in batches of 50 concurrent transactions.
        var index = 0
        while index < watchers {
            let batch = (index..<min(watchers, index + 50)).map { user in
                watcherClient.transact(
                    method: "SUBSCRIBE", uri: "sip:x1@\(xmpp)", user: "u\(user)", password: BenchGateway.password, to: "sip:x1@\(xmpp)",
                    headers: ["Event: presence", "Expires: 3600", "Accept: application/pidf+xml"])
            }
            for future in batch {
                let response = try await future.get()
                guard response.isSuccess else { throw BenchError("SUBSCRIBE: \(response.statusCode) \(response.reasonPhrase)") }
            }
            index += 50
        }
        guard try await wait(bench, from: LoadDriver.now(), timeout: 60, { notified.seen.count >= watchers }) != nil else {
            throw BenchError("fan-out: only \(notified.seen.count) of \(watchers) SIP watchers saw the XMPP user online")
        }
        header("presence fan-out: one change by an XMPP user with \(watchers) SIP watchers (its server sends \(watchers) <presence/>), until the last NOTIFY")
        times = []
        for round in 0..<max(3, bench.options.rounds) {
            let marker = "round \(round)"
            let start = try await bench.loop.submit {
                notified.count = 0
                notified.marker = marker
                let start = LoadDriver.now()
                for user in 0..<watchers {
                    var presence = BenchXMPPPeer.presence(from: "x1@\(xmpp)/desk", to: "u\(user)@\(domain)")
                    presence.append(XMLElement("status", namespace: XMPPNamespace.server, text: marker))
                    peer.send(presence)
                }
                return start
            }.get()
            guard let seconds = try await wait(bench, from: start, timeout: 60, { notified.count >= watchers }) else {
                throw BenchError("fan-out: \(notified.count) of \(watchers) NOTIFYs arrived in 60 s")
            }
            times.append(seconds * 1000)
        }
        row("time to the last watcher", times, unit: "ms", digits: 1)
        row("NOTIFYs per second", times.map { Double(watchers) / ($0 / 1000) }, unit: "/s")
        try await bench.loop.submit { bench.presence = nil; bench.notify = nil }.get()
        try? await watcherClient.close().get()
        print("")
    }

    // MARK: Scale

    /// N federated subscriptions (XMPP users watching SIP users: 1,000 SIP users with N/1,000
    /// watchers each), the gateway's memory for them, and the time a restart takes to bring
    /// every watcher the current presence again.
    static func scale(_ bench: Bench) async throws {
        let total = bench.options.subscriptions
        let users = 1000, perUser = max(1, total / 1000)
        let gateway = try await startGateway(bench, users: users)
        let peer = bench.peer
        let domain = BenchGateway.domain, xmpp = BenchXMPPPeer.domain
        try await Task.sleep(for: .seconds(1))
        let before = gateway.residentKiB
        let accepted = Tally(), restored = Tally()
        let count = users * perUser
        // Subscribe with at most 2,000 requests outstanding.
        let window = 2000
        var sent = 0
        let start = try await bench.loop.submit { () -> UInt64 in
            bench.presence = { element in
                guard element.attribute("from")?.contains("@\(domain)") == true else { return }
                if element.attribute("type") == "subscribed" {
                    accepted.count += 1
                } else if element.attribute("type") == "unavailable" || element.attribute("type") == nil {
                    restored.count += 1
                }
            }
            return LoadDriver.now()
        }.get()
        header("scale: \(count) subscriptions (\(users) SIP users × \(perUser) XMPP watchers)")
        while sent < count {
            let outstanding = sent
            let room = try await bench.loop.submit { window - (outstanding - accepted.count) }.get()
            if room <= 0 {
                try await Task.sleep(for: .milliseconds(5))
                continue
            }
            let first = sent, last = min(count, sent + room)
            try await bench.loop.submit {
                for index in first..<last {
                    peer.send(BenchXMPPPeer.presence(from: "v\(index / users)@\(xmpp)", to: "u\(index % users)@\(domain)", type: "subscribe"))
                }
            }.get()
            sent = last
        }
        guard let created = try await wait(bench, from: start, timeout: 300, { accepted.count >= count }) else {
            throw BenchError("scale: \(accepted.count) of \(count) subscriptions accepted")
        }
        try await Task.sleep(for: .seconds(2))
        let after = gateway.residentKiB
        row("subscriptions created per second", [Double(count) / created], unit: "/s")
        row("gateway RSS, fresh", [Double(before) / 1024], unit: "MiB", digits: 1)
        row("gateway RSS, with the subscriptions", [Double(after) / 1024], unit: "MiB", digits: 1)
        row("memory per subscription", [Double(after - before) * 1024 / Double(count)], unit: "bytes")
        var restarts: [Double] = [], restartRSS: [Double] = [], settledRSS: [Double] = []
        for _ in 0..<max(1, min(3, bench.options.rounds)) {
            await gateway.stop()
            // The stop sends every watcher `unavailable` (the SIP users go offline for XMPP):
            // let those arrive before counting what the restart sends.
            try await Task.sleep(for: .seconds(2))
            try await bench.loop.submit { restored.count = 0 }.get()
            let began = LoadDriver.now()
            try await gateway.start()
            guard let seconds = try await wait(bench, from: began, timeout: 300, { restored.count >= count }) else {
                throw BenchError("scale: \(restored.count) of \(count) watchers got a presence within 300 s of a restart")
            }
            restarts.append(seconds)
            restartRSS.append(Double(gateway.residentKiB) / 1024)
            try await Task.sleep(for: .seconds(8))
            settledRSS.append(Double(gateway.residentKiB) / 1024)
        }
        row("restart until every watcher has a presence", restarts, unit: "s", digits: 1)
        row("gateway RSS as the last presence arrives", restartRSS, unit: "MiB", digits: 1)
        row("gateway RSS 8 s later (settled)", settledRSS, unit: "MiB", digits: 1)
        try await bench.loop.submit { bench.presence = nil }.get()
        print("")
    }

    // MARK: Idle memory

    static func idle(_ bench: Bench) async throws {
        let gateway = try await startGateway(bench, users: 1, extraDomains: idleDomains)
        try await Task.sleep(for: .seconds(1))
        header("memory per idle connection (gateway RSS delta)")

        // SIP: 1,000 TCP connections, each with one answered request (OPTIONS, authenticated).
        let connections = 1000
        let before = gateway.residentKiB
        var clients: [SIPLoadClient] = []
        for batch in stride(from: 0, to: connections, by: 100) {
            var pending: [EventLoopFuture<SIPResponse>] = []
            for _ in batch..<min(connections, batch + 100) {
                let client = try await sipClient(bench)
                clients.append(client)
                pending.append(try await bench.loop.submit {
                    client.transact(method: "OPTIONS", uri: "sip:u0@\(BenchGateway.domain)", user: "u0", password: BenchGateway.password,
                                    to: "sip:u0@\(BenchGateway.domain)")
                }.get())
            }
            for future in pending { _ = try await future.get() }
        }
        try await Task.sleep(for: .seconds(2))
        let sip = gateway.residentKiB
        row("per SIP TCP connection (\(connections) open)", [Double(sip - before) * 1024 / Double(connections)], unit: "bytes")
        for client in clients { try? await client.close().get() }

        // s2s: one peer domain per link pair. A message to a user who does not exist makes the
        // gateway accept an inbound stream (dialback) and open an outbound one for the error.
        try await Task.sleep(for: .seconds(2))
        let s2sBefore = gateway.residentKiB
        let errors = Tally()
        let peer = bench.peer
        let start = try await bench.loop.submit { () -> UInt64 in
            let previous = peer.onStanza
            peer.onStanza = { element in
                if element.name == "message", element.attribute("type") == "error",
                   let to = element.attribute("to"), to.hasPrefix("a@idle") { errors.seen.insert(to) } else { previous?(element) }
            }
            for domain in idleDomains {
                var message = XMLElement("message", namespace: XMPPNamespace.server, attributes: [
                    "from": "a@\(domain)", "to": "nobody@\(BenchGateway.domain)", "type": "chat", "id": "idle",
                ])
                message.append(XMLElement("body", namespace: XMPPNamespace.server, text: "hello"))
                peer.send(message)
            }
            return LoadDriver.now()
        }.get()
        guard try await wait(bench, from: start, timeout: 60, { errors.seen.count >= idleDomains.count }) != nil else {
            throw BenchError("idle: only \(errors.seen.count) of \(idleDomains.count) peer domains got their error back")
        }
        try await Task.sleep(for: .seconds(2))
        let s2s = gateway.residentKiB
        row("per idle s2s peer (\(idleDomains.count) peers, a stream each way)", [Double(s2s - s2sBefore) * 1024 / Double(idleDomains.count)], unit: "bytes")
        try await bench.loop.submit { peer.onStanza = { bench.stanza($0) } }.get()
        print("")
    }
}
