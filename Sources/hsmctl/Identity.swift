import ArgumentParser
import Foundation
import HSMClient

/// What HTTPS callers (Azure's SDKs) need: the CA to trust, and bearer tokens or client secrets.
struct TLS: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The HTTPS listener's CA certificate.",
        discussion: "Examples:\n  hsmctl tls ca > hsmd-ca.pem        # then: connection_verify=\"hsmd-ca.pem\" in Azure's Python SDK",
        subcommands: [CA.self])

    struct CA: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the CA certificate (PEM) that signed hsmd's HTTPS certificate.",
            discussion: "Examples:\n  hsmctl tls ca > hsmd-ca.pem")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let response: HSMResponse
            do {
                response = try connection.client.send(.GET, "/hsmd/ca")
            } catch {
                throw CommandFailure.exit("\(error) — is hsmd running? Start it with: make run", code: CommandFailure.unreachable)
            }
            guard response.status == 200 else {
                throw CommandFailure.exit("HTTPS is off: start hsmd with --tls-port PORT", code: CommandFailure.notFound)
            }
            FileHandle.standardOutput.write(Data(response.body))
        }
    }
}

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bearer tokens for HTTPS callers.",
        discussion: "Examples:\n  hsmctl token issue --principal ci-signer --ttl 3600",
        subcommands: [Issue.self])

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a bearer token naming a principal (administrators only).",
            discussion: """
                The token is signed by a key in hsmd's token; RBAC then treats its bearer as the principal.
                Examples:
                  hsmctl token issue --principal ci-signer --ttl 3600
                """)
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "The principal the token names (uid:N, gid:N or any name you assign roles to).") var principal: String
        @Option(help: "Lifetime in seconds, 60 to 86400.") var ttl = 3600
        @Option(help: "The audience (https://NAME:PORT of the listener); default: hsmd's first.") var audience: String?

        func run() throws {
            var body: [String: Any] = ["principal": principal, "ttlSeconds": ttl]
            if let audience { body["audience"] = audience }
            let json = try connection.call(.POST, "/hsmd/tokens", body: body)
            connection.render(json) {
                print(json["access_token"] as? String ?? "")
            }
        }
    }
}

struct Client: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "OAuth2 clients for azure-identity's ClientSecretCredential.",
        discussion: """
            Examples:
              hsmctl client add --principal ci-signer
              hsmctl client list
              hsmctl client remove 3f2b…
            """,
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a client acting as a principal; prints its secret, which is never shown again.",
            discussion: "Examples:\n  hsmctl client add --principal ci-signer")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "The principal the client acts as.") var principal: String

        func run() throws {
            let json = try connection.call(.POST, "/hsmd/clients", body: ["principal": principal])
            connection.render(json) {
                printTable(["FIELD", "VALUE"], [
                    ["tenant", json["tenant"] as? String ?? ""], ["client_id", json["clientId"] as? String ?? ""],
                    ["client_secret", json["clientSecret"] as? String ?? ""], ["principal", principal],
                ])
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the registered clients (without secrets).", discussion: "Examples:\n  hsmctl client list")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let json = try connection.call(.GET, "/hsmd/clients")
            connection.render(json) {
                let rows = (json["value"] as? [[String: Any]] ?? []).map {
                    [$0["clientId"] as? String ?? "", $0["principal"] as? String ?? ""]
                }
                printTable(["CLIENT_ID", "PRINCIPAL"], rows)
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a client: its secret stops working at once.",
            discussion: "Examples:\n  hsmctl client remove 55dd6833-a8f6-45f1-b8a3-0d47ee96a4a4")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The client id.") var clientID: String

        func run() throws {
            _ = try connection.call(.DELETE, "/hsmd/clients/\(clientID)")
            print("removed client \(clientID)")
        }
    }
}
