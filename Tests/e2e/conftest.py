"""End-to-end tests of hsmd's keys API over its Unix socket, against a real SoftHSM2 token.

Run from the repository root:  python3 -m pytest Tests/e2e -q
The daemon is .build/debug/hsmd (build it with `swift build`), or the binary named by HSMD_BIN.
Fixtures: hsmd daemons on temp state dirs, and keys shared by tests that only read them."""
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import hsmdtest as h


def _run(daemon: h.Daemon):
    with h.serving(daemon):
        yield daemon


@pytest.fixture(scope="session")
def hsmd():
    """The main daemon for the whole session: default settings (retention 90 days, purge allowed)."""
    yield from _run(h.Daemon())


@pytest.fixture(scope="session")
def client(hsmd) -> h.Client:
    return hsmd.client


@pytest.fixture(scope="module")
def protected_hsmd():
    """A separate daemon with purge protection and 7-day retention."""
    yield from _run(h.Daemon("--purge-protection", "--retention-days", "7"))


@pytest.fixture
def foreign_hsmd():
    """A second, independent daemon: its own token and so its own backup (security) domain."""
    yield from _run(h.Daemon())


@pytest.fixture
def name() -> str:
    return h.unique_name()


# Keys many tests only read. Tests that change a key make their own.


@pytest.fixture(scope="session")
def rsa_key(client):
    """A generated RSA-HSM 2048 key with the default key_ops."""
    return client.create_key(h.unique_name("rsa"), {"kty": "RSA-HSM", "key_size": 2048})


@pytest.fixture(scope="session")
def ec_keys(client):
    """Generated EC-HSM keys, one per curve."""
    return {crv: client.create_key(h.unique_name("ec"), {"kty": "EC-HSM", "crv": crv}) for crv in h.CURVES}


@pytest.fixture(scope="session")
def rsa_private():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def imported_rsa(client, rsa_private):
    """(private key, bundle) of an RSA key imported from cryptography: the test knows its private part."""
    return rsa_private, client.import_key(h.unique_name("rsa-imp"), h.rsa_private_jwk(rsa_private))


@pytest.fixture(scope="session")
def aes_keys(client):
    """{bits: (k, bundle)} of AES keys imported with the default oct key_ops."""
    keys = {}
    for bits in (128, 192, 256):
        k = os.urandom(bits // 8)
        keys[bits] = (k, client.import_key(h.unique_name(f"aes{bits}"), h.oct_jwk(k)))
    return keys
