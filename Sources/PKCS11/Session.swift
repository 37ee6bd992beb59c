import CPKCS11

/// One PKCS#11 session. A session runs one operation at a time: borrow it from a `SessionPool`
/// for the length of one operation and never share it between threads.
public struct Session: Sendable {
    public let handle: CK_SESSION_HANDLE
    let module: PKCS11Module

    init(module: PKCS11Module, handle: CK_SESSION_HANDLE) {
        self.module = module
        self.handle = handle
    }

    private var f: CK_FUNCTION_LIST { module.functions.pointee }

    // MARK: Session life

    public func close() throws {
        try check(f.C_CloseSession(handle), "C_CloseSession")
    }

    public func login(_ userType: CK_USER_TYPE, pin: [UInt8]) throws {
        var pin = pin
        defer { pin.zeroize() }
        try check(f.C_Login(handle, userType, &pin, CK_ULONG(pin.count)), "C_Login")
    }

    /// Whether the token holds this session's application logged in as the normal user.
    public func isUserLoggedIn() throws -> Bool {
        var info = CK_SESSION_INFO()
        try check(f.C_GetSessionInfo(handle, &info), "C_GetSessionInfo")
        return info.state == CKS_RO_USER_FUNCTIONS || info.state == CKS_RW_USER_FUNCTIONS
    }

    public func logout() throws {
        try check(f.C_Logout(handle), "C_Logout")
    }

    /// Sets the user PIN; the session must be logged in as SO.
    public func initUserPIN(_ pin: [UInt8]) throws {
        var pin = pin
        defer { pin.zeroize() }
        try check(f.C_InitPIN(handle, &pin, CK_ULONG(pin.count)), "C_InitPIN")
    }

    // MARK: Objects

    public func generateKeyPair(
        _ mechanism: Mechanism, publicTemplate: [Attribute], privateTemplate: [Attribute]
    ) throws -> (publicKey: ObjectHandle, privateKey: ObjectHandle) {
        var publicHandle: CK_OBJECT_HANDLE = 0
        var privateHandle: CK_OBJECT_HANDLE = 0
        let rv = mechanism.withCMechanism { mech in
            withCTemplate(publicTemplate) { pub, pubCount in
                withCTemplate(privateTemplate) { priv, privCount in
                    f.C_GenerateKeyPair(handle, mech, pub, pubCount, priv, privCount, &publicHandle, &privateHandle)
                }
            }
        }
        try check(rv, "C_GenerateKeyPair")
        return (ObjectHandle(publicHandle), ObjectHandle(privateHandle))
    }

    public func generateKey(_ mechanism: Mechanism, template: [Attribute]) throws -> ObjectHandle {
        var key: CK_OBJECT_HANDLE = 0
        let rv = mechanism.withCMechanism { mech in
            withCTemplate(template) { attrs, count in f.C_GenerateKey(handle, mech, attrs, count, &key) }
        }
        try check(rv, "C_GenerateKey")
        return ObjectHandle(key)
    }

    public func createObject(_ template: [Attribute]) throws -> ObjectHandle {
        var object: CK_OBJECT_HANDLE = 0
        let rv = withCTemplate(template) { attrs, count in f.C_CreateObject(handle, attrs, count, &object) }
        try check(rv, "C_CreateObject")
        return ObjectHandle(object)
    }

    public func copyObject(_ object: ObjectHandle, template: [Attribute]) throws -> ObjectHandle {
        var copy: CK_OBJECT_HANDLE = 0
        let rv = withCTemplate(template) { attrs, count in f.C_CopyObject(handle, object.raw, attrs, count, &copy) }
        try check(rv, "C_CopyObject")
        return ObjectHandle(copy)
    }

    public func destroyObject(_ object: ObjectHandle) throws {
        try check(f.C_DestroyObject(handle, object.raw), "C_DestroyObject")
    }

    /// Reads attribute values. Fails with the token's code (e.g. `CKR_ATTRIBUTE_SENSITIVE`) if any
    /// of them may not be read.
    public func attributeValues(
        of object: ObjectHandle, _ types: [CK_ATTRIBUTE_TYPE]
    ) throws -> [CK_ATTRIBUTE_TYPE: [UInt8]] {
        try attributeValues(of: object, types, lengthsKnown: nil)
    }

