import Foundation
import Vault

/// The token behind the API: where a PKCS#11 tool finds a key's objects, what in the token hsmd
/// does not manage, and adopting such keys.
extension VaultAPI {
    func registerTokenRoutes(in router: inout Router) {
        router.add(.GET, "/hsmd/keys/{name}/pkcs11", api("hsmd.pkcs11-uri", .keysRead, .key) { request, _ in
            let bundle = try vault.getKey(name(request), version: request.query["version"])
            let info = vault.token.tokenInfo
            let objectID = Self.percentEncoded(Self.idBytes(bundle.version.version))
            let base = "pkcs11:token=\(Self.percentEncoded(Array(info.label.utf8)));serial=\(info.serialNumber);object=\(bundle.name);id=\(objectID)"
            let types = bundle.version.type == .oct ? ["secret-key"] : ["private", "public"]
            return .json(PKCS11Location(
                module: vault.token.module.path, softhsm2Conf: ProcessInfo.processInfo.environment["SOFTHSM2_CONF"],
                slot: Int(vault.token.pool.slot), tokenLabel: info.label, serialNumber: info.serialNumber,
                objects: types.map { .init(type: $0, uri: "\(base);type=\($0)") }))
        })
        router.add(.GET, "/hsmd/unmanaged", api("hsmd.unmanaged", .keysRead, .keys) { _, _ in
            .json(ListJSON(value: try vault.unmanagedObjects().map(UnmanagedObjectJSON.init), nextLink: nil))
        })
        router.add(.POST, "/hsmd/keys/{name}/adopt", api("hsmd.adopt", .keysImport, .key) { request, render in
            let body = try decode(AdoptBody.self, request)
            return .json(render.bundle(try vault.adoptKey(name(request), objectID: body.id, label: body.label, force: body.force ?? false)))
        })
    }

    private static func idBytes(_ version: String) -> [UInt8] {
        stride(from: 0, to: version.count, by: 2).compactMap { offset in
            let start = version.index(version.startIndex, offsetBy: offset)
            return UInt8(version[start..<version.index(start, offsetBy: 2)], radix: 16)
        }
    }

    /// RFC 7512 percent-encoding: unreserved characters as they are, every other byte as %XX.
    private static func percentEncoded(_ bytes: [UInt8]) -> String {
        bytes.map { byte in
            let character = Character(UnicodeScalar(byte))
            return byte < 0x80 && (character.isLetter || character.isNumber || "-._~".contains(character))
                ? String(character) : String(format: "%%%02X", byte)
        }.joined()
    }
}

struct PKCS11Location: Encodable {
    struct Object: Encodable {
        var type: String
        var uri: String
    }
    var module: String
    var softhsm2Conf: String?
    var slot: Int
    var tokenLabel: String
    var serialNumber: String
    var objects: [Object]
}

struct UnmanagedObjectJSON: Encodable {
    var kind: String
    var label: String
    var id: String
    var keyType: String?
    var sensitive: Bool?
    var extractable: Bool?
    var keyOps: [String]

    init(_ object: TokenObject) {
        kind = object.kind.rawValue
        label = object.label
        id = object.idHex
        keyType = object.spec.map { "\($0)" }
        sensitive = object.sensitive
        extractable = object.extractable
        keyOps = object.usage.azureNames
    }

    enum CodingKeys: String, CodingKey {
        case kind, label, id, keyType, sensitive, extractable
        case keyOps = "key_ops"
    }
}

struct AdoptBody: Decodable {
    /// CKA_ID of the object, in hex.
    var id: String
    var label: String?
    var force: Bool?
}
