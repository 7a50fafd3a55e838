import CExpat

/// The opening tag of an XMPP stream (RFC 6120 §4.7): its expanded name, attributes and the
/// namespace declarations made on it, which stay in scope for every stanza that follows.
public struct XMLStreamHeader: Hashable, Sendable {
    public var name: String
    public var namespace: String
    /// The prefix the sender used for the root element (`stream` in `<stream:stream>`).
    public var prefix: String?
    public var attributes: [XMLAttribute]
    /// Declarations on the root: prefix → URI, with `""` as the key of the default namespace.
    public var namespaceDeclarations: [String: String]

    public init(
        name: String, namespace: String, prefix: String? = nil,
        attributes: [XMLAttribute] = [], namespaceDeclarations: [String: String] = [:]
    ) {
        self.name = name
        self.namespace = namespace
        self.prefix = prefix
        self.attributes = attributes
        self.namespaceDeclarations = namespaceDeclarations
    }

    /// The default namespace declared on the root (`jabber:server` for s2s), if any.
    public var defaultNamespace: String? { namespaceDeclarations[""] }

    public func attribute(_ name: String, namespace: String = "") -> String? {
        attributes.first { $0.name == name && $0.namespace == namespace }?.value
    }
}

/// What an incremental stream parse produces.
public enum XMLStreamEvent: Hashable, Sendable {
    /// The root start tag was read.
    case streamOpened(XMLStreamHeader)
    /// A complete child of the root (a stanza, `<stream:features/>`, `<starttls/>`, ...).
    case element(XMLElement)
    /// The root end tag was read; nothing may follow.
    case streamClosed
}

/// An incremental push parser for XMPP streams. Feed it bytes split anywhere, even one at a
/// time; it yields the stream header, every complete top-level element as a tree, and the
/// stream close. It enforces RFC 6120 §11.1 (no DTD, entity declarations, processing
/// instructions or comments) and `XMLParserLimits`. After an error the parser stays failed:
/// the stream must be closed. Create a new parser (or `reset()`) for a restarted stream, as
/// STARTTLS and SASL require (RFC 6120 §5.4.3.3, §6.4.6).
///
/// Not thread-safe: one parser belongs to one connection's event loop.
public final class XMLStreamParser {
    private let engine: ExpatEngine

    public init(limits: XMLParserLimits = .default) {
        engine = ExpatEngine(mode: .stream, limits: limits)
    }

    /// Parses `bytes` and appends the resulting events to `events`.
    public func feed(_ bytes: UnsafeRawBufferPointer, into events: inout [XMLStreamEvent]) throws(XMLParseError) {
        try engine.feed(bytes)
        engine.drain(into: &events)
    }

    public func feed(_ bytes: [UInt8], into events: inout [XMLStreamEvent]) throws(XMLParseError) {
        let result: Result<Void, XMLParseError> = bytes.withUnsafeBytes { raw in
            Result { () throws(XMLParseError) in try engine.feed(raw) }
        }
        try result.get()
        engine.drain(into: &events)
    }

    public func feed(_ string: String, into events: inout [XMLStreamEvent]) throws(XMLParseError) {
        try feed(Array(string.utf8), into: &events)
    }

    /// Convenience: parse and return the events.
    public func feed(_ bytes: [UInt8]) throws(XMLParseError) -> [XMLStreamEvent] {
        var events: [XMLStreamEvent] = []
        try feed(bytes, into: &events)
        return events
    }

    /// Total bytes accepted so far in this stream.
    public var bytesConsumed: Int { engine.bytesFed }

    /// Forgets the current stream and starts afresh (a stream restart).
    public func reset() { engine.reset() }
}

/// Parses standalone documents such as PIDF bodies (RFC 3863). The same restrictions apply
/// except that comments and processing instructions are skipped rather than refused, since
/// presence documents legitimately carry them; DTDs and entity declarations are still refused.
public enum XMLDocumentParser {
    public static func parse(_ bytes: UnsafeRawBufferPointer, limits: XMLParserLimits = .default) throws(XMLParseError) -> XMLElement {
        let engine = ExpatEngine(mode: .document, limits: limits)
        try engine.feed(bytes)
        return try engine.finishDocument()
    }

