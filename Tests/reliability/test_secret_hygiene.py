"""Secret hygiene (issue #9): no private material, plaintext, PIN or credential in anything hsmd
puts out, and a process that does not give its memory away.

A workload imports keys whose private parts the test knows (RSA d/p/q/dp/dq/qi, EC d, AES and HMAC k,
generated here with `cryptography`), encrypts and decrypts known plaintexts, wraps and unwraps known
keys, signs, makes and restores backups, provokes errors with secrets in the request, and gets OAuth2
and bearer credentials. Then every output is searched for every secret, raw, reversed, as hex (both
cases), base64 and base64url (at each of the three alignments a value can have inside a longer
base64 text) and, for key components, as a decimal integer:

- the daemon's stdout and stderr (at --log-level trace);
- every HTTP response: status line, every header, body. A response that returns a secret by design
  (decrypt and unwrap: their plaintext; client registration: its secret; token issue: its token) is
  excused for that one secret only; requests are not outputs;
- every file of the state directory, while hsmd runs and after it stopped: the audit log, the metadata
  store with its journal, the token's files, the manifest, the TLS files. Only the files that hold a
  secret by design are excused, for that secret: pins/*.pin for the PINs, tls/*-key.pem for the TLS keys;
- the backup blobs, decoded: the material must be in them only wrapped.

The scanner is checked against the places where the secrets must be found (requests, the excused
responses and files), so a scanner that finds nothing fails.

Run: HSMD_BIN=… HSMCTL_BIN=… python3 -m pytest Tests/reliability -q -k hygiene
"""
from __future__ import annotations

import os
import shutil
import tempfile
import stat
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faultkit as fk  # noqa: E402
from faultkit import h  # noqa: E402

API = "7.6"  # HS* and every wrap algorithm


def _b64any(text: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))


def _ints(n: int, size: int | None = None) -> bytes:
    return h.to_bytes(n, size)


