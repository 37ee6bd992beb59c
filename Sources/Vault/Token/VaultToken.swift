import CPKCS11
import PKCS11
import Synchronization

/// hsmd's keys in the PKCS#11 token. It holds the login and one anchor session for its whole life
/// (SoftHSM2 invalidates object handles when the last session closes), indexes every key object
/// once when opened, and runs each operation on a session of its own from the pool, on in-memory
/// copies of the version's objects once it has been used (`SessionKeyCopies`).
///
/// Every method blocks on the token: call them from a thread pool, never from an event loop.
public final class VaultToken: Sendable {
    public let module: PKCS11Module
    public let pool: SessionPool
    public let tokenInfo: TokenInfo
    private let anchor: Session
    let index: Mutex<[TokenKeyID: TokenKey]>
    /// Objects in the token that are not hsmd keys (its domain key among them).
    public let unmanagedObjects: [ObjectHandle]
    /// The trusted key that wraps backups; nil on a token hsmd did not provision.
    let domainKey: ObjectHandle?
    public var hasDomainKey: Bool { domainKey != nil }
    let sessionCopies: SessionKeyCopies
    /// The token-signing key's handles, once looked up or made.
    let serviceKeyLock = Mutex<(ObjectHandle, ObjectHandle)?>(nil)

    /// Versions kept as in-memory copies when no number is given.
    public static let defaultSessionCopies = 1024

    /// Logs in with the user PIN and indexes the token's keys. Up to `sessionCopies` versions in
    /// use are kept as in-memory copies (0: none).
    public init(module: PKCS11Module, slot: CK_SLOT_ID, userPIN: [UInt8], sessionCopies: Int = defaultSessionCopies) throws {
        self.module = module
        self.pool = SessionPool(module: module, slot: slot)
        self.tokenInfo = try module.tokenInfo(slot: slot)
        let anchor = try module.openSession(slot: slot)
        do {
            try anchor.login(CK_USER_TYPE(CKU_USER), pin: userPIN)
        } catch let error as P11Error where error.code == CK_RV(CKR_USER_ALREADY_LOGGED_IN) {
            // Another session of this process logged in already: the login is per process.
        } catch {
            try? anchor.close()
            throw error
        }
        self.anchor = anchor
        let (keys, unmanaged) = try TokenIndexer(session: anchor).readAll()
        self.index = Mutex(Dictionary(uniqueKeysWithValues: keys.map { ($0.id, $0) }))
        self.unmanagedObjects = unmanaged
        self.domainKey = try anchor.findObjects([.string(CKA_LABEL, DomainKey.label), .bool(CKA_TRUSTED, true)]).first
        self.sessionCopies = SessionKeyCopies(owner: try module.openSession(slot: slot), capacity: sessionCopies)
    }

    /// Closes every session, logs out and finalises the module. Call after the last operation
    /// has returned.
    public func close() {
        sessionCopies.close()
        pool.closeAll()
        try? anchor.logout()
        try? anchor.close()
        try? module.finalize()
    }

    // MARK: The index

    public func key(_ id: TokenKeyID) throws(TokenKeyError) -> TokenKey {
        guard let key = index.withLock({ $0[id] }) else { throw .keyNotFound(id) }
        return key
    }

    public var keys: [TokenKey] { index.withLock { Array($0.values) } }

    public var keyCount: Int { index.withLock { $0.count } }

    // MARK: Making and destroying keys

    /// Generates a key version inside the token.
    @discardableResult
    public func generate(_ id: TokenKeyID, spec: KeySpec, usage: KeyUsage) throws(TokenKeyError) -> TokenKey {
        let spec = try spec.validated()
        try Self.refuseMixedOctUsage(spec, usage)
        try refuseExisting(id)
        let key = try withSession { session in
            try cleaningUpOnFailure(id, session) {
                try KeyFactory(session: session).generate(id, spec: spec, usage: usage)
            }
        }
        index.withLock { $0[id] = key }
        return key
    }

