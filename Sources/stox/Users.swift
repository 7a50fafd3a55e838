import ArgumentParser
import Foundation
import GatewayStore
import SIPCore

/// `stox users`: the SIP users of the domains the gateway serves itself (embedded mode).
struct Users: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "Manage the SIP users of the embedded registrar.",
        discussion: """
            Users live in the gateway's SQLite database. Only the digest hashes (RFC 7616, MD5 and \
            SHA-256, with the domain as realm) are stored, never the password. A running gateway \
            sees changes at the user's next authentication.
            """,
        subcommands: [Add.self, List.self, Remove.self, Passwd.self]
    )

    struct Options: ParsableArguments {
        @Option(name: .long, help: "The SQLite database (env STOX_DATABASE).")
        var database: String = ProcessInfo.processInfo.environment["STOX_DATABASE"] ?? "var/stox.sqlite"

        func open() throws -> GatewayStore { try GatewayStore(path: database) }
    }

    /// `user@domain`, both parts non-empty, the domain lowercased (it is the realm).
    static func split(_ address: String) throws -> (user: String, domain: String) {
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
              SIPURI.parse("sip:\(address)") != nil else {
            throw ValidationError("'\(address)' is not user@domain")
        }
        return (String(parts[0]), parts[1].lowercased())
    }

    /// The password from --password-file, STOX_PASSWORD, or the first line of standard input,
    /// so it does not show in `ps` or the shell history.
    static func readPassword(file: String?) throws -> String {
        let password: String?
        if let file {
            password = try String(contentsOfFile: file, encoding: .utf8).split(whereSeparator: \.isNewline).first.map(String.init)
        } else if let value = ProcessInfo.processInfo.environment["STOX_PASSWORD"] {
            password = value
        } else {
            password = readLine(strippingNewline: true)
        }
        guard let password, !password.isEmpty else { throw ValidationError("an empty password is not allowed") }
        return password
    }

    /// The address split, and the HA1s of the password read for it.
    static func credentials(_ address: String, passwordFile: String?) throws -> (user: String, domain: String, md5: String, sha256: String) {
        let (user, domain) = try split(address)
        let password = try readPassword(file: passwordFile)
        return (user, domain, DigestAlgorithm.md5.ha1(username: user, realm: domain, password: password),
                DigestAlgorithm.sha256.ha1(username: user, realm: domain, password: password))
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user; the password is read from standard input, STOX_PASSWORD or --password-file.")
        @OptionGroup var options: Options
        @Argument(help: "user@domain") var address: String
        @Option(help: "Read the password from this file's first line.") var passwordFile: String?

        func run() throws {
            let (user, domain, md5, sha256) = try Users.credentials(address, passwordFile: passwordFile)
            try options.open().addUser(StoredUser(username: user, domain: domain, ha1MD5: md5, ha1SHA256: sha256))
            print("added \(user)@\(domain)")
        }
    }

    struct Passwd: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a user's password.")
        @OptionGroup var options: Options
        @Argument(help: "user@domain") var address: String
        @Option(help: "Read the password from this file's first line.") var passwordFile: String?

        func run() throws {
            let (user, domain, md5, sha256) = try Users.credentials(address, passwordFile: passwordFile)
            try options.open().updatePassword(username: user, domain: domain, ha1MD5: md5, ha1SHA256: sha256)
            print("password changed for \(user)@\(domain)")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user, with their registrations, watcher decisions and notices.")
        @OptionGroup var options: Options
        @Argument(help: "user@domain") var address: String

        func run() throws {
            let (user, domain) = try Users.split(address)
            try options.open().removeUser(username: user, domain: domain)
            print("removed \(user)@\(domain)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users with their registered endpoints.")
        @OptionGroup var options: Options

        func run() throws {
            let store = try options.open()
            let bindings = Dictionary(grouping: try store.bindings(), by: \.addressOfRecord)
            let users = try store.users()
            if users.isEmpty { print("no users") }
            for user in users {
                let registered = bindings[user.addressOfRecord] ?? []
                print("\(user.addressOfRecord)\t\(registered.count) endpoint(s)")
                for binding in registered {
                    let remaining = Int(binding.expiresAt.timeIntervalSinceNow.rounded())
                    print("  \(binding.contact)\tvia \(binding.transport) \(binding.source)\t\(remaining) s\t\(binding.userAgent ?? "")")
                }
            }
        }
    }
}
