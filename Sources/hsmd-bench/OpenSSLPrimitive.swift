/// An `openssl speed` measurement that bounds an operation's crypto: what the CPU does with no
/// token, no session and no daemon around it.
enum OpenSSLPrimitive: Hashable, Sendable {
    case rsaSign(bits: Int)
    case rsaVerify(bits: Int)
    /// `curve` as openssl speed names it: p256, p384, p521.
    case ecdsaSign(curve: String)
    case aesGCM(bytes: Int, decrypt: Bool)

    var description: String {
        switch self {
        case .rsaSign(let bits): "rsa\(bits) sign"
        case .rsaVerify(let bits): "rsa\(bits) verify"
        case .ecdsaSign(let curve): "ecdsa\(curve) sign"
        case .aesGCM(let bytes, let decrypt): "aes-256-gcm \(decrypt ? "decrypt" : "encrypt") \(bytes) B"
        }
    }

    /// The algorithm arguments of `openssl speed`.
    var arguments: [String] {
        switch self {
        case .rsaSign(let bits), .rsaVerify(let bits): ["rsa\(bits)"]
        case .ecdsaSign(let curve): ["ecdsa\(curve)"]
        case .aesGCM(let bytes, let decrypt): ["-evp", "aes-256-gcm", "-bytes", "\(bytes)"] + (decrypt ? ["-decrypt"] : [])
        }
    }

    /// Operations per second from the `-mr` result line's fields: `+F2` (RSA) and `+F4` (ECDSA)
    /// carry sign/s and verify/s; `+F` (ciphers) carries bytes/s.
    func opsPerSecond(fromResultFields fields: [Substring]) -> Double? {
        switch self {
        case .rsaSign:
            fields.first == "+F2" && fields.count >= 5 ? Double(fields[3]) : nil
        case .rsaVerify:
            fields.first == "+F2" && fields.count >= 5 ? Double(fields[4]) : nil
        case .ecdsaSign:
            fields.first == "+F4" && fields.count >= 5 ? Double(fields[3]) : nil
        case .aesGCM(let bytes, _):
            fields.first == "+F" && fields.count >= 4 ? Double(fields[3]).map { $0 / Double(bytes) } : nil
        }
    }
}