    /// Imports private key material as a sensitive token object; the material is not kept.
    @discardableResult
    public func importKey(_ id: TokenKeyID, material: ImportedKeyMaterial, usage: KeyUsage) throws(TokenKeyError) -> TokenKey {
        if case .oct(let bytes) = material { try Self.refuseMixedOctUsage(.oct(bits: bytes.count * 8), usage) }
        try refuseExisting(id)
        let key = try withSession { session in
            try cleaningUpOnFailure(id, session) {
                try KeyFactory(session: session).importKey(id, material: material, usage: usage)
            }
        }
        index.withLock { $0[id] = key }
        return key
    }

    /// Gives a secret key the size the vault recorded, when the token could not say (see TokenIndexer).
    public func resolveUnknownSize(_ id: TokenKeyID, spec: KeySpec) {
        index.withLock { index in
            if case .oct(bits: 0)? = index[id]?.spec { index[id]?.spec = spec }
        }
    }

    /// Destroys every object that carries a version's label and id, whole pair or not, and forgets
    /// the version. A crash can leave half of a pair (made or destroyed one object at a time), which
    /// the index, holding whole keys only, would never find.
    public func destroyAllObjects(of id: TokenKeyID) throws(TokenKeyError) {
        // Also when destroying fails halfway: a copy must not outlive its objects.
        defer { sessionCopies.forget(id) }
        try withSession { session in
            for object in try tokenObjects(session, [.bytes(CKA_LABEL, id.label), .bytes(CKA_ID, id.objectID)]) {
                try session.destroyObject(object)
            }
        }
        index.withLock { _ = $0.removeValue(forKey: id) }
    }

    /// Destroys a key version's objects and forgets it.
    public func destroy(_ id: TokenKeyID) throws(TokenKeyError) {
        let key = try key(id)
        defer { sessionCopies.forget(id) }
        try withSession { session in
            try session.destroyObject(key.privateHandle)
            if let publicHandle = key.publicHandle { try session.destroyObject(publicHandle) }
        }
        index.withLock { _ = $0.removeValue(forKey: id) }
    }

    public func randomBytes(count: Int) throws(TokenKeyError) -> [UInt8] {
        guard count >= 0 else { throw .invalidInput("count must not be negative") }
        return try withSession { try $0.generateRandom(count: count) }
    }

    /// A new 32-hex-digit version id from the token's generator.
    public func newVersion() throws(TokenKeyError) -> String {
        TokenKeyID.newVersion(from: try randomBytes(count: 16))
    }

    // MARK: Internals shared by the operations

    /// Runs token work on a pooled session, timed under the name of the calling operation.
    func withSession<R>(operation: String = #function, _ body: (Session) throws -> R) throws(TokenKeyError) -> R {
        try TokenTiming.measure(operation) { () throws(TokenKeyError) -> R in
            try inToken { try pool.withSession(body) }
        }
    }

    private static func refuseMixedOctUsage(_ spec: KeySpec, _ usage: KeyUsage) throws(TokenKeyError) {
        guard case .oct(let bits) = spec else { return }
        if !usage.isDisjoint(with: KeyUsage.hmacOperations) && !usage.isDisjoint(with: KeyUsage.aesOperations) {
            throw .invalidInput(
                "an oct key is either an HMAC key (sign, verify) or an AES key (encrypt, decrypt, wrapKey, unwrapKey), not both")
        }
        if usage.makesHMACKey, !KeySpec.hmacSizes.contains(bits) {
            throw .invalidInput("an HMAC key (key_ops sign, verify) must be 256, 384 or 512 bits, not \(bits)")
        }
        if !usage.makesHMACKey, !KeySpec.octSizes.contains(bits) {
            throw .invalidInput("an AES key must be 128, 192 or 256 bits, not \(bits)")
        }
    }

    private func refuseExisting(_ id: TokenKeyID) throws(TokenKeyError) {
        if index.withLock({ $0[id] != nil }) {
            throw .invalidInput("key \(id.name) already has a version \(id.version)")
        }
    }

