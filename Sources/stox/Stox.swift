import ArgumentParser

/// The `stox` command line.
@main
struct Stox: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "stox",
        abstract: "A SIP/SIMPLE <-> XMPP federation gateway.",
        discussion: """
            `stox run` starts the gateway (configuration: Config/stox.conf); `stox check-config` \
            explains what it would do.

            Stox joins SIP-based unified communications (SIMPLE presence and IM, Lync/Skype for \
            Business style, several endpoints per user) with XMPP servers over real server-to-server \
            federation, so people on both sides see each other's presence and chat.

            `stox inspect` runs the protocol codecs on a captured message; `stox translate` shows what \
            the gateway makes of it; `stox mappings verify` checks edited mapping tables; `stox users` \
            manages the SIP users of the embedded registrar; `stox watchers` who may see their presence.
            """,
        version: version,
        subcommands: [Run.self, CheckConfig.self, Inspect.self, Mappings.self, Translate.self, Users.self, Watchers.self]
    )
}
