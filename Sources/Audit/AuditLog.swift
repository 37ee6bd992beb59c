import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The audit log: JSON lines in `DIR/audit.log`, each holding the hash of the one before, rotated to
/// `audit-<time>.log` files when large, the chain running on across files.
///
/// `append` queues a record and returns at once; its completion runs, on the log's writer thread,
/// once the line is durable as `AuditDurability` says. Appends are batched: the writer takes every
/// line waiting, writes them, and syncs once. If the file cannot be written the completion gets
/// the failure, and the caller must fail the request (fail closed). The writer retries on the next
/// batch, reopening the file, so the log recovers once the fault is gone.
public final class AuditLog: @unchecked Sendable {
    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    /// Called once a record is durable (nil) or could not be written (why).
    public typealias Completion = @Sendable (Unavailable?) -> Void

    public let directory: URL
    public let durability: AuditDurability
    private let rotationSize: Int
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var waiting: [(record: AuditRecord, completion: Completion)] = []
    private var writing = false
    private var stopping = false
    /// With `.write` durability: a descriptor (a dup) of the file written since the last sync, for
    /// the syncer thread, and whether it is syncing one now.
    private var unsynced: Int32 = -1
    private var syncing = false
    private var lastBatchFailed = false
    /// With `.write` durability: a sync failed, so lines already answered may not be on disk. It
    /// stays set (the kernel reports a writeback error once per open file, so later syncs through
    /// the same file would pass) until a batch is written to the file opened again and synced there.
    private var syncFailed = false
    // Owned by the writer thread after init.
    private var file: Int32 = -1
    private var lastHash = AuditRecord.genesis
    private var lastSeq: UInt64 = 0
    private var writtenBytes = 0
    private let encoder = AuditRecord.lineEncoder()

    public var currentFile: URL { directory.appendingPathComponent("audit.log") }

    /// Opens the log, continuing the chain from its last complete line.
    public init(directory: URL, rotationSize: Int = 64 << 20, durability: AuditDurability = .fsync) throws {
        self.directory = directory
        self.rotationSize = rotationSize
        self.durability = durability
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try resumeChain()
        try openFile()
        // The thread holds the log until `close` ends its loop.
        let thread = Thread { self.writeLoop() }
        thread.name = "hsmd.audit"
        thread.start()
        if durability == .write {
            let syncer = Thread { self.syncLoop() }
            syncer.name = "hsmd.audit-sync"
            syncer.start()
        }
    }

    /// Queues a record; `completion` says whether it was written durably. After `close` it is
    /// refused at once.
    public func append(_ record: AuditRecord, completion: @escaping Completion) {
        condition.lock()
        guard !stopping else {
            condition.unlock()
            completion(Unavailable(description: "the audit log is closed"))
            return
        }
        waiting.append((record, completion))
        // The syncer and `close` wait on the same condition: a signal could wake one of them instead.
        condition.broadcast()
        condition.unlock()
    }

