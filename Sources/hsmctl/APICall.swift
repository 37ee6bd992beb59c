import ArgumentParser
import Foundation
import HSMClient
import NIOHTTP1

/// One call to hsmd's API, with failures turned into hsmctl's one-line errors and exit codes.
extension ConnectionOptions {
    static let apiVersion = "7.6"

    func call(
        _ method: HTTPMethod, _ path: String, query: String = "", body: [String: Any]? = nil, progress: String? = nil
    ) throws -> [String: Any] {
        do {
            return try request(method, path, query: query, body: body, progress: progress)
        } catch {
            throw error.reported()
        }
    }

    /// Like `call`, but the caller decides what a failure means.
    func request(
        _ method: HTTPMethod, _ path: String, query: String = "", body: [String: Any]? = nil, progress: String? = nil
    ) throws(APIFailure) -> [String: Any] {
        try send(method, "\(path)?api-version=\(Self.apiVersion)\(query.isEmpty ? "" : "&" + query)", body: body, progress: progress)
    }

    /// Every item of a paged list, as one page.
    func callAllPages(_ path: String) throws -> [String: Any] {
        do {
            return try requestAllPages(path)
        } catch {
            throw error.reported()
        }
    }

    /// Follows `nextLink`, which hsmd writes on its authority: only the link's path and query are used.
    func requestAllPages(_ path: String) throws(APIFailure) -> [String: Any] {
        var page = try request(.GET, path)
        var items = page["value"] as? [Any] ?? []
        while let link = page["nextLink"] as? String, let next = URLComponents(string: link), let query = next.percentEncodedQuery {
            page = try send(.GET, "\(next.percentEncodedPath)?\(query)", body: nil, progress: nil)
            items += page["value"] as? [Any] ?? []
        }
        return ["value": items, "nextLink": NSNull()]
    }

    private func send(_ method: HTTPMethod, _ target: String, body: [String: Any]?, progress: String?) throws(APIFailure) -> [String: Any] {
        let response: HSMResponse
        do {
            let bytes = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) }
            response = try ProgressLine.around(progress ?? "waiting for hsmd") { try client.send(method, target, body: bytes) }
        } catch {
            throw APIFailure(message: "\(error) — is hsmd running? Start it with: make run", exitCode: CommandFailure.unreachable)
        }
        let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        guard (200..<300).contains(response.status) else {
            let error = json["error"] as? [String: Any]
            let code = error?["code"] as? String ?? "HTTP\(response.status)"
            let inner = (error?["innererror"] as? [String: Any])?["code"] as? String
            let message = error?["message"] as? String ?? "hsmd answered \(response.status)"
            let exitCode: Int32 = switch response.status {
            case 400, 409, 413: CommandFailure.invalid
            case 403: CommandFailure.forbidden
            case 404: CommandFailure.notFound
            default: CommandFailure.serverError
            }
            throw APIFailure(message: "\(code)\(inner.map { " (\($0))" } ?? ""): \(message)", exitCode: exitCode)
        }
        return json
    }

    /// Prints the API's JSON for `--output json`, or the table view for people.
    func render(_ json: [String: Any], table: () throws -> Void) rethrows {
        if output == .json {
            printJSON(json)
        } else {
            try table()
        }
    }
}

/// A request hsmd refused or could not answer: one line for stderr, and hsmctl's exit code for it.
struct APIFailure: Error {
    let message: String
    let exitCode: Int32

    /// Writes the line to stderr, and gives the exit code to end with.
    func reported() -> ExitCode { CommandFailure.exit(message, code: exitCode) }
}

/// An API answer read into the shapes hsmctl's tables show.
func decode<Value: Decodable>(_ type: Value.Type, _ json: [String: Any]) throws -> Value {
    do {
        return try JSONDecoder().decode(Value.self, from: JSONSerialization.data(withJSONObject: json))
    } catch {
        throw CommandFailure.exit("hsmd answered JSON of an unexpected shape: \(error)", code: CommandFailure.serverError)
    }
}

/// Prints rows as aligned columns under a header.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    for row in [header] + rows {
        print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
            .trimmingCharacters(in: .whitespaces))
    }
}

/// Prints name–value pairs, the names aligned.
func printFields(_ fields: [(String, String)]) {
    let width = fields.map(\.0.count).max() ?? 0
    for (name, value) in fields {
        print(name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value)
    }
}

func printJSON(_ value: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
        print(String(decoding: data, as: UTF8.self))
    }
}
