import NIOHTTP1

/// How a route runs: cheap answers on the event loop, token work on the blocking pool.
public enum RouteHandler: Sendable {
    case immediate(@Sendable (Request) -> Response)
    case blocking(@Sendable (Request) throws -> Response)
}

/// Finds the handler of a request by method and path.
public struct Router: Sendable {
    private var routes: [String: [String: RouteHandler]] = [:]

    public init() {}

    public mutating func add(_ method: HTTPMethod, _ path: String, _ handler: RouteHandler) {
        routes[path, default: [:]][method.rawValue] = handler
    }

    func handler(for request: Request) -> RouteHandler {
        guard let methods = routes[request.path] else {
            return .immediate { _ in
                .error(.notFound, code: "NotFound", message: "no operation is served at \(request.path)")
            }
        }
        guard let handler = methods[request.method.rawValue] else {
            let allowed = methods.keys.sorted().joined(separator: ", ")
            return .immediate { _ in
                .error(.methodNotAllowed, code: "MethodNotAllowed",
                       message: "\(request.method.rawValue) is not allowed on \(request.path); use \(allowed)")
            }
        }
        return handler
    }
}
