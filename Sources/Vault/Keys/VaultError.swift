/// Why a vault operation failed, in the terms of Azure's error responses. Messages name the field
/// or the rule at fault, and never carry key material or payload bytes.
public enum VaultError: Error, Equatable, Sendable {
    /// 400 BadParameter.
    case badParameter(String)
    /// 404 KeyNotFound for a key (or version) that is not there, or is deleted.
    case keyNotFound(String)
    /// 404 KeyNotFound on /deletedkeys.
    case deletedKeyNotFound(String)
    /// 409 Conflict, innererror ObjectIsDeletedButRecoverable.
    case deletedButRecoverable(String)
    /// 409 Conflict.
    case conflict(String)
    /// 403 Forbidden with an inner code: KeyDisabled, KeyNotYetValid, KeyExpired, KeyOperationForbidden,
    /// PurgeProtected.
    case forbidden(innerCode: String, message: String)
    /// 401: a network caller without a valid bearer token.
    case unauthenticated
    /// 403 Forbidden, innererror ForbiddenByRbac: no role assignment allows the action at the scope.
    case forbiddenByRBAC(String)
    /// 404 with a code of its own (RoleDefinitionNotFound, RoleAssignmentNotFound).
    case notFound(code: String, message: String)
    /// 501: a part of Azure's API hsmd does not offer.
    case notSupported(String)
    /// 500: the token or the metadata store failed; details go to the operator's log only.
    case internalFailure(String)
    /// 500 with a message for the caller: the token no longer holds a version's material.
    case materialMissing(String)
    /// 503: the environment stops hsmd from recording the request (disk full, store locked or
    /// read-only); retrying once the operator has fixed it will work.
    case unavailable(String)
}

extension VaultError {
    /// Maps the token layer's errors for an operation on one key version.
    init(_ error: TokenKeyError) {
        switch error {
        case .invalidInput(let message), .algorithmMismatch(let message):
            self = .badParameter(message)
        case .operationNotPermitted(let message):
            self = .forbidden(innerCode: "KeyOperationForbidden", message: message)
        case .decryptionFailed:
            self = .badParameter(error.description)
        case .keyNotFound(let id):
            self = .materialMissing(
                "the token no longer holds the material of key \(id.name) version \(id.version); the operator must restore the token from a backup")
        case .token(let tokenError):
            self = .internalFailure("\(tokenError)")
        }
    }
}

/// Runs a token call and maps its failure to a `VaultError`.
@inline(__always)
func inVault<R>(_ body: () throws -> R) throws(VaultError) -> R {
    do {
        return try body()
    } catch let error as VaultError {
        throw error
    } catch let error as TokenKeyError {
        throw VaultError(error)
    } catch {
        throw .internalFailure("\(error)")
    }
}
