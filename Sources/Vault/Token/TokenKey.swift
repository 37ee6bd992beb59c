import PKCS11

/// One key version as it lives in the token: its objects' handles and what they are. Kept in the
/// in-memory index, so a request never searches the token.
public struct TokenKey: Sendable {
    public let id: TokenKeyID
    public let spec: KeySpec
    /// The private key of a pair, or the secret key.
    let privateHandle: ObjectHandle
    /// The public key of a pair; nil for AES.
    let publicHandle: ObjectHandle?
    public let publicKey: PublicKey?

    /// Modulus bytes of an RSA key.
    var modulusSize: Int {
        if case .rsa(let bits) = spec { return bits / 8 }
        return 0
    }
}
