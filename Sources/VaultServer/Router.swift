import NIOHTTP1

/// How a route runs: cheap answers on the event loop, token work on the blocking pool.
public enum RouteHandler: Sendable {
    case immediate(@Sendable (Request) -> Response)
    case blocking(@Sendable (Request) throws -> Response)
}

/// Finds the handler of a request by method and path. Patterns are segments, literal or
/// `{parameter}`; literals match case-insensitively (Azure's identifiers are case-insensitive), and
/// where two patterns serve the request, the one with more literal segments wins (`POST /keys/restore`
/// over `/keys/{name}`; `GET /keys/restore` still reaches a key named "restore"). An empty last
/// segment (`/keys/k/`) matches a parameter as "".
public struct Router: Sendable {
    private struct Route: Sendable {
        let segments: [Segment]
        let literalCount: Int
        var handlers: [String: Entry]
    }

    private struct Entry: Sendable {
        let handler: RouteHandler
        let isPublic: Bool
        let servesWhileDegraded: Bool
    }

    /// A request matched to what serves it.
    struct Routed {
        let handler: RouteHandler
        let request: Request
        /// Served to HTTPS callers without a bearer token.
        let isPublic: Bool
        /// Runs even while the audit log refuses requests (health and readiness must say why).
        let servesWhileDegraded: Bool
    }

    private enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    private var routes: [Route] = []

    public init() {}

    /// Adds a route. A public route serves HTTPS callers without a bearer token (the OAuth2 and
    /// OpenID endpoints that hand tokens out); one that serves while degraded runs even when the
    /// audit log cannot be written (it is still audited when it can be).
    public mutating func add(
        _ method: HTTPMethod, _ pattern: String, public isPublic: Bool = false, servesWhileDegraded: Bool = false,
        _ handler: RouteHandler
    ) {
        let entry = Entry(handler: handler, isPublic: isPublic, servesWhileDegraded: servesWhileDegraded)
        let segments = Self.split(pattern).map { part -> Segment in
            part.hasPrefix("{") && part.hasSuffix("}") ? .parameter(String(part.dropFirst().dropLast())) : .literal(part.lowercased())
        }
        if let index = routes.firstIndex(where: { $0.segments == segments }) {
            routes[index].handlers[method.rawValue] = entry
        } else {
            let literals = segments.filter { if case .literal = $0 { true } else { false } }.count
            routes.append(Route(segments: segments, literalCount: literals, handlers: [method.rawValue: entry]))
        }
    }

    /// The handler for a request, with the path's parameters filled in. Among the patterns that
    /// match the path, the most literal one that serves the method wins; a path matched only by
    /// patterns without the method is 405.
    func route(_ request: Request) -> Routed {
        let parts = Self.split(request.path)
        var best: (entry: Entry, literals: Int, parameters: [String: String])?
        var allowed = Set<String>()
        for route in routes where route.segments.count == parts.count {
            guard let parameters = Self.match(route.segments, parts) else { continue }
            allowed.formUnion(route.handlers.keys)
            guard let entry = route.handlers[request.method.rawValue] else { continue }
            if best == nil || route.literalCount > best!.literals { best = (entry, route.literalCount, parameters) }
        }
        if let best {
            var routed = request
            routed.parameters = best.parameters
            return Routed(
                handler: best.entry.handler, request: routed, isPublic: best.entry.isPublic,
                servesWhileDegraded: best.entry.servesWhileDegraded)
        }
        if allowed.isEmpty {
            return Routed(handler: .immediate { _ in
                .error(.notFound, code: "NotFound", message: "no operation is served at \(request.path)")
            }, request: request, isPublic: false, servesWhileDegraded: false)
        }
        let methods = allowed.sorted().joined(separator: ", ")
        return Routed(handler: .immediate { _ in
            var response = Response.error(
                .methodNotAllowed, code: "MethodNotAllowed",
                message: "\(request.method.rawValue) is not allowed on \(request.path); use \(methods)")
            response.headers.add(name: "allow", value: methods)
            return response
        }, request: request, isPublic: false, servesWhileDegraded: false)
    }

    private static func split(_ path: String) -> [String] {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.first == "" { parts.removeFirst() }
        return parts
    }

    private static func match(_ segments: [Segment], _ parts: [String]) -> [String: String]? {
        var parameters: [String: String] = [:]
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let literal):
                guard part.lowercased() == literal else { return nil }
            case .parameter(let name):
                parameters[name] = part.removingPercentEncoding ?? part
            }
        }
        return parameters
    }
}
