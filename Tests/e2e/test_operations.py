"""Operations (issue #10) end to end: GET /metrics and what it counts, who may scrape it (over the
socket and the loopback metrics port), readiness when the audit log breaks and heals, the configuration
sources and their precedence, log formats, and systemd (unit files, socket activation, sd_notify, the
unit's system-call filter).

Every daemon here is a dedicated hsmd process (never the session-wide one), so that counts are exact.
Callers under another uid run through `setpriv` with Debian's /usr/bin/python3, as Tests/DaemonTests do.
Run: python3 -m pytest Tests/e2e/test_operations.py -q   (HSMD_BIN, HSMCTL_BIN select the binaries)
"""
from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

import hsmdtest as h

NOBODY = 65534
MONITORING_READER = "hsmd Monitoring Reader"
METRICS_ACTION = "Microsoft.KeyVault/managedHsm/hsmd/metrics/read/action"
ROLE_PROVIDER = "/providers/Microsoft.Authorization"
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by uid 65534, unlike a pyenv under /root


def hsmctl_binary() -> Path:
    override = os.environ.get("HSMCTL_BIN")
    return Path(override) if override else h.REPO_ROOT / ".build" / "debug" / "hsmctl"


# --------------------------------------------------------------------------------------------------
# The Prometheus text format (no prometheus_client on this machine: a strict little parser instead)

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$")
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"[ \t]*(,|$)')
_TYPE = re.compile(rf"^# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)$")


def L(**labels: str) -> tuple:
    """A label set as the parser keys it."""
    return tuple(sorted(labels.items()))


def _value(text: str) -> float:
    return float(text)  # also takes +Inf, -Inf and NaN


class Metrics:
    """One scrape: {(name, labels): value} and {family: type}, checked for the format's rules."""

    def __init__(self, text: str):
        self.text = text
        self.types: dict[str, str] = {}
        self.samples: dict[tuple[str, tuple], float] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if line.startswith("#"):
                typed = _TYPE.match(line)
                if typed:
                    assert typed.group(1) not in self.types, f"line {number}: second TYPE for {typed.group(1)}"
                    self.types[typed.group(1)] = typed.group(2)
                else:
                    assert line.startswith("# HELP ") or line.startswith("# "), f"line {number}: {line!r}"
                continue
            match = _SAMPLE.match(line)
            assert match, f"line {number} is not a Prometheus sample: {line!r}"
            name, label_text, value = match.groups()
            labels, position = [], 0
            label_text = label_text or ""
            while position < len(label_text):
                label = _LABEL.match(label_text, position)
                assert label, f"line {number}: bad labels {label_text!r}"
                labels.append((label.group(1), label.group(2)))
                position = label.end()
            key = (name, tuple(sorted(labels)))
            assert key not in self.samples, f"line {number}: duplicate series {line!r}"
            self.samples[key] = _value(value)
            assert self.family(name) in self.types, f"line {number}: {name} has no # TYPE line"
        self._check_histograms()

    def family(self, name: str) -> str:
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and self.types.get(base) == "histogram":
                return base
        return name

    def _check_histograms(self) -> None:
        for family, kind in self.types.items():
            if kind != "histogram":
                continue
            for labels, count in self.series(f"{family}_count").items():
                buckets = sorted(
                    ((_value(dict(l)["le"]), v) for l, v in self.series(f"{family}_bucket").items()
                     if tuple(p for p in l if p[0] != "le") == labels))
                assert buckets and buckets[-1][0] == math.inf, f"{family}{labels}: no +Inf bucket"
                assert buckets[-1][1] == count, f"{family}{labels}: +Inf bucket {buckets[-1][1]} != _count {count}"
                values = [v for _, v in buckets]
                assert values == sorted(values), f"{family}{labels}: buckets are not cumulative: {buckets}"
                assert (f"{family}_sum", labels) in self.samples, f"{family}{labels}: no _sum"

    def series(self, name: str) -> dict[tuple, float]:
        return {labels: value for (n, labels), value in self.samples.items() if n == name}

    def value(self, name: str, **labels: str) -> float:
        key = (name, L(**labels))
        assert key in self.samples, f"no series {name}{labels} in the scrape:\n{self.text[:3000]}"
        return self.samples[key]


def changes(after: Metrics, before: Metrics, name: str) -> dict[tuple, float]:
    """The series of `name` that moved between two scrapes, by how much (absent before counts as 0)."""
    old = before.series(name)
    moved = {labels: value - old.get(labels, 0.0) for labels, value in after.series(name).items()}
    gone = [labels for labels in old if labels not in after.series(name)]
    assert not gone, f"{name} series vanished between scrapes: {gone}"
    return {labels: delta for labels, delta in moved.items() if delta != 0}


# --------------------------------------------------------------------------------------------------
# HTTP helpers that accept any body (hsmdtest.Client insists on JSON)


class Raw:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.text[:500]}>"


def _exchange(connection: http.client.HTTPConnection, method: str, path: str, body=None) -> Raw:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    try:
        connection.request(method, path, body=data, headers=headers)
        answer = connection.getresponse()
        payload = answer.read()
        return Raw(answer.status, {k.lower(): v for k, v in answer.getheaders()}, payload)
    finally:
        connection.close()


def unix_request(socket_path, method: str, path: str, body=None) -> Raw:
    return _exchange(h.UnixHTTPConnection(str(socket_path), timeout=60), method, path, body)


# hsmd names the caller on the metrics port from /proc/net/tcp(6). It once read only the first 4 KiB of it
# (test_metrics_port_names_callers_on_a_busy_host guards that), resetting connections whose entry lay further.
# Clients here close with RST (SO_LINGER 0: no TIME_WAIT entries that would make the table longer).
_RESET_BEFORE_ANSWER = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)
_NO_LINGER = struct.pack("ii", 1, 0)


def tcp_request(host: str, port: int, method: str, path: str, attempts: int = 300) -> Raw:
    for _ in range(attempts):
        connection = http.client.HTTPConnection(host, port, timeout=30)
        connection.connect()
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
        try:
            return _exchange(connection, method, path)
        except _RESET_BEFORE_ANSWER as error:
            last = error
    raise AssertionError(f"{method} {path} on {host}:{port} was reset {attempts} times: {last!r}")


def scrape(socket_path) -> Metrics:
    answer = unix_request(socket_path, "GET", "/metrics")
    assert answer.status == 200, answer
    assert answer.headers.get("content-type") == "text/plain; version=0.0.4; charset=utf-8", answer.headers
    assert answer.headers.get("x-ms-request-id"), answer.headers
    return Metrics(answer.text)


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# Callers under uid 65534


_OTHER_USER_CLIENT = r'''
import http.client, json, socket, struct, sys

class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.unix_path)

job = json.load(sys.stdin)
answers = []
def exchange(request):
    if "unix" in job:
        connection = Unix(job["unix"])
    else:
        connection = http.client.HTTPConnection(job["host"], job["port"], timeout=30)
        connection.connect()
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    body = json.dumps(request["body"]) if "body" in request else None
    connection.request(request["method"], request["path"], body=body,
                       headers={"Content-Type": "application/json"} if body else {})
    response = connection.getresponse()
    return connection, response, response.read()

for request in job["requests"]:
    for attempt in range(300):  # resets before an answer: see tcp_request in test_operations.py
        try:
            connection, response, data = exchange(request)
            break
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            if "unix" in job or attempt == 299:
                raise
    answers.append({"status": response.status, "headers": {k.lower(): v for k, v in response.getheaders()},
                    "text": data.decode("utf-8", "replace")})
    connection.close()
json.dump(answers, sys.stdout)
'''