    public static func parse(_ bytes: [UInt8], limits: XMLParserLimits = .default) throws(XMLParseError) -> XMLElement {
        let result: Result<XMLElement, XMLParseError> = bytes.withUnsafeBytes { raw in
            Result { () throws(XMLParseError) in try parse(raw, limits: limits) }
        }
        return try result.get()
    }

    public static func parse(_ string: String, limits: XMLParserLimits = .default) throws(XMLParseError) -> XMLElement {
        try parse(Array(string.utf8), limits: limits)
    }
}

// MARK: - The expat driver

/// Owns one expat parser. Callbacks are C function pointers; they reach this object through
/// expat's user-data pointer and hand each event to `builder`, a struct, so a callback costs one
/// exclusivity check rather than one per field it touches.
final class ExpatEngine {
    enum Mode { case stream, document }

    let mode: Mode
    let limits: XMLParserLimits
    private var parser: XML_Parser!
    fileprivate var builder: TreeBuilder

    init(mode: Mode, limits: XMLParserLimits) {
        self.mode = mode
        self.limits = limits
        self.builder = TreeBuilder(mode: mode, limits: limits)
        createParser()
    }

    deinit {
        XML_ParserFree(parser)
    }

    var error: XMLParseError? { builder.error }
    var bytesFed: Int { builder.bytesFed }

    func reset() {
        XML_ParserFree(parser)
        builder = TreeBuilder(mode: mode, limits: limits)
        createParser()
    }

    private func createParser() {
        // UTF-8 is forced: RFC 6120 §11.6 allows no other encoding, and a declared one is
        // checked in the XML declaration handler. 0x01 separates URI, local name and prefix;
        // it cannot occur in well-formed XML 1.0.
        parser = XML_ParserCreateNS("UTF-8", 0x01)
        precondition(parser != nil, "expat could not allocate a parser")
        builder.parser = parser
        XML_SetReturnNSTriplet(parser, 1)
        XML_SetUserData(parser, Unmanaged.passUnretained(self).toOpaque())
        XML_SetElementHandler(parser, expatStart, expatEnd)
        XML_SetCharacterDataHandler(parser, expatText)
        XML_SetStartNamespaceDeclHandler(parser, expatNamespace)
        XML_SetXmlDeclHandler(parser, expatXMLDecl)
        XML_SetStartDoctypeDeclHandler(parser, expatDoctype)
        XML_SetEntityDeclHandler(parser, expatEntityDecl)
        XML_SetProcessingInstructionHandler(parser, expatProcessingInstruction)
        XML_SetCommentHandler(parser, expatComment)
        // Never load external entities; without a DTD there is nothing to expand anyway.
        _ = XML_SetParamEntityParsing(parser, XML_PARAM_ENTITY_PARSING_NEVER)
        // Every event must arrive as soon as its bytes have (see the shim for why).
        _ = stox_expat_disable_reparse_deferral(parser)
    }

    func drain(into events: inout [XMLStreamEvent]) {
        builder.drain(into: &events)
    }

    /// Feeds bytes to expat in slices, so that a peer cannot make expat buffer an unbounded
    /// unfinished token: between slices, the bytes held since the anchor are checked against
    /// the element-size limit.
    func feed(_ bytes: UnsafeRawBufferPointer) throws(XMLParseError) {
        if let error = builder.error { throw error }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        let sliceSize = 16 * 1024
        var offset = 0
        while offset < bytes.count {
            let count = min(sliceSize, bytes.count - offset)
            if builder.bytesFed + count - builder.anchor > limits.maxElementBytes + sliceSize {
                builder.fail(.elementTooLarge, at: builder.bytesFed, "more than \(limits.maxElementBytes) bytes in one element")
                throw builder.error!
            }
            let status = XML_Parse(
                parser, base.advanced(by: offset).assumingMemoryBound(to: CChar.self), Int32(count), 0)
            builder.bytesFed += count
            offset += count
            if let error = builder.error { throw error }
            if status == XML_STATUS_ERROR { throw expatFailure() }
        }
    }

