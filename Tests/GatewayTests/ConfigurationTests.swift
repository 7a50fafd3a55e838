import Foundation
import Gateway
import Testing

@Suite struct ConfigurationTests {
    @Test("the shipped Config/stox.conf loads")
    func shipped() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let previous = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(root.path)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        let configuration = try GatewayConfiguration.load(path: "Config/stox.conf", environment: [:])
        #expect(configuration.sipListen == "127.0.0.1")
        #expect(configuration.xmppListen == "127.0.0.1")
        #expect(configuration.dialbackSecret == nil, "no secret is shipped")
        #expect(configuration.peerRate == 500, "flood protection on by default")
        // A busy partner server needs more; the environment overrides the file.
        let raised = try GatewayConfiguration.load(path: "Config/stox.conf", environment: ["STOX_XMPP_PEER_RATE": "20000"])
        #expect(raised.peerRate == 20_000)
    }
}
