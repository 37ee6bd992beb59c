enum BenchError: Error, CustomStringConvertible {
    case setup(String)
    case run(String)

    var description: String {
        switch self {
        case .setup(let reason): "set-up failed: \(reason)"
        case .run(let reason): reason
        }
    }
}
