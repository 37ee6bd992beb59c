import CPKCS11
import PKCS11

/// A token object that is not one of hsmd's keys: what a tool made, or an older system left.
public struct TokenObject: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case privateKey = "private", publicKey = "public", secretKey = "secret", other
    }

    let handle: ObjectHandle
    public let kind: Kind
    public let label: String
    public let id: [UInt8]
    /// RSA-2048, EC P-256, oct-256 … when hsmd knows the key type.
    public let spec: KeySpec?
    public let isHMACKey: Bool
    /// For private and secret keys.
    public let sensitive: Bool?
    public let extractable: Bool?
    /// The operations its PKCS#11 usage flags allow.
    public let usage: KeyUsage

    public var idHex: String { id.map { String(format: "%02x", $0) }.joined() }
}

extension VaultToken {
    /// hsmd's own service keys, which are never listed or adopted.
    static let serviceLabels: Set<String> = [DomainKey.label, tokenSigningLabel]

    /// Every object that is neither a key version in `managed` nor one of hsmd's service keys.
    public func unmanagedObjects(excluding managed: Set<TokenKeyID>) throws(TokenKeyError) -> [TokenObject] {
        try withSession { session in
            var objects: [TokenObject] = []
            for handle in try tokenObjects(session, []) {
                // A half-written object (a crash inside the token) is listed as an unnamed other object.
                guard let basics = try? session.attributeValues(of: handle, [CKA_CLASS, CKA_LABEL, CKA_ID]) else {
                    objects.append(TokenObject(
                        handle: handle, kind: .other, label: "", id: [], spec: nil, isHMACKey: false, sensitive: nil,
                        extractable: nil, usage: []))
                    continue
                }
                let label = String(decoding: basics[CKA_LABEL] ?? [], as: UTF8.self)
                let id = basics[CKA_ID] ?? []
                if Self.serviceLabels.contains(label) { continue }
                if let keyID = TokenKeyID(label: basics[CKA_LABEL] ?? [], objectID: id), managed.contains(keyID) { continue }
                objects.append(try describe(handle, objectClass: basics[CKA_CLASS]?.asULong ?? 0, label: label, id: id, session: session))
            }
            return objects.sorted { ($0.label, $0.idHex, $0.kind.rawValue) < ($1.label, $1.idHex, $1.kind.rawValue) }
        }
    }

    /// Brings objects under hsmd's names (label and id of `id`) and indexes them as that version.
    /// `objects` is a private or secret key, with the public key of a pair.
    public func adopt(_ objects: [TokenObject], as id: TokenKeyID) throws(TokenKeyError) -> TokenKey {
        guard let main = objects.first(where: { $0.kind == .privateKey || $0.kind == .secretKey }), let spec = main.spec else {
            throw .invalidInput("there is no private or secret key of a type hsmd knows to adopt")
        }
        let publicObject = objects.first { $0.kind == .publicKey }
        let key = try withSession { session -> TokenKey in
            for object in objects {
                try session.setAttributeValues(of: object.handle, [.bytes(CKA_LABEL, id.label), .bytes(CKA_ID, id.objectID)])
            }
            switch spec {
            case .rsa:
                guard let publicObject else { throw TokenKeyError.invalidInput("an RSA private key is adopted with its public key") }
                return try TokenIndexer(session: session).rsaKey(id, privateHandle: main.handle, publicHandle: publicObject.handle)
            case .ec(let curve):
                guard let publicObject else { throw TokenKeyError.invalidInput("an EC private key is adopted with its public key") }
                return try TokenIndexer(session: session).ecKey(id, curve: curve, privateHandle: main.handle, publicHandle: publicObject.handle)
            case .oct:
                return TokenKey(id: id, spec: spec, privateHandle: main.handle, publicHandle: nil, publicKey: nil, isHMACKey: main.isHMACKey)
            }
        }
        index.withLock { $0[id] = key }
        return key
    }

    /// Gives objects back their former label and id (undoing an adoption a crash interrupted).
    public func relabel(_ id: TokenKeyID, label: String, objectID: [UInt8]) throws(TokenKeyError) {
        let key = try key(id)
        defer { sessionCopies.forget(id) }
        try withSession { session in
            for handle in [key.privateHandle] + (key.publicHandle.map { [$0] } ?? []) {
                try session.setAttributeValues(of: handle, [.string(CKA_LABEL, label), .bytes(CKA_ID, objectID)])
            }
        }
        index.withLock { _ = $0.removeValue(forKey: id) }
    }

