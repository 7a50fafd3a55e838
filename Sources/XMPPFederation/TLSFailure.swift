import NIOCore
import NIOSSL

/// TLS and connection failures in words an operator can act on, instead of a Swift enum dump
/// such as `handshakeFailed(NIOSSL.BoringSSLError.sslError([...]))`.
public enum TLSFailure {
    /// A sentence for a TLS failure; nil when `error` is not about TLS (a reset, a timeout).
    public static func describe(_ error: any Error) -> String? {
        if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
            return "the certificate does not name the peer's domain"
        }
        guard let error = error as? NIOSSLError else { return nil }
        switch error {
        case .handshakeFailed(let inner):
            return "TLS handshake failed: " + reason(String(describing: inner))
        case .unableToValidateCertificate:
            return "the peer's certificate could not be validated"
        case .noCertificateToValidate:
            return "the peer presented no certificate"
        case .uncleanShutdown:
            // A peer closing without close_notify is a close (Prosody does it), not a refusal.
            return nil
        default:
            return "TLS failed: " + reason(String(describing: error))
        }
    }

    /// BoringSSL's reason code (`CERTIFICATE_VERIFY_FAILED`) in words when it is a common one.
    static func reason(_ text: String) -> String {
        let known: [(code: String, words: String)] = [
            ("CERTIFICATE_VERIFY_FAILED", "the peer's certificate does not verify against the trusted CAs"),
            ("TLSV1_ALERT_UNKNOWN_CA", "the peer does not trust our certificate's CA"),
            ("SSLV3_ALERT_BAD_CERTIFICATE", "the peer rejected our certificate"),
            ("SSLV3_ALERT_CERTIFICATE_EXPIRED", "a certificate has expired"),
            ("CERTIFICATE_REQUIRED", "the peer requires a client certificate"),
            ("WRONG_VERSION_NUMBER", "the peer did not speak TLS"),
            ("HTTP_REQUEST", "the peer spoke HTTP"),
            ("NO_SHARED_CIPHER", "no cipher in common"),
            ("UNSUPPORTED_PROTOCOL", "no TLS version in common"),
            ("TLSV1_ALERT_PROTOCOL_VERSION", "no TLS version in common"),
        ]
        for entry in known where text.contains(entry.code) { return entry.words }
        // Otherwise BoringSSL's own reason token, without the surrounding enum syntax.
        if let token = text.split(whereSeparator: { !$0.isUppercase && !$0.isNumber && $0 != "_" })
            .last(where: { $0.count > 3 && $0.contains("_") }) {
            return String(String(token).lowercased().map { $0 == "_" ? " " : $0 })
        }
        return "TLS error"
    }

    /// Any link failure in words: TLS as above, connection errors by their plain meaning.
    public static func describeAny(_ error: any Error) -> String {
        if let tls = describe(error) { return tls }
        if let error = error as? IOError { return error.description }
        if let error = error as? ChannelError {
            switch error {
            case .connectTimeout: return "connection timed out"
            case .ioOnClosedChannel, .alreadyClosed, .eof: return "connection closed"
            default: return "connection failed (\(error))"
            }
        }
        return String(describing: error)
    }
}
