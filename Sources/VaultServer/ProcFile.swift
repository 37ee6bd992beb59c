import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reads a /proc file to its end. /proc files report a size of 0 and are generated as they are read,
/// so they must be read in a loop until read(2) returns 0 (Foundation's readers stop after one page).
enum ProcFile {
    static func read(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return count == 0 ? String(decoding: contents, as: UTF8.self) : nil }
            contents.append(contentsOf: chunk[..<count])
        }
    }
}
