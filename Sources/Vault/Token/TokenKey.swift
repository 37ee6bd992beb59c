import PKCS11

/// One key version as it lives in the token: its objects' handles and what they are. Kept in the
/// in-memory index, so a request never searches the token.
public struct TokenKey: Sendable {
    public let id: TokenKeyID
    public internal(set) var spec: KeySpec
    /// The private key of a pair, or the secret key.
    let privateHandle: ObjectHandle
    /// The public key of a pair; nil for AES.
    let publicHandle: ObjectHandle?
    public let publicKey: PublicKey?
    /// An oct key held as a generic secret for HMAC, rather than as an AES key.
    public var isHMACKey = false

    /// Modulus bytes of an RSA key.
    init(id: TokenKeyID, spec: KeySpec, privateHandle: ObjectHandle, publicHandle: ObjectHandle?, publicKey: PublicKey?,
         isHMACKey: Bool = false) {
        (self.id, self.spec, self.privateHandle, self.publicHandle, self.publicKey, self.isHMACKey) =
            (id, spec, privateHandle, publicHandle, publicKey, isHMACKey)
    }

    /// The same version on other objects (its session copies).
    func withHandles(_ privateHandle: ObjectHandle, _ publicHandle: ObjectHandle?) -> TokenKey {
        TokenKey(id: id, spec: spec, privateHandle: privateHandle, publicHandle: publicHandle, publicKey: publicKey, isHMACKey: isHMACKey)
    }

    var modulusSize: Int {
        if case .rsa(let bits) = spec { return bits / 8 }
        return 0
    }
}
