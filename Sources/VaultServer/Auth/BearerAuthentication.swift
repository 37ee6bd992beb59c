import NIOHTTP1

/// What HTTPS callers must present: an `Authorization: Bearer` token hsmd issued. A request without
/// one is answered 401 with the challenge Azure's SDKs expect, before its body is looked at (the
/// SDKs' first request arrives with its body stripped and must never be acted on).
public struct BearerAuthentication: Sendable {
    let tokens: BearerTokens
    let tenant: String

    public init(tokens: BearerTokens, tenant: String) {
        self.tokens = tokens
        self.tenant = tenant
    }

    /// The request with its token's subject, or the 401 to answer instead.
    func authenticate(_ request: Request) -> Result<Request, Failure> {
        guard let header = request.headers.first(name: "authorization") else {
            return .failure(Failure(response: challenge(request, error: nil)))
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            return .failure(Failure(response: challenge(request, error: "invalid_request")))
        }
        do {
            var authenticated = request
            authenticated.tokenSubject = try tokens.subject(of: String(parts[1]).trimmingCharacters(in: .whitespaces))
            return .success(authenticated)
        } catch {
            return .failure(Failure(response: challenge(request, error: "invalid_token", description: error.description)))
        }
    }

    struct Failure: Error {
        let response: Response
    }

    /// 401 with an empty body, as Managed HSM answers, and `WWW-Authenticate: Bearer authorization=…, resource=…`.
    private func challenge(_ request: Request, error: String?, description: String? = nil) -> Response {
        let authority = request.authority ?? tokens.audiences.first ?? "https://localhost"
        var value = "Bearer authorization=\"\(authority)/\(tenant)\", resource=\"\(authority)\""
        if let error { value += ", error=\"\(error)\"" }
        if let description { value += ", error_description=\"\(description)\"" }
        var response = Response(status: .unauthorized)
        response.headers.add(name: "www-authenticate", value: value)
        return response
    }
}
