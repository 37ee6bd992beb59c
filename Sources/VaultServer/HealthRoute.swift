import Foundation
import Vault

/// `GET /health`: whether the daemon can serve, and what it serves from. Names no key.
public enum HealthRoute {
    struct Health: Encodable {
        struct Token: Encodable {
            let label: String
            let serialNumber: String
            let keyVersions: Int
        }
        let status: String
        let version: String
        let uptimeSeconds: Int
        let token: Token
    }

    public static func add(to router: inout Router, token: VaultToken, version: String, started: Date) {
        router.add(.GET, "/health", .immediate { _ in
            .json(Health(
                status: "ok", version: version, uptimeSeconds: Int(Date().timeIntervalSince(started)),
                token: .init(label: token.tokenInfo.label, serialNumber: token.tokenInfo.serialNumber, keyVersions: token.keyCount)))
        })
    }
}