@pytest.fixture(scope="module")
def world_dir():
    """A directory every user can traverse, for sockets and scripts other uids must reach."""
    directory = Path(tempfile.mkdtemp(prefix="hsmd-ops-"))
    directory.chmod(0o755)
    client = directory / "other_user_client.py"
    client.write_text(_OTHER_USER_CLIENT)
    client.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def as_nobody(world_dir: Path, target: dict, *requests: dict) -> list[Raw]:
    """Sends requests as uid/gid 65534 (no supplementary groups). target: {"unix": path} or {"host", "port"}."""
    job = json.dumps({**target, "requests": list(requests)})
    done = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", SYSTEM_PYTHON,
         str(world_dir / "other_user_client.py")],
        input=job, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"client as uid {NOBODY} failed: {done.stderr}"
    return [Raw(a["status"], a["headers"], a["text"].encode()) for a in json.loads(done.stdout)]


def GET(path: str) -> dict:
    return {"method": "GET", "path": path}


# --------------------------------------------------------------------------------------------------
# Processes


# Dedicated daemons: started, and stopped with exit code 0 checked (hsmdtest.serving).
running = h.serving


def daemon_on_socket(socket_path: Path, *args: str) -> h.Daemon:
    """A Daemon whose socket is outside its state directory (--socket)."""
    daemon = h.Daemon("--socket", str(socket_path), *args)
    daemon.socket_path = socket_path
    daemon.client = h.Client(str(socket_path))
    return daemon


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any HSMD_* or systemd variables, plus `extra`."""
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith("HSMD_") and k not in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")}
    environment.update(extra)
    return environment


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_serving(socket_path: Path, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    def up():
        assert process.poll() is None, f"hsmd exited with {process.returncode}:\n{log.read_text(errors='replace')}"
        if not socket_path.exists():
            return False
        try:
            return unix_request(socket_path, "GET", "/health").status == 200
        except OSError:
            return False
    wait_until(up, timeout, f"hsmd to serve on {socket_path}")


def terminate(process: subprocess.Popen, timeout: float = 30.0) -> int:
    return h.terminate(process, timeout, lambda: "(see the test's log file)")


def check_config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(h.hsmd_binary()), *args], env=clean_environment(**(env or {})),
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def summary(done: subprocess.CompletedProcess) -> dict[str, tuple[str, str]]:
    """--check-config's output: {setting: (value, origin)}; every line must name its origin."""
    assert done.returncode == 0, f"--check-config failed with {done.returncode}: {done.stderr}"
    lines = done.stdout.splitlines()
    assert lines[0] == "# hsmd: configuration is valid", done.stdout
    settings = {}
    for line in lines[1:]:
        setting, separator, origin = line.rpartition(" # ")
        assert separator and origin.strip(), f"a line without its origin: {line!r}"
        name, colon, value = setting.partition(":")
        assert colon, line
        settings[name] = (value.strip(), origin.strip())
    assert set(settings) >= {
        "state-dir", "socket", "module", "token-label", "user-pin-file", "user-pin-env", "so-pin-file", "so-pin-env",
        "admin", "principal", "socket-group", "tls-port", "tls-host", "tls-name", "tenant", "audit-rotate-bytes",
        "authority", "retention-days", "purge-protection", "max-body-bytes", "log-level", "log-format",
        "metrics-port", "metrics-host"}, sorted(settings)
    return settings


