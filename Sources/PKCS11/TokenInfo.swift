import CPKCS11

/// What a token says about itself, with C's blank-padded fixed arrays turned into strings.
public struct TokenInfo: Sendable {
    public let slot: CK_SLOT_ID
    public let label: String
    public let manufacturer: String
    public let model: String
    public let serialNumber: String
    public let flags: CK_FLAGS
    public let sessionCount: CK_ULONG
    public let freePublicMemory: CK_ULONG
    public let freePrivateMemory: CK_ULONG

    init(slot: CK_SLOT_ID, _ raw: CK_TOKEN_INFO) {
        self.slot = slot
        label = paddedString(raw.label)
        manufacturer = paddedString(raw.manufacturerID)
        model = paddedString(raw.model)
        serialNumber = paddedString(raw.serialNumber)
        flags = raw.flags
        sessionCount = raw.ulSessionCount
        freePublicMemory = raw.ulFreePublicMemory
        freePrivateMemory = raw.ulFreePrivateMemory
    }

    public var isInitialized: Bool { flags & CK_FLAGS(CKF_TOKEN_INITIALIZED) != 0 }
    public var isUserPINInitialized: Bool { flags & CK_FLAGS(CKF_USER_PIN_INITIALIZED) != 0 }
}

public struct ModuleInfo: Sendable {
    public let cryptokiVersion: String
    public let manufacturer: String
    public let libraryDescription: String
    public let libraryVersion: String

    init(_ raw: CK_INFO) {
        cryptokiVersion = "\(raw.cryptokiVersion.major).\(raw.cryptokiVersion.minor)"
        manufacturer = paddedString(raw.manufacturerID)
        libraryDescription = paddedString(raw.libraryDescription)
        libraryVersion = "\(raw.libraryVersion.major).\(raw.libraryVersion.minor)"
    }
}

/// PKCS#11 pads text fields with blanks and does not terminate them.
private func paddedString<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
        var text = String(decoding: raw, as: UTF8.self)
        while text.last == " " || text.last == "\0" { text.removeLast() }
        return text
    }
}
