/// Why hsmd cannot start on a state directory. Each message tells the operator what to do.
public enum ProvisioningError: Error, CustomStringConvertible, Sendable {
    case alreadyRunning(String)
    case stateDirectory(String)
    case foreignDirectory(String)
    case pin(String)
    case token(String)

    public var description: String {
        switch self {
        case .alreadyRunning(let message), .stateDirectory(let message), .foreignDirectory(let message),
            .pin(let message), .token(let message):
            message
        }
    }
}
