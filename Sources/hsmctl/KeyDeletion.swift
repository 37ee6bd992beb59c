import ArgumentParser
import Foundation

extension Key {
    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Soft-delete a key with all its versions; it stays recoverable until its purge date.",
            discussion: """
                Examples:
                  hsmctl key delete payments
                  hsmctl key recover payments      # changed your mind
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName

        func run() throws {
            let bundle = try connection.call(.DELETE, Key.path(key.name))
            try connection.render(bundle) {
                let deleted = try decode(KeyBundle.self, bundle)
                print("deleted \(deleted.id.name); recoverable until \(Dates.text(deleted.scheduledPurgeDate)) with: hsmctl key recover \(deleted.id.name)")
            }
        }
    }

    struct ListDeleted: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List soft-deleted keys and when each will be purged.",
            discussion: """
                Examples:
                  hsmctl key list-deleted
                """)
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let list = try connection.callAllPages("/deletedkeys")
            try connection.render(list) {
                let rows = try decode(KeyPage.self, list).value.map { item in
                    [KeyID(item.kid).name, Dates.text(item.deletedDate), Dates.text(item.scheduledPurgeDate), Tags.text(item.tags)]
                }
                printTable(["NAME", "DELETED", "PURGE DATE", "TAGS"], rows)
            }
        }
    }

    struct ShowDeleted: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a soft-deleted key (its latest version).",
            discussion: """
                Examples:
                  hsmctl key show-deleted payments
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName

        func run() throws {
            let bundle = try connection.call(.GET, "/deletedkeys/\(key.name)")
            try connection.render(bundle) { try decode(KeyBundle.self, bundle).show() }
        }
    }

    struct Recover: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring a soft-deleted key back, with every version.",
            discussion: """
                Examples:
                  hsmctl key recover payments
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName

        func run() throws {
            let bundle = try connection.call(.POST, "/deletedkeys/\(key.name)/recover")
            try connection.render(bundle) { try decode(KeyBundle.self, bundle).show() }
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy a soft-deleted key in the token, for good.",
            discussion: """
                The key must be deleted first. With --output json nothing is printed: the API answers 204.

                Examples:
                  hsmctl key delete old-key && hsmctl key purge old-key
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName

        func run() throws {
            _ = try connection.call(.DELETE, "/deletedkeys/\(key.name)")
            if connection.output == .table { print("purged \(key.name)") }
        }
    }
}
