import XMLCore

/// Lync / Skype for Business presence categories: the body of a NOTIFY with
/// `application/msrtc-event-categories+xml` (root `<categories>`), and of a category PUBLISH
/// (root `<publish>` with `<publications>`). Stox reads the `state` category (availability
/// numbers, MS-PRES §3.7.5.5) and the `note` category; other categories are kept as elements.
public struct MSRTCCategories: Hashable, Sendable {
    public var uri: String
    public var categories: [MSRTCCategory]

    public init(uri: String, categories: [MSRTCCategory] = []) {
        self.uri = uri
        self.categories = categories
    }

    public static let mediaType = SIPMediaType.msrtcEventCategories

    public init(bytes: [UInt8]) throws(SIPBodyError) {
        try self.init(element: SIPBodyError.parseXML(bytes))
    }

    public init(element root: XMLElement) throws(SIPBodyError) {
        switch (root.namespace, root.name) {
        case (PresenceNamespace.msrtcCategories, "categories"):
            guard let uri = root.attribute("uri") else { throw .invalidDocument("<categories> without uri") }
            self.init(uri: uri)
            for category in root.children("category", namespace: PresenceNamespace.msrtcCategories) {
                guard let name = category.attribute("name") else { throw .invalidDocument("<category> without name") }
                categories.append(MSRTCCategory(
                    name: name, instance: category.attribute("instance"), publishTime: category.attribute("publishTime"),
                    container: nil, content: category.elements.first))
            }
        case (PresenceNamespace.msrtcRichPresence, "publish"):
            guard let publications = root.firstChild("publications", namespace: PresenceNamespace.msrtcRichPresence),
                let uri = publications.attribute("uri")
            else { throw .invalidDocument("<publish> without <publications uri=...>") }
            self.init(uri: uri)
            for publication in publications.children("publication", namespace: PresenceNamespace.msrtcRichPresence) {
                guard let name = publication.attribute("categoryName") else {
                    throw .invalidDocument("<publication> without categoryName")
                }
                categories.append(MSRTCCategory(
                    name: name, instance: publication.attribute("instance"), publishTime: nil,
                    container: publication.attribute("container"), content: publication.elements.first))
            }
        default:
            throw .invalidDocument("root is {\(root.namespace)}\(root.name), not msrtc <categories> or <publish>")
        }
    }

    /// The state that decides what watchers see: the server-computed `aggregateState` if present,
    /// else the user's manual `userState`, else the least available of the other states (a
    /// phone call outranks an idle machine).
    public var effectiveState: MSRTCState? {
        let states = categories.compactMap(\.state)
        if let aggregate = states.first(where: { $0.type == "aggregateState" }) { return aggregate }
        if let user = states.first(where: { $0.type == "userState" && $0.availability != nil }) { return user }
        return states.filter { $0.availability != nil }.max { $0.availability! < $1.availability! }
    }

    public var availability: Int? { effectiveState?.availability }
    public var activityToken: String? { effectiveState?.activityToken }

    /// The note category's text, preferring the personal note over an out-of-office one.
    public var note: String? {
        let notes = categories.compactMap(\.note)
        return (notes.first { $0.type == "personal" } ?? notes.first)?.body
    }

    /// A NOTIFY body with one aggregate state category and, if given, a personal note.
    public static func notification(uri: String, availability: Int, activityToken: String? = nil, note: String? = nil, publishTime: String? = nil) -> MSRTCCategories {
        var document = MSRTCCategories(uri: uri)
        var state = MSRTCState(type: "aggregateState", availability: availability)
        state.activityToken = activityToken
        document.categories.append(MSRTCCategory(name: "state", instance: "0", publishTime: publishTime, container: nil, content: state.element))
        if let note {
            document.categories.append(MSRTCCategory(
                name: "note", instance: "0", publishTime: publishTime, container: nil,
                content: MSRTCNote(body: note, type: "personal").element))
        }
        return document
    }

    public var element: XMLElement {
        var root = XMLElement("categories", namespace: PresenceNamespace.msrtcCategories, attributes: ["uri": uri])
        for category in categories {
            var element = XMLElement("category", namespace: PresenceNamespace.msrtcCategories, attributes: ["name": category.name])
            if let instance = category.instance { element.setAttribute("instance", to: instance) }
            if let publishTime = category.publishTime { element.setAttribute("publishTime", to: publishTime) }
            if let content = category.content { element.append(content) }
            root.append(element)
        }
        return root
    }

