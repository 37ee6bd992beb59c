import ArgumentParser
import Foundation
import HSMClient
import NIOHTTP1

/// One call to hsmd's API, with failures turned into hsmctl's one-line errors and exit codes.
extension ConnectionOptions {
    static let apiVersion = "7.6"

    func call(_ method: HTTPMethod, _ path: String, query: String = "", body: [String: Any]? = nil) throws -> [String: Any] {
        let target = "\(path)?api-version=\(Self.apiVersion)\(query.isEmpty ? "" : "&" + query)"
        let response: HSMResponse
        do {
            let bytes = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) }
            response = try client.send(method, target, body: bytes)
        } catch {
            throw CommandFailure.exit("\(error) — is hsmd running? Start it with: make run", code: CommandFailure.unreachable)
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
            throw CommandFailure.exit("\(code)\(inner.map { " (\($0))" } ?? ""): \(message)", code: exitCode)
        }
        return json
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

func printJSON(_ value: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
        print(String(decoding: data, as: UTF8.self))
    }
}
