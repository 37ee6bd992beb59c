import Foundation
import HSMClient
import XCTest

/// Local RBAC with real callers under other uids, identified by the kernel. The matrix is generated
/// from the role definitions hsmd serves: for every built-in role, at two scopes, every operation is
/// tried and must be allowed exactly when the role's data actions and the scope say so.
final class RBACTests: XCTestCase {
    private var stateDirectory: URL!
    private var socketDirectory: URL!
    private var daemon: DaemonProcess!
    private let caller = OtherUser.nobody
    private static let api = "api-version=7.6"
    private static let prefix = "Microsoft.KeyVault/managedHsm/"

    override func setUpWithError() throws {
        stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-rbac-\(UUID().uuidString.prefix(8))")
        socketDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-rbac-sock-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: socketDirectory, withIntermediateDirectories: true)
        chmod(socketDirectory.path, 0o755)
        daemon = try DaemonProcess(
            stateDirectory: stateDirectory, socketPath: socketDirectory.appendingPathComponent("hsmd.sock").path,
            arguments: ["--socket-group", "nogroup", "--principal", "tester=uid:\(caller.uid)"])
    }

    override func tearDown() {
        daemon?.stop()
        try? FileManager.default.removeItem(at: stateDirectory)
        try? FileManager.default.removeItem(at: socketDirectory)
    }

    /// As the daemon's own uid: an initial administrator.
    @discardableResult
    private func admin(_ method: String, _ path: String, _ body: [String: Any]? = nil) throws -> HSMResponse {
        let bytes = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) }
        let separator = path.contains("?") ? "&" : "?"
        return try daemon.client.send(.init(rawValue: method), path + separator + Self.api, body: bytes)
    }

    private func assign(_ roleID: String, to principal: String, scope: String) throws {
        let prefix = scope == "/" ? "" : scope
        let response = try admin("PUT", "\(prefix)/providers/Microsoft.Authorization/roleAssignments/\(UUID().uuidString.lowercased())", [
            "properties": ["roleDefinitionId": "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/\(roleID)",
                           "principalId": principal],
        ])
        XCTAssertEqual(response.status, 201, String(decoding: response.body, as: UTF8.self))
    }

    private func removeAssignments(of principal: String) throws {
        let list = try JSONSerialization.jsonObject(with: Data(try admin("GET", "/providers/Microsoft.Authorization/roleAssignments").body)) as? [String: Any]
        for assignment in list?["value"] as? [[String: Any]] ?? [] {
            let properties = assignment["properties"] as? [String: Any] ?? [:]
            guard properties["principalId"] as? String == principal, let name = assignment["name"] as? String else { continue }
            let scope = properties["scope"] as? String ?? "/"
            try admin("DELETE", "\(scope == "/" ? "" : scope)/providers/Microsoft.Authorization/roleAssignments/\(name)")
        }
    }

    /// A fresh k1: EC, so every operation has something to act on.
    private func resetKey() throws {
        try admin("DELETE", "/keys/k1")
        try admin("DELETE", "/deletedkeys/k1")
        XCTAssertEqual(try admin("POST", "/keys/k1/create", ["kty": "EC-HSM", "crv": "P-256"]).status, 200)
    }

    /// One request per data action, and the scope it is checked at.
    private func operations(version: String) -> [(action: String, scope: String, request: [String: Any])] {
        let digest = String(repeating: "A", count: 43)
        let unknown = "00000000-0000-4000-8000-00000000000f"
        return [
            ("keys/read/action", "/keys/k1", ["method": "GET", "path": "/keys/k1?\(Self.api)"]),
            ("keys/read/action", "/keys", ["method": "GET", "path": "/keys?\(Self.api)"]),
            ("keys/write/action", "/keys/k1", ["method": "PATCH", "path": "/keys/k1?\(Self.api)", "body": ["tags": ["t": "1"]]]),
            ("keys/create", "/keys/k1", ["method": "POST", "path": "/keys/k1/create?\(Self.api)", "body": ["kty": "EC-HSM"]]),
            ("keys/import/action", "/keys/k1", ["method": "PUT", "path": "/keys/k1?\(Self.api)", "body": ["key": ["kty": "oct-HSM", "k": "AAAAAAAAAAAAAAAAAAAAAA"]]]),
            ("keys/sign/action", "/keys/k1", ["method": "POST", "path": "/keys/k1/\(version)/sign?\(Self.api)", "body": ["alg": "ES256", "value": digest]]),
            ("keys/verify/action", "/keys/k1", ["method": "POST", "path": "/keys/k1/\(version)/verify?\(Self.api)", "body": ["alg": "ES256", "digest": digest, "value": digest + digest]]),
            ("keys/encrypt/action", "/keys/k1", ["method": "POST", "path": "/keys/k1/\(version)/encrypt?\(Self.api)", "body": ["alg": "RSA-OAEP", "value": digest]]),
            ("keys/decrypt/action", "/keys/k1", ["method": "POST", "path": "/keys/k1/\(version)/decrypt?\(Self.api)", "body": ["alg": "RSA-OAEP", "value": digest]]),
            ("keys/wrap/action", "/keys/k1", ["method": "POST", "path": "/keys/k1/\(version)/wrapkey?\(Self.api)", "body": ["alg": "RSA-OAEP", "value": digest]]),
            ("keys/unwrap/action", "/keys/k1", ["method": "POST", "path": "/keys/k1/\(version)/unwrapkey?\(Self.api)", "body": ["alg": "RSA-OAEP", "value": digest]]),
            ("keys/release/action", "/keys/k1", ["method": "POST", "path": "/keys/k1/\(version)/release?\(Self.api)", "body": ["target": "x"]]),
            ("keys/backup/action", "/keys/k1", ["method": "POST", "path": "/keys/k1/backup?\(Self.api)"]),
            ("keys/restore/action", "/keys", ["method": "POST", "path": "/keys/restore?\(Self.api)", "body": ["value": "AAAA"]]),
            ("keys/rotate/action", "/keys/k1", ["method": "POST", "path": "/keys/k1/rotate?\(Self.api)"]),
            ("rng/action", "/", ["method": "POST", "path": "/rng?\(Self.api)", "body": ["count": 8]]),
            ("roleAssignments/read/action", "/keys/k1", ["method": "GET", "path": "/keys/k1/providers/Microsoft.Authorization/roleAssignments?\(Self.api)"]),
            ("roleAssignments/write/action", "/keys/k1", ["method": "PUT", "path": "/keys/k1/providers/Microsoft.Authorization/roleAssignments/\(UUID().uuidString.lowercased())?\(Self.api)",
                                                         "body": ["properties": ["roleDefinitionId": "2c18b078-7c48-4d3a-af88-5a3a1b3f82b3", "principalId": "uid:4242"]]]),
            ("roleAssignments/delete/action", "/keys/k1", ["method": "DELETE", "path": "/keys/k1/providers/Microsoft.Authorization/roleAssignments/\(unknown)?\(Self.api)"]),
            ("roleDefinitions/read/action", "/", ["method": "GET", "path": "/providers/Microsoft.Authorization/roleDefinitions?\(Self.api)"]),
            ("roleDefinitions/write/action", "/", ["method": "PUT", "path": "/providers/Microsoft.Authorization/roleDefinitions/\(UUID().uuidString.lowercased())?\(Self.api)",
                                                  "body": ["properties": ["roleName": "tmp-\(UUID().uuidString.prefix(6))", "permissions": [["dataActions": [Self.prefix + "keys/read/action"]]]]]]),
            ("roleDefinitions/delete/action", "/", ["method": "DELETE", "path": "/providers/Microsoft.Authorization/roleDefinitions/\(unknown)?\(Self.api)"]),
            // Role definitions are global: writing one through a key's path still needs the right at /.
            ("roleDefinitions/write/action", "/", ["method": "PUT", "path": "/keys/k1/providers/Microsoft.Authorization/roleDefinitions/\(UUID().uuidString.lowercased())?\(Self.api)",
                                                  "body": ["properties": ["roleName": "tmp-\(UUID().uuidString.prefix(6))", "permissions": [["dataActions": [Self.prefix + "keys/read/action"]]]]]]),
            // Destructive ones last: each may remove k1.
            ("keys/delete", "/keys/k1", ["method": "DELETE", "path": "/keys/k1?\(Self.api)"]),
            ("keys/deletedKeys/read/action", "/keys/k1", ["method": "GET", "path": "/deletedkeys/k1?\(Self.api)"]),
            ("keys/deletedKeys/recover/action", "/keys/k1", ["method": "POST", "path": "/deletedkeys/k1/recover?\(Self.api)"]),
            ("keys/deletedKeys/delete", "/keys/k1", ["method": "DELETE", "path": "/deletedkeys/k1?\(Self.api)"]),
            ("hsmd/metrics/read/action", "/", ["method": "GET", "path": "/metrics"]),
        ]
    }

    private static func covers(_ assigned: String, _ target: String) -> Bool {
        assigned == "/" || target == assigned || target.hasPrefix(assigned + "/")
    }

    func testEveryBuiltInRoleAllowsExactlyItsDataActionsAtItsScope() throws {
        let definitions = try JSONSerialization.jsonObject(with: Data(try admin("GET", "/providers/Microsoft.Authorization/roleDefinitions").body)) as? [String: Any]
        let builtIns = (definitions?["value"] as? [[String: Any]] ?? []).filter {
            ($0["properties"] as? [String: Any])?["type"] as? String == "AKVBuiltInRole"
        }
        XCTAssertEqual(builtIns.count, 10, "Managed HSM's nine and hsmd Monitoring Reader")
        var checked = 0
        for role in builtIns {
            let properties = role["properties"] as! [String: Any]
            let name = properties["roleName"] as! String
            let allowed = Set(((properties["permissions"] as? [[String: Any]])?.first?["dataActions"] as? [String] ?? [])
                .map { String($0.dropFirst(Self.prefix.count)) })
            for scope in ["/keys/k1", "/"] {
                try resetKey()
                try assign(role["name"] as! String, to: "tester", scope: scope)
                let version = ((try JSONSerialization.jsonObject(with: Data(try admin("GET", "/keys/k1").body)) as? [String: Any])?["key"] as? [String: Any])?["kid"]
                    .flatMap { ($0 as? String)?.split(separator: "/").last.map(String.init) } ?? ""
                let operations = operations(version: version)
                let answers = try caller.send(daemon.socketPath, operations.map(\.request))
                for (operation, answer) in zip(operations, answers) {
                    let expected = allowed.contains(operation.action) && Self.covers(scope, operation.scope)
                    let what = "\(name) at \(scope): \(operation.action) on \(operation.scope) answered \(answer.status)"
                    if expected {
                        // Past RBAC, the key itself may still refuse (key_ops): that is not RBAC's 403.
                        XCTAssertNotEqual(answer.innerCode, "ForbiddenByRbac", what)
                        XCTAssertNotEqual(answer.status, 405, what)
                    } else {
                        XCTAssertEqual(answer.status, 403, what)
                        XCTAssertEqual(answer.innerCode, "ForbiddenByRbac", what)
                    }
                    checked += 1
                }
                try removeAssignments(of: "tester")
            }
        }
        XCTAssertEqual(checked, 10 * 2 * operations(version: "v").count)
    }

    func testNoAssignmentMeansNothingAndAKeyScopeMeansThatKeyOnly() throws {
        try resetKey()
        XCTAssertEqual(try admin("POST", "/keys/k2/create", ["kty": "EC-HSM"]).status, 200)
        let before = try caller.send(daemon.socketPath, operations(version: "").map(\.request))
        for answer in before {
            XCTAssertEqual(answer.status, 403)
            XCTAssertEqual(answer.innerCode, "ForbiddenByRbac")
            let message = (answer.body?["error"] as? [String: Any])?["message"] as? String ?? ""
            XCTAssertTrue(message.contains("Action: 'Microsoft.KeyVault/managedHsm/"), message)
        }
        // A refusal says nothing about existence: a missing key is refused the same way.
        let missing = try caller.send(daemon.socketPath, [["method": "GET", "path": "/keys/no-such-key?\(Self.api)"]])[0]
        XCTAssertEqual(missing.status, 403)

        try assign("21dbd100-6940-42c2-9190-5d6cb909625b", to: "uid:\(caller.uid)", scope: "/keys/k1")
        let digest = String(repeating: "A", count: 43)
        let answers = try caller.send(daemon.socketPath, [
            ["method": "POST", "path": "/keys/k1/sign?\(Self.api)", "body": ["alg": "ES256", "value": digest]],
            ["method": "POST", "path": "/keys/k2/sign?\(Self.api)", "body": ["alg": "ES256", "value": digest]],
            ["method": "GET", "path": "/keys/k2?\(Self.api)"],
        ])
        XCTAssertEqual(answers.map(\.status), [200, 403, 403])

        // The audit log names the caller as the kernel saw it.
        let audit = try String(contentsOf: stateDirectory.appendingPathComponent("audit/audit.log"), encoding: .utf8)
        let lines = audit.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let signs = lines.filter { $0["operation"] as? String == "keys.sign" && $0["key"] as? String == "k1" && $0["status"] as? Int == 200 }
        XCTAssertEqual((signs.last?["principal"] as? [String: Any])?["name"] as? String, "tester")
        XCTAssertEqual((signs.last?["principal"] as? [String: Any])?["uid"] as? Int, Int(caller.uid))
    }

    func testTheSocketIsOpenOnlyToItsGroupAndInitialAdministratorsCannotBeRemoved() throws {
        let attributes = try FileManager.default.attributesOfItem(atPath: daemon.socketPath)
        XCTAssertEqual((attributes[.posixPermissions] as? Int).map { $0 & 0o777 }, 0o660)
        XCTAssertEqual(attributes[.groupOwnerAccountID] as? Int, 65534)
        let list = try JSONSerialization.jsonObject(with: Data(try admin("GET", "/providers/Microsoft.Authorization/roleAssignments?$filter=atScope()").body)) as? [String: Any]
        let initial = (list?["value"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        XCTAssertEqual(initial.count, 4, "Administrator, Crypto Officer, Crypto User and Monitoring Reader for root (hsmd's own uid here)")
        XCTAssertEqual(try admin("DELETE", "/providers/Microsoft.Authorization/roleAssignments/\(initial[0])").status, 400)
    }
}
