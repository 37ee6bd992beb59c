import BigInt
import Foundation

extension ImportedKeyMaterial.RSAPrivateComponents {
    /// Why the parts cannot be one RSA key, or nil. The token's sign-and-verify check after an import
    /// is not enough: SoftHSM2 signs with whichever of d and the CRT parts is right, so a key with a
    /// wrong half would pass it and fail later, or elsewhere.
    func consistencyProblem() -> String? {
        let (n, e, d) = (BigUInt(Data(self.n)), BigUInt(Data(self.e)), BigUInt(Data(self.d)))
        let (p, q) = (BigUInt(Data(self.p)), BigUInt(Data(self.q)))
        let (dp, dq, qi) = (BigUInt(Data(self.dp)), BigUInt(Data(self.dq)), BigUInt(Data(self.qi)))
        guard p > 1, q > 1, p * q == n else { return "p × q is not n" }
        let (p1, q1) = (p - 1, q - 1)
        guard (e * d) % p1 == 1, (e * d) % q1 == 1 else { return "d is not the private exponent of e for p and q" }
        guard dp == d % p1, dq == d % q1 else { return "dp and dq are not d mod (p−1) and d mod (q−1)" }
        guard (qi * q) % p == 1 else { return "qi is not the inverse of q mod p" }
        return nil
    }
}