    private func describe(_ handle: ObjectHandle, objectClass: CK_ULONG, label: String, id: [UInt8], session: Session) throws -> TokenObject {
        func flags(_ types: [CK_ATTRIBUTE_TYPE]) throws -> [CK_ATTRIBUTE_TYPE: Bool] {
            try session.attributeValues(of: handle, types).compactMapValues(\.asBool)
        }
        let kind: TokenObject.Kind
        var usage: KeyUsage = []
        var sensitive: Bool?
        var extractable: Bool?
        switch objectClass {
        case CK_ULONG(CKO_PRIVATE_KEY):
            kind = .privateKey
            let values = try flags([CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_SIGN, CKA_DECRYPT, CKA_UNWRAP])
            (sensitive, extractable) = (values[CKA_SENSITIVE], values[CKA_EXTRACTABLE])
            if values[CKA_SIGN] == true { usage.insert(.sign) }
            if values[CKA_DECRYPT] == true { usage.insert(.decrypt) }
            if values[CKA_UNWRAP] == true { usage.insert(.unwrapKey) }
        case CK_ULONG(CKO_PUBLIC_KEY):
            kind = .publicKey
            let values = try flags([CKA_VERIFY, CKA_ENCRYPT, CKA_WRAP])
            if values[CKA_VERIFY] == true { usage.insert(.verify) }
            if values[CKA_ENCRYPT] == true { usage.insert(.encrypt) }
            if values[CKA_WRAP] == true { usage.insert(.wrapKey) }
        case CK_ULONG(CKO_SECRET_KEY):
            kind = .secretKey
            let values = try flags([CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_SIGN, CKA_VERIFY, CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP])
            (sensitive, extractable) = (values[CKA_SENSITIVE], values[CKA_EXTRACTABLE])
            for (attribute, operation) in [(CKA_SIGN, KeyUsage.sign), (CKA_VERIFY, .verify), (CKA_ENCRYPT, .encrypt),
                                            (CKA_DECRYPT, .decrypt), (CKA_WRAP, .wrapKey), (CKA_UNWRAP, .unwrapKey)] where values[attribute] == true {
                usage.insert(operation)
            }
        default:
            return TokenObject(handle: handle, kind: .other, label: label, id: id, spec: nil, isHMACKey: false, sensitive: nil, extractable: nil, usage: [])
        }
        let keyType = try session.attributeValues(of: handle, [CKA_KEY_TYPE])[CKA_KEY_TYPE]?.asULong
        var spec: KeySpec?
        var hmac = false
        switch keyType {
        case CK_ULONG(CKK_RSA)?:
            spec = .rsa(bits: significantBits(try session.attributeValues(of: handle, [CKA_MODULUS])[CKA_MODULUS] ?? []))
        case CK_ULONG(CKK_EC)?:
            spec = (try session.attributeValues(of: handle, [CKA_EC_PARAMS])[CKA_EC_PARAMS]).flatMap(Curve.init(ecParameters:)).map(KeySpec.ec)
        case CK_ULONG(CKK_AES)?, CK_ULONG(CKK_GENERIC_SECRET)?:
            hmac = keyType == CK_ULONG(CKK_GENERIC_SECRET)
            spec = (try session.attributeValues(of: handle, [CKA_VALUE_LEN])[CKA_VALUE_LEN]?.asULong).map { .oct(bits: Int($0) * 8) }
        default:
            spec = nil
        }
        return TokenObject(handle: handle, kind: kind, label: label, id: id, spec: spec, isHMACKey: hmac, sensitive: sensitive,
                           extractable: extractable, usage: usage)
    }
}

extension VaultToken {
    /// The operations a version's usage flags allow in the token. Where a flag serves two operations
    /// (CKA_DECRYPT for decrypt and unwrapKey on a key pair), both count: the token permits both.
    public func permittedUsage(of id: TokenKeyID) throws(TokenKeyError) -> KeyUsage {
        let key = try key(id)
        return try withSession { session in
            let flags: [(ObjectHandle?, CK_ATTRIBUTE_TYPE, KeyUsage)] = key.publicHandle == nil
                ? [(key.privateHandle, CKA_SIGN, .sign), (key.privateHandle, CKA_VERIFY, .verify),
                   (key.privateHandle, CKA_ENCRYPT, .encrypt), (key.privateHandle, CKA_DECRYPT, .decrypt),
                   (key.privateHandle, CKA_WRAP, .wrapKey), (key.privateHandle, CKA_UNWRAP, .unwrapKey)]
                : [(key.privateHandle, CKA_SIGN, .sign), (key.privateHandle, CKA_DECRYPT, .decrypt),
                   (key.privateHandle, CKA_UNWRAP, .unwrapKey), (key.publicHandle, CKA_VERIFY, .verify),
                   (key.publicHandle, CKA_ENCRYPT, .encrypt), (key.publicHandle, CKA_WRAP, .wrapKey)]
            var usage: KeyUsage = []
            for (handle, attribute, operation) in flags {
                guard let handle else { continue }
                if try session.attributeValues(of: handle, [attribute])[attribute]?.asBool == true { usage.insert(operation) }
            }
            if usage.contains(.unwrapKey) && key.publicHandle != nil { usage.insert(.decrypt) }
            if usage.contains(.wrapKey) && key.publicHandle != nil { usage.insert(.encrypt) }
            return usage
        }
    }
}

extension VaultToken {
    /// Key objects with no label, no id and no key material: what a kill inside SoftHSM2's object
    /// write leaves (the object made, its template only partly written). A tool's unnamed key still
    /// has its material (modulus, EC parameters or point, a value length), so it is never one of these.
    public func unnamedObjects() throws(TokenKeyError) -> [TokenObject] {
        let unnamed = try unmanagedObjects(excluding: []).filter { $0.label.isEmpty && $0.id.isEmpty && $0.kind != .other }
        return try withSession { session in
            try unnamed.filter { object in
                let material = try session.availableAttributeValues(
                    of: object.handle, [CKA_MODULUS, CKA_EC_PARAMS, CKA_EC_POINT, CKA_VALUE_LEN])
                return material.values.allSatisfy { $0.isEmpty || $0.allSatisfy { $0 == 0 } }
            }
        }
    }

    /// Destroys the unnamed objects (`hsmd --check-state --repair`); returns how many went.
    public func destroyUnnamedObjects() throws(TokenKeyError) -> Int {
        let unnamed = try unnamedObjects()
        try withSession { session in
            for object in unnamed { try? session.destroyObject(object.handle) }
        }
        return try unnamed.count - unnamedObjects().count
    }
}