    func finishDocument() throws(XMLParseError) -> XMLElement {
        if let error = builder.error { throw error }
        let status = XML_Parse(parser, nil, 0, 1)
        if let error = builder.error { throw error }
        if status == XML_STATUS_ERROR { throw expatFailure() }
        guard let root = builder.documentRoot else {
            builder.fail(.incompleteDocument, at: builder.bytesFed, "no root element")
            throw builder.error!
        }
        return root
    }

    /// Records expat's own error (not-well-formed and the like) and returns it.
    private func expatFailure() -> XMLParseError {
        let expatError = XML_GetErrorCode(parser)
        let message = XML_ErrorString(expatError).map { String(cString: $0) } ?? "expat error"
        builder.fail(Self.kind(of: expatError), at: max(Int(XML_GetCurrentByteIndex(parser)), 0), message)
        return builder.error!
    }

    private static func kind(of code: XML_Error) -> XMLParseError.Kind {
        switch code {
        case XML_ERROR_UNDEFINED_ENTITY, XML_ERROR_RECURSIVE_ENTITY_REF, XML_ERROR_ASYNC_ENTITY,
            XML_ERROR_BINARY_ENTITY_REF, XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF,
            XML_ERROR_EXTERNAL_ENTITY_HANDLING, XML_ERROR_ENTITY_DECLARED_IN_PE,
            XML_ERROR_NOT_STANDALONE, XML_ERROR_AMPLIFICATION_LIMIT_BREACH:
            .restrictedXML
        case XML_ERROR_UNKNOWN_ENCODING, XML_ERROR_INCORRECT_ENCODING:
            .unsupportedEncoding
        default:
            .notWellFormed
        }
    }
}

/// Turns expat's callbacks into events and trees.
struct TreeBuilder {
    let mode: ExpatEngine.Mode
    let limits: XMLParserLimits
    var parser: XML_Parser? = nil

    /// Elements currently open, the stream root included.
    private var level = 0
    /// The level at which trees start: stanzas (2) in a stream, the root (1) in a document.
    private let treeLevel: Int
    /// Elements under construction, outermost first.
    private var stack: [XMLElement] = []
    /// Character data not yet attached to the innermost element.
    private var textBuffer: [UInt8] = []
    /// Namespace declarations seen before the next start tag (expat reports them first).
    private var pendingDeclarations: [String: String] = [:]
    private var pending: [XMLStreamEvent] = []
    private(set) var documentRoot: XMLElement?
    private(set) var error: XMLParseError?
    var bytesFed = 0
    /// Where the current top-level element started, or where the last stream-level event ended.
    private(set) var anchor = 0
    private var names = NameCache()

    init(mode: ExpatEngine.Mode, limits: XMLParserLimits) {
        self.mode = mode
        self.limits = limits
        self.treeLevel = mode == .stream ? 2 : 1
    }

    mutating func drain(into events: inout [XMLStreamEvent]) {
        if pending.isEmpty { return }
        if events.isEmpty {
            swap(&events, &pending)
        } else {
            events.append(contentsOf: pending)
            pending.removeAll(keepingCapacity: true)
        }
    }

    mutating func fail(_ kind: XMLParseError.Kind, at offset: Int? = nil, _ detail: String) {
        guard error == nil else { return }
        let where_ = offset ?? currentOffset
        error = XMLParseError(kind, byteOffset: max(where_, 0), detail: detail)
        if let parser { XML_StopParser(parser, 0) }
    }

    private var currentOffset: Int { parser.map { Int(XML_GetCurrentByteIndex($0)) } ?? bytesFed }
    private var currentEventEnd: Int {
        parser.map { Int(XML_GetCurrentByteIndex($0)) + Int(XML_GetCurrentByteCount($0)) } ?? bytesFed
    }

    // MARK: callbacks

