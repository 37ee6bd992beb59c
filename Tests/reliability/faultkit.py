"""Shared helpers for the secret-hygiene and environment-fault tests (test_secret_hygiene.py,
test_environment_faults.py): an hsmd process whose state directory may sit on a mount of its own,
mounts that make real faults (a small tmpfs, a read-only bind mount, a loop-mounted ext4 that can be
forced read-only), immutable files (`chattr +i`, which binds root too), filling a filesystem, reading
the metadata store and the log, and the secret scanner.

Nothing here is a mock: every fault is one the kernel really returns to the real daemon.
Needs root (mount, chattr, setpriv); the tests skip with the reason when a mount is not permitted.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
import hsmdtest as h  # noqa: E402

REPO_ROOT = h.REPO_ROOT
PAGE = 4096


def hsmctl_binary() -> Path:
    override = os.environ.get("HSMCTL_BIN")
    return Path(override) if override else REPO_ROOT / ".build" / "debug" / "hsmctl"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(*command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed ({result.returncode}): {result.stderr}{result.stdout}")
    return result


# --------------------------------------------------------------------------------------------------
# The daemon


def raw_get(socket_path: Path | str, target: str, timeout: float = 30.0) -> tuple[int, dict | None]:
    """GET without hsmdtest's checks of Azure's error shape: for /ready, whose 503 is its own
    readiness document, not an error."""
    connection = h.UnixHTTPConnection(str(socket_path), timeout=timeout)
    try:
        connection.request("GET", target)
        answer = connection.getresponse()
        body = answer.read()
    finally:
        connection.close()
    return answer.status, (json.loads(body) if body else None)


class StartRefused(Exception):
    def __init__(self, code: int | None, log: str):
        super().__init__(f"hsmd exited with {code} while starting:\n{log}")
        self.code = code
        self.log = log


class Hsmd:
    """One hsmd process. Unlike hsmdtest.Daemon, the state directory can be anywhere (a mount point
    made by the test) and the socket lives outside it by default, so a full or read-only state
    directory does not keep the test from connecting. The log (stdout and stderr) is appended to
    across starts; `run_log()` is the current start's part."""

    def __init__(self, *args: str, workdir: Path | None = None, state_dir: Path | None = None,
                 socket_in_state: bool = False, prefix: tuple[str, ...] = (), preexec=None):
        self.binary = h.hsmd_binary()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="hsmd-rel-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = Path(state_dir or self.workdir / "state")
        self.socket_path = self.state_dir / "hsmd.sock" if socket_in_state else self.workdir / "hsmd.sock"
        self.args = list(args) + ([] if socket_in_state else ["--socket", str(self.socket_path)])
        self.prefix = list(prefix)
        self.preexec = preexec
        self.log_path = self.workdir / "hsmd.log"
        self.process: subprocess.Popen | None = None
        self.client = h.Client(str(self.socket_path))
        self._log_offset = 0

    def command(self) -> list[str]:
        return [*self.prefix, str(self.binary), "--state-dir", str(self.state_dir), *self.args]

    def _spawn(self) -> None:
        if not self.binary.is_file():
            raise RuntimeError(f"hsmd binary not found at {self.binary}: run `swift build` or set HSMD_BIN")
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, preexec_fn=self.preexec)

    def start(self, timeout: float = 30.0) -> "Hsmd":
        """Starts hsmd and waits for GET /health; raises StartRefused if it exits first."""
        self._spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StartRefused(self.process.returncode, self.run_log())
            if self.socket_path.exists():
                try:
                    if self.client.get("/health", api=None, timeout=5).status == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.03)
        self.kill()
        raise AssertionError(f"hsmd neither served nor exited within {timeout}s:\n{self.run_log()}")

    def start_refused(self, timeout: float = 30.0) -> StartRefused:
        """Starts hsmd expecting it to refuse: it must exit (not hang, not serve) within `timeout`."""
        try:
            self.start(timeout=timeout)
        except StartRefused as refusal:
            return refusal
        self.stop()
        raise AssertionError(f"hsmd started although it should have refused:\n{self.run_log()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        return h.terminate(self.process, timeout, self.run_log)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        return self.process.pid

    def run_log(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return "(no log)"

    def log_lines(self) -> list[dict]:
        """The current start's JSON log lines (lines that are not JSON are kept as {'raw': …})."""
        lines = []
        for line in self.run_log().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"raw": line, "level": "unparsed"})
        return lines

    def problems(self) -> list[dict]:
        """The current start's log lines at warning level or above (and anything unparsable)."""
        return [line for line in self.log_lines() if line.get("level") not in ("trace", "debug", "info", "notice")]

    def log_for(self, request_id: str) -> list[dict]:
        return [line for line in self.log_lines() if line.get("request_id") == request_id]

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def hsmd(*args: str, **kw):
    """An Hsmd that is stopped and removed afterwards, whatever happens."""
    daemon = Hsmd(*args, **kw)
    try:
        yield daemon
    finally:
        daemon.cleanup()


