import ArgumentParser
import Foundation

extension Key {
    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new version with new material, the same type, operations and tags.",
            discussion: """
                The new version expires after the rotation policy's expiry time, if the policy has one. \
                Older versions stay usable by their version id.

                Examples:
                  hsmctl key rotate payments
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName

        func run() throws {
            let bundle = try connection.call(.POST, Key.path(key.name) + "/rotate", progress: "rotating \(key.name)")
            try connection.render(bundle) { try decode(KeyBundle.self, bundle).show() }
        }
    }

    struct RotationPolicy: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotation-policy",
            abstract: "Show or set a key's rotation policy.",
            discussion: """
                hsmd does not rotate by itself: the policy's expiry time applies to versions made by `hsmctl key rotate`.

                Examples:
                  hsmctl key rotation-policy show payments
                  hsmctl key rotation-policy set payments --rotate-after-create P90D \\
                      --expiry-time P1Y
                """,
            subcommands: [Show.self, Set.self])

        /// `{"lifetimeActions":[{"trigger":{…},"action":{"type":"Rotate"}}],"attributes":{…}}`
        struct Policy: Decodable {
            struct LifetimeAction: Decodable {
                struct Trigger: Decodable {
                    var timeAfterCreate: String?
                    var timeBeforeExpiry: String?
                }
                struct Action: Decodable {
                    var type: String
                }
                var trigger: Trigger
                var action: Action
            }
            struct Attributes: Decodable {
                var expiryTime: String?
                var created: Int64?
                var updated: Int64?
            }
            var lifetimeActions: [LifetimeAction]
            var attributes: Attributes

            func show() {
                let actions = lifetimeActions.map { action in
                    if let after = action.trigger.timeAfterCreate { return "\(action.action.type) \(after) after creation" }
                    return "\(action.action.type) \(action.trigger.timeBeforeExpiry ?? "?") before expiry"
                }
                printFields([
                    ("lifetime actions", actions.isEmpty ? "none" : actions.joined(separator: "; ")),
                    ("expiry time", attributes.expiryTime ?? "-"),
                    ("created", Dates.text(attributes.created)), ("updated", Dates.text(attributes.updated)),
                ])
            }
        }

        struct Show: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Show a key's rotation policy.",
                discussion: """
                    Examples:
                      hsmctl key rotation-policy show payments
                    """)
            @OptionGroup var connection: ConnectionOptions
            @OptionGroup var key: KeyName

            func run() throws {
                let policy = try connection.call(.GET, Key.path(key.name) + "/rotationpolicy")
                try connection.render(policy) { try decode(Policy.self, policy).show() }
            }
        }

        struct Set: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Replace a key's rotation policy.",
                discussion: """
                    Durations are ISO 8601 (P90D, P1Y, PT672H), each at least 28 days. --file takes the policy as \
                    the API's JSON, like `az keyvault key rotation-policy update --value`.

                    Examples:
                      hsmctl key rotation-policy set payments --rotate-after-create P90D \\
                          --expiry-time P1Y
                      hsmctl key rotation-policy set payments --rotate-before-expiry P30D \\
                          --expiry-time P180D
                      hsmctl key rotation-policy set payments --file policy.json
                      hsmctl key rotation-policy set payments --clear
                    """)
            @OptionGroup var connection: ConnectionOptions
            @OptionGroup var key: KeyName
            @Option(help: ArgumentHelp("Rotate this long after a version is created.", valueName: "DURATION"))
            var rotateAfterCreate: String?
            @Option(help: ArgumentHelp("Rotate this long before a version expires (needs --expiry-time).", valueName: "DURATION"))
            var rotateBeforeExpiry: String?
            @Option(help: ArgumentHelp("Versions made by rotation expire after this long.", valueName: "DURATION"))
            var expiryTime: String?
            @Option(help: ArgumentHelp("The whole policy as JSON.", valueName: "PATH"), completion: .file())
            var file: String?
            @Flag(help: "Remove every rule of the policy.") var clear = false

            func validate() throws {
                let rules = [rotateAfterCreate, rotateBeforeExpiry, expiryTime].compactMap { $0 }.count
                guard [rules > 0, file != nil, clear].filter({ $0 }).count == 1 else {
                    throw ValidationError("give rotation options, --file or --clear (one of them)")
                }
                if rotateAfterCreate != nil && rotateBeforeExpiry != nil {
                    throw ValidationError("a policy has one rotation trigger: --rotate-after-create or --rotate-before-expiry")
                }
            }

            func run() throws {
                let policy = try connection.call(.PUT, Key.path(key.name) + "/rotationpolicy", body: try body())
                try connection.render(policy) { try decode(Policy.self, policy).show() }
            }

            private func body() throws -> [String: Any] {
                if let file {
                    guard let json = try? JSONSerialization.jsonObject(with: Data(readFile(file))) as? [String: Any] else {
                        throw CommandFailure.exit("\(file) does not hold a JSON object", code: CommandFailure.usage)
                    }
                    return json
                }
                var trigger: [String: Any] = [:]
                trigger["timeAfterCreate"] = rotateAfterCreate
                trigger["timeBeforeExpiry"] = rotateBeforeExpiry
                var attributes: [String: Any] = [:]
                attributes["expiryTime"] = expiryTime
                let actions: [[String: Any]] = trigger.isEmpty ? [] : [["trigger": trigger, "action": ["type": "Rotate"]]]
                return ["lifetimeActions": actions, "attributes": attributes]
            }
        }
    }
}