@pytest.fixture
def short_dir():
    """A temp dir with a short path: --check-config's summary cuts "name: value" at 44 characters (see
    test_check_config_shows_long_values_whole), and the other tests must not trip over that bug."""
    directory = Path(tempfile.mkdtemp(prefix="hc"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def line_of(path: Path, key: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith(f"{key}:"):
            return number
    raise AssertionError(f"{key} not in {path}")


def audit_records(state_dir: Path) -> list[dict]:
    records = []
    for file in sorted((state_dir / "audit").glob("audit-*.log")) + [state_dir / "audit" / "audit.log"]:
        if file.exists():
            records += [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return records


def hsmctl_audit_verify(state_dir: Path) -> subprocess.CompletedProcess:
    binary = hsmctl_binary()
    assert binary.is_file(), f"hsmctl not found at {binary}: build it or set HSMCTL_BIN"
    return subprocess.run([str(binary), "audit", "verify", "--dir", str(state_dir / "audit")],
                          capture_output=True, text=True, timeout=60)


# --------------------------------------------------------------------------------------------------
# Key operations used as workload


MESSAGE = b"operations workload"


def sign(client: h.Client, name: str, alg: str) -> h.Response:
    return client.op(name, "sign", {"alg": alg, "value": h.b64e(h.digest(alg, MESSAGE))})


def verify(client: h.Client, name: str, alg: str, signature: str) -> h.Response:
    return client.op(name, "verify", {"alg": alg, "digest": h.b64e(h.digest(alg, MESSAGE)), "value": signature})


# ==================================================================================================
# 1-2. GET /metrics counts exactly what was done, and never names a key


@pytest.fixture(scope="module")
def metrics_hsmd():
    """A dedicated daemon for the counting tests (they compare scrapes, so their order does not matter)."""
    with running(h.Daemon()) as daemon:
        daemon.key_names = []  # every key name these tests use, for the no-names check
        yield daemon


def quiet_scrape(daemon: h.Daemon) -> Metrics:
    """A baseline scrape that counts every request made before it. hsmd counts a request just after
    writing its answer, so the request a client has just seen answered may not be counted yet: scrape
    until two scrapes 20 ms apart differ by nothing but the earlier scrape itself."""
    previous = scrape(daemon.socket_path)
    for _ in range(100):
        time.sleep(0.02)
        current = scrape(daemon.socket_path)
        if changes(current, previous, "hsmd_requests_total") == {L(operation="metrics", status_class="2xx", key_type="none"): 1}:
            return current
        previous = current
    raise AssertionError("hsmd_requests_total never came to rest")


def settled_scrape(daemon: h.Daemon, before: Metrics, expected_requests: dict[tuple, float],
                   scrapes_so_far: int) -> tuple[Metrics, int]:
    """Scrapes until hsmd_requests_total moved by exactly `expected_requests` (plus one "metrics" request
    per scrape made since `before`, `before` included). hsmd counts a request just after its answer is
    written, so a scrape may race the previous request's count: a retry is allowed only while every
    series is still at or below its expected value, never above. Returns the scrape and the scrapes made."""
    scrapes = scrapes_so_far
    for _ in range(40):
        after = scrape(daemon.socket_path)
        scrapes += 1
        expected = dict(expected_requests)
        expected[L(operation="metrics", status_class="2xx", key_type="none")] = scrapes - 1
        moved = changes(after, before, "hsmd_requests_total")
        if moved == expected:
            return after, scrapes
        over = {k: v for k, v in moved.items() if v > expected.get(k, 0)}
        assert not over, f"hsmd_requests_total moved more than the workload: {over}\nall moves: {moved}\nexpected: {expected}"
        time.sleep(0.05)
    raise AssertionError(f"hsmd_requests_total never settled on {expected}; last moves {moved}")


def test_metrics_count_a_known_workload_exactly(metrics_hsmd):
    daemon, client = metrics_hsmd, metrics_hsmd.client
    names = {kind: h.unique_name(f"opsmetric-{kind}") for kind in ("ec1", "ec2", "ec3", "rsa", "aes")}
    daemon.key_names += names.values()
    before = quiet_scrape(daemon)
    assert before.value("hsmd_requests_in_flight") == 1, "a scrape sees exactly itself in flight"

    # 5 creations: 3 EC-HSM, 1 RSA-HSM, 1 oct-HSM.
    for kind in ("ec1", "ec2", "ec3"):
        client.create_key(names[kind], {"kty": "EC-HSM", "crv": "P-256"})
    rsa = client.create_key(names["rsa"], {"kty": "RSA-HSM", "key_size": 2048})
    client.create_key(names["aes"], {"kty": "oct-HSM", "key_size": 256})
    # 7 signatures: 5 ES256, 2 RS256.
    signatures = {}
    for kind in ("ec1", "ec1", "ec2", "ec3", "ec3"):
        signatures["ec"] = h.ok(sign(client, names[kind], "ES256"))["value"]
    for _ in range(2):
        signatures["rsa"] = h.ok(sign(client, names["rsa"], "RS256"))["value"]
    # 3 failures (4xx): an unknown key, an algorithm that is not one, one that does not fit the key.
    h.expect_error(sign(client, h.unique_name("opsmetric-missing"), "ES256"), 404, "KeyNotFound")
    h.expect_error(client.op(names["ec1"], "sign", {"alg": "XX256", "value": h.b64e(b"\0" * 32)}), 400, "BadParameter")
    h.expect_error(sign(client, names["ec2"], "RS256"), 400, "BadParameter")
    # 2 verifications.
    assert h.ok(verify(client, names["ec3"], "ES256", signatures["ec"])) == {"value": True}
    assert h.ok(verify(client, names["rsa"], "RS256", signatures["rsa"])) == {"value": True}
    # A deletion (EC) and a disabled version (RSA).
    h.ok(client.delete(f"/keys/{names['ec1']}"))
    disabled = h.ok(client.patch(f"/keys/{names['rsa']}/{h.version_of(rsa)}", {"attributes": {"enabled": False}}))
    assert disabled["attributes"]["enabled"] is False
    workload_requests = 5 + 7 + 3 + 2 + 1 + 1

    requests = {
        L(operation="keys.create", status_class="2xx", key_type="EC-HSM"): 3,
        L(operation="keys.create", status_class="2xx", key_type="RSA-HSM"): 1,
        L(operation="keys.create", status_class="2xx", key_type="oct-HSM"): 1,
        L(operation="keys.sign", status_class="2xx", key_type="EC-HSM"): 5,
        L(operation="keys.sign", status_class="2xx", key_type="RSA-HSM"): 2,
        L(operation="keys.sign", status_class="4xx", key_type="none"): 1,  # no such key: no key type
        L(operation="keys.sign", status_class="4xx", key_type="EC-HSM"): 2,
        L(operation="keys.verify", status_class="2xx", key_type="EC-HSM"): 1,
        L(operation="keys.verify", status_class="2xx", key_type="RSA-HSM"): 1,
        L(operation="keys.delete", status_class="2xx", key_type="EC-HSM"): 1,
        L(operation="keys.update", status_class="2xx", key_type="RSA-HSM"): 1,
    }
    after, scrapes = settled_scrape(daemon, before, requests, scrapes_so_far=1)
    metrics_requests = scrapes - 1  # `before` and any retries, each counted once it was answered

    assert changes(after, before, "hsmd_request_duration_seconds_count") == {
        L(operation="keys.create"): 5, L(operation="keys.sign"): 10, L(operation="keys.verify"): 2,
        L(operation="keys.delete"): 1, L(operation="keys.update"): 1, L(operation="metrics"): metrics_requests}
    # Latencies were recorded, not just counted.
    for operation in ("keys.create", "keys.sign", "keys.verify"):
        assert after.value("hsmd_request_duration_seconds_sum", operation=operation) > \
            before.samples.get(("hsmd_request_duration_seconds_sum", L(operation=operation)), 0.0)

    token = changes(after, before, "hsmd_token_operation_duration_seconds_count")
    assert token.get(L(operation="sign", outcome="ok")) == 7, token  # the 3 refusals never reach the token
    assert token.get(L(operation="verify", outcome="ok")) == 2, token
    assert token.get(L(operation="generate", outcome="ok")) == 5, token
    assert not {k: v for k, v in token.items() if dict(k)["outcome"] != "ok"}, f"token errors counted: {token}"

    # Every request is audited before its answer: the workload, `before` and the retries (not `after`).
    assert changes(after, before, "hsmd_audit_write_duration_seconds_count") == {(): workload_requests + metrics_requests}
    assert changes(after, before, "hsmd_audit_write_failures_total") == {}
    assert changes(after, before, "hsmd_requests_rejected_total") == {}

    assert changes(after, before, "hsmd_keys") == {
        L(state="active", key_type="EC-HSM"): 2, L(state="deleted", key_type="EC-HSM"): 1,
        L(state="active", key_type="RSA-HSM"): 1, L(state="active", key_type="oct-HSM"): 1}
    assert changes(after, before, "hsmd_key_versions") == {
        L(state="active", key_type="EC-HSM", usability="enabled"): 2,
        L(state="deleted", key_type="EC-HSM", usability="enabled"): 1,
        L(state="active", key_type="RSA-HSM", usability="disabled"): 1,
        L(state="active", key_type="oct-HSM", usability="enabled"): 1}
    # Gauges report every combination, zeros included, so a series drops to 0 rather than vanishing.
    assert len(after.series("hsmd_keys")) == 2 * 3
    assert len(after.series("hsmd_key_versions")) == 2 * 3 * 4

    assert after.value("hsmd_requests_in_flight") == 1, "only the scrape itself may be in flight"
    assert after.value("process_open_fds") > 0
    assert after.value("process_resident_memory_bytes") > 1 << 20
    assert after.types["hsmd_requests_total"] == "counter"
    assert after.types["hsmd_request_duration_seconds"] == "histogram"
    assert after.types["hsmd_token_operation_duration_seconds"] == "histogram"
    assert after.types["hsmd_audit_write_duration_seconds"] == "histogram"
    assert after.types["hsmd_keys"] == after.types["hsmd_key_versions"] == "gauge"


def test_metrics_count_concurrent_requests_and_in_flight_returns_to_the_scrape_alone(metrics_hsmd):
    daemon, client = metrics_hsmd, metrics_hsmd.client
    name = h.unique_name("opsmetric-conc")
    daemon.key_names.append(name)
    client.create_key(name, {"kty": "EC-HSM", "crv": "P-256"})
    before = quiet_scrape(daemon)
    workers, each = 8, 10
    failures: list = []
    in_flight_seen: list[float] = []

    def work():
        worker_client = h.Client(str(daemon.socket_path))
        for _ in range(each):
            response = sign(worker_client, name, "ES256")
            if response.status != 200:
                failures.append(response)

    def watch(stop: threading.Event):
        while not stop.is_set():
            in_flight_seen.append(scrape(daemon.socket_path).value("hsmd_requests_in_flight"))

    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,))
    watcher.start()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    assert not failures, failures[:3]
    # In flight is at least the watcher's own scrape, and at most every client's request plus the one
    # just answered but not yet counted out (hsmd decrements after writing the answer).
    assert in_flight_seen and all(1 <= value <= 2 * (workers + 1) for value in in_flight_seen), in_flight_seen

    signs = {L(operation="keys.sign", status_class="2xx", key_type="EC-HSM"): workers * each}
    after, scrapes = settled_scrape(daemon, before, signs, scrapes_so_far=1 + len(in_flight_seen))
    assert changes(after, before, "hsmd_request_duration_seconds_count")[L(operation="keys.sign")] == workers * each
    assert changes(after, before, "hsmd_token_operation_duration_seconds_count") == {
        L(operation="sign", outcome="ok"): workers * each}
    assert after.value("hsmd_requests_in_flight") == 1, "in flight must come back to the scrape alone"


def test_metrics_never_name_a_key(metrics_hsmd):
    daemon, client = metrics_hsmd, metrics_hsmd.client
    names = [h.unique_name("opsmetric-secretname") for _ in range(3)]
    daemon.key_names += names
    bundle = client.create_key(names[0], {"kty": "EC-HSM", "crv": "P-256"})
    version = h.version_of(bundle)
    h.ok(client.get(f"/keys/{names[0]}/{version}"))
    h.ok(sign(client, names[0], "ES256"))
    client.create_key(names[1], {"kty": "oct-HSM", "key_size": 128})
    h.ok(client.delete(f"/keys/{names[1]}"))
    h.ok(client.get(f"/deletedkeys/{names[1]}"))
    h.expect_error(sign(client, names[2], "ES256"), 404)  # never created
    h.expect_error(client.get(f"/keys/{names[2]}"), 404)
    assert client.get(f"/keys/{names[2]}/no/such/route").status == 404  # unrouted, name in the path
    assert client.put(f"/keys/{names[0]}{ROLE_PROVIDER}/roleAssignments/{uuid.uuid4()}",
                      {"properties": {"roleDefinitionId": "21dbd100-6940-42c2-9190-5d6cb909625b",
                                      "principalId": "uid:4242"}}).status == 201

    text = scrape(daemon.socket_path).text
    lowered = text.lower()
    for name in daemon.key_names:
        assert name.lower() not in lowered, f"key name {name} appears in /metrics"
        assert name.split("-")[-1] not in lowered, f"the unique part of {name} appears in /metrics"
    assert version not in lowered, "a key version appears in /metrics"
    assert "uid:4242" not in lowered and "/keys/" not in lowered
    # Only these labels exist: nothing that could carry a name.
    labels = {label for (_, pairs) in Metrics(text).samples for label, _ in pairs}
    assert labels <= {"operation", "status_class", "key_type", "state", "usability", "outcome", "reason", "le"}, labels


def test_metrics_process_figures_are_the_daemons(metrics_hsmd):
    daemon = metrics_hsmd
    pid = daemon.process.pid
    scraped = scrape(daemon.socket_path)
    descriptors = len(os.listdir(f"/proc/{pid}/fd"))
    resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    # The scrape's own connection may have closed in between: a few descriptors of slack.
    assert abs(scraped.value("process_open_fds") - descriptors) <= 4, (scraped.value("process_open_fds"), descriptors)
    assert 0.5 <= scraped.value("process_resident_memory_bytes") / resident <= 2, \
        (scraped.value("process_resident_memory_bytes"), resident)


# ==================================================================================================
# 3-4. Who may scrape: the Monitoring Reader role, on the socket and on the loopback metrics port


def monitoring_reader_id(client: h.Client) -> str:
    roles = h.ok(client.get(f"{ROLE_PROVIDER}/roleDefinitions"))["value"]
    matches = [r for r in roles if r["properties"]["roleName"] == MONITORING_READER]
    assert len(matches) == 1, [r["properties"]["roleName"] for r in roles]
    role = matches[0]
    assert role["properties"]["type"] == "AKVBuiltInRole"
    assert role["properties"]["permissions"][0]["dataActions"] == [METRICS_ACTION], role
    return role["name"]


def expect_forbidden_metrics(answer: Raw, caller: str) -> None:
    assert answer.status == 403, answer
    error = answer.json["error"]
    assert error["code"] == "Forbidden" and error["innererror"]["code"] == "ForbiddenByRbac", answer
    assert caller in error["message"] and METRICS_ACTION in error["message"], answer


def test_monitoring_reader_role_opens_metrics_on_the_socket_and_the_metrics_port(world_dir):
    socket_dir = Path(tempfile.mkdtemp(prefix="rbac-", dir=world_dir))
    socket_dir.chmod(0o755)
    port = free_port()
    with running(daemon_on_socket(socket_dir / "api.sock", "--socket-group", "nogroup", "--metrics-port", str(port))) as daemon:
        client = daemon.client
        unix, tcp = {"unix": str(daemon.socket_path)}, {"host": "127.0.0.1", "port": port}
        role = monitoring_reader_id(client)
        # Root is an initial administrator, Monitoring Reader included.
        root_roles = h.ok(client.get(f"{ROLE_PROVIDER}/roleAssignments?$filter=" + quote("principalId eq 'uid:0'")))["value"]
        assert any(a["properties"]["roleDefinitionId"].endswith(role) for a in root_roles), root_roles

        # Without a role: the liveness probe only.
        health, forbidden = as_nobody(world_dir, unix, GET("/health"), GET("/metrics"))
        assert health.status == 200, health
        expect_forbidden_metrics(forbidden, f"uid:{NOBODY}")
        expect_forbidden_metrics(as_nobody(world_dir, tcp, GET("/metrics"))[0], f"uid:{NOBODY}")

        assignment = f"{ROLE_PROVIDER}/roleAssignments/{uuid.uuid4()}"
        h.ok(client.put(assignment, {"properties": {"roleDefinitionId": role, "principalId": f"uid:{NOBODY}"}}), 201)

        on_socket, create, listing = as_nobody(
            world_dir, unix, GET("/metrics"),
            {"method": "POST", "path": "/keys/opsrbac/create?api-version=7.5", "body": {"kty": "EC-HSM", "crv": "P-256"}},
            GET("/keys?api-version=7.5"))
        assert on_socket.status == 200, on_socket
        assert on_socket.headers["content-type"].startswith("text/plain; version=0.0.4")
        Metrics(on_socket.text).value("hsmd_requests_in_flight")
        # The role grants metrics and nothing else.
        assert create.status == 403 and create.json["error"]["innererror"]["code"] == "ForbiddenByRbac", create
        assert listing.status == 403, listing
        on_port = as_nobody(world_dir, tcp, GET("/metrics"))[0]
        assert on_port.status == 200, on_port
        Metrics(on_port.text)

        # Both refusals and both admissions were counted as what they were.
        counted = scrape(daemon.socket_path)
        assert counted.value("hsmd_requests_total", operation="metrics", status_class="4xx", key_type="none") == 2
        assert counted.value("hsmd_requests_total", operation="metrics", status_class="2xx", key_type="none") == 2

        # Revoking the assignment closes metrics again.
        h.ok(client.delete(assignment))
        expect_forbidden_metrics(as_nobody(world_dir, unix, GET("/metrics"))[0], f"uid:{NOBODY}")
        expect_forbidden_metrics(as_nobody(world_dir, tcp, GET("/metrics"))[0], f"uid:{NOBODY}")


def test_metrics_port_serves_only_health_readiness_and_metrics():
    port = free_port()
    with running(h.Daemon("--metrics-port", str(port))) as daemon:
        metrics = tcp_request("127.0.0.1", port, "GET", "/metrics")
        assert metrics.status == 200, metrics
        assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        Metrics(metrics.text).value("hsmd_requests_in_flight")
        assert tcp_request("127.0.0.1", port, "GET", "/ready").json["ready"] is True
        health = tcp_request("127.0.0.1", port, "GET", "/health")
        assert health.status == 200 and f"http://127.0.0.1:{port} (metrics)" in health.json["listeners"], health
        for method, path in [("GET", "/keys?api-version=7.5"), ("POST", "/keys/opsport/create?api-version=7.5"),
                             ("GET", "/hsmd/whoami"), ("GET", f"{ROLE_PROVIDER}/roleDefinitions?api-version=7.5"),
                             ("POST", "/rng?api-version=7.5"), ("GET", "/nothing/here")]:
            answer = tcp_request("127.0.0.1", port, method, path)
            assert answer.status == 404, (method, path, answer)
        # The API itself stays on the socket, and nothing was created through the port.
        h.expect_error(daemon.client.get("/keys/opsport"), 404, "KeyNotFound")


def test_metrics_port_names_callers_on_a_busy_host():
    port = free_port()
    with running(h.Daemon("--metrics-port", str(port))):
        # 40 more listening sockets, as on any host running a few services. The kernel lists listening
        # sockets before connections, so every caller's entry now lies past the first page of the table.
        listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(40)]
        try:
            table = Path("/proc/net/tcp").read_bytes()
            assert len(table) > 4096, "the socket table should be past one page (4 KiB)"
            statuses = []
            for _ in range(10):
                try:
                    statuses.append(tcp_request("127.0.0.1", port, "GET", "/metrics", attempts=1).status)
                except AssertionError as reset:
                    statuses.append(repr(reset))
            assert statuses == [200] * 10, statuses
        finally:
            for listener in listeners:
                listener.close()


def test_metrics_port_on_ipv6_loopback_identifies_callers(world_dir):
    port = free_port("::1")
    with running(h.Daemon("--metrics-port", str(port), "--metrics-host", "::1")):
        assert tcp_request("::1", port, "GET", "/metrics").status == 200
        expect_forbidden_metrics(as_nobody(world_dir, {"host": "::1", "port": port}, GET("/metrics"))[0], f"uid:{NOBODY}")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::"])
def test_metrics_host_must_be_loopback(tmp_path, host):
    state = tmp_path / "state"
    checked = check_config("--state-dir", str(state), "--metrics-port", "9464", "--metrics-host", host, "--check-config")
    assert checked.returncode == 64, checked
    assert "metrics-host" in checked.stderr and "loopback" in checked.stderr, checked.stderr
    started = check_config("--state-dir", str(state), "--metrics-port", str(free_port()), "--metrics-host", host)
    assert started.returncode == 64, started
    assert not state.exists(), "a refused configuration must start nothing"


# ==================================================================================================
# 5. Readiness follows the audit log; hsmd heals when it can write again


@contextlib.contextmanager
def audit_log_broken(state_dir: Path):
    """STATE/audit becomes a regular file, so STATE/audit/audit.log fails with ENOTDIR even for root."""
    audit, away = state_dir / "audit", state_dir / "audit.away"
    audit.rename(away)
    audit.write_text("")
    try:
        yield audit / "audit.log"
    finally:
        audit.unlink()
        away.rename(audit)


def ready_probe(daemon: h.Daemon) -> Raw:
    """GET /ready (its 503 body is not Azure's error shape, so not through hsmdtest.Client)."""
    answer = unix_request(daemon.socket_path, "GET", "/ready")
    assert answer.status in (200, 503) and answer.headers.get("x-ms-request-id"), answer
    assert set(answer.json) == {"ready", "checks"} and answer.json["ready"] is (answer.status == 200), answer
    return answer


def test_readiness_follows_the_audit_log_and_hsmd_heals():
    with running(h.Daemon()) as daemon:
        client, state = daemon.client, daemon.state_dir
        ready = ready_probe(daemon)
        assert ready.status == 200, ready
        assert ready.json == {"ready": True, "checks": {"audit_log": "ok", "metadata_store": "ok", "token": "ok"}}
        assert h.ok(client.get("/health", api=None))["status"] == "ok"
        name = h.unique_name("opsready")
        client.create_key(name, {"kty": "EC-HSM", "crv": "P-256"})
        before = scrape(daemon.socket_path)

        with audit_log_broken(state) as log_file:
            not_ready = ready_probe(daemon)
            assert not_ready.status == 503, not_ready
            assert not_ready.headers.get("retry-after") == "5", not_ready.headers
            checks = not_ready.json["checks"]
            assert checks["token"] == "ok" and checks["metadata_store"] == "ok", checks
            assert str(log_file) in checks["audit_log"] and "Not a directory" in checks["audit_log"], checks
            # /ready's own audit record could not be written, so hsmd now refuses work before it runs:
            # 503 AuditLogUnavailable (nothing done, safe to retry), never a silent success.
            refused_sign = h.expect_error(sign(client, name, "ES256"), 503, "AuditLogUnavailable")
            refused_create = h.expect_error(client.post(f"/keys/{name}-new/create", {"kty": "EC-HSM", "crv": "P-256"}),
                                            503, "AuditLogUnavailable")
            assert "refuses" in refused_sign.message, refused_sign
            still = ready_probe(daemon)
            assert still.status == 503 and still.json["checks"]["audit_log"] != "ok", still
        fault_ids = [answer.headers["x-ms-request-id"] for answer in (not_ready, refused_sign, refused_create, still)]

        # Healed: the next record written reopens the log. The first probe may still report the failure of
        # the last record (it writes the record that heals); by the second, hsmd must be ready.
        probes = [ready_probe(daemon) for _ in range(2)]
        assert probes[-1].status == 200, probes
        assert probes[0].status == 200 or "could not be written" in probes[0].json["checks"]["audit_log"], probes[0]
        mark = len(client.request_ids)
        h.ok(sign(client, name, "ES256"))
        h.expect_error(client.get(f"/keys/{name}-new"), 404, "KeyNotFound")  # the refused create did nothing
        client.create_key(f"{name}-new", {"kty": "EC-HSM", "crv": "P-256"})
        assert h.ok(client.get("/health", api=None))["status"] == "ok"
        healed_ids = client.request_ids[mark:] + [probe.headers["x-ms-request-id"] for probe in probes]

        after = scrape(daemon.socket_path)
        assert changes(after, before, "hsmd_audit_write_failures_total") == {(): len(fault_ids)}
        assert changes(after, before, "hsmd_requests_rejected_total") == {L(reason="audit_unavailable"): 2}

        verified = hsmctl_audit_verify(state)
        assert verified.returncode == 0 and verified.stdout.startswith("ok:"), verified
        logged = {record["request_id"] for record in audit_records(state)}
        assert not logged & set(fault_ids), "records the log could not take must not appear later"
        assert set(healed_ids) <= logged, "every request after healing is audited"


def test_a_key_operation_that_meets_the_fault_first_fails_closed():
    """Before any record failed, a request runs; its record then cannot be written, and the caller must
    learn that the outcome is unknown (500 AuditLogUnavailable), never get a plain success."""
    with running(h.Daemon()) as daemon:
        client, state = daemon.client, daemon.state_dir
        name = h.unique_name("opsfirst")
        client.create_key(name, {"kty": "EC-HSM", "crv": "P-256"})
        with audit_log_broken(state):
            failed = h.expect_error(sign(client, name, "ES256"), 500, "AuditLogUnavailable")
            assert "unknown" in failed.message, failed
            assert "value" not in failed.json, "no signature may leave with an unaudited answer"
        wait_until(lambda: ready_probe(daemon).status == 200, 5, "readiness after healing")
        h.ok(sign(client, name, "ES256"))
        assert hsmctl_audit_verify(state).returncode == 0


def test_health_stays_200_and_says_degraded_while_the_audit_log_is_unwritable():
    with running(h.Daemon()) as daemon:
        with audit_log_broken(daemon.state_dir):
            health = unix_request(daemon.socket_path, "GET", "/health")
            assert health.status == 200, health
            assert health.json["status"] == "degraded" and health.json["checks"]["audit_log"] != "ok", health


def test_metrics_can_be_scraped_while_the_audit_log_is_unwritable():
    with running(h.Daemon()) as daemon:
        with audit_log_broken(daemon.state_dir):
            assert ready_probe(daemon).status == 503  # one failed record
            answer = unix_request(daemon.socket_path, "GET", "/metrics")
            assert answer.status == 200, answer
            assert Metrics(answer.text).value("hsmd_audit_write_failures_total") >= 1


# ==================================================================================================
# 6. Configuration: file, environment, flags, defaults; errors that name their source


def test_check_config_precedence_flags_over_environment_over_file_over_defaults(short_dir):
    tmp_path = short_dir
    state = tmp_path / "state"
    config = tmp_path / "hsmd.yaml"
    config.write_text(f"# operations test\nstate-dir: {state}\nlog-level: debug\nmax-body-bytes: 4096\n"
                      f"tenant: file-tenant\nadmin:\n  - uid:5\n  - uid:6\n")
    origin = lambda key: f"{config}:{line_of(config, key)}"

    from_file = summary(check_config("--config", str(config), "--check-config"))
    assert from_file["state-dir"] == (str(state), origin("state-dir"))
    assert from_file["log-level"] == ("debug", origin("log-level"))
    assert from_file["max-body-bytes"] == ("4096", origin("max-body-bytes"))
    assert from_file["tenant"] == ("file-tenant", origin("tenant"))
    assert from_file["admin"] == ("[uid:5, uid:6]", origin("admin"))
    assert from_file["module"] == ("/usr/lib/softhsm/libsofthsm2.so", "default")
    assert from_file["socket"] == (f"{state}/hsmd.sock", "default")
    assert from_file["log-format"] == ("json", "default")
    assert from_file["metrics-host"] == ("127.0.0.1", "default")
    assert from_file["audit-rotate-bytes"] == (str(64 << 20), "default")
    assert from_file["audit-durability"] == ("fsync", "default")
    assert from_file["session-key-copies"] == ("1024", "default")
    # $HSMD_CONFIG names the file too.
    assert summary(check_config("--check-config", env={"HSMD_CONFIG": str(config)})) == from_file

    environment = {"HSMD_LOG_LEVEL": "warning", "HSMD_TENANT": "env-tenant", "HSMD_ADMIN": "uid:7, uid:8",
                   "HSMD_LOG_FORMAT": "logfmt"}
    with_env = summary(check_config("--config", str(config), "--check-config", env=environment))
    assert with_env["log-level"] == ("warning", "HSMD_LOG_LEVEL")
    assert with_env["tenant"] == ("env-tenant", "HSMD_TENANT")
    assert with_env["admin"] == ("[uid:7, uid:8]", "HSMD_ADMIN")
    assert with_env["log-format"] == ("logfmt", "HSMD_LOG_FORMAT")
    assert with_env["max-body-bytes"] == from_file["max-body-bytes"]

    with_flags = summary(check_config("--config", str(config), "--check-config", "--log-level", "error",
                                      "--admin", "uid:9", "--metrics-port", "9555", env=environment))
    assert with_flags["log-level"] == ("error", "--log-level")
    assert with_flags["admin"] == ("[uid:9]", "--admin")
    assert with_flags["metrics-port"] == ("9555", "--metrics-port")
    assert with_flags["tenant"] == ("env-tenant", "HSMD_TENANT")
    assert with_flags["max-body-bytes"] == ("4096", origin("max-body-bytes"))
    assert with_flags["state-dir"] == (str(state), origin("state-dir"))

    # --config beats $HSMD_CONFIG.
    other = tmp_path / "other.yaml"
    other.write_text(f"state-dir: {state}\nlog-level: notice\n")
    assert summary(check_config("--config", str(config), "--check-config", env={"HSMD_CONFIG": str(other)}))["log-level"] \
        == ("debug", origin("log-level"))
    assert not state.exists(), "--check-config must start nothing"


CONFIG_ERRORS = {
    # name: (file text or None, extra args, env, what the message must contain ({path}, {line} filled in), line)
    "unknown key": ("state-dir: {state}\nlog-level: info\nbogus-setting: 1\n", [], {}, ["unknown setting 'bogus-setting'"], 3),
    "wrong type in file": ("state-dir: {state}\ntls-port: abc\n", [], {}, ["tls-port", "abc"], 2),
    "port out of range": ("state-dir: {state}\n\nmetrics-port: 70000\n", [], {}, ["metrics-port", "70000"], 3),
    "boolean": ("state-dir: {state}\npurge-protection: maybe\n", [], {}, ["purge-protection", "true or false"], 2),
    "retention range": ("state-dir: {state}\nretention-days: 3\n", [], {}, ["retention-days", "7 to 90"], 2),
    "choice": ("state-dir: {state}\nlog-format: xml\n", [], {}, ["log-format", "json, logfmt"], 2),
    "audit durability": (None, ["--audit-durability", "sometimes"], {}, ["--audit-durability", "fsync, write"], None),
    "session key copies": ("state-dir: {state}\nsession-key-copies: -1\n", [], {}, ["session-key-copies", "-1"], 2),
    "list for a single value": ("state-dir: {state}\nsocket: [a, b]\n", [], {}, ["'socket' must be a single value"], 2),
    "not a mapping": ("- state-dir\n- log-level\n", [], {}, ["must be a mapping"], 1),
    "wrong type in environment": (None, [], {"HSMD_TLS_PORT": "abc"}, ["tls-port (HSMD_TLS_PORT)", "abc"], None),
    "wrong type as a flag": (None, ["--tls-port", "abc"], {}, ["--tls-port", "abc"], None),
    "missing file": (None, ["--config", "/nonexistent/hsmd.yaml"], {}, ["/nonexistent/hsmd.yaml"], None),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_invalid_configuration_exits_64_naming_the_setting_and_its_origin(tmp_path, case):
    text, args, env, needles, line = CONFIG_ERRORS[case]
    state = tmp_path / "state"
    arguments = list(args)
    if text is not None:
        config = tmp_path / "hsmd.yaml"
        config.write_text(text.format(state=state))
        arguments += ["--config", str(config)]
        needles = needles + [f"{config}:{line}"]
    else:
        arguments += ["--state-dir", str(state)]
    for mode in (["--check-config"], []):  # checking and starting refuse alike
        done = check_config(*arguments, *mode, env=env)
        assert done.returncode == 64, (mode, done)
        assert "configuration is valid" not in done.stdout
        for needle in needles:
            assert needle in done.stderr, f"{case}: {needle!r} not in {done.stderr!r}"
    assert not state.exists(), "an invalid configuration must start nothing"


def test_check_config_starts_nothing(short_dir):
    tmp_path = short_dir
    state, sock = tmp_path / "state", tmp_path / "api.sock"
    port = free_port()
    started = time.monotonic()
    done = check_config("--state-dir", str(state), "--socket", str(sock), "--metrics-port", str(port), "--check-config")
    assert time.monotonic() - started < 15
    settings = summary(done)
    assert settings["socket"] == (str(sock), "--socket") and settings["metrics-port"] == (str(port), "--metrics-port")
    assert not state.exists() and not sock.exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_the_shipped_configuration_passes_check_config():
    shipped = h.REPO_ROOT / "dist" / "hsmd.yaml"
    settings = summary(check_config("--config", str(shipped), "--check-config"))
    for key in ("state-dir", "socket", "log-format", "log-level", "admin", "principal", "metrics-port",
                "retention-days", "purge-protection"):
        assert settings[key][1] == f"{shipped}:{line_of(shipped, key)}", (key, settings[key])
    assert settings["metrics-port"][0] == "9464" and settings["metrics-host"] == ("127.0.0.1", "default")
    assert settings["principal"][0] == "[prometheus=uid:65534]"


def test_the_configuration_file_drives_the_daemon(tmp_path):
    state = tmp_path / "state"
    config = tmp_path / "hsmd.yaml"
    config.write_text(f"state-dir: {state}\nlog-format: logfmt\nmax-body-bytes: 4096\n")
    log = tmp_path / "hsmd.log"
    with open(log, "wb") as output:
        process = subprocess.Popen([str(h.hsmd_binary()), "--config", str(config)], env=clean_environment(),
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_serving(state / "hsmd.sock", process, log)
        too_large = unix_request(state / "hsmd.sock", "POST", "/keys/opscfg/create?api-version=7.5",
                                 {"kty": "EC-HSM", "crv": "P-256", "tags": {"pad": "x" * 5000}})
        assert too_large.status == 413 and too_large.json["error"]["code"] == "RequestTooLarge", too_large
        fits = unix_request(state / "hsmd.sock", "POST", "/keys/opscfg/create?api-version=7.5", {"kty": "EC-HSM", "crv": "P-256"})
        assert fits.status == 200, fits
    finally:
        code = terminate(process)
    assert code == 0, log.read_text()
    lines = log.read_text().splitlines()
    assert lines and all(parse_logfmt(line).get("level") for line in lines), lines


def test_check_config_shows_long_values_whole():
    state = "/var/lib/a-rather-long-state-directory-path/for/hsmd"
    settings = summary(check_config("--state-dir", state, "--check-config"))
    assert settings["state-dir"] == (state, "--state-dir"), settings["state-dir"]
    assert settings["socket"] == (f"{state}/hsmd.sock", "default"), settings["socket"]


def test_check_config_output_is_a_configuration_file(short_dir):
    tmp_path = short_dir
    first = check_config("--state-dir", str(tmp_path / "state"), "--check-config")
    config = tmp_path / "effective.yaml"
    config.write_text(first.stdout)
    again = check_config("--config", str(config), "--check-config")
    assert again.returncode == 0, again.stderr
    values = lambda settings: {name: value for name, (value, _) in settings.items()}
    assert values(summary(again)) == values(summary(first))
    null_socket = tmp_path / "null.yaml"
    null_socket.write_text(f"state-dir: {tmp_path / 'state'}\nsocket: ~\n")
    assert summary(check_config("--config", str(null_socket), "--check-config"))["socket"][0] == f"{tmp_path / 'state'}/hsmd.sock"


# ==================================================================================================
# 7. Log formats


_LOGFMT_PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?:\s+|$)')


def parse_logfmt(line: str) -> dict[str, str]:
    """key=value pairs in order; quoted values unescaped. Raises on anything that is not logfmt."""
    fields, position = {}, 0
    while position < len(line):
        pair = _LOGFMT_PAIR.match(line, position)
        assert pair, f"not logfmt at column {position}: {line!r}"
        key, value = pair.groups()
        if value.startswith('"'):
            value = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value[1:-1])
        assert key not in fields, f"{key} twice: {line!r}"
        fields[key] = value
        position = pair.end()
    return fields


def test_log_format_json_is_the_default():
    daemon = h.Daemon()
    with running(daemon):
        pid = daemon.process.pid
    lines = [json.loads(line) for line in daemon_log_lines(daemon)]
    ready = [line for line in lines if line["msg"] == "ready"]
    assert len(ready) == 1, lines
    assert ready[0]["level"] == "info" and ready[0]["pid"] == str(pid) and ready[0]["socket"] == str(daemon.socket_path)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", ready[0]["time"]), ready[0]
    assert [line["msg"] for line in lines][-2:] == ["stopping", "stopped"]


def daemon_log_lines(daemon: h.Daemon) -> list[str]:
    return [line for line in daemon.log_text.splitlines() if line.strip()]


def test_log_format_logfmt_quotes_what_needs_quoting():
    daemon = h.Daemon("--log-format", "logfmt")
    # A state directory whose path needs quoting and escaping in logfmt.
    daemon.state_dir = daemon.workdir / 'st"a te\\x'
    daemon.socket_path = daemon.state_dir / "hsmd.sock"
    daemon.client = h.Client(str(daemon.socket_path))
    with running(daemon):
        pid = daemon.process.pid
    lines = daemon_log_lines(daemon)
    for line in lines:
        with pytest.raises(ValueError):
            json.loads(line)
    parsed = [parse_logfmt(line) for line in lines]
    for fields in parsed:
        assert list(fields)[:3] == ["time", "level", "msg"], fields
    ready = [fields for fields in parsed if fields["msg"] == "ready"]
    assert len(ready) == 1, lines
    ready_line = next(line for line in lines if parse_logfmt(line)["msg"] == "ready")
    assert re.match(r"^time=\S+ level=info msg=ready ", ready_line), ready_line
    assert ready[0]["state_dir"] == str(daemon.state_dir), (ready[0], ready_line)
    assert ready[0]["socket"] == str(daemon.socket_path) and ready[0]["pid"] == str(pid)
    stopping = [fields for fields in parsed if fields["msg"] == "stopping"]
    assert stopping and stopping[0]["signal"] == str(int(signal.SIGTERM))


# ==================================================================================================
# 8. systemd: unit files, socket activation, sd_notify, the unit's system-call filter


def test_systemd_units_verify(tmp_path):
    binary = h.hsmd_binary().resolve()
    for unit in ("hsmd.service", "hsmd.socket"):
        shutil.copy(h.REPO_ROOT / "dist" / "systemd" / unit, tmp_path / unit)
    service = tmp_path / "hsmd.service"
    text = service.read_text()
    assert text.count("\nExecStart=/usr/local/bin/hsmd ") == 1, "the shipped ExecStart changed: update this test"
    service.write_text(text.replace("\nExecStart=/usr/local/bin/hsmd ", f"\nExecStart={binary} "))
    done = subprocess.run(["systemd-analyze", "verify", "hsmd.socket", "hsmd.service"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    about_units = [line for line in (done.stdout + done.stderr).splitlines()
                   if "hsmd" in line or str(tmp_path) in line]
    assert done.returncode == 0 and not about_units, f"systemd-analyze verify: {done.returncode}\n{done.stdout}{done.stderr}"


def test_socket_activation_serves_on_the_passed_socket_and_leaves_it_to_systemd(tmp_path):
    sock, state, log = tmp_path / "api.sock", tmp_path / "state", tmp_path / "activate.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            ["systemd-socket-activate", "-l", str(sock), str(h.hsmd_binary()), "--state-dir", str(state)],
            env=clean_environment(), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: process.poll() is not None or sock.exists(), 30, "systemd-socket-activate to listen")
        assert process.poll() is None, log.read_text()
        # The first connection makes systemd-socket-activate exec hsmd, which then answers on it.
        ready = unix_request(sock, "GET", "/ready")
        assert ready.status == 200 and ready.json["ready"] is True, ready
        health = unix_request(sock, "GET", "/health")
        assert health.json["listeners"] == [f"unix:{sock}"], health
        assert not (state / "hsmd.sock").exists(), "hsmd must not make its own socket when given one"
        created = unix_request(sock, "POST", "/keys/opsactivated/create?api-version=7.5", {"kty": "EC-HSM", "crv": "P-256"})
        assert created.status == 200, created
        signed = unix_request(sock, "POST", "/keys/opsactivated/sign?api-version=7.5",
                              {"alg": "ES256", "value": h.b64e(h.digest("ES256", MESSAGE))})
        assert signed.status == 200, signed
    finally:
        code = terminate(process)
    text = log.read_text(errors="replace")
    assert code == 0, text
    ready_lines = [json.loads(line) for line in text.splitlines() if line.startswith("{") and '"msg":"ready"' in line]
    assert len(ready_lines) == 1 and ready_lines[0]["socket"] == f"{sock} (from systemd)", text
    assert sock.exists() and sock.is_socket(), "the socket belongs to systemd: hsmd must not remove it"
    verified = hsmctl_audit_verify(state)
    assert verified.returncode == 0, verified


def test_without_socket_activation_hsmd_removes_its_own_socket():
    daemon = h.Daemon()
    with running(daemon):
        assert daemon.socket_path.is_socket()
        socket_path = daemon.socket_path
        stop_code = daemon.stop()
        assert stop_code == 0
        assert not socket_path.exists()


def test_socket_activation_refuses_more_than_one_socket(tmp_path):
    a, b, state, log = tmp_path / "a.sock", tmp_path / "b.sock", tmp_path / "state", tmp_path / "activate.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            ["systemd-socket-activate", "-l", str(a), "-l", str(b), str(h.hsmd_binary()), "--state-dir", str(state)],
            env=clean_environment(), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: process.poll() is not None or (a.exists() and b.exists()), 30, "the sockets")
        with contextlib.suppress(OSError, http.client.HTTPException):
            unix_request(a, "GET", "/ready")
        code = process.wait(timeout=30)
    finally:
        terminate(process)
    assert code not in (0, None), log.read_text()
    assert "exactly one ListenStream" in log.read_text(), log.read_text()
    assert not state.exists(), "a refused activation must start nothing"


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_sd_notify_ready_once_serving_and_stopping_on_sigterm(tmp_path, kind):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if kind == "path":
        address = str(tmp_path / "notify.sock")
        listener.bind(address)
        notify_socket = address
    else:
        name = f"hsmd-ops-notify-{uuid.uuid4().hex}"
        listener.bind("\0" + name)
        notify_socket = "@" + name
    listener.settimeout(60)
    state, log = tmp_path / "state", tmp_path / "hsmd.log"
    with open(log, "wb") as output:
        process = subprocess.Popen([str(h.hsmd_binary()), "--state-dir", str(state)],
                                   env=clean_environment(NOTIFY_SOCKET=notify_socket),
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        ready_message = listener.recv(4096).decode()
        fields = dict(line.split("=", 1) for line in ready_message.splitlines())
        assert fields.get("READY") == "1", ready_message
        assert fields.get("MAINPID") == str(process.pid), ready_message
        assert str(state / "hsmd.sock") in fields.get("STATUS", ""), ready_message
        # READY=1 means serving: no polling allowed.
        ready = unix_request(state / "hsmd.sock", "GET", "/ready")
        assert ready.status == 200 and ready.json["ready"] is True, ready
        process.send_signal(signal.SIGTERM)
        stopping = listener.recv(4096).decode()
        assert stopping.splitlines()[0] == "STOPPING=1", stopping
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        terminate(process)
        listener.close()


_SECCOMP_EXEC = r'''
# Loads the allow-list that systemd would build, with systemd's default action for anything else
# (kill the process, SIGSYS), then execs the command.
import ctypes, json, os, sys
allowed = json.loads(os.environ.pop("SECCOMP_ALLOW"))
seccomp = ctypes.CDLL("libseccomp.so.2")
seccomp.seccomp_init.restype = ctypes.c_void_p
seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
seccomp.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
SCMP_ACT_KILL_PROCESS, SCMP_ACT_ALLOW = 0x80000000, 0x7FFF0000
context = seccomp.seccomp_init(SCMP_ACT_KILL_PROCESS)
for name in allowed:
    number = seccomp.seccomp_syscall_resolve_name(name.encode())
    if number >= 0:
        assert seccomp.seccomp_rule_add(context, SCMP_ACT_ALLOW, number, 0) == 0, name
assert seccomp.seccomp_load(context) == 0
os.execv(sys.argv[1], sys.argv[1:])
'''


def unit_syscall_allow_list(service: Path) -> list[str]:
    """The system calls hsmd.service's SystemCallFilter= lines allow, expanded with systemd's own groups:
    the first line is an allow-list (so @default is implied), each later ~ line removes from it."""
    listing = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, timeout=60).stdout
    groups, current = {}, None
    for line in listing.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())

    def expand(item: str) -> set[str]:
        return set().union(*(expand(member) for member in groups[item])) if item.startswith("@") else {item}

    filters = [line.split("=", 1)[1].split() for line in service.read_text().splitlines()
               if line.startswith("SystemCallFilter=")]
    assert filters and not filters[0][0].startswith("~"), filters
    allowed = expand("@default")
    for entries in filters:
        deny = entries[0].startswith("~")
        items = set().union(*(expand(item.lstrip("~")) for item in entries))
        allowed = allowed - items if deny else allowed | items
    return sorted(allowed)


