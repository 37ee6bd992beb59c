import Foundation
import HSMClient
import XCTest

/// hsmd's keys as the standard tools see them: pkcs11-tool (OpenSC) on the same token. Tools that log
/// in run while hsmd is stopped (docs/pkcs11.md: SoftHSM2 corrupts a token several processes log in to);
/// listing public objects without a login is safe while it runs.
final class PKCS11InteropTests: XCTestCase {
    private var stateDirectory: URL!
    private var scratch: URL!
    private var daemon: DaemonProcess?
    static let module = "/usr/lib/softhsm/libsofthsm2.so"

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/pkcs11-tool") else {
            throw XCTSkip("pkcs11-tool (Debian's opensc) is not installed")
        }
        stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-p11-\(UUID().uuidString.prefix(8))")
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-p11-work-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        daemon = try DaemonProcess(stateDirectory: stateDirectory)
    }

    override func tearDown() {
        daemon?.stop()
        try? FileManager.default.removeItem(at: stateDirectory)
        try? FileManager.default.removeItem(at: scratch)
    }

    private func restart() throws {
        daemon?.stop()
        daemon = try DaemonProcess(stateDirectory: stateDirectory)
    }

    private func api(_ method: String, _ path: String, _ body: [String: Any]? = nil) throws -> [String: Any] {
        let bytes = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) }
        let response = try daemon!.client.send(.init(rawValue: method), path + (path.contains("?") ? "&" : "?") + "api-version=7.5", body: bytes)
        XCTAssertTrue((200..<300).contains(response.status), "\(method) \(path): \(String(decoding: response.body, as: UTF8.self))")
        return (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
    }

    /// Runs pkcs11-tool on hsmd's token; `login` uses the user PIN from the state directory.
    @discardableResult
    private func pkcs11Tool(_ arguments: [String], login: Bool = false, expectSuccess: Bool = true) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/pkcs11-tool")
        var all = ["--module", Self.module, "--token-label", "hsmd"]
        if login {
            all += ["--login", "--pin", try String(contentsOf: stateDirectory.appendingPathComponent("pins/user.pin"), encoding: .utf8)]
        }
        process.arguments = all + arguments
        process.environment = ["SOFTHSM2_CONF": stateDirectory.appendingPathComponent("softhsm2.conf").path, "PATH": "/usr/bin:/bin"]
        process.currentDirectoryURL = scratch
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if expectSuccess { XCTAssertEqual(process.terminationStatus, 0, "pkcs11-tool \(arguments): \(text)") }
        return text
    }

    private func file(_ name: String) -> String { scratch.appendingPathComponent(name).path }

    func testAnAPIKeyIsATokenObjectThatToolsUseAndVerify() throws {
        let created = try api("POST", "/keys/interop/create", ["kty": "EC-HSM", "crv": "P-256"])
        let version = ((created["key"] as? [String: Any])?["kid"] as? String ?? "").split(separator: "/").last.map(String.init) ?? ""
        let digest = [UInt8](repeating: 0x5a, count: 32)
        try Data(digest).write(to: URL(fileURLWithPath: file("digest.bin")))
        let signed = try api("POST", "/keys/interop/sign", ["alg": "ES256", "value": Data(digest).base64URL])
        try Data([UInt8](base64URL: signed["value"] as! String)).write(to: URL(fileURLWithPath: file("hsmd.sig")))

        // While hsmd serves: a tool lists public objects without logging in, and hsmd goes on signing.
        let publicListing = try pkcs11Tool(["--list-objects"])
        XCTAssertTrue(publicListing.contains("label:      interop"), publicListing)
        for _ in 0..<5 { _ = try api("POST", "/keys/interop/sign", ["alg": "ES256", "value": Data(digest).base64URL]) }

        daemon?.stop()
        let listing = try pkcs11Tool(["--list-objects"], login: true)
        XCTAssertTrue(listing.contains("Private Key Object; EC"), listing)
        XCTAssertTrue(listing.contains("ID:         \(version)"), "the version is the CKA_ID: \(listing)")
        let privateEntry = listing.components(separatedBy: "Private Key Object").dropFirst()
            .map { $0.components(separatedBy: " Object;").first ?? "" }.first { $0.contains(version) } ?? ""
        XCTAssertTrue(privateEntry.contains("sensitive"), privateEntry)
        XCTAssertTrue(privateEntry.contains("Usage:      sign"), "usage flags follow key_ops: \(privateEntry)")

        let verified = try pkcs11Tool(["--verify", "-m", "ECDSA", "--id", version, "--input-file", file("digest.bin"), "--signature-file", file("hsmd.sig")])
        XCTAssertTrue(verified.contains("Signature is valid"), verified)
        try pkcs11Tool(["--sign", "-m", "ECDSA", "--id", version, "--input-file", file("digest.bin"), "--output-file", file("tool.sig")], login: true)

        try restart()
        let toolSignature = try Data(contentsOf: URL(fileURLWithPath: file("tool.sig")))
        let check = try api("POST", "/keys/interop/verify", ["alg": "ES256", "digest": Data(digest).base64URL, "value": toolSignature.base64URL])
        XCTAssertEqual(check["value"] as? Bool, true, "a signature pkcs11-tool made with the same token key verifies through hsmd")
        let uri = try api("GET", "/hsmd/keys/interop/pkcs11")
        XCTAssertTrue(((uri["objects"] as? [[String: Any]])?.first?["uri"] as? String ?? "").hasPrefix("pkcs11:token=hsmd;serial="), "\(uri)")
    }

    func testKeysMadeByToolsAreListedAsUnmanagedAndCanBeAdopted() throws {
        daemon?.stop()
        try pkcs11Tool(["--keypairgen", "--key-type", "EC:prime256v1", "--label", "legacy", "--id", "0a0b0c", "--usage-sign"], login: true)
        try pkcs11Tool(["--keygen", "--key-type", "AES:32", "--label", "loose", "--id", "0d0e0f", "--extractable"], login: true)
        try restart()

        let unmanaged = try api("GET", "/hsmd/unmanaged")["value"] as? [[String: Any]] ?? []
        XCTAssertEqual(Set(unmanaged.compactMap { $0["id"] as? String }), ["0a0b0c", "0d0e0f"], "hsmd's own service keys are not listed")
        let refusal = try daemon!.client.send(.POST, "/hsmd/keys/loose-aes/adopt?api-version=7.5", body: Array(#"{"id":"0d0e0f"}"#.utf8))
        XCTAssertEqual(refusal.status, 400)
        let reason = String(decoding: refusal.body, as: UTF8.self)
        XCTAssertTrue(reason.contains("CKA_EXTRACTABLE=true") || reason.contains("CKA_SENSITIVE=false"), "the refusal says why: \(reason)")

        let adopted = try api("POST", "/hsmd/keys/legacy-signer/adopt", ["id": "0a0b0c"])
        XCTAssertEqual((adopted["key"] as? [String: Any])?["key_ops"] as? [String], ["sign", "verify"], "key_ops come from the usage flags")
        let version = ((adopted["key"] as? [String: Any])?["kid"] as? String ?? "").split(separator: "/").last.map(String.init) ?? ""
        let digest = Data(repeating: 7, count: 32).base64URL
        let signature = try api("POST", "/keys/legacy-signer/sign", ["alg": "ES256", "value": digest])["value"] as! String
        XCTAssertEqual(try api("POST", "/keys/legacy-signer/verify", ["alg": "ES256", "digest": digest, "value": signature])["value"] as? Bool, true)
        _ = try api("POST", "/keys/legacy-signer/rotate")
        XCTAssertEqual((try api("GET", "/keys/legacy-signer/versions")["value"] as? [Any])?.count, 2)
        _ = try api("POST", "/hsmd/keys/loose-aes/adopt", ["id": "0d0e0f", "force": true])
        XCTAssertEqual((try api("GET", "/hsmd/unmanaged")["value"] as? [Any])?.count, 0)

        // An adopted key is hsmd's now, across restarts, until purged.
        try restart()
        XCTAssertEqual(try api("POST", "/keys/legacy-signer/\(version)/verify", ["alg": "ES256", "digest": digest, "value": signature])["value"] as? Bool, true)
        _ = try api("DELETE", "/keys/legacy-signer")
        _ = try api("DELETE", "/deletedkeys/legacy-signer")
        daemon?.stop()
        XCTAssertFalse(try pkcs11Tool(["--list-objects"], login: true).contains("0a0b0c"), "purging destroys the adopted objects")
    }
}

extension Data {
    var base64URL: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}

extension Array where Element == UInt8 {
    init(base64URL text: String) {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        self = Array(Data(base64Encoded: base64) ?? Data())
    }
}
