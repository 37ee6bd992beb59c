import CPKCS11
import Foundation
import PKCS11

extension TokenProvisioner {
    /// First start on a token that someone else initialised: check that the user PIN opens it,
    /// give it a domain key if the SO PIN is at hand (else backups stay unavailable), and record
    /// the token's label, serial and SoftHSM2 config in the manifest. Its existing objects are
    /// left alone: hsmd lists them as unmanaged, for adoption.
    func takeExistingToken() throws -> TokenManifest {
        guard let userPINSource = options.userPIN else {
            throw ProvisioningError.pin(
                "an existing token needs its user PIN: name it with --user-pin-file or --user-pin-env (hsmd cannot generate the PIN of a token it did not make)")
        }
        let config = ProcessInfo.processInfo.environment["SOFTHSM2_CONF"] ?? "/etc/softhsm/softhsm2.conf"
        setenv("SOFTHSM2_CONF", config, 1)
        let module = try PKCS11Module(path: options.modulePath)
        try module.initialize()
        defer { try? module.finalize() }
        guard let slot = try module.slot(withTokenLabel: options.tokenLabel) else {
            let labels = (try? module.slots().compactMap { try? module.tokenInfo(slot: $0).label }) ?? []
            throw ProvisioningError.token(
                "no token labelled '\(options.tokenLabel)' in \(options.modulePath) (SOFTHSM2_CONF=\(config)); tokens found: \(labels.isEmpty ? "none" : labels.joined(separator: ", "))")
        }
        var userPIN = try userPINSource.read(role: "user")
        defer { userPIN.zeroize() }
        let session = try module.openSession(slot: slot)
        defer { try? session.close() }
        do {
            try session.login(CK_USER_TYPE(CKU_USER), pin: userPIN)
            try session.logout()
        } catch {
            throw ProvisioningError.pin("the user PIN does not open the token '\(options.tokenLabel)': \(error)")
        }
        let hasDomainKey = !(try session.findObjects([.string(CKA_LABEL, DomainKey.label), .bool(CKA_TRUSTED, true)]).isEmpty)
        if !hasDomainKey {
            if let soPINSource = options.soPIN {
                var soPIN = try soPINSource.read(role: "SO")
                defer { soPIN.zeroize() }
                try session.login(CK_USER_TYPE(CKU_SO), pin: soPIN)
                try DomainKey.create(in: session)
                try session.logout()
            } else {
                logger.warning(
                    "the existing token has no domain key and no SO PIN was named: key backups and restores are unavailable on it",
                    metadata: ["token": "\(options.tokenLabel)"])
            }
        }
        let manifest = TokenManifest(
            format: TokenManifest.currentFormat, label: options.tokenLabel,
            serialNumber: try module.tokenInfo(slot: slot).serialNumber, created: Date(),
            generatedPINs: false, domainKeyLabel: DomainKey.label, existingTokenConfig: config)
        try writeManifest(manifest)
        logger.info(
            "took an existing token",
            metadata: ["label": "\(manifest.label)", "serial": "\(manifest.serialNumber)", "softhsm2_conf": "\(config)"])
        return manifest
    }
}
