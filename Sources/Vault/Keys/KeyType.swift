/// Azure's `kty`. Managed HSM stores every key in the HSM, so `RSA`, `EC` and `oct` are accepted and
/// become their `-HSM` forms.
public enum KeyType: String, Sendable, CaseIterable {
    case rsa = "RSA-HSM"
    case ec = "EC-HSM"
    case oct = "oct-HSM"

    public init?(azureName: String) {
        switch azureName {
        case "RSA-HSM", "RSA": self = .rsa
        case "EC-HSM", "EC": self = .ec
        case "oct-HSM", "oct": self = .oct
        default: return nil
        }
    }

    init(_ spec: KeySpec) {
        switch spec {
        case .rsa: self = .rsa
        case .ec: self = .ec
        case .oct: self = .oct
        }
    }

    /// The operations a key of this type can perform at all.
    func possibleOperations(hmac: Bool) -> KeyUsage {
        switch self {
        case .rsa: [.encrypt, .decrypt, .sign, .verify, .wrapKey, .unwrapKey]
        case .ec: [.sign, .verify]
        case .oct: hmac ? KeyUsage.hmacOperations : KeyUsage.aesOperations
        }
    }
}

extension KeyUsage {
    /// Parses Azure's `key_ops`, naming the first unknown entry.
    public init(azureNames names: [String]) throws(VaultError) {
        var usage: KeyUsage = []
        for name in names {
            guard let operation = KeyUsage.azureNames.first(where: { $0.0 == name })?.1 else {
                throw .badParameter(
                    "key_ops: '\(name)' is not an operation hsmd offers (encrypt, decrypt, sign, verify, wrapKey, unwrapKey)")
            }
            usage.insert(operation)
        }
        self = usage
    }

    /// Azure's names in Azure's order.
    public var azureNames: [String] {
        KeyUsage.azureNames.filter { contains($0.1) }.map(\.0)
    }
}
