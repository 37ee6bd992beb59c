import Foundation
import HSMClient
import XCTest

/// `hsmctl key` against a real daemon: every command, in both output modes, and the public keys it
/// downloads checked by OpenSSL against signatures it made.
final class HsmctlKeyTests: HsmctlTestCase {
    private static let openssl = "/usr/bin/openssl"

    func testCreateShowListAndSetAttributesInBothOutputModes() throws {
        let created = try succeed(
            "key", "create", "orders", "--kty", "EC-HSM", "--curve", "P-384", "--ops", "sign", "verify",
            "--tags", "team=billing", "env=prod", "--not-before", "2026-01-01", "--expires", "2030-12-31T12:00:00Z")
        XCTAssertTrue(created.text.contains("type        EC-HSM P-384\n"), created.text)
        XCTAssertTrue(created.text.contains("operations  sign, verify\n"), created.text)
        XCTAssertTrue(created.text.contains("tags        env=prod, team=billing\n"), created.text)
        XCTAssertTrue(created.text.contains("not before  2026-01-01 00:00:00 UTC\n"), created.text)
        XCTAssertTrue(created.text.contains("expires     2030-12-31 12:00:00 UTC\n"), created.text)

        let shown = try succeed("key", "show", "orders", "--output", "json").json
        let key = try XCTUnwrap(shown["key"] as? [String: Any])
        let attributes = try XCTUnwrap(shown["attributes"] as? [String: Any])
        XCTAssertEqual(key["crv"] as? String, "P-384")
        XCTAssertEqual(attributes["nbf"] as? Int, 1_767_225_600)
        XCTAssertEqual(attributes["exp"] as? Int, 1_924_948_800)
        XCTAssertEqual(shown["tags"] as? [String: String], ["team": "billing", "env": "prod"])
        let firstVersion = try XCTUnwrap((key["kid"] as? String)?.split(separator: "/").last.map(String.init))

        try succeed("key", "create", "orders", "--kty", "EC-HSM")
        let versions = try succeed("key", "list-versions", "orders")
        XCTAssertTrue(versions.text.hasPrefix("VERSION                           ENABLED  NOT BEFORE"), versions.text)
        XCTAssertEqual(versions.text.split(separator: "\n").count, 3, "a header and two versions")
        XCTAssertTrue(versions.text.split(separator: "\n")[1].hasPrefix(firstVersion), "oldest first")
        XCTAssertEqual((try succeed("key", "list-versions", "orders", "--output", "json").json["value"] as? [Any])?.count, 2)

        let updated = try succeed("key", "set-attributes", "orders", "--enabled", "false", "--tags", "owner=ops")
        XCTAssertTrue(updated.text.contains("enabled     no\n"), updated.text)
        XCTAssertTrue(updated.text.contains("tags        owner=ops\n"), updated.text)
        let first = try succeed("key", "set-attributes", "orders", "--version", firstVersion, "--tags", "", "--output", "json").json
        XCTAssertNil(first["tags"], "--tags '' removes every tag")
        XCTAssertEqual((first["attributes"] as? [String: Any])?["enabled"] as? Bool, true, "the other version is untouched")
        let older = try succeed("key", "show", "orders", "--version", firstVersion)
        XCTAssertTrue(older.text.contains("version     \(firstVersion)\n"), older.text)

        let list = try succeed("key", "list")
        XCTAssertTrue(list.text.hasPrefix("NAME"), list.text)
        let row = try XCTUnwrap(list.text.split(separator: "\n").first { $0.hasPrefix("orders ") })
        XCTAssertTrue(row.contains(" no ") && row.hasSuffix("owner=ops"), String(row))
    }