class Workload:
    """Runs the workload on one daemon and collects the secrets and the outputs."""

    def __init__(self, daemon: fk.Hsmd, port: int):
        self.daemon = daemon
        self.port = port
        self.client = fk.RecordingClient(str(daemon.socket_path), api=API)
        self.secrets: dict[str, fk.Secret] = {}
        self.allowed: dict[int, set[str]] = {}      # response index -> secret labels it holds by design
        self.blobs: dict[str, bytes] = {}
        self.file_snapshots: list[fk.Output] = []

    def secret(self, label: str, value: bytes, number: int | None = None) -> bytes:
        assert label not in self.secrets
        self.secrets[label] = fk.Secret(label, value, number)
        return value

    def excuse_last(self, *labels: str) -> None:
        self.allowed.setdefault(len(self.client.exchanges) - 1, set()).update(labels)

    def ok(self, response: h.Response, status: int = 200):
        return h.ok(response, status)

    # ---------------------------------------------------------------------------------------------

    def run(self) -> None:
        c = self.client
        # An Authorization header is ignored on the socket; it must not be logged or echoed either.
        bearer = self.secret("Authorization header value", os.urandom(32))
        c.extra_headers = {"Authorization": "Bearer " + h.b64e(bearer)}

        # Keys with known private parts.
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = rsa_key.private_numbers()
        for part, value in (("d", numbers.d), ("p", numbers.p), ("q", numbers.q), ("dp", numbers.dmp1),
                            ("dq", numbers.dmq1), ("qi", numbers.iqmp)):
            self.secret(f"RSA {part}", _ints(value), value)
        rsa_bundle = c.import_key("hy-rsa", h.rsa_private_jwk(rsa_key))
        ec_keys = {}
        for crv, curve in (("P-256", ec.SECP256R1), ("P-384", ec.SECP384R1)):
            key = ec.generate_private_key(curve())
            value = key.private_numbers().private_value
            self.secret(f"EC {crv} d", _ints(value, h.COORDINATE_SIZE[crv]), value)
            ec_keys[crv] = (key, c.import_key(f"hy-ec-{crv[2:]}", h.ec_private_jwk(key, crv)))
        aes256 = self.secret("AES-256 k", os.urandom(32))
        aes128 = self.secret("AES-128 k", os.urandom(16))
        hmac512 = self.secret("HMAC-512 k", os.urandom(64))
        aes_bundle = c.import_key("hy-aes256", h.oct_jwk(aes256))
        c.import_key("hy-aes128", h.oct_jwk(aes128))
        c.import_key("hy-hmac", h.oct_jwk(hmac512, key_ops=["sign", "verify"]))

        # Encrypt / decrypt known plaintexts; each decrypt response is excused for its plaintext only.
        public = h.public_key(rsa_bundle["key"])
        for alg in ("RSA-OAEP-256", "RSA-OAEP", "RSA1_5"):
            plaintext = self.secret(f"plaintext {alg}", os.urandom(48))
            sealed = self.ok(c.op("hy-rsa", "encrypt", {"alg": alg, "value": h.b64e(plaintext)}))
            opened = self.ok(c.op(sealed["kid"], "decrypt", {"alg": alg, "value": sealed["value"]}))
            self.excuse_last(f"plaintext {alg}")
            assert h.b64d(opened["value"]) == plaintext
            assert rsa_key.decrypt(h.b64d(sealed["value"]), h.rsa_encryption_padding(alg)) == plaintext
        local = self.secret("plaintext RSA-OAEP-256 (sealed by the test)", os.urandom(40))
        opened = self.ok(c.op("hy-rsa", "decrypt", {"alg": "RSA-OAEP-256", "value": h.b64e(
            public.encrypt(local, h.rsa_encryption_padding("RSA-OAEP-256")))}))
        self.excuse_last("plaintext RSA-OAEP-256 (sealed by the test)")
        assert h.b64d(opened["value"]) == local

        gcm_plaintext = self.secret("plaintext A256GCM", os.urandom(64))
        aad = os.urandom(20)
        sealed = self.ok(c.op("hy-aes256", "encrypt", {"alg": "A256GCM", "value": h.b64e(gcm_plaintext), "aad": h.b64e(aad)}))
        assert AESGCM(aes256).decrypt(h.b64d(sealed["iv"]), h.b64d(sealed["value"]) + h.b64d(sealed["tag"]), aad) == gcm_plaintext
        opened = self.ok(c.op(sealed["kid"], "decrypt", {"alg": "A256GCM", "value": sealed["value"], "iv": sealed["iv"],
                                                          "tag": sealed["tag"], "aad": h.b64e(aad)}))
        self.excuse_last("plaintext A256GCM")
        assert h.b64d(opened["value"]) == gcm_plaintext
        # A wrong tag: the uniform decryption error must not carry the plaintext (nor anything else).
        bad_tag = bytes(b ^ 1 for b in h.b64d(sealed["tag"]))
        h.expect_error(c.op(sealed["kid"], "decrypt", {"alg": "A256GCM", "value": sealed["value"], "iv": sealed["iv"],
                                                        "tag": h.b64e(bad_tag), "aad": h.b64e(aad)}), 400, "BadParameter")

        cbc_plaintext = self.secret("plaintext A128CBCPAD", os.urandom(50))
        iv = os.urandom(16)
        sealed = self.ok(c.op("hy-aes128", "encrypt", {"alg": "A128CBCPAD", "value": h.b64e(cbc_plaintext), "iv": h.b64e(iv)}))
        opened = self.ok(c.op(sealed["kid"], "decrypt", {"alg": "A128CBCPAD", "value": sealed["value"], "iv": sealed["iv"]}))
        self.excuse_last("plaintext A128CBCPAD")
        assert h.b64d(opened["value"]) == cbc_plaintext

        # Wrap / unwrap known keys; each unwrap response is excused for its key only.
        for name, alg in (("hy-rsa", "RSA-OAEP-256"), ("hy-aes256", "A256KW"), ("hy-aes256", "CKM_AES_KEY_WRAP_PAD")):
            label = f"wrapped key ({alg})"
            material = self.secret(label, os.urandom(32 if alg != "CKM_AES_KEY_WRAP_PAD" else 40))
            wrapped = self.ok(c.op(name, "wrapkey", {"alg": alg, "value": h.b64e(material)}))
            unwrapped = self.ok(c.op(wrapped["kid"], "unwrapkey", {"alg": alg, "value": wrapped["value"]}))
            self.excuse_last(label)
            assert h.b64d(unwrapped["value"]) == material
        local_wrapped = self.secret("wrapped key (A256KW, wrapped by the test)", os.urandom(32))
        unwrapped = self.ok(c.op("hy-aes256", "unwrapkey", {"alg": "A256KW", "value": h.b64e(aes_key_wrap(aes256, local_wrapped))}))
        self.excuse_last("wrapped key (A256KW, wrapped by the test)")
        assert h.b64d(unwrapped["value"]) == local_wrapped

        # Sign (and check the signatures with the test's own copy of the keys).
        message = os.urandom(100)
        for alg in ("RS256", "PS256"):
            signed = self.ok(c.op("hy-rsa", "sign", {"alg": alg, "value": h.b64e(h.digest(alg, message))}))
            h.verify_locally(rsa_bundle["key"], alg, message, h.b64d(signed["value"]))
        for crv, alg in (("P-256", "ES256"), ("P-384", "ES384")):
            key, bundle = ec_keys[crv]
            signed = self.ok(c.op(bundle["key"]["kid"], "sign", {"alg": alg, "value": h.b64e(h.digest(alg, message))}))
            h.verify_locally(bundle["key"], alg, message, h.b64d(signed["value"]))
        hmac_message = self.secret("HS512 message", os.urandom(48))
        signed = self.ok(c.op("hy-hmac", "sign", {"alg": "HS512", "value": h.b64e(hmac_message)}))
        mac = hmac.HMAC(hmac512, hashes.SHA512())
        mac.update(hmac_message)
        assert h.b64d(signed["value"]) == mac.finalize()

        # Errors with secrets in the request: the answers must not echo them.
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        mixed = h.rsa_private_jwk(rsa_key)
        mixed["n"] = h.b64e(_ints(other.public_key().public_numbers().n))
        h.expect_error(c.put("/keys/hy-bad-rsa", {"key": mixed}), 400, "BadParameter")
        bad_length = self.secret("oct k of a bad length", os.urandom(17))
        h.expect_error(c.put("/keys/hy-bad-oct", {"key": h.oct_jwk(bad_length)}), 400, "BadParameter")
        bad_text = self.secret("oct k in bad base64url", os.urandom(32))
        h.expect_error(c.put("/keys/hy-bad-oct", {"key": {"kty": "oct", "k": h.b64e(bad_text) + "!*"}}), 400, "BadParameter")
        torn = self.secret("oct k in a torn JSON body", os.urandom(32))
        h.expect_error(c.put("/keys/hy-bad-oct", raw=b'{"key":{"kty":"oct","k":"' + h.b64e(torn).encode()), 400, "BadParameter")
        wrong_d = self.secret("EC d that does not match x, y", os.urandom(32))
        jwk = h.ec_private_jwk(ec_keys["P-256"][0], "P-256")
        jwk["d"] = h.b64e(wrong_d)
        h.expect_error(c.put("/keys/hy-bad-ec", {"key": jwk}), 400, "BadParameter")

        # Backups: the blobs are outputs; decoded, they must hold the material only wrapped.
        for name in ("hy-rsa", "hy-ec-256", "hy-ec-384", "hy-aes256", "hy-aes128", "hy-hmac"):
            self.blobs[name] = h.b64d(self.ok(c.post(f"/keys/{name}/backup"))["value"])
        # …and they are real: purge a key, restore it, and decrypt with it what the test sealed under
        # its known k.
        after = self.secret("plaintext A256GCM (after restore)", os.urandom(33))
        nonce = os.urandom(12)
        local_sealed = AESGCM(aes256).encrypt(nonce, after, None)
        self.ok(c.delete("/keys/hy-aes256"))
        self.ok(c.delete("/deletedkeys/hy-aes256"), 204)
        self.ok(c.post("/keys/restore", {"value": h.b64e(self.blobs["hy-aes256"])}))
        opened = self.ok(c.op(aes_bundle["key"]["kid"], "decrypt", {
            "alg": "A256GCM", "value": h.b64e(local_sealed[:-16]), "iv": h.b64e(nonce), "tag": h.b64e(local_sealed[-16:])}))
        self.excuse_last("plaintext A256GCM (after restore)")
        assert h.b64d(opened["value"]) == after

        # Credentials: an OAuth2 client's secret, the access token got with it, an issued bearer token.
        registered = self.ok(c.post("/hsmd/clients", {"principal": "hygiene"}), 201)
        self.excuse_last("OAuth2 client secret", "OAuth2 client secret (decoded)")
        self.secret("OAuth2 client secret", registered["clientSecret"].encode())
        self.secret("OAuth2 client secret (decoded)", _b64any(registered["clientSecret"]))
        form = urllib.parse.urlencode({
            "grant_type": "client_credentials", "client_id": registered["clientId"],
            "client_secret": registered["clientSecret"], "scope": f"https://localhost:{self.port}/.default"}).encode()
        granted = self.ok(c.request("POST", f"/{registered['tenant']}/oauth2/v2.0/token", raw=form, api=None,
                                    headers={"Content-Type": "application/x-www-form-urlencoded"}))
        self.excuse_last("access token (client credentials)", "access token signature (client credentials)")
        self.secret("access token (client credentials)", granted["access_token"].encode())
        self.secret("access token signature (client credentials)", h.b64d(granted["access_token"].rsplit(".", 1)[1]))
        issued = self.ok(c.post("/hsmd/tokens", {"principal": "hygiene"}), 201)
        self.excuse_last("issued bearer token", "issued bearer token signature")
        self.secret("issued bearer token", issued["access_token"].encode())
        self.secret("issued bearer token signature", h.b64d(issued["access_token"].rsplit(".", 1)[1]))
        # Used as an Authorization header on the socket (ignored there): must not be logged.
        c.extra_headers = {"Authorization": "Bearer " + issued["access_token"]}
        self.ok(c.get("/keys"))
        c.extra_headers = {"Authorization": "Bearer " + h.b64e(bearer)}
        self.ok(c.get("/health", api=None))

    # ---------------------------------------------------------------------------------------------

    def add_state_secrets(self) -> None:
        state = self.daemon.state_dir
        self.secret("user PIN", (state / "pins" / "user.pin").read_bytes().strip())
        self.secret("SO PIN", (state / "pins" / "so.pin").read_bytes().strip())
        for label, name in (("TLS CA private key", "ca-key.pem"), ("TLS server private key", "server-key.pem")):
            key = serialization.load_pem_private_key((state / "tls" / name).read_bytes(), password=None)
            value = key.private_numbers().private_value
            self.secret(label, _ints(value, 32), value)

    def snapshot_files(self, when: str) -> None:
        """Every file of the state directory as it is now; reading never blocks hsmd."""
        excused = {"pins/user.pin": {"user PIN"}, "pins/so.pin": {"SO PIN"},
                   "tls/ca-key.pem": {"TLS CA private key"}, "tls/server-key.pem": {"TLS server private key"}}
        for path in sorted(self.daemon.state_dir.rglob("*")):
            if not path.is_file() or stat.S_ISSOCK(path.stat().st_mode):
                continue
            relative = str(path.relative_to(self.daemon.state_dir))
            try:
                data = path.read_bytes()
            except FileNotFoundError:   # a journal that came and went
                continue
            self.file_snapshots.append(fk.Output(f"{relative} ({when})", data, frozenset(excused.get(relative, ()))))

    def outputs(self) -> list[fk.Output]:
        outs = [fk.Output(f"response #{index} {response.method} {response.target} -> {response.status}", wire,
                          frozenset(self.allowed.get(index, ())))
                for index, (_, wire, response) in enumerate(self.client.exchanges)]
        outs.append(fk.Output("hsmd's stdout and stderr", self.daemon.log_path.read_bytes()))
        outs += self.file_snapshots
        outs += [fk.Output(f"backup blob of {name} (decoded)", blob) for name, blob in self.blobs.items()]
        return outs


