/// What a caller may set on a version's attributes; nil leaves a value as it is (or at its default).
public struct AttributeInput: Sendable, Equatable {
    public var enabled: Bool?
    public var notBefore: Int64?
    public var expires: Int64?
    public var exportable: Bool?

    public init(enabled: Bool? = nil, notBefore: Int64? = nil, expires: Int64? = nil, exportable: Bool? = nil) {
        (self.enabled, self.notBefore, self.expires, self.exportable) = (enabled, notBefore, expires, exportable)
    }
}

/// `POST /keys/{name}/create`.
public struct KeyCreation: Sendable {
    public var type: KeyType
    public var size: Int?
    public var curve: String?
    public var publicExponent: Int?
    public var operations: [String]?
    public var attributes = AttributeInput()
    public var tags: [String: String]?

    public init(type: KeyType) {
        self.type = type
    }
}

/// `PUT /keys/{name}`.
public struct KeyImport: Sendable {
    public var type: KeyType
    public var material: ImportedKeyMaterial
    public var operations: [String]?
    public var attributes = AttributeInput()
    public var tags: [String: String]?

    public init(type: KeyType, material: ImportedKeyMaterial) {
        self.type = type
        self.material = material
    }
}

/// `PATCH /keys/{name}/{version}`.
public struct KeyUpdate: Sendable {
    public var operations: [String]?
    public var attributes = AttributeInput()
    public var tags: [String: String]?

    public init() {}
}

enum RequestRules {
    static let maximumTags = 15
    static let maximumTagLength = 256

    static func validateTags(_ tags: [String: String]?) throws(VaultError) {
        guard let tags else { return }
        guard tags.count <= maximumTags else {
            throw .badParameter("tags: a key has at most \(maximumTags) tags; the request has \(tags.count)")
        }
        for (name, value) in tags {
            guard !name.isEmpty, name.count <= maximumTagLength else {
                throw .badParameter("tags: tag names are 1 to \(maximumTagLength) characters")
            }
            guard value.count <= maximumTagLength else {
                throw .badParameter("tags: the value of tag '\(name)' is longer than \(maximumTagLength) characters")
            }
        }
    }

    static func validate(_ attributes: AttributeInput) throws(VaultError) {
        if attributes.exportable == true {
            throw .badParameter("attributes.exportable: hsmd keys are never exportable (key release is not offered)")
        }
        if let notBefore = attributes.notBefore, let expires = attributes.expires, notBefore >= expires {
            throw .badParameter("attributes.nbf must be before attributes.exp")
        }
    }

    /// The operations of a new version: as asked (each one possible for the type) or the type's defaults.
    static func operations(_ names: [String]?, type: KeyType, spec: KeySpec) throws(VaultError) -> KeyUsage {
        guard let names else { return KeyUsage.defaults(for: spec) }
        let usage = try KeyUsage(azureNames: names)
        let hmac = usage.makesHMACKey
        if type == .oct && hmac && !usage.isDisjoint(with: KeyUsage.aesOperations) {
            throw .badParameter(
                "key_ops: an oct-HSM key is either an HMAC key (sign, verify) or an AES key (encrypt, decrypt, wrapKey, unwrapKey), not both")
        }
        let impossible = usage.subtracting(type.possibleOperations(hmac: hmac))
        if !impossible.isEmpty {
            throw .badParameter("key_ops: a \(type.rawValue) key cannot \(impossible.azureNames.joined(separator: ", "))")
        }
        return usage
    }

    /// The key spec of a create request, with Managed HSM's defaults: RSA 2048, P-256, 256 bits.
    static func spec(_ creation: KeyCreation) throws(VaultError) -> KeySpec {
        switch creation.type {
        case .rsa:
            if creation.curve != nil { throw .badParameter("crv is for EC keys, not RSA-HSM") }
            if let exponent = creation.publicExponent, exponent != 65537 {
                throw .badParameter("public_exponent: hsmd generates RSA keys with exponent 65537 only")
            }
            let bits = creation.size ?? 2048
            guard KeySpec.rsaSizes.contains(bits) else {
                throw .badParameter("key_size must be 2048, 3072 or 4096 for RSA-HSM; it is \(bits)")
            }
            return .rsa(bits: bits)
        case .ec:
            if creation.publicExponent != nil { throw .badParameter("public_exponent is for RSA keys, not EC-HSM") }
            let name = creation.curve ?? Curve.p256.rawValue
            guard let curve = Curve(rawValue: name) else {
                throw .badParameter("crv must be P-256, P-256K, P-384 or P-521; it is \(name)")
            }
            if let size = creation.size, size != curve.coordinateSize * 8 && !(curve == .p521 && size == 521) {
                throw .badParameter("key_size \(size) does not match crv \(curve.rawValue)")
            }
            return .ec(curve)
        case .oct:
            if creation.curve != nil || creation.publicExponent != nil {
                throw .badParameter("crv and public_exponent are not for oct-HSM keys")
            }
            let hmac = (try? KeyUsage(azureNames: creation.operations ?? []))?.makesHMACKey ?? false
            let bits = creation.size ?? 256
            let allowed = hmac ? KeySpec.hmacSizes : KeySpec.octSizes
            guard allowed.contains(bits) else {
                throw .badParameter(
                    "key_size must be \(allowed.map(String.init).joined(separator: ", ")) for an oct-HSM \(hmac ? "HMAC" : "AES") key; it is \(bits)")
            }
            return .oct(bits: bits)
        }
    }
}
