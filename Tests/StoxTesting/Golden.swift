import Foundation

/// Locates and reads the golden fixtures under `Tests/Golden`.
public enum Golden {
    /// The repository root, found from this file's location (`Tests/StoxTesting/Golden.swift`).
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static func directory(_ relative: String) -> URL {
        repositoryRoot.appendingPathComponent("Tests/Golden").appendingPathComponent(relative)
    }

    /// Every file under `directory` (recursively) with the extension, as paths relative to it, sorted.
    public static func files(in directory: URL, withExtension ext: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else {
            return []
        }
        var result: [String] = []
        let base = directory.standardizedFileURL.path
        for case let url as URL in enumerator where url.pathExtension == ext {
            let path = url.standardizedFileURL.path
            result.append(String(path.dropFirst(base.count + 1)))
        }
        return result.sorted()
    }

    public static func bytes(_ url: URL) throws -> [UInt8] {
        Array(try Data(contentsOf: url))
    }
}

/// A `.expect` file: `# source` comment lines, then `key: value` lines in order.
public struct ExpectFile: Sendable {
    public var source: String
    public var entries: [(key: String, value: String)]

    public init(text: String) {
        source = ""
        entries = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            if trimmed.hasPrefix("#") {
                if source.isEmpty { source = String(trimmed.dropFirst()).trimmingCharacters(in: .whitespaces) }
                continue
            }
            guard let colon = trimmed.firstIndex(of: ":") else { continue }
            let key = String(trimmed[..<colon])
            let value = String(trimmed[trimmed.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            entries.append((key, value))
        }
    }

    public init(contentsOf url: URL) throws {
        self.init(text: try String(contentsOf: url, encoding: .utf8))
    }

    public subscript(_ key: String) -> String? { entries.first { $0.key == key }?.value }
    public func all(_ key: String) -> [String] { entries.filter { $0.key == key }.map(\.value) }
}

/// A tab-separated manifest with a header row and `#` comment lines.
public struct Manifest: Sendable {
    public var columns: [String]
    public var rows: [[String: String]]

    public init(contentsOf url: URL) throws {
        let text = try String(contentsOf: url, encoding: .utf8)
        columns = []
        rows = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let cells = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if columns.isEmpty {
                columns = cells
                continue
            }
            var row: [String: String] = [:]
            for (index, column) in columns.enumerated() {
                row[column] = index < cells.count ? cells[index].trimmingCharacters(in: .whitespaces) : ""
            }
            rows.append(row)
        }
    }
}

/// A fresh directory under the temporary directory, where a test keeps a gateway's store, log and
/// certificates; `remove()` it when done (a `defer` beside its creation).
public final class ScratchDirectory: @unchecked Sendable {
    public let url: URL

    public init(_ name: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("stox-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public func remove() { try? FileManager.default.removeItem(at: url) }
}
