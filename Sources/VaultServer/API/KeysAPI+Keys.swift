import Vault

extension VaultAPI {
    func registerKeyRoutes(in router: inout Router) {
        router.add(.POST, "/keys/{name}/create", api("keys.create", .keysCreate, .key) { request, render in
            let body = try decode(CreateKeyBody.self, request)
            try refuseReleasePolicy(body.releasePolicy)
            guard let type = KeyType(azureName: body.kty) else {
                throw VaultError.badParameter("kty must be RSA-HSM, EC-HSM or oct-HSM (RSA, EC and oct are stored as HSM keys); it is '\(body.kty.prefix(20))'")
            }
            var creation = KeyCreation(type: type)
            creation.size = body.keySize
            creation.curve = body.crv
            creation.publicExponent = body.publicExponent
            creation.operations = body.keyOps
            creation.attributes = body.attributes?.input ?? AttributeInput()
            creation.tags = body.tags
            return .json(render.bundle(try vault.createKey(name(request), creation)))
        })
        router.add(.PUT, "/keys/{name}", api("keys.import", .keysImport, .key) { request, render in
            let body = try decode(ImportKeyBody.self, request)
            try refuseReleasePolicy(body.releasePolicy)
            var importing = try keyImport(body.key)
            importing.attributes = body.attributes?.input ?? AttributeInput()
            importing.tags = body.tags
            return .json(render.bundle(try vault.importKey(name(request), importing)))
        })
        let get: RouteHandler = api("keys.get", .keysRead, .key) { request, render in
            .json(render.bundle(try vault.getKey(name(request), version: version(request))))
        }
        router.add(.GET, "/keys/{name}", get)
        router.add(.GET, "/keys/{name}/{version}", get)
        let update: RouteHandler = api("keys.update", .keysWrite, .key) { request, render in
            let body = try decode(UpdateKeyBody.self, request)
            try refuseReleasePolicy(body.releasePolicy)
            var update = KeyUpdate()
            update.operations = body.keyOps
            update.attributes = body.attributes?.input ?? AttributeInput()
            update.tags = body.tags
            return .json(render.bundle(try vault.updateKey(name(request), version: version(request), update)))
        }
        router.add(.PATCH, "/keys/{name}", update)
        router.add(.PATCH, "/keys/{name}/{version}", update)
        router.add(.GET, "/keys", api("keys.list", .keysRead, .keys) { request, render in
            let (maxResults, token) = try pageRequest(request)
            let page = try vault.listKeys(maxResults: maxResults, after: token)
            return .json(ListJSON(
                value: page.items.map { render.item($0, versioned: false) },
                nextLink: render.nextLink("/keys", token: page.nextToken, maxResults: maxResults)))
        })
        router.add(.GET, "/keys/{name}/versions", api("keys.list-versions", .keysRead, .key) { request, render in
            let (maxResults, token) = try pageRequest(request)
            let page = try vault.listVersions(name(request), maxResults: maxResults, after: token)
            return .json(ListJSON(
                value: page.items.map { render.item($0, versioned: true) },
                nextLink: render.nextLink("/keys/\(name(request))/versions", token: page.nextToken, maxResults: maxResults)))
        })
        router.add(.DELETE, "/keys/{name}", api("keys.delete", .keysDelete, .key) { request, render in
            .json(render.bundle(try vault.deleteKey(name(request))))
        })
        router.add(.POST, "/keys/{name}/backup", api("keys.backup", .keysBackup, .key) { request, _ in
            .json(ValueJSON(value: Base64URL.encode(try vault.backupKey(name(request)))))
        })
        router.add(.POST, "/keys/restore", api("keys.restore", .keysRestore, .keys) { request, render in
            let body = try decode(ValueBody.self, request)
            return .json(render.bundle(try vault.restoreKey(try bytes(body.value, field: "value"))))
        })
        router.add(.POST, "/keys/{name}/rotate", api("keys.rotate", .keysRotate, .key) { request, render in
            .json(render.bundle(try vault.rotateKey(name(request))))
        })
        router.add(.GET, "/keys/{name}/rotationpolicy", api("keys.get-rotation-policy", .keysRead, .key) { request, render in
            let key = try vault.getKey(name(request), version: nil)
            return .json(render.policy(key.name, try vault.rotationPolicy(name(request))))
        })
        router.add(.PUT, "/keys/{name}/rotationpolicy", api("keys.set-rotation-policy", .keysWrite, .key) { request, render in
            let body = try decode(RotationPolicyBody.self, request)
            let policy = try vault.setRotationPolicy(
                name(request), lifetimeActions: body.lifetimeActions ?? [], expiryTime: body.attributes?.expiryTime)
            return .json(render.policy(try vault.getKey(name(request), version: nil).name, policy))
        })
        for path in ["/keys/{name}/{version}/release", "/keys/{name}/release"] {
            router.add(.POST, path, api("keys.release", .keysRelease, .key) { _, _ in
                throw VaultError.notSupported("key release is not offered by hsmd")
            })
        }
        for path in ["/keys/{name}/{version}/attestation", "/keys/{name}/attestation"] {
            router.add(.GET, path, api("keys.attestation", .keysRead, .key) { _, _ in
                throw VaultError.notSupported("key attestation is not offered by hsmd: its keys live in SoftHSM2, which cannot attest them")
            })
        }
    }