# --------------------------------------------------------------------------------------------------
# Mounts and file attributes. Each is a context manager that undoes itself.


def _mount_or_skip(*command: str, what: str) -> None:
    result = run(*command, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot {what} here ({' '.join(command)}: {result.stderr.strip()}); this fault needs root with mount rights")


def umount(path: Path) -> None:
    for _ in range(50):
        if run("umount", path, check=False).returncode == 0:
            return
        time.sleep(0.1)
    run("umount", "-l", path, check=False)


@contextlib.contextmanager
def _killing_on_failure(holder: "Hsmd | None"):
    """A test that fails inside a mount leaves hsmd running with files open there: kill it first, so
    that the mount can go at once."""
    try:
        yield
    except BaseException:
        if holder is not None:
            holder.kill()
        raise


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "4m", holder: "Hsmd | None" = None):
    """A tmpfs of `size` mounted on `path` (created if missing), mode 0700."""
    path.mkdir(parents=True, exist_ok=True)
    _mount_or_skip("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path), what="mount a tmpfs")
    try:
        with _killing_on_failure(holder):
            yield path
    finally:
        umount(path)


@contextlib.contextmanager
def read_only_bind(path: Path, holder: "Hsmd | None" = None):
    """`path` bind-mounted onto itself read-only: new opens for writing fail with EROFS, while file
    descriptors already open (through the original mount) keep working."""
    _mount_or_skip("mount", "--bind", str(path), str(path), what="bind-mount")
    try:
        result = run("mount", "-o", "remount,bind,ro", path, check=False)
        if result.returncode != 0:
            pytest.skip(f"cannot remount a bind mount read-only: {result.stderr.strip()}")
        with _killing_on_failure(holder):
            yield path
    finally:
        umount(path)


@dataclass
class LoopFS:
    image: Path
    mountpoint: Path
    device: str = ""

    def mount(self) -> None:
        _mount_or_skip("mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.mountpoint),
                       what="loop-mount an ext4 image")
        self.device = run("findmnt", "-n", "-o", "SOURCE", self.mountpoint).stdout.strip()

    def mounted(self) -> bool:
        return run("findmnt", "-n", self.mountpoint, check=False).returncode == 0

    def options(self) -> str:
        return run("findmnt", "-n", "-o", "OPTIONS", self.mountpoint).stdout.strip()

    def trigger_error(self) -> None:
        """Makes ext4 report an error; with errors=remount-ro the kernel turns the filesystem
        read-only at once, for every open file too (as after a real I/O error)."""
        control = Path("/sys/fs/ext4") / Path(self.device).name / "trigger_fs_error"
        if not control.exists():
            pytest.skip(f"{control} does not exist: this kernel cannot inject an ext4 error")
        control.write_text("hsmd reliability test\n")

    def unmount(self) -> None:
        if self.mounted():
            umount(self.mountpoint)

    def fsck(self) -> subprocess.CompletedProcess:
        return run("e2fsck", "-f", "-y", self.image, check=False)


@contextlib.contextmanager
def loop_ext4(workdir: Path, size_mb: int = 32):
    """A fresh ext4 filesystem in an image file, loop-mounted with errors=remount-ro."""
    image = workdir / "fs.img"
    mountpoint = workdir / "mnt"
    mountpoint.mkdir()
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    if run("mkfs.ext4", "-q", "-F", image, check=False).returncode != 0:
        pytest.skip("mkfs.ext4 is not available")
    fs = LoopFS(image, mountpoint)
    fs.mount()
    try:
        yield fs
    finally:
        fs.unmount()


@contextlib.contextmanager
def immutable(*paths: Path):
    """`chattr +i`: even root can neither write, append to, rename nor create in these (ext4)."""
    done = []
    try:
        for path in paths:
            result = run("chattr", "+i", path, check=False)
            if result.returncode != 0:
                pytest.skip(f"chattr +i {path} failed ({result.stderr.strip()}); the filesystem lacks the immutable attribute")
            done.append(path)
        yield
    finally:
        for path in reversed(done):
            run("chattr", "-i", path, check=False)


def fill(directory: Path, free_pages: int = 0) -> Path:
    """Fills the filesystem holding `directory` with one file, then gives back `free_pages` pages."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    chunk = b"\0" * (64 * PAGE)
    try:
        while True:
            try:
                count = os.write(descriptor, chunk)
            except OSError:
                break
            written += count
            if count < len(chunk):
                break
        while True:  # the last pages, one at a time
            try:
                count = os.write(descriptor, b"\0" * PAGE)
            except OSError:
                break
            written += count
            if count < PAGE:
                break
        os.ftruncate(descriptor, max(0, (written // PAGE - free_pages) * PAGE))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return filler


def free_bytes(directory: Path) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


# --------------------------------------------------------------------------------------------------
# The state directory


# SoftHSM2 rewrites token.object at every login and bumps `generation` on changes: a start that logs
# in (even one refused later, e.g. by the metadata store) changes them without any damage.
SOFTHSM_VOLATILE = ("token.object", "generation")


def file_digests(root: Path, skip: tuple[str, ...] = ("hsmd.lock", "hsmd.sock", "filler"),
                 volatile: tuple[str, ...] = ()) -> dict[str, str]:
    """SHA-256 of every regular file under `root`, by relative path (files named in `skip` or
    `volatile` left out)."""
    digests = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_file() and not path.is_symlink() and path.name not in skip + volatile:
            digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def token_objects(state_dir: Path) -> dict[Path, bytes]:
    """The token's object files (keys, the domain key), not the token's own token.object."""
    return {path: path.read_bytes() for path in sorted((state_dir / "token").glob("*/*.object")) if path.name != "token.object"}


def store_rows(state_dir: Path) -> dict:
    """The metadata store's key rows and version rows, read with hsmd stopped."""
    connection = sqlite3.connect(f"file:{state_dir / 'metadata.sqlite'}?mode=ro", uri=True)
    try:
        keys = connection.execute("SELECT name, deleted_date, purging FROM keys").fetchall()
        versions = connection.execute("SELECT name_key, version, state FROM versions").fetchall()
    finally:
        connection.close()
    return {"keys": keys, "versions": versions}


class HeldLock:
    """An SQLite lock on a database held by another process (a Python child, like an operator's
    sqlite3 shell): EXCLUSIVE (BEGIN EXCLUSIVE) or SHARED (a read transaction). Held until release()."""

    SCRIPT = ("import sqlite3, sys\n"
              "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)\n"
              "c.execute('BEGIN EXCLUSIVE') if sys.argv[2] == 'EXCLUSIVE' else "
              "(c.execute('BEGIN'), c.execute('SELECT count(*) FROM sqlite_master').fetchall())\n"
              "print('locked', flush=True)\n"
              "sys.stdin.read()\n"
              "c.execute('ROLLBACK')\n")

    def __init__(self, path: Path, kind: str = "EXCLUSIVE"):
        self.process = subprocess.Popen([sys.executable, "-c", self.SCRIPT, str(path), kind],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.process.stdout.readline()
        if line.strip() != b"locked":
            self.process.kill()
            raise AssertionError(f"could not lock {path}: {self.process.stderr.read().decode()}")

    def release(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=10)


def audit_verify(audit_dir: Path) -> subprocess.CompletedProcess:
    binary = hsmctl_binary()
    assert binary.is_file(), f"hsmctl not found at {binary}: set HSMCTL_BIN or run `swift build`"
    return run(binary, "audit", "verify", "--dir", audit_dir, check=False)


def check_consistent(daemon: Hsmd) -> dict[str, list[str]]:
    """With hsmd stopped: no pending versions and no half-purged keys in the store; then a start
    that logs nothing at warning level or above (no missing token object, no object without
    metadata), whose token holds exactly the store's versions, and an intact audit chain.
    Returns {key name: [versions]} as the restarted daemon lists them. Leaves hsmd running."""
    assert not daemon.alive()
    rows = store_rows(daemon.state_dir)
    pending = [row for row in rows["versions"] if row[2] != "active"]
    assert not pending, f"versions left pending in the metadata store: {pending}"
    purging = [row for row in rows["keys"] if row[2]]
    assert not purging, f"keys left half-purged: {purging}"
    daemon.start()
    problems = daemon.problems()
    assert not problems, "a restart after the fault logged problems:\n" + "\n".join(map(json.dumps, problems))
    health = h.ok(daemon.client.get("/health", api=None))
    assert health["token"]["keyVersions"] == len(rows["versions"]), \
        f"the token holds {health['token']['keyVersions']} key versions, the store {len(rows['versions'])}"
    listing = {}
    for item in h.items(daemon.client.pages("/keys")):
        name, _ = h.kid_parts(item["kid"])
        versions = h.items(daemon.client.pages(f"/keys/{name}/versions"))
        listing[name] = [h.kid_parts(v["kid"])[1] for v in versions]
    verified = audit_verify(daemon.state_dir / "audit")
    assert verified.returncode == 0, f"the audit chain is broken: {verified.stdout}{verified.stderr}"
    return listing


def refusal_line(refusal: StartRefused) -> str:
    """The message of the critical 'cannot start' line (or the whole log when there is none)."""
    for line in refusal.log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == "cannot start":
            return str(record.get("error", ""))
    return refusal.log


# --------------------------------------------------------------------------------------------------
# The secret scanner


def _base64_cores(secret: bytes) -> dict[str, bytes]:
    """For each of the three alignments a secret can have inside a longer base64 text, the run of
    characters that depends on the secret's bits alone: found whatever precedes or follows it."""
    cores = {}
    for shift in range(3):
        start = -(-8 * shift // 6)                  # first character whose bits are all the secret's
        end = (8 * (shift + len(secret))) // 6       # one past the last such character
        padded = b"\0" * shift + secret
        cores[f"base64@{shift}"] = base64.b64encode(padded)[start:end]
        cores[f"base64url@{shift}"] = base64.urlsafe_b64encode(padded)[start:end]
    return cores


@dataclass
class Secret:
    label: str
    value: bytes
    number: int | None = None          # for key components: also searched as a decimal integer
    needles: dict[str, bytes] = field(init=False)

    def __post_init__(self):
        assert len(self.value) >= 16, f"{self.label}: secrets shorter than 16 bytes would give false alarms"
        needles = {"raw": self.value, "raw-reversed": self.value[::-1],
                   "hex": self.value.hex().encode(), "HEX": self.value.hex().upper().encode()}
        needles.update(_base64_cores(self.value))
        if self.number is not None:
            needles["decimal"] = str(self.number).encode()
        self.needles = needles


@dataclass
class Output:
    label: str
    data: bytes
    allowed: frozenset[str] = frozenset()   # labels of secrets this output holds by design


@dataclass
class Hit:
    secret: str
    form: str
    output: str
    offset: int

    def __str__(self):
        return f"{self.secret} ({self.form}) in {self.output} at byte {self.offset}"


_ESCAPES = re.compile(rb"\\[nrt]|\s")


def normalised(data: bytes) -> bytes:
    """Without whitespace and JSON's \\n \\r \\t escapes, and with \\/ unescaped: so that base64 or hex
    broken over lines (PEM, MIME) is found as well."""
    return _ESCAPES.sub(b"", data).replace(b"\\/", b"/")


def scan(outputs: list[Output], secrets: list[Secret]) -> list[Hit]:
    hits = []
    for output in outputs:
        variants = (output.data, normalised(output.data))
        for secret in secrets:
            if secret.label in output.allowed:
                continue
            for form, needle in secret.needles.items():
                for data in variants:
                    offset = data.find(needle)
                    if offset >= 0:
                        hits.append(Hit(secret.label, form, output.label, offset))
                        break
    return hits


def finds(data: bytes, secret: Secret) -> bool:
    return any(needle in variant for needle in secret.needles.values() for variant in (data, normalised(data)))


class RecordingClient(h.Client):
    """hsmdtest's client that keeps every response exactly as received: status line, every header
    (repeated ones too) and the body; and every request it sent (for the scanner's own checks)."""

    def __init__(self, socket_path: str, api: str = h.DEFAULT_API):
        super().__init__(socket_path, api)
        self.exchanges: list[tuple[bytes, bytes, h.Response]] = []   # (request bytes, response bytes, response)
        self.extra_headers: dict[str, str] = {}

    def request(self, method, path, body=None, *, api=h._DEFAULT, raw=None, headers=None, timeout=60.0):
        api = self.api if api is h._DEFAULT else api
        target = path
        if api is not None and "api-version=" not in path:
            target += ("&" if "?" in path else "?") + "api-version=" + api
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        send_headers = {"Accept": "application/json", **self.extra_headers}
        if data is not None:
            send_headers["Content-Type"] = "application/json"
        send_headers.update(headers or {})
        connection = h.UnixHTTPConnection(self.socket_path, timeout=timeout)
        try:
            connection.request(method, target, body=data, headers=send_headers)
            answer = connection.getresponse()
            payload = answer.read()
            header_list = answer.getheaders()
            response = h.Response(method, target, answer.status, {n.lower(): v for n, v in header_list}, payload)
            status_line = f"HTTP/1.1 {answer.status} {answer.reason}\r\n".encode()
        finally:
            connection.close()
        wire = status_line + b"".join(f"{n}: {v}\r\n".encode() for n, v in header_list) + b"\r\n" + payload
        sent = f"{method} {target}\r\n".encode() + b"".join(f"{n}: {v}\r\n".encode() for n, v in send_headers.items()) \
            + b"\r\n" + (data or b"")
        h.check_invariants(response)
        self.exchanges.append((sent, wire, response))
        return response
