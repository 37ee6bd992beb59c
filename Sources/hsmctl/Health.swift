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
        let response: HSMResponse
        do {
            response = try connection.client.send(.GET, "/health")
        } catch {
            throw CommandFailure.exit("\(error) — is hsmd running? Start it with: make run", code: CommandFailure.unreachable)
        }
        guard response.status == 200 else {
            throw CommandFailure.exit("hsmd answered \(response.status): \(String(decoding: response.body, as: UTF8.self))",
                                      code: CommandFailure.serverError)
        }
        if connection.output == .json {
            print(String(decoding: response.body, as: UTF8.self))
            return
        }
        let report = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        let token = report["token"] as? [String: Any] ?? [:]
        let rows = [
            ("status", "\(report["status"] ?? "?")"), ("version", "\(report["version"] ?? "?")"),
            ("uptime", "\(report["uptimeSeconds"] ?? "?") s"),
            ("token", "\(token["label"] ?? "?") (serial \(token["serialNumber"] ?? "?"))"),
            ("key versions", "\(token["keyVersions"] ?? "?")"), ("socket", connection.socket),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        for (name, value) in rows {
            print(name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value)
        }
    }
}
