import Foundation

/// Runs a fuzz target over files or directories of saved inputs (the corpus replay mode).
public enum FuzzReplay {
    public static func run(arguments: [String], _ target: (UnsafeRawBufferPointer) -> Void) throws {
        for path in arguments {
            for file in inputs(at: path) {
                let data = try Data(contentsOf: URL(fileURLWithPath: file))
                data.withUnsafeBytes { target($0) }
                print("ok \(file)")
            }
        }
    }

    /// A file, or every regular file under a directory, sorted.
    public static func inputs(at path: String) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [] }
        guard isDirectory.boolValue else { return [path] }
        let names = (try? FileManager.default.subpathsOfDirectory(atPath: path)) ?? []
        return names.sorted().map { path + "/" + $0 }.filter { file in
            var directory: ObjCBool = false
            return FileManager.default.fileExists(atPath: file, isDirectory: &directory) && !directory.boolValue
                && !file.hasSuffix(".md")
        }
    }
}
