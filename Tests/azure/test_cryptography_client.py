"""CryptographyClient: every signature, encryption and key-wrap algorithm through Azure's SDK."""
import hashlib
import os
import uuid

import pytest
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, EncryptionAlgorithm, KeyWrapAlgorithm, SignatureAlgorithm

HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


@pytest.fixture(scope="module")
def keys(hsmd_https, credential, api_version):
    client = KeyClient(hsmd_https.url, credential, **hsmd_https.sdk_options(api_version))
    made = {"rsa": client.create_rsa_key(f"rsa-{uuid.uuid4().hex[:8]}", size=2048)}
    for curve in ("P-256", "P-256K", "P-384", "P-521"):
        made[curve] = client.create_ec_key(f"ec-{uuid.uuid4().hex[:8]}", curve=curve)
    for size in (128, 192, 256):
        made[f"aes{size}"] = client.create_oct_key(f"aes-{uuid.uuid4().hex[:8]}", size=size, hardware_protected=True)
    return made


@pytest.fixture(scope="module")
def crypto(hsmd_https, credential, api_version):
    def make(key):
        return CryptographyClient(key, credential, **hsmd_https.sdk_options(api_version))
    return make


def digest_for(algorithm: SignatureAlgorithm, message: bytes) -> bytes:
    bits = algorithm.value[-3:] if not algorithm.value.endswith("K") else "256"
    return HASHES[bits](message).digest()


@pytest.mark.parametrize("algorithm, key", [
    (SignatureAlgorithm.rs256, "rsa"), (SignatureAlgorithm.rs384, "rsa"), (SignatureAlgorithm.rs512, "rsa"),
    (SignatureAlgorithm.ps256, "rsa"), (SignatureAlgorithm.ps384, "rsa"), (SignatureAlgorithm.ps512, "rsa"),
    (SignatureAlgorithm.es256, "P-256"), (SignatureAlgorithm.es256_k, "P-256K"),
    (SignatureAlgorithm.es384, "P-384"), (SignatureAlgorithm.es512, "P-521"),
])
def test_sign_and_verify(keys, crypto, algorithm, key):
    client = crypto(keys[key])
    digest = digest_for(algorithm, b"message")
    signed = client.sign(algorithm, digest)
    assert client.verify(algorithm, digest, signed.signature).is_valid
    assert not client.verify(algorithm, digest_for(algorithm, b"other"), signed.signature).is_valid


@pytest.mark.parametrize("algorithm", [EncryptionAlgorithm.rsa1_5, EncryptionAlgorithm.rsa_oaep, EncryptionAlgorithm.rsa_oaep_256])
def test_rsa_encrypt_and_decrypt(keys, crypto, algorithm):
    client = crypto(keys["rsa"])
    sealed = client.encrypt(algorithm, b"plaintext")
    assert client.decrypt(algorithm, sealed.ciphertext).plaintext == b"plaintext"


@pytest.mark.parametrize("size", [128, 192, 256])
def test_aes_gcm_cbc_and_cbcpad(keys, crypto, size):
    client = crypto(keys[f"aes{size}"])
    gcm = getattr(EncryptionAlgorithm, f"a{size}_gcm")
    sealed = client.encrypt(gcm, b"secret", additional_authenticated_data=b"context")
    assert len(sealed.iv) == 12 and len(sealed.tag) == 16
    opened = client.decrypt(gcm, sealed.ciphertext, iv=sealed.iv, authentication_tag=sealed.tag,
                            additional_authenticated_data=b"context")
    assert opened.plaintext == b"secret"
    for mode, plaintext in (("cbc", b"sixteen byte msg"), ("cbcpad", b"any length at all")):
        algorithm = getattr(EncryptionAlgorithm, f"a{size}_{mode}")
        iv = os.urandom(16)
        sealed = client.encrypt(algorithm, plaintext, iv=iv)
        assert client.decrypt(algorithm, sealed.ciphertext, iv=iv).plaintext == plaintext


@pytest.mark.parametrize("algorithm, key", [
    (KeyWrapAlgorithm.rsa1_5, "rsa"), (KeyWrapAlgorithm.rsa_oaep, "rsa"), (KeyWrapAlgorithm.rsa_oaep_256, "rsa"),
    (KeyWrapAlgorithm.aes_128, "aes128"), (KeyWrapAlgorithm.aes_192, "aes192"), (KeyWrapAlgorithm.aes_256, "aes256"),
])
def test_wrap_and_unwrap(keys, crypto, algorithm, key):
    client = crypto(keys[key])
    data_key = os.urandom(32)
    wrapped = client.wrap_key(algorithm, data_key)
    assert client.unwrap_key(algorithm, wrapped.encrypted_key).key == data_key
