import Foundation
import NIOCore
import NIOPosix
import StoxTesting
import Testing
import XMLCore
import XMPPCore
import XMPPFederation

/// The gateway federating with a real Prosody (Debian's package, installed by Tests/test.sh) on
/// loopback, with the project's own configuration in Tests/Interop/prosody. A scripted slixmpp
/// client logs in to Prosody as alice@a.test; the gateway serves sip.test and echoes messages.
/// Every process is started and stopped here by its PID.
@Suite(.serialized, .interopPeers)
struct ProsodyInteropTests {
    static let interop = Golden.repositoryRoot.appendingPathComponent("Tests/Interop")
    static let c2sPort = Prosody.c2sPort
    static let s2sPort = Prosody.s2sPort
    static let componentPort = Prosody.componentPort
    static let componentSecret = Prosody.componentSecret

    /// Runs the scripted client; returns its exit status and output.
    static func client(_ arguments: [String], timeout: Double = 40) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [interop.appendingPathComponent("xmpp_client.py").path, "--jid", "alice@a.test", "--server", "127.0.0.1:\(c2sPort)"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(50_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (process.terminationStatus, output)
    }

    /// A gateway for sip.test that answers every chat message with "echo: <body>".
    final class EchoGateway: @unchecked Sendable {
        let service: S2SService
        private let lock = NSLock()
        private var received: [XMLElement] = []
        private var events: [S2SEvent] = []
        let port: Int

        init(tls: S2SConfiguration.TLSMaterial, ca: String?, policy: PeerPolicy, secret: String = "gateway-dialback-secret") async throws {
            let box = Box()
            let configuration = S2SConfiguration(
                servedDomains: ["sip.test"], tls: tls, trustedCAPath: ca, dialbackSecret: secret, defaultPolicy: policy,
                routes: ["a.test": (host: "127.0.0.1", port: ProsodyInteropTests.s2sPort)], listenPort: 0, establishTimeout: 20)
            service = S2SService(
                configuration: configuration, eventLoop: LoopbackFederationTests.group.next(),
                onStanza: { box.gateway?.stanza($0) }, onEvent: { box.gateway?.event($0) })
            port = try await service.start().get()
            box.gateway = self
        }

        final class Box: @unchecked Sendable { weak var gateway: EchoGateway? }

        func stanza(_ element: XMLElement) {
            lock.withLock { received.append(element) }
            guard element.name == "message", element.attribute("type") != "error", let body = element.firstChild("body")?.text,
                !body.hasPrefix("echo:"), let from = element.attribute("from"), let to = element.attribute("to")
            else { return }
            var reply = XMLElement("message", namespace: XMPPNamespace.server, attributes: ["from": to, "to": from, "type": "chat"])
            reply.append(XMLElement("body", namespace: XMPPNamespace.server, text: "echo: \(body)"))
            service.send(reply)
        }

        func event(_ event: S2SEvent) { lock.withLock { events.append(event) } }

        var allEvents: [S2SEvent] { lock.withLock { events } }

        func wait(seconds: Double = 30, _ match: (XMLElement) -> Bool) async -> XMLElement? {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let found = lock.withLock({ received.first(where: match) }) { return found }
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
            return nil
        }
    }

    /// A gateway with a self-signed certificate and a Prosody in dialback mode (TLS required,
    /// s2s_secure_auth = false); the caller stops both.
    static func dialbackSetup() async throws -> (TestPKI, EchoGateway, Prosody) {
        let pki = try TestPKI()
        let gateway = try await EchoGateway(
            tls: .init(certificateChainPath: try pki.leaf("sip", dnsNames: ["sip.test"], selfSigned: true).0,
                       privateKeyPath: pki.path("sip.key")),
            ca: nil, policy: PeerPolicy(tls: .required, allowDialback: true, requireValidCertificate: false))
        do {
            let prosody = try Prosody(mode: "dialback", certificate: try pki.leaf("a", dnsNames: ["a.test"], selfSigned: true), ca: nil, gatewayPort: gateway.port)
            return (pki, gateway, prosody)
        } catch {
            _ = gateway.service.shutdown()
            throw error
        }
    }

    static func sendChat(_ gateway: EchoGateway, _ body: String) {
        var message = XMLElement("message", namespace: XMPPNamespace.server, attributes: ["from": "bob@sip.test", "to": "alice@a.test", "type": "chat"])
        message.append(XMLElement("body", namespace: XMPPNamespace.server, text: body))
        gateway.service.send(message)
    }

    @Test("STARTTLS and dialback with Prosody (s2s_secure_auth = false), Prosody opening first")
    func dialbackProsodyFirst() async throws {
        let (pki, gateway, prosody) = try await Self.dialbackSetup()
        _ = pki
        defer {
            prosody.stop()
            _ = gateway.service.shutdown()
        }
        let (status, output) = try Self.client(["--send", "bob@sip.test", "hello gateway", "--expect-from", "bob@sip.test", "--expect-body", "echo: hello gateway"])
        #expect(status == 0, "client: \(output)\nprosody: \(prosody.log.suffix(3000))")
        #expect(gateway.allEvents.contains(.inboundAuthenticated(remote: "a.test", .dialback)))
        #expect(gateway.allEvents.contains(.outboundUp(local: "sip.test", remote: "a.test", .dialback)))
    }

    @Test("disco#info shows gateway/sip and pings are answered across s2s (XEP-0030, XEP-0199)")
    func discoAndPing() async throws {
        let (pki, gateway, prosody) = try await Self.dialbackSetup()
        _ = pki
        defer {
            prosody.stop()
            _ = gateway.service.shutdown()
        }
        let (status, output) = try Self.client(["--disco", "sip.test", "gateway/sip", "--ping", "bob@sip.test", "--timeout", "20"])
        #expect(status == 0, "client: \(output)\nprosody: \(prosody.log.suffix(3000))")
        #expect(output.contains("urn:xmpp:receipts"))
    }

    @Test("STARTTLS and dialback with Prosody, the gateway opening first")
    func dialbackGatewayFirst() async throws {
        let (pki, gateway, prosody) = try await Self.dialbackSetup()
        _ = pki
        defer {
            prosody.stop()
            _ = gateway.service.shutdown()
        }
        // The client echoes; the gateway writes first, once alice is online.
        // The client stays online for a while and echoes; the gateway checks the echo arrives.
        async let client = Task.detached { try Self.client(["--echo", "--stay", "12"]) }.value
        try await Task.sleep(nanoseconds: 2_000_000_000)
        Self.sendChat(gateway, "first from the gateway")
        let echo = await gateway.wait { $0.firstChild("body")?.text == "echo: first from the gateway" }
        let (status, output) = try await client
        #expect(echo != nil, "client: \(output)\nprosody: \(prosody.log.suffix(3000))")
        #expect(status == 0)
    }

    @Test("STARTTLS and SASL EXTERNAL with Prosody trusting the test CA (s2s_secure_auth = true)")
    func saslExternal() async throws {
        let pki = try TestPKI()
        let (cert, key) = try pki.leaf("sip", dnsNames: ["sip.test"])
        let gateway = try await EchoGateway(tls: .init(certificateChainPath: cert, privateKeyPath: key), ca: pki.path("ca.crt"), policy: .secure)
        let prosody = try Prosody(mode: "secure", certificate: try pki.leaf("a", dnsNames: ["a.test"]), ca: pki.path("ca.crt"), gatewayPort: gateway.port)
        defer {
            prosody.stop()
            _ = gateway.service.shutdown()
        }
        let (status, output) = try Self.client(["--send", "bob@sip.test", "hello securely", "--expect-from", "bob@sip.test", "--expect-body", "echo: hello securely"])
        #expect(status == 0, "client: \(output)\nprosody: \(prosody.log.suffix(3000))")
        #expect(gateway.allEvents.contains(.inboundAuthenticated(remote: "a.test", .saslExternal)))
        #expect(gateway.allEvents.contains(.outboundUp(local: "sip.test", remote: "a.test", .saslExternal)))
    }

    @Test("a gateway whose certificate Prosody does not trust is refused under s2s_secure_auth")
    func untrustedCertificate() async throws {
        let pki = try TestPKI()
        let gateway = try await EchoGateway(
            tls: .init(certificateChainPath: try pki.leaf("sip", dnsNames: ["sip.test"], selfSigned: true).0, privateKeyPath: pki.path("sip.key")),
            ca: pki.path("ca.crt"), policy: .secure)
        let prosody = try Prosody(mode: "secure", certificate: try pki.leaf("a", dnsNames: ["a.test"]), ca: pki.path("ca.crt"), gatewayPort: gateway.port)
        defer {
            prosody.stop()
            _ = gateway.service.shutdown()
        }
        Self.sendChat(gateway, "should be refused")
        let bounce = await gateway.wait { $0.attribute("type") == "error" }
        #expect(bounce != nil, "no bounce; prosody: \(prosody.log.suffix(3000))")
        #expect(!gateway.allEvents.contains { if case .outboundUp = $0 { true } else { false } })
    }

    @Test("a wrong dialback key is refused by Prosody")
    func wrongDialbackKey() async throws {
        let pki = try TestPKI()
        let relaxed = PeerPolicy(tls: .required, allowDialback: true, requireValidCertificate: false)
        let tls = S2SConfiguration.TLSMaterial(
            certificateChainPath: try pki.leaf("sip", dnsNames: ["sip.test"], selfSigned: true).0, privateKeyPath: pki.path("sip.key"))
        // The real gateway answers Prosody's verification; an impostor with another secret sends.
        let gateway = try await EchoGateway(tls: tls, ca: nil, policy: relaxed)
        let impostor = try await EchoGateway(tls: tls, ca: nil, policy: relaxed, secret: "not-the-real-secret")
        let prosody = try Prosody(mode: "dialback", certificate: try pki.leaf("a", dnsNames: ["a.test"], selfSigned: true), ca: nil, gatewayPort: gateway.port)
        defer {
            prosody.stop()
            _ = gateway.service.shutdown()
            _ = impostor.service.shutdown()
        }
        Self.sendChat(impostor, "forged")
        let bounce = await impostor.wait { $0.attribute("type") == "error" }
        #expect(bounce != nil, "prosody: \(prosody.log.suffix(3000))")
        #expect(!impostor.allEvents.contains { if case .outboundUp = $0 { true } else { false } })
    }

    /// A component gateway that echoes chat messages, and records what happens to its link.
    final class EchoComponent: @unchecked Sendable {
        var service: ComponentService!
        private let lock = NSLock()
        private var events: [ComponentService.Event] = []

        init(secret: String) {
            service = ComponentService(
                configuration: .init(componentName: "gw.a.test", secret: secret, port: ProsodyInteropTests.componentPort),
                eventLoop: LoopbackFederationTests.group.next(),
                onStanza: { [weak self] element in self?.stanza(element) },
                onEvent: { [weak self] event in self?.record(event) })
        }

        func stanza(_ element: XMLElement) {
            guard element.name == "message", element.attribute("type") != "error", let body = element.firstChild("body")?.text,
                let from = element.attribute("from"), let to = element.attribute("to")
            else { return }
            var reply = XMLElement("message", namespace: XMPPNamespace.server, attributes: ["from": to, "to": from, "type": "chat"])
            reply.append(XMLElement("body", namespace: XMPPNamespace.server, text: "echo: \(body)"))
            service.send(reply)
        }

        func record(_ event: ComponentService.Event) { lock.withLock { events.append(event) } }
        var allEvents: [ComponentService.Event] { lock.withLock { events } }

        func waitFor(seconds: Double = 20, _ match: (ComponentService.Event) -> Bool) async -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if allEvents.contains(where: match) { return true }
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
            return false
        }
    }

