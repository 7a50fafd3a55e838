import ArgumentParser
import Dispatch
import Foundation
import Gateway
import Interworking
import Logging
import NIOPosix
import NIOSSL
import SIPCore
import SIPDomain
import SIPEdge
import XMPPCore
import NIOCore

/// `stox run`: the gateway, until SIGTERM or SIGINT (graceful) — SIGHUP reloads the tables.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway.",
        discussion: """
            Reads the configuration (default Config/stox.conf, or STOX_CONFIG), with environment \
            overrides, and runs until SIGTERM or SIGINT, which stop it gracefully: SIP \
            subscriptions end with a final NOTIFY, IM sessions with BYE, XMPP streams close, and \
            messages not yet delivered stay in the store for the next start. SIGHUP reloads the \
            mapping tables, keeping the old ones if the new ones do not load.
            """)

    @Option(help: "The configuration file.")
    var config: String = ProcessInfo.processInfo.environment["STOX_CONFIG"] ?? "Config/stox.conf"

    func run() async throws {
        let configuration = try loadConfiguration(config)
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "stox")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, NIOCore.System.coreCount))
        let gateway: Gateway
        do {
            gateway = try await Gateway.start(configuration, group: group, logger: logger)
        } catch {
            logger.critical("the gateway did not start: \(error)")
            throw ExitCode(1)
        }
        var operations: OperationsServer?
        if let http = configuration.httpListen {
            do {
                operations = try await OperationsServer.start(host: http.host, port: http.port, group: group, gateway: gateway)
                logger.info("metrics and health", metadata: ["address": "http://\(http)/metrics"])
            } catch {
                logger.error("cannot serve /metrics and /health on \(http): \(error)")
            }
        }
        let stopSignal = await Signals.wait(reloading: { [mappingsPath = configuration.mappingsPath] in
            do {
                gateway.reload(try MappingDirectory.load(mappingsPath))
            } catch {
                logger.error("SIGHUP: the tables in \(mappingsPath) do not load; the old ones stay: \(error)")
            }
        })
        logger.info("stopping (\(stopSignal))")
        await operations?.stop()
        await gateway.stop()
        try? await group.shutdownGracefully()
    }
}

func loadConfiguration(_ path: String) throws -> GatewayConfiguration {
    do {
        return try GatewayConfiguration.load(path: path)
    } catch {
        FileHandle.standardError.write(Data("stox: the configuration is refused:\n\(error)\n".utf8))
        throw ExitCode(78)  // EX_CONFIG
    }
}

/// Waits for SIGTERM or SIGINT; SIGHUP calls `reloading` and goes on waiting.
enum Signals {
    static func wait(reloading: @escaping @Sendable () -> Void) async -> String {
        let queue = DispatchQueue(label: "stox.signals")
        return await withCheckedContinuation { continuation in
            var sources: [any DispatchSourceSignal] = []
            let once = Once()
            for (signal, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT"), (SIGHUP, "SIGHUP")] {
                Foundation.signal(signal, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signal, queue: queue)
                source.setEventHandler {
                    if signal == SIGHUP { return reloading() }
                    if once.claim() { continuation.resume(returning: name) }
                }
                source.resume()
                sources.append(source)
            }
            // Keep the sources alive for the life of the process.
            Retained.sources = sources
        }
    }

    final class Once: @unchecked Sendable {
        private let lock = NSLock()
        private var done = false
        func claim() -> Bool { lock.withLock { defer { done = true }; return !done } }
    }

    enum Retained { nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = [] }
}

