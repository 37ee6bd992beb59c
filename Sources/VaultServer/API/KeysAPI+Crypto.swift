import Vault

extension VaultAPI {
    func registerCryptoRoutes(in router: inout Router) {
        for operation in ["sign", "verify", "encrypt", "decrypt", "wrapkey", "unwrapkey"] {
            let handler = cryptoHandler(operation)
            // Clients that do not know the version send `/keys/{name}//sign`, which arrives as `/keys/{name}/sign`.
            router.add(.POST, "/keys/{name}/{version}/\(operation)", handler)
            router.add(.POST, "/keys/{name}/\(operation)", handler)
        }
        router.add(.POST, "/rng", api("rng", .random, .root) { request, _ in
            let body = try decode(RandomBytesBody.self, request)
            return .json(ValueJSON(value: Base64URL.encode(try vault.randomBytes(count: body.count))))
        })
    }

    private static let cryptoActions: [String: DataAction] = [
        "sign": .keysSign, "verify": .keysVerify, "encrypt": .keysEncrypt, "decrypt": .keysDecrypt,
        "wrapkey": .keysWrap, "unwrapkey": .keysUnwrap,
    ]

    private func cryptoHandler(_ operation: String) -> RouteHandler {
        api("keys.\(operation)", Self.cryptoActions[operation]!, .key) { request, render in
            switch operation {
            case "sign":
                let body = try decode(SignBody.self, request)
                let (bundle, signature) = try vault.sign(
                    name(request), version: version(request), algorithm: try signatureAlgorithm(body.alg, render),
                    digest: try bytes(body.value, field: "value"))
                return .json(KeyOperationResultJSON(kid: render.kid(bundle), value: Base64URL.encode(signature)))
            case "verify":
                let body = try decode(VerifyBody.self, request)
                let valid = try vault.verify(
                    name(request), version: version(request), algorithm: try signatureAlgorithm(body.alg, render),
                    digest: try bytes(body.digest, field: "digest"), signature: try bytes(body.value, field: "value"))
                return .json(VerifyResultJSON(value: valid))
            case "encrypt":
                let body = try decode(KeyOperationBody.self, request)
                let (bundle, sealed) = try vault.encrypt(
                    name(request), version: version(request), algorithm: try encryptionAlgorithm(body.alg),
                    plaintext: try bytes(body.value, field: "value"), iv: try optionalBytes(body.iv, field: "iv"),
                    aad: try optionalBytes(body.aad, field: "aad"))
                return .json(KeyOperationResultJSON(
                    kid: render.kid(bundle), value: Base64URL.encode(sealed.value), iv: sealed.iv.map(Base64URL.encode),
                    tag: sealed.tag.map(Base64URL.encode), aad: try optionalBytes(body.aad, field: "aad").map(Base64URL.encode)))
            case "decrypt":
                let body = try decode(KeyOperationBody.self, request)
                let (bundle, plaintext) = try vault.decrypt(
                    name(request), version: version(request), algorithm: try encryptionAlgorithm(body.alg),
                    ciphertext: try bytes(body.value, field: "value"), iv: try optionalBytes(body.iv, field: "iv"),
                    aad: try optionalBytes(body.aad, field: "aad"), tag: try optionalBytes(body.tag, field: "tag"))
                return .json(KeyOperationResultJSON(kid: render.kid(bundle), value: Base64URL.encode(plaintext)))
            case "wrapkey":
                let body = try decode(KeyOperationBody.self, request)
                try refuseCipherParameters(body, operation)
                let (bundle, wrapped) = try vault.wrapKey(
                    name(request), version: version(request), algorithm: try wrapAlgorithm(body.alg, render),
                    keyBytes: try bytes(body.value, field: "value"))
                return .json(KeyOperationResultJSON(kid: render.kid(bundle), value: Base64URL.encode(wrapped)))
            default:
                let body = try decode(KeyOperationBody.self, request)
                try refuseCipherParameters(body, operation)
                let (bundle, keyBytes) = try vault.unwrapKey(
                    name(request), version: version(request), algorithm: try wrapAlgorithm(body.alg, render),
                    wrapped: try bytes(body.value, field: "value"))
                return .json(KeyOperationResultJSON(kid: render.kid(bundle), value: Base64URL.encode(keyBytes)))
            }
        }
    }

    private func refuseCipherParameters(_ body: KeyOperationBody, _ operation: String) throws(VaultError) {
        if body.iv != nil || body.aad != nil || body.tag != nil {
            throw .badParameter("iv, aad and tag are for encrypt and decrypt, not \(operation)")
        }
    }

    private func signatureAlgorithm(_ name: String, _ render: Renderer) throws(VaultError) -> SignatureAlgorithm {
        guard let algorithm = SignatureAlgorithm(rawValue: name) else {
            throw .badParameter("alg: '\(name.prefix(30))' is not a signature algorithm (\(SignatureAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if [.hs256, .hs384, .hs512].contains(algorithm) && render.apiVersion < .v7_6 {
            throw .badParameter("alg: \(name) needs api-version 7.6 or later")
        }
        return algorithm
    }

    private func encryptionAlgorithm(_ name: String) throws(VaultError) -> EncryptionAlgorithm {
        guard let algorithm = EncryptionAlgorithm(rawValue: name) else {
            throw .badParameter("alg: '\(name.prefix(30))' is not an encryption algorithm (\(EncryptionAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return algorithm
    }

    private func wrapAlgorithm(_ name: String, _ render: Renderer) throws(VaultError) -> WrapAlgorithm {
        guard let algorithm = WrapAlgorithm(rawValue: name) else {
            throw .badParameter("alg: '\(name.prefix(30))' is not a key-wrap algorithm (\(WrapAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if [.aesKeyWrap, .aesKeyWrapPad].contains(algorithm) && render.apiVersion < .v7_6 {
            throw .badParameter("alg: \(name) needs api-version 7.6 or later")
        }
        return algorithm
    }
}
