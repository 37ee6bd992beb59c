"""Encrypt/decrypt, wrapkey/unwrapkey and /rng, cross-checked with `cryptography`."""
import os

import pytest
from cryptography.hazmat.primitives import padding as sympadding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    aes_key_unwrap, aes_key_unwrap_with_padding, aes_key_wrap, aes_key_wrap_with_padding)

import hsmdtest as h
from hsmdtest import expect_error, ok

RSA_ALGS = ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"]
SIZES = [128, 192, 256]


def encrypt(client, kid, body, api=None):
    result = ok(client.op(kid, "encrypt", body, **({"api": api} if api else {})))
    assert result["kid"] == kid
    return result


def decrypt(client, kid, body) -> bytes:
    result = ok(client.op(kid, "decrypt", body))
    assert result["kid"] == kid and set(result) == {"kid", "value"}
    return h.b64d(result["value"])


# --- RSA --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", RSA_ALGS)
def test_rsa_encrypted_by_cryptography_decrypted_by_hsmd(client, rsa_key, alg):
    jwk = rsa_key["key"]
    plaintext = os.urandom(32)
    ciphertext = h.public_key(jwk).encrypt(plaintext, h.rsa_encryption_padding(alg))
    assert decrypt(client, jwk["kid"], {"alg": alg, "value": h.b64e(ciphertext)}) == plaintext


@pytest.mark.parametrize("alg", RSA_ALGS)
def test_rsa_encrypted_by_hsmd_decrypted_by_cryptography(client, imported_rsa, alg):
    private, bundle = imported_rsa
    plaintext = os.urandom(40)
    result = encrypt(client, bundle["key"]["kid"], {"alg": alg, "value": h.b64e(plaintext)})
    assert set(result) == {"kid", "value"}
    ciphertext = h.b64d(result["value"])
    assert len(ciphertext) == 256
    assert private.decrypt(ciphertext, h.rsa_encryption_padding(alg)) == plaintext
    # And hsmd decrypts its own ciphertext.
    assert decrypt(client, bundle["key"]["kid"], {"alg": alg, "value": result["value"]}) == plaintext


@pytest.mark.parametrize("alg,limit", [("RSA1_5", 245), ("RSA-OAEP", 214), ("RSA-OAEP-256", 190)])
def test_rsa_message_length_limit(client, rsa_key, alg, limit):
    kid = rsa_key["key"]["kid"]
    encrypt(client, kid, {"alg": alg, "value": h.b64e(os.urandom(limit))})
    expect_error(client.op(kid, "encrypt", {"alg": alg, "value": h.b64e(os.urandom(limit + 1))}), 400, "BadParameter")


def test_rsa_decrypt_rejects_bad_ciphertexts(client, rsa_key):
    kid = rsa_key["key"]["kid"]
    expect_error(client.op(kid, "decrypt", {"alg": "RSA-OAEP", "value": h.b64e(os.urandom(100))}), 400, "BadParameter")
    good = h.public_key(rsa_key["key"]).encrypt(b"secret", h.rsa_encryption_padding("RSA-OAEP-256"))
    broken = good[:-1] + bytes([good[-1] ^ 1])
    expect_error(client.op(kid, "decrypt", {"alg": "RSA-OAEP-256", "value": h.b64e(broken)}), 400, "BadParameter")
    # Decrypting with the wrong padding fails too.
    expect_error(client.op(kid, "decrypt", {"alg": "RSA-OAEP", "value": h.b64e(good)}), 400, "BadParameter")
    expect_error(client.op(kid, "encrypt", {"alg": "RSA-OAEP", "value": "AA", "iv": h.b64e(bytes(16))}), 400,
                 "BadParameter", contains="iv")


# --- AES-GCM ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", SIZES)
def test_gcm_round_trip_and_cross_check(client, aes_keys, bits):
    k, bundle = aes_keys[bits]
    kid, alg = bundle["key"]["kid"], f"A{bits}GCM"
    plaintext, aad = os.urandom(45), b"header data"
    sealed = encrypt(client, kid, {"alg": alg, "value": h.b64e(plaintext), "aad": h.b64e(aad)})
    iv, tag, ciphertext = h.b64d(sealed["iv"]), h.b64d(sealed["tag"]), h.b64d(sealed["value"])
    assert len(iv) == 12 and len(tag) == 16 and len(ciphertext) == len(plaintext)
    assert h.b64d(sealed["aad"]) == aad
    # cryptography opens what hsmd sealed ...
    assert AESGCM(k).decrypt(iv, ciphertext + tag, aad) == plaintext
    # ... hsmd opens its own ...
    body = {"alg": alg, "value": sealed["value"], "iv": sealed["iv"], "tag": sealed["tag"], "aad": sealed["aad"]}
    assert decrypt(client, kid, body) == plaintext
    # ... and what cryptography sealed.
    nonce = os.urandom(12)
    theirs = AESGCM(k).encrypt(nonce, plaintext, aad)
    body = {"alg": alg, "value": h.b64e(theirs[:-16]), "iv": h.b64e(nonce), "tag": h.b64e(theirs[-16:]),
            "aad": h.b64e(aad)}
    assert decrypt(client, kid, body) == plaintext


