/// A problem in a mapping table: which file, which line, what is wrong. Loading collects every
/// problem in every file, so an operator fixes them in one pass.
public struct MappingError: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    /// 1-based line number, or `nil` for a problem with the file as a whole.
    public var line: Int?
    public var problem: String

    public init(_ file: String, line: Int? = nil, _ problem: String) {
        self.file = file
        self.line = line
        self.problem = problem
    }

    public var description: String {
        line.map { "\(file):\($0): \(problem)" } ?? "\(file): \(problem)"
    }
}

/// All the problems found while loading a mapping directory.
public struct MappingProblems: Error, Sendable, CustomStringConvertible {
    public var errors: [MappingError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// One table: tab-separated values with a header row; `#` starts a comment line; blank lines are
/// ignored. Every table's header names its columns, and the loader checks them by name.
struct MappingTable {
    struct Row {
        let line: Int
        let cells: [String: String]
        subscript(_ column: String) -> String { cells[column] ?? "" }
        var ref: String { self["ref"] }
    }

    let file: String
    let columns: [String]
    let rows: [Row]

    /// Parses `text`, requiring exactly `columns` in the header. Records problems in `problems`
    /// and returns `nil` when the table cannot be read at all.
    static func parse(file: String, text: String, columns expected: [String], problems: inout [MappingError]) -> MappingTable? {
        var header: [String]? = nil
        var rows: [Row] = []
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.hasPrefix("#") || line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            let cells = line.split(separator: "\t", omittingEmptySubsequences: false).map { String($0).trimmingSpaces() }
            guard let columns = header else {
                if cells != expected {
                    problems.append(MappingError(
                        file, line: lineNumber,
                        "header is \(cells.joined(separator: ", ")); expected \(expected.joined(separator: ", "))"))
                    return nil
                }
                header = cells
                continue
            }
            guard cells.count == columns.count else {
                problems.append(MappingError(file, line: lineNumber, "\(cells.count) cells; the header has \(columns.count)"))
                continue
            }
            var values: [String: String] = [:]
            for (column, cell) in zip(columns, cells) { values[column] = cell }
            let row = Row(line: lineNumber, cells: values)
            if columns.contains("ref"), row.ref.isEmpty {
                problems.append(MappingError(file, line: lineNumber, "empty ref: every row cites its source"))
            }
            if columns.contains("lossy"), row["lossy"] != "yes", row["lossy"] != "no" {
                problems.append(MappingError(file, line: lineNumber, "lossy is '\(row["lossy"])'; expected yes or no"))
            }
            rows.append(row)
        }
        guard let header else {
            problems.append(MappingError(file, "no header row"))
            return nil
        }
        return MappingTable(file: file, columns: header, rows: rows)
    }
}

extension MappingTable.Row {
    var isLossy: Bool { self["lossy"] == "yes" }
}

extension String {
    func trimmingSpaces() -> String {
        var text = Substring(self)
        while text.first == " " { text.removeFirst() }
        while text.last == " " { text.removeLast() }
        return String(text)
    }
}

/// A value from a table, remembering where it came from for diagnostics and the audit.
public struct Sourced<Value: Sendable & Hashable>: Sendable, Hashable {
    public var value: Value
    public var file: String
    public var line: Int
    public var ref: String
    public var lossy: Bool
}

/// Builds a keyed table, checking that keys parse, that none repeats, and (when a vocabulary is
/// given) that every word of it has exactly one row.
struct KeyedTableBuilder<Key: Hashable & Sendable, Value: Sendable & Hashable> {
    let table: MappingTable
    var entries: [Key: Sourced<Value>] = [:]

    init(_ table: MappingTable) { self.table = table }

    mutating func add(_ key: Key, _ value: Value, row: MappingTable.Row, problems: inout [MappingError]) {
        if let existing = entries[key] {
            problems.append(MappingError(table.file, line: row.line, "duplicate row for \(key) (first at line \(existing.line))"))
            return
        }
        entries[key] = Sourced(value: value, file: table.file, line: row.line, ref: row.ref, lossy: row.isLossy)
    }

    func checkCoverage(_ vocabulary: some Sequence<Key>, describe: (Key) -> String, problems: inout [MappingError]) {
        for word in vocabulary where entries[word] == nil {
            problems.append(MappingError(table.file, "no row for \(describe(word)): every value must have one"))
        }
    }
}
