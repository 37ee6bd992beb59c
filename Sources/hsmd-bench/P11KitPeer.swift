import Foundation
import PKCS11
import Vault

/// The peer baseline: a SoftHSM2 token served over a Unix socket by `p11-kit server`, loaded
/// through `p11-kit-client.so` by hsmd's own token layer — PKCS#11 remoted instead of hsmd's API.
enum P11KitPeer {
    static func open(softHSMModule: String, p11kit: String, clientModule: String) throws -> (target: TokenTarget, directory: URL) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-bench-peer-\(UUID().uuidString.prefix(8))")
        var server: Process?
        do {
            // Provisioned in this process, then closed: from here on the p11-kit server owns the token.
            let (provisioned, lock) = try DirectToken.provision(directory, modulePath: softHSMModule)
            let label = provisioned.tokenInfo.label
            provisioned.close()
            withExtendedLifetime(lock) {}

            let state = StateDirectory(path: directory.path)
            let socket = directory.appendingPathComponent("p11-kit.sock").path
            let started = try startServer(p11kit, module: softHSMModule, label: label, socket: socket, config: state.softHSMConfig.path)
            server = started
            setenv("P11_KIT_SERVER_ADDRESS", "unix:path=\(socket)", 1)
            let module = try PKCS11Module(path: clientModule)
            try module.initialize()
            guard let slot = try module.slot(withTokenLabel: label) else {
                throw BenchError.setup("p11-kit-client.so shows no token '\(label)'")
            }
            var pin = Array(try Data(contentsOf: state.userPINFile))
            while pin.last == UInt8(ascii: "\n") { pin.removeLast() }
            let token = try VaultToken(module: module, slot: slot, userPIN: pin)
            let target = TokenTarget(token: token) {
                started.terminate()
                started.waitUntilExit()
                try? FileManager.default.removeItem(at: directory)
            }
            return (target, directory)
        } catch {
            server?.terminate()
            server?.waitUntilExit()
            try? FileManager.default.removeItem(at: directory)
            throw BenchError.setup("cannot set up the p11-kit server peer: \(error)")
        }
    }

    /// Starts `p11-kit server` in the foreground and waits for its socket.
    private static func startServer(_ p11kit: String, module: String, label: String, socket: String, config: String) throws -> Process {
        let server = Process()
        server.executableURL = URL(fileURLWithPath: p11kit)
        server.arguments = ["server", "--foreground", "--name", socket, "--provider", module, "pkcs11:token=\(label)"]
        server.environment = ProcessInfo.processInfo.environment.merging(["SOFTHSM2_CONF": config]) { $1 }
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: socket) {
            guard server.isRunning, Date() < deadline else {
                server.terminate()
                throw BenchError.setup("p11-kit server did not open \(socket)")
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return server
    }
}
