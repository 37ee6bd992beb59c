import ArgumentParser
import Crypto
import Foundation

enum SignatureAlgorithmName: String, ExpressibleByArgument, CaseIterable {
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case ps256 = "PS256", ps384 = "PS384", ps512 = "PS512"
    case es256 = "ES256", es256k = "ES256K", es384 = "ES384", es512 = "ES512"
    case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"

    /// HMAC takes the message itself; every other algorithm a digest the caller computes.
    var signsMessage: Bool { [.hs256, .hs384, .hs512].contains(self) }

    var isECDSA: Bool { [.es256, .es256k, .es384, .es512].contains(self) }

    var digestLength: Int {
        switch self {
        case .rs256, .ps256, .es256, .es256k, .hs256: 32
        case .rs384, .ps384, .es384, .hs384: 48
        case .rs512, .ps512, .es512, .hs512: 64
        }
    }

    /// The byte length of r and of s in a raw ECDSA signature.
    var coordinateLength: Int {
        switch self {
        case .es384: 48
        case .es512: 66
        default: 32
        }
    }

    /// The file's digest under the algorithm's hash, read in chunks so large files need little memory.
    func digest(ofFile path: String) throws -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CommandFailure.exit("cannot read \(path)", code: CommandFailure.usage)
        }
        defer { try? handle.close() }
        func hash<Hash: HashFunction>(_: Hash.Type) throws -> [UInt8] {
            var hasher = Hash()
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
            return Array(hasher.finalize())
        }
        switch digestLength {
        case 32: return try hash(SHA256.self)
        case 48: return try hash(SHA384.self)
        default: return try hash(SHA512.self)
        }
    }
}

enum SignatureFormat: String, ExpressibleByArgument, CaseIterable {
    /// The API's form: r‖s for ECDSA, as JWS uses it.
    case raw
    /// ECDSA as X.509, OpenSSL and most TLS code expect it: a DER SEQUENCE of r and s.
    case der
}

/// What is signed or verified: a digest given on the command line, or a file hashed here.
struct SignedInput: ParsableArguments {
    @OptionGroup var version: KeyVersion

    @Option(help: "The signature algorithm.") var alg: SignatureAlgorithmName

    @Option(parsing: .unconditional, help: ArgumentHelp("The digest, as hex or base64 (for HS*, the message itself).", valueName: "DIGEST"))
    var digest: String?

    @Option(help: ArgumentHelp("The signed file: hsmctl hashes it with the algorithm's hash (HS*: sends it as is).", valueName: "PATH"),
            completion: .file())
    var file: String?

    @Option(help: "raw (r‖s, as the API and JWS use) or der (as OpenSSL uses); ECDSA only.")
    var signatureFormat: SignatureFormat = .raw

    func validate() throws {
        guard (digest == nil) != (file == nil) else { throw ValidationError("give the digest with --digest or a file to hash with --file") }
        if signatureFormat == .der && !alg.isECDSA { throw ValidationError("--signature-format der is for ECDSA (ES*) signatures") }
    }

    /// The `value` (sign) or `digest` (verify) the API takes.
    func bytes() throws -> [UInt8] {
        if let file { return alg.signsMessage ? try readFile(file) : try alg.digest(ofFile: file) }
        guard let bytes = Bytes.hexOrBase64(digest ?? "", expectedCount: alg.signsMessage ? nil : alg.digestLength) else {
            throw CommandFailure.exit("--digest is neither hex nor base64", code: CommandFailure.usage)
        }
        return bytes
    }
}

extension Key {
    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign a digest, or a file hashed with the algorithm's hash, with a key in the token.",
            discussion: """
                RS*/PS* and ES* sign a digest (SHA-256/384/512 by the algorithm's number; ES256K SHA-256); HS* \
                sign the message itself. The signature goes to --out-file as raw bytes, or is printed as base64url.

                Examples:
                  hsmctl key sign payments --alg ES256 --file bill.pdf --out-file bill.sig
                  hsmctl key sign payments --alg ES256 --file bill.pdf --signature-format der \\
                      --out-file bill.der
                  hsmctl key sign archive --alg PS256 \\
                      --digest "$(sha256sum report.txt | cut -d' ' -f1)"
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @OptionGroup var input: SignedInput
        @OptionGroup var output: OutputBytes

        func run() throws {
            let json = try connection.call(
                .POST, Key.path(key.name, version: input.version.version) + "/sign",
                body: ["alg": input.alg.rawValue, "value": Bytes.base64URL(try input.bytes())], progress: "signing with \(key.name)")
            let result = try decode(OperationResult.self, json)
            let raw = try OperationResult.bytes(result.value)
            let signature = input.signatureFormat == .der ? try ECDSASignature.der(fromRaw: raw) : raw
            if let path = output.path { try writeFile(path, signature) }
            connection.render(json) {
                if let path = output.path {
                    print("signed with \(result.kid ?? key.name): \(signature.count)-byte signature written to \(path)")
                } else {
                    printFields([("kid", result.kid ?? "-"), ("algorithm", input.alg.rawValue), ("signature", Bytes.base64URL(signature))])
                }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a signature with a key in the token.",
            discussion: """
                Exit code 0 when the signature matches, 6 when it does not.

                Examples:
                  hsmctl key verify payments --alg ES256 --file bill.pdf \\
                      --signature-file bill.sig
                  hsmctl key verify payments --alg ES256 --digest "$DIGEST_HEX" \\
                      --signature "$SIGNATURE_BASE64URL"
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @OptionGroup var input: SignedInput
        // Unconditional, like every option taking base64url: one signature in 64 starts with "-".
        @Option(parsing: .unconditional, help: ArgumentHelp("The signature as base64url (as `sign` prints it) or base64.", valueName: "SIGNATURE"))
        var signature: String?
        @Option(help: ArgumentHelp("Read the signature from this file (raw bytes).", valueName: "PATH"), completion: .file())
        var signatureFile: String?

        func validate() throws {
            guard (signature == nil) != (signatureFile == nil) else { throw ValidationError("give --signature or --signature-file") }
        }

        func run() throws {
            let json = try connection.call(
                .POST, Key.path(key.name, version: input.version.version) + "/verify",
                body: ["alg": input.alg.rawValue, "digest": Bytes.base64URL(try input.bytes()), "value": Bytes.base64URL(try signatureBytes())],
                progress: "verifying with \(key.name)")
            let valid = json["value"] as? Bool ?? false
            connection.render(json) { print(valid ? "valid: the signature matches" : "INVALID: the signature does not match") }
            if !valid { throw ExitCode(CommandFailure.signatureInvalid) }
        }

        private func signatureBytes() throws -> [UInt8] {
            let given: [UInt8]
            if let signatureFile {
                given = try readFile(signatureFile)
            } else if let bytes = Bytes.base64(signature ?? "") {
                given = bytes
            } else {
                throw CommandFailure.exit("--signature is not base64", code: CommandFailure.usage)
            }
            guard input.signatureFormat == .der else { return given }
            do {
                return try ECDSASignature.raw(fromDER: given, coordinateLength: input.alg.coordinateLength)
            } catch {
                throw CommandFailure.exit("the signature is not a DER ECDSA signature for \(input.alg.rawValue)", code: CommandFailure.invalid)
            }
        }
    }
}
