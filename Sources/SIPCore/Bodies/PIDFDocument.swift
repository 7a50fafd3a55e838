import XMLCore

/// A presence document (RFC 3863, `application/pidf+xml`) with the RFC 4479 data model (person
/// and device elements) and RPID (RFC 4480) activities. Elements Stox does not model are kept in
/// `extensions`, so a document can be read, changed and written back without losing them.
public struct PIDFDocument: Hashable, Sendable {
    /// The presentity, `pres:` or `sip:` URI. RFC 3863 requires it; RFC 4479's examples omit it.
    public var entity: String?
    public var tuples: [PIDFTuple]
    /// Document-level notes (§4.1.6).
    public var notes: [LanguageText]
    public var persons: [PIDFPerson]
    public var devices: [PIDFDevice]
    public var extensions: [XMLElement]

    public init(
        entity: String?, tuples: [PIDFTuple] = [], notes: [LanguageText] = [], persons: [PIDFPerson] = [],
        devices: [PIDFDevice] = [], extensions: [XMLElement] = []
    ) {
        self.entity = entity
        self.tuples = tuples
        self.notes = notes
        self.persons = persons
        self.devices = devices
        self.extensions = extensions
    }

    public static let mediaType = SIPMediaType.pidf

    // MARK: parse

    public init(bytes: [UInt8]) throws(SIPBodyError) {
        try self.init(element: SIPBodyError.parseXML(bytes))
    }

    public init(element root: XMLElement) throws(SIPBodyError) {
        guard root.name == "presence", root.namespace == PresenceNamespace.pidf else {
            throw .invalidDocument("root is {\(root.namespace)}\(root.name), not PIDF <presence>")
        }
        self.init(entity: root.attribute("entity"))
        for child in root.elements {
            switch (child.namespace, child.name) {
            case (PresenceNamespace.pidf, "tuple"):
                guard let id = child.attribute("id") else { throw .invalidDocument("<tuple> without id") }
                tuples.append(PIDFTuple(element: child, id: id))
            case (PresenceNamespace.pidf, "note"):
                notes.append(.from(child))
            case (PresenceNamespace.dataModel, "person"):
                persons.append(PIDFPerson(element: child))
            case (PresenceNamespace.dataModel, "device"):
                devices.append(PIDFDevice(element: child))
            default:
                extensions.append(child)
            }
        }
    }

    // MARK: build

    public var element: XMLElement {
        var root = XMLElement("presence", namespace: PresenceNamespace.pidf)
        if let entity { root.setAttribute("entity", to: entity) }
        for tuple in tuples { root.append(tuple.element) }
        for note in notes { root.append(note.element("note", namespace: PresenceNamespace.pidf)) }
        for person in persons { root.append(person.element) }
        for device in devices { root.append(device.element) }
        for element in extensions { root.append(element) }
        return root
    }

    /// The document as a body, with an XML declaration.
    public func serialized() -> [UInt8] {
        Array(("<?xml version='1.0' encoding='UTF-8'?>" + XMLSerializer.string(element)).utf8)
    }

    /// The embedded XMPP `<show/>` of the first tuple that has one (RFC 8048 §6.2).
    public var embeddedShow: String? { tuples.lazy.compactMap(\.embeddedShow).first }
}

/// `open` or `closed` (RFC 3863 §4.1.4).
public enum PIDFBasic: String, Hashable, Sendable {
    case open
    case closed
}

/// A `<tuple>`: one service (RFC 3863 §4.1.2), in RFC 4479 terms.
public struct PIDFTuple: Hashable, Sendable {
    public var id: String
    public var basic: PIDFBasic?
    /// Other children of `<status>` (RFC 3863 §4.1.3 extensions, RFC 8048's embedded show).
    public var statusExtensions: [XMLElement]
    public var contact: String?
    /// Kept as written (`0.8`), range 0...1.
    public var contactPriority: String?
    public var notes: [LanguageText]
    public var timestamp: String?
    /// RFC 4479 `<dm:deviceID>` linking the service to a device.
    public var deviceID: String?
    public var extensions: [XMLElement]

    public init(
        id: String, basic: PIDFBasic?, statusExtensions: [XMLElement] = [], contact: String? = nil,
        contactPriority: String? = nil, notes: [LanguageText] = [], timestamp: String? = nil, deviceID: String? = nil,
        extensions: [XMLElement] = []
    ) {
        self.id = id
        self.basic = basic
        self.statusExtensions = statusExtensions
        self.contact = contact
        self.contactPriority = contactPriority
        self.notes = notes
        self.timestamp = timestamp
        self.deviceID = deviceID
        self.extensions = extensions
    }

