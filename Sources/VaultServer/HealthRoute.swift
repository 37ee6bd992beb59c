import CPKCS11
import Foundation
import Vault

/// `GET /health`: whether the daemon can serve, what it serves from, and where. Names no key.
public enum HealthRoute {
    struct Health: Encodable {
        struct Token: Encodable {
            let label: String
            let serialNumber: String
            let slot: UInt
            let keyVersions: Int
            /// Nil where the token does not say (SoftHSM2 reports no limit).
            let freePrivateMemory: UInt?
            let freePublicMemory: UInt?
        }
        let status: String
        let version: String
        let uptimeSeconds: Int
        let token: Token
        let listeners: [String]
    }

    public static func add(to router: inout Router, token: VaultToken, version: String, started: Date, listeners: [String]) {
        router.add(.GET, "/health", .immediate { _ in
            let info = token.tokenInfo
            func known(_ value: UInt) -> UInt? { value == hsmd_CK_UNAVAILABLE_INFORMATION ? nil : value }
            return .json(Health(
                status: "ok", version: version, uptimeSeconds: Int(Date().timeIntervalSince(started)),
                token: .init(
                    label: info.label, serialNumber: info.serialNumber, slot: token.pool.slot, keyVersions: token.keyCount,
                    freePrivateMemory: known(info.freePrivateMemory), freePublicMemory: known(info.freePublicMemory)),
                listeners: listeners))
        })
    }
}