    public func serialized() -> [UInt8] {
        Array(("<?xml version='1.0' encoding='UTF-8'?>" + XMLSerializer.string(element)).utf8)
    }
}

public struct MSRTCCategory: Hashable, Sendable {
    public var name: String
    public var instance: String?
    public var publishTime: String?
    /// The publication container (access level) in a PUBLISH.
    public var container: String?
    /// The category payload (`<state>`, `<note>`, `<contactCard>`, ...).
    public var content: XMLElement?

    public init(name: String, instance: String?, publishTime: String?, container: String?, content: XMLElement?) {
        self.name = name
        self.instance = instance
        self.publishTime = publishTime
        self.container = container
        self.content = content
    }

    public var state: MSRTCState? {
        guard name == "state", let content, content.name == "state", content.namespace == PresenceNamespace.msrtcState else {
            return nil
        }
        return MSRTCState(element: content)
    }

    public var note: MSRTCNote? {
        guard name == "note", let content, content.namespace == PresenceNamespace.msrtcNote else { return nil }
        guard let body = content.firstChild("body", namespace: PresenceNamespace.msrtcNote) else { return nil }
        return MSRTCNote(body: body.text.trimmingXMLWhitespace(), type: body.attribute("type"))
    }
}

/// `<state xmlns="http://schemas.microsoft.com/2006/09/sip/state">`.
public struct MSRTCState: Hashable, Sendable {
    /// `xsi:type`: `aggregateState`, `userState`, `machineState`, `phoneState`, `calendarState`.
    public var type: String?
    /// The availability number (3500 Available ... 18500 Offline).
    public var availability: Int?
    /// `<activity token="...">`.
    public var activityToken: String?
    /// `<activity><custom>text</custom></activity>`.
    public var customActivity: String?
    public var manual: Bool?

    public init(type: String?, availability: Int?) {
        self.type = type
        self.availability = availability
    }

    init(element: XMLElement) {
        self.init(
            type: element.attribute("type", namespace: PresenceNamespace.xsi),
            availability: element.firstChild("availability", namespace: PresenceNamespace.msrtcState)?.trimmedText.flatMap { Int($0) })
        if let activity = element.firstChild("activity", namespace: PresenceNamespace.msrtcState) {
            activityToken = activity.attribute("token")
            customActivity = activity.firstChild("custom", namespace: PresenceNamespace.msrtcState)?.trimmedText
        }
        manual = element.attribute("manual").map { $0 == "true" }
    }

    public var element: XMLElement {
        var state = XMLElement("state", namespace: PresenceNamespace.msrtcState)
        if let manual { state.setAttribute("manual", to: manual ? "true" : "false") }
        if let type { state.setAttribute("type", namespace: PresenceNamespace.xsi, to: type) }
        if let availability {
            state.append(XMLElement("availability", namespace: PresenceNamespace.msrtcState, text: String(availability)))
        }
        if activityToken != nil || customActivity != nil {
            var activity = XMLElement("activity", namespace: PresenceNamespace.msrtcState)
            if let activityToken { activity.setAttribute("token", to: activityToken) }
            if let customActivity {
                activity.append(XMLElement("custom", namespace: PresenceNamespace.msrtcState, text: customActivity))
            }
            state.append(activity)
        }
        return state
    }
}

/// `<note xmlns="http://schemas.microsoft.com/2006/09/sip/note"><body type="personal">`.
public struct MSRTCNote: Hashable, Sendable {
    public var body: String
    /// `personal` or `OOF`.
    public var type: String?

    public init(body: String, type: String?) {
        self.body = body
        self.type = type
    }

    public var element: XMLElement {
        var body = XMLElement("body", namespace: PresenceNamespace.msrtcNote, text: self.body)
        if let type { body.setAttribute("type", to: type) }
        body.setAttribute("uri", to: "")
        return XMLElement("note", namespace: PresenceNamespace.msrtcNote, children: [.element(body)])
    }
}