    init(element: XMLElement, id: String) {
        self.init(id: id, basic: nil)
        for child in element.elements {
            switch (child.namespace, child.name) {
            case (PresenceNamespace.pidf, "status"):
                for inner in child.elements {
                    if inner.namespace == PresenceNamespace.pidf, inner.name == "basic" {
                        basic = PIDFBasic(rawValue: inner.text.trimmingXMLWhitespace())
                    } else {
                        statusExtensions.append(inner)
                    }
                }
            case (PresenceNamespace.pidf, "contact"):
                contact = child.text.trimmingXMLWhitespace()
                contactPriority = child.attribute("priority")
            case (PresenceNamespace.pidf, "note"):
                notes.append(.from(child))
            case (PresenceNamespace.pidf, "timestamp"):
                timestamp = child.trimmedText
            case (PresenceNamespace.dataModel, "deviceID"):
                deviceID = child.trimmedText
            default:
                extensions.append(child)
            }
        }
    }

    /// RFC 8048 §6.2: `<show xmlns='jabber:client'>` inside `<status>`.
    public var embeddedShow: String? {
        get {
            statusExtensions.first { $0.name == "show" && $0.namespace == PresenceNamespace.jabberClient }?.trimmedText
        }
        set {
            statusExtensions.removeAll { $0.name == "show" && $0.namespace == PresenceNamespace.jabberClient }
            if let newValue {
                statusExtensions.append(XMLElement("show", namespace: PresenceNamespace.jabberClient, text: newValue))
            }
        }
    }

    public var element: XMLElement {
        var tuple = XMLElement("tuple", namespace: PresenceNamespace.pidf, attributes: ["id": id])
        var status = XMLElement("status", namespace: PresenceNamespace.pidf)
        if let basic { status.append(XMLElement("basic", namespace: PresenceNamespace.pidf, text: basic.rawValue)) }
        for element in statusExtensions { status.append(element) }
        tuple.append(status)
        for element in extensions { tuple.append(element) }
        if let deviceID { tuple.append(XMLElement("deviceID", namespace: PresenceNamespace.dataModel, text: deviceID)) }
        if let contact {
            var element = XMLElement("contact", namespace: PresenceNamespace.pidf, text: contact)
            if let contactPriority { element.setAttribute("priority", to: contactPriority) }
            tuple.append(element)
        }
        for note in notes { tuple.append(note.element("note", namespace: PresenceNamespace.pidf)) }
        if let timestamp { tuple.append(XMLElement("timestamp", namespace: PresenceNamespace.pidf, text: timestamp)) }
        return tuple
    }
}

/// An RPID activity (RFC 4480 §3.2). The set is open; `<other>` carries free text.
public struct RPIDActivity: Hashable, Sendable, CustomStringConvertible {
    /// The element's local name (`away`, `on-the-phone`, `other`, ...).
    public var name: String
    /// The text of `<other>`.
    public var text: String?

    public init(_ name: String, text: String? = nil) {
        self.name = name
        self.text = text
    }

    public var description: String { name }

    public static let appointment = RPIDActivity("appointment")
    public static let away = RPIDActivity("away")
    public static let breakfast = RPIDActivity("breakfast")
    public static let busy = RPIDActivity("busy")
    public static let dinner = RPIDActivity("dinner")
    public static let holiday = RPIDActivity("holiday")
    public static let inTransit = RPIDActivity("in-transit")
    public static let lookingForWork = RPIDActivity("looking-for-work")
    public static let lunch = RPIDActivity("lunch")
    public static let meal = RPIDActivity("meal")
    public static let meeting = RPIDActivity("meeting")
    public static let onThePhone = RPIDActivity("on-the-phone")
    public static let performance = RPIDActivity("performance")
    public static let permanentAbsence = RPIDActivity("permanent-absence")
    public static let playing = RPIDActivity("playing")
    public static let presentation = RPIDActivity("presentation")
    public static let shopping = RPIDActivity("shopping")
    public static let sleeping = RPIDActivity("sleeping")
    public static let spectator = RPIDActivity("spectator")
    public static let steering = RPIDActivity("steering")
    public static let travel = RPIDActivity("travel")
    public static let tv = RPIDActivity("tv")
    public static let unknown = RPIDActivity("unknown")
    public static let vacation = RPIDActivity("vacation")
    public static let working = RPIDActivity("working")
    public static let worship = RPIDActivity("worship")
}

