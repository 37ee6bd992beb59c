"""hsmd's keys through OpenSSL's pkcs11 ENGINE (libp11, Debian's libengine-pkcs11-openssl) on the token itself.

OpenSSL signs, verifies, encrypts and decrypts with the token objects hsmd made, named by the RFC 7512 URIs
that GET /hsmd/keys/{name}/pkcs11 reports, and hsmd checks OpenSSL's results (and the other way round).
Keys that OpenSSL and pkcs11-tool put into the token show up as unmanaged and are adopted
(PKCS11InteropTests covers pkcs11-tool's own EC signatures and the adoption refusals; not repeated here).

SoftHSM2 must not be logged in to by two processes at once (docs/pkcs11.md), so every tool that logs in
runs while hsmd is stopped (SIGTERM), and a new hsmd is started on the same state directory afterwards.

The PIN never goes on a command line:
- openssl reads it with `-passin file:STATE/pins/user.pin` (the engine asks its UI method, which gets the
  passphrase). libp11 0.4.12 (Debian 12) does not know the `pin-source` URI attribute: with
  `…;pin-source=file:…` the login fails ("PIN incorrect") and openssl dies of SIGSEGV; `pin-value` works
  but puts the PIN in argv.
- pkcs11-tool gets `--pin env:HSMD_USER_PIN` (OpenSC reads the PIN from that variable of its own
  environment, which only its uid can read; without --pin it wants a terminal: "util_getpass error").

Debian 12 (bookworm, -updates, -security) has no pkcs11-provider package, so only the engine is tested.
"""
from __future__ import annotations

import os
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import hsmdtest as h
from hsmdtest import ok

PLAINTEXT = b"Invoice 2026-0042: 1200.00 EUR"

RSA_SIGN_OPTIONS = {
    "RS256": ["-pkeyopt", "digest:sha256"],
    # hsmd's PSS: MGF1 with the signature's hash, salt as long as the hash (OpenSSL: saltlen "digest").
    "PS256": ["-pkeyopt", "digest:sha256", "-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest"],
}
RSA_ENCRYPTION_OPTIONS = {
    "RSA1_5": ["-pkeyopt", "rsa_padding_mode:pkcs1"],
    "RSA-OAEP": ["-pkeyopt", "rsa_padding_mode:oaep"],  # OAEP with SHA-1 and MGF1-SHA-1, OpenSSL's default
    "RSA-OAEP-256": ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
                     "-pkeyopt", "rsa_mgf1_md:sha256"],
}
ENGINE = ["-engine", "pkcs11", "-keyform", "engine"]


def engines_dir() -> Path:
    out = subprocess.run(["openssl", "version", "-e"], capture_output=True, text=True, check=True).stdout
    match = re.search(r'ENGINESDIR: "([^"]+)"', out)
    assert match, f"openssl version -e: {out!r}"
    return Path(match.group(1))


def percent_id(id_hex: str) -> str:
    return "".join(f"%{byte:02X}" for byte in bytes.fromhex(id_hex))