    func testListFollowsEveryPage() throws {
        let client = HSMClient(socketPath: socket)
        for index in 0..<27 {
            let response = try client.send(.POST, "/keys/page-\(index)/create?api-version=7.6", body: Array(#"{"kty":"oct-HSM"}"#.utf8))
            XCTAssertEqual(response.status, 200)
        }
        let names = try (succeed("key", "list", "--output", "json").json["value"] as? [[String: Any]] ?? [])
            .compactMap { ($0["kid"] as? String)?.split(separator: "/").last }.filter { $0.hasPrefix("page-") }
        XCTAssertEqual(names.count, 27, "hsmd pages by 25: hsmctl follows nextLink")
        XCTAssertEqual(try succeed("key", "list").text.split(separator: "\n").filter { $0.hasPrefix("page-") }.count, 27)
    }

    func testECSignaturesVerifyWithOpenSSLAgainstTheDownloadedPublicKey() throws {
        try Data("the message hsmctl signs\n".utf8).write(to: scratch.appendingPathComponent("message.txt"))
        for (curve, alg, hash) in [("P-256", "ES256", "-sha256"), ("P-256K", "ES256K", "-sha256"), ("P-521", "ES512", "-sha512")] {
            let name = "ec-\(alg.lowercased())"
            try succeed("key", "create", name, "--kty", "EC-HSM", "--curve", curve)
            let downloaded = try succeed("key", "download", name, "--encoding", "PEM", "--file", "public.pem")
            XCTAssertTrue(downloaded.text.hasPrefix("wrote \(name)'s public key to public.pem (PEM"), downloaded.text)
            let signed = try succeed("key", "sign", name, "--alg", alg, "--file", "message.txt", "--signature-format", "der", "--out-file", "signature.der")
            XCTAssertTrue(signed.text.contains("-byte signature written to signature.der"), signed.text)
            let verified = try tool(Self.openssl, "dgst", hash, "-verify", "public.pem", "-signature", "signature.der", "message.txt")
            XCTAssertEqual(verified.status, 0, "\(alg): \(verified.output)")
            XCTAssertEqual(verified.output, "Verified OK\n")

            try succeed("key", "sign", name, "--alg", alg, "--file", "message.txt", "--out-file", "signature.raw")
            try succeed("key", "verify", name, "--alg", alg, "--file", "message.txt", "--signature-file", "signature.raw")
            try succeed("key", "verify", name, "--alg", alg, "--file", "message.txt", "--signature-file", "signature.der", "--signature-format", "der")
        }

        try succeed("key", "download", "ec-es256", "--encoding", "DER", "--file", "public.der")
        let pemFromDER = try tool(Self.openssl, "pkey", "-pubin", "-inform", "DER", "-in", "public.der", "-outform", "PEM")
        try succeed("key", "download", "ec-es256", "--file", "public.pem")
        XCTAssertEqual(pemFromDER.output, try String(contentsOf: scratch.appendingPathComponent("public.pem"), encoding: .utf8))
        let stdoutPEM = try succeed("key", "download", "ec-es256")
        XCTAssertEqual(stdoutPEM.text, pemFromDER.output, "without --file the PEM goes to stdout")
        let json = try succeed("key", "download", "ec-es256", "--output", "json").json
        XCTAssertEqual((json["key"] as? [String: Any])?["crv"] as? String, "P-256", "--output json: the API's key bundle")
    }

    func testSignAndVerifyDigestsGivenAsHexOrBase64InBothOutputModes() throws {
        try succeed("key", "create", "digests", "--kty", "EC-HSM")
        let digestHex = String(repeating: "ab", count: 32)
        let digestBase64 = Data(repeating: 0xab, count: 32).base64EncodedString()
        let table = try succeed("key", "sign", "digests", "--alg", "ES256", "--digest", digestHex)
        XCTAssertTrue(table.text.contains("algorithm  ES256\n"), table.text)
        let signature = try XCTUnwrap(table.text.split(separator: "\n").first { $0.hasPrefix("signature") }?.split(separator: " ").last)
        let valid = try succeed("key", "verify", "digests", "--alg", "ES256", "--digest", digestBase64, "--signature", String(signature))
        XCTAssertEqual(valid.text, "valid: the signature matches\n")

        let json = try succeed("key", "sign", "digests", "--alg", "ES256", "--digest", digestBase64, "--output", "json").json
        XCTAssertTrue((json["kid"] as? String)?.contains("/keys/digests/") == true, "\(json)")
        let verified = try succeed(
            "key", "verify", "digests", "--alg", "ES256", "--digest", digestHex, "--signature", json["value"] as? String ?? "", "--output", "json")
        XCTAssertEqual(try verified.json["value"] as? Bool, true)

        let forged = try hsmctl("key", "verify", "digests", "--alg", "ES256", "--digest", String(repeating: "cd", count: 32), "--signature", String(signature))
        XCTAssertEqual(forged.status, 6, "a signature that does not match")
        XCTAssertEqual(forged.text, "INVALID: the signature does not match\n")
    }

    func testHMACSignsTheFileItself() throws {
        try succeed("key", "create", "mac", "--kty", "oct-HSM", "--size", "256", "--ops", "sign", "verify")
        try Data("webhook body".utf8).write(to: scratch.appendingPathComponent("body.json"))
        try succeed("key", "sign", "mac", "--alg", "HS256", "--file", "body.json", "--out-file", "body.mac")
        XCTAssertEqual(try Data(contentsOf: scratch.appendingPathComponent("body.mac")).count, 32)
        try succeed("key", "verify", "mac", "--alg", "HS256", "--file", "body.json", "--signature-file", "body.mac")
        let hex = Data("webhook body".utf8).map { String(format: "%02x", $0) }.joined()
        try succeed("key", "verify", "mac", "--alg", "HS256", "--digest", hex, "--signature-file", "body.mac")
    }

    /// The one RSA-4096 key of these tests: slow enough to show the progress line on a terminal.
    func testAnRSA4096KeyShowsProgressOnATerminalAndWorksWithOpenSSL() throws {
        let terminal = try tool(
            "/usr/bin/script", "-qec", "HSMD_SOCKET=\(socket) \(DaemonProcess.hsmctl.path) key create big --kty RSA-HSM --size 4096", "/dev/null")
        XCTAssertEqual(terminal.status, 0, terminal.output)
        XCTAssertTrue(terminal.output.contains("creating RSA-HSM 4096 key big… "), "a progress line while it runs: \(terminal.output.prefix(300))")
        XCTAssertTrue(terminal.output.contains("\r\u{1B}[K"), "the progress line is erased")
        XCTAssertTrue(terminal.output.contains("type        RSA-HSM 4096"), terminal.output)
        let piped = try succeed("key", "sign", "big", "--alg", "PS256", "--digest", String(repeating: "00", count: 32))
        XCTAssertFalse(piped.errors.contains("signing"), "no progress line when stderr is not a terminal")

        try Data("contract text".utf8).write(to: scratch.appendingPathComponent("contract.txt"))
        try succeed("key", "download", "big", "--encoding", "DER", "--file", "big.der")
        XCTAssertTrue(try tool(Self.openssl, "pkey", "-pubin", "-inform", "DER", "-in", "big.der", "-noout", "-text").output.contains("4096 bit"))
        try succeed("key", "sign", "big", "--alg", "PS256", "--file", "contract.txt", "--out-file", "contract.sig")
        let pss = try tool(
            Self.openssl, "dgst", "-sha256", "-keyform", "DER", "-verify", "big.der", "-sigopt", "rsa_padding_mode:pss",
            "-sigopt", "rsa_pss_saltlen:digest", "-signature", "contract.sig", "contract.txt")
        XCTAssertEqual(pss.output, "Verified OK\n")
        try succeed("key", "sign", "big", "--alg", "RS512", "--file", "contract.txt", "--out-file", "contract.rs512")
        XCTAssertEqual(try tool(Self.openssl, "dgst", "-sha512", "-keyform", "DER", "-verify", "big.der", "-signature", "contract.rs512", "contract.txt").output,
                       "Verified OK\n")

        let encrypted = try tool(
            Self.openssl, "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", "big.der", "-in", "contract.txt", "-out", "contract.enc",
            "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256")
        XCTAssertEqual(encrypted.status, 0, encrypted.output)
        let decrypted = try succeed("key", "decrypt", "big", "--alg", "RSA-OAEP-256", "--file", "contract.enc")
        XCTAssertEqual(decrypted.text, "contract text")
    }

    func testEncryptAndDecryptAreBinarySafeThroughFilesPipesAndValues() throws {
        try succeed("key", "create", "data", "--kty", "oct-HSM", "--size", "256")
        let plaintext = (0..<600).map { UInt8($0 % 256) }
        try Data(plaintext).write(to: scratch.appendingPathComponent("plain.bin"))

        let sealed = try succeed("key", "encrypt", "data", "--alg", "A256GCM", "--aad", "record-42", input: plaintext)
        XCTAssertEqual(sealed.output.count, 12 + plaintext.count + 16, "nonce ‖ ciphertext ‖ tag on stdout")
        let opened = try succeed("key", "decrypt", "data", "--alg", "A256GCM", "--aad", "record-42", input: Array(sealed.output))
        XCTAssertEqual(Array(opened.output), plaintext)
        let wrongAAD = try hsmctl("key", "decrypt", "data", "--alg", "A256GCM", "--aad", "record-43", input: Array(sealed.output))
        XCTAssertEqual(wrongAAD.status, 2)
        XCTAssertTrue(wrongAAD.errors.hasPrefix("hsmctl: BadParameter: decryption failed"), wrongAAD.errors)
        XCTAssertTrue(wrongAAD.output.isEmpty)

        let summary = try succeed("key", "encrypt", "data", "--alg", "A256CBCPAD", "--file", "plain.bin", "--out-file", "plain.cbc")
        XCTAssertTrue(summary.text.hasPrefix("encrypted with https://localhost/keys/data/"), summary.text)
        XCTAssertTrue(summary.text.hasSuffix(" into plain.cbc (624 bytes)\n"), "IV ‖ ciphertext: \(summary.text)")
        try succeed("key", "decrypt", "data", "--alg", "A256CBCPAD", "--file", "plain.cbc", "--out-file", "plain.out")
        XCTAssertEqual(try Data(contentsOf: scratch.appendingPathComponent("plain.out")), Data(plaintext))

        let block = Array(plaintext.prefix(32))
        let iv = String(repeating: "0f", count: 16)
        let cbc = try succeed("key", "encrypt", "data", "--alg", "A256CBC", "--iv", iv, "--value", Data(block).base64EncodedString())
        XCTAssertEqual(Array(cbc.output.prefix(16)), [UInt8](repeating: 0x0f, count: 16), "the IV given")
        let bare = Data(cbc.output.dropFirst(16)).base64EncodedString()
        XCTAssertEqual(Array(try succeed("key", "decrypt", "data", "--alg", "A256CBC", "--iv", iv, "--value", bare).output), block)

        let json = try succeed("key", "encrypt", "data", "--alg", "A256GCM", "--value", "aGVsbG8", "--output", "json").json
        XCTAssertNotNil(json["iv"] as? String)
        XCTAssertNotNil(json["tag"] as? String)
        let fromJSON = try succeed(
            "key", "decrypt", "data", "--alg", "A256GCM", "--value", json["value"] as? String ?? "", "--iv", json["iv"] as? String ?? "",
            "--tag", json["tag"] as? String ?? "", "--output", "json").json
        XCTAssertEqual(fromJSON["value"] as? String, "aGVsbG8", "the API's JSON: base64url of hello")

        let dashed = try succeed("key", "encrypt", "data", "--alg", "A256GCM", "--value", "-_8", "--output", "json").json
        let dashedBack = try succeed(
            "key", "decrypt", "data", "--alg", "A256GCM", "--value", dashed["value"] as? String ?? "", "--iv", dashed["iv"] as? String ?? "",
            "--tag", dashed["tag"] as? String ?? "")
        XCTAssertEqual(Array(dashedBack.output), [0xfb, 0xff], "a base64url value may start with -")

        let oldVersion = try XCTUnwrap((json["kid"] as? String)?.split(separator: "/").last.map(String.init))
        try succeed("key", "encrypt", "data", "--alg", "A256GCM", "--file", "plain.bin", "--out-file", "old.gcm")
        try succeed("key", "rotate", "data")
        XCTAssertEqual(try hsmctl("key", "decrypt", "data", "--alg", "A256GCM", "--file", "old.gcm").status, 2, "the latest version cannot")
        try succeed("key", "decrypt", "data", "--version", oldVersion, "--alg", "A256GCM", "--file", "old.gcm", "--out-file", "old.out")
        XCTAssertEqual(try Data(contentsOf: scratch.appendingPathComponent("old.out")), Data(plaintext))
    }

    func testWrapAndUnwrapKeyBytes() throws {
        try succeed("key", "create", "kek", "--kty", "oct-HSM", "--size", "256", "--ops", "wrapKey", "unwrapKey")
        let dataKey = (0..<32).map { UInt8(255 - $0) }
        try Data(dataKey).write(to: scratch.appendingPathComponent("data.key"))
        let wrapped = try succeed("key", "wrap", "kek", "--alg", "A256KW", "--file", "data.key", "--out-file", "data.key.wrapped")
        XCTAssertTrue(wrapped.text.hasSuffix(" into data.key.wrapped (40 bytes)\n"), wrapped.text)
        let unwrapped = try succeed("key", "unwrap", "kek", "--alg", "A256KW", "--file", "data.key.wrapped")
        XCTAssertEqual(Array(unwrapped.output), dataKey)

        let padded = try succeed("key", "wrap", "kek", "--alg", "CKM_AES_KEY_WRAP_PAD", "--output", "json", input: dataKey).json
        let back = try succeed("key", "unwrap", "kek", "--alg", "CKM_AES_KEY_WRAP_PAD", "--value", padded["value"] as? String ?? "", "--out-file", "back.key")
        XCTAssertTrue(back.text.hasPrefix("unwrapped with https://localhost/keys/kek/"), back.text)
        XCTAssertEqual(Array(try Data(contentsOf: scratch.appendingPathComponent("back.key"))), dataKey)
    }

    func testBackupDeleteRecoverPurgeAndRestore() throws {
        try succeed("key", "create", "ledger", "--kty", "EC-HSM", "--tags", "books=2026")
        try succeed("key", "rotate", "ledger")
        let backup = try succeed("key", "backup", "ledger", "--file", "ledger.backup")
        XCTAssertTrue(backup.text.hasPrefix("backed up ledger to ledger.backup ("), backup.text)
        XCTAssertNotNil(try succeed("key", "backup", "ledger", "--file", "again.backup", "--output", "json").json["value"] as? String)

        let deleted = try succeed("key", "delete", "ledger")
        XCTAssertTrue(deleted.text.hasPrefix("deleted ledger; recoverable until "), deleted.text)
        XCTAssertTrue(deleted.text.hasSuffix("with: hsmctl key recover ledger\n"), deleted.text)
        XCTAssertEqual(try hsmctl("key", "show", "ledger").status, 5)
        let deletedList = try succeed("key", "list-deleted")
        XCTAssertTrue(deletedList.text.hasPrefix("NAME    DELETED"), deletedList.text)
        XCTAssertTrue(deletedList.text.contains("\nledger  "), deletedList.text)
        XCTAssertEqual((try succeed("key", "list-deleted", "--output", "json").json["value"] as? [Any])?.count, 1)
        let shownDeleted = try succeed("key", "show-deleted", "ledger")
        XCTAssertTrue(shownDeleted.text.contains("\npurge date  "), shownDeleted.text)
        XCTAssertNotNil(try succeed("key", "show-deleted", "ledger", "--output", "json").json["recoveryId"] as? String)

        let recovered = try succeed("key", "recover", "ledger")
        XCTAssertTrue(recovered.text.contains("tags        books=2026\n"), recovered.text)
        XCTAssertNotNil(try succeed("key", "delete", "ledger", "--output", "json").json["scheduledPurgeDate"])
        let purged = try succeed("key", "purge", "ledger")
        XCTAssertEqual(purged.text, "purged ledger\n")
        XCTAssertEqual(try hsmctl("key", "show-deleted", "ledger").status, 5)

        let restored = try succeed("key", "restore", "--file", "ledger.backup")
        XCTAssertTrue(restored.text.hasPrefix("name        ledger\n"), restored.text)
        XCTAssertEqual((try succeed("key", "list-versions", "ledger", "--output", "json").json["value"] as? [Any])?.count, 2, "every version")
        let taken = try hsmctl("key", "restore", "--file", "ledger.backup")
        XCTAssertEqual(taken.status, 2, "the name is in use: 409")
        XCTAssertTrue(taken.errors.hasPrefix("hsmctl: Conflict"), taken.errors)

        try succeed("key", "delete", "ledger")
        XCTAssertTrue(try succeed("key", "purge", "ledger", "--output", "json").output.isEmpty, "purge answers 204: no JSON to print")
    }

    func testRotateAndRotationPolicies() throws {
        try succeed("key", "create", "rotating", "--kty", "EC-HSM")
        let none = try succeed("key", "rotation-policy", "show", "rotating")
        XCTAssertTrue(none.text.hasPrefix("lifetime actions  none\nexpiry time       -\n"), none.text)

        let set = try succeed("key", "rotation-policy", "set", "rotating", "--rotate-after-create", "P90D", "--expiry-time", "P1Y")
        XCTAssertTrue(set.text.hasPrefix("lifetime actions  Rotate P90D after creation\nexpiry time       P1Y\n"), set.text)
        let json = try succeed("key", "rotation-policy", "show", "rotating", "--output", "json").json
        XCTAssertEqual((json["attributes"] as? [String: Any])?["expiryTime"] as? String, "P1Y")
        XCTAssertEqual((json["lifetimeActions"] as? [Any])?.count, 1)

        let rotated = try succeed("key", "rotate", "rotating", "--output", "json").json
        let expires = try XCTUnwrap((rotated["attributes"] as? [String: Any])?["exp"] as? Int)
        XCTAssertEqual(Double(expires), Date().timeIntervalSince1970 + 365 * 86400, accuracy: 120, "the policy's expiry time")
        XCTAssertTrue(try succeed("key", "rotate", "rotating").text.contains("expires     "))

        let policy = #"{"lifetimeActions":[{"trigger":{"timeBeforeExpiry":"P30D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P180D"}}"#
        try Data(policy.utf8).write(to: scratch.appendingPathComponent("policy.json"))
        let fromFile = try succeed("key", "rotation-policy", "set", "rotating", "--file", "policy.json")
        XCTAssertTrue(fromFile.text.hasPrefix("lifetime actions  Rotate P30D before expiry\nexpiry time       P180D\n"), fromFile.text)
        let cleared = try succeed("key", "rotation-policy", "set", "rotating", "--clear", "--output", "json").json
        XCTAssertEqual((cleared["lifetimeActions"] as? [Any])?.count, 0)

        let tooShort = try hsmctl("key", "rotation-policy", "set", "rotating", "--rotate-after-create", "P1D")
        XCTAssertEqual(tooShort.status, 2, "hsmd refuses rotations more often than every 28 days")
        XCTAssertEqual(try hsmctl("key", "rotation-policy", "set", "rotating").status, 64, "nothing to set")
        XCTAssertEqual(try hsmctl("key", "rotation-policy", "set", "rotating", "--clear", "--expiry-time", "P1Y").status, 64)
    }

    func testRandomBytes() throws {
        let hex = try succeed("random", "--count", "16")
        XCTAssertNotNil(hex.text.range(of: "^[0-9a-f]{32}\n$", options: .regularExpression), hex.text)
        let json = try succeed("random", "--count", "24", "--output", "json").json
        XCTAssertEqual((json["value"] as? String)?.count, 32, "24 bytes in base64url")
        let file = try succeed("random", "--count", "128", "--out-file", "seed.bin")
        XCTAssertEqual(file.text, "wrote 128 random bytes to seed.bin\n")
        XCTAssertEqual(try Data(contentsOf: scratch.appendingPathComponent("seed.bin")).count, 128)
        XCTAssertEqual(try hsmctl("random", "--count", "129").status, 64)
    }
}
