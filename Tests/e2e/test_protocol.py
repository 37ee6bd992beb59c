"""HTTP and API-wide behaviour: api-version, request ids, error shape, routing, body decoding,
base64url, body size limit, key names, tags."""
import hashlib
import json
import re
import socket
from urllib.parse import urlsplit

import pytest

import hsmdtest as h
from hsmdtest import expect_error, ok

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_health(client):
    health = ok(client.get("/health", api=None))
    assert health["status"] == "ok"
    assert isinstance(health["token"]["keyVersions"], int)


# --- api-version -------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/keys", None),
    ("GET", "/keys/some-key", None),
    ("POST", "/keys/some-key/create", {"kty": "EC"}),
    ("POST", "/rng", {"count": 4}),
    ("GET", "/deletedkeys", None),
])
def test_missing_api_version(client, method, path, body):
    response = client.request(method, path, body, api=None)
    expect_error(response, 400, "BadParameter", contains="api-version")


@pytest.mark.parametrize("version", ["7.3", "7.0", "2016-10-01", "7.5-preview", "latest", ""])
def test_unknown_api_version(client, version):
    response = client.get(f"/keys?api-version={version}", api=None)
    expect_error(response, 400, "BadParameter")
    if version:
        assert "not recognized" in response.message


def test_api_version_checked_before_anything_else(client, name):
    # No key is created when the api-version is wrong.
    expect_error(client.post(f"/keys/{name}/create", {"kty": "EC"}, api="7.2"), 400, "BadParameter")
    expect_error(client.get(f"/keys/{name}"), 404, "KeyNotFound")


@pytest.mark.parametrize("version", h.API_VERSIONS)
def test_every_served_api_version(client, ec_keys, version):
    key = ec_keys["P-256"]
    bundle = ok(client.get(urlsplit(key["key"]["kid"]).path, api=version))
    assert bundle["key"]["kid"] == key["key"]["kid"]
    # hsmPlatform is in the 7.5 schema and later, not in 7.4.
    if version == "7.4":
        assert "hsmPlatform" not in bundle["attributes"]
    else:
        assert bundle["attributes"]["hsmPlatform"] == "2"


# --- request ids, error shape, routing --------------------------------------------------------------


