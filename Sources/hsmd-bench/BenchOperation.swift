/// One operation the benchmark measures: what it does, on which key, and which `openssl speed`
/// primitive is its crypto ceiling.
struct BenchOperation: Sendable {
    enum Action: Sendable {
        /// Signs a digest of `digestLength` bytes.
        case sign(alg: String, digestLength: Int)
        case verify(alg: String, digestLength: Int)
        /// RSA decryption of a ciphertext made once beforehand.
        case rsaDecrypt(alg: String)
        case gcmEncrypt(bytes: Int)
        /// AES-GCM decryption of a ciphertext made once beforehand.
        case gcmDecrypt(bytes: Int)
        case wrap(alg: String, bytes: Int)
        case getKey
        /// Creates a new version of a key of its own per worker.
        case createKey
        case randomBytes(count: Int)
    }

    let id: String
    let title: String
    let key: BenchKey?
    let action: Action
    let ceiling: OpenSSLPrimitive?
    /// Part of `--quick`.
    let quick: Bool

    /// Every operation, in the order of the list (and of priority).
    static let all: [BenchOperation] = [
        .init(id: "rsa2048-rs256-sign", title: "RSA-2048 sign RS256", key: .rsa2048,
              action: .sign(alg: "RS256", digestLength: 32), ceiling: .rsaSign(bits: 2048), quick: true),
        .init(id: "rsa2048-ps256-sign", title: "RSA-2048 sign PS256", key: .rsa2048,
              action: .sign(alg: "PS256", digestLength: 32), ceiling: .rsaSign(bits: 2048), quick: false),
        .init(id: "rsa3072-rs256-sign", title: "RSA-3072 sign RS256", key: .rsa3072,
              action: .sign(alg: "RS256", digestLength: 32), ceiling: .rsaSign(bits: 3072), quick: false),
        .init(id: "rsa4096-rs256-sign", title: "RSA-4096 sign RS256", key: .rsa4096,
              action: .sign(alg: "RS256", digestLength: 32), ceiling: .rsaSign(bits: 4096), quick: false),
        // openssl speed 3.0 has no decryption figure: the private-key operation (sign) is the ceiling.
        .init(id: "rsa2048-oaep-decrypt", title: "RSA-2048 decrypt RSA-OAEP", key: .rsa2048,
              action: .rsaDecrypt(alg: "RSA-OAEP"), ceiling: .rsaSign(bits: 2048), quick: false),
        .init(id: "rsa2048-oaep256-decrypt", title: "RSA-2048 decrypt RSA-OAEP-256", key: .rsa2048,
              action: .rsaDecrypt(alg: "RSA-OAEP-256"), ceiling: .rsaSign(bits: 2048), quick: false),
        .init(id: "rsa2048-rs256-verify", title: "RSA-2048 verify RS256", key: .rsa2048,
              action: .verify(alg: "RS256", digestLength: 32), ceiling: .rsaVerify(bits: 2048), quick: false),
        .init(id: "p256-es256-sign", title: "EC P-256 sign ES256", key: .p256,
              action: .sign(alg: "ES256", digestLength: 32), ceiling: .ecdsaSign(curve: "p256"), quick: true),
        // openssl speed 3.0 does not offer secp256k1: no ceiling.
        .init(id: "p256k-es256k-sign", title: "EC P-256K sign ES256K", key: .p256k,
              action: .sign(alg: "ES256K", digestLength: 32), ceiling: nil, quick: false),
        .init(id: "p384-es384-sign", title: "EC P-384 sign ES384", key: .p384,
              action: .sign(alg: "ES384", digestLength: 48), ceiling: .ecdsaSign(curve: "p384"), quick: false),
        .init(id: "p521-es512-sign", title: "EC P-521 sign ES512", key: .p521,
              action: .sign(alg: "ES512", digestLength: 64), ceiling: .ecdsaSign(curve: "p521"), quick: false),
        .init(id: "aes256gcm-encrypt-1k", title: "AES-256-GCM encrypt 1 KiB", key: .aes256,
              action: .gcmEncrypt(bytes: 1024), ceiling: .aesGCM(bytes: 1024, decrypt: false), quick: true),
        .init(id: "aes256gcm-decrypt-1k", title: "AES-256-GCM decrypt 1 KiB", key: .aes256,
              action: .gcmDecrypt(bytes: 1024), ceiling: .aesGCM(bytes: 1024, decrypt: true), quick: false),
        .init(id: "aes256gcm-encrypt-64k", title: "AES-256-GCM encrypt 64 KiB", key: .aes256,
              action: .gcmEncrypt(bytes: 65536), ceiling: .aesGCM(bytes: 65536, decrypt: false), quick: false),
        .init(id: "aes256gcm-decrypt-64k", title: "AES-256-GCM decrypt 64 KiB", key: .aes256,
              action: .gcmDecrypt(bytes: 65536), ceiling: .aesGCM(bytes: 65536, decrypt: true), quick: false),
        .init(id: "a256kw-wrap-32", title: "A256KW wrap 32 bytes", key: .aes256,
              action: .wrap(alg: "A256KW", bytes: 32), ceiling: nil, quick: false),
        .init(id: "get-key", title: "get key (P-256)", key: .p256, action: .getKey, ceiling: nil, quick: true),
        .init(id: "create-ec-key", title: "create EC P-256 key", key: nil, action: .createKey, ceiling: nil, quick: false),
        .init(id: "random-32", title: "random bytes (32)", key: nil, action: .randomBytes(count: 32), ceiling: nil, quick: true),
    ]
}
