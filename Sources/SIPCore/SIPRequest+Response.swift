extension SIPRequest {
    /// Builds a response to this request as RFC 3261 §8.2.6.2 says: the From, Call-ID, CSeq and
    /// every Via copied in order; the To copied, with `toTag` added when it has no tag and the
    /// response is not a 100; a Timestamp echoed in a 100 (§8.2.6.1).
    public func makeResponse(_ statusCode: Int, reasonPhrase: String? = nil, toTag: String? = nil) -> SIPResponse {
        var headers = SIPHeaders()
        for field in self.headers where field.name == .via { headers.add(.via, field.value) }
        if let from = self.headers[.from] { headers.add(.from, from) }
        if var to = self.headers[.to] {
            if statusCode > 100, let toTag, var address = SIPNameAddress.parse(to), address.tag == nil {
                address.tag = toTag
                to = address.description
            }
            headers.add(.to, to)
        }
        if let callID = self.headers[.callID] { headers.add(.callID, callID) }
        if let cseq = self.headers[.cseq] { headers.add(.cseq, cseq) }
        if statusCode == 100, let timestamp = self.headers[.timestamp] { headers.add(.timestamp, timestamp) }
        return SIPResponse(statusCode: statusCode, reasonPhrase: reasonPhrase, headers: headers)
    }
}

extension SIPRequest {
    /// An out-of-dialog MESSAGE (RFC 3428 §4): `from` gets a fresh tag unless it has one;
    /// Request-URI and To are `to`; CSeq 1. Via and Max-Forwards are the transport's to add.
    public static func message(from: SIPNameAddress, to: SIPURI, callID: String, body: [UInt8],
                               contentType: SIPMediaType = .textPlain) -> SIPRequest {
        var sender = from
        if sender.tag == nil { sender.tag = SIPNameAddress.makeTag() }
        var headers = SIPHeaders()
        headers.add(.from, sender.description)
        headers.add(.to, SIPNameAddress(uri: to).description)
        headers.add(.callID, callID)
        headers.add(.cseq, SIPCSeq(1, .message).description)
        headers.add(.contentType, contentType.description)
        return SIPRequest(method: .message, uri: to, headers: headers, body: body)
    }
}

extension SIPResponse {
    /// The Reason-Phrases of RFC 3261 §21 and the extensions Stox sends.
    public static func defaultReasonPhrase(_ code: Int) -> String {
        reasonPhrases[code] ?? classReasonPhrases[code / 100] ?? "Unknown"
    }

    private static let reasonPhrases: [Int: String] = [
        100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
        200: "OK", 202: "Accepted", 204: "No Notification",
        300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
        380: "Alternative Service",
        400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
        405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
        408: "Request Timeout", 410: "Gone", 412: "Conditional Request Failed", 413: "Request Entity Too Large",
        414: "Request-URI Too Long", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
        420: "Bad Extension", 421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
        481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete",
        485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
        489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
        500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
        504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
        600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
    ]

    private static let classReasonPhrases: [Int: String] = [
        1: "Trying", 2: "OK", 3: "Redirection", 4: "Client Error", 5: "Server Error", 6: "Global Failure",
    ]
}
