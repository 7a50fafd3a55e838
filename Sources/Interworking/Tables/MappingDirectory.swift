import Foundation

/// Reads a mapping directory from disk. This is the module's only I/O, done once at startup or
/// reload; translation itself never touches the file system.
public enum MappingDirectory {
    /// The `.tsv` files of `path`, by name.
    public static func read(_ path: String) throws(MappingProblems) -> [String: String] {
        var files: [String: String] = [:]
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw MappingProblems(errors: [MappingError(path, "cannot read the mapping directory: \(error.localizedDescription)")])
        }
        for name in names where name.hasSuffix(".tsv") {
            guard let data = FileManager.default.contents(atPath: (path as NSString).appendingPathComponent(name)),
                let text = String(data: data, encoding: .utf8)
            else {
                throw MappingProblems(errors: [MappingError(name, "not readable as UTF-8")])
            }
            files[name] = text
        }
        return files
    }

    /// Every `.golden` file under `path`, parsed, sorted by name (relative to `path`).
    public static func goldens(_ path: String) throws -> [GoldenCase] {
        guard let enumerator = FileManager.default.enumerator(atPath: path) else {
            throw MappingProblems(errors: [MappingError(path, "cannot read the golden directory")])
        }
        var cases: [GoldenCase] = []
        for case let name as String in enumerator where name.hasSuffix(".golden") {
            let full = (path as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: full) else { continue }
            cases.append(try GoldenCase.parse(name: name, text: String(decoding: data, as: UTF8.self)))
        }
        return cases.sorted { $0.name < $1.name }
    }

    /// Reads and validates a mapping directory, round-trip audit included.
    public static func load(_ path: String) throws(MappingProblems) -> MappingSet {
        try MappingSet(files: read(path))
    }
}
