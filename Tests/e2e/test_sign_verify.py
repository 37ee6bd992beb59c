"""Sign and verify with every algorithm, checked against `cryptography`."""
import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

import hsmdtest as h
from hsmdtest import expect_error, ok

RSA_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
EC_ALGS = ["ES256", "ES256K", "ES384", "ES512"]


def sign(client, kid, alg, message, api=None):
    body = {"alg": alg, "value": h.b64e(h.digest(alg, message))}
    result = ok(client.op(kid, "sign", body, **({"api": api} if api else {})))
    assert set(result) == {"kid", "value"}
    assert result["kid"] == kid
    return h.b64d(result["value"])


def verify(client, kid, alg, message, signature, api=None) -> bool:
    body = {"alg": alg, "digest": h.b64e(h.digest(alg, message)), "value": h.b64e(signature)}
    result = ok(client.op(kid, "verify", body, **({"api": api} if api else {})))
    assert set(result) == {"value"}
    return result["value"]


@pytest.mark.parametrize("alg", RSA_ALGS)
def test_rsa_sign_verified_by_cryptography(client, rsa_key, alg):
    jwk = rsa_key["key"]
    message = f"message for {alg}".encode()
    signature = sign(client, jwk["kid"], alg, message)
    assert len(signature) == 256
    h.verify_locally(jwk, alg, message, signature)                     # raises if invalid
    assert verify(client, jwk["kid"], alg, message, signature) is True
    assert verify(client, jwk["kid"], alg, b"another message", signature) is False
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    assert verify(client, jwk["kid"], alg, message, tampered) is False


def test_rsa_pkcs1_signatures_are_deterministic(client, rsa_key):
    kid = rsa_key["key"]["kid"]
    assert sign(client, kid, "RS256", b"same") == sign(client, kid, "RS256", b"same")
    assert sign(client, kid, "PS256", b"same") != sign(client, kid, "PS256", b"same")   # random salt


@pytest.mark.parametrize("alg", EC_ALGS)
def test_ec_sign_verified_by_cryptography(client, ec_keys, alg):
    jwk = ec_keys[h.ES_CURVE[alg]]["key"]
    message = f"message for {alg}".encode()
    signature = sign(client, jwk["kid"], alg, message)
    assert len(signature) == 2 * h.COORDINATE_SIZE[jwk["crv"]]         # raw r||s: 64, 64, 96, 132
    h.verify_locally(jwk, alg, message, signature)
    assert verify(client, jwk["kid"], alg, message, signature) is True
    assert verify(client, jwk["kid"], alg, b"other", signature) is False
    assert verify(client, jwk["kid"], alg, message, signature[:-1] + bytes([signature[-1] ^ 1])) is False
    # A DER signature is not what the API takes.
    der = h.raw_to_der(signature)
    assert verify(client, jwk["kid"], alg, message, der) is False


@pytest.mark.parametrize("alg", EC_ALGS)
def test_ec_verify_signature_made_by_cryptography(client, alg):
    crv = h.ES_CURVE[alg]
    private = ec.generate_private_key(h.CURVES[crv]())
    bundle = client.import_key(h.unique_name(), h.ec_private_jwk(private, crv))
    message = b"signed outside"
    d = h.digest(alg, message)
    signature = h.der_to_raw(private.sign(d, ec.ECDSA(utils.Prehashed(h.hash_for(alg)))), crv)
    assert verify(client, bundle["key"]["kid"], alg, message, signature) is True
    # And the imported key signs so that the local public key verifies.
    h.verify_locally(bundle["key"], alg, message, sign(client, bundle["key"]["kid"], alg, message))


@pytest.mark.parametrize("alg", RSA_ALGS)
def test_rsa_verify_signature_made_by_cryptography(client, imported_rsa, alg):
    private, bundle = imported_rsa
    message = b"signed outside"
    prehashed = utils.Prehashed(h.hash_for(alg))
    pad = padding.PKCS1v15() if alg.startswith("RS") else h.pss(alg)
    signature = private.sign(h.digest(alg, message), pad, prehashed)
    assert verify(client, bundle["key"]["kid"], alg, message, signature) is True


