import CPKCS11

/// A PKCS#11 module loaded with dlopen. One per process: PKCS#11 state (initialisation, login)
/// belongs to the process, not to this object.
///
/// `@unchecked Sendable`: the function list is immutable after load, and the module was initialised
/// with `CKF_OS_LOCKING_OK`, so the token serialises concurrent calls itself.
public final class PKCS11Module: @unchecked Sendable {
    public let path: String
    let functions: UnsafeMutablePointer<CK_FUNCTION_LIST>
    private let library: UnsafeMutableRawPointer

    /// Loads the module; nothing is initialised yet.
    public init(path: String) throws {
        var list: UnsafeMutablePointer<CK_FUNCTION_LIST>?
        var reason: UnsafePointer<CChar>?
        guard let library = hsmd_p11_load(path, &list, &reason), let list else {
            throw PKCS11LoadError.cannotLoad(path: path, reason: reason.map { String(cString: $0) } ?? "unknown error")
        }
        self.path = path
        self.library = library
        self.functions = list
    }

    deinit {
        hsmd_p11_unload(library)
    }

    /// `C_Initialize` with OS locking: without it SoftHSM2 turns its own mutexes off and
    /// concurrent sessions corrupt it.
    public func initialize() throws {
        var arguments = CK_C_INITIALIZE_ARGS(
            CreateMutex: nil, DestroyMutex: nil, LockMutex: nil, UnlockMutex: nil,
            flags: CK_FLAGS(CKF_OS_LOCKING_OK), pReserved: nil)
        try check(functions.pointee.C_Initialize(&arguments), "C_Initialize")
    }

    public func finalize() throws {
        try check(functions.pointee.C_Finalize(nil), "C_Finalize")
    }

    public func info() throws -> ModuleInfo {
        var raw = CK_INFO()
        try check(functions.pointee.C_GetInfo(&raw), "C_GetInfo")
        return ModuleInfo(raw)
    }

    public func slots(withTokenOnly: Bool = true) throws -> [CK_SLOT_ID] {
        var count: CK_ULONG = 0
        let present = CK_BBOOL(withTokenOnly ? CK_TRUE : CK_FALSE)
        try check(functions.pointee.C_GetSlotList(present, nil, &count), "C_GetSlotList")
        var slots = [CK_SLOT_ID](repeating: 0, count: Int(count))
        try check(functions.pointee.C_GetSlotList(present, &slots, &count), "C_GetSlotList")
        return Array(slots.prefix(Int(count)))
    }

    public func tokenInfo(slot: CK_SLOT_ID) throws -> TokenInfo {
        var raw = CK_TOKEN_INFO()
        try check(functions.pointee.C_GetTokenInfo(slot, &raw), "C_GetTokenInfo")
        return TokenInfo(slot: slot, raw)
    }

    /// The slot holding an initialised token with this label. SoftHSM2 renumbers slots when a
    /// token is initialised, so a token is found by its label, never by a remembered slot id.
    public func slot(withTokenLabel label: String) throws -> CK_SLOT_ID? {
        for slot in try slots() {
            let info = try tokenInfo(slot: slot)
            if info.isInitialized && info.label == label { return slot }
        }
        return nil
    }

    /// The first slot whose token has not been initialised yet (SoftHSM2 always offers one).
    public func freeSlot() throws -> CK_SLOT_ID? {
        for slot in try slots() where try !tokenInfo(slot: slot).isInitialized {
            return slot
        }
        return nil
    }

    public func initToken(slot: CK_SLOT_ID, soPIN: [UInt8], label: String) throws {
        var paddedLabel = [UInt8](repeating: UInt8(ascii: " "), count: 32)
        let labelBytes = Array(label.utf8.prefix(32))
        paddedLabel.replaceSubrange(0..<labelBytes.count, with: labelBytes)
        var pin = soPIN
        defer { pin.zeroize() }
        try check(functions.pointee.C_InitToken(slot, &pin, CK_ULONG(pin.count), &paddedLabel), "C_InitToken")
    }

    public func openSession(slot: CK_SLOT_ID) throws -> Session {
        var handle: CK_SESSION_HANDLE = 0
        let flags = CK_FLAGS(CKF_SERIAL_SESSION | CKF_RW_SESSION)
        try check(functions.pointee.C_OpenSession(slot, flags, nil, nil, &handle), "C_OpenSession")
        return Session(module: self, handle: handle)
    }

    public func supportsMechanism(_ mechanism: CK_MECHANISM_TYPE, slot: CK_SLOT_ID) -> Bool {
        // SoftHSM2 ORs into the caller's flags: start from zero.
        var info = CK_MECHANISM_INFO(ulMinKeySize: 0, ulMaxKeySize: 0, flags: 0)
        return functions.pointee.C_GetMechanismInfo(slot, mechanism, &info) == CK_RV(CKR_OK)
    }
}

extension Array where Element == UInt8 {
    /// Overwrites the bytes in place; for PINs and key material that must not linger.
    public mutating func zeroize() {
        withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            base.initializeMemory(as: UInt8.self, repeating: 0, count: raw.count)
        }
    }
}