@pytest.fixture(scope="module")
def hygiene():
    port = fk.free_port()
    with fk.hsmd("--tls-port", str(port), "--log-level", "trace") as daemon:
        daemon.start()
        workload = Workload(daemon, port)
        workload.run()
        workload.add_state_secrets()
        workload.snapshot_files("while hsmd runs")
        assert daemon.stop() == 0, daemon.run_log()
        workload.snapshot_files("after hsmd stopped")
        yield workload


def test_hygiene_no_secret_in_any_output(hygiene, request):
    outputs = hygiene.outputs()
    secrets = list(hygiene.secrets.values())
    hits = fk.scan(outputs, secrets)
    figures = {
        "secrets": len(secrets), "needles (secret x form)": sum(len(s.needles) for s in secrets),
        "outputs": len(outputs), "bytes scanned": sum(len(o.data) for o in outputs),
        "responses": len(hygiene.client.exchanges), "state-file snapshots": len(hygiene.file_snapshots),
        "backup blobs": len(hygiene.blobs), "daemon log bytes": hygiene.daemon.log_path.stat().st_size,
        "hits": len(hits)}
    try:   # the directory's conftest prints figures in the terminal summary, even with -q
        request.getfixturevalue("report_summary")(("secret hygiene", figures))
    except pytest.FixtureLookupError:
        print("\nsecret hygiene:", figures)
    scanned = figures["bytes scanned"]
    assert len(outputs) > 60 and scanned > 100_000, "the workload produced too little output to mean anything"
    assert not hits, f"{len(hits)} secret(s) found in hsmd's outputs:\n" + "\n".join(map(str, hits[:50]))