    /// `lengthsKnown`: a sizing query already answered for (a superset of) `types`.
    private func attributeValues(
        of object: ObjectHandle, _ types: [CK_ATTRIBUTE_TYPE], lengthsKnown sizes: [CK_ATTRIBUTE]?
    ) throws -> [CK_ATTRIBUTE_TYPE: [UInt8]] {
        var query = types.map { type in
            CK_ATTRIBUTE(type: type, pValue: nil, ulValueLen: sizes?.first { $0.type == type }?.ulValueLen ?? 0)
        }
        if sizes == nil {
            try check(f.C_GetAttributeValue(handle, object.raw, &query, CK_ULONG(query.count)), "C_GetAttributeValue")
        }
        var buffers = query.map { [UInt8](repeating: 0, count: Int($0.ulValueLen)) }
        let rv = buffers.withUnsafeMutableBufferPointer { storage in
            for index in query.indices {
                query[index].pValue = storage[index].withUnsafeMutableBytes { $0.baseAddress }
            }
            return f.C_GetAttributeValue(handle, object.raw, &query, CK_ULONG(query.count))
        }
        try check(rv, "C_GetAttributeValue")
        var values: [CK_ATTRIBUTE_TYPE: [UInt8]] = [:]
        for (index, type) in types.enumerated() {
            values[type] = Array(buffers[index].prefix(Int(query[index].ulValueLen)))
        }
        return values
    }

    /// Reads those of the attributes the object has and lets be read, skipping the others (types
    /// it does not have, sensitive values): one query for the lengths, one for the values, whatever
    /// the mix, so a caller can ask for everything any kind of object might carry.
    public func availableAttributeValues(
        of object: ObjectHandle, _ types: [CK_ATTRIBUTE_TYPE]
    ) throws -> [CK_ATTRIBUTE_TYPE: [UInt8]] {
        var query = types.map { CK_ATTRIBUTE(type: $0, pValue: nil, ulValueLen: 0) }
        let sizing = f.C_GetAttributeValue(handle, object.raw, &query, CK_ULONG(query.count))
        guard sizing == CKR_OK || sizing == CKR_ATTRIBUTE_TYPE_INVALID || sizing == CKR_ATTRIBUTE_SENSITIVE else {
            try check(sizing, "C_GetAttributeValue")
            return [:]
        }
        let available = query.filter { $0.ulValueLen != hsmd_CK_UNAVAILABLE_INFORMATION }.map(\.type)
        return available.isEmpty ? [:] : try attributeValues(of: object, available, lengthsKnown: query)
    }

    public func setAttributeValues(of object: ObjectHandle, _ template: [Attribute]) throws {
        let rv = withCTemplate(template) { attrs, count in f.C_SetAttributeValue(handle, object.raw, attrs, count) }
        try check(rv, "C_SetAttributeValue")
    }

    /// Every object matching the template. A linear scan in SoftHSM2: for start-up, not per request.
    public func findObjects(_ template: [Attribute]) throws -> [ObjectHandle] {
        let rv = withCTemplate(template) { attrs, count in f.C_FindObjectsInit(handle, attrs, count) }
        try check(rv, "C_FindObjectsInit")
        defer { _ = f.C_FindObjectsFinal(handle) }
        var found: [ObjectHandle] = []
        var batch = [CK_OBJECT_HANDLE](repeating: 0, count: 256)
        while true {
            var count: CK_ULONG = 0
            try check(f.C_FindObjects(handle, &batch, CK_ULONG(batch.count), &count), "C_FindObjects")
            if count == 0 { break }
            found.append(contentsOf: batch.prefix(Int(count)).map(ObjectHandle.init))
        }
        return found
    }

    // MARK: Cryptography

    public func sign(_ mechanism: Mechanism, key: ObjectHandle, data: [UInt8], capacity: Int) throws -> [UInt8] {
        try mechanism.withCMechanism { mech in
            try check(f.C_SignInit(handle, mech, key.raw), "C_SignInit")
        }
        return try output("C_Sign", capacity: capacity) { out, length in
            var data = data
            return f.C_Sign(handle, &data, CK_ULONG(data.count), out, length)
        }
    }

