/// The inputs the benchmarks parse: sizes as the issue specifies them.
enum Samples {
    static let sipBody = "Watson, come here. I want to see you. Carry this to XMPP unchanged."

    /// A ~500-byte SIP MESSAGE as a SIP client sends it (RFC 3428 §4 shape).
    static let sipMessage: String = {
        let headers = [
            "MESSAGE sip:bob@biloxi.example.com SIP/2.0",
            "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport",
            "Max-Forwards: 70",
            "From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774",
            "To: <sip:bob@biloxi.example.com>",
            "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
            "CSeq: 314159 MESSAGE",
            "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>",
                        "Content-Type: text/plain;charset=UTF-8",
            "Content-Length: \(sipBody.utf8.count)",
        ]
        return headers.joined(separator: "\r\n") + "\r\n\r\n" + sipBody
    }()

    /// A ~450-byte chat `<message/>` with a body, thread, chat state and receipt request.
    static let stanza = "<message from='juliet@capulet.lit/balcony' to='romeo@montague.lit' id='ktx72v49' type='chat' xml:lang='en'><body>Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike. How camest thou hither?</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2'/></message>"

    /// A PIDF NOTIFY body of the kind Stox builds: one tuple with the embedded show, a person
    /// with an RPID activity, notes.
    static let pidf = """
        <?xml version='1.0' encoding='UTF-8'?><presence xmlns='urn:ietf:params:xml:ns:pidf' xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='pres:juliet@capulet.lit'><tuple id='ID-balcony'><status><basic>open</basic><show xmlns='jabber:client'>away</show></status><contact priority='0.5'>xmpp:juliet@capulet.lit/balcony</contact><note xml:lang='en'>Wherefore art thou</note></tuple><dm:person id='p1'><rpid:activities><rpid:away/></rpid:activities><dm:note>On the balcony</dm:note></dm:person></presence>
        """
}
