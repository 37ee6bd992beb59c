"""Helpers for hsmd's end-to-end tests: the daemon process, HTTP/1.1 over its Unix socket (standard
http.client only), base64url, and JWK <-> `cryptography` conversions (the independent implementation).

Every response the client receives is checked for the invariants that hold for all of hsmd's answers:
an x-ms-request-id header, Azure's error shape on errors, and no private key material anywhere.
"""
from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_API = "7.5"
AUTHORITY = "https://localhost"
API_VERSIONS = ("7.4", "7.5", "7.6", "2025-07-01")

# JWK members that carry private or secret key material: never allowed in a response.
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k", "key_hsm")

CURVES = {"P-256": ec.SECP256R1, "P-256K": ec.SECP256K1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
COORDINATE_SIZE = {"P-256": 32, "P-256K": 32, "P-384": 48, "P-521": 66}
ES_CURVE = {"ES256": "P-256", "ES256K": "P-256K", "ES384": "P-384", "ES512": "P-521"}
HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}

RSA_DEFAULT_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]
EC_DEFAULT_OPS = ["sign", "verify"]
OCT_DEFAULT_OPS = ["encrypt", "decrypt", "wrapKey", "unwrapKey"]

VERSION_RE = re.compile(r"^[0-9a-f]{32}$")


# --------------------------------------------------------------------------------------------------
# base64url and names


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64e_padded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def b64d(text: str) -> bytes:
    assert isinstance(text, str), f"expected a base64url string, got {text!r}"
    assert "=" not in text and "+" not in text and "/" not in text, f"hsmd must send unpadded base64url: {text!r}"
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def as_int(text: str) -> int:
    return int.from_bytes(b64d(text), "big")


