"""A long-running scripted XMPP client for Stox's end-to-end tests (Debian's python3-slixmpp).

  xmpp_agent.py --jid alice@a.test --password pw --server 127.0.0.1:15222

Logs in (without TLS: c2s is not what is under test), sends initial presence, approves every
subscription request, asks for receipts (XEP-0184) on what it sends, and takes commands on
standard input, one per line:

  send JID TEXT...            a chat message (with a receipt request); prints "sent" with its id
  normal JID TEXT...          the same as a message without a type
  burst JID N PREFIX          N messages "PREFIX-1" ... "PREFIX-N", as fast as the stream takes them
  compose JID                 a chat state notification: composing (XEP-0085)
  subscribe JID               a presence subscription request
  unsubscribe JID             ends it
  presence SHOW [STATUS...]   SHOW: available, away, xa, dnd, chat, or unavailable
  quit                        unavailable, close the stream, exit

Everything it sees prints as one JSON object per line ("online", "message", "receipt",
"presence", "subscription", "sent").
"""
import argparse, asyncio, json, sys, time

import slixmpp


def out(event, **fields):
    fields.update(ev=event, t=round(time.time(), 3))
    print(json.dumps(fields), flush=True)


class Agent(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password)
        self["feature_mechanisms"].unencrypted_plain = True
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0085")
        self.register_plugin("xep_0184")
        self["xep_0184"].auto_request = True
        self["xep_0184"].auto_ack = True
        self.roster.auto_authorize = True
        self.roster.auto_subscribe = False
        self.add_event_handler("message", self.on_message)
        # slixmpp reports type='error' messages as their own event.
        self.add_event_handler("message_error", self.on_message)
        self.add_event_handler("receipt_received", self.on_receipt)
        # A body-less chat state notification comes only as this event (xep_0085).
        self.add_event_handler("chatstate", self.on_chatstate)
        # One event per presence stanza ("changed_status" would report some twice); slixmpp
        # names an available presence's event after its show.
        for kind in ("available", "unavailable", "away", "xa", "dnd", "chat"):
            self.add_event_handler("presence_" + kind, self.on_presence)
        for kind in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
            self.add_event_handler("presence_" + kind, self.on_subscription)

    def on_message(self, message):
        record = dict(frm=str(message["from"]), type=message["type"], body=message["body"], id=message["id"])
        if message["type"] == "error":
            record["error"] = message["error"]["condition"]
            record["error_type"] = message["error"]["type"]
        state = message["chat_state"]
        if state:
            record["state"] = state
        out("message", **record)

    def on_chatstate(self, message):
        if not message["body"]:
            out("message", frm=str(message["from"]), type=message["type"], body="", id=message["id"], state=message["chat_state"])

    def on_receipt(self, message):
        out("receipt", frm=str(message["from"]), id=message["receipt"])

    def on_presence(self, presence):
        out("presence", frm=str(presence["from"]), type=presence["type"], show=presence["show"], status=presence["status"])

    def on_subscription(self, presence):
        out("subscription", frm=str(presence["from"]), type=presence["type"])


async def commands(agent):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        words = line.decode().split()
        if not words:
            continue
        command, rest = words[0], words[1:]
        if command == "quit":
            return
        elif command in ("send", "normal") and len(rest) >= 2:
            message = agent.make_message(mto=rest[0], mbody=" ".join(rest[1:]), mtype="chat" if command == "send" else None)
            message["id"] = agent.new_id()
            message.send()
            out("sent", to=rest[0], id=message["id"], body=" ".join(rest[1:]))
        elif command == "burst" and len(rest) == 3:
            for index in range(1, int(rest[1]) + 1):
                message = agent.make_message(mto=rest[0], mbody="%s-%d" % (rest[2], index), mtype="chat")
                message["id"] = "%s-%d" % (rest[2], index)
                message.send()
                if index % 50 == 0:
                    await asyncio.sleep(0)
            out("sent-burst", to=rest[0], count=int(rest[1]))
        elif command == "compose" and len(rest) == 1:
            message = agent.make_message(mto=rest[0], mtype="chat")
            message["chat_state"] = "composing"
            message.send()
            out("sent", to=rest[0], state="composing")
        elif command == "subscribe" and len(rest) == 1:
            agent.send_presence(pto=rest[0], ptype="subscribe")
            out("sent", to=rest[0], type="subscribe")
        elif command == "unsubscribe" and len(rest) == 1:
            agent.send_presence(pto=rest[0], ptype="unsubscribe")
            out("sent", to=rest[0], type="unsubscribe")
        elif command == "presence" and len(rest) >= 1:
            status = " ".join(rest[1:]) or None
            if rest[0] == "unavailable":
                agent.send_presence(ptype="unavailable", pstatus=status)
            elif rest[0] == "available":
                agent.send_presence(pstatus=status)
            else:
                agent.send_presence(pshow=rest[0], pstatus=status)
            out("sent", presence=rest[0], status=status)
        else:
            out("bad-command", line=line.decode().strip())


async def run(args):
    host, port = args.server.rsplit(":", 1)
    agent = Agent(args)
    agent.connect(address=(host, int(port)), force_starttls=False, disable_starttls=True)
    try:
        await agent.wait_until("session_start", args.timeout)
    except asyncio.TimeoutError:
        out("login-failed")
        return 2
    await agent.get_roster()
    agent.send_presence()
    out("online", jid=str(agent.boundjid))
    await commands(agent)
    agent.send_presence(ptype="unavailable")
    agent.disconnect()
    await asyncio.sleep(0.2)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jid", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--server", required=True, help="host:port of the c2s listener")
    parser.add_argument("--resource", default=None)
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()
    if args.resource:
        args.jid = args.jid + "/" + args.resource
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
