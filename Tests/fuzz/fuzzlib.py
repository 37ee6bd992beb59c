"""Shared machinery of the hostile-input suite (issue #9): raw HTTP/1.1 over hsmd's Unix socket (and over
its HTTPS listener), the invariants every answer must satisfy, the daemon under test (restarted if a case
kills it), the key pool the fuzzers aim at, and the catalogue of known defects.

Nothing here is mocked: every request goes to a real hsmd on a real SoftHSM2 token.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "Tests" / "e2e"))
import hsmdtest as h  # noqa: E402  (the e2e suite's Daemon, JWK and base64url helpers)

API = "7.6"                      # HS* and CKM_AES_KEY_WRAP* need 7.6: the fuzzers reach every algorithm
API_VERSIONS = h.API_VERSIONS
INT64_MAX = 2**63 - 1
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PROVIDER = "/providers/Microsoft.Authorization"

# --------------------------------------------------------------------------------------------------
# Modes


def examples(default: int) -> int:
    """Examples per property: `default` in the CI run, HSMD_FUZZ_EXAMPLES (an integer) in a long run."""
    value = os.environ.get("HSMD_FUZZ_EXAMPLES")
    return int(value) if value else default


def long_mode() -> bool:
    return bool(os.environ.get("HSMD_FUZZ_EXAMPLES"))


def hsmctl_binary() -> Path:
    """HSMCTL_BIN, else the hsmctl beside HSMD_BIN, else .build/debug/hsmctl."""
    if os.environ.get("HSMCTL_BIN"):
        return Path(os.environ["HSMCTL_BIN"])
    if os.environ.get("HSMD_BIN"):
        sibling = Path(os.environ["HSMD_BIN"]).parent / "hsmctl"
        if sibling.is_file():
            return sibling
    return REPO_ROOT / ".build" / "debug" / "hsmctl"


def hsmctl(*args: str, socket_path: Path, timeout: float = 60) -> str:
    binary = hsmctl_binary()
    if not binary.is_file():
        raise RuntimeError(f"hsmctl not found at {binary}: run `swift build` or set HSMCTL_BIN")
    done = subprocess.run([str(binary), *args, "--socket", str(socket_path)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"hsmctl {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


# --------------------------------------------------------------------------------------------------
# Raw HTTP/1.1


class Hang(AssertionError):
    """hsmd did not answer (or did not finish answering) within the time allowed."""


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: dict[str, str]                  # lower-cased names; repeated headers joined with ", "
    header_list: list[tuple[str, str]]
    body: bytes
    elapsed: float
    rest: bytes = b""                        # bytes after this response (a second response, say)
    closed: bool | None = None               # whether hsmd closed the connection (when it was waited for)
    request: bytes = b""

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    def describe(self) -> str:
        req = self.request[:400]
        req_text = req.decode("latin-1").replace("\r\n", "\\r\\n\n    ")
        head = " ".join(f"{k}: {v}" for k, v in self.header_list)
        return (f"\n  request ({len(self.request)} bytes): {req_text}{'…' if len(self.request) > 400 else ''}"
                f"\n  response: {self.status} {self.reason} [{head}] {self.body[:400]!r}")

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:200]!r}>"


def _parse_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = head.split(b"\r\n")
    status_line = lines[0].decode("latin-1")
    match = re.match(r"^HTTP/1\.[01] (\d{3}) ?(.*)$", status_line)
    if not match:
        raise AssertionError(f"not an HTTP/1.1 status line: {status_line!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise AssertionError(f"malformed response header line {line!r}")
        headers.append((name.strip().lower(), value.strip()))
    return int(match.group(1)), match.group(2), headers


def read_response(sock: socket.socket, deadline: float, buffered: bytes = b"", method: str = "GET",
                  request: bytes = b"") -> RawResponse:
    """Reads one response: its head, then its body by content-length (or to the close when none)."""
    started = time.monotonic()
    data = buffered
    received = [b""]                              # everything read, for the report of a hang

    def fill() -> bool:
        nonlocal data
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Hang(f"no complete response after {time.monotonic() - started:.1f}s; got {received[0][:400]!r}"
                       f"\n  request: {request[:300]!r}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            raise Hang(f"no complete response after {time.monotonic() - started:.1f}s; got {received[0][:400]!r}"
                       f"\n  request: {request[:300]!r}") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return False
        data += chunk
        received[0] += chunk
        return True

    while b"\r\n\r\n" not in data:
        if not fill():
            raise ConnectionError(f"hsmd closed the connection without a complete response head: {data[:300]!r}"
                                  f"\n  request: {request[:300]!r}")
    head, _, rest = data.partition(b"\r\n\r\n")
    status, reason, header_list = _parse_head(head)
    headers: dict[str, str] = {}
    for name, value in header_list:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
    if no_body:
        body, rest = b"", rest
    elif "content-length" in headers:
        length = int(headers["content-length"])
        data = rest
        while len(data) < length:
            if not fill():
                raise ConnectionError(f"hsmd closed the connection {length - len(data)} bytes short of its "
                                      f"content-length: {head!r}")
        body, rest = data[:length], data[length:]
    else:
        data = rest
        while fill():
            pass
        body, rest = data, b""
    return RawResponse(status, reason, headers, header_list, body, time.monotonic() - started, rest, None, request)


def connect_unix(path: Path | str, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    return sock


def exchange(connect, data: bytes, *, timeout: float = 15.0, method: str | None = None,
             wait_close: float | None = None, half_close: bool = False) -> RawResponse:
    """Sends `data` on a new connection and reads one response. With `wait_close`, then waits that long
    for hsmd to close the connection and records whether it did (`closed`)."""
    method = method or data.split(b" ", 1)[0].decode("latin-1", "replace")
    sock = connect()
    try:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        response = read_response(sock, time.monotonic() + timeout, method=method, request=data)
        if wait_close is not None:
            response.closed = wait_for_close(sock, wait_close, response)
        return response
    finally:
        sock.close()


def wait_for_close(sock: socket.socket, seconds: float, response: RawResponse) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not chunk:
            return True
        response.rest += chunk


def build_request(method: str, target: str | bytes, body: bytes | None = None, headers: list[tuple] | None = None,
                  *, host: bool = True, close: bool = True) -> bytes:
    """A well-formed HTTP/1.1 request: request line, Host, content-length when there is a body."""
    target_bytes = target if isinstance(target, bytes) else target.encode("ascii")
    lines = [method.encode("ascii") + b" " + target_bytes + b" HTTP/1.1"]
    if host:
        lines.append(b"Host: localhost")
    for name, value in headers or []:
        lines.append((name if isinstance(name, bytes) else name.encode("latin-1")) + b": "
                     + (value if isinstance(value, bytes) else value.encode("latin-1")))
    if body is not None:
        lines.append(b"Content-Type: application/json")
        lines.append(b"Content-Length: " + str(len(body)).encode())
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


# --------------------------------------------------------------------------------------------------
# What every answer must satisfy


# Routes that answer 501 NotSupported by design (docs/api.md: key release and attestation).
NOT_SUPPORTED_RE = re.compile(r"^/keys/[^/?]*(/[^/?]*)?/(release|attestation)$", re.IGNORECASE)


def target_path(target: str) -> str:
    path = target.split("?", 1)[0]
    return re.sub(r"/{2,}", "/", path)


def check_answer(response: RawResponse, *, method: str, target: str, https: bool = False,
                 allow_bare_400: bool = False, allow_overload: bool = False) -> None:
    """The invariants of issue #9 for a request hsmd could parse: no 5xx (501 only where documented; 503 with
    Retry-After only where the test overloads hsmd on purpose), a request id, JSON bodies, Azure's error shape
    on every 4xx, no private key material."""
    ctx = response.describe()
    if allow_bare_400 and is_bare_400(response):
        return
    status = response.status
    if status >= 500:
        documented_501 = (status == 501 and NOT_SUPPORTED_RE.match(target_path(target))
                          and response.json and response.json.get("error", {}).get("code") == "NotSupported")
        shed = (allow_overload and status == 503 and response.headers.get("retry-after") == "1"
                and error_code(response) in ("ServerBusy", "TooManyConnections"))
        assert documented_501 or shed, f"server error {status}{ctx}"
    assert 200 <= status < 600 and status not in (300, 301, 302), f"unexpected status {status}{ctx}"
    request_id = response.headers.get("x-ms-request-id")
    assert request_id and UUID_RE.match(request_id), f"no lower-case UUID x-ms-request-id{ctx}"
    path = target_path(target).lower()
    if path.endswith("/oauth2/v2.0/token") and status in (400, 401):
        # RFC 6749's own error shape on the OAuth2 endpoint.
        body = response.json
        assert isinstance(body, dict) and isinstance(body.get("error"), str), f"OAuth2 error shape{ctx}"
        return
    if path == "/metrics" and status == 200:
        assert response.headers.get("content-type", "").startswith("text/plain"), f"metrics{ctx}"
        return
    if https and status == 401:
        # Managed HSM's challenge: an empty body and WWW-Authenticate: Bearer …
        assert response.body == b"", f"401 with a body{ctx}"
        assert response.headers.get("www-authenticate", "").startswith("Bearer "), f"401 without the challenge{ctx}"
        return
    if method == "HEAD" or status == 204:
        assert response.body == b"", f"{method} {status} with a body{ctx}"
        return
    if method == "CONNECT":
        # SwiftNIO frames every answer to CONNECT as a tunnel's (no body, RFC 9112 §6.3), so hsmd refuses
        # it without its error body and closes the connection (docs/api.md).
        assert status in (400, 401, 404, 405) and response.headers.get("connection") == "close", f"CONNECT{ctx}"
        return
    if path == "/hsmd/ca" and status == 200:
        assert response.body.startswith(b"-----BEGIN CERTIFICATE-----"), f"CA PEM{ctx}"
        return
    assert response.body, f"{status} with an empty body{ctx}"
    assert response.headers.get("content-type", "").startswith("application/json"), f"content-type{ctx}"
    try:
        body = json.loads(response.body)
    except ValueError:
        raise AssertionError(f"body is not JSON{ctx}") from None
    h.check_no_private_material(body)
    if status >= 400:
        check_error_shape(body, ctx)


def check_error_shape(body, ctx: str = "") -> dict:
    assert isinstance(body, dict) and set(body) == {"error"}, f"not Azure's error shape{ctx}"
    error = body["error"]
    assert isinstance(error, dict) and set(error) <= {"code", "message", "innererror"}, f"error members{ctx}"
    assert isinstance(error.get("code"), str) and error["code"], f"error.code{ctx}"
    assert isinstance(error.get("message"), str) and error["message"], f"error.message{ctx}"
    if "innererror" in error:
        inner = error["innererror"]
        assert isinstance(inner, dict) and isinstance(inner.get("code"), str) and inner["code"], f"innererror{ctx}"
    return error


def is_bare_400(response: RawResponse) -> bool:
    """The answer docs/api.md documents for a request that is not valid HTTP/1.1: 400, no body, no request id,
    connection: close."""
    return (response.status == 400 and response.body == b"" and "x-ms-request-id" not in response.headers
            and response.headers.get("connection", "").lower() == "close")


def error_code(response: RawResponse) -> str | None:
    try:
        return response.json["error"]["code"]
    except (TypeError, KeyError, ValueError):
        return None


def error_message(response: RawResponse) -> str:
    try:
        return response.json["error"]["message"]
    except (TypeError, KeyError, ValueError):
        return ""


# --------------------------------------------------------------------------------------------------
# The server's own decoding rules, as docs/api.md states them (oracles for the fuzzers)


def server_query(target: str) -> dict[str, str]:
    """The query as hsmd reads it: split on '&', names and values percent-decoded (no '+' rule), the last of
    a repeated name wins, an undecodable name drops the pair and an undecodable value reads as ''."""
    if "?" not in target:
        return {}
    params: dict[str, str] = {}
    for pair in (p for p in target.split("?", 1)[1].split("&") if p):
        name, sep, value = pair.partition("=")
        decoded_name = percent_decode(name)
        if decoded_name is None:
            continue
        params[decoded_name] = (percent_decode(value) or "") if sep else ""
    return params


def percent_decode(text: str) -> str | None:
    """Foundation's removingPercentEncoding: None on a malformed escape or bytes that are not UTF-8."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        return None
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        return None


