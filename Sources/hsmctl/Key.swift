import ArgumentParser
import Foundation

struct Key: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage and use keys: the keys API of Azure Managed HSM, like `az keyvault key`.",
        discussion: """
            The key's name comes first; versions default to the latest. Binary values go to and from \
            files or pipes as raw bytes; on the wire they are base64url.

            Examples:
              hsmctl key create payments --kty EC-HSM --curve P-256 --tags team=billing
              hsmctl key list
              hsmctl key sign payments --alg ES256 --file bill.pdf --out-file bill.sig
              hsmctl key download payments --encoding PEM --file payments.pem
            """,
        subcommands: [
            Create.self, Show.self, List.self, ListVersions.self, SetAttributes.self,
            Delete.self, ListDeleted.self, ShowDeleted.self, Recover.self, Purge.self,
            Backup.self, Restore.self, Rotate.self, RotationPolicy.self,
            Sign.self, Verify.self, Encrypt.self, Decrypt.self, Wrap.self, Unwrap.self, Download.self,
            PKCS11.self, Unmanaged.self, Adopt.self,
        ])

    static func path(_ name: String, version: String? = nil) -> String {
        "/keys/\(name)" + (version.map { "/\($0)" } ?? "")
    }
}

/// The key a command acts on: a positional name, completed from the daemon's keys.
struct KeyName: ParsableArguments {
    @Argument(help: "The key's name (letters, digits and -).", completion: .custom(KeyNameCompletion.candidates))
    var name: String

    func validate() throws {
        guard (1...127).contains(name.count), name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw ValidationError("a key name is 1 to 127 letters, digits and hyphens: '\(name)' is not")
        }
    }
}

/// A key version; the latest when not given.
struct KeyVersion: ParsableArguments {
    @Option(help: ArgumentHelp("A version of the key (32 hex digits); the latest by default.", valueName: "VERSION"))
    var version: String?

    func validate() throws {
        if let version, version.count != 32 || Bytes.hex(version) == nil {
            throw ValidationError("--version is 32 hex digits: '\(version)' is not")
        }
    }
}

/// Key names for shell completion, read from the daemon that the command line (or the environment) names.
enum KeyNameCompletion {
    @Sendable static func candidates(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        var socket = ProcessInfo.processInfo.environment["HSMD_SOCKET"] ?? ConnectionOptions.defaultSocket
        for (position, word) in words.enumerated() {
            if word == "--socket", position + 1 < words.count {
                socket = words[position + 1]
            } else if word.hasPrefix("--socket=") {
                socket = String(word.dropFirst("--socket=".count))
            }
        }
        guard let connection = try? ConnectionOptions.parse(["--socket", socket]),
              let keys = try? connection.requestAllPages("/keys")["value"] as? [[String: Any]] else { return [] }
        let names = keys.compactMap { $0["kid"] as? String }.map { KeyID($0).name }
        return names.filter { $0.hasPrefix(prefix) }
    }
}

// MARK: The API's key shapes, as the tables show them

/// A kid, `https://host/keys/NAME/VERSION` (versionless in lists).
struct KeyID {
    let name: String
    let version: String?

    init(_ kid: String) {
        let parts = (URLComponents(string: kid)?.path ?? kid).split(separator: "/").map(String.init)
        name = parts.count > 1 ? parts[1] : kid
        version = parts.count > 2 ? parts[2] : nil
    }
}

struct KeyAttributes: Decodable {
    var enabled: Bool
    var nbf: Int64?
    var exp: Int64?
    var created: Int64
    var updated: Int64
    var recoverableDays: Int?
    var recoveryLevel: String?
}

struct KeyBundle: Decodable {
    struct WebKey: Decodable {
        var kid: String
        var kty: String
        var keyOps: [String]?
        var n, e, crv, x, y: String?

        enum CodingKeys: String, CodingKey {
            case kid, kty, n, e, crv, x, y
            case keyOps = "key_ops"
        }

        /// What a person asks first: RSA-HSM 3072, EC-HSM P-384; oct keys show no material, so no size.
        var typeDescription: String {
            if let crv { return "\(kty) \(crv)" }
            if let n, let modulus = Bytes.base64(n) {
                return "\(kty) \(modulus.drop { $0 == 0 }.count * 8)"
            }
            return kty
        }
    }

    var key: WebKey
    var attributes: KeyAttributes
    var tags: [String: String]?
    var deletedDate: Int64?
    var scheduledPurgeDate: Int64?

    var id: KeyID { KeyID(key.kid) }

    func show() {
        var fields = [
            ("name", id.name), ("version", id.version ?? "-"), ("type", key.typeDescription),
            ("operations", (key.keyOps ?? []).joined(separator: ", ")), ("enabled", attributes.enabled ? "yes" : "no"),
            ("not before", Dates.text(attributes.nbf)), ("expires", Dates.text(attributes.exp)),
            ("created", Dates.text(attributes.created)), ("updated", Dates.text(attributes.updated)),
            ("tags", Tags.text(tags)),
        ]
        if let recoveryLevel = attributes.recoveryLevel {
            fields.append(("recovery", "\(recoveryLevel), \(attributes.recoverableDays ?? 0) days"))
        }
        if let deletedDate {
            fields.append(("deleted", Dates.text(deletedDate)))
            fields.append(("purge date", Dates.text(scheduledPurgeDate)))
        }
        fields.append(("kid", key.kid))
        printFields(fields)
    }
}

struct KeyItem: Decodable {
    var kid: String
    var attributes: KeyAttributes
    var tags: [String: String]?
    var deletedDate: Int64?
    var scheduledPurgeDate: Int64?
}

struct KeyPage: Decodable {
    var value: [KeyItem]
    var nextLink: String?
}

/// `{"kid","value","iv"?,"tag"?,"aad"?}`: what sign, encrypt, decrypt, wrap and unwrap answer.
struct OperationResult: Decodable {
    var kid: String?
    var value: String
    var iv: String?
    var tag: String?

    static func bytes(_ field: String) throws -> [UInt8] {
        guard let bytes = Bytes.base64(field) else {
            throw CommandFailure.exit("hsmd answered a value that is not base64url", code: CommandFailure.serverError)
        }
        return bytes
    }
}

enum Dates {
    /// A date as people read it; UTC, so two machines print the same.
    static func text(_ seconds: Int64?) -> String {
        guard let seconds else { return "-" }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }
}

enum Tags {
    static func text(_ tags: [String: String]?) -> String {
        guard let tags, !tags.isEmpty else { return "-" }
        return tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
    }
}
