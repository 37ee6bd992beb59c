"""The HTTPS listener as any client sees it: the challenge, tokens, the OAuth2 and OpenID endpoints."""
import http.client
import json
import ssl
import urllib.parse
import uuid

import hsmdtest as h


def https(daemon, host="localhost"):
    context = ssl.create_default_context(cafile=str(daemon.ca))
    return http.client.HTTPSConnection(host, daemon.port, context=context, timeout=30)


def call(daemon, method, path, body=None, token=None, host="localhost", form=None):
    connection = https(daemon, host)
    headers = {}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(payload) if payload else None


def test_a_request_without_a_token_is_challenged_and_never_acted_on(hsmd_https):
    name = f"challenged-{uuid.uuid4().hex[:8]}"
    status, headers, body = call(hsmd_https, "POST", f"/keys/{name}/create?api-version=7.5", {"kty": "EC-HSM"})
    assert status == 401 and body is None
    assert headers["www-authenticate"] == (
        f'Bearer authorization="https://localhost:{hsmd_https.port}/00000000-0000-4000-8000-000000000001", '
        f'resource="https://localhost:{hsmd_https.port}"')
    assert hsmd_https.daemon.client.get(f"/keys/{name}").status == 404, "the bodiless first request must not create anything"


def test_kids_use_the_authority_the_request_came_in_on(hsmd_https):
    token = hsmd_https.token("uid:0").token.token
    name = f"authority-{uuid.uuid4().hex[:8]}"
    status, _, body = call(hsmd_https, "POST", f"/keys/{name}/create?api-version=7.5", {"kty": "EC-HSM"}, token=token,
                           host="127.0.0.1")
    assert status == 200, body
    assert body["key"]["kid"].startswith(f"https://127.0.0.1:{hsmd_https.port}/keys/{name}/")
    socket_view = hsmd_https.daemon.client.get(f"/keys/{name}").json
    assert socket_view["key"]["kid"].startswith(f"https://localhost/keys/{name}/"), "the socket keeps --authority"


def test_the_token_endpoint_refuses_what_it_should(hsmd_https):
    registered = h.ok(hsmd_https.daemon.client.post("/hsmd/clients", {"principal": "uid:0"}), 201)
    tenant = registered["tenant"]
    scope = f"https://localhost:{hsmd_https.port}/.default"
    base = {"grant_type": "client_credentials", "client_id": registered["clientId"], "scope": scope}
    status, _, body = call(hsmd_https, "POST", f"/{tenant}/oauth2/v2.0/token", form={**base, "client_secret": "wrong"})
    assert (status, body["error"]) == (401, "invalid_client")
    status, _, body = call(hsmd_https, "POST", f"/{tenant}/oauth2/v2.0/token",
                           form={**base, "client_secret": registered["clientSecret"], "scope": "https://vault.azure.net/.default"})
    assert (status, body["error"]) == (400, "invalid_scope")
    status, _, body = call(hsmd_https, "POST", f"/{tenant}/oauth2/v2.0/token",
                           form={**base, "client_secret": registered["clientSecret"], "grant_type": "password"})
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    status, _, body = call(hsmd_https, "POST", f"/{tenant}/oauth2/v2.0/token", form={**base, "client_secret": registered["clientSecret"]})
    assert status == 200 and body["token_type"] == "Bearer"
    status, _, _ = call(hsmd_https, "GET", "/keys?api-version=7.5", token=body["access_token"])
    assert status == 200
    # A removed client gets no more tokens.
    assert hsmd_https.daemon.client.delete(f"/hsmd/clients/{registered['clientId']}").status == 204
    status, _, body = call(hsmd_https, "POST", f"/{tenant}/oauth2/v2.0/token", form={**base, "client_secret": registered["clientSecret"]})
    assert status == 401


def test_openid_metadata_and_keys(hsmd_https):
    status, _, metadata = call(hsmd_https, "GET", "/00000000-0000-4000-8000-000000000001/v2.0/.well-known/openid-configuration")
    assert status == 200
    assert metadata["token_endpoint"] == f"https://localhost:{hsmd_https.port}/00000000-0000-4000-8000-000000000001/oauth2/v2.0/token"
    status, _, jwks = call(hsmd_https, "GET", "/00000000-0000-4000-8000-000000000001/discovery/v2.0/keys")
    assert status == 200 and jwks["keys"][0]["crv"] == "P-256" and "d" not in jwks["keys"][0]


def test_only_administrators_hand_out_tokens_and_clients(hsmd_https):
    outsider = hsmd_https.token("someone").token.token
    status, _, body = call(hsmd_https, "POST", "/hsmd/tokens?api-version=7.6", {"principal": "uid:0"}, token=outsider)
    assert status == 403 and body["error"]["innererror"]["code"] == "ForbiddenByRbac"
    status, _, body = call(hsmd_https, "POST", "/hsmd/clients?api-version=7.6", {"principal": "uid:0"}, token=outsider)
    assert status == 403
