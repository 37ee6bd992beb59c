import Foundation

/// Makes way for the daemon's socket: a stale socket file from a crashed run is removed, but a
/// socket another process still serves on, or a file that is not a socket, is never touched.
enum SocketFile {
    struct InUse: Error, CustomStringConvertible {
        let description: String
    }

    static func prepare(_ path: String) throws {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        guard status.st_mode & S_IFMT == S_IFSOCK else {
            throw InUse(description: "\(path) exists and is not a socket; refusing to replace it")
        }
        if isServed(path) {
            throw InUse(description: "another process is serving on \(path); stop it or choose another --socket")
        }
        unlink(path)
    }

    private static func isServed(_ path: String) -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}