def test_hygiene_scanner_finds_what_is_there(hygiene):
    """The scanner's own check: every secret is found where it must be (the requests that carried it,
    the responses and files that hold it by design). A scanner that cannot find is a test that cannot fail."""
    requests = b"".join(sent for sent, _, _ in hygiene.client.exchanges)
    missed = []
    for secret in hygiene.secrets.values():
        if secret.label.startswith(("user PIN", "SO PIN", "TLS ")):
            continue
        if not fk.finds(requests, secret) and not any(
                fk.finds(wire, secret) for index, (_, wire, _) in enumerate(hygiene.client.exchanges)
                if secret.label in hygiene.allowed.get(index, ())):
            missed.append(secret.label)
    assert not missed, f"the scanner did not find these secrets in the requests that carried them: {missed}"
    # Every excused response really holds what it is excused for (the exclusion is exact).
    for index, labels in hygiene.allowed.items():
        wire = hygiene.client.exchanges[index][1]
        for label in labels:
            if label in hygiene.secrets:
                assert fk.finds(wire, hygiene.secrets[label]), f"response #{index} was excused for {label} it does not hold"
    # PINs and TLS keys are found in their own files: PEM is base64 broken over lines, at any alignment.
    files = {o.label: o for o in hygiene.file_snapshots}
    for label, file in (("user PIN", "pins/user.pin"), ("SO PIN", "pins/so.pin"),
                        ("TLS CA private key", "tls/ca-key.pem"), ("TLS server private key", "tls/server-key.pem")):
        assert fk.finds(files[f"{file} (after hsmd stopped)"].data, hygiene.secrets[label]), f"{label} not found in {file}"
    # And a planted secret is reported with its form.
    planted = fk.Secret("planted", os.urandom(24))
    for form in ("hex", "HEX", "base64url@1", "base64@2", "raw"):
        data = b"noise " + (planted.needles[form] if form != "raw" else planted.value) + b" noise"
        assert fk.scan([fk.Output("planted", data)], [planted]), form


