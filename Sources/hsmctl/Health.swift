import ArgumentParser
import Foundation
import HSMClient

struct Health: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show whether hsmd is up, and the token it serves.",
        discussion: """
            Examples:
              hsmctl health
              hsmctl health --socket /run/hsmd/hsmd.sock --output json
            """)

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let report = try connection.health()
        connection.render(report) {
            let token = report["token"] as? [String: Any] ?? [:]
            printFields([
                ("status", "\(report["status"] ?? "?")"), ("version", "\(report["version"] ?? "?")"),
                ("uptime", "\(report["uptimeSeconds"] ?? "?") s"),
                ("token", "\(token["label"] ?? "?") (serial \(token["serialNumber"] ?? "?"))"),
                ("key versions", "\(token["keyVersions"] ?? "?")"), ("socket", connection.socket),
            ])
        }
    }
}

extension ConnectionOptions {
    /// `GET /health`, the one route that takes no api-version and that every caller may use.
    func health() throws -> [String: Any] {
        let response: HSMResponse
        do {
            response = try client.send(.GET, "/health")
        } catch {
            throw CommandFailure.exit("\(error) — is hsmd running? Start it with: make run", code: CommandFailure.unreachable)
        }
        guard response.status == 200, let report = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] else {
            throw CommandFailure.exit("hsmd answered \(response.status): \(String(decoding: response.body, as: UTF8.self))",
                                      code: CommandFailure.serverError)
        }
        return report
    }
}
