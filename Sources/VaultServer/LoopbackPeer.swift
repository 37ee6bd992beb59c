import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Who owns the other end of a loopback TCP connection, from the kernel's socket tables
/// (`/proc/net/tcp` and `tcp6`): the peer's socket is the entry whose local address is our remote
/// one and whose remote address is our local one. Only meaningful when both ends are on this host,
/// which is why the listeners that rely on it bind loopback addresses only.
enum LoopbackPeer {
    struct Unknown: Error {}

    static func uid(local: SocketAddress?, remote: SocketAddress?) throws -> UInt32 {
        guard let local, let remote, let localIP = local.ipAddress, let localPort = local.port,
            let remoteIP = remote.ipAddress, let remotePort = remote.port
        else { throw Unknown() }
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = ProcFile.read(table) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count > 7, let entryLocal = endpoint(fields[1]), let entryRemote = endpoint(fields[2]),
                    entryLocal.ip == remoteIP, entryLocal.port == remotePort,
                    entryRemote.ip == localIP, entryRemote.port == localPort,
                    let uid = UInt32(fields[7])
                else { continue }
                return uid
            }
        }
        throw Unknown()
    }

    /// `0100007F:1F90` → ("127.0.0.1", 8080). Addresses are 32-bit words in host (little-endian) order.
    private static func endpoint(_ field: Substring) -> (ip: String, port: Int)? {
        let parts = field.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1], radix: 16) else { return nil }
        let hex = Array(parts[0].utf8)
        guard hex.count == 8 || hex.count == 32 else { return nil }
        var bytes: [UInt8] = []
        for wordStart in stride(from: 0, to: hex.count, by: 8) {
            guard let word = UInt32(String(decoding: hex[wordStart..<wordStart + 8], as: UTF8.self), radix: 16) else { return nil }
            withUnsafeBytes(of: word.littleEndian) { bytes.append(contentsOf: $0) }
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        guard inet_ntop(family, bytes, &text, socklen_t(text.count)) != nil else { return nil }
        return (String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), port)
    }
}
