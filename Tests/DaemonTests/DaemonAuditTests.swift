import Foundation
import HSMClient
import XCTest

/// The audit log as an operator meets it: one line per request, verifiable with hsmctl, free of
/// payloads, and failing closed.
final class DaemonAuditTests: XCTestCase {
    private var stateDirectory: URL!
    private var daemon: DaemonProcess!
    private var auditDirectory: URL { stateDirectory.appendingPathComponent("audit") }

    override func setUpWithError() throws {
        stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-audit-\(UUID().uuidString.prefix(8))")
        daemon = try DaemonProcess(stateDirectory: stateDirectory)
    }

    override func tearDown() {
        daemon?.stop()
        try? FileManager.default.removeItem(at: stateDirectory)
    }

    @discardableResult
    private func call(_ method: String, _ path: String, _ body: [String: Any]? = nil) throws -> HSMResponse {
        let bytes = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) }
        return try daemon.client.send(.init(rawValue: method), path + (path.contains("?") ? "&" : "?") + "api-version=7.6", body: bytes)
    }

    private func auditLines() throws -> [String] {
        try String(contentsOf: auditDirectory.appendingPathComponent("audit.log"), encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func testEveryRequestIsAuditedWithoutPayloadsAndTheChainVerifies() throws {
        let digest = String(repeating: "Q", count: 43)
        let plaintext = "c2VjcmV0LXBsYWludGV4dC10aGF0LW11c3Qtbm90LWxlYWs"
        let aesKey = "bXlfc2VjcmV0X2FlczI1Nl9rZXlfbWF0ZXJpYWxfISE"
        XCTAssertEqual(try call("POST", "/keys/signer/create", ["kty": "EC-HSM"]).status, 200)
        XCTAssertEqual(try call("POST", "/keys/signer/sign", ["alg": "ES256", "value": digest]).status, 200)
        XCTAssertEqual(try call("PUT", "/keys/sealer", ["key": ["kty": "oct-HSM", "k": aesKey]]).status, 200)
        let sealed = try call("POST", "/keys/sealer/encrypt", ["alg": "A256GCM", "value": plaintext])
        XCTAssertEqual(sealed.status, 200)
        let ciphertext = (try JSONSerialization.jsonObject(with: Data(sealed.body)) as? [String: Any])?["value"] as? String ?? ""
        XCTAssertEqual(try call("GET", "/keys/none").status, 404)
        XCTAssertEqual(try daemon.client.send(.GET, "/health").status, 200)

        let lines = try auditLines()
        XCTAssertEqual(lines.count, 7, "one line per request, health and failures included")
        for secret in [digest, plaintext, aesKey, ciphertext] {
            XCTAssertFalse(lines.contains { $0.contains(secret) }, "a payload reached the audit log")
        }
        let sign = try XCTUnwrap(lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .first { $0["operation"] as? String == "keys.sign" })
        XCTAssertEqual(sign["action"] as? String, "Microsoft.KeyVault/managedHsm/keys/sign/action")
        XCTAssertEqual(sign["key"] as? String, "signer")
        XCTAssertEqual((sign["principal"] as? [String: Any])?["uid"] as? Int, Int(getuid()))

        let verified = try runHSMCtl(["audit", "verify", "--dir", auditDirectory.path])
        XCTAssertEqual(verified.status, 0, verified.stdout)
        XCTAssertTrue(verified.stdout.hasPrefix("ok: 7 lines"), verified.stdout)
        let tail = try runHSMCtl(["audit", "tail", "--dir", auditDirectory.path, "-n", "2"])
        XCTAssertEqual(tail.stdout.split(separator: "\n").count, 3, tail.stdout)
    }

    func testAnEditedLineIsFoundByHsmctlWithItsPosition() throws {
        for index in 0..<5 { XCTAssertEqual(try call("POST", "/keys/k\(index)/create", ["kty": "EC-HSM"]).status, 200) }
        XCTAssertEqual(daemon.stop(), 0)
        var lines = try auditLines()
        lines[2] = lines[2].replacingOccurrences(of: "\"status\":200", with: "\"status\":500")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: auditDirectory.appendingPathComponent("audit.log"))
        let result = try runHSMCtl(["audit", "verify", "--dir", auditDirectory.path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stdout.hasPrefix("BROKEN at audit.log line 3"), result.stdout)
    }

    func testAnUnwritableAuditLogFailsRequestsClosedAndTheDaemonRecovers() throws {
        XCTAssertEqual(try call("POST", "/keys/before/create", ["kty": "EC-HSM"]).status, 200)
        let moved = stateDirectory.appendingPathComponent("audit.moved")
        try FileManager.default.moveItem(at: auditDirectory, to: moved)
        try Data().write(to: auditDirectory)

        let refused = try call("POST", "/keys/during/create", ["kty": "EC-HSM"])
        XCTAssertEqual(refused.status, 500)
        XCTAssertTrue(String(decoding: refused.body, as: UTF8.self).contains("AuditLogUnavailable"))
        let next = try call("GET", "/keys/before")
        XCTAssertEqual(next.status, 503, "while the log cannot be written, requests are refused before they run")
        XCTAssertTrue(daemon.logLines.contains { $0["level"] as? String == "critical" && ($0["msg"] as? String ?? "").contains("audit log write failed") },
                      daemon.log)

        try FileManager.default.removeItem(at: auditDirectory)
        try FileManager.default.moveItem(at: moved, to: auditDirectory)
        _ = try call("GET", "/keys/before")
        XCTAssertEqual(try call("GET", "/keys/before").status, 200, "the daemon recovers once the log is writable")
        let verified = try runHSMCtl(["audit", "verify", "--dir", auditDirectory.path])
        XCTAssertEqual(verified.status, 0, verified.stdout)
    }
}