def test_sign_by_name_uses_latest_version(client, ec_keys):
    jwk = ec_keys["P-256"]["key"]
    name = h.kid_parts(jwk["kid"])[0]
    result = ok(client.op(name, "sign", {"alg": "ES256", "value": h.b64e(h.digest("ES256", b"x"))}))
    assert result["kid"] == jwk["kid"]
    h.verify_locally(jwk, "ES256", b"x", h.b64d(result["value"]))


# --- HMAC (api-version 7.6) -------------------------------------------------------------------------


@pytest.mark.parametrize("alg,bits", [("HS256", 256), ("HS384", 384), ("HS512", 512)])
def test_hmac_with_created_key(client, name, alg, bits):
    bundle = client.create_key(name, {"kty": "oct-HSM", "key_size": bits, "key_ops": ["sign", "verify"]}, api="7.6")
    assert bundle["key"]["key_ops"] == ["sign", "verify"] and "k" not in bundle["key"]
    kid = bundle["key"]["kid"]
    value = h.b64e(b"hmac me")
    mac = ok(client.op(kid, "sign", {"alg": alg, "value": value}, api="7.6"))
    assert len(h.b64d(mac["value"])) == int(alg[2:]) // 8
    good = {"alg": alg, "digest": value, "value": mac["value"]}
    assert ok(client.op(kid, "verify", good, api="7.6"))["value"] is True
    bad = {"alg": alg, "digest": h.b64e(b"hmac you"), "value": mac["value"]}
    assert ok(client.op(kid, "verify", bad, api="7.6"))["value"] is False
    # HS* is not in api-version 7.5.
    expect_error(client.op(kid, "sign", {"alg": alg, "value": value}, api="7.5"), 400, "BadParameter", contains="7.6")
    expect_error(client.op(kid, "verify", good, api="7.5"), 400, "BadParameter")


@pytest.mark.parametrize("alg,size", [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_hmac_matches_cryptography(client, name, alg, size):
    k = os.urandom(size)
    bundle = client.import_key(name, h.oct_jwk(k, key_ops=["sign", "verify"]), api="7.6")
    message = os.urandom(100)
    mac = ok(client.op(bundle["key"]["kid"], "sign", {"alg": alg, "value": h.b64e(message)}, api="7.6"))
    expected = hmac.new(k, message, getattr(hashlib, f"sha{alg[2:]}")).digest()
    assert h.b64d(mac["value"]) == expected
    body = {"alg": alg, "digest": h.b64e(message), "value": h.b64e(expected)}
    assert ok(client.op(bundle["key"]["kid"], "verify", body, api="7.6"))["value"] is True


def test_hmac_key_too_short_or_wrong_kind(client, aes_keys):
    hmac_key = client.create_key(h.unique_name(), {"kty": "oct", "key_size": 256, "key_ops": ["sign", "verify"]})
    expect_error(client.op(hmac_key["key"]["kid"], "sign", {"alg": "HS512", "value": "AA"}, api="7.6"), 400, "BadParameter")
    expect_error(client.op(hmac_key["key"]["kid"], "sign", {"alg": "ES256", "value": h.b64e(bytes(32))}), 400,
                 "BadParameter")
    # An AES key has no sign in its key_ops.
    expect_error(client.op(aes_keys[256][1]["key"]["kid"], "sign", {"alg": "HS256", "value": "AA"}, api="7.6"),
                 403, "Forbidden", inner="KeyOperationForbidden")


@pytest.mark.parametrize("alg", ["RSNULL", "ES256X", "rs256", "", "HS1"])
def test_unknown_signature_algorithm(client, rsa_key, alg):
    expect_error(client.op(rsa_key["key"]["kid"], "sign", {"alg": alg, "value": h.b64e(bytes(32))}), 400,
                 "BadParameter", contains="alg")