    func registerDeletedKeyRoutes(in router: inout Router) {
        router.add(.GET, "/deletedkeys", api("deletedkeys.list", .deletedKeysRead, .keys) { request, render in
            let (maxResults, token) = try pageRequest(request)
            let page = try vault.listDeletedKeys(maxResults: maxResults, after: token)
            return .json(ListJSON(
                value: page.items.map { render.item($0, versioned: false) },
                nextLink: render.nextLink("/deletedkeys", token: page.nextToken, maxResults: maxResults)))
        })
        router.add(.GET, "/deletedkeys/{name}", api("deletedkeys.get", .deletedKeysRead, .key) { request, render in
            .json(render.bundle(try vault.getDeletedKey(name(request))))
        })
        router.add(.POST, "/deletedkeys/{name}/recover", api("deletedkeys.recover", .deletedKeysRecover, .key) { request, render in
            .json(render.bundle(try vault.recoverDeletedKey(name(request))))
        })
        router.add(.DELETE, "/deletedkeys/{name}", api("deletedkeys.purge", .deletedKeysDelete, .key) { request, _ in
            try vault.purgeDeletedKey(name(request))
            return Response(status: .noContent)
        })
    }

    private func refuseReleasePolicy(_ policy: AnyJSON?) throws(VaultError) {
        if policy != nil {
            throw .badParameter("release_policy: hsmd offers no key release, so keys take no release policy")
        }
    }

    /// The private JWK of an import request as key material for the token.
    private func keyImport(_ jwk: JSONWebKeyBody) throws(VaultError) -> KeyImport {
        guard let kty = jwk.kty, let type = KeyType(azureName: kty) else {
            throw .badParameter("key.kty must be RSA, RSA-HSM, EC, EC-HSM, oct or oct-HSM")
        }
        if jwk.keyHSM != nil {
            throw .badParameter("key.key_hsm: BYOK transfer blobs are not supported; import the private key parts")
        }
        func part(_ name: String, _ value: String?) throws(VaultError) -> [UInt8] {
            guard let value else { throw .badParameter("key.\(name) is required to import a \(type.rawValue) key") }
            return try bytes(value, field: "key.\(name)")
        }
        let material: ImportedKeyMaterial
        switch type {
        case .rsa:
            // The CRT parts are required: without them the token cannot wrap the key for backups.
            material = .rsa(.init(
                n: try part("n", jwk.n), e: try part("e", jwk.e), d: try part("d", jwk.d), p: try part("p", jwk.p),
                q: try part("q", jwk.q), dp: try part("dp", jwk.dp), dq: try part("dq", jwk.dq), qi: try part("qi", jwk.qi)))
        case .ec:
            guard let name = jwk.crv, let curve = Curve(rawValue: name) else {
                throw .badParameter("key.crv must be P-256, P-256K, P-384 or P-521")
            }
            material = .ec(curve: curve, d: try part("d", jwk.d), x: try part("x", jwk.x), y: try part("y", jwk.y))
        case .oct:
            material = .oct(key: try part("k", jwk.k))
        }
        var importing = KeyImport(type: type, material: material)
        importing.operations = jwk.keyOps
        return importing
    }
}
