import Foundation
import Logging
import PKCS11
import XCTest

@testable import Vault

final class ProvisioningTests: XCTestCase {
    private var directories: [URL] = []

    override func tearDown() {
        for directory in directories { try? FileManager.default.removeItem(at: directory) }
    }

    private func newDirectory() -> URL {
        let directory = TokenFixture.temporaryDirectory()
        directories.append(directory)
        return directory
    }

    private func open(_ directory: URL, _ options: TokenProvisioner.Options = .init()) throws -> (VaultToken, StateLock) {
        try TokenProvisioner(directory: StateDirectory(path: directory.path), options: options, logger: Logger(label: "test")).open()
    }

    private func mode(_ url: URL) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as! Int
    }

    func testFirstStartProvisionsAndRestartReusesTheTokenAndItsKeys() throws {
        let directory = newDirectory()
        let state = StateDirectory(path: directory.path)
        var fixture = try TokenFixture(directory: directory)
        let serial = fixture.token.tokenInfo.serialNumber
        XCTAssertEqual(try mode(state.userPINFile), 0o600)
        XCTAssertEqual(try mode(state.soPINFile), 0o600)
        XCTAssertEqual(try mode(directory), 0o700)
        XCTAssertFalse(FileManager.default.fileExists(atPath: state.provisioningMarker.path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: state.manifest.path))
        let id = try fixture.newID("survivor")
        try fixture.token.generate(id, spec: .ec(.p384), usage: [.sign, .verify])
        let aes = try fixture.newID("aes")
        try fixture.token.generate(aes, spec: .oct(bits: 128), usage: [.encrypt, .decrypt])
        let sealed = try fixture.token.encrypt(aes, algorithm: .a128GCM, plaintext: [1, 2, 3])
        let publicKey = try fixture.token.key(id).publicKey
        fixture.close(removingDirectory: false)

        fixture = try TokenFixture(directory: directory)
        defer { fixture.close(removingDirectory: false) }
        XCTAssertEqual(fixture.token.tokenInfo.serialNumber, serial, "the same token, not a new one")
        XCTAssertEqual(try fixture.token.key(id).publicKey, publicKey)
        let digest = [UInt8].random(48)
        let signature = try fixture.token.sign(id, algorithm: .es384, digest: digest)
        XCTAssertTrue(try fixture.token.verify(id, algorithm: .es384, digest: digest, signature: signature))
        XCTAssertEqual(try fixture.token.decrypt(aes, algorithm: .a128GCM, ciphertext: sealed.value, iv: sealed.iv, tag: sealed.tag), [1, 2, 3])
        XCTAssertEqual(fixture.token.keyCount, 2)
    }

    func testASecondOwnerOfTheStateDirectoryIsRefused() throws {
        let directory = newDirectory()
        let fixture = try TokenFixture(directory: directory)
        defer { fixture.close(removingDirectory: false) }
        XCTAssertThrowsError(try open(directory)) { error in
            guard case .alreadyRunning(let message) = error as? ProvisioningError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("pid \(getpid())"), message)
            XCTAssertTrue(message.contains("one process must own the token"), message)
        }
    }

    func testInterruptedProvisioningIsDetectedAndRedone() throws {
        let directory = newDirectory()
        let state = StateDirectory(path: directory.path)
        try FileManager.default.createDirectory(at: state.tokenDirectory, withIntermediateDirectories: true)
        try Data("half".utf8).write(to: state.tokenDirectory.appendingPathComponent("junk.object"))
        try Data("provisioning started\n".utf8).write(to: state.provisioningMarker)
        let fixture = try TokenFixture(directory: directory)
        defer { fixture.close(removingDirectory: false) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: state.provisioningMarker.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: state.tokenDirectory.appendingPathComponent("junk.object").path))
        try fixture.token.generate(try fixture.newID(), spec: .ec(.p256), usage: [.sign])
    }

    func testADirectoryHsmdDidNotMakeIsRefused() throws {
        let directory = newDirectory()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: directory.appendingPathComponent("notes.txt"))
        XCTAssertThrowsError(try open(directory)) { error in
            guard case .foreignDirectory(let message) = error as? ProvisioningError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("notes.txt"), message)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted(), ["hsmd.lock", "notes.txt"])
    }

    func testOperatorPINsFromAFileOrTheEnvironment() throws {
        let directory = newDirectory()
        let pinFile = newDirectory()
        try Data("operator-pin-1234\n".utf8).write(to: pinFile)
        chmod(pinFile.path, 0o600)
        var options = TokenProvisioner.Options()
        options.userPIN = .file(pinFile.path)
        var fixture = try TokenFixture(directory: directory, options: options)
        fixture.close(removingDirectory: false)
        XCTAssertFalse(FileManager.default.fileExists(atPath: StateDirectory(path: directory.path).userPINFile.path),
                       "an operator's PIN is never copied into the state directory")

        XCTAssertThrowsError(try open(directory)) { error in
            XCTAssertTrue("\(error)".contains("--user-pin-file or --user-pin-env"), "\(error)")
        }
        setenv("HSMD_TEST_USER_PIN", "operator-pin-1234", 1)
        defer { unsetenv("HSMD_TEST_USER_PIN") }
        options.userPIN = .environment("HSMD_TEST_USER_PIN")
        fixture = try TokenFixture(directory: directory, options: options)
        fixture.close(removingDirectory: false)

        setenv("HSMD_TEST_USER_PIN", "wrong-pin-5678", 1)
        XCTAssertThrowsError(try open(directory, options)) { error in
            XCTAssertEqual((error as? P11Error)?.name, "CKR_PIN_INCORRECT")
        }
    }

    func testAPINFileOthersCanReadIsRefused() throws {
        let pinFile = newDirectory()
        try Data("operator-pin-1234".utf8).write(to: pinFile)
        chmod(pinFile.path, 0o644)
        var options = TokenProvisioner.Options()
        options.userPIN = .file(pinFile.path)
        XCTAssertThrowsError(try open(newDirectory(), options)) { error in
            XCTAssertTrue("\(error)".contains("chmod 600"), "\(error)")
            XCTAssertFalse("\(error)".contains("operator-pin-1234"), "a PIN never appears in an error")
        }
    }

    func testMissingTokenDataIsReportedNotReprovisioned() throws {
        let directory = newDirectory()
        TokenFixture.closeAfterOpening(directory)
        let tokenDirectory = StateDirectory(path: directory.path).tokenDirectory
        for entry in try FileManager.default.contentsOfDirectory(atPath: tokenDirectory.path) {
            try FileManager.default.removeItem(at: tokenDirectory.appendingPathComponent(entry))
        }
        XCTAssertThrowsError(try open(directory)) { error in
            guard case .token(let message) = error as? ProvisioningError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("missing"), message)
        }
    }

    func testTheRepositoryTemplateIsWhatHsmdWrites() throws {
        let template = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tokens/softhsm2.conf.template")
        XCTAssertEqual(try String(contentsOf: template, encoding: .utf8), SoftHSMConfig.template)
    }
}

extension TokenFixture {
    static func closeAfterOpening(_ directory: URL) {
        (try? TokenFixture(directory: directory))?.close(removingDirectory: false)
    }
}
