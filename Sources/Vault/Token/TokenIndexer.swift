import CPKCS11
import PKCS11

/// Reads what the token holds into `TokenKey` values: once for every object at start-up, and for
/// each key right after it is made. Reads only public attributes.
struct TokenIndexer {
    let session: Session

    /// Everything the index needs of any kind of object, read in one query per object: SoftHSM2's
    /// file store re-checks an object's file on every call, so at start-up the calls are the cost.
    private static let indexedAttributes: [CK_ATTRIBUTE_TYPE] = [
        CKA_CLASS, CKA_LABEL, CKA_ID, CKA_KEY_TYPE, CKA_VALUE_LEN, CKA_EC_PARAMS, CKA_EC_POINT, CKA_MODULUS, CKA_PUBLIC_EXPONENT,
    ]

    private typealias Values = [CK_ATTRIBUTE_TYPE: [UInt8]]

    /// Every hsmd key in the token, and the handles of objects that are not hsmd keys.
    func readAll() throws -> (keys: [TokenKey], unmanaged: [ObjectHandle]) {
        var privateParts: [TokenKeyID: (ObjectHandle, Values)] = [:]
        var publicParts: [TokenKeyID: (ObjectHandle, Values)] = [:]
        var unmanaged: [ObjectHandle] = []
        for object in try session.findObjects([]) {
            // An object a crash left half-written (SoftHSM2 had written only its header) cannot be
            // read: it is no key of hsmd's, and must not stop the daemon from starting.
            guard let values = try? session.availableAttributeValues(of: object, Self.indexedAttributes) else {
                unmanaged.append(object)
                continue
            }
            guard let objectClass = values[CKA_CLASS]?.asULong,
                let id = TokenKeyID(label: values[CKA_LABEL] ?? [], objectID: values[CKA_ID] ?? [])
            else {
                unmanaged.append(object)
                continue
            }
            switch objectClass {
            case CK_ULONG(CKO_PRIVATE_KEY), CK_ULONG(CKO_SECRET_KEY):
                privateParts[id] = (object, values)
            case CK_ULONG(CKO_PUBLIC_KEY):
                publicParts[id] = (object, values)
            default:
                unmanaged.append(object)
            }
        }
        var keys: [TokenKey] = []
        for (id, (privateHandle, privateValues)) in privateParts {
            let publicPart = publicParts.removeValue(forKey: id)
            if let key = key(id, privateHandle: privateHandle, privateValues: privateValues, publicPart: publicPart) {
                keys.append(key)
            } else {
                unmanaged.append(privateHandle)
                if let publicPart { unmanaged.append(publicPart.0) }
            }
        }
        unmanaged += publicParts.values.map(\.0)
        return (keys, unmanaged)
    }

    /// A version's objects found again by label and id (after a stale handle); nil when gone.
    /// `excluding`: this process's session objects, which may carry the same label and id.
    func reread(_ id: TokenKeyID, excluding sessionObjects: Set<ObjectHandle>) throws -> TokenKey? {
        var privatePart: (ObjectHandle, Values)?
        var publicPart: (ObjectHandle, Values)?
        for object in try session.findObjects([.bytes(CKA_LABEL, id.label), .bytes(CKA_ID, id.objectID)])
        where !sessionObjects.contains(object) {
            let values = try session.availableAttributeValues(of: object, Self.indexedAttributes)
            switch values[CKA_CLASS]?.asULong {
            case CK_ULONG(CKO_PRIVATE_KEY), CK_ULONG(CKO_SECRET_KEY): privatePart = (object, values)
            case CK_ULONG(CKO_PUBLIC_KEY): publicPart = (object, values)
            default: continue
            }
        }
        guard let (privateHandle, privateValues) = privatePart else { return nil }
        return key(id, privateHandle: privateHandle, privateValues: privateValues, publicPart: publicPart)
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
        _ id: TokenKeyID, privateHandle: ObjectHandle, privateValues: Values, publicPart: (ObjectHandle, Values)?
    ) -> TokenKey? {
        switch privateValues[CKA_KEY_TYPE]?.asULong {
        case CK_ULONG(CKK_RSA):
            guard let (publicHandle, values) = publicPart, let modulus = values[CKA_MODULUS], let exponent = values[CKA_PUBLIC_EXPONENT]
            else { return nil }
            return TokenKey(
                id: id, spec: .rsa(bits: significantBits(modulus)), privateHandle: privateHandle,
                publicHandle: publicHandle, publicKey: .rsa(modulus: modulus, exponent: exponent))
        case CK_ULONG(CKK_EC):
            guard let (publicHandle, values) = publicPart,
                let curve = values[CKA_EC_PARAMS].flatMap(Curve.init(ecParameters:)),
                let publicKey = values[CKA_EC_POINT].flatMap({ PublicKey.ec(curve: curve, pointAttribute: $0) })
            else { return nil }
            return TokenKey(id: id, spec: .ec(curve), privateHandle: privateHandle, publicHandle: publicHandle, publicKey: publicKey)
        case CK_ULONG(CKK_AES), CK_ULONG(CKK_GENERIC_SECRET):
            // SoftHSM2 leaves CKA_VALUE_LEN at 0 on a key made by C_UnwrapKey (a restored backup):
            // its size is then the metadata's, filled in by `VaultToken.resolveUnknownSize`.
            let bits = Int(privateValues[CKA_VALUE_LEN]?.asULong ?? 0) * 8
            guard publicPart == nil, bits == 0 || (KeySpec.octSizes + KeySpec.hmacSizes).contains(bits) else { return nil }
            return TokenKey(
                id: id, spec: .oct(bits: bits), privateHandle: privateHandle, publicHandle: nil,
                publicKey: nil, isHMACKey: privateValues[CKA_KEY_TYPE]?.asULong == CK_ULONG(CKK_GENERIC_SECRET))
        default:
            return nil
        }
    }
}