def server_b64decode(text: str) -> bytes | None:
    """hsmd's Base64URL.decode: at most two '=' at the end only, both alphabets, no 4n+1 lengths."""
    stripped = text.rstrip("=")
    if len(text) - len(stripped) > 2 or len(stripped) % 4 == 1:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_+/-]*", stripped):
        return None
    standard = stripped.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except ValueError:
        return None


def swift_int(text: str) -> int | None:
    """Swift's Int(String): optional sign, ASCII digits, within Int64."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    value = int(text)
    return value if -2**63 <= value <= INT64_MAX else None


# --------------------------------------------------------------------------------------------------
# Known defects: each is a BUG reported by this suite and pinned, with its exact reproduction, by a
# strict xfail in the corpus (corpus/*.json). The fuzzers steer around them so that they keep finding new
# ones; when a defect is fixed its strict xfail starts passing, fails the run, and the entry here goes.



def known_defect(method: str, target: str, body: bytes | None = None) -> str | None:
    """The open defect a request would hit, if any: the
    fuzzers skip such requests (hypothesis.assume) so that they keep finding new defects instead of the same
    crash. Each entry has strict xfails in corpus/*.json; once a build fixes it they XPASS, and then both the
    corpus "bug" marks and the entry here go (the corpus cases stay, as plain regression tests)."""
    if method == "CONNECT":
        return "BUG-3: the answer to CONNECT loses its body and content-length (an empty 405/404)"
    return None


# --------------------------------------------------------------------------------------------------
# The daemon under test


class FuzzDaemon:
    """An hsmd on a fresh state directory. If a case kills it, `ensure()` starts a new one (the crash is
    reported by the case that caused it, with the daemon's log)."""

    def __init__(self, *args: str, tls: bool = False, backtraces: bool = True):
        self.args = list(args)
        self.tls = tls
        self.backtraces = backtraces       # Swift's crash backtrace takes seconds; scratch daemons skip it
        self.port: int | None = None
        self.daemon: h.Daemon | None = None
        self.generation = 0
        self.crashes: list[str] = []
        self._pool: dict | None = None
        self._pool_generation = -1
        self.ca_path: Path | None = None
        self.token: str | None = None

    # lifecycle

    def start(self) -> "FuzzDaemon":
        args = list(self.args)
        if self.tls:
            self.port = free_port()
            args += ["--tls-port", str(self.port)]
        saved = os.environ.get("SWIFT_BACKTRACE")
        if not self.backtraces:
            os.environ["SWIFT_BACKTRACE"] = "enable=no"
        try:
            self.daemon = h.Daemon(*args).start()
        finally:
            if saved is None:
                os.environ.pop("SWIFT_BACKTRACE", None)
            else:
                os.environ["SWIFT_BACKTRACE"] = saved
        self.generation += 1
        if self.tls:
            self.ca_path = self.daemon.workdir / "ca.pem"
            self.ca_path.write_text(hsmctl("tls", "ca", socket_path=self.socket_path))
            self.token = hsmctl("token", "issue", "--principal", f"uid:{os.getuid()}", "--ttl", "86400",
                                socket_path=self.socket_path).strip()
            assert self.token.count(".") == 2, self.token
        return self

    def stop(self) -> int | None:
        if self.daemon is None:
            return None
        code = self.daemon.stop()
        return code

    def serving(self):
        """For a fixture: starts, yields itself, and afterwards stops and removes it; hsmd must then exit
        0 on SIGTERM, whatever the cases did to it."""
        self.start()
        try:
            yield self
        finally:
            code = self.stop()
            log = self.log_tail()
            self.cleanup()
        assert code == 0, f"hsmd exited with {code} after SIGTERM:\n{log}"

    def cleanup(self) -> None:
        if self.daemon is not None:
            self.daemon.cleanup()

    @property
    def socket_path(self) -> Path:
        assert self.daemon is not None
        return self.daemon.socket_path

    @property
    def client(self) -> h.Client:
        assert self.daemon is not None
        return self.daemon.client

    def running(self) -> bool:
        return self.daemon is not None and self.daemon.process is not None and self.daemon.process.poll() is None

    def alive(self, timeout: float = 10.0) -> tuple[bool, str]:
        """Whether hsmd still answers GET /health with 200; the reason when not."""
        if not self.running():
            return False, f"hsmd exited with {self.daemon.process.returncode if self.daemon else None}"
        try:
            response = exchange(self.connect, build_request("GET", "/health"), timeout=timeout)
        except (OSError, AssertionError) as exc:
            return False, f"GET /health failed: {exc}"
        if response.status != 200:
            return False, f"GET /health answered {response.status} {response.body[:200]!r}"
        return True, ""

    def assert_alive(self, after: str = "") -> None:
        ok, why = self.alive()
        if not ok:
            log = self.log_tail(60)
            self.crashes.append(after)
            self.restart()
            raise AssertionError(f"hsmd no longer serves after {after[:600]}: {why}\n--- hsmd log ---\n{log}")

    def ensure(self) -> None:
        if not self.alive()[0]:
            self.restart()

    def restart(self) -> None:
        if self.daemon is not None:
            if self.running():
                self.daemon.process.kill()
                self.daemon.process.wait()
            keep = os.environ.get("HSMD_FUZZ_KEEP_CRASHED")
            if keep:
                dest = Path(keep) / f"crash-{int(time.time())}-{uuid.uuid4().hex[:6]}"
                shutil.copytree(self.daemon.workdir, dest, dirs_exist_ok=True, ignore_dangling_symlinks=True)
            self.daemon.cleanup()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        return self.daemon.log_tail(lines) if self.daemon else "(no daemon)"

    # transport

    def connect(self) -> socket.socket:
        return connect_unix(self.socket_path)

    def connect_tls(self) -> socket.socket:
        assert self.tls and self.port and self.ca_path
        context = ssl.create_default_context(cafile=str(self.ca_path))
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return context.wrap_socket(raw, server_hostname="localhost")

    def send(self, method: str, target: str, body: bytes | None = None, headers: list[tuple] | None = None,
             *, timeout: float = 30.0) -> RawResponse:
        """One well-formed request on the socket; the answer is checked against the invariants."""
        response = exchange(self.connect, build_request(method, target, body, headers), timeout=timeout, method=method)
        check_answer(response, method=method, target=target)
        return response

    # the pool of keys the fuzzers aim at

    @property
    def pool(self) -> dict:
        if self._pool_generation != self.generation:
            self._pool = make_pool(self.client)
            self._pool_generation = self.generation
        return self._pool


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Keys the fuzzers use read-only (crypto operations, get, backup): never deleted, patched or re-versioned.
POOL_SPECS = {
    "fz-rsa": {"kty": "RSA-HSM", "key_size": 2048},
    "fz-ec-p256": {"kty": "EC-HSM", "crv": "P-256"},
    "fz-ec-p256k": {"kty": "EC-HSM", "crv": "P-256K"},
    "fz-ec-p384": {"kty": "EC-HSM", "crv": "P-384"},
    "fz-ec-p521": {"kty": "EC-HSM", "crv": "P-521"},
    "fz-aes128": {"kty": "oct-HSM", "key_size": 128},
    "fz-aes192": {"kty": "oct-HSM", "key_size": 192},
    "fz-aes256": {"kty": "oct-HSM", "key_size": 256},
    "fz-hmac256": {"kty": "oct-HSM", "key_size": 256, "key_ops": ["sign", "verify"]},
    "fz-hmac512": {"kty": "oct-HSM", "key_size": 512, "key_ops": ["sign", "verify"]},
}


def make_pool(client: h.Client) -> dict:
    pool = {}
    for name, spec in POOL_SPECS.items():
        bundle = client.create_key(name, spec, api=API)
        pool[name] = {"bundle": bundle, "version": h.version_of(bundle), "spec": spec}
    return pool


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