    mutating func startElement(_ rawName: UnsafePointer<CChar>, _ rawAttributes: UnsafeMutablePointer<UnsafePointer<CChar>?>) {
        guard error == nil else { return }
        level += 1
        if level == treeLevel { anchor = currentOffset }
        if level >= treeLevel, level - treeLevel + 1 > limits.maxDepth {
            fail(.depthLimitExceeded, "elements nested deeper than \(limits.maxDepth)")
            return
        }
        let name = names.split(rawName)
        var attributes: [XMLAttribute] = []
        var cursor = rawAttributes
        var count = 0
        while let attributeName = cursor.pointee {
            count += 1
            if count > limits.maxAttributes {
                fail(.tooManyAttributes, "more than \(limits.maxAttributes) attributes on <\(name.local)>")
                return
            }
            if count == 1 { attributes.reserveCapacity(4) }
            let valuePointer = cursor.advanced(by: 1).pointee!
            let qualified = names.split(attributeName)
            attributes.append(XMLAttribute(
                qualified.local, namespace: qualified.namespace, value: String(cString: valuePointer)))
            cursor = cursor.advanced(by: 2)
        }

        if level < treeLevel {
            // The stream root.
            let header = XMLStreamHeader(
                name: name.local, namespace: name.namespace, prefix: name.prefix,
                attributes: attributes, namespaceDeclarations: pendingDeclarations)
            pendingDeclarations = [:]
            pending.append(.streamOpened(header))
            anchor = currentEventEnd
            return
        }
        if !pendingDeclarations.isEmpty { pendingDeclarations = [:] }
        flushText()
        stack.append(XMLElement(name.local, namespace: name.namespace, attributes: attributes))
    }

    mutating func endElement() {
        guard error == nil else { return }
        defer { level -= 1 }
        if level < treeLevel {
            pending.append(.streamClosed)
            return
        }
        flushText()
        let element = stack.removeLast()
        if level > treeLevel {
            stack[stack.count - 1].children.append(.element(element))
            return
        }
        let end = currentEventEnd
        if end - anchor > limits.maxElementBytes {
            fail(.elementTooLarge, "<\(element.name)> is \(end - anchor) bytes, over \(limits.maxElementBytes)")
            return
        }
        anchor = end
        switch mode {
        case .stream: pending.append(.element(element))
        case .document: documentRoot = element
        }
    }

    mutating func characters(_ bytes: UnsafePointer<CChar>, _ count: Int) {
        guard error == nil else { return }
        if level >= treeLevel {
            bytes.withMemoryRebound(to: UInt8.self, capacity: count) { pointer in
                textBuffer.append(contentsOf: UnsafeBufferPointer(start: pointer, count: count))
            }
            return
        }
        // Between stanzas only whitespace is allowed (RFC 6120 §4.6.1 whitespace keepalives).
        for index in 0..<count {
            switch UInt8(bitPattern: bytes[index]) {
            case 0x20, 0x09, 0x0A, 0x0D: continue
            default:
                fail(.textAtStreamLevel, "character data outside any element")
                return
            }
        }
        anchor = currentEventEnd
    }

    private mutating func flushText() {
        guard !textBuffer.isEmpty else { return }
        let text = String(decoding: textBuffer, as: UTF8.self)
        textBuffer.removeAll(keepingCapacity: true)
        stack[stack.count - 1].children.append(.text(text))
    }

    mutating func namespaceDeclaration(prefix: UnsafePointer<CChar>?, uri: UnsafePointer<CChar>?) {
        guard error == nil, level == 0, mode == .stream else { return }
        let key = prefix.map { String(cString: $0) } ?? ""
        pendingDeclarations[key] = uri.map { String(cString: $0) } ?? ""
    }

    mutating func xmlDeclaration(encoding: UnsafePointer<CChar>?) {
        guard error == nil, let encoding else { return }
        let declared = String(cString: encoding).lowercased()
        if declared != "utf-8" && declared != "utf8" {
            fail(.unsupportedEncoding, "declared encoding \(declared)")
        }
    }

    mutating func restricted(_ what: String) {
        fail(.restrictedXML, "\(what) is not allowed (RFC 6120 §11.1)")
    }