def tampered(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


class Token:
    """hsmd on one state directory, and OpenSSL / pkcs11-tool on its token while hsmd is stopped."""

    def __init__(self, daemon: h.Daemon, engine: Path):
        self.daemon = daemon
        self.client = daemon.client
        self.state = daemon.state_dir
        self.scratch = daemon.workdir / "openssl"
        self.scratch.mkdir()
        self.pin_file = self.state / "pins" / "user.pin"
        self.engine = engine
        self.env: dict[str, str] | None = None
        self.module: str | None = None
        self.rsa: tuple[str, dict] | None = None  # (name, bundle) of the shared RSA key

    def configure(self, info: dict) -> None:
        """An OpenSSL config that loads the pkcs11 engine on the module hsmd names; SOFTHSM2_CONF as hsmd says."""
        assert Path(info["softhsm2Conf"]) == self.state / "softhsm2.conf", info
        assert info["tokenLabel"] == "hsmd", info
        self.module = info["module"]
        conf = self.scratch / "openssl.cnf"
        conf.write_text(
            "openssl_conf = openssl_init\n"
            "[openssl_init]\nengines = engine_section\n"
            "[engine_section]\npkcs11 = pkcs11_section\n"
            f"[pkcs11_section]\nengine_id = pkcs11\ndynamic_path = {self.engine}\n"
            f"MODULE_PATH = {self.module}\ninit = 0\n")
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OPENSSL_CONF": str(conf),
                    "SOFTHSM2_CONF": info["softhsm2Conf"]}

    def uris(self, name: str) -> dict[str, str]:
        """{"private": uri, "public": uri} of the latest version, as hsmd reports them (hsmd must run)."""
        info = ok(self.client.get(f"/hsmd/keys/{name}/pkcs11"))
        uris = {o["type"]: o["uri"] for o in info["objects"]}
        assert set(uris) == {"private", "public"}, info
        return uris

    @contextmanager
    def offline(self):
        """hsmd stopped (and so logged out) for the body; a new hsmd on the same state dir afterwards."""
        code = self.daemon.stop()
        assert code == 0, f"hsmd exited with {code} after SIGTERM:\n{self.daemon.log_tail()}"
        try:
            yield
        finally:
            self.daemon.start()

    def file(self, name: str, data: bytes | None = None) -> str:
        path = self.scratch / name
        if data is not None:
            path.write_bytes(data)
        return str(path)

    def read(self, name: str) -> bytes:
        return (self.scratch / name).read_bytes()

    def openssl(self, *args: str, expect_ok: bool = True) -> subprocess.CompletedProcess:
        assert self.daemon.process is None or self.daemon.process.poll() is not None, "hsmd must be stopped"
        result = subprocess.run(["openssl", *args], env=self.env, cwd=self.scratch, capture_output=True,
                                text=True, timeout=60, stdin=subprocess.DEVNULL)
        if expect_ok:
            assert result.returncode == 0, f"openssl {' '.join(args)} -> {result.returncode}:\n{result.stderr}"
        return result

    def openssl_local(self, *args: str, expect_ok: bool = True) -> subprocess.CompletedProcess:
        """Plain openssl, no engine and no token: safe while hsmd runs."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        result = subprocess.run(["openssl", *args], env=env, cwd=self.scratch, capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        if expect_ok:
            assert result.returncode == 0, f"openssl {' '.join(args)} -> {result.returncode}:\n{result.stderr}"
        return result

    def sign(self, uri: str, digest_file: str, out: str, options: list[str]) -> bytes:
        self.openssl("pkeyutl", *ENGINE, "-inkey", uri, "-passin", f"file:{self.pin_file}", "-sign",
                     "-in", digest_file, "-out", self.file(out), *options)
        return self.read(out)

    def verify(self, uri: str, digest_file: str, signature: bytes, options: list[str]) -> bool:
        result = self.openssl("pkeyutl", *ENGINE, "-pubin", "-inkey", uri, "-verify", "-in", digest_file,
                              "-sigfile", self.file("check.sig", signature), *options, expect_ok=False)
        assert result.returncode in (0, 1), f"openssl pkeyutl -verify crashed ({result.returncode}):\n{result.stderr}"
        assert ("Signature Verified Successfully" in result.stdout) == (result.returncode == 0), result
        if result.returncode:
            assert "Signature Verification Failure" in result.stdout, result
        return result.returncode == 0

    def pkcs11_tool(self, *args: str) -> str:
        """pkcs11-tool logged in as the user, the PIN in its environment (not argv)."""
        assert self.daemon.process.poll() is not None, "hsmd must be stopped"
        env = dict(self.env, HSMD_USER_PIN=self.pin_file.read_text().strip())
        result = subprocess.run(
            ["pkcs11-tool", "--module", self.module, "--token-label", "hsmd", "--login", "--pin", "env:HSMD_USER_PIN",
             *args], env=env, cwd=self.scratch, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"pkcs11-tool {' '.join(args)} -> {result.returncode}:\n{output}"
        return result.stdout


@pytest.fixture(scope="module")
def token():
    engine = engines_dir() / "pkcs11.so"
    if not engine.is_file():
        message = f"OpenSSL's pkcs11 engine is not installed ({engine}): apt-get install libengine-pkcs11-openssl"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with h.serving(h.Daemon()) as daemon:
        bench = Token(daemon, engine)
        # The RSA key most tests share; its pkcs11 info (module, SOFTHSM2_CONF) configures OpenSSL.
        name = h.unique_name("ossl-rsa")
        bench.rsa = name, bench.client.create_key(name, {"kty": "RSA-HSM", "key_size": 2048})
        bench.configure(ok(bench.client.get(f"/hsmd/keys/{name}/pkcs11")))
        yield bench


@pytest.fixture(scope="module")
def rsa(token):
    return token.rsa


@pytest.fixture(scope="module")
def ec_p256(token):
    name = h.unique_name("ossl-ec")
    return name, token.client.create_key(name, {"kty": "EC-HSM", "crv": "P-256"})


def hsmd_sign(client, name, alg, digest: bytes) -> bytes:
    return h.b64d(ok(client.op(name, "sign", {"alg": alg, "value": h.b64e(digest)}))["value"])


def hsmd_verify(client, name, alg, digest: bytes, signature: bytes) -> bool:
    return ok(client.op(name, "verify", {"alg": alg, "digest": h.b64e(digest), "value": h.b64e(signature)}))["value"]


@pytest.mark.parametrize("alg", sorted(RSA_SIGN_OPTIONS))
def test_rsa_signatures_between_openssl_engine_and_hsmd(token, rsa, alg):
    name, bundle = rsa
    digest = h.digest(alg, f"{alg} through the pkcs11 engine".encode())
    by_hsmd = hsmd_sign(token.client, name, alg, digest)
    uris = token.uris(name)
    digest_file = token.file(f"{alg}.digest", digest)

    with token.offline():
        by_openssl = token.sign(uris["private"], digest_file, f"{alg}.openssl.sig", RSA_SIGN_OPTIONS[alg])
        assert token.verify(uris["public"], digest_file, by_hsmd, RSA_SIGN_OPTIONS[alg]), "hsmd's signature"
        assert not token.verify(uris["public"], digest_file, tampered(by_hsmd), RSA_SIGN_OPTIONS[alg])

    assert len(by_openssl) == 256
    h.verify_locally(bundle["key"], alg, f"{alg} through the pkcs11 engine".encode(), by_openssl)
    if alg == "RS256":
        assert by_openssl == by_hsmd, "PKCS#1 v1.5 is deterministic: the same key and digest, the same bytes"
    assert hsmd_verify(token.client, name, alg, digest, by_openssl) is True
    assert hsmd_verify(token.client, name, alg, digest, tampered(by_openssl)) is False


def test_es256_between_openssl_engine_and_hsmd(token, ec_p256):
    name, bundle = ec_p256
    message = b"ES256 through the pkcs11 engine"
    digest = h.digest("ES256", message)
    by_hsmd = hsmd_sign(token.client, name, "ES256", digest)
    assert len(by_hsmd) == 64, "the API's ECDSA signatures are raw r||s"
    uris = token.uris(name)
    digest_file = token.file("es256.digest", digest)

    with token.offline():
        der = token.sign(uris["private"], digest_file, "es256.openssl.sig", [])
        assert token.verify(uris["public"], digest_file, h.raw_to_der(by_hsmd), []), "hsmd's signature, as DER"
        assert not token.verify(uris["public"], digest_file, h.raw_to_der(tampered(by_hsmd)), [])

    by_openssl = h.der_to_raw(der, "P-256")  # raises unless OpenSSL wrote DER SEQUENCE { r, s }
    h.verify_locally(bundle["key"], "ES256", message, by_openssl)
    assert hsmd_verify(token.client, name, "ES256", digest, by_openssl) is True
    assert hsmd_verify(token.client, name, "ES256", digest, tampered(by_openssl)) is False


@pytest.mark.parametrize("alg", list(RSA_ENCRYPTION_OPTIONS))
def test_rsa_encryption_between_openssl_engine_and_hsmd(token, rsa, alg):
    name, _ = rsa
    options = RSA_ENCRYPTION_OPTIONS[alg]
    for_openssl = PLAINTEXT + b" for openssl " + alg.encode()
    for_hsmd = PLAINTEXT + b" for hsmd " + alg.encode()
    by_hsmd = h.b64d(ok(token.client.op(name, "encrypt", {"alg": alg, "value": h.b64e(for_openssl)}))["value"])
    uris = token.uris(name)

    with token.offline():
        token.openssl("pkeyutl", *ENGINE, "-pubin", "-inkey", uris["public"], "-encrypt",
                      "-in", token.file(f"{alg}.txt", for_hsmd), "-out", token.file(f"{alg}.openssl.enc"), *options)
        token.openssl("pkeyutl", *ENGINE, "-inkey", uris["private"], "-passin", f"file:{token.pin_file}", "-decrypt",
                      "-in", token.file(f"{alg}.hsmd.enc", by_hsmd), "-out", token.file(f"{alg}.decrypted"), *options)
        assert token.read(f"{alg}.decrypted") == for_openssl, "the token's private key, through the engine"

    by_openssl = token.read(f"{alg}.openssl.enc")
    assert len(by_openssl) == 256
    decrypted = ok(token.client.op(name, "decrypt", {"alg": alg, "value": h.b64e(by_openssl)}))
    assert h.b64d(decrypted["value"]) == for_hsmd


def unmanaged_with(client, label: str) -> list[dict]:
    return [o for o in h.items(client.pages("/hsmd/unmanaged")) if o.get("label") == label]


def test_rsa_pair_generated_in_the_token_is_adopted_and_checked_by_openssl(token):
    label, id_hex, name = h.unique_name("legacy"), os.urandom(6).hex(), h.unique_name("adopted-rsa")
    old = f"pkcs11:token=hsmd;object={label};id={percent_id(id_hex)};type="
    digest = h.digest("RS256", PLAINTEXT)
    digest_file = token.file("legacy.digest", digest)

    with token.offline():
        token.pkcs11_tool("--keypairgen", "--key-type", "rsa:2048", "--label", label, "--id", id_hex,
                          "--usage-sign", "--usage-decrypt")
        before = token.sign(old + "private", digest_file, "legacy.rs256", RSA_SIGN_OPTIONS["RS256"])
        token.openssl("pkeyutl", *ENGINE, "-pubin", "-inkey", old + "public", "-encrypt",
                      "-in", token.file("legacy.txt", PLAINTEXT), "-out", token.file("legacy.enc"),
                      *RSA_ENCRYPTION_OPTIONS["RSA-OAEP"])
        token.openssl("pkey", "-engine", "pkcs11", "-inform", "engine", "-pubin", "-in", old + "public",
                      "-pubout", "-out", token.file("legacy.pub.pem"))

    listed = unmanaged_with(token.client, label)
    assert {o["kind"] for o in listed} == {"private", "public"}, listed
    assert all(o["id"] == id_hex and o["keyType"] == "RSA-2048" for o in listed), listed
    private = next(o for o in listed if o["kind"] == "private")
    assert private["sensitive"] is True and private["extractable"] is False, private

    bundle = ok(token.client.post(f"/hsmd/keys/{name}/adopt", {"id": id_hex}))
    assert bundle["key"]["kty"] == "RSA-HSM"
    # pkcs11-tool's pair: decrypt, sign, unwrap (private) and encrypt, verify, wrap (public).
    assert set(bundle["key"]["key_ops"]) == set(h.RSA_DEFAULT_OPS), bundle
    assert bundle.get("tags") == {"adopted-from": f"{label}|{id_hex}"}, bundle
    token_public = serialization.load_pem_public_key(Path(token.file("legacy.pub.pem")).read_bytes())
    assert h.public_key(bundle["key"]).public_numbers() == token_public.public_numbers()
    assert unmanaged_with(token.client, label) == []

    # The same material: what OpenSSL made before adoption works with hsmd after it.
    assert hsmd_verify(token.client, name, "RS256", digest, before) is True
    assert hsmd_verify(token.client, name, "RS256", digest, tampered(before)) is False
    decrypted = ok(token.client.op(name, "decrypt", {"alg": "RSA-OAEP", "value": h.b64e(token.read("legacy.enc"))}))
    assert h.b64d(decrypted["value"]) == PLAINTEXT
    by_hsmd = hsmd_sign(token.client, name, "PS256", h.digest("PS256", PLAINTEXT))
    uris = token.uris(name)
    assert f"object={name};" in uris["public"] and id_hex not in uris["public"].lower(), uris

    with token.offline():
        # The adopted objects carry the key's name and version now; the old URI finds nothing.
        assert token.verify(uris["public"], digest_file, by_hsmd, RSA_SIGN_OPTIONS["PS256"])
        assert not token.verify(uris["public"], digest_file, tampered(by_hsmd), RSA_SIGN_OPTIONS["PS256"])
        # Logged in (-passin), libp11 searches every object; nothing answers to the old label and id.
        gone = token.openssl("pkey", "-engine", "pkcs11", "-inform", "engine", "-pubin", "-in", old + "public",
                             "-passin", f"file:{token.pin_file}", "-noout", expect_ok=False)
        assert gone.returncode != 0 and "The public key was not found" in gone.stderr, gone
        assert "PIN incorrect" not in gone.stderr and "Login to token failed" not in gone.stderr, gone

    assert hsmd_verify(token.client, name, "PS256", h.digest("PS256", PLAINTEXT), by_hsmd) is True


def test_ec_key_generated_by_openssl_is_adopted_and_its_signatures_verify_in_openssl(token):
    label, id_hex, name = h.unique_name("ossl-made"), os.urandom(6).hex(), h.unique_name("adopted-ec")
    made = token.file("made.pem")
    token.openssl_local("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", made)
    token.openssl_local("pkey", "-in", made, "-outform", "DER", "-out", token.file("made.key.der"))
    token.openssl_local("pkey", "-in", made, "-pubout", "-out", token.file("made.pub.pem"))
    token.openssl_local("pkey", "-in", made, "-pubout", "-outform", "DER", "-out", token.file("made.pub.der"))
    with token.offline():
        token.pkcs11_tool("--write-object", token.file("made.key.der"), "--type", "privkey", "--sensitive",
                          "--usage-sign", "--label", label, "--id", id_hex)
        token.pkcs11_tool("--write-object", token.file("made.pub.der"), "--type", "pubkey",
                          "--usage-sign", "--label", label, "--id", id_hex)
        (token.scratch / "made.pem").unlink()
        (token.scratch / "made.key.der").unlink()

    listed = unmanaged_with(token.client, label)
    assert {o["kind"] for o in listed} == {"private", "public"}, listed
    assert all(o["id"] == id_hex and o["keyType"] == "EC P-256" for o in listed), listed

    bundle = ok(token.client.post(f"/hsmd/keys/{name}/adopt", {"id": id_hex}))
    assert bundle["key"]["kty"] == "EC-HSM" and bundle["key"]["crv"] == "P-256", bundle
    assert set(bundle["key"]["key_ops"]) == {"sign", "verify"}, "what an EC key can do of its usage flags"
    assert bundle.get("tags") == {"adopted-from": f"{label}|{id_hex}"}, bundle
    made_public = serialization.load_pem_public_key(Path(token.file("made.pub.pem")).read_bytes())
    assert isinstance(made_public, ec.EllipticCurvePublicKey)
    assert h.public_key(bundle["key"]).public_numbers() == made_public.public_numbers()
    assert unmanaged_with(token.client, label) == []

    digest = h.digest("ES256", PLAINTEXT)
    by_hsmd = hsmd_sign(token.client, name, "ES256", digest)
    digest_file = token.file("made.digest", digest)
    assert hsmd_verify(token.client, name, "ES256", digest, by_hsmd) is True
    # OpenSSL checks hsmd's signature with the public key it made itself (a file: no token, hsmd may run).
    pub = ["-pubin", "-inkey", token.file("made.pub.pem")]
    token.openssl_local("pkeyutl", "-verify", *pub, "-in", digest_file,
                        "-sigfile", token.file("made.sig", h.raw_to_der(by_hsmd)))
    forged = token.openssl_local("pkeyutl", "-verify", *pub, "-in", digest_file,
                                 "-sigfile", token.file("forged.sig", h.raw_to_der(tampered(by_hsmd))), expect_ok=False)
    assert forged.returncode == 1 and "Signature Verification Failure" in forged.stdout, forged
