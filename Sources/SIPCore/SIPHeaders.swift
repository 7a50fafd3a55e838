/// The header fields of a message, in wire order. Several fields may share a name; a field's
/// value is kept as received, with line folding replaced by a single space (§7.3.1).
public struct SIPHeaders: Hashable, Sendable, Sequence, ExpressibleByDictionaryLiteral {
    public struct Field: Hashable, Sendable {
        public var name: SIPHeaderName
        public var value: String

        public init(_ name: SIPHeaderName, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public private(set) var fields: [Field]

    public init() { fields = [] }
    public init(_ fields: [Field]) { self.fields = fields }
    public init(dictionaryLiteral elements: (SIPHeaderName, String)...) {
        fields = elements.map { Field($0.0, $0.1) }
    }

    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }
    public var count: Int { fields.count }

    /// The value of the first field with this name.
    public subscript(_ name: SIPHeaderName) -> String? {
        for field in fields where field.name == name { return field.value }
        return nil
    }

    /// The raw values of every field with this name, one per header line.
    public func lines(_ name: SIPHeaderName) -> [String] {
        fields.compactMap { $0.name == name ? $0.value : nil }
    }

    /// Every value with this name; list headers (Via, Contact, Route, Supported, ...) are split
    /// on top-level commas, so `Via: a, b` and two `Via` lines give the same result.
    public func values(_ name: SIPHeaderName) -> [String] {
        var result: [String] = []
        for field in fields where field.name == name {
            if name.isList, SIPGrammar.hasTopLevelComma(field.value) {
                result.append(contentsOf: SIPGrammar.splitList(field.value).filter { !$0.isEmpty })
            } else {
                result.append(field.value)
            }
        }
        return result
    }

    public func contains(_ name: SIPHeaderName) -> Bool {
        fields.contains { $0.name == name }
    }

    /// Appends a field after the existing ones.
    public mutating func add(_ name: SIPHeaderName, _ value: String) {
        fields.append(Field(name, value))
    }

    /// Inserts a field before all others with the same name (a proxy's own Via, §16.6 step 8).
    public mutating func prepend(_ name: SIPHeaderName, _ value: String) {
        let index = fields.firstIndex { $0.name == name } ?? 0
        fields.insert(Field(name, value), at: index)
    }

    /// Replaces every field with this name by one field, at the position of the first; appends
    /// if absent. `nil` removes them.
    public mutating func set(_ name: SIPHeaderName, _ value: String?) {
        guard let value else {
            remove(name)
            return
        }
        if let first = fields.firstIndex(where: { $0.name == name }) {
            fields[first].value = value
            var index = fields.count - 1
            while index > first {
                if fields[index].name == name { fields.remove(at: index) }
                index -= 1
            }
        } else {
            fields.append(Field(name, value))
        }
    }

    public mutating func remove(_ name: SIPHeaderName) {
        fields.removeAll { $0.name == name }
    }

    /// Removes the first value of a (possibly comma-joined) list header: the topmost Via a
    /// response loses at each hop (§18.1.2), or a Route entry consumed by loose routing.
    public mutating func removeFirstValue(_ name: SIPHeaderName) {
        guard let index = fields.firstIndex(where: { $0.name == name }) else { return }
        let parts = SIPGrammar.splitList(fields[index].value)
        if parts.count > 1 {
            fields[index].value = parts.dropFirst().joined(separator: ", ")
        } else {
            fields.remove(at: index)
        }
    }

    mutating func reserveCapacity(_ count: Int) { fields.reserveCapacity(count) }
    mutating func appendParsed(_ field: Field) { fields.append(field) }
}
