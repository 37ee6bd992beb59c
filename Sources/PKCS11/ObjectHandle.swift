import CPKCS11

/// A token object's handle. Valid only while at least one session of the process stays open on the
/// slot (SoftHSM2 invalidates handles when the last one closes).
public struct ObjectHandle: Hashable, Sendable, CustomStringConvertible {
    public let raw: CK_OBJECT_HANDLE

    public init(_ raw: CK_OBJECT_HANDLE) {
        self.raw = raw
    }

    public var description: String { "object \(raw)" }
}