def to_bytes(number: int, size: int | None = None) -> bytes:
    size = size or max(1, (number.bit_length() + 7) // 8)
    return number.to_bytes(size, "big")


def unique_name(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def hash_for(alg: str) -> hashes.HashAlgorithm:
    return HASHES[alg[-3:] if not alg.endswith("K") else "256"]()


def digest(alg: str, message: bytes) -> bytes:
    h = hashes.Hash(hash_for(alg))
    h.update(message)
    return h.finalize()


# --------------------------------------------------------------------------------------------------
# HTTP over AF_UNIX


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client's HTTP/1.1 connection, connected to a Unix domain socket."""

    def __init__(self, socket_path: str, timeout: float = 60.0):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class Response:
    def __init__(self, method: str, target: str, status: int, headers: dict[str, str], body: bytes):
        self.method = method
        self.target = target
        self.status = status
        self.headers = headers
        self.body = body
        self.json = json.loads(body) if body else None

    @property
    def error(self) -> dict:
        assert self.json and "error" in self.json, f"not an error response: {self}"
        return self.json["error"]

    @property
    def code(self) -> str:
        return self.error["code"]

    @property
    def inner_code(self) -> str | None:
        inner = self.error.get("innererror")
        return inner.get("code") if inner else None

    @property
    def message(self) -> str:
        return self.error["message"]

    def __repr__(self) -> str:
        text = self.body[:600].decode(errors="replace")
        return f"<{self.method} {self.target} -> {self.status} {text}>"


def check_no_private_material(value, where: str = "$") -> None:
    """Walks a JSON value; every JWK-like object (one with kty) must carry only public parts."""
    if isinstance(value, dict):
        if "kty" in value:
            leaked = [m for m in PRIVATE_MEMBERS if m in value]
            assert not leaked, f"private key material {leaked} in response at {where}: {value}"
            if str(value["kty"]).startswith("oct"):
                extra = [m for m in ("n", "e", "x", "y", "crv") if m in value]
                assert not extra, f"an oct key must come with no material at all; found {extra} at {where}"
        for member, child in value.items():
            check_no_private_material(child, f"{where}.{member}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            check_no_private_material(child, f"{where}[{index}]")


def check_invariants(response: Response) -> None:
    request_id = response.headers.get("x-ms-request-id")
    assert request_id, f"no x-ms-request-id header: {response}"
    if response.body:
        assert response.headers.get("content-type", "").startswith("application/json"), response
        check_no_private_material(response.json)
    if response.status >= 400:
        assert isinstance(response.json, dict) and set(response.json) == {"error"}, f"error shape: {response}"
        error = response.json["error"]
        assert isinstance(error.get("code"), str) and error["code"], f"error.code: {response}"
        assert isinstance(error.get("message"), str) and error["message"], f"error.message: {response}"
        if "innererror" in error:
            assert isinstance(error["innererror"].get("code"), str), f"innererror.code: {response}"


_DEFAULT = object()


class Client:
    def __init__(self, socket_path: str, api: str = DEFAULT_API):
        self.socket_path = socket_path
        self.api = api
        self.request_ids: list[str] = []

    def request(self, method: str, path: str, body=None, *, api=_DEFAULT, raw: bytes | None = None,
                headers: dict | None = None, timeout: float = 60.0) -> Response:
        """One request on its own connection. `path` may carry a query; api-version is appended unless
        `api` is None or the path already names one."""
        api = self.api if api is _DEFAULT else api
        target = path
        if api is not None and "api-version=" not in path:
            target += ("&" if "?" in path else "?") + "api-version=" + api
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        send_headers = {"Accept": "application/json"}
        if data is not None:
            send_headers["Content-Type"] = "application/json"
        send_headers.update(headers or {})
        connection = UnixHTTPConnection(self.socket_path, timeout=timeout)
        try:
            connection.request(method, target, body=data, headers=send_headers)
            answer = connection.getresponse()
            payload = answer.read()
            received = {name.lower(): value for name, value in answer.getheaders()}
            response = Response(method, target, answer.status, received, payload)
        finally:
            connection.close()
        check_invariants(response)
        self.request_ids.append(response.headers["x-ms-request-id"])
        return response

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # Key-level shortcuts that insist on success.

    def create_key(self, name: str, body: dict, api=_DEFAULT) -> dict:
        return ok(self.post(f"/keys/{name}/create", body, api=api))

    def import_key(self, name: str, jwk: dict, api=_DEFAULT, **fields) -> dict:
        return ok(self.put(f"/keys/{name}", {"key": jwk, **fields}, api=api))

    def op(self, kid_or_name: str, operation: str, body: dict, api=_DEFAULT) -> Response:
        """POST a crypto operation. Accepts a kid (versioned) or a bare name (latest)."""
        path = urlsplit(kid_or_name).path if kid_or_name.startswith("http") else f"/keys/{kid_or_name}"
        return self.post(f"{path}/{operation}", body, api=api)

    def pages(self, path: str, api=_DEFAULT) -> list[dict]:
        """Follows nextLink from `path` to the end; returns every page."""
        pages = []
        response = ok_response(self.get(path, api=api))
        for _ in range(10_000):
            page = response.json
            assert set(page) == {"value", "nextLink"}, f"page shape: {page}"
            assert isinstance(page["value"], list)
            pages.append(page)
            link = page["nextLink"]
            if link is None:
                return pages
            assert link.startswith(AUTHORITY + "/"), f"nextLink must be absolute on {AUTHORITY}: {link}"
            parts = urlsplit(link)
            response = ok_response(self.get(f"{parts.path}?{parts.query}", api=None))
        raise AssertionError("nextLink never ended")


def ok_response(response: Response, status: int = 200) -> Response:
    assert response.status == status, f"expected {status}: {response}"
    return response


def ok(response: Response, status: int = 200):
    return ok_response(response, status).json


def expect_error(response: Response, status: int, code: str | None = None, inner: str | None = None,
                 contains: str | None = None) -> Response:
    assert response.status == status, f"expected {status} {code or ''}: {response}"
    if code is not None:
        assert response.code == code, f"expected code {code}: {response}"
    if inner is not None:
        assert response.inner_code == inner, f"expected innererror {inner}: {response}"
    if contains is not None:
        assert contains.lower() in response.message.lower(), f"expected message to mention {contains!r}: {response}"
    return response


def kid_parts(kid: str) -> tuple[str, str | None]:
    """(name, version) of a kid on hsmd's authority."""
    assert kid.startswith(AUTHORITY + "/keys/"), kid
    rest = kid[len(AUTHORITY + "/keys/"):].split("/")
    assert len(rest) in (1, 2), kid
    return rest[0], (rest[1] if len(rest) == 2 else None)


def version_of(bundle: dict) -> str:
    name, version = kid_parts(bundle["key"]["kid"])
    assert version and VERSION_RE.match(version), bundle["key"]["kid"]
    return version


# --------------------------------------------------------------------------------------------------
# JWK <-> cryptography


def public_key(jwk: dict):
    if jwk["kty"].startswith("RSA"):
        return rsa.RSAPublicNumbers(as_int(jwk["e"]), as_int(jwk["n"])).public_key()
    # Constructing the key checks that the point is on the curve.
    return ec.EllipticCurvePublicNumbers(as_int(jwk["x"]), as_int(jwk["y"]), CURVES[jwk["crv"]]()).public_key()


def rsa_private_jwk(key: rsa.RSAPrivateKey, kty: str = "RSA") -> dict:
    n = key.private_numbers()
    return {"kty": kty, "n": b64e(to_bytes(n.public_numbers.n)), "e": b64e(to_bytes(n.public_numbers.e)),
            "d": b64e(to_bytes(n.d)), "p": b64e(to_bytes(n.p)), "q": b64e(to_bytes(n.q)),
            "dp": b64e(to_bytes(n.dmp1)), "dq": b64e(to_bytes(n.dmq1)), "qi": b64e(to_bytes(n.iqmp))}


def ec_private_jwk(key: ec.EllipticCurvePrivateKey, crv: str, kty: str = "EC") -> dict:
    n, size = key.private_numbers(), COORDINATE_SIZE[crv]
    return {"kty": kty, "crv": crv, "d": b64e(to_bytes(n.private_value, size)),
            "x": b64e(to_bytes(n.public_numbers.x, size)), "y": b64e(to_bytes(n.public_numbers.y, size))}


def oct_jwk(k: bytes, kty: str = "oct", key_ops: list[str] | None = None) -> dict:
    jwk = {"kty": kty, "k": b64e(k)}
    if key_ops is not None:
        jwk["key_ops"] = key_ops
    return jwk


def raw_to_der(signature: bytes) -> bytes:
    half = len(signature) // 2
    return utils.encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))


def der_to_raw(signature: bytes, crv: str) -> bytes:
    r, s = utils.decode_dss_signature(signature)
    size = COORDINATE_SIZE[crv]
    return to_bytes(r, size) + to_bytes(s, size)


def pss(alg: str) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hash_for(alg)), salt_length=hash_for(alg).digest_size)