def test_every_response_has_a_fresh_request_id(client, name):
    responses = [
        client.get("/health", api=None),
        client.get("/keys"),
        client.get(f"/keys/{name}"),                        # 404
        client.get("/no/such/route"),                       # router 404
        client.post("/rng", raw=b"{"),                      # 400
        client.delete("/rng"),                              # 405
    ]
    ids = [r.headers["x-ms-request-id"] for r in responses]
    assert all(UUID_RE.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("path", ["/nothing", "/keys/a/b/c/d/e", "/secrets/x", "/"])
def test_unknown_path_is_404(client, path):
    expect_error(client.get(path), 404, "NotFound")


def test_wrong_method_is_405(client):
    expect_error(client.delete("/rng"), 405, "MethodNotAllowed")
    expect_error(client.request("PUT", "/keys/restore2/backup"), 405)


def test_error_shape_on_not_found_key(client, name):
    response = expect_error(client.get(f"/keys/{name}"), 404, "KeyNotFound")
    assert name in response.message
    assert set(response.json) == {"error"}
    assert set(response.error) <= {"code", "message", "innererror"}


@pytest.mark.parametrize("method,suffix,body", [
    ("GET", "", None),
    ("GET", "/", None),
    ("GET", "/0123456789abcdef0123456789abcdef", None),
    ("GET", "/versions", None),
    ("PATCH", "", {"tags": {"a": "b"}}),
    ("DELETE", "", None),
    ("POST", "/backup", None),
    ("POST", "/rotate", None),
    ("GET", "/rotationpolicy", None),
    ("PUT", "/rotationpolicy", {"lifetimeActions": []}),
    ("POST", "/sign", {"alg": "ES256", "value": h.b64e(bytes(32))}),
    ("POST", "/0123456789abcdef0123456789abcdef/verify", {"alg": "ES256", "digest": h.b64e(bytes(32)), "value": "AA"}),
    ("POST", "/encrypt", {"alg": "A256GCM", "value": "AA"}),
    ("POST", "/decrypt", {"alg": "RSA-OAEP", "value": "AA"}),
    ("POST", "/wrapkey", {"alg": "A256KW", "value": h.b64e(bytes(16))}),
    ("POST", "/unwrapkey", {"alg": "A256KW", "value": h.b64e(bytes(24))}),
])
def test_unknown_key_is_404_key_not_found(client, name, method, suffix, body):
    expect_error(client.request(method, f"/keys/{name}{suffix}", body), 404, "KeyNotFound")


@pytest.mark.parametrize("method,suffix", [("GET", ""), ("POST", "/recover"), ("DELETE", "")])
def test_unknown_deleted_key_is_404(client, name, method, suffix):
    expect_error(client.request(method, f"/deletedkeys/{name}{suffix}"), 404, "KeyNotFound")


def test_repeated_slashes_and_versionless_crypto_path(client, ec_keys):
    key = ec_keys["P-256"]
    name, version = h.kid_parts(key["key"]["kid"])
    assert ok(client.get(f"//keys//{name}"))["key"]["kid"] == key["key"]["kid"]
    # Clients that do not know the version send /keys/{name}//sign.
    result = ok(client.post(f"/keys/{name}//sign", {"alg": "ES256", "value": h.b64e(bytes(32))}))
    assert result["kid"] == key["key"]["kid"]


# --- body decoding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"kty": EC}', b'{"kty": "EC"', b"\xff\xfe"])
def test_bad_json_is_400(client, name, raw):
    response = expect_error(client.post(f"/keys/{name}/create", raw=raw), 400, "BadParameter")
    assert "json" in response.message.lower()


def test_empty_body_is_400(client, name):
    expect_error(client.post(f"/keys/{name}/create"), 400, "BadParameter", contains="body")
    expect_error(client.post("/rng"), 400, "BadParameter")


@pytest.mark.parametrize("path,body,field", [
    ("/keys/{name}/create", {}, "kty"),
    ("/keys/{name}/create", {"key_size": 2048}, "kty"),
    ("/keys/{name}", {"tags": {}}, "key"),
    ("/rng", {}, "count"),
    ("/keys/restore", {}, "value"),
])
def test_missing_required_field_is_named(client, name, path, body, field):
    method = "PUT" if path == "/keys/{name}" else "POST"
    response = expect_error(client.request(method, path.format(name=name), body), 400, "BadParameter")
    assert re.search(rf"\b{re.escape(field)} is required", response.message), response


def test_missing_crypto_fields_are_named(client, ec_keys):
    kid = ec_keys["P-256"]["key"]["kid"]
    response = expect_error(client.op(kid, "sign", {"alg": "ES256"}), 400, "BadParameter")
    assert "value is required" in response.message
    response = expect_error(client.op(kid, "verify", {"alg": "ES256", "value": "AA"}), 400, "BadParameter")
    assert "digest is required" in response.message
    response = expect_error(client.op(kid, "sign", {"value": h.b64e(bytes(32))}), 400, "BadParameter")
    assert "alg is required" in response.message


@pytest.mark.parametrize("path,body,field", [
    ("/keys/{name}/create", {"kty": 5}, "kty"),
    ("/keys/{name}/create", {"kty": "EC", "key_size": "256"}, "key_size"),
    ("/keys/{name}/create", {"kty": "EC", "key_ops": "sign"}, "key_ops"),
    ("/keys/{name}/create", {"kty": "EC", "attributes": {"enabled": "yes"}}, "attributes.enabled"),
    ("/keys/{name}/create", {"kty": "EC", "attributes": {"exp": "tomorrow"}}, "attributes.exp"),
    ("/keys/{name}/create", {"kty": "EC", "tags": {"a": 1}}, "tags.a"),
    ("/rng", {"count": "5"}, "count"),
    ("/rng", {"count": None}, "count"),
])
def test_wrong_type_is_named(client, name, path, body, field):
    response = expect_error(client.post(path.format(name=name), body), 400, "BadParameter")
    assert response.message.startswith(field + " must be"), response


def test_unknown_fields_are_ignored(client, name):
    bundle = ok(client.post(f"/keys/{name}/create", {"kty": "EC", "crv": "P-256", "whatever": [1, 2, 3]}))
    assert bundle["key"]["kty"] == "EC-HSM"


@pytest.mark.parametrize("value", ["not base64!", "a$b", "A"])
def test_invalid_base64url_is_400(client, ec_keys, value):
    kid = ec_keys["P-256"]["key"]["kid"]
    response = expect_error(client.op(kid, "sign", {"alg": "ES256", "value": value}), 400, "BadParameter")
    assert "value" in response.message


def test_padded_base64url_is_accepted(client, ec_keys):
    key = ec_keys["P-256"]
    message = b"padded input"
    d = hashlib.sha256(message).digest()               # 32 bytes: 43 characters + one '='
    padded = h.b64e_padded(d)
    assert padded.endswith("=")
    signature = h.b64d(ok(client.op(key["key"]["kid"], "sign", {"alg": "ES256", "value": padded}))["value"])
    h.verify_locally(key["key"], "ES256", message, signature)
    # A 64-byte signature: 86 characters + '=='.
    padded_signature = h.b64e_padded(signature)
    assert padded_signature.endswith("==")
    body = {"alg": "ES256", "digest": padded, "value": padded_signature}
    assert ok(client.op(key["key"]["kid"], "verify", body))["value"] is True


# --- body size ----------------------------------------------------------------------------------------


def test_body_over_one_mib_is_413(client, name):
    body = json.dumps({"kty": "EC", "filler": "x" * (1 << 20)}).encode()
    assert len(body) > 1 << 20
    response = expect_error(client.post(f"/keys/{name}/create", raw=body), 413, "RequestTooLarge")
    assert response.headers.get("connection", "").lower() == "close"
    expect_error(client.get(f"/keys/{name}"), 404, "KeyNotFound")


def test_body_of_exactly_one_mib_is_accepted(client, name):
    prefix, suffix = b'{"kty":"EC","filler":"', b'"}'
    body = prefix + b"x" * ((1 << 20) - len(prefix) - len(suffix)) + suffix
    assert len(body) == 1 << 20
    assert ok(client.post(f"/keys/{name}/create", raw=body))["key"]["kty"] == "EC-HSM"


def test_keep_alive_connection_serves_several_requests(hsmd):
    connection = h.UnixHTTPConnection(str(hsmd.socket_path))
    try:
        for _ in range(3):
            connection.request("GET", "/keys?api-version=7.5&maxresults=1")
            response = connection.getresponse()
            assert response.status == 200
            assert response.getheader("x-ms-request-id")
            json.loads(response.read())
    finally:
        connection.close()


# --- names and tags ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["bad_name", "a.b", "x" * 128, "sp%20ace", "caf%C3%A9", "under%5Fscore"])
def test_invalid_key_name_is_400(client, bad):
    expect_error(client.post(f"/keys/{bad}/create", {"kty": "EC"}), 400, "BadParameter", contains="name")
    expect_error(client.put(f"/keys/{bad}", {"key": h.oct_jwk(bytes(32))}), 400, "BadParameter", contains="name")


def test_longest_key_name_is_accepted(client):
    name = ("n" + h.unique_name()).ljust(127, "0")
    assert len(name) == 127
    bundle = ok(client.post(f"/keys/{name}/create", {"kty": "EC"}))
    assert h.kid_parts(bundle["key"]["kid"])[0] == name


def test_names_are_case_insensitive_and_keep_their_spelling(client):
    name = "CaseKey-" + h.unique_name()
    first = client.create_key(name, {"kty": "EC"})
    fetched = ok(client.get(f"/keys/{name.lower()}"))
    assert fetched["key"]["kid"] == first["key"]["kid"]
    assert h.kid_parts(fetched["key"]["kid"])[0] == name
    # Creating under another spelling adds a version to the same key.
    second = client.create_key(name.upper(), {"kty": "EC"})
    assert h.kid_parts(second["key"]["kid"])[0] == name
    versions = client.pages(f"/keys/{name}/versions")
    assert len([item for page in versions for item in page["value"]]) == 2


def tags(count, length=5):
    return {f"t{i:02d}".ljust(length, "x"): "v" for i in range(count)}


def test_fifteen_tags_accepted_sixteen_refused(client, name):
    bundle = ok(client.post(f"/keys/{name}/create", {"kty": "EC", "tags": tags(15)}))
    assert bundle["tags"] == tags(15)
    other = h.unique_name()
    expect_error(client.post(f"/keys/{other}/create", {"kty": "EC", "tags": tags(16)}), 400, "BadParameter",
                 contains="tags")
    expect_error(client.get(f"/keys/{other}"), 404)
    expect_error(client.put(f"/keys/{other}", {"key": h.oct_jwk(bytes(16)), "tags": tags(16)}), 400, "BadParameter")
    expect_error(client.patch(f"/keys/{name}", {"tags": tags(16)}), 400, "BadParameter", contains="tags")
    assert ok(client.get(f"/keys/{name}"))["tags"] == tags(15)


def test_tag_lengths(client, name):
    ok(client.post(f"/keys/{name}/create", {"kty": "EC", "tags": {"n" * 256: "v" * 256}}))
    expect_error(client.patch(f"/keys/{name}", {"tags": {"n" * 257: "v"}}), 400, "BadParameter", contains="tags")
    expect_error(client.patch(f"/keys/{name}", {"tags": {"n": "v" * 257}}), 400, "BadParameter", contains="tags")
    expect_error(client.patch(f"/keys/{name}", {"tags": {"": "v"}}), 400, "BadParameter", contains="tags")


def test_raw_socket_http11(hsmd):
    """A hand-written request on the raw socket: the server speaks plain HTTP/1.1."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(hsmd.socket_path))
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"x-ms-request-id:" in head.lower()
    assert json.loads(body)["status"] == "ok"


def test_key_named_like_a_route_literal(client):
    """"restore" is a valid key name ([0-9a-zA-Z-]); POST /keys/restore is the restore operation, but
    GET/PATCH/PUT/DELETE /keys/restore address the key named "restore" (Azure routes by method and path)."""
    bundle = ok(client.post("/keys/restore/create", {"kty": "EC"}))
    assert h.kid_parts(bundle["key"]["kid"])[0] == "restore"
    assert ok(client.get("/keys/restore/"))["key"]["kid"] == bundle["key"]["kid"]
    assert ok(client.get("/keys/restore"))["key"]["kid"] == bundle["key"]["kid"]
    assert ok(client.patch("/keys/restore", {"tags": {"a": "b"}}))["tags"] == {"a": "b"}
    ok(client.put("/keys/restore", {"key": h.oct_jwk(bytes(range(16)))}))
    ok(client.delete("/keys/restore"))
    assert client.delete("/deletedkeys/restore").status == 204