def test_gcm_without_aad_and_fresh_nonces(client, aes_keys):
    k, bundle = aes_keys[256]
    kid = bundle["key"]["kid"]
    first = encrypt(client, kid, {"alg": "A256GCM", "value": h.b64e(b"same plaintext")})
    second = encrypt(client, kid, {"alg": "A256GCM", "value": h.b64e(b"same plaintext")})
    assert "aad" not in first
    assert first["iv"] != second["iv"] and first["value"] != second["value"]
    for sealed in (first, second):
        opened = AESGCM(k).decrypt(h.b64d(sealed["iv"]), h.b64d(sealed["value"]) + h.b64d(sealed["tag"]), None)
        assert opened == b"same plaintext"


def test_gcm_tampering_is_400(client, aes_keys):
    _, bundle = aes_keys[128]
    kid = bundle["key"]["kid"]
    aad = h.b64e(b"aad")
    sealed = encrypt(client, kid, {"alg": "A128GCM", "value": h.b64e(b"attack at dawn"), "aad": aad})
    base = {"alg": "A128GCM", "value": sealed["value"], "iv": sealed["iv"], "tag": sealed["tag"], "aad": aad}
    tag = h.b64d(sealed["tag"])
    value = h.b64d(sealed["value"])
    for change in (
        {"tag": h.b64e(bytes([tag[0] ^ 1]) + tag[1:])},
        {"value": h.b64e(bytes([value[0] ^ 1]) + value[1:])},
        {"aad": h.b64e(b"other aad")},
        {"iv": h.b64e(bytes(12))},
    ):
        expect_error(client.op(kid, "decrypt", {**base, **change}), 400, "BadParameter")
    no_aad = {k: v for k, v in base.items() if k != "aad"}
    expect_error(client.op(kid, "decrypt", no_aad), 400, "BadParameter")
    assert decrypt(client, kid, base) == b"attack at dawn"


def test_gcm_parameter_rules(client, aes_keys):
    kid = aes_keys[256][1]["key"]["kid"]
    expect_error(client.op(kid, "encrypt", {"alg": "A256GCM", "value": "AA", "iv": h.b64e(bytes(12))}), 400,
                 "BadParameter", contains="iv")
    sealed = encrypt(client, kid, {"alg": "A256GCM", "value": h.b64e(b"x")})
    expect_error(client.op(kid, "decrypt", {"alg": "A256GCM", "value": sealed["value"], "iv": sealed["iv"]}), 400,
                 "BadParameter", contains="tag")
    expect_error(client.op(kid, "decrypt", {"alg": "A256GCM", "value": sealed["value"], "tag": sealed["tag"]}), 400,
                 "BadParameter", contains="iv")
    expect_error(client.op(kid, "decrypt", {"alg": "A256GCM", "value": sealed["value"], "tag": sealed["tag"],
                                            "iv": h.b64e(bytes(16))}), 400, "BadParameter")


# --- AES-CBC and CBCPAD -----------------------------------------------------------------------------------


def _cbc(k, iv):
    return Cipher(algorithms.AES(k), modes.CBC(iv))


@pytest.mark.parametrize("bits", SIZES)
def test_cbc_cross_check(client, aes_keys, bits):
    k, bundle = aes_keys[bits]
    kid, alg = bundle["key"]["kid"], f"A{bits}CBC"
    iv, plaintext = os.urandom(16), os.urandom(48)
    result = encrypt(client, kid, {"alg": alg, "value": h.b64e(plaintext), "iv": h.b64e(iv)})
    assert h.b64d(result.get("iv", h.b64e(iv))) == iv and "tag" not in result
    ciphertext = h.b64d(result["value"])
    decryptor = _cbc(k, iv).decryptor()
    assert decryptor.update(ciphertext) + decryptor.finalize() == plaintext
    encryptor = _cbc(k, iv).encryptor()
    theirs = encryptor.update(plaintext) + encryptor.finalize()
    assert theirs == ciphertext
    assert decrypt(client, kid, {"alg": alg, "value": h.b64e(theirs), "iv": h.b64e(iv)}) == plaintext


