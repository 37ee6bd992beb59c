"""hsmd started on a SoftHSM2 token it did not provision (`--existing-token`, docs/pkcs11.md): the token
and a key are made with Debian's own tools, hsmd opens the token by label with the operator's PINs, lists
the tool's key as unmanaged, adopts it and uses it; later starts find the same token without the flag or
SOFTHSM2_CONF, and a different token under the same label is refused."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import hsmdtest as h

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
USER_PIN = "31415926"
SO_PIN = "27182818"


class ExistingToken:
    """A token initialised by softhsm2-util in a directory of its own, with PIN files (0600) beside it."""

    def __init__(self, root: Path, label: str):
        self.root = root
        self.label = label
        self.directory = root / "softhsm-tokens"
        self.config = root / "softhsm2.conf"
        self.user_pin = root / "user.pin"
        self.so_pin = root / "so.pin"
        self.config.write_text(f"directories.tokendir = {self.directory}\nobjectstore.backend = file\nlog.level = ERROR\n")
        for path, pin in ((self.user_pin, USER_PIN), (self.so_pin, SO_PIN)):
            path.write_text(pin)
            path.chmod(0o600)
        self.initialise()

    @property
    def environment(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.config)}

    def initialise(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir()
        self.run("softhsm2-util", "--init-token", "--free", "--label", self.label, "--so-pin", SO_PIN, "--pin", USER_PIN)

    def run(self, *command: str) -> str:
        result = subprocess.run(command, env=self.environment, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        return result.stdout

    def make_ec_key(self, label: str, object_id: str) -> None:
        self.run("pkcs11-tool", "--module", MODULE, "--token-label", self.label, "--login", "--pin", USER_PIN,
                 "--keypairgen", "--key-type", "EC:prime256v1", "--label", label, "--id", object_id)


@pytest.fixture
def existing(tmp_path, monkeypatch) -> ExistingToken:
    token = ExistingToken(tmp_path, h.unique_name("legacy"))
    # hsmd inherits the environment: this is how an operator points it at the token's SoftHSM2 config.
    monkeypatch.setenv("SOFTHSM2_CONF", str(token.config))
    return token


def start(daemon: h.Daemon) -> h.Daemon:
    daemon.start()
    return daemon


def test_a_tool_made_key_on_an_existing_token_is_adopted_used_and_survives_restarts(existing, monkeypatch):
    existing.make_ec_key("app-signer", "0a0b0c")
    daemon = start(h.Daemon("--existing-token", "--token-label", existing.label,
                            "--user-pin-file", str(existing.user_pin), "--so-pin-file", str(existing.so_pin)))
    try:
        unmanaged = h.items(daemon.client.pages("/hsmd/unmanaged"))
        assert {(o["label"], o["id"], o["kind"]) for o in unmanaged} >= {("app-signer", "0a0b0c", "private"), ("app-signer", "0a0b0c", "public")}
        bundle = h.ok(daemon.client.post("/hsmd/keys/adopted/adopt", {"id": "0a0b0c"}))
        message = b"signed by a key that pkcs11-tool made"
        signature = h.ok(daemon.client.op("adopted", "sign", {"alg": "ES256", "value": h.b64e(h.digest("ES256", message))}))
        h.verify_locally(bundle["key"], "ES256", message, h.b64d(signature["value"]))
        # The SO PIN let hsmd give the token a domain key, so hsmd's own keys can be backed up.
        h.ok(daemon.client.post("/keys/native/create", {"kty": "EC-HSM", "crv": "P-256"}))
        assert h.ok(daemon.client.post("/keys/native/backup"))["value"]
        assert "took an existing token" in daemon.log_path.read_text()
    finally:
        assert daemon.stop() == 0

    # Later starts need neither the flag nor SOFTHSM2_CONF: the manifest remembers the token's config.
    monkeypatch.delenv("SOFTHSM2_CONF")
    again = h.Daemon("--user-pin-file", str(existing.user_pin))
    again.workdir, again.state_dir, again.socket_path, again.log_path = daemon.workdir, daemon.state_dir, daemon.socket_path, daemon.workdir / "again.log"
    again.client = h.Client(str(again.socket_path))
    start(again)
    try:
        assert h.ok(again.client.get("/keys/adopted"))["key"]["x"] == bundle["key"]["x"]
    finally:
        assert again.stop() == 0

    # The same label on a new token is another token: hsmd refuses to serve this vault's metadata from it.
    existing.initialise()
    replaced = h.Daemon("--user-pin-file", str(existing.user_pin))
    replaced.workdir, replaced.state_dir, replaced.socket_path, replaced.log_path = daemon.workdir, daemon.state_dir, daemon.socket_path, daemon.workdir / "replaced.log"
    with pytest.raises(RuntimeError, match="refusing to mix two tokens"):
        replaced.start(timeout=30)
    daemon.cleanup()


def test_without_the_so_pin_hsmd_serves_but_backups_are_unavailable(existing):
    daemon = start(h.Daemon("--existing-token", "--token-label", existing.label, "--user-pin-file", str(existing.user_pin)))
    try:
        assert "backups and restores are unavailable" in daemon.log_path.read_text()
        h.ok(daemon.client.post("/keys/k/create", {"kty": "EC-HSM", "crv": "P-256"}))
        refused = daemon.client.post("/keys/k/backup")
        assert refused.status in (403, 409), refused
        assert "domain key" in refused.message.lower(), refused.message
    finally:
        assert daemon.stop() == 0
        daemon.cleanup()


@pytest.mark.parametrize("arguments, exit_code, message", [
    (["--user-pin-file", "{user_pin}", "--token-label", "no-such-token"], 1, "no token labelled 'no-such-token'"),
    (["--user-pin-file", "{wrong_pin}", "--token-label", "{label}"], 1, "the user PIN does not open the token"),
    (["--token-label", "{label}"], 64, "existing-token needs the token's user PIN"),
])
def test_bad_existing_token_starts_fail_with_a_clear_message(existing, tmp_path, arguments, exit_code, message):
    wrong_pin = tmp_path / "wrong.pin"
    wrong_pin.write_text("00000000")
    wrong_pin.chmod(0o600)
    values = {"user_pin": str(existing.user_pin), "wrong_pin": str(wrong_pin), "label": existing.label}
    command = [str(h.hsmd_binary()), "--state-dir", str(tmp_path / "state"), "--existing-token",
               *(argument.format(**values) for argument in arguments)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=existing.environment)
    assert result.returncode == exit_code, result
    assert message in result.stderr + result.stdout, result.stderr
