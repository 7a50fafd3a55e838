import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway certificate authority and leaf certificates made with the openssl command, in a
/// fresh temporary directory per test run.
public final class TestPKI: @unchecked Sendable {
    public let directory: URL

    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("stox-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Stox Test CA",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                     "-keyout", path("ca.key"), "-out", path("ca.crt")])
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    public func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// A certificate for `names` signed by the test CA (or self-signed), returning (cert, key).
    public func leaf(_ name: String, dnsNames: [String], selfSigned: Bool = false) throws -> (String, String) {
        let key = path("\(name).key"), csr = path("\(name).csr"), cert = path("\(name).crt"), ext = path("\(name).ext")
        let san = dnsNames.map { "DNS:\($0)" }.joined(separator: ",")
        try "subjectAltName=\(san)\nextendedKeyUsage=serverAuth,clientAuth\n".write(toFile: ext, atomically: true, encoding: .utf8)
        if selfSigned {
            try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=\(dnsNames[0])",
                         "-addext", "subjectAltName=\(san)", "-keyout", key, "-out", cert])
        } else {
            try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=\(dnsNames[0])", "-keyout", key, "-out", csr])
            try openssl(["x509", "-req", "-in", csr, "-CA", path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial",
                         "-days", "2", "-extfile", ext, "-out", cert])
        }
        return (cert, key)
    }

    /// Runs openssl and reaps it with `waitpid` (`ChildProcess`), not Foundation's `Process`,
    /// whose monitor a daemon started in the same test process can block (see `ChildProcess`):
    /// openssl was once left a zombie there, stalling every test that needed a certificate.
    /// `.reapedByFoundation` cannot tell the status; the caller then reads the files openssl
    /// was to write, and fails there if they are missing.
    private func openssl(_ arguments: [String]) throws {
        let pid = try ChildProcess.spawn("/usr/bin/openssl", arguments)
        switch ChildProcess.wait(pid, timeout: 60) {
        case .status(0), .reapedByFoundation: return
        case .status: throw CocoaError(.fileWriteUnknown)
        case nil:
            ChildProcess.stop(pid, signal: SIGKILL)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "openssl \(arguments.first ?? "") did not finish in 60 s"])
        }
    }
}