def test_hygiene_backup_blobs_hold_material_only_wrapped(hygiene):
    key_secrets = [s for s in hygiene.secrets.values()
                   if s.label.startswith(("RSA ", "EC ", "AES-", "HMAC-")) and "does not match" not in s.label]
    assert len(key_secrets) == 11
    hits = fk.scan([fk.Output(f"backup blob of {name}", blob) for name, blob in hygiene.blobs.items()], key_secrets)
    assert not hits, "key material in clear in a backup blob:\n" + "\n".join(map(str, hits))
    assert all(len(blob) > 64 for blob in hygiene.blobs.values())


# --------------------------------------------------------------------------------------------------
# The process: no core dumps, not dumpable


def _unlimited_core():
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _core_limits(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            soft, hard = line.split()[4:6]
            return soft, hard
    raise AssertionError(f"no core limit in /proc/{pid}/limits")


def test_hygiene_core_dumps_disabled():
    """RLIMIT_CORE is 0 (soft and hard) although hsmd's parent allowed unlimited core files."""
    with fk.hsmd(preexec=_unlimited_core) as daemon:
        daemon.start()
        assert _core_limits(daemon.pid) == ("0", "0")
        assert daemon.stop() == 0


def _as_nobody(workdir: Path) -> tuple[str, ...]:
    os.chmod(workdir, 0o755)
    state = workdir / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    return ("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups")


def _dumpable(pid: int) -> bool:
    """A process is dumpable iff its /proc/PID files belong to its own uid: the kernel gives a
    non-dumpable process's /proc entries to root (proc(5)), which then keeps ptrace, /proc/PID/mem and
    core dumps from its own user. Only meaningful for a process that does not run as root."""
    uid = int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:")))
    assert uid != 0, "the dumpable check needs a process that does not run as root"
    return Path(f"/proc/{pid}/mem").stat().st_uid == uid


def test_hygiene_dumpable_probe_tells_the_two_apart(tmp_path):
    """The probe used below, on two processes under uid 65534: one that calls
    prctl(PR_SET_DUMPABLE, 0) and one that does not."""
    os.chmod(tmp_path, 0o755)
    probe = ("import ctypes, sys, time; libc = ctypes.CDLL(None); "
             "assert libc.prctl(4, int(sys.argv[1]), 0, 0, 0) == 0; print('ok', flush=True); time.sleep(30)")
    for dumpable in (0, 1):
        child = subprocess.Popen(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                                  sys.executable, "-c", probe, str(dumpable)], stdout=subprocess.PIPE)
        try:
            assert child.stdout.readline().strip() == b"ok"
            assert _dumpable(child.pid) is bool(dumpable)
        finally:
            child.kill()
            child.wait()


