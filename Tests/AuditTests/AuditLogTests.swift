import Foundation
import XCTest

@testable import Audit

final class AuditLogTests: XCTestCase {
    private var directory: URL!

    override func setUp() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString)")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: directory)
    }

    private func record(_ index: Int, key: String = "k") -> AuditRecord {
        AuditRecord(
            time: "2026-11-29T00:00:00.000Z", requestID: "req-\(index)", principal: .init(name: "uid:1000", uid: 1000, gid: 1000, pid: 42),
            method: "POST", path: "/keys/\(key)/sign", operation: "keys.sign", action: "Microsoft.KeyVault/managedHsm/keys/sign/action",
            key: key, version: nil, status: 200, latencyMicroseconds: 10)
    }

    private func lines(_ file: URL) throws -> [String] {
        try String(contentsOf: file, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    private func write(_ lines: [String], to file: URL) throws {
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: file)
    }

    func testConcurrentAppendsFormOneChainThatVerifies() throws {
        let log = try AuditLog(directory: directory)
        let records = (0..<200).map { record($0) }
        let failures = FailureCount()
        DispatchQueue.concurrentPerform(iterations: records.count) { index in
            do { try log.appendWaiting(records[index]) } catch { failures.add() }
        }
        log.close()
        XCTAssertEqual(failures.value, 0)
        let report = AuditVerifier.verify(directory: directory)
        XCTAssertNil(report.firstBreak?.reason)
        XCTAssertEqual(report.lines, 200)
        XCTAssertEqual(try lines(log.currentFile).count, 200)
    }

    func testEditingDeletingOrReorderingALineIsFoundWithItsPosition() throws {
        let log = try AuditLog(directory: directory)
        for index in 0..<10 { try log.appendWaiting(record(index)) }
        log.close()
        let file = directory.appendingPathComponent("audit.log")
        let original = try lines(file)

        var edited = original
        edited[4] = edited[4].replacingOccurrences(of: "\"status\":200", with: "\"status\":403")
        try write(edited, to: file)
        XCTAssertEqual(AuditVerifier.verify(directory: directory).firstBreak?.line, 5)
        XCTAssertTrue(AuditVerifier.verify(directory: directory).firstBreak?.reason.contains("edited") ?? false)

        var deleted = original
        deleted.remove(at: 6)
        try write(deleted, to: file)
        XCTAssertEqual(AuditVerifier.verify(directory: directory).firstBreak?.line, 7)

        var reordered = original
        reordered.swapAt(2, 3)
        try write(reordered, to: file)
        XCTAssertEqual(AuditVerifier.verify(directory: directory).firstBreak?.line, 3)

        try write(Array(original.dropFirst()), to: file)
        XCTAssertEqual(AuditVerifier.verify(directory: directory).firstBreak?.line, 1, "removing the first line is found too")

        try write(original, to: file)
        XCTAssertNil(AuditVerifier.verify(directory: directory).firstBreak?.reason)
    }

    func testRotationAndRestartsKeepTheChain() throws {
        var log = try AuditLog(directory: directory, rotationSize: 2000)
        for index in 0..<20 { try log.appendWaiting(record(index)) }
        log.close()
        log = try AuditLog(directory: directory, rotationSize: 2000)
        for index in 20..<30 { try log.appendWaiting(record(index)) }
        log.close()
        let files = AuditFiles.ordered(in: directory)
        XCTAssertGreaterThan(files.count, 2, "the log rotated")
        let report = AuditVerifier.verify(directory: directory)
        XCTAssertNil(report.firstBreak?.reason)
        XCTAssertEqual(report.lines, 30)

        try FileManager.default.removeItem(at: files[1])
        XCTAssertEqual(AuditVerifier.verify(directory: directory).firstBreak?.file, files[2].lastPathComponent,
                       "a missing rotated file breaks the chain where the next one starts")
    }

    func testATornLastLineIsCutAtRestart() throws {
        var log = try AuditLog(directory: directory)
        for index in 0..<3 { try log.appendWaiting(record(index)) }
        log.close()
        let handle = try FileHandle(forWritingTo: directory.appendingPathComponent("audit.log"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"seq\":4,\"tim".utf8))
        try handle.close()
        log = try AuditLog(directory: directory)
        try log.appendWaiting(record(3))
        log.close()
        let report = AuditVerifier.verify(directory: directory)
        XCTAssertNil(report.firstBreak?.reason)
        XCTAssertEqual(report.lines, 4)
    }

    func testAnUnwritableLogFailsAppendsAndRecovers() throws {
        let log = try AuditLog(directory: directory)
        try log.appendWaiting(record(0))
        // Replace the directory by a file: the log can neither be reopened nor written (even as root).
        let moved = directory.appendingPathExtension("moved")
        try FileManager.default.moveItem(at: directory, to: moved)
        try Data().write(to: directory)
        XCTAssertThrowsError(try log.appendWaiting(record(1))) { error in
            XCTAssertTrue("\(error)".contains("cannot open"), "\(error)")
        }
        XCTAssertFalse(log.isHealthy)
        try FileManager.default.removeItem(at: directory)
        try FileManager.default.moveItem(at: moved, to: directory)
        try log.appendWaiting(record(2))
        XCTAssertTrue(log.isHealthy)
        log.close()
        let report = AuditVerifier.verify(directory: directory)
        XCTAssertNil(report.firstBreak?.reason)
        XCTAssertEqual(report.lines, 2, "the failed line was never written; the chain goes on from the last good one")
    }

    func testWriteDurabilityAnswersWithTheLineInTheFileAndKeepsTheChainAcrossRotations() throws {
        let log = try AuditLog(directory: directory, rotationSize: 2000, durability: .write)
        for index in 0..<30 {
            try log.appendWaiting(record(index))
            let newest = try AuditFiles.ordered(in: directory).reversed().lazy.map(lines).first { !$0.isEmpty }
            XCTAssertTrue(newest?.last?.contains("\"req-\(index)\"") ?? false, "line \(index) is in the file when its append completes")
        }
        log.close()
        XCTAssertGreaterThan(AuditFiles.ordered(in: directory).count, 2, "the log rotated")
        let report = AuditVerifier.verify(directory: directory)
        XCTAssertNil(report.firstBreak?.reason)
        XCTAssertEqual(report.lines, 30)
    }

    func testAnAppendAfterCloseIsRefused() throws {
        let log = try AuditLog(directory: directory)
        log.close()
        XCTAssertThrowsError(try log.appendWaiting(record(0))) { error in
            XCTAssertTrue("\(error)".contains("closed"), "\(error)")
        }
    }

    func testTheWrittenLineIsTheCanonicalRecordWithItsHash() throws {
        var chained = record(7)
        chained.seq = 8
        chained.previous = String(repeating: "ab", count: 32)
        let line = chained.chainedLine(AuditRecord.lineEncoder())
        let decoded = try JSONDecoder().decode(AuditRecord.self, from: line.bytes)
        XCTAssertEqual(decoded.hash, line.hash)
        XCTAssertEqual(decoded.computedHash(), line.hash, "the hash covers the record as the verifier encodes it")
        chained.hash = line.hash
        XCTAssertEqual(decoded, chained)
        XCTAssertEqual(line.bytes, AuditRecord.line(chained), "the line is the one a full encoding gives")
    }

    func testRecordsCarryNoPayloadFields() throws {
        let encoded = String(decoding: AuditRecord.line(record(1)), as: UTF8.self)
        for field in ["value", "digest", "plaintext", "ciphertext", "signature", "\"k\""] {
            XCTAssertFalse(encoded.contains("\"\(field)\":"), field)
        }
    }
}

final class FailureCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
