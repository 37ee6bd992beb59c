import CPKCS11
import PKCS11

/// RSAES-OAEP with SHA-256 and MGF1-SHA-256, empty label (RFC 8017 §7.1), for a token that only
/// offers OAEP with SHA-1: the RSA primitive runs in the token (CKM_RSA_X_509) and the padding
/// here, with every hash computed by the token. Decoding is constant-time in the padding: one
/// result, decided after every byte was examined.
struct OAEPSHA256 {
    static let hashLength = 32
    let session: Session

    func encode(_ message: [UInt8], modulusSize k: Int, seed: [UInt8]) throws -> [UInt8] {
        let h = Self.hashLength
        var db = try labelHash()
        db += [UInt8](repeating: 0, count: k - message.count - 2 * h - 2)
        db.append(0x01)
        db += message
        let dbMask = try mgf1(seed, length: k - h - 1)
        let maskedDB = zip(db, dbMask).map { $0 ^ $1 }
        let seedMask = try mgf1(maskedDB, length: h)
        let maskedSeed = zip(seed, seedMask).map { $0 ^ $1 }
        db.zeroize()
        return [0x00] + maskedSeed + maskedDB
    }

    /// The message, or nil when the encoding is invalid (the caller reports one uniform error).
    func decode(_ encoded: [UInt8], modulusSize k: Int) throws -> [UInt8]? {
        let h = Self.hashLength
        guard k >= 2 * h + 2, encoded.count <= k else { return nil }
        var em = [UInt8](repeating: 0, count: k - encoded.count) + encoded
        defer { em.zeroize() }
        let maskedSeed = em[1...h]
        let maskedDB = Array(em[(h + 1)...])
        let seedMask = try mgf1(maskedDB, length: h)
        var seed = zip(maskedSeed, seedMask).map { $0 ^ $1 }
        defer { seed.zeroize() }
        let dbMask = try mgf1(seed, length: k - h - 1)
        var db = zip(maskedDB, dbMask).map { $0 ^ $1 }
        defer { db.zeroize() }
        let expectedLabelHash = try labelHash()

        var bad = em[0]
        for i in 0..<h { bad |= db[i] ^ expectedLabelHash[i] }
        var separatorFound: UInt8 = 0  // 0x00 until the 0x01 separator, then 0xFF
        var separatorIndex = 0
        for i in h..<db.count {
            let isOne = Self.equalMask(db[i], 0x01)
            let isZero = Self.equalMask(db[i], 0x00)
            let isFirstOne = isOne & ~separatorFound
            separatorIndex = Self.select(isFirstOne, i, separatorIndex)
            bad |= ~separatorFound & ~isZero & ~isOne
            separatorFound |= isOne
        }
        bad |= ~separatorFound
        guard bad == 0 else { return nil }
        return Array(db[(separatorIndex + 1)...])
    }

    private func labelHash() throws -> [UInt8] {
        try session.digest(Mechanism(CKM_SHA256), data: [])
    }

    private func mgf1(_ seed: [UInt8], length: Int) throws -> [UInt8] {
        var mask: [UInt8] = []
        mask.reserveCapacity(length + Self.hashLength)
        var counter: UInt32 = 0
        while mask.count < length {
            let counterBytes = withUnsafeBytes(of: counter.bigEndian) { Array($0) }
            mask += try session.digest(Mechanism(CKM_SHA256), data: seed + counterBytes)
            counter += 1
        }
        return Array(mask.prefix(length))
    }

    /// 0xFF when a == b, else 0x00, without a branch on the values.
    private static func equalMask(_ a: UInt8, _ b: UInt8) -> UInt8 {
        let difference = UInt32(a ^ b)
        return UInt8(truncatingIfNeeded: (difference &- 1) >> 8)
    }

    private static func select(_ mask: UInt8, _ whenSet: Int, _ otherwise: Int) -> Int {
        let wide = Int(Int8(bitPattern: mask))  // 0xFF → -1 (all ones), 0x00 → 0
        return (whenSet & wide) | (otherwise & ~wide)
    }
}
