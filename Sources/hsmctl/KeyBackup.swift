import ArgumentParser
import Foundation

extension Key {
    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Save every version of a key to a file, protected by the token's domain key.",
            discussion: """
                The file holds the backup blob's raw bytes; only a daemon on the same token can restore it. \
                Names, tags and public keys in it are readable: only key material is protected.

                Examples:
                  hsmctl key backup payments --file payments.backup
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @Option(help: ArgumentHelp("Where to write the backup.", valueName: "PATH"), completion: .file()) var file: String

        func run() throws {
            let json = try connection.call(.POST, Key.path(key.name) + "/backup")
            guard let blob = (json["value"] as? String).flatMap(Bytes.base64) else {
                throw CommandFailure.exit("hsmd's backup answer has no blob", code: CommandFailure.serverError)
            }
            try writeFile(file, blob)
            connection.render(json) { print("backed up \(key.name) to \(file) (\(blob.count) bytes)") }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a key, with every version, from a backup file.",
            discussion: """
                The key comes back under its original name, which must be free (not even soft-deleted).

                Examples:
                  hsmctl key restore --file payments.backup
                """)
        @OptionGroup var connection: ConnectionOptions
        @Option(help: ArgumentHelp("The backup file.", valueName: "PATH"), completion: .file()) var file: String

        func run() throws {
            let blob = try readFile(file)
            let bundle = try connection.call(.POST, "/keys/restore", body: ["value": Bytes.base64URL(blob)])
            try connection.render(bundle) { try decode(KeyBundle.self, bundle).show() }
        }
    }
}
