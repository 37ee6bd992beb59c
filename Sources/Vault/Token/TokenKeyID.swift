/// Names one key version in the token: `CKA_LABEL` is the key name, `CKA_ID` the 16 bytes of the
/// 32-hex-digit version.
public struct TokenKeyID: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public let version: String

    /// Key names as Azure allows them: 1–127 characters of `[0-9a-zA-Z-]`.
    public static func isValidName(_ name: String) -> Bool {
        (1...127).contains(name.utf8.count)
            && name.utf8.allSatisfy { $0 == UInt8(ascii: "-") || isASCIIAlphanumeric($0) }
    }

    public static func isValidVersion(_ version: String) -> Bool {
        version.utf8.count == 32 && version.utf8.allSatisfy(isLowerHex)
    }

    public init(name: String, version: String) throws(TokenKeyError) {
        guard Self.isValidName(name) else {
            throw .invalidInput("key name must be 1-127 characters of 0-9, a-z, A-Z and '-'")
        }
        guard Self.isValidVersion(version) else {
            throw .invalidInput("key version must be 32 lower-case hexadecimal characters")
        }
        self.name = name
        self.version = version
    }

    /// For a name and version the metadata store already validated.
    init(stored name: String, version: String) {
        self.name = name
        self.version = version
    }

    /// A fresh version id from the token's random generator.
    public static func newVersion(from randomBytes: [UInt8]) -> String {
        randomBytes.prefix(16).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    public var description: String { "\(name)/\(version)" }

    var label: [UInt8] { Array(name.utf8) }

    var objectID: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        var iterator = version.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            bytes.append(hexValue(high) << 4 | hexValue(low))
        }
        return bytes
    }

    /// The id of a token object hsmd made, or nil for an object that is not one of its keys.
    init?(label: [UInt8], objectID: [UInt8]) {
        guard objectID.count == 16, let name = String(validating: label, as: UTF8.self),
            Self.isValidName(name)
        else { return nil }
        self.name = name
        self.version = Self.newVersion(from: objectID)
    }
}

private func isASCIIAlphanumeric(_ byte: UInt8) -> Bool {
    (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
        || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
}

private func isLowerHex(_ byte: UInt8) -> Bool {
    (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
}

private func hexValue(_ byte: UInt8) -> UInt8 {
    byte <= UInt8(ascii: "9") ? byte - UInt8(ascii: "0") : byte - UInt8(ascii: "a") + 10
}
