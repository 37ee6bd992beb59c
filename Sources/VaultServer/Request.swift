import Foundation
import NIOCore
import NIOHTTP1

/// Where a connection comes from.
public enum Caller: Sendable, Equatable {
    /// The Unix socket: the kernel names the peer.
    case socket(PeerCredentials)
    /// HTTPS: the peer proves who it is with a bearer token on each request.
    case network(remote: String)
    /// Plain HTTP on a loopback port: the kernel's socket table names the uid that owns the peer's socket.
    case loopback(uid: UInt32)
}

/// One HTTP request as the routes see it: the whole body already read, and the id that the
/// response and the logs carry.
public struct Request: Sendable {
    public let method: HTTPMethod
    /// The path without its query, with repeated slashes collapsed (clients send `///providers`).
    public let path: String
    public let query: [String: String]
    public let headers: HTTPHeaders
    public let body: ByteBuffer?
    public let requestID: String
    /// Who sent it: on the Unix socket, as the kernel reported when the connection was accepted.
    public let caller: Caller
    /// The subject of the bearer token that authenticated a network caller.
    public internal(set) var tokenSubject: String?
    /// The path's `{parameters}`, filled in by the router.
    public internal(set) var parameters: [String: String] = [:]

    init(head: HTTPRequestHead, body: ByteBuffer?, caller: Caller, requestID: String) {
        self.caller = caller
        method = head.method
        headers = head.headers
        self.body = body
        self.requestID = requestID
        let target = Self.originForm(head.uri).split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = Self.collapsingSlashes(target.first.map(String.init) ?? "/")
        query = target.count > 1 ? Self.parseFields(target[1]) : [:]
    }

    /// The base URL a network caller reached hsmd on (`https://` + Host), for kids and links; nil on
    /// the socket, where the configured authority applies.
    public var authority: String? {
        guard case .network = caller, let host = headers.first(name: "host"), !host.isEmpty,
            host.utf8.allSatisfy({ $0 < 0x80 && ($0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
                || $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0 | 0x20)) })
        else { return nil }
        return "https://\(host)"
    }

    /// A target in absolute form (`http://host/keys?…`, which RFC 9112 §3.2.2 says a server must
    /// accept) as its path and query.
    private static func originForm(_ uri: String) -> Substring {
        let lowered = uri.prefix(8).lowercased()
        guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://"), let scheme = uri.range(of: "://") else {
            return Substring(uri)
        }
        let rest = uri[scheme.upperBound...]
        return rest.firstIndex { $0 == "/" || $0 == "?" }.map { rest[$0...].hasPrefix("?") ? "/" + rest[$0...] : rest[$0...] } ?? "/"
    }

    private static func collapsingSlashes(_ path: String) -> String {
        var result = ""
        result.reserveCapacity(path.utf8.count)
        var previousWasSlash = false
        for character in path {
            if character == "/" && previousWasSlash { continue }
            previousWasSlash = character == "/"
            result.append(character)
        }
        return result.isEmpty ? "/" : result
    }

    /// `name=value&…` pairs, percent-decoded; in a form body (`plusIsSpace`) `+` is a space. A name
    /// that does not decode is dropped and a value that does not decode is empty: never a trap.
    static func parseFields(_ text: Substring, plusIsSpace: Bool = false) -> [String: String] {
        func decoded(_ part: Substring) -> String? {
            (plusIsSpace ? part.replacingOccurrences(of: "+", with: " ") : String(part)).removingPercentEncoding
        }
        var parameters: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = parts.first.flatMap(decoded) else { continue }
            parameters[name] = parts.count > 1 ? decoded(parts[1]) ?? "" : ""
        }
        return parameters
    }
}
