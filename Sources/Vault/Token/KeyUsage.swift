/// The operations a key version may perform: Azure's `key_ops`, and the PKCS#11 usage flags the
/// token objects are created with.
public struct KeyUsage: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let encrypt = KeyUsage(rawValue: 1 << 0)
    public static let decrypt = KeyUsage(rawValue: 1 << 1)
    public static let sign = KeyUsage(rawValue: 1 << 2)
    public static let verify = KeyUsage(rawValue: 1 << 3)
    public static let wrapKey = KeyUsage(rawValue: 1 << 4)
    public static let unwrapKey = KeyUsage(rawValue: 1 << 5)

    /// What Managed HSM grants when a create request names no `key_ops`.
    public static func defaults(for spec: KeySpec) -> KeyUsage {
        switch spec {
        case .rsa: [.encrypt, .decrypt, .sign, .verify, .wrapKey, .unwrapKey]
        case .ec: [.sign, .verify]
        case .oct: [.encrypt, .decrypt, .wrapKey, .unwrapKey]
        }
    }

    /// An oct key is either an HMAC key or an AES key: the token keeps them as different key types.
    public static let hmacOperations: KeyUsage = [.sign, .verify]
    public static let aesOperations: KeyUsage = [.encrypt, .decrypt, .wrapKey, .unwrapKey]

    /// Whether an oct key with this usage is held as an HMAC (generic secret) key.
    var makesHMACKey: Bool { !isDisjoint(with: Self.hmacOperations) }

    /// Azure's names, in Azure's spelling.
    public static let azureNames: [(String, KeyUsage)] = [
        ("encrypt", .encrypt), ("decrypt", .decrypt), ("sign", .sign), ("verify", .verify),
        ("wrapKey", .wrapKey), ("unwrapKey", .unwrapKey),
    ]
}
