import Testing

/// Tests that start real third-party peers (Prosody, SIPp, pjsua2) take turns: on a 2-core
/// machine, two of them starting at once starve each other's timeouts, and a peer that is
/// slow to stop can still hold a fixed port when the next one starts. Unit tests keep running
/// in parallel beside them.
public actor InteropGate {
    public static let shared = InteropGate()
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public func acquire() async {
        guard busy else {
            busy = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    public func release() {
        if waiters.isEmpty {
            busy = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}

/// `@Suite(.interopPeers)`: each test case of the suite holds the gate while it runs.
public struct InteropPeersTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        // Per test case only: a suite-wide hold would deadlock against its own tests.
        testCase == nil ? nil : self
    }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        await InteropGate.shared.acquire()
        do {
            try await function()
        } catch {
            await InteropGate.shared.release()
            throw error
        }
        await InteropGate.shared.release()
    }
}

extension Trait where Self == InteropPeersTrait {
    public static var interopPeers: Self { Self() }
}