    @Test("component mode (XEP-0114): the component reconnects until Prosody is up, then carries messages")
    func component() async throws {
        let pki = try TestPKI()
        let component = EchoComponent(secret: Self.componentSecret)
        component.service.start()
        // Prosody is not there yet: the component must retry with backoff.
        #expect(await component.waitFor(seconds: 5) { if case .disconnected = $0 { true } else { false } })
        let prosody = try Prosody(mode: "dialback", certificate: try pki.leaf("a", dnsNames: ["a.test"], selfSigned: true), ca: nil, gatewayPort: 1)
        defer {
            prosody.stop()
            _ = component.service.shutdown()
        }
        #expect(await component.waitFor(seconds: 70) { $0 == .connected }, "prosody: \(prosody.log.suffix(2000))")
        let (status, output) = try Self.client(["--send", "bob@gw.a.test", "via the component", "--expect-from", "bob@gw.a.test", "--expect-body", "echo: via the component"])
        #expect(status == 0, "client: \(output)\nprosody: \(prosody.log.suffix(3000))")
    }

    @Test("a wrong component secret is refused")
    func componentWrongSecret() async throws {
        let pki = try TestPKI()
        let prosody = try Prosody(mode: "dialback", certificate: try pki.leaf("a", dnsNames: ["a.test"], selfSigned: true), ca: nil, gatewayPort: 1)
        let component = EchoComponent(secret: "wrong-secret")
        defer {
            prosody.stop()
            _ = component.service.shutdown()
        }
        component.service.start()
        #expect(await component.waitFor { if case .disconnected(let reason) = $0 { reason.contains("not-authorized") } else { false } },
                "\(component.allEvents)")
        #expect(!component.allEvents.contains(.connected))
    }
}