def test_hygiene_hsmd_is_not_dumpable():
    # Not under pytest's tmp_path: its 0700 parents keep uid 65534 out.
    workdir = Path(tempfile.mkdtemp(prefix="hsmd-dumpable-"))
    try:
        with fk.hsmd(workdir=workdir, socket_in_state=True, prefix=_as_nobody(workdir)) as daemon:
            daemon.start()
            try:
                assert not _dumpable(daemon.pid), (
                    f"hsmd (pid {daemon.pid}, uid 65534) is dumpable: /proc/{daemon.pid}/mem belongs to uid 65534")
            finally:
                assert daemon.stop() == 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Files that hold secrets


def test_hygiene_secret_files_are_owner_only():
    """PIN files and the TLS private keys are 0600 regular files; every directory hsmd makes is 0700;
    nothing in the state directory is open to group or others (umask 077)."""
    with fk.hsmd("--tls-port", str(fk.free_port()), socket_in_state=True) as daemon:
        daemon.start()
        h.ok(daemon.client.post("/keys/k/create", {"kty": "EC-HSM", "crv": "P-256"}))
        state = daemon.state_dir
        for name in ("pins/user.pin", "pins/so.pin", "tls/ca-key.pem", "tls/server-key.pem"):
            info = (state / name).lstat()
            assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600, f"{name}: {oct(info.st_mode)}"
            assert info.st_uid == os.getuid()
        for name in (".", "pins", "tls", "token", "audit"):
            mode = stat.S_IMODE((state / name).stat().st_mode)
            assert mode == 0o700, f"{name}: {oct(mode)}"
        loose = [f"{p.relative_to(state)} {oct(stat.S_IMODE(p.lstat().st_mode))}" for p in state.rglob("*")
                 if stat.S_IMODE(p.lstat().st_mode) & 0o077]
        assert not loose, f"files open to group or others: {loose}"
        assert daemon.stop() == 0