    /// True for a valid signature, false for an invalid one; other failures throw.
    public func verify(_ mechanism: Mechanism, key: ObjectHandle, data: [UInt8], signature: [UInt8]) throws -> Bool {
        try mechanism.withCMechanism { mech in
            try check(f.C_VerifyInit(handle, mech, key.raw), "C_VerifyInit")
        }
        var data = data
        var signature = signature
        let rv = f.C_Verify(handle, &data, CK_ULONG(data.count), &signature, CK_ULONG(signature.count))
        switch rv {
        case CK_RV(CKR_OK): return true
        case CK_RV(CKR_SIGNATURE_INVALID), CK_RV(CKR_SIGNATURE_LEN_RANGE): return false
        default: throw P11Error(rv, in: "C_Verify")
        }
    }

    public func encrypt(_ mechanism: Mechanism, key: ObjectHandle, data: [UInt8], capacity: Int) throws -> [UInt8] {
        try mechanism.withCMechanism { mech in
            try check(f.C_EncryptInit(handle, mech, key.raw), "C_EncryptInit")
        }
        return try output("C_Encrypt", capacity: capacity) { out, length in
            var data = data
            return f.C_Encrypt(handle, &data, CK_ULONG(data.count), out, length)
        }
    }

    public func decrypt(_ mechanism: Mechanism, key: ObjectHandle, data: [UInt8], capacity: Int) throws -> [UInt8] {
        try mechanism.withCMechanism { mech in
            try check(f.C_DecryptInit(handle, mech, key.raw), "C_DecryptInit")
        }
        return try output("C_Decrypt", capacity: capacity) { out, length in
            var data = data
            return f.C_Decrypt(handle, &data, CK_ULONG(data.count), out, length)
        }
    }

    public func digest(_ mechanism: Mechanism, data: [UInt8]) throws -> [UInt8] {
        try mechanism.withCMechanism { mech in
            try check(f.C_DigestInit(handle, mech), "C_DigestInit")
        }
        return try output("C_Digest", capacity: 64) { out, length in
            var data = data
            return f.C_Digest(handle, &data, CK_ULONG(data.count), out, length)
        }
    }

    public func wrapKey(_ mechanism: Mechanism, wrappingKey: ObjectHandle, key: ObjectHandle) throws -> [UInt8] {
        var length: CK_ULONG = 0
        try mechanism.withCMechanism { mech in
            try check(f.C_WrapKey(handle, mech, wrappingKey.raw, key.raw, nil, &length), "C_WrapKey")
        }
        var wrapped = [UInt8](repeating: 0, count: Int(length))
        try mechanism.withCMechanism { mech in
            try check(f.C_WrapKey(handle, mech, wrappingKey.raw, key.raw, &wrapped, &length), "C_WrapKey")
        }
        return Array(wrapped.prefix(Int(length)))
    }

    public func unwrapKey(
        _ mechanism: Mechanism, unwrappingKey: ObjectHandle, wrapped: [UInt8], template: [Attribute]
    ) throws -> ObjectHandle {
        var key: CK_OBJECT_HANDLE = 0
        var wrapped = wrapped
        let rv = mechanism.withCMechanism { mech in
            withCTemplate(template) { attrs, count in
                f.C_UnwrapKey(handle, mech, unwrappingKey.raw, &wrapped, CK_ULONG(wrapped.count), attrs, count, &key)
            }
        }
        try check(rv, "C_UnwrapKey")
        return ObjectHandle(key)
    }

    public func generateRandom(count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try check(f.C_GenerateRandom(handle, &bytes, CK_ULONG(count)), "C_GenerateRandom")
        return bytes
    }

    /// Runs a single-part call that fills an output buffer, growing the buffer once if the token
    /// says it is too small (the operation stays active in that case, per PKCS#11 §5.2).
    private func output(
        _ function: StaticString, capacity: Int,
        _ call: (UnsafeMutablePointer<CK_BYTE>, UnsafeMutablePointer<CK_ULONG>) -> CK_RV
    ) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max(capacity, 1))
        var length = CK_ULONG(buffer.count)
        var rv = buffer.withUnsafeMutableBufferPointer { call($0.baseAddress!, &length) }
        if rv == CK_RV(CKR_BUFFER_TOO_SMALL) {
            buffer = [UInt8](repeating: 0, count: Int(length))
            rv = buffer.withUnsafeMutableBufferPointer { call($0.baseAddress!, &length) }
        }
        try check(rv, function)
        buffer.removeSubrange(Int(length)...)
        return buffer
    }
}