def test_hsmd_survives_the_units_system_call_filter(world_dir):
    """hsmd run as an unprivileged user (the unit's User=hsmd) under the seccomp filter the unit asks for."""
    home = Path(tempfile.mkdtemp(prefix="seccomp-", dir=world_dir))
    os.chown(home, NOBODY, NOBODY)
    (world_dir / "seccomp_exec.py").write_text(_SECCOMP_EXEC)
    (world_dir / "seccomp_exec.py").chmod(0o755)
    allowed = unit_syscall_allow_list(h.REPO_ROOT / "dist" / "systemd" / "hsmd.service")
    assert "read" in allowed and "reboot" not in allowed and "setuid" not in allowed  # the expansion is sane
    # Controls, so that only the filter can fail what follows: hsmd runs as this user, and the filter
    # loads and lets an ordinary program run.
    as_user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    control = subprocess.run([*as_user, str(h.hsmd_binary().resolve()), "--version"], capture_output=True, text=True, timeout=30)
    assert control.returncode == 0, f"hsmd cannot run as uid {NOBODY}: {control.stderr}"
    filtered = subprocess.run([*as_user, SYSTEM_PYTHON, str(world_dir / "seccomp_exec.py"), "/bin/ls", "/"],
                              env=clean_environment(SECCOMP_ALLOW=json.dumps(allowed)), capture_output=True, timeout=30)
    assert filtered.returncode == 0, f"the filter itself does not work: {filtered}"
    state, log = home / "state", world_dir / f"seccomp-{uuid.uuid4().hex[:6]}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", SYSTEM_PYTHON,
             str(world_dir / "seccomp_exec.py"), str(h.hsmd_binary().resolve()), "--state-dir", str(state)],
            env=clean_environment(SECCOMP_ALLOW=json.dumps(allowed)),
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_serving(state / "hsmd.sock", process, log)
        answers = as_nobody(world_dir, {"unix": str(state / "hsmd.sock")},
                            {"method": "POST", "path": "/keys/opsfilter/create?api-version=7.5",
                             "body": {"kty": "EC-HSM", "crv": "P-256"}},
                            {"method": "POST", "path": "/keys/opsfilter/sign?api-version=7.5",
                             "body": {"alg": "ES256", "value": h.b64e(h.digest("ES256", MESSAGE))}},
                            GET("/metrics"))
        assert [a.status for a in answers] == [200, 200, 200], answers
    finally:
        code = terminate(process)
    assert code == 0, f"exit {code} (-31 is SIGSYS):\n{log.read_text(errors='replace')}"