def _pin_file(directory: Path, name: str, pin: str, mode: int) -> Path:
    path = directory / name
    path.write_text(pin + "\n")
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("role", ["user", "so"])
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606])
def test_hygiene_refuses_pin_file_others_can_read(tmp_path, role, mode):
    """--user-pin-file / --so-pin-file readable by group or others: exit 1, a message naming the file
    (and the PIN nowhere); once the file is 0600 the same command starts."""
    user_pin, so_pin = os.urandom(12).hex(), os.urandom(12).hex()
    user = _pin_file(tmp_path, "user.pin", user_pin, mode if role == "user" else 0o600)
    so = _pin_file(tmp_path, "so.pin", so_pin, mode if role == "so" else 0o600)
    with fk.hsmd("--user-pin-file", str(user), "--so-pin-file", str(so), workdir=tmp_path / "w") as daemon:
        refusal = daemon.start_refused()
        assert refusal.code == 1, refusal.log
        message = fk.refusal_line(refusal)
        offending = user if role == "user" else so
        assert str(offending) in message and "readable by others" in message, message
        assert f"chmod 600 {offending}" in message, message
        assert user_pin not in refusal.log and so_pin not in refusal.log
        os.chmod(offending, 0o600)
        daemon.start()
        h.ok(daemon.client.post("/keys/k/create", {"kty": "EC-HSM", "crv": "P-256"}))
        assert daemon.stop() == 0
        assert user_pin not in daemon.log_path.read_text() and so_pin not in daemon.log_path.read_text()


def test_hygiene_refuses_pin_file_loosened_after_provisioning(tmp_path):
    """A token provisioned with an operator's 0600 PIN file; the file later made 0644: the next start
    is refused naming it, and works again (with every key) once it is 0600."""
    pin = os.urandom(12).hex()
    user = _pin_file(tmp_path, "user.pin", pin, 0o600)
    with fk.hsmd("--user-pin-file", str(user), workdir=tmp_path / "w") as daemon:
        daemon.start()
        kid = h.ok(daemon.client.post("/keys/k/create", {"kty": "EC-HSM", "crv": "P-256"}))["key"]["kid"]
        assert daemon.stop() == 0
        os.chmod(user, 0o644)
        refusal = daemon.start_refused()
        assert refusal.code == 1 and str(user) in fk.refusal_line(refusal), refusal.log
        os.chmod(user, 0o600)
        daemon.start()
        assert h.ok(daemon.client.get(h.path_of(kid)))["key"]["kid"] == kid
        assert daemon.stop() == 0
        assert pin not in daemon.log_path.read_text()


@pytest.mark.parametrize("key_file", ["ca-key.pem", "server-key.pem"])
def test_hygiene_refuses_a_tls_key_file_others_can_read(tmp_path, key_file):
    """The HTTPS listener's private keys are 0600; made readable by others, the next start is refused
    naming the file, and works again once it is 0600."""
    port = fk.free_port()
    with fk.hsmd("--tls-port", str(port), workdir=tmp_path / "w") as daemon:
        daemon.start()
        assert daemon.stop() == 0
        path = daemon.state_dir / "tls" / key_file
        os.chmod(path, 0o644)
        refusal = daemon.start_refused()
        assert refusal.code == 1 and str(path) in fk.refusal_line(refusal) and "chmod 600" in fk.refusal_line(refusal), refusal.log
        os.chmod(path, 0o600)
        daemon.start()
        assert daemon.stop() == 0
