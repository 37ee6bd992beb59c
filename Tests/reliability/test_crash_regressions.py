"""Deterministic reproductions of what the crash harness found (docs: the report of issue #9).
Each test builds the exact state a SIGKILL left behind in a harness run, on the real daemon and
token, then checks the documented behaviour (docs/state-directory.md, "after a crash")."""
import sqlite3

import hsmdtest as h
import crash_inspect as inspect


def _stopped(daemon) -> None:
    assert daemon.stop() == 0, daemon.log_tail()


def _store(daemon, sql: str, *args) -> None:
    """Edits the metadata store while hsmd is stopped, as hsmd itself would have left it."""
    connection = sqlite3.connect(daemon.state_dir / "metadata.sqlite")
    with connection:
        connection.execute(sql, args)
    connection.close()


def test_a_restored_aes_key_survives_a_restart(crash_daemon):
    """Restore unwraps the AES key without CKA_VALUE_LEN; start-up indexing needs it, so after any
    restart the acknowledged key's operations fail with 500 and it can no longer be purged."""
    client = crash_daemon.client
    bundle = h.ok(client.post("/keys/sealed/create", {"kty": "oct-HSM", "key_size": 256}))
    blob = h.ok(client.post("/keys/sealed/backup"))["value"]
    h.ok(client.delete("/keys/sealed"))
    h.ok_response(client.delete("/deletedkeys/sealed"), 204)
    h.ok(client.post("/keys/restore", {"value": blob}))
    sealed = h.ok(client.post(f"/keys/sealed/{h.version_of(bundle)}/encrypt", {"alg": "A256GCM", "value": h.b64e(b"kept")}))
    crash_daemon.kill()
    crash_daemon.start()
    opened = client.post(f"/keys/sealed/{h.version_of(bundle)}/decrypt",
                         {k: sealed[k] for k in ("value", "iv", "tag")} | {"alg": "A256GCM"})
    assert opened.status == 200 and h.b64d(opened.json["value"]) == b"kept", opened
    assert h.ok(client.get("/health", api=None))["token"]["keyVersions"] == 1


def test_reconciliation_removes_a_half_made_key_pair(crash_daemon):
    """Import and restore make the private key, then the public key (two C_CreateObject calls). A
    kill between them leaves a pending row and a lone private key; reconciliation must destroy it."""
    version = h.version_of(h.ok(crash_daemon.client.post("/keys/half/create", {"kty": "EC-HSM", "crv": "P-256"})))
    _stopped(crash_daemon)
    _store(crash_daemon, "UPDATE versions SET state = 'pending' WHERE version = ?", version)
    inspect.pkcs11_tool(crash_daemon.state_dir, "--delete-object", "--type", "pubkey", "--id", version)
    crash_daemon.start()
    h.expect_error(crash_daemon.client.get("/keys/half"), 404)
    assert h.ok(crash_daemon.client.get("/hsmd/unmanaged"))["value"] == []


def test_reconciliation_finishes_a_half_destroyed_key_pair(crash_daemon):
    """A purge destroys the private key, then the public key. A kill between them leaves a purging
    key and a lone public key; reconciliation must finish the purge, objects included."""
    client = crash_daemon.client
    version = h.version_of(h.ok(client.post("/keys/gone/create", {"kty": "EC-HSM", "crv": "P-256"})))
    h.ok(client.delete("/keys/gone"))
    _stopped(crash_daemon)
    _store(crash_daemon, "UPDATE keys SET purging = 1 WHERE name_key = 'gone'")
    inspect.pkcs11_tool(crash_daemon.state_dir, "--delete-object", "--type", "privkey", "--id", version)
    crash_daemon.start()
    h.expect_error(client.get("/deletedkeys/gone"), 404)
    assert h.ok(client.get("/hsmd/unmanaged"))["value"] == []


def test_hsmd_starts_with_an_object_file_a_kill_left_blank(crash_daemon):
    """SoftHSM2 creates an object's file (its 8-byte generation counter) before writing any attribute.
    A kill in between leaves that file: hsmd must still start (the object is not one of its keys),
    not exit with "cannot start: C_GetAttributeValue failed: CKR_ATTRIBUTE_VALUE_INVALID"."""
    h.ok(crash_daemon.client.post("/keys/kept/create", {"kty": "EC-HSM", "crv": "P-256"}))
    _stopped(crash_daemon)
    token_dir = next((crash_daemon.state_dir / "token").iterdir())
    (token_dir / "0badf11e-0000-0000-0000-000000000000.object").write_bytes(bytes(7) + b"\x01")
    (token_dir / "0badf11e-0000-0000-0000-000000000000.lock").touch()
    crash_daemon.start()
    h.ok(crash_daemon.client.get("/keys/kept"))
    # It has no CKA_TOKEN either, yet it is the token's: listed, so that --check-state --repair can see it.
    unmanaged = h.ok(crash_daemon.client.get("/hsmd/unmanaged"))["value"]
    assert [(o["kind"], o["label"]) for o in unmanaged] == [("other", "")], unmanaged