def rsa_encryption_padding(alg: str):
    if alg == "RSA1_5":
        return padding.PKCS1v15()
    h = hashes.SHA1() if alg == "RSA-OAEP" else hashes.SHA256()
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def verify_locally(jwk: dict, alg: str, message: bytes, signature: bytes) -> None:
    """Raises InvalidSignature unless `signature` (Azure's encoding) is valid for `message`."""
    key = public_key(jwk)
    prehashed = utils.Prehashed(hash_for(alg))
    d = digest(alg, message)
    if alg.startswith("RS"):
        key.verify(signature, d, padding.PKCS1v15(), prehashed)
    elif alg.startswith("PS"):
        key.verify(signature, d, pss(alg), prehashed)
    else:
        assert len(signature) == 2 * COORDINATE_SIZE[jwk["crv"]], f"raw r||s length for {jwk['crv']}"
        key.verify(raw_to_der(signature), d, ec.ECDSA(prehashed))


# --------------------------------------------------------------------------------------------------
# The daemon


def hsmd_binary() -> Path:
    override = os.environ.get("HSMD_BIN")
    return Path(override) if override else REPO_ROOT / ".build" / "debug" / "hsmd"


def terminate(process: subprocess.Popen | None, timeout: float, log) -> int | None:
    """SIGTERM and wait for the exit code; a daemon that does not stop in time is killed and the
    test fails with `log()`. None if there was no process."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"hsmd did not stop within {timeout}s of SIGTERM:\n{log()}")
    return process.returncode


class Daemon:
    """One hsmd process on a fresh state directory under a temp dir (kept short: socket paths are
    limited to ~107 bytes). The log goes beside the state directory, which must start empty.
    After stop(), start() runs a new hsmd process on the same state directory; the log keeps every run."""

    def __init__(self, *args: str, binary: Path | None = None):
        self.binary = Path(binary or hsmd_binary())
        self.args = list(args)
        self.workdir = Path(tempfile.mkdtemp(prefix="hsmd-e2e-"))
        self.state_dir = self.workdir / "state"
        self.socket_path = self.state_dir / "hsmd.sock"
        self.log_path = self.workdir / "hsmd.log"
        self.process: subprocess.Popen | None = None
        self.client = Client(str(self.socket_path))

    def start(self, timeout: float = 60.0) -> "Daemon":
        if not self.binary.is_file():
            raise RuntimeError(f"hsmd binary not found at {self.binary}: run `swift build` or set HSMD_BIN")
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                [str(self.binary), "--state-dir", str(self.state_dir), *self.args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hsmd exited with {self.process.returncode} while starting:\n{self.log_tail()}")
            if self.socket_path.exists():
                try:
                    if self.client.get("/health", api=None, timeout=5).status == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"hsmd did not answer GET /health within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then wait; returns the exit code (None if it was never started)."""
        return terminate(self.process, timeout, self.log_tail)

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def serving(daemon: Daemon):
    """Starts `daemon` and yields it; on leaving, SIGTERM must stop it with exit code 0. Its whole log
    is kept in `daemon.log_text` before the work directory goes."""
    try:
        daemon.start()
    except Exception:
        daemon.stop()
        daemon.cleanup()
        raise
    try:
        yield daemon
    finally:
        code = daemon.stop()
        log = daemon.log_tail()
        try:
            daemon.log_text = daemon.log_path.read_text(errors="replace")
        except OSError:
            daemon.log_text = ""
        daemon.cleanup()
    assert code == 0, f"hsmd exited with {code} after SIGTERM:\n{log}"


