"""A scripted XMPP client for Stox's interop tests (Debian's python3-slixmpp 1.8).

  xmpp_client.py --jid alice@a.test --password pw --server 127.0.0.1:15222 \
      [--send JID TEXT] [--echo] [--expect-from JID --expect-body TEXT] [--timeout S]
      [--disco JID CATEGORY/TYPE] [--ping JID]

Prints one JSON line per event. Exits 0 when the expected message arrived, 1 on timeout,
2 when login failed. With --echo it answers every chat message with "echo: <body>".
"""
import argparse, asyncio, json, sys, time

import slixmpp


def out(event, **fields):
    fields.update(ev=event, t=round(time.time(), 3))
    print(json.dumps(fields), flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password)
        self.args = args
        self.matched = asyncio.Event()
        self["feature_mechanisms"].unencrypted_plain = True
        self.add_event_handler("message", self.on_message)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")

    def on_message(self, message):
        body, sender = message["body"], str(message["from"])
        record = dict(frm=sender, type=message["type"], body=body)
        if message["type"] == "error":
            record["error"] = message["error"]["condition"]
        out("message", **record)
        if self.args.echo and message["type"] in ("chat", "normal") and body:
            message.reply("echo: " + body).send()
        wanted_from = self.args.expect_from
        if self.args.expect_body and self.args.expect_body in (body or ""):
            if not wanted_from or message["from"].bare == slixmpp.JID(wanted_from).bare:
                self.matched.set()


async def run(args):
    host, port = args.server.rsplit(":", 1)
    client = Client(args)
    client.connect(address=(host, int(port)), force_starttls=False, disable_starttls=True)
    try:
        await client.wait_until("session_start", args.timeout)
    except asyncio.TimeoutError:
        out("login-failed")
        return 2
    out("online", jid=str(client.boundjid))
    client.send_presence()
    for jid, text in args.send or []:
        client.send_message(mto=jid, mbody=text, mtype="chat")
        out("sent", to=jid, body=text)
    code = 0
    if args.disco:
        jid, wanted = args.disco
        try:
            info = await client["xep_0030"].get_info(jid=jid, timeout=args.timeout)
            identities = ["%s/%s" % (i[0], i[1]) for i in info["disco_info"]["identities"]]
            out("disco", jid=jid, identities=identities, features=sorted(info["disco_info"]["features"]))
            if wanted not in identities:
                code = 1
        except Exception as error:
            out("disco-failed", jid=jid, error=str(error))
            code = 1
    if args.ping:
        try:
            rtt = await client["xep_0199"].ping(args.ping, timeout=args.timeout)
            out("pong", jid=args.ping, rtt=rtt)
        except Exception as error:
            out("ping-failed", jid=args.ping, error=str(error))
            code = 1
    if args.expect_body:
        try:
            await asyncio.wait_for(client.matched.wait(), args.timeout)
            out("matched")
        except asyncio.TimeoutError:
            out("timeout")
            code = 1
    elif not args.disco and not args.ping:
        await asyncio.sleep(args.stay)
    client.disconnect()
    await asyncio.sleep(0.3)
    return code


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jid", required=True)
    parser.add_argument("--password", default="pw")
    parser.add_argument("--server", required=True)
    parser.add_argument("--send", nargs=2, action="append", metavar=("JID", "TEXT"))
    parser.add_argument("--echo", action="store_true")
    parser.add_argument("--expect-from")
    parser.add_argument("--expect-body")
    parser.add_argument("--disco", nargs=2, metavar=("JID", "CATEGORY/TYPE"))
    parser.add_argument("--ping")
    parser.add_argument("--stay", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    loop = asyncio.get_event_loop()
    sys.exit(loop.run_until_complete(run(args)))


if __name__ == "__main__":
    main()
