import CPKCS11

/// A PKCS#11 call that did not return CKR_OK. Keeps the specification's name of the code and the
/// function that returned it, so that logs and the server's error mapping read like the standard.
public struct P11Error: Error, Equatable, CustomStringConvertible, Sendable {
    public let code: CK_RV
    public let function: String

    public init(_ code: CK_RV, in function: String) {
        self.code = code
        self.function = function
    }

    /// The code's name as PKCS#11 spells it, e.g. `CKR_ATTRIBUTE_SENSITIVE`.
    public var name: String { ReturnValueNames.name(of: code) }

    public var description: String { "\(function) failed: \(name)" }
}

@inline(__always)
func check(_ code: CK_RV, _ function: StaticString) throws(P11Error) {
    if code != CK_RV(CKR_OK) {
        throw P11Error(code, in: "\(function)")
    }
}

/// Errors of the wrapper itself, before or around a PKCS#11 call.
public enum PKCS11LoadError: Error, CustomStringConvertible, Sendable {
    case cannotLoad(path: String, reason: String)
    case missingFunction(String)

    public var description: String {
        switch self {
        case let .cannotLoad(path, reason): "cannot load the PKCS#11 module \(path): \(reason)"
        case let .missingFunction(name): "the PKCS#11 module does not implement \(name)"
        }
    }
}