    mutating func processingInstructionOrComment(_ what: String) {
        // Standalone documents may carry them; skip. XMPP streams may not.
        if mode == .stream { restricted(what) }
    }
}

// MARK: - C callbacks

private func engine(_ userData: UnsafeMutableRawPointer?) -> ExpatEngine {
    Unmanaged<ExpatEngine>.fromOpaque(userData!).takeUnretainedValue()
}

private let expatStart: XML_StartElementHandler = { userData, name, attributes in
    engine(userData).builder.startElement(name!, attributes!)
}

private let expatEnd: XML_EndElementHandler = { userData, _ in
    engine(userData).builder.endElement()
}

private let expatText: XML_CharacterDataHandler = { userData, text, length in
    engine(userData).builder.characters(text!, Int(length))
}

private let expatNamespace: XML_StartNamespaceDeclHandler = { userData, prefix, uri in
    engine(userData).builder.namespaceDeclaration(prefix: prefix, uri: uri)
}

private let expatXMLDecl: XML_XmlDeclHandler = { userData, _, encoding, _ in
    engine(userData).builder.xmlDeclaration(encoding: encoding)
}

private let expatDoctype: XML_StartDoctypeDeclHandler = { userData, _, _, _, _ in
    engine(userData).builder.restricted("a document type declaration")
}

private let expatEntityDecl: XML_EntityDeclHandler = { userData, _, _, _, _, _, _, _, _ in
    engine(userData).builder.restricted("an entity declaration")
}

private let expatProcessingInstruction: XML_ProcessingInstructionHandler = { userData, _, _ in
    engine(userData).builder.processingInstructionOrComment("a processing instruction")
}

private let expatComment: XML_CommentHandler = { userData, _ in
    engine(userData).builder.processingInstructionOrComment("a comment")
}

// MARK: - Name cache

/// Expat hands every start tag's names over as C strings ("uri\u{1}local\u{1}prefix"). Stanzas
/// repeat the same few names, so a small direct-mapped cache turns most of them into shared
/// Swift strings without allocating.
struct NameCache {
    struct Name {
        var namespace: String
        var local: String
        var prefix: String?
    }

    private struct Entry {
        var bytes: [UInt8]
        var name: Name
    }

    private var slots = [Entry?](repeating: nil, count: 256)

    mutating func split(_ raw: UnsafePointer<CChar>) -> Name {
        let length = strlenFast(raw)
        return raw.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
            // FNV-1a over the bytes picks the slot.
            var hash: UInt32 = 2_166_136_261
            for index in 0..<length { hash = (hash ^ UInt32(bytes[index])) &* 16_777_619 }
            let slot = Int(hash & 0xFF)
            if let entry = slots[slot], entry.bytes.count == length,
                entry.bytes.withUnsafeBufferPointer({ memcmpEqual($0.baseAddress!, bytes, length) })
            {
                return entry.name
            }
            let buffer = UnsafeBufferPointer(start: bytes, count: length)
            let name = Self.parse(buffer)
            if length <= 256 { slots[slot] = Entry(bytes: Array(buffer), name: name) }
            return name
        }
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Name {
        var separators: [Int] = []
        for index in bytes.indices where bytes[index] == 0x01 { separators.append(index) }
        func string(_ range: Range<Int>) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }
        switch separators.count {
        case 0:
            return Name(namespace: "", local: string(0..<bytes.count), prefix: nil)
        case 1:
            return Name(
                namespace: string(0..<separators[0]),
                local: string((separators[0] + 1)..<bytes.count), prefix: nil)
        default:
            return Name(
                namespace: string(0..<separators[0]),
                local: string((separators[0] + 1)..<separators[1]),
                prefix: string((separators[1] + 1)..<bytes.count))
        }
    }
}

@inline(__always)
private func strlenFast(_ pointer: UnsafePointer<CChar>) -> Int {
    var length = 0
    while pointer[length] != 0 { length += 1 }
    return length
}

@inline(__always)
private func memcmpEqual(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
    for index in 0..<count where a[index] != b[index] { return false }
    return true
}
