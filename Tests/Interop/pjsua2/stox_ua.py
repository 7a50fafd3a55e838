#!/usr/bin/env python3
"""A real SIP user agent (pjsip 2.15 through PyPI's pjsua2-python) for Stox's interop tests.

It registers with digest credentials, answers incoming MESSAGEs (pjsua sends 200 by itself),
and takes commands on standard input, one per line:

  send URI TEXT...        send a MESSAGE; its final status prints as an "im-status" line
  publish STATUS NOTE...  PUBLISH presence: STATUS is online, away, busy or offline
  buddy URI               SUBSCRIBE to URI's presence; NOTIFYs print "buddy" lines
  burst URI N PREFIX      N MESSAGEs "PREFIX-1" ... "PREFIX-N", a few milliseconds apart
  type URI                an isComposing MESSAGE (RFC 3994): active
  quit                    unregister and exit

Everything it sees prints as one JSON object per line on standard output ("ready", "reg",
"im", "im-status", "buddy"). Loopback only: it binds 127.0.0.1.
"""
import argparse
import json
import os
import select
import sys
import time

import pjsua2 as pj


def out(event, **fields):
    fields.update(ev=event, t=round(time.time(), 3))
    print(json.dumps(fields), flush=True)


class Buddy(pj.Buddy):
    def onBuddyState(self):
        info = self.getInfo()
        out("buddy", uri=info.uri, status=info.presStatus.statusText, note=info.presStatus.note,
            activity=info.presStatus.activity, sub_state=info.subStateName)


class Account(pj.Account):
    def __init__(self):
        super().__init__()
        self.registered = False

    def onRegState(self, prm):
        info = self.getInfo()
        self.registered = info.regIsActive
        out("reg", code=prm.code, reason=prm.reason, active=info.regIsActive, expires=info.regExpiresSec)

    def onInstantMessage(self, prm):
        out("im", frm=prm.fromUri, to=prm.toUri, body=prm.msgBody, content_type=prm.contentType)

    def onTypingIndication(self, prm):
        out("typing", frm=prm.fromUri, active=prm.isTyping)

    def onInstantMessageStatus(self, prm):
        out("im-status", to=prm.toUri, code=prm.code, reason=prm.reason, body=prm.msgBody)


STATUSES = {
    "online": (pj.PJSUA_BUDDY_STATUS_ONLINE, pj.PJRPID_ACTIVITY_UNKNOWN),
    "away": (pj.PJSUA_BUDDY_STATUS_ONLINE, pj.PJRPID_ACTIVITY_AWAY),
    "busy": (pj.PJSUA_BUDDY_STATUS_ONLINE, pj.PJRPID_ACTIVITY_BUSY),
    "offline": (pj.PJSUA_BUDDY_STATUS_OFFLINE, pj.PJRPID_ACTIVITY_UNKNOWN),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--domain", default="sip.test")
    parser.add_argument("--registrar", required=True, help="port (or host:port) of the registrar's SIP listener")
    parser.add_argument("--registrar-host", default="127.0.0.1", help="its host when --registrar is a port")
    parser.add_argument("--transport", choices=["udp", "tcp", "tls"], default="udp")
    parser.add_argument("--user-agent", default="stox-test-pjsua2")
    parser.add_argument("--contact-params", default="", help='e.g. ;+sip.mobility="mobile"')
    parser.add_argument("--expires", type=int, default=300)
    parser.add_argument("--loglevel", type=int, default=0)
    args = parser.parse_args()

    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0          # polled from this thread: no pjsip worker threads
    config.uaConfig.mainThreadOnly = True
    config.uaConfig.userAgent = args.user_agent
    config.logConfig.level = args.loglevel
    config.logConfig.consoleLevel = args.loglevel
    endpoint.libInit(config)
    transport_config = pj.TransportConfig()
    transport_config.port = 0              # any free port; the registrar learns it
    transport_config.boundAddress = "127.0.0.1"
    transport_config.publicAddress = "127.0.0.1"
    kind = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP, "tls": pj.PJSIP_TRANSPORT_TLS}[args.transport]
    # TLS: the test CA is throwaway, so the UA does not verify the gateway (pjsip's default).
    endpoint.transportCreate(kind, transport_config)
    endpoint.libStart()
    endpoint.audDevManager().setNullDev()

    suffix = "" if args.transport == "udp" else f";transport={args.transport}"
    account_config = pj.AccountConfig()
    account_config.idUri = f"sip:{args.user}@{args.domain}"
    account_config.regConfig.registrarUri = f"sip:{args.domain}"
    account_config.regConfig.timeoutSec = args.expires
    registrar = args.registrar if ":" in args.registrar else f"{args.registrar_host}:{args.registrar}"
    account_config.sipConfig.proxies.append(f"sip:{registrar}{suffix};lr")
    account_config.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
    # PUBLISH to the registrar (RFC 3903) instead of answering watchers peer to peer.
    account_config.presConfig.publishEnabled = True
    if args.contact_params:
        account_config.sipConfig.contactParams = args.contact_params
    account = Account()
    account.create(account_config)
    out("ready", user=args.user)

    buddies = []

    def buddy_for(uri, subscribe):
        config = pj.BuddyConfig()
        config.uri = uri
        config.subscribe = subscribe
        buddy = Buddy()
        buddy.create(account, config)
        buddies.append(buddy)  # pjsua2 objects must outlive their use
        return buddy

    running = True
    while running:
        endpoint.libHandleEvents(20)
        readable, _, _ = select.select([sys.stdin], [], [], 0)
        if not readable:
            continue
        line = sys.stdin.readline()
        if not line:
            break  # the test closed our input: leave
        words = line.split()
        if not words:
            continue
        command = words[0]
        if command == "quit":
            running = False
        elif command == "send" and len(words) >= 3:
            buddy = buddy_for(words[1], False)
            message = pj.SendInstantMessageParam()
            message.content = " ".join(words[2:])
            buddy.sendInstantMessage(message)
            out("im-sent", to=words[1])
        elif command == "type" and len(words) == 2:
            typing = pj.SendTypingIndicationParam()
            typing.isTyping = True
            buddy_for(words[1], False).sendTypingIndication(typing)
            out("typing-sent", to=words[1])
        elif command == "burst" and len(words) == 4:
            buddy = buddy_for(words[1], False)
            for index in range(1, int(words[2]) + 1):
                message = pj.SendInstantMessageParam()
                message.content = "%s-%d" % (words[3], index)
                buddy.sendInstantMessage(message)
                endpoint.libHandleEvents(5)
            out("burst-sent", to=words[1], count=int(words[2]))
        elif command == "publish" and len(words) >= 2 and words[1] in STATUSES:
            status = pj.PresenceStatus()
            status.status, status.activity = STATUSES[words[1]]
            status.note = " ".join(words[2:])
            account.setOnlineStatus(status)
            out("published", status=words[1])
        elif command == "buddy" and len(words) == 2:
            buddy_for(words[1], True)
        else:
            out("error", line=line.strip())
    account.shutdown()
    end = time.time() + 0.5
    while time.time() < end:
        endpoint.libHandleEvents(20)
    endpoint.libDestroy()
    os._exit(0)


if __name__ == "__main__":
    main()
