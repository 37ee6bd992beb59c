import NIOCore
import NIOHTTP1

/// A request encoded once and sent many times over a keep-alive connection.
struct PreparedRequest: Sendable {
    let head: HTTPRequestHead
    let body: ByteBuffer?

    init(_ method: HTTPMethod, _ target: String, json: [UInt8]? = nil) {
        var headers = HTTPHeaders([("host", "localhost"), ("content-length", "\(json?.count ?? 0)")])
        if json != nil { headers.add(name: "content-type", value: "application/json") }
        head = HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: headers)
        body = json.map { ByteBuffer(bytes: $0) }
    }
}

/// A whole answer, for the requests that set a run up.
struct BenchResponse: Sendable {
    let status: UInt
    let body: [UInt8]
}

enum ConnectionError: Error, CustomStringConvertible {
    case closed
    case busy

    var description: String {
        switch self {
        case .closed: "hsmd closed the connection"
        case .busy: "a connection runs one job at a time"
        }
    }
}