@pytest.mark.parametrize("bits", SIZES)
@pytest.mark.parametrize("length", [0, 1, 16, 33])
def test_cbcpad_cross_check(client, aes_keys, bits, length):
    k, bundle = aes_keys[bits]
    kid, alg = bundle["key"]["kid"], f"A{bits}CBCPAD"
    iv, plaintext = os.urandom(16), os.urandom(length)
    result = encrypt(client, kid, {"alg": alg, "value": h.b64e(plaintext), "iv": h.b64e(iv)})
    ciphertext = h.b64d(result["value"])
    assert len(ciphertext) == (length // 16 + 1) * 16
    decryptor = _cbc(k, iv).decryptor()
    unpadder = sympadding.PKCS7(128).unpadder()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    assert unpadder.update(padded) + unpadder.finalize() == plaintext
    padder = sympadding.PKCS7(128).padder()
    encryptor = _cbc(k, iv).encryptor()
    theirs = encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()
    assert decrypt(client, kid, {"alg": alg, "value": h.b64e(theirs), "iv": h.b64e(iv)}) == plaintext


def test_cbc_parameter_rules(client, aes_keys):
    k, bundle = aes_keys[256]
    kid = bundle["key"]["kid"]
    iv = h.b64e(os.urandom(16))
    expect_error(client.op(kid, "encrypt", {"alg": "A256CBC", "value": h.b64e(os.urandom(20)), "iv": iv}), 400,
                 "BadParameter")
    expect_error(client.op(kid, "encrypt", {"alg": "A256CBC", "value": h.b64e(os.urandom(16))}), 400, "BadParameter",
                 contains="iv")
    expect_error(client.op(kid, "encrypt", {"alg": "A256CBCPAD", "value": "AA", "iv": h.b64e(os.urandom(12))}), 400,
                 "BadParameter", contains="iv")
    expect_error(client.op(kid, "encrypt", {"alg": "A256CBC", "value": h.b64e(os.urandom(16)), "iv": iv,
                                            "aad": "AA"}), 400, "BadParameter", contains="aad")
    expect_error(client.op(kid, "decrypt", {"alg": "A256CBC", "value": h.b64e(os.urandom(16)), "iv": iv,
                                            "tag": h.b64e(bytes(16))}), 400, "BadParameter", contains="tag")
    # A CBCPAD ciphertext whose padding is wrong.
    raw_iv = os.urandom(16)
    encryptor = _cbc(k, raw_iv).encryptor()
    bad_padding = encryptor.update(bytes(15) + b"\x00") + encryptor.finalize()
    expect_error(client.op(kid, "decrypt", {"alg": "A256CBCPAD", "value": h.b64e(bad_padding),
                                            "iv": h.b64e(raw_iv)}), 400, "BadParameter")


# --- AES key wrap -----------------------------------------------------------------------------------------


def wrap(client, kid, alg, data, api=None) -> bytes:
    result = ok(client.op(kid, "wrapkey", {"alg": alg, "value": h.b64e(data)}, **({"api": api} if api else {})))
    assert result["kid"] == kid and set(result) == {"kid", "value"}
    return h.b64d(result["value"])


def unwrap(client, kid, alg, wrapped, api=None) -> bytes:
    result = ok(client.op(kid, "unwrapkey", {"alg": alg, "value": h.b64e(wrapped)}, **({"api": api} if api else {})))
    assert result["kid"] == kid
    return h.b64d(result["value"])


@pytest.mark.parametrize("bits", SIZES)
@pytest.mark.parametrize("length", [16, 24, 32, 64])
def test_aes_kw_cross_check(client, aes_keys, bits, length):
    kek, bundle = aes_keys[bits]
    kid, alg = bundle["key"]["kid"], f"A{bits}KW"
    secret = os.urandom(length)
    wrapped = wrap(client, kid, alg, secret)
    assert wrapped == aes_key_wrap(kek, secret)                 # RFC 3394 is deterministic
    assert aes_key_unwrap(kek, wrapped) == secret
    other = os.urandom(length)
    assert unwrap(client, kid, alg, aes_key_wrap(kek, other)) == other


def test_aes_kw_rules(client, aes_keys):
    kek, bundle = aes_keys[256]
    kid = bundle["key"]["kid"]
    expect_error(client.op(kid, "wrapkey", {"alg": "A128KW", "value": h.b64e(os.urandom(16))}), 400, "BadParameter")
    expect_error(client.op(kid, "wrapkey", {"alg": "A256KW", "value": h.b64e(os.urandom(12))}), 400, "BadParameter")
    expect_error(client.op(kid, "wrapkey", {"alg": "A256KW", "value": h.b64e(os.urandom(20))}), 400, "BadParameter")
    wrapped = bytearray(aes_key_wrap(kek, os.urandom(32)))
    wrapped[3] ^= 1
    expect_error(client.op(kid, "unwrapkey", {"alg": "A256KW", "value": h.b64e(bytes(wrapped))}), 400, "BadParameter")
    expect_error(client.op(kid, "unwrapkey", {"alg": "A256KW", "value": h.b64e(os.urandom(20))}), 400, "BadParameter")
    # A key-wrap algorithm is not an encryption algorithm, nor the reverse.
    expect_error(client.op(kid, "encrypt", {"alg": "A256KW", "value": h.b64e(os.urandom(16))}), 400, "BadParameter")
    expect_error(client.op(kid, "wrapkey", {"alg": "A256GCM", "value": h.b64e(os.urandom(16))}), 400, "BadParameter")


@pytest.mark.parametrize("bits", SIZES)
def test_ckm_aes_key_wrap(client, aes_keys, bits):
    kek, bundle = aes_keys[bits]
    kid = bundle["key"]["kid"]
    secret = os.urandom(32)
    wrapped = wrap(client, kid, "CKM_AES_KEY_WRAP", secret, api="7.6")
    assert wrapped == aes_key_wrap(kek, secret)
    assert unwrap(client, kid, "CKM_AES_KEY_WRAP", aes_key_wrap(kek, secret), api="7.6") == secret
    expect_error(client.op(kid, "wrapkey", {"alg": "CKM_AES_KEY_WRAP", "value": h.b64e(secret)}, api="7.5"), 400,
                 "BadParameter", contains="7.6")


@pytest.mark.parametrize("bits", SIZES)
@pytest.mark.parametrize("length", [8, 24, 40])
def test_ckm_aes_key_wrap_pad(client, aes_keys, bits, length):
    kek, bundle = aes_keys[bits]
    kid = bundle["key"]["kid"]
    secret = os.urandom(length)
    wrapped = wrap(client, kid, "CKM_AES_KEY_WRAP_PAD", secret, api="7.6")
    assert wrapped == aes_key_wrap_with_padding(kek, secret)   # RFC 5649 is deterministic
    assert aes_key_unwrap_with_padding(kek, wrapped) == secret
    assert unwrap(client, kid, "CKM_AES_KEY_WRAP_PAD", aes_key_wrap_with_padding(kek, secret), api="7.6") == secret
    expect_error(client.op(kid, "unwrapkey", {"alg": "CKM_AES_KEY_WRAP_PAD", "value": h.b64e(wrapped)}, api="7.5"),
                 400, "BadParameter")


# --- RSA wrap ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", RSA_ALGS)
def test_rsa_wrap_cross_check(client, imported_rsa, alg):
    private, bundle = imported_rsa
    kid = bundle["key"]["kid"]
    secret = os.urandom(32)
    wrapped = wrap(client, kid, alg, secret)
    assert len(wrapped) == 256
    assert private.decrypt(wrapped, h.rsa_encryption_padding(alg)) == secret
    theirs = private.public_key().encrypt(secret, h.rsa_encryption_padding(alg))
    assert unwrap(client, kid, alg, theirs) == secret
    assert unwrap(client, kid, alg, wrapped) == secret


def test_rsa_wrap_on_generated_key(client, rsa_key):
    kid = rsa_key["key"]["kid"]
    secret = os.urandom(32)
    wrapped = wrap(client, kid, "RSA-OAEP-256", secret)
    assert unwrap(client, kid, "RSA-OAEP-256", wrapped) == secret
    theirs = h.public_key(rsa_key["key"]).encrypt(secret, h.rsa_encryption_padding("RSA-OAEP"))
    assert unwrap(client, kid, "RSA-OAEP", theirs) == secret


# --- /rng ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 31, 64, 128])
def test_rng(client, count):
    result = ok(client.post("/rng", {"count": count}))
    assert set(result) == {"value"} and len(h.b64d(result["value"])) == count


def test_rng_is_random(client):
    values = {ok(client.post("/rng", {"count": 32}))["value"] for _ in range(4)}
    assert len(values) == 4


@pytest.mark.parametrize("count", [0, 129, -1, 1000])
def test_rng_out_of_range(client, count):
    expect_error(client.post("/rng", {"count": count}), 400, "BadParameter", contains="count")


@pytest.mark.parametrize("version", h.API_VERSIONS)
def test_rng_on_every_api_version(client, version):
    assert len(h.b64d(ok(client.post("/rng", {"count": 16}, api=version))["value"])) == 16
