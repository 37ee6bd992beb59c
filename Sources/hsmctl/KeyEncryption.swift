import ArgumentParser
import Foundation

enum EncryptionAlgorithmName: String, ExpressibleByArgument, CaseIterable {
    case rsa15 = "RSA1_5", rsaOAEP = "RSA-OAEP", rsaOAEP256 = "RSA-OAEP-256"
    case a128gcm = "A128GCM", a192gcm = "A192GCM", a256gcm = "A256GCM"
    case a128cbc = "A128CBC", a192cbc = "A192CBC", a256cbc = "A256CBC"
    case a128cbcpad = "A128CBCPAD", a192cbcpad = "A192CBCPAD", a256cbcpad = "A256CBCPAD"

    var isGCM: Bool { rawValue.hasSuffix("GCM") }
    var isCBC: Bool { rawValue.contains("CBC") }

    static let gcmNonceLength = 12
    static let gcmTagLength = 16
    static let cbcIVLength = 16
}

enum WrapAlgorithmName: String, ExpressibleByArgument, CaseIterable {
    case rsa15 = "RSA1_5", rsaOAEP = "RSA-OAEP", rsaOAEP256 = "RSA-OAEP-256"
    case a128kw = "A128KW", a192kw = "A192KW", a256kw = "A256KW"
    case aesKeyWrap = "CKM_AES_KEY_WRAP", aesKeyWrapPad = "CKM_AES_KEY_WRAP_PAD"
}

extension Key {
    struct Encrypt: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encrypt bytes with a key in the token.",
            discussion: """
                The input is --value (base64), --file or standard input; the output goes to --out-file or \
                standard output, as raw bytes. AES output carries what decrypt needs: GCM writes \
                nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes), CBC writes IV (16 bytes) ‖ ciphertext. \
                CBC takes --iv, or hsmctl draws a random one. Keep the version (printed with --out-file) \
                for decrypting after a rotation.

                Examples:
                  hsmctl key encrypt app-data --alg A256GCM --aad record-42 --file secret.txt \\
                      --out-file secret.enc
                  printf 'hello' | hsmctl key encrypt app-rsa --alg RSA-OAEP-256 > hello.enc
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @OptionGroup var version: KeyVersion
        @Option(help: "The encryption algorithm.") var alg: EncryptionAlgorithmName
        @Option(help: ArgumentHelp("Additional authenticated data for GCM, as text.", valueName: "TEXT")) var aad: String?
        @Option(parsing: .unconditional, help: ArgumentHelp("The CBC IV (16 bytes) as hex or base64; random when not given.", valueName: "IV"))
        var iv: String?
        @OptionGroup var input: InputBytes
        @OptionGroup var output: OutputBytes

        func validate() throws {
            if aad != nil && !alg.isGCM { throw ValidationError("--aad is for the GCM algorithms") }
            if iv != nil && !alg.isCBC { throw ValidationError("--iv is for the CBC algorithms (GCM nonces are made by hsmd)") }
        }

        func run() throws {
            var body: [String: Any] = ["alg": alg.rawValue, "value": Bytes.base64URL(try input.read())]
            if alg.isCBC { body["iv"] = Bytes.base64URL(try cbcIV()) }
            body["aad"] = aad.map { Bytes.base64URL(Array($0.utf8)) }
            let json = try connection.call(
                .POST, Key.path(key.name, version: version.version) + "/encrypt", body: body, progress: "encrypting with \(key.name)")
            let result = try decode(OperationResult.self, json)
            let sealed = try [result.iv, result.value, alg.isGCM ? result.tag : nil].compactMap { $0 }.flatMap(OperationResult.bytes)
            try connection.emit(sealed, json: json, file: output.path) { "encrypted with \(result.kid ?? key.name) into \($0) (\(sealed.count) bytes)" }
        }

        private func cbcIV() throws -> [UInt8] {
            guard let iv else {
                var generator = SystemRandomNumberGenerator()
                return (0..<EncryptionAlgorithmName.cbcIVLength).map { _ in generator.next() }
            }
            guard let bytes = Bytes.hexOrBase64(iv, expectedCount: EncryptionAlgorithmName.cbcIVLength) else {
                throw CommandFailure.exit("--iv is neither hex nor base64", code: CommandFailure.usage)
            }
            return bytes
        }
    }

    struct Decrypt: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decrypt bytes with a key in the token.",
            discussion: """
                The input is what `hsmctl key encrypt` wrote: for GCM nonce ‖ ciphertext ‖ tag, for CBC \
                IV ‖ ciphertext. For ciphertext from elsewhere give --iv (and --tag for GCM) and the input \
                is the ciphertext alone. Every failure of the ciphertext is one error, by design.

                Examples:
                  hsmctl key decrypt app-data --alg A256GCM --aad record-42 --file secret.enc
                  hsmctl key decrypt app-rsa --version 0123456789abcdef0123456789abcdef \\
                      --alg RSA-OAEP-256 < hello.enc
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @OptionGroup var version: KeyVersion
        @Option(help: "The encryption algorithm.") var alg: EncryptionAlgorithmName
        @Option(help: ArgumentHelp("The additional authenticated data given to encrypt, as text.", valueName: "TEXT")) var aad: String?
        @Option(parsing: .unconditional, help: ArgumentHelp("The IV or nonce as hex or base64, when the input does not start with it.", valueName: "IV"))
        var iv: String?
        @Option(parsing: .unconditional, help: ArgumentHelp("The GCM tag as hex or base64, when the input does not end with it.", valueName: "TAG"))
        var tag: String?
        @OptionGroup var input: InputBytes
        @OptionGroup var output: OutputBytes

