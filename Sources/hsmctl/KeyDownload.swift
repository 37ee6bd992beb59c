import ArgumentParser
import Foundation

enum PublicKeyEncoding: String, ExpressibleByArgument, CaseIterable {
    case pem = "PEM", der = "DER"
}

extension Key {
    struct Download: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a key's public key as X.509 SubjectPublicKeyInfo, PEM or DER (RSA and EC keys).",
            discussion: """
                What `az keyvault key download` writes, and what `openssl pkey -pubin` and `openssl dgst -verify` read. \
                oct keys have no public key.

                Examples:
                  hsmctl key download payments --encoding PEM --file payments.pem
                  hsmctl key download payments --encoding DER --file payments.der
                  openssl dgst -sha256 -verify payments.pem -signature bill.der bill.pdf
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @OptionGroup var version: KeyVersion
        @Option(help: "PEM (text) or DER (binary).") var encoding: PublicKeyEncoding = .pem
        @Option(help: ArgumentHelp("Write the public key here instead of to standard output.", valueName: "PATH"), completion: .file())
        var file: String?

        func run() throws {
            let json = try connection.call(.GET, Key.path(key.name, version: version.version))
            let publicKey: SubjectPublicKeyInfo
            do {
                publicKey = try SubjectPublicKeyInfo(jwk: try decode(KeyBundle.self, json).key)
            } catch let unavailable as SubjectPublicKeyInfo.Unavailable {
                throw CommandFailure.exit(unavailable.reason, code: CommandFailure.invalid)
            }
            let bytes = encoding == .pem ? Array(try publicKey.pem.utf8) : try publicKey.der
            try connection.emit(bytes, json: json, file: file) { "wrote \(key.name)'s public key to \($0) (\(encoding.rawValue), \(bytes.count) bytes)" }
        }
    }
}
