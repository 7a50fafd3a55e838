import ArgumentParser
import GatewayStore

/// `stox watchers`: who may see a user's presence. Subscriptions from watchers with no
/// decision wait (pending) unless the domain's policy allows them; a running gateway applies
/// decisions made here to pending subscriptions within a few seconds.
struct Watchers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watchers",
        abstract: "Allow or block who sees a SIP user's presence.",
        subcommands: [List.self, Allow.self, Block.self, Forget.self]
    )

    struct Pair: ParsableArguments {
        @Argument(help: "The user whose presence is watched (user@domain).") var presentity: String
        @Argument(help: "The watcher (user@domain, SIP or XMPP).") var watcher: String

        func validate() throws {
            for address in [presentity, watcher] { _ = try Users.split(address) }
        }

        var normalized: (String, String) { (presentity.lowercased(), watcher.lowercased()) }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List decisions, for one user or all.")
        @OptionGroup var options: Users.Options
        @Argument(help: "Only this user's watchers.") var presentity: String?

        func run() throws {
            let decisions = try options.open().decisions(presentity: presentity?.lowercased())
            if decisions.isEmpty { print("no decisions") }
            for decision in decisions { print("\(decision.presentity)\t\(decision.watcher)\t\(decision.decision.rawValue)") }
        }
    }

    static func record(_ decision: WatcherDecision?, _ pair: Pair, _ options: Users.Options) throws {
        let (presentity, watcher) = pair.normalized
        try options.open().setDecision(decision, presentity: presentity, watcher: watcher)
        print("\(presentity)\t\(watcher)\t\(decision?.rawValue ?? "forgotten")")
    }

    struct Allow: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let the watcher see the user's presence.")
        @OptionGroup var options: Users.Options
        @OptionGroup var pair: Pair
        func run() throws { try Watchers.record(.allow, pair, options) }
    }

    struct Block: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Refuse the watcher (its subscription ends with reason=rejected).")
        @OptionGroup var options: Users.Options
        @OptionGroup var pair: Pair
        func run() throws { try Watchers.record(.block, pair, options) }
    }

    struct Forget: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove the decision: the domain's policy applies again.")
        @OptionGroup var options: Users.Options
        @OptionGroup var pair: Pair
        func run() throws { try Watchers.record(nil, pair, options) }
    }
}
