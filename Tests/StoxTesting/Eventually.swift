import Foundation

/// Polls `condition` every 20 ms for up to `timeout` seconds; whether it became true. For state
/// another thread reaches at a moment the test cannot observe (an answer it does not see).
public func eventually(timeout: Double = 2, _ condition: () throws -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if (try? condition()) == true { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return (try? condition()) == true
}

/// The same for a condition that must await (an answer from an event loop).
public func eventually(timeout: Double = 2, _ condition: () async throws -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if (try? await condition()) == true { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return (try? await condition()) == true
}
