import CPKCS11
import Foundation
import Logging
import PKCS11

/// Opens the token of a state directory, provisioning it on first start: config, token, PINs and
/// domain key. A directory where provisioning was interrupted is detected and provisioned again
/// from scratch (no key can exist yet); a directory hsmd did not make is refused.
public struct TokenProvisioner: Sendable {
    public struct Options: Sendable {
        public var modulePath = "/usr/lib/softhsm/libsofthsm2.so"
        public var tokenLabel = "hsmd"
        /// Operator-supplied PINs; when nil, hsmd generates them into the state directory.
        public var userPIN: PINSource?
        public var soPIN: PINSource?
        /// Use the token labelled `tokenLabel` that the module already has (its SoftHSM2 config from
        /// `SOFTHSM2_CONF`), instead of provisioning one. First start only; needs the user PIN.
        public var existingToken = false
        /// Versions in use kept as in-memory copies in the token library (0: none).
        public var sessionKeyCopies = VaultToken.defaultSessionCopies

        public init() {}
    }

    public let directory: StateDirectory
    public let options: Options
    let logger: Logger

    public init(directory: StateDirectory, options: Options, logger: Logger) {
        self.directory = directory
        self.options = options
        self.logger = logger
    }

    /// Takes the state directory's lock, provisions if needed, logs in and indexes the keys. The
    /// returned lock must live as long as the token is open.
    public func open() throws -> (VaultToken, StateLock) {
        try createRoot()
        let lock = try StateLock.acquire(directory)
        let manifest = try prepareManifest()
        if manifest.existingTokenConfig == nil { try checkTokenFiles(manifest) }
        setenv("SOFTHSM2_CONF", manifest.existingTokenConfig ?? directory.softHSMConfig.path, 1)
        let module = try PKCS11Module(path: options.modulePath)
        try module.initialize()
        do {
            guard let slot = try module.slot(withTokenLabel: manifest.label) else {
                throw ProvisioningError.token(
                    "the token '\(manifest.label)' recorded in \(directory.manifest.path) is missing from \(manifest.existingTokenConfig ?? directory.tokenDirectory.path); the token data was removed or damaged — restore it from a backup")
            }
            // A label can be reused by a new token; the serial cannot. Never serve another token's keys under this vault's metadata.
            let serial = try module.tokenInfo(slot: slot).serialNumber
            guard serial == manifest.serialNumber else {
                throw ProvisioningError.token(
                    "the token labelled '\(manifest.label)' has serial \(serial), but this state directory belongs to serial \(manifest.serialNumber); refusing to mix two tokens")
            }
            var userPIN = try resolvedPIN(options.userPIN, generated: directory.userPINFile, manifest: manifest, role: "user")
            defer { userPIN.zeroize() }
            let token = try VaultToken(module: module, slot: slot, userPIN: userPIN, sessionCopies: options.sessionKeyCopies)
            return (token, lock)
        } catch {
            try? module.finalize()
            throw error
        }
    }

    /// SoftHSM2 answers a missing config or token directory with a bare CKR_GENERAL_ERROR from
    /// C_Initialize: say which file is gone instead.
    private func checkTokenFiles(_ manifest: TokenManifest) throws {
        for (path, what) in [(directory.softHSMConfig.path, "the SoftHSM2 config"), (directory.tokenDirectory.path, "the token directory")]
        where !FileManager.default.fileExists(atPath: path) {
            throw ProvisioningError.token(
                "\(what) \(path) of token '\(manifest.label)' is missing; the token data was removed or damaged — restore the state directory from a backup (hsmd never provisions over a recorded token)")
        }
    }

    // MARK: State detection

    private func prepareManifest() throws -> TokenManifest {
        let files = FileManager.default
        if files.fileExists(atPath: directory.manifest.path) {
            // The manifest is written last: provisioning finished even if the marker survived a crash.
            try? files.removeItem(at: directory.provisioningMarker)
            return try readManifest()
        }
        if files.fileExists(atPath: directory.provisioningMarker.path) {
            logger.warning(
                "provisioning of this state directory was interrupted; provisioning it again (no key can exist yet)",
                metadata: ["state_dir": "\(directory.root.path)"])
            try removeProvisioningLeftovers()
        } else {
            let foreign = try files.contentsOfDirectory(atPath: directory.root.path)
                .filter { !StateDirectory.ownNames.contains($0) }
            let ownButIncomplete = try files.contentsOfDirectory(atPath: directory.root.path)
                .filter { $0 != "hsmd.lock" && StateDirectory.ownNames.contains($0) }
            guard foreign.isEmpty, ownButIncomplete.isEmpty else {
                throw ProvisioningError.foreignDirectory(
                    "\(directory.root.path) is not empty and holds no hsmd token (no token.json); refusing to use it. Found: \((foreign + ownButIncomplete).sorted().joined(separator: ", ")). Choose an empty or new --state-dir.")
            }
        }
        return try options.existingToken ? takeExistingToken() : provision()
    }

