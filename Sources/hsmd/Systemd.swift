import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The two systemd protocols hsmd speaks without linking libsystemd: readiness notification
/// (`Type=notify`) and socket activation. Both are small, documented, stable wire formats
/// (sd_notify(3), sd_listen_fds(3)).
enum Systemd {
    /// Sends a state line such as `READY=1` to `$NOTIFY_SOCKET`; does nothing when systemd did not ask.
    static func notify(_ state: String) {
        guard let path = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"], path.count > 1 else { return }
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        // "@name" is an abstract socket: the name starts with a NUL byte instead of the "@".
        var name = Array(path.utf8)
        if name.first == UInt8(ascii: "@") { name[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard name.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: name) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + name.count)
        let message = Array(state.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(descriptor, message, message.count, 0, $0, length) }
        }
    }

    struct ActivationError: Error, CustomStringConvertible {
        let description: String
    }

    /// The listening Unix socket systemd passed (`LISTEN_FDS`, from descriptor 3) and its path, if
    /// this process was socket-activated. hsmd serves its API on exactly one such socket.
    static func activatedSocket() throws -> (descriptor: Int32, path: String)? {
        let environment = ProcessInfo.processInfo.environment
        guard let count = environment["LISTEN_FDS"].flatMap(Int.init), count > 0,
            environment["LISTEN_PID"].flatMap(Int32.init) == getpid()
        else { return nil }
        guard count == 1 else {
            throw ActivationError(description: "systemd passed \(count) sockets; hsmd's socket unit must have exactly one ListenStream= (the API's Unix socket)")
        }
        let descriptor: Int32 = 3
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        var type: Int32 = 0
        var typeLength = socklen_t(MemoryLayout<Int32>.size)
        let isUnixStream = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) == 0 }
        } && address.ss_family == sa_family_t(AF_UNIX)
            && getsockopt(descriptor, SOL_SOCKET, SO_TYPE, &type, &typeLength) == 0 && type == Int32(SOCK_STREAM.rawValue)
        guard isUnixStream else {
            throw ActivationError(description: "the socket systemd passed is not a Unix stream socket; use ListenStream=/path in hsmd.socket")
        }
        // Children (none today) must not inherit the activation.
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        for variable in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] { unsetenv(variable) }
        let path = withUnsafeBytes(of: &address) { raw in
            let pathBytes = raw.dropFirst(MemoryLayout<sa_family_t>.size).prefix(Int(length) - MemoryLayout<sa_family_t>.size)
            return String(decoding: pathBytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        return (descriptor, path)
    }
}