    /// The token's objects matching `template`, without the in-memory key copies, which carry their
    /// originals' label and id. Not by asking for `CKA_TOKEN` true: a kill inside SoftHSM2's object
    /// write leaves token objects whose `CKA_TOKEN` is still its default, false, and those must be
    /// found to be listed and repaired.
    func tokenObjects(_ session: Session, _ template: [Attribute]) throws -> [ObjectHandle] {
        let copies = sessionCopies.handles
        return try session.findObjects(template).filter { !copies.contains($0) }
    }

    /// SoftHSM2 can leave a half-made object behind when generation or import fails: remove
    /// whatever carries this id before reporting the failure.
    func cleaningUpOnFailure<R>(_ id: TokenKeyID, _ session: Session, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch {
            let leftovers = (try? tokenObjects(session, [.bytes(CKA_LABEL, id.label), .bytes(CKA_ID, id.objectID)])) ?? []
            for object in leftovers { try? session.destroyObject(object) }
            throw error
        }
    }
}

extension VaultToken {
    /// Changes the usage flags of a version's objects to match new operations.
    public func setUsage(_ id: TokenKeyID, _ usage: KeyUsage) throws(TokenKeyError) {
        let key = try key(id)
        defer { sessionCopies.forget(id) }
        try withSession { session in
            switch key.spec {
            case .oct:
                try session.setAttributeValues(of: key.privateHandle, KeyTemplates.secretUsage(usage))
            case .rsa, .ec:
                try session.setAttributeValues(of: key.privateHandle, KeyTemplates.privateUsage(usage))
                if let publicHandle = key.publicHandle {
                    try session.setAttributeValues(of: publicHandle, KeyTemplates.publicUsage(usage))
                }
            }
        }
    }
}

extension VaultToken {
    /// Nil while the token answers and hsmd's sessions are logged in; else what is wrong.
    public func readinessProblem() -> String? {
        do {
            let loggedIn = try withSession { try $0.isUserLoggedIn() }
            return loggedIn ? nil : "the token's sessions are not logged in"
        } catch {
            return "the token does not answer: \(error)"
        }
    }
}

extension VaultToken {
    /// Runs an operation on a version's in-memory copies, or on its token objects when it has none.
    /// If the token answers that a handle is stale (another process destroyed or re-created the
    /// objects while hsmd ran, against docs/pkcs11.md's rules; SoftHSM2 may then also answer
    /// CKR_GENERAL_ERROR), the version is found again by label and id and the operation retried
    /// once. A version no longer in the token is reported missing.
    func usingKey<R>(_ id: TokenKeyID, _ body: (TokenKey) throws(TokenKeyError) -> R) throws(TokenKeyError) -> R {
        let key = try key(id)
        let stillIndexed = { self.index.withLock { $0[id]?.privateHandle == key.privateHandle } }
        if let copy = sessionCopies.copy(of: key, whileCurrent: stillIndexed) {
            do {
                return try body(copy)
            } catch let error where error.isStaleHandle {
                sessionCopies.forget(id)
            }
        }
        do {
            return try body(key)
        } catch let error where error.isStaleHandle {
            return try body(try reindex(key))
        }
    }

    /// Looks a version's objects up again by label and id and replaces its index entry.
    private func reindex(_ stale: TokenKey) throws(TokenKeyError) -> TokenKey {
        sessionCopies.forget(stale.id)
        let found = try withSession { session in
            try TokenIndexer(session: session).reread(stale.id, excluding: sessionCopies.handles)
        }
        guard var fresh = found else {
            index.withLock { _ = $0.removeValue(forKey: stale.id) }
            throw .keyNotFound(stale.id)
        }
        // A restored secret key tells no size (see TokenIndexer): keep the one the index had.
        if case .oct(bits: 0) = fresh.spec { fresh.spec = stale.spec }
        index.withLock { $0[stale.id] = fresh }
        return fresh
    }
}
