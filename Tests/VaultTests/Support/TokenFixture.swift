import Foundation
import Logging
import XCTest

@testable import Vault

/// A freshly provisioned token in a temporary state directory. A process holds one open token at
/// a time (PKCS#11 is initialised per process), so each test class opens its own and closes it.
final class TokenFixture {
    let directory: URL
    let token: VaultToken
    private var lock: StateLock?

    static func temporaryDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-test-\(UUID().uuidString)")
    }

    init(directory: URL = TokenFixture.temporaryDirectory(), options: TokenProvisioner.Options = .init()) throws {
        self.directory = directory
        (token, lock) = try TokenProvisioner(
            directory: StateDirectory(path: directory.path), options: options, logger: Logger(label: "test")
        ).open()
    }

    func close(removingDirectory: Bool = true) {
        token.close()
        lock = nil
        if removingDirectory { try? FileManager.default.removeItem(at: directory) }
    }

    /// A new, unique key id.
    func newID(_ name: String = "k") throws -> TokenKeyID {
        try TokenKeyID(name: "\(name)-\(UUID().uuidString.prefix(8))", version: token.newVersion())
    }
}

extension PublicKey {
    /// The public JWK the crosscheck helper reads.
    var jwk: [String: Any] {
        switch self {
        case let .rsa(modulus, exponent): ["kty": "RSA", "n": modulus.base64URL, "e": exponent.base64URL]
        case let .ec(curve, x, y): ["kty": "EC", "crv": curve.rawValue, "x": x.base64URL, "y": y.base64URL]
        }
    }
}

/// Turns a private JWK from the crosscheck helper into import material.
func importMaterial(_ jwk: [String: Any]) -> ImportedKeyMaterial {
    func part(_ name: String) -> [UInt8] { [UInt8](base64URL: jwk[name] as? String ?? "") }
    switch jwk["kty"] as? String {
    case "RSA":
        return .rsa(.init(
            n: part("n"), e: part("e"), d: part("d"), p: part("p"), q: part("q"), dp: part("dp"), dq: part("dq"),
            qi: part("qi")))
    case "EC":
        return .ec(curve: Curve(rawValue: jwk["crv"] as! String)!, d: part("d"), x: part("x"), y: part("y"))
    default:
        return .oct(key: part("k"))
    }
}

/// A test class whose tests share one provisioned token, opened before the first and closed after
/// the last (a process holds one open token at a time).
class SharedTokenTestCase: XCTestCase {
    nonisolated(unsafe) static var fixture: TokenFixture!
    var token: VaultToken { Self.fixture.token }

    override class func setUp() {
        super.setUp()
        fixture = try! TokenFixture()
    }

    override class func tearDown() {
        fixture.close()
        super.tearDown()
    }
}
