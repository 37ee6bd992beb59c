import ArgumentParser
import Foundation

enum KeyTypeName: String, ExpressibleByArgument, CaseIterable {
    case rsa = "RSA-HSM", ec = "EC-HSM", oct = "oct-HSM"
}

enum CurveName: String, ExpressibleByArgument, CaseIterable {
    case p256 = "P-256", p256k = "P-256K", p384 = "P-384", p521 = "P-521"
}

enum KeyOperationName: String, ExpressibleByArgument, CaseIterable {
    case encrypt, decrypt, sign, verify, wrapKey, unwrapKey
}

/// An ISO 8601 date or date-time, as `--not-before` and `--expires` take it.
struct ISODate: ExpressibleByArgument {
    let seconds: Int64

    init?(argument: String) {
        let layouts: [ISO8601DateFormatter.Options] = [
            [.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds], [.withFullDate],
        ]
        for layout in layouts {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = layout
            if let date = formatter.date(from: argument) {
                seconds = Int64(date.timeIntervalSince1970)
                return
            }
        }
        return nil
    }
}

/// What create and set-attributes both set: operations, validity, enabled, tags.
struct KeyAttributeOptions: ParsableArguments {
    @Option(parsing: .upToNextOption, help: "The operations the key permits (encrypt decrypt sign verify wrapKey unwrapKey).")
    var ops: [KeyOperationName] = []

    @Option(parsing: .upToNextOption, help: ArgumentHelp("Tags as NAME=VALUE, space separated; --tags '' sets none.", valueName: "NAME=VALUE"))
    var tags: [String] = []

    @Option(help: ArgumentHelp("Whether the key can be used.", valueName: "true|false"))
    var enabled: Bool?

    @Option(help: ArgumentHelp("Not usable before this ISO 8601 date, e.g. 2026-01-31 or 2026-01-31T08:00:00Z.", valueName: "DATE"))
    var notBefore: ISODate?

    @Option(help: ArgumentHelp("Not usable for new signatures, encryptions and wraps from this ISO 8601 date.", valueName: "DATE"))
    var expires: ISODate?

    func validate() throws {
        for tag in tags where !tag.isEmpty && !tag.contains("=") {
            throw ValidationError("--tags takes NAME=VALUE pairs: '\(tag)' has no '='")
        }
    }

    /// The request fields these options set; those not given are left out, so an update keeps them.
    var body: [String: Any] {
        var attributes: [String: Any] = [:]
        attributes["enabled"] = enabled
        attributes["nbf"] = notBefore?.seconds
        attributes["exp"] = expires?.seconds
        var body: [String: Any] = ["attributes": attributes]
        if !ops.isEmpty { body["key_ops"] = ops.map(\.rawValue) }
        if !tags.isEmpty {
            body["tags"] = Dictionary(tags.filter { !$0.isEmpty }.map { tag in
                let parts = tag.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return (String(parts[0]), String(parts[1]))
            }, uniquingKeysWith: { _, last in last })
        }
        return body
    }
}

extension Key {
    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a key, or a new version of an existing one, inside the token.",
            discussion: """
                Defaults: RSA-HSM 2048, EC-HSM P-256, oct-HSM 256 (an AES key; give --ops sign verify for an HMAC key).

                Examples:
                  hsmctl key create payments --kty EC-HSM --curve P-256
                  hsmctl key create archive --kty RSA-HSM --size 4096 --ops sign verify \\
                      --expires 2027-12-31
                  hsmctl key create data-kek --kty oct-HSM --size 256 --ops wrapKey unwrapKey \\
                      --tags owner=vault
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @Option(help: "The key type.") var kty: KeyTypeName = .rsa
        @Option(help: "Bits: RSA 2048, 3072, 4096; AES 128, 192, 256; HMAC 256, 384, 512.") var size: Int?
        @Option(help: "The curve of an EC key.") var curve: CurveName?
        @OptionGroup var attributes: KeyAttributeOptions

        func run() throws {
            var body = attributes.body
            body["kty"] = kty.rawValue
            body["key_size"] = size
            body["crv"] = curve?.rawValue
            let bundle = try connection.call(
                .POST, Key.path(key.name) + "/create", body: body,
                progress: "creating \(kty.rawValue)\(size.map { " \($0)" } ?? "") key \(key.name)")
            try connection.render(bundle) { try decode(KeyBundle.self, bundle).show() }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a key version: type, operations, validity, tags and its public key's kid.",
            discussion: """
                Examples:
                  hsmctl key show payments
                  hsmctl key show payments --version 0123456789abcdef0123456789abcdef \\
                      --output json
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @OptionGroup var version: KeyVersion

        func run() throws {
            let bundle = try connection.call(.GET, Key.path(key.name, version: version.version))
            try connection.render(bundle) { try decode(KeyBundle.self, bundle).show() }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the keys, each as its latest version.",
            discussion: """
                Every page is fetched; --output json prints them as one page.

                Examples:
                  hsmctl key list
                  hsmctl key list --output json
                """)
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let list = try connection.callAllPages("/keys")
            try connection.render(list) {
                let rows = try decode(KeyPage.self, list).value.map { item in
                    [KeyID(item.kid).name, item.attributes.enabled ? "yes" : "no", Dates.text(item.attributes.exp),
                     Dates.text(item.attributes.created), Dates.text(item.attributes.updated), Tags.text(item.tags)]
                }
                printTable(["NAME", "ENABLED", "EXPIRES", "CREATED", "UPDATED", "TAGS"], rows)
            }
        }
    }

    struct ListVersions: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a key's versions, oldest first.",
            discussion: """
                Examples:
                  hsmctl key list-versions payments
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName

        func run() throws {
            let list = try connection.callAllPages(Key.path(key.name) + "/versions")
            try connection.render(list) {
                let rows = try decode(KeyPage.self, list).value.map { item in
                    [KeyID(item.kid).version ?? "-", item.attributes.enabled ? "yes" : "no", Dates.text(item.attributes.nbf),
                     Dates.text(item.attributes.exp), Dates.text(item.attributes.created), Tags.text(item.tags)]
                }
                printTable(["VERSION", "ENABLED", "NOT BEFORE", "EXPIRES", "CREATED", "TAGS"], rows)
            }
        }
    }

    struct SetAttributes: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a version's operations, validity, enabled state or tags.",
            discussion: """
                Options not given keep their value. --ops and --tags replace the whole list. \
                Dates cannot be removed once set, only moved.

                Examples:
                  hsmctl key set-attributes payments --enabled false
                  hsmctl key set-attributes payments --expires 2027-06-30 \\
                      --tags team=billing env=prod
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @OptionGroup var version: KeyVersion
        @OptionGroup var attributes: KeyAttributeOptions

        func run() throws {
            let bundle = try connection.call(.PATCH, Key.path(key.name, version: version.version), body: attributes.body)
            try connection.render(bundle) { try decode(KeyBundle.self, bundle).show() }
        }
    }
}