/// `stox check-config`: what the gateway would do with this configuration, as
/// `prosodyctl check` does for Prosody.
struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Explain what the gateway would do with a configuration, and refuse a bad one.")

    @Option(help: "The configuration file.")
    var config: String = ProcessInfo.processInfo.environment["STOX_CONFIG"] ?? "Config/stox.conf"

    @Flag(help: "Print only problems.")
    var quiet = false

    func run() throws {
        let configuration = try loadConfiguration(config)
        var warnings: [String] = []
        var lines: [String] = []
        func say(_ line: String) { lines.append(line) }
        let mappings: MappingSet
        do {
            mappings = try MappingDirectory.load(configuration.mappingsPath)
        } catch {
            for problem in error.errors { print(problem) }
            print("mappings.path: the tables in \(configuration.mappingsPath) do not load")
            throw ExitCode(78)
        }
        let addresses = AddressMapper(mappings)
        say("Configuration \(config) (environment overrides applied)")
        say("")
        func xmppName(_ domain: String) -> String {
            let xmpp = (try? addresses.jid(.init(scheme: .sip, user: nil, host: domain)).value.domainpart) ?? "(not presented to XMPP: domains.tsv)"
            return configuration.xmppMode == .component ? configuration.componentName ?? "?" : xmpp
        }
        if configuration.sipDomains.isEmpty {
            say("SIP domains served by the embedded registrar: none (peer mode only)")
        } else {
            say("SIP domains served by the embedded registrar:")
            for domain in configuration.sipDomains { say("  \(domain)  ->  XMPP \(xmppName(domain))") }
        }
        if !configuration.sipPeers.isEmpty {
            say("SIP domains of peer networks (their SIP server authenticates their users):")
            for peer in configuration.sipPeers {
                let proxy = peer.nextHop.map { "proxy \($0.transport.rawValue) \($0.address.ipAddress ?? "?") port \($0.address.port ?? 0)" + ($0.serverName.map { ", certificate must name \($0)" } ?? "") }
                    ?? "proxy found through RFC 3263 (SRV _sips._tcp, _sip._tcp, _sip._udp" + (configuration.dnsServer.map { ", asking \($0)" } ?? ", asking /etc/resolv.conf's nameserver") + ")"
                say("  \(peer.domain)  ->  XMPP \(xmppName(peer.domain)); \(proxy)")
                say("    requests trusted from \(peer.trustedAddresses.sorted().joined(separator: ", ")) only (others get 403); messages from XMPP "
                    + (peer.messaging == .session ? "open Lync-style IM sessions (INVITE)" : "go as MESSAGE (over TCP past 1,300 bytes)")
                    + "; presence through one SUBSCRIBE per watched user")
            }
        }
        say("SIP listeners on \(configuration.sipListen): "
            + [configuration.sipUDPPort.map { "UDP \($0)" }, configuration.sipTCPPort.map { "TCP \($0)" },
               configuration.sipTLSPort.map { "TLS \($0)" }].compactMap { $0 }.joined(separator: ", "))
        if let buffer = configuration.sipUDPReceiveBuffer, configuration.sipUDPPort != nil {
            let cap = (try? String(contentsOfFile: "/proc/sys/net/core/rmem_max", encoding: .utf8))
                .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            say("SIP UDP receive buffer: \(buffer) bytes asked for"
                + (cap.map { "; the kernel's cap (net.core.rmem_max) is \($0) bytes" } ?? "")
                + " (`stox run` logs what was granted)")
            if let cap, cap < buffer, getuid() != 0 {
                warnings.append("sip.udp_receive_buffer: \(buffer) bytes is above net.core.rmem_max (\(cap)) and this user cannot exceed it: the kernel will grant \(cap); raise it with sysctl or grant CAP_NET_ADMIN")
            }
        } else if configuration.sipUDPPort != nil {
            say("SIP UDP receive buffer: the kernel's default")
        }
        say("Watcher policy: \(configuration.watcherPolicyName); acceptance: desktop \(configuration.desktopAcceptance), mobile \(configuration.mobileAcceptance)")
        if let certificate = configuration.sipCertificate { describeCertificate("SIP TLS", certificate, &lines, &warnings) }
        say("")
        switch configuration.xmppMode {
        case .s2s:
            // Only what will happen: without a certificate there is no STARTTLS to mention.
            let tls = configuration.xmppCertificate == nil ? " (plain: no certificate, so no STARTTLS)"
                : (configuration.xmppDirectTLSPort.map { " (STARTTLS) and \($0) (direct TLS, XEP-0368)" } ?? " (STARTTLS)")
            say("XMPP: server-to-server federation, listening on \(configuration.xmppListen):\(configuration.xmppPort)" + tls)
            if let certificate = configuration.xmppCertificate {
                describeCertificate("XMPP", certificate, &lines, &warnings)
            } else {
                warnings.append("xmpp.certificate: not set: no STARTTLS, so peers that require encryption (Prosody's and ejabberd's default) will refuse to federate")
            }
            say("Peer policy: \(GatewayConfiguration.policyName(configuration.defaultPeerPolicy)) by default"
                + (configuration.peerPolicies.isEmpty ? "" : "; " + configuration.peerPolicies.sorted { $0.key < $1.key }
                    .map { "\($0.key): \(GatewayConfiguration.policyName($0.value))" }.joined(separator: ", ")))
            say("Peer rate: \(Int(configuration.peerRate)) stanzas/s per peer domain (bursts of \(Int(configuration.peerRate * 4))), then its stream pauses")
            say("Peers found through " + (configuration.routes.isEmpty ? "DNS SRV (_xmpp-server._tcp, _xmpps-server._tcp"
                + (configuration.dnsServer.map { ", asking \($0)" } ?? ", asking /etc/resolv.conf's nameserver") + ")"
                : "static routes (" + configuration.routes.sorted { $0.key < $1.key }.map { "\($0.key) -> \($0.value)" }.joined(separator: ", ") + "), else DNS SRV"))
            say("Dialback secret: " + (configuration.dialbackSecret == nil ? "random for each start" : "set"))
            // Said plainly, because a 202 is a promise: on a link without XEP-0198 nothing tells
            // the gateway what the peer took before the link broke.
            say("Delivery to XMPP: a stanza counts as taken when the peer acknowledges it (XEP-0198). A peer link without"
                + " stream management (Prosody offers it on s2s only after SASL EXTERNAL, so not with dialback) cannot"
                + " say that: a message in flight when such a link breaks may be lost after its 202")
            if !configuration.defaultPeerPolicy.requireValidCertificate {
                warnings.append("xmpp.peer_policy: dialback peers may have no XEP-0198 on their links; messages in flight when such a link breaks can be lost after the SIP sender got 202 (README, \"Durability\")")
            }
        case .component:
            say("XMPP: component \(configuration.componentName ?? "?") of the server at \(configuration.componentServer) (XEP-0114)")
        }
        say("")
        say("Mapping tables: \(configuration.mappingsPath) (\(MappingSet.fileNames.count) tables, loaded and checked)")
        say("Store: \(configuration.storePath) (SQLite, WAL); delivered messages' keys kept \(configuration.keepDelivered.components.seconds) s to recognise resends, then pruned")
        say("Metrics and health: " + (configuration.httpListen.map { "http://\($0)/metrics, /health" } ?? "off"))
        for (host, key) in [(configuration.sipListen, "sip.listen"), (configuration.xmppListen, "xmpp.listen")]
        where host == "0.0.0.0" || host == "::" {
            warnings.append("\(key): \(host) listens on every interface")
        }
        if !quiet { for line in lines { print(line) } }
        if !warnings.isEmpty {
            print("")
            for warning in warnings { print("warning: \(warning)") }
        }
    }

    private func describeCertificate(_ what: String, _ path: String, _ lines: inout [String], _ warnings: inout [String]) {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(path)
            guard let leaf = chain.first else {
                warnings.append("\(what) certificate \(path): no certificate in the file")
                return
            }
            let expiry = Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter))
            let days = Int(expiry.timeIntervalSinceNow / 86400)
            lines.append("\(what) certificate \(path): expires \(expiry) (in \(days) days)")
            if days < 0 {
                warnings.append("\(what) certificate \(path) has expired")
            } else if days < 14 {
                warnings.append("\(what) certificate \(path) expires in \(days) days")
            }
        } catch {
            warnings.append("\(what) certificate \(path): cannot be read: \(error)")
        }
    }
}