def check_bundle(bundle: dict, name: str, kty: str, key_ops: list[str] | None = None,
                 retention_days: int = 90, recovery_level: str = "Recoverable+Purgeable") -> str:
    """Checks a KeyBundle's shape; returns its version."""
    assert set(bundle) <= {"key", "attributes", "tags", "managed", "recoveryId", "deletedDate", "scheduledPurgeDate"}, bundle
    key = bundle["key"]
    kid_name, version = kid_parts(key["kid"])
    assert kid_name.lower() == name.lower(), key["kid"]
    assert version and VERSION_RE.match(version), key["kid"]
    assert key["kty"] == kty, key
    if key_ops is not None:
        assert key["key_ops"] == key_ops, key
    attributes = bundle["attributes"]
    assert attributes["enabled"] in (True, False)
    assert isinstance(attributes["created"], int) and isinstance(attributes["updated"], int)
    assert attributes["updated"] >= attributes["created"]
    assert abs(attributes["created"] - time.time()) < 86_400 * 366 * 5  # plausible unix seconds
    assert attributes["recoverableDays"] == retention_days
    assert attributes["recoveryLevel"] == recovery_level
    assert attributes["exportable"] is False
    if kty == "RSA-HSM":
        assert set(key) == {"kid", "kty", "key_ops", "n", "e"}, key
        assert key["e"] == "AQAB"
        public_key(key)
    elif kty == "EC-HSM":
        assert set(key) == {"kid", "kty", "key_ops", "crv", "x", "y"}, key
        assert len(b64d(key["x"])) == len(b64d(key["y"])) == COORDINATE_SIZE[key["crv"]]
        public_key(key)  # on the curve
    else:
        assert set(key) == {"kid", "kty", "key_ops"}, key
    return version


def items(pages: list[dict]) -> list[dict]:
    return [item for page in pages for item in page["value"]]


def path_of(kid: str) -> str:
    """The path of a kid, to send over the socket."""
    return urlsplit(kid).path
