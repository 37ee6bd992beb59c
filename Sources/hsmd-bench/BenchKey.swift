import Vault

/// A key the benchmark creates for its operations, one of each kind, in the daemon and in the
/// direct token alike.
enum BenchKey: String, CaseIterable, Sendable {
    case rsa2048, rsa3072, rsa4096, p256, p256k, p384, p521, aes256

    var spec: KeySpec {
        switch self {
        case .rsa2048: .rsa(bits: 2048)
        case .rsa3072: .rsa(bits: 3072)
        case .rsa4096: .rsa(bits: 4096)
        case .p256: .ec(.p256)
        case .p256k: .ec(.p256k)
        case .p384: .ec(.p384)
        case .p521: .ec(.p521)
        case .aes256: .oct(bits: 256)
        }
    }

    /// The body of the keys API's create request for this kind.
    var createBody: [String: any Sendable] {
        switch spec {
        case .rsa(let bits): ["kty": "RSA-HSM", "key_size": bits]
        case .ec(let curve): ["kty": "EC-HSM", "crv": curve.rawValue]
        case .oct(let bits): ["kty": "oct-HSM", "key_size": bits]
        }
    }

    /// Names start with `bench-` and carry the run's id, so a run never touches anyone else's keys.
    func name(run: String) -> String { "bench-\(rawValue)-\(run)" }
}
