import ArgumentParser
import Foundation

/// The token under the API: where PKCS#11 tools find a key, and keys made by such tools.
extension Key {
    struct PKCS11: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pkcs11",
            abstract: "Print the PKCS#11 URIs (RFC 7512) of a key version's token objects, and what a tool needs to open the token.",
            discussion: """
                Examples:
                  hsmctl key pkcs11 payments
                  hsmctl key pkcs11 payments --version 0123…   # one version
                  SOFTHSM2_CONF=… pkcs11-tool --module … --list-objects --token-label hsmd
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @Option(help: "A version (default: the latest).") var version: String?

        func run() throws {
            let json = try connection.call(.GET, "/hsmd/keys/\(key.name)/pkcs11", query: version.map { "version=\($0)" } ?? "")
            connection.render(json) {
                for object in json["objects"] as? [[String: Any]] ?? [] {
                    print(object["uri"] as? String ?? "")
                }
                print("module        \(json["module"] as? String ?? "")")
                print("SOFTHSM2_CONF \(json["softhsm2Conf"] as? String ?? "")")
                print("slot          \(json["slot"] as? Int ?? 0)")
            }
        }
    }

    struct Adopt: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring a key already in the token (made by pkcs11-tool, softhsm2-util …) under management as a new key.",
            discussion: """
                The object is found by its CKA_ID (hex; see hsmctl key unmanaged). It takes the new key's name as its
                label and a version id as its CKA_ID; key_ops follow its PKCS#11 usage flags. A key that is not sensitive,
                or that is extractable, is refused unless --force.
                Examples:
                  hsmctl key unmanaged
                  hsmctl key adopt legacy-signer --object-id 0a0b0c
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @Option(help: "The object's CKA_ID in hex.") var objectId: String
        @Option(help: "The object's CKA_LABEL, when several objects share the id.") var label: String?
        @Flag(help: "Adopt a key even if it is not sensitive or is extractable.") var force = false

        func run() throws {
            var body: [String: Any] = ["id": objectId, "force": force]
            if let label { body["label"] = label }
            let bundle = try connection.call(.POST, "/hsmd/keys/\(key.name)/adopt", body: body)
            connection.render(bundle) {
                let kid = (bundle["key"] as? [String: Any])?["kid"] as? String ?? ""
                print("adopted as \(key.name) (\(kid))")
            }
        }
    }

    struct Unmanaged: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the token objects hsmd does not manage (left untouched until adopted).",
            discussion: "Examples:\n  hsmctl key unmanaged")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let json = try connection.call(.GET, "/hsmd/unmanaged")
            connection.render(json) {
                let rows = (json["value"] as? [[String: Any]] ?? []).map { object -> [String] in
                    let flags = [(object["sensitive"] as? Bool).map { $0 ? "sensitive" : "NOT sensitive" },
                                 (object["extractable"] as? Bool).map { $0 ? "EXTRACTABLE" : "never extractable" }]
                    return [object["kind"] as? String ?? "", object["label"] as? String ?? "", object["id"] as? String ?? "",
                            object["keyType"] as? String ?? "-", (object["key_ops"] as? [String] ?? []).joined(separator: ","),
                            flags.compactMap { $0 }.joined(separator: ", ")]
                }
                printTable(["KIND", "LABEL", "ID", "TYPE", "KEY_OPS", "PROTECTION"], rows)
            }
        }
    }
}
