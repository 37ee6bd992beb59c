import CPKCS11
import PKCS11

/// Why a key operation in the token did not happen. Messages name the problem and never contain
/// key material or payload bytes, so the server may pass them on to the caller as they are.
public enum TokenKeyError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The request is malformed: a wrong length, a missing IV, an unsupported size.
    case invalidInput(String)
    /// The algorithm does not fit the key (type, size or curve).
    case algorithmMismatch(String)
    /// The key does not allow this operation.
    case operationNotPermitted(String)
    /// Decryption or unwrapping failed: bad padding, a tampered tag or a wrong key. Deliberately
    /// says nothing more, so that it cannot serve as a padding oracle.
    case decryptionFailed
    case keyNotFound(TokenKeyID)
    /// The token refused or failed; the PKCS#11 code is kept for the operator's log.
    case token(P11Error)

    /// The token no longer knows a handle hsmd holds: the objects changed under it.
    var isStaleHandle: Bool {
        guard case .token(let error) = self else { return false }
        return [CKR_OBJECT_HANDLE_INVALID, CKR_KEY_HANDLE_INVALID, CKR_GENERAL_ERROR].map(CK_RV.init).contains(error.code)
    }

    public var description: String {
        switch self {
        case .invalidInput(let reason), .algorithmMismatch(let reason), .operationNotPermitted(let reason):
            reason
        case .decryptionFailed:
            "decryption failed: the ciphertext, its IV or tag, or the key is wrong"
        case .keyNotFound(let id):
            "no token object for key \(id.name) version \(id.version)"
        case .token(let error):
            "the token failed: \(error)"
        }
    }
}

/// Runs a token call and turns a PKCS#11 failure into `TokenKeyError.token`.
@inline(__always)
func inToken<R>(_ body: () throws -> R) throws(TokenKeyError) -> R {
    do {
        return try body()
    } catch let error as TokenKeyError {
        throw error
    } catch let error as P11Error where error.code == CKR_KEY_FUNCTION_NOT_PERMITTED {
        throw .operationNotPermitted("the key's usage flags in the token do not allow this operation")
    } catch let error as P11Error {
        throw .token(error)
    } catch {
        throw .invalidInput("\(error)")
    }
}