/// `<dm:person>` (RFC 4479 §3.1) with RPID activities and mood.
public struct PIDFPerson: Hashable, Sendable {
    public var id: String?
    public var activities: [RPIDActivity]
    /// Notes inside `<rpid:activities>` (RFC 4480 §3.2 allows them there).
    public var activityNotes: [LanguageText]
    public var notes: [LanguageText]
    public var timestamp: String?
    public var extensions: [XMLElement]

    public init(
        id: String?, activities: [RPIDActivity] = [], activityNotes: [LanguageText] = [],
        notes: [LanguageText] = [], timestamp: String? = nil, extensions: [XMLElement] = []
    ) {
        self.id = id
        self.activities = activities
        self.activityNotes = activityNotes
        self.notes = notes
        self.timestamp = timestamp
        self.extensions = extensions
    }

    init(element: XMLElement) {
        self.init(id: element.attribute("id"))
        for child in element.elements {
            switch (child.namespace, child.name) {
            case (PresenceNamespace.rpid, "activities"):
                for activity in child.elements {
                    if activity.name == "note" {
                        activityNotes.append(.from(activity))
                    } else {
                        activities.append(RPIDActivity(activity.name, text: activity.name == "other" ? activity.trimmedText : nil))
                    }
                }
            case (PresenceNamespace.dataModel, "note"):
                notes.append(.from(child))
            case (PresenceNamespace.dataModel, "timestamp"):
                timestamp = child.trimmedText
            default:
                extensions.append(child)
            }
        }
    }

    /// RPID mood values (RFC 4480 §3.5): local names of the `<rpid:mood>` children. The element
    /// itself stays in `extensions`, so it is written back unchanged.
    public var mood: [String] {
        extensions.first { $0.name == "mood" && $0.namespace == PresenceNamespace.rpid }?
            .elements.filter { $0.name != "note" }.map(\.name) ?? []
    }

    public var element: XMLElement {
        var person = XMLElement("person", namespace: PresenceNamespace.dataModel)
        if let id { person.setAttribute("id", to: id) }
        if !activities.isEmpty || !activityNotes.isEmpty {
            var list = XMLElement("activities", namespace: PresenceNamespace.rpid)
            for note in activityNotes { list.append(note.element("note", namespace: PresenceNamespace.rpid)) }
            for activity in activities {
                if let text = activity.text {
                    list.append(XMLElement(activity.name, namespace: PresenceNamespace.rpid, text: text))
                } else {
                    list.append(XMLElement(activity.name, namespace: PresenceNamespace.rpid))
                }
            }
            person.append(list)
        }
        for element in extensions { person.append(element) }
        for note in notes { person.append(note.element("note", namespace: PresenceNamespace.dataModel)) }
        if let timestamp { person.append(XMLElement("timestamp", namespace: PresenceNamespace.dataModel, text: timestamp)) }
        return person
    }
}

/// `<dm:device>` (RFC 4479 §3.3).
public struct PIDFDevice: Hashable, Sendable {
    public var id: String?
    public var deviceID: String?
    public var notes: [LanguageText]
    public var timestamp: String?
    public var extensions: [XMLElement]

    public init(id: String?, deviceID: String? = nil, notes: [LanguageText] = [], timestamp: String? = nil, extensions: [XMLElement] = []) {
        self.id = id
        self.deviceID = deviceID
        self.notes = notes
        self.timestamp = timestamp
        self.extensions = extensions
    }

    init(element: XMLElement) {
        self.init(id: element.attribute("id"))
        for child in element.elements {
            switch (child.namespace, child.name) {
            case (PresenceNamespace.dataModel, "deviceID"): deviceID = child.trimmedText
            case (PresenceNamespace.dataModel, "note"): notes.append(.from(child))
            case (PresenceNamespace.dataModel, "timestamp"): timestamp = child.trimmedText
            default: extensions.append(child)
            }
        }
    }

    public var element: XMLElement {
        var device = XMLElement("device", namespace: PresenceNamespace.dataModel)
        if let id { device.setAttribute("id", to: id) }
        for element in extensions { device.append(element) }
        if let deviceID { device.append(XMLElement("deviceID", namespace: PresenceNamespace.dataModel, text: deviceID)) }
        for note in notes { device.append(note.element("note", namespace: PresenceNamespace.dataModel)) }
        if let timestamp { device.append(XMLElement("timestamp", namespace: PresenceNamespace.dataModel, text: timestamp)) }
        return device
    }
}