        func validate() throws {
            if aad != nil && !alg.isGCM { throw ValidationError("--aad is for the GCM algorithms") }
            if iv != nil && !(alg.isGCM || alg.isCBC) { throw ValidationError("--iv is for the AES algorithms") }
            if tag != nil && (!alg.isGCM || iv == nil) { throw ValidationError("--tag is for GCM, together with --iv") }
        }

        func run() throws {
            var ciphertext = try input.read()
            var body: [String: Any] = ["alg": alg.rawValue]
            if alg.isGCM || alg.isCBC {
                let ivLength = alg.isGCM ? EncryptionAlgorithmName.gcmNonceLength : EncryptionAlgorithmName.cbcIVLength
                let tagLength = alg.isGCM ? EncryptionAlgorithmName.gcmTagLength : 0
                if let iv {
                    body["iv"] = Bytes.base64URL(try Self.bytes(iv, "--iv", ivLength))
                    if let tag { body["tag"] = Bytes.base64URL(try Self.bytes(tag, "--tag", tagLength)) }
                } else {
                    guard ciphertext.count >= ivLength + tagLength else {
                        throw CommandFailure.exit("the input is too short for \(alg.rawValue) as hsmctl writes it", code: CommandFailure.invalid)
                    }
                    body["iv"] = Bytes.base64URL(Array(ciphertext.prefix(ivLength)))
                    if alg.isGCM { body["tag"] = Bytes.base64URL(Array(ciphertext.suffix(tagLength))) }
                    ciphertext = Array(ciphertext.dropFirst(ivLength).dropLast(tagLength))
                }
            }
            body["value"] = Bytes.base64URL(ciphertext)
            body["aad"] = aad.map { Bytes.base64URL(Array($0.utf8)) }
            let json = try connection.call(
                .POST, Key.path(key.name, version: version.version) + "/decrypt", body: body, progress: "decrypting with \(key.name)")
            let result = try decode(OperationResult.self, json)
            let plaintext = try OperationResult.bytes(result.value)
            try connection.emit(plaintext, json: json, file: output.path) { "decrypted with \(result.kid ?? key.name) into \($0) (\(plaintext.count) bytes)" }
        }

        private static func bytes(_ text: String, _ option: String, _ length: Int) throws -> [UInt8] {
            guard let bytes = Bytes.hexOrBase64(text, expectedCount: length) else {
                throw CommandFailure.exit("\(option) is neither hex nor base64", code: CommandFailure.usage)
            }
            return bytes
        }
    }

    struct Wrap: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Wrap key bytes (a data key) with a key in the token.",
            discussion: """
                Input and output as for encrypt. Keep the version (printed with --out-file, or in the kid of \
                --output json) with the wrapped key: unwrapping needs that version after a rotation.

                Examples:
                  hsmctl key wrap vault-kek --alg A256KW --file data.key \\
                      --out-file data.key.wrapped
                  hsmctl key wrap vault-kek --alg A256KW --value "$(base64 -w0 data.key)" \\
                      --output json
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @OptionGroup var version: KeyVersion
        @Option(help: "The key-wrap algorithm.") var alg: WrapAlgorithmName
        @OptionGroup var input: InputBytes
        @OptionGroup var output: OutputBytes

        func run() throws {
            let json = try connection.call(
                .POST, Key.path(key.name, version: version.version) + "/wrapkey",
                body: ["alg": alg.rawValue, "value": Bytes.base64URL(try input.read())], progress: "wrapping with \(key.name)")
            let result = try decode(OperationResult.self, json)
            let wrapped = try OperationResult.bytes(result.value)
            try connection.emit(wrapped, json: json, file: output.path) { "wrapped with \(result.kid ?? key.name) into \($0) (\(wrapped.count) bytes)" }
        }
    }

    struct Unwrap: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Unwrap key bytes with a key in the token.",
            discussion: """
                Examples:
                  hsmctl key unwrap vault-kek --version 0123456789abcdef0123456789abcdef \\
                      --alg A256KW --file data.key.wrapped --out-file data.key
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var key: KeyName
        @OptionGroup var version: KeyVersion
        @Option(help: "The key-wrap algorithm.") var alg: WrapAlgorithmName
        @OptionGroup var input: InputBytes
        @OptionGroup var output: OutputBytes

        func run() throws {
            let json = try connection.call(
                .POST, Key.path(key.name, version: version.version) + "/unwrapkey",
                body: ["alg": alg.rawValue, "value": Bytes.base64URL(try input.read())], progress: "unwrapping with \(key.name)")
            let result = try decode(OperationResult.self, json)
            let keyBytes = try OperationResult.bytes(result.value)
            try connection.emit(keyBytes, json: json, file: output.path) { "unwrapped with \(result.kid ?? key.name) into \($0) (\(keyBytes.count) bytes)" }
        }
    }
}
