import Foundation

/// Where a PIN comes from when the operator supplies it. Never from the command line: argv is
/// visible to every user through /proc.
public enum PINSource: Sendable, Equatable {
    case file(String)
    case environment(String)

    /// Reads the PIN. A file must be readable by its owner only, like an SSH private key.
    func read(role: String) throws -> [UInt8] {
        switch self {
        case .file(let path):
            let attributes: [FileAttributeKey: Any]
            do {
                attributes = try FileManager.default.attributesOfItem(atPath: path)
            } catch {
                throw ProvisioningError.pin("cannot read the \(role) PIN file \(path): it does not exist or is not readable")
            }
            if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
                throw ProvisioningError.pin(
                    "the \(role) PIN file \(path) is readable by others (mode \(String(mode, radix: 8))); run: chmod 600 \(path)")
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ProvisioningError.pin("cannot read the \(role) PIN file \(path)")
            }
            return try Self.validated(Self.trimmingNewline(Array(data)), role: role, origin: "file \(path)")
        case .environment(let name):
            guard let value = ProcessInfo.processInfo.environment[name] else {
                throw ProvisioningError.pin("the environment variable \(name), named for the \(role) PIN, is not set")
            }
            return try Self.validated(Array(value.utf8), role: role, origin: "environment variable \(name)")
        }
    }

    /// A fresh PIN: 32 hexadecimal characters (128 bits) from the system's generator.
    static func generate() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        return (0..<32).map { _ in digits[Int(generator.next(upperBound: UInt8(16)))] }
    }

    private static func trimmingNewline(_ bytes: [UInt8]) -> [UInt8] {
        var bytes = bytes
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes.removeLast() }
        return bytes
    }

    private static func validated(_ pin: [UInt8], role: String, origin: String) throws -> [UInt8] {
        guard (4...255).contains(pin.count) else {
            throw ProvisioningError.pin("the \(role) PIN from the \(origin) must be 4 to 255 bytes long")
        }
        return pin
    }
}