    /// False after a batch could not be written, until one can: callers refuse work meanwhile.
    public var isHealthy: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !lastBatchFailed && !syncFailed
    }

    /// Nil while the log can take a record; else why not. Checks the last batch and whether the
    /// current file can be opened for appending now, so a fault shows before a request meets it.
    public func writabilityProblem() -> String? {
        condition.lock()
        let (failed, unsynced) = (lastBatchFailed, syncFailed)
        condition.unlock()
        if failed { return "the last audit record could not be written to \(currentFile.path)" }
        if unsynced { return "the audit log \(currentFile.path) could not be synced to disk" }
        let probe = open(currentFile.path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard probe >= 0 else { return "cannot open \(currentFile.path) for writing: \(String(cString: strerror(errno)))" }
        Glibc.close(probe)
        var filesystem = statvfs()
        if statvfs(directory.path, &filesystem) == 0, UInt64(filesystem.f_bavail) * UInt64(filesystem.f_frsize) < Self.minimumFreeBytes {
            return "fewer than \(Self.minimumFreeBytes >> 20) MiB free for the audit log in \(directory.path)"
        }
        return nil
    }

    static let minimumFreeBytes: UInt64 = 1 << 20

    /// Writes what is waiting and stops the writer.
    public func close() {
        condition.lock()
        while !waiting.isEmpty || writing || unsynced >= 0 || syncing { condition.wait() }
        stopping = true
        condition.broadcast()
        condition.unlock()
        if file >= 0 { Glibc.close(file) }
    }

    // MARK: The writer

    private func writeLoop() {
        while true {
            condition.lock()
            while waiting.isEmpty && !stopping { condition.wait() }
            if waiting.isEmpty && stopping {
                condition.unlock()
                return
            }
            let batch = waiting
            waiting.removeAll(keepingCapacity: true)
            writing = true
            let recovering = syncFailed
            condition.unlock()

            if recovering { closeFile() }
            var failure = write(batch.map(\.record), syncing: durability == .fsync || recovering)
            if failure == nil, durability == .write, !recovering { failure = handOverForSync() }

            condition.lock()
            lastBatchFailed = failure != nil
            if recovering, failure == nil { syncFailed = false }
            condition.unlock()
            let unavailable = failure.map(Unavailable.init(description:))
            for entry in batch { entry.completion(unavailable) }

            condition.lock()
            writing = false
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Chains and writes a batch, and syncs it if `syncing` (always with `.fsync`; with `.write`
    /// only while recovering from a failed sync, else `handOverForSync` follows). On failure undoes
    /// any partial write and keeps the chain where it was. Returns the failure's description, or nil.
    private func write(_ records: [AuditRecord], syncing: Bool) -> String? {
        do {
            try reopenIfMoved()
            var hash = lastHash
            var seq = lastSeq
            var bytes = Data()
            for var record in records {
                seq += 1
                record.seq = seq
                record.previous = hash
                let line = record.chainedLine(encoder)
                hash = line.hash
                bytes.append(line.bytes)
                bytes.append(UInt8(ascii: "\n"))
            }
            let start = lseek(file, 0, SEEK_END)
            guard writeFully(bytes), !syncing || fsync(file) == 0 else {
                let reason = String(cString: strerror(errno))
                if start >= 0 { _ = ftruncate(file, start) }
                throw Unavailable(description: "cannot write \(currentFile.path): \(reason)")
            }
            lastHash = hash
            lastSeq = seq
            writtenBytes = Int(start) + bytes.count
        } catch {
            closeFile()
            return "\(error)"
        }
        // The batch is durable whatever happens to the rotation: its requests succeed. A rotation
        // that fails is tried again after the next batch; the log only grows past its size meanwhile.
        if writtenBytes >= rotationSize { try? rotate() }
        return nil
    }

    /// With `.write` durability the lines are answered once in the file, and a thread of its own
    /// syncs them, so the next batch need not wait for this one's fsync. It gets a duplicate
    /// descriptor: the writer may close or rotate the file meanwhile (a rotation syncs the old file
    /// itself), and an fsync through any descriptor of a file syncs all of it.
    /// Returns why the batch cannot be synced, if it cannot: out of descriptors, it is synced here.
    private func handOverForSync() -> String? {
        // A rotation that could not open the next file has synced the lines in the one it closed.
        guard file >= 0 else { return nil }
        let handle = dup(file)
        guard handle >= 0 else {
            return fsync(file) == 0 ? nil : "cannot sync \(currentFile.path): \(String(cString: strerror(errno)))"
        }
        condition.lock()
        if unsynced >= 0 { Glibc.close(unsynced) }
        unsynced = handle
        condition.broadcast()
        condition.unlock()
        return nil
    }

    /// A failed sync cannot unsay the answers given: it marks the log failed (`syncFailed`), so
    /// requests are refused until a batch is synced again.
    private func syncLoop() {
        while true {
            condition.lock()
            while unsynced < 0 && !stopping { condition.wait() }
            if unsynced < 0 && stopping {
                condition.unlock()
                return
            }
            let handle = unsynced
            unsynced = -1
            syncing = true
            condition.unlock()

            let synced = fsync(handle) == 0
            Glibc.close(handle)

            condition.lock()
            if !synced { syncFailed = true }
            syncing = false
            condition.broadcast()
            condition.unlock()
        }
    }

    private func closeFile() {
        if file >= 0 {
            Glibc.close(file)
            file = -1
        }
    }

    /// Writes all of `bytes`. A short write sets no errno; writing on after it does (ENOSPC when
    /// the filesystem is full), so a failure always leaves errno naming its cause.
    private func writeFully(_ bytes: Data) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(file, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += written
            }
            return true
        }
    }

    private func rotate() throws {
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
        let rotated = directory.appendingPathComponent(String(format: "audit-%@-%012llu.log", stamp, lastSeq))
        // Lines answered before their sync (`.write`) are synced with the file they are in.
        guard durability == .fsync || fsync(file) == 0 else {
            let reason = String(cString: strerror(errno))
            condition.lock()
            syncFailed = true
            condition.unlock()
            throw Unavailable(description: "cannot sync \(currentFile.path): \(reason)")
        }
        guard rename(currentFile.path, rotated.path) == 0 else {
            throw Unavailable(description: "cannot rotate \(currentFile.path): \(String(cString: strerror(errno)))")
        }
        closeFile()
        try openFile()
    }

    private func openFile() throws {
        let descriptor = open(currentFile.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw Unavailable(description: "cannot open \(currentFile.path): \(String(cString: strerror(errno)))")
        }
        file = descriptor
        writtenBytes = Int(lseek(descriptor, 0, SEEK_END))
    }

    /// A log file removed or replaced under the daemon (rotation by hand, a fault) is reopened by
    /// path, so lines never go to a file nobody can see.
    private func reopenIfMoved() throws {
        if file >= 0 {
            var opened = stat()
            var named = stat()
            if fstat(file, &opened) == 0, stat(currentFile.path, &named) == 0,
                opened.st_ino == named.st_ino, opened.st_dev == named.st_dev {
                return
            }
            closeFile()
        }
        try openFile()
    }

    /// Finds the last complete line of the log (the newest file may be empty just after a
    /// rotation); a torn last line (a crash mid-write, never acknowledged) is cut off.
    private func resumeChain() throws {
        for file in AuditFiles.ordered(in: directory).reversed() {
            guard let data = FileManager.default.contents(atPath: file.path) else { continue }
            let complete = data.lastIndex(of: UInt8(ascii: "\n")).map { data.prefix(through: $0) } ?? Data()
            if complete.count != data.count {
                let descriptor = open(file.path, O_WRONLY)
                if descriptor >= 0 {
                    _ = ftruncate(descriptor, off_t(complete.count))
                    Glibc.close(descriptor)
                }
            }
            guard let lastLine = complete.split(separator: UInt8(ascii: "\n")).last else { continue }
            guard let record = try? JSONDecoder().decode(AuditRecord.self, from: Data(lastLine)) else {
                throw Unavailable(description: "the last line of \(file.path) is not an audit record; run hsmctl audit verify")
            }
            lastHash = record.hash
            lastSeq = record.seq
            return
        }
    }
}

/// The log's files in chain order: rotated files by name (time, then sequence), then the current one.
public enum AuditFiles {
    public static func ordered(in directory: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        let rotated = names.filter { $0.hasPrefix("audit-") && $0.hasSuffix(".log") }.sorted()
        let current = names.contains("audit.log") ? ["audit.log"] : []
        return (rotated + current).map { directory.appendingPathComponent($0) }
    }
}