    private func readManifest() throws -> TokenManifest {
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let manifest = try decoder.decode(TokenManifest.self, from: Data(contentsOf: directory.manifest))
            guard manifest.format == TokenManifest.currentFormat else {
                throw ProvisioningError.stateDirectory(
                    "\(directory.manifest.path) has format \(manifest.format); this hsmd reads format \(TokenManifest.currentFormat)")
            }
            return manifest
        } catch let error as ProvisioningError {
            throw error
        } catch {
            throw ProvisioningError.stateDirectory("\(directory.manifest.path) is unreadable or corrupt: \(error)")
        }
    }

    // MARK: Provisioning

    private func provision() throws -> TokenManifest {
        let files = FileManager.default
        try Data("provisioning started \(Date())\n".utf8).write(to: directory.provisioningMarker)
        try files.createDirectory(at: directory.tokenDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try Data(SoftHSMConfig.render(tokenDirectory: directory.tokenDirectory.path).utf8)
            .write(to: directory.softHSMConfig, options: .atomic)
        let generatedPINs = options.userPIN == nil
        var soPIN = try options.soPIN?.read(role: "SO") ?? PINSource.generate()
        var userPIN = try options.userPIN?.read(role: "user") ?? PINSource.generate()
        defer {
            soPIN.zeroize()
            userPIN.zeroize()
        }
        if generatedPINs {
            try files.createDirectory(at: directory.pinDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try writeSecret(userPIN, to: directory.userPINFile)
            if options.soPIN == nil { try writeSecret(soPIN, to: directory.soPINFile) }
        }

        setenv("SOFTHSM2_CONF", directory.softHSMConfig.path, 1)
        let module = try PKCS11Module(path: options.modulePath)
        try module.initialize()
        defer { try? module.finalize() }
        guard let freeSlot = try module.freeSlot() else {
            throw ProvisioningError.token("the PKCS#11 module offers no free slot for a new token")
        }
        try module.initToken(slot: freeSlot, soPIN: soPIN, label: options.tokenLabel)
        guard let slot = try module.slot(withTokenLabel: options.tokenLabel) else {
            throw ProvisioningError.token("the token '\(options.tokenLabel)' was initialised but cannot be found")
        }
        let session = try module.openSession(slot: slot)
        defer { try? session.close() }
        try session.login(CK_USER_TYPE(CKU_SO), pin: soPIN)
        try session.initUserPIN(userPIN)
        try DomainKey.create(in: session)
        try session.logout()

        let manifest = TokenManifest(
            format: TokenManifest.currentFormat, label: options.tokenLabel,
            serialNumber: try module.tokenInfo(slot: slot).serialNumber, created: Date(),
            generatedPINs: generatedPINs, domainKeyLabel: DomainKey.label)
        try writeManifest(manifest)
        try files.removeItem(at: directory.provisioningMarker)
        logger.info(
            "provisioned a new token",
            metadata: ["label": "\(manifest.label)", "serial": "\(manifest.serialNumber)", "state_dir": "\(directory.root.path)"])
        return manifest
    }

    private func removeProvisioningLeftovers() throws {
        let files = FileManager.default
        for leftover in [directory.tokenDirectory, directory.softHSMConfig, directory.pinDirectory] {
            if files.fileExists(atPath: leftover.path) { try files.removeItem(at: leftover) }
        }
    }

    private func resolvedPIN(_ source: PINSource?, generated: URL, manifest: TokenManifest, role: String) throws -> [UInt8] {
        if let source { return try source.read(role: role) }
        guard manifest.generatedPINs else {
            throw ProvisioningError.pin(
                "this token's \(role) PIN was supplied by the operator at provisioning; name it again with --\(role)-pin-file or --\(role)-pin-env")
        }
        return try PINSource.file(generated.path).read(role: role)
    }

    // MARK: Files

    private func createRoot() throws {
        do {
            try FileManager.default.createDirectory(
                at: directory.root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw ProvisioningError.stateDirectory("cannot create the state directory \(directory.root.path): \(error.localizedDescription)")
        }
    }

    /// Writes a secret with mode 0600 from the start, so it is never readable by others.
    private func writeSecret(_ secret: [UInt8], to url: URL) throws {
        let descriptor = Glibc.open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ProvisioningError.stateDirectory("cannot write \(url.path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let written = secret.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == secret.count, fsync(descriptor) == 0 else {
            throw ProvisioningError.stateDirectory("cannot write \(url.path): \(String(cString: strerror(errno)))")
        }
    }

    /// Written through a temporary file and a rename, so a crash leaves either no manifest or a whole one.
    func writeManifest(_ manifest: TokenManifest) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let temporary = directory.root.appendingPathComponent("token.json.tmp")
        try encoder.encode(manifest).write(to: temporary)
        let descriptor = Glibc.open(temporary.path, O_RDONLY)
        if descriptor >= 0 {
            fsync(descriptor)
            close(descriptor)
        }
        guard rename(temporary.path, directory.manifest.path) == 0 else {
            throw ProvisioningError.stateDirectory("cannot write \(directory.manifest.path): \(String(cString: strerror(errno)))")
        }
    }
}
