import SIPCore
import XMPPCore

/// A translation's result and what it could not carry ("dropped <subject/>: no SIP equivalent").
/// Diagnostics are for logs, `stox translate` and the goldens; they never change the result.
public struct Translated<Value> {
    public var value: Value
    public var diagnostics: [String]

    public init(_ value: Value, diagnostics: [String] = []) {
        self.value = value
        self.diagnostics = diagnostics
    }

    func map<T>(_ transform: (Value) -> T) -> Translated<T> {
        Translated<T>(transform(value), diagnostics: diagnostics)
    }
}

extension Translated: Sendable where Value: Sendable {}
extension Translated: Equatable where Value: Equatable {}

/// A translation that must not happen, with the XMPP-side reason. The SIP side answers with the
/// code `errors-xmpp-to-sip.tsv` gives for it, so refusals cross the gateway through the tables
/// like every other error.
public struct TranslationRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    public var error: StanzaError
    public var diagnostics: [String]

    public init(_ condition: StanzaError.Condition, _ text: String, diagnostics: [String] = []) {
        self.error = StanzaError(condition, text: text)
        self.diagnostics = diagnostics
    }

    public var description: String { "refused: \(error.condition.rawValue) (\(error.text ?? ""))" }
}
