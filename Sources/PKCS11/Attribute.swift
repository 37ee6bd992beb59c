import CPKCS11

/// One PKCS#11 attribute, held as owned Swift bytes. It becomes a `CK_ATTRIBUTE` only inside
/// `withCTemplate`, so no C pointer outlives the call it is made for.
public struct Attribute: Sendable {
    public enum Value: Sendable {
        case bytes([UInt8])
        case template([Attribute])
    }

    public let type: CK_ATTRIBUTE_TYPE
    public let value: Value

    public init(_ type: CK_ATTRIBUTE_TYPE, bytes: [UInt8]) {
        self.type = type
        self.value = .bytes(bytes)
    }

    public static func bool(_ type: CK_ATTRIBUTE_TYPE, _ value: Bool) -> Attribute {
        Attribute(type, bytes: [value ? UInt8(CK_TRUE) : UInt8(CK_FALSE)])
    }

    public static func ulong(_ type: CK_ATTRIBUTE_TYPE, _ value: CK_ULONG) -> Attribute {
        Attribute(type, bytes: withUnsafeBytes(of: value) { Array($0) })
    }

    public static func bytes(_ type: CK_ATTRIBUTE_TYPE, _ value: [UInt8]) -> Attribute {
        Attribute(type, bytes: value)
    }

    public static func string(_ type: CK_ATTRIBUTE_TYPE, _ value: String) -> Attribute {
        Attribute(type, bytes: Array(value.utf8))
    }

    public static func template(_ type: CK_ATTRIBUTE_TYPE, _ attributes: [Attribute]) -> Attribute {
        Attribute(type: type, value: .template(attributes))
    }

    private init(type: CK_ATTRIBUTE_TYPE, value: Value) {
        self.type = type
        self.value = value
    }
}

extension Array where Element == UInt8 {
    /// Reads a `CK_ULONG` attribute value as the token wrote it (native byte order).
    public var asULong: CK_ULONG? {
        guard count == MemoryLayout<CK_ULONG>.size else { return nil }
        return withUnsafeBytes { $0.loadUnaligned(as: CK_ULONG.self) }
    }

    public var asBool: Bool? {
        count == 1 ? self[0] != 0 : nil
    }
}

/// Lays a template out as C memory for the duration of `body`, then zeroes and frees it: templates
/// carry imported key material, which must not linger in freed heap memory.
func withCTemplate<R>(
    _ attributes: [Attribute],
    _ body: (UnsafeMutablePointer<CK_ATTRIBUTE>?, CK_ULONG) throws -> R
) rethrows -> R {
    var allocations: [UnsafeMutableRawBufferPointer] = []
    defer {
        for buffer in allocations {
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            buffer.deallocate()
        }
    }
    let array = layOut(attributes, into: &allocations)
    return try body(array, CK_ULONG(attributes.count))
}

private func layOut(
    _ attributes: [Attribute],
    into allocations: inout [UnsafeMutableRawBufferPointer]
) -> UnsafeMutablePointer<CK_ATTRIBUTE>? {
    guard !attributes.isEmpty else { return nil }
    let arrayBytes = UnsafeMutableRawBufferPointer.allocate(
        byteCount: MemoryLayout<CK_ATTRIBUTE>.stride * attributes.count,
        alignment: MemoryLayout<CK_ATTRIBUTE>.alignment)
    allocations.append(arrayBytes)
    let array = arrayBytes.bindMemory(to: CK_ATTRIBUTE.self)
    for (index, attribute) in attributes.enumerated() {
        switch attribute.value {
        case .bytes(let bytes):
            let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
            allocations.append(storage)
            storage.copyBytes(from: bytes)
            array[index] = CK_ATTRIBUTE(type: attribute.type, pValue: storage.baseAddress, ulValueLen: CK_ULONG(bytes.count))
        case .template(let nested):
            let nestedArray = layOut(nested, into: &allocations)
            array[index] = CK_ATTRIBUTE(
                type: attribute.type, pValue: UnsafeMutableRawPointer(nestedArray),
                ulValueLen: CK_ULONG(MemoryLayout<CK_ATTRIBUTE>.stride * nested.count))
        }
    }
    return array.baseAddress
}
