import CPKCS11
import PKCS11

/// Reads what the token holds into `TokenKey` values: once for every object at start-up, and for
/// each key right after it is made. Reads only public attributes.
struct TokenIndexer {
    let session: Session

    /// Every hsmd key in the token, and the handles of objects that are not hsmd keys.
    func readAll() throws -> (keys: [TokenKey], unmanaged: [ObjectHandle]) {
        var privateParts: [TokenKeyID: (ObjectHandle, CK_ULONG)] = [:]
        var publicParts: [TokenKeyID: ObjectHandle] = [:]
        var unmanaged: [ObjectHandle] = []
        for object in try session.findObjects([]) {
            let values = try session.attributeValues(of: object, [CKA_CLASS, CKA_LABEL, CKA_ID])
            guard let objectClass = values[CKA_CLASS]?.asULong,
                let id = TokenKeyID(label: values[CKA_LABEL] ?? [], objectID: values[CKA_ID] ?? [])
            else {
                unmanaged.append(object)
                continue
            }
            switch objectClass {
            case CK_ULONG(CKO_PRIVATE_KEY), CK_ULONG(CKO_SECRET_KEY):
                let keyType = try session.attributeValues(of: object, [CKA_KEY_TYPE])[CKA_KEY_TYPE]?.asULong ?? 0
                privateParts[id] = (object, keyType)
            case CK_ULONG(CKO_PUBLIC_KEY):
                publicParts[id] = object
            default:
                unmanaged.append(object)
            }
        }
        var keys: [TokenKey] = []
        for (id, (privateHandle, keyType)) in privateParts {
            let publicHandle = publicParts.removeValue(forKey: id)
            if let key = try key(id, keyType: keyType, privateHandle: privateHandle, publicHandle: publicHandle) {
                keys.append(key)
            } else {
                unmanaged.append(privateHandle)
                if let publicHandle { unmanaged.append(publicHandle) }
            }
        }
        unmanaged += publicParts.values
        return (keys, unmanaged)
    }

    func rsaKey(_ id: TokenKeyID, privateHandle: ObjectHandle, publicHandle: ObjectHandle) throws -> TokenKey {
        let values = try session.attributeValues(of: publicHandle, [CKA_MODULUS, CKA_PUBLIC_EXPONENT])
        let modulus = values[CKA_MODULUS] ?? []
        return TokenKey(
            id: id, spec: .rsa(bits: significantBits(modulus)), privateHandle: privateHandle,
            publicHandle: publicHandle, publicKey: .rsa(modulus: modulus, exponent: values[CKA_PUBLIC_EXPONENT] ?? []))
    }

    func ecKey(_ id: TokenKeyID, curve: Curve, privateHandle: ObjectHandle, publicHandle: ObjectHandle) throws -> TokenKey {
        let point = try session.attributeValues(of: publicHandle, [CKA_EC_POINT])[CKA_EC_POINT] ?? []
        guard let publicKey = PublicKey.ec(curve: curve, pointAttribute: point) else {
            throw TokenKeyError.invalidInput("the token holds an EC point hsmd cannot read for \(id)")
        }
        return TokenKey(id: id, spec: .ec(curve), privateHandle: privateHandle, publicHandle: publicHandle, publicKey: publicKey)
    }

    private func key(
        _ id: TokenKeyID, keyType: CK_ULONG, privateHandle: ObjectHandle, publicHandle: ObjectHandle?
    ) throws -> TokenKey? {
        switch keyType {
        case CK_ULONG(CKK_RSA):
            guard let publicHandle else { return nil }
            return try rsaKey(id, privateHandle: privateHandle, publicHandle: publicHandle)
        case CK_ULONG(CKK_EC):
            guard let publicHandle,
                let parameters = try session.attributeValues(of: publicHandle, [CKA_EC_PARAMS])[CKA_EC_PARAMS],
                let curve = Curve(ecParameters: parameters)
            else { return nil }
            return try ecKey(id, curve: curve, privateHandle: privateHandle, publicHandle: publicHandle)
        case CK_ULONG(CKK_AES), CK_ULONG(CKK_GENERIC_SECRET):
            guard publicHandle == nil,
                let length = try session.attributeValues(of: privateHandle, [CKA_VALUE_LEN])[CKA_VALUE_LEN]?.asULong,
                (KeySpec.octSizes + KeySpec.hmacSizes).contains(Int(length) * 8)
            else { return nil }
            return TokenKey(
                id: id, spec: .oct(bits: Int(length) * 8), privateHandle: privateHandle, publicHandle: nil,
                publicKey: nil, isHMACKey: keyType == CK_ULONG(CKK_GENERIC_SECRET))
        default:
            return nil
        }
    }
}
