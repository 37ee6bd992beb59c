import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock` on the state directory's lock file, held for the process's life: one
/// process owns the token (SoftHSM2 corrupts a token that several processes log in to at once).
public final class StateLock: Sendable {
    private let descriptor: Int32

    public static func acquire(_ directory: StateDirectory) throws -> StateLock {
        let path = directory.lockFile.path
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ProvisioningError.stateDirectory("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let owner = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(descriptor)
            throw ProvisioningError.alreadyRunning(
                "another hsmd (pid \(owner.flatMap { $0.isEmpty ? nil : $0 } ?? "unknown")) owns the state directory \(directory.root.path); one process must own the token")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(descriptor, 0)
        _ = pid.withCString { pwrite(descriptor, $0, strlen($0), 0) }
        return StateLock(descriptor: descriptor)
    }

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }
}
