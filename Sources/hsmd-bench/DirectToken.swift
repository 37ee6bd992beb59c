import Foundation
import Logging
import Vault

/// The direct baseline's token: a throwaway state directory this tool provisions with
/// `TokenProvisioner`, so the baseline runs while hsmd keeps owning its own token (one process
/// owns a token), on the same SoftHSM2 build and configuration.
enum DirectToken {
    static func open(modulePath: String) throws -> (target: TokenTarget, directory: URL) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-bench-direct-\(UUID().uuidString.prefix(8))")
        do {
            let (token, lock) = try provision(directory, modulePath: modulePath)
            let target = TokenTarget(token: token) {
                withExtendedLifetime(lock) {}
                try? FileManager.default.removeItem(at: directory)
            }
            return (target, directory)
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw BenchError.setup("cannot provision a token in \(directory.path): \(error)")
        }
    }

    /// Provisions a new state directory and opens its token; the lock must live while the token is open.
    static func provision(_ directory: URL, modulePath: String) throws -> (VaultToken, StateLock) {
        var options = TokenProvisioner.Options()
        options.modulePath = modulePath
        var logger = Logger(label: "hsmd-bench")
        logger.logLevel = .warning
        return try TokenProvisioner(directory: StateDirectory(path: directory.path), options: options, logger: logger).open()
    }
}
