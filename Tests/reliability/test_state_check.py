"""`hsmd --check-state [--repair] [--rebuild-metadata]` (issue #9): a stopped state directory is checked as a
start would open it; what start-up repairs is reported as repairable and repaired on request; a lost
metadata store is refused at start and can be rebuilt from the token."""
import sqlite3
import subprocess

import hsmdtest as h

EC = {"kty": "EC-HSM", "crv": "P-256"}


def check(daemon: h.Daemon, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(h.hsmd_binary()), "--state-dir", str(daemon.state_dir), "--check-state", *flags],
                          capture_output=True, text=True, timeout=120)


def provisioned() -> tuple[h.Daemon, dict]:
    daemon = h.Daemon()
    daemon.start()
    bundles = {
        "signer": h.ok(daemon.client.post("/keys/signer/create", {**EC, "key_ops": ["sign"]})),
        "sealer": h.ok(daemon.client.post("/keys/sealer/create", {"kty": "oct-HSM", "key_size": 256})),
    }
    assert daemon.stop() == 0
    return daemon, bundles


def test_a_sound_directory_checks_clean_and_a_running_daemon_is_not_disturbed():
    daemon, _ = provisioned()
    try:
        result = check(daemon)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "PROBLEM" not in result.stdout and "audit chain intact" in result.stdout
        daemon.start()
        busy = check(daemon)
        assert busy.returncode == 1 and "another hsmd" in busy.stdout, busy.stdout
        assert daemon.client.get("/keys/signer").status == 200
    finally:
        daemon.stop()
        daemon.cleanup()


def test_an_interrupted_creation_is_reported_then_repaired():
    daemon, _ = provisioned()
    try:
        store = sqlite3.connect(daemon.state_dir / "metadata.sqlite")
        with store:
            store.execute("UPDATE versions SET state = 'pending' WHERE name_key = 'signer'")
        store.close()
        reported = check(daemon)
        assert reported.returncode == 1 and "repairable" in reported.stdout and "signer" in reported.stdout, reported.stdout
        repaired = check(daemon, "--repair")
        assert repaired.returncode == 0 and "repaired" in repaired.stdout, repaired.stdout + repaired.stderr
        assert check(daemon).returncode == 0
        daemon.start()
        h.expect_error(daemon.client.get("/keys/signer"), 404, "KeyNotFound")
        assert h.items(daemon.client.pages("/hsmd/unmanaged")) == [], "the undone version's objects are gone too"
    finally:
        daemon.stop()
        daemon.cleanup()


def test_a_lost_metadata_store_is_refused_at_start_and_rebuilt_from_the_token():
    daemon, bundles = provisioned()
    try:
        (daemon.state_dir / "metadata.sqlite").unlink()
        try:
            daemon.start(timeout=30)
            raise AssertionError("hsmd started an empty vault over existing keys")
        except RuntimeError as refusal:
            assert "--rebuild-metadata" in str(refusal) and "metadata.sqlite" in str(refusal), refusal
        reported = check(daemon)
        assert reported.returncode == 1 and "PROBLEM" in reported.stdout and "missing" in reported.stdout, reported.stdout
        rebuilt = check(daemon, "--repair", "--rebuild-metadata")
        assert rebuilt.returncode == 0 and "repaired" in rebuilt.stdout, rebuilt.stdout + rebuilt.stderr
        daemon.start()
        for name, bundle in bundles.items():
            again = h.ok(daemon.client.get(f"/keys/{name}"))
            assert again["key"]["kid"] == bundle["key"]["kid"]
            assert again["key"]["key_ops"] == bundle["key"]["key_ops"], "usage comes back from the token's flags"
            assert "rebuilt-from-token" in again["tags"]
        signed = h.ok(daemon.client.op("signer", "sign", {"alg": "ES256", "value": h.b64e(h.digest("ES256", b"m"))}))
        h.verify_locally(bundles["signer"]["key"], "ES256", b"m", h.b64d(signed["value"]))
    finally:
        daemon.stop()
        daemon.cleanup()
