"""What a key refuses: disabled, outside nbf/exp, operation not in key_ops, algorithm/key mismatch,
wrong digest length."""
import os
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

import hsmdtest as h
from hsmdtest import expect_error, ok

HOUR = 3600


def sign_body(alg="ES256", message=b"m"):
    return {"alg": alg, "value": h.b64e(h.digest(alg, message))}


def verify_body(alg, message, signature):
    return {"alg": alg, "digest": h.b64e(h.digest(alg, message)), "value": h.b64e(signature)}


# --- disabled ---------------------------------------------------------------------------------------------


def test_disabled_key_refuses_everything(client, name, rsa_private):
    bundle = client.import_key(name, h.rsa_private_jwk(rsa_private), attributes={"enabled": False})
    kid = bundle["key"]["kid"]
    assert bundle["attributes"]["enabled"] is False
    signature = rsa_private.sign(h.digest("RS256", b"m"), padding.PKCS1v15(), utils.Prehashed(h.hash_for("RS256")))
    ciphertext = rsa_private.public_key().encrypt(b"s", h.rsa_encryption_padding("RSA-OAEP"))
    for operation, body in (
        ("sign", sign_body("RS256")),
        ("verify", verify_body("RS256", b"m", signature)),
        ("encrypt", {"alg": "RSA-OAEP", "value": h.b64e(b"s")}),
        ("decrypt", {"alg": "RSA-OAEP", "value": h.b64e(ciphertext)}),
        ("wrapkey", {"alg": "RSA-OAEP", "value": h.b64e(os.urandom(16))}),
        ("unwrapkey", {"alg": "RSA-OAEP", "value": h.b64e(ciphertext)}),
    ):
        response = expect_error(client.op(kid, operation, body), 403, "Forbidden", inner="KeyDisabled")
        assert "disabled" in response.message
    # Still readable, and usable again once enabled.
    assert ok(client.get(f"/keys/{name}"))["attributes"]["enabled"] is False
    ok(client.patch(f"/keys/{name}", {"attributes": {"enabled": True}}))
    assert ok(client.op(kid, "verify", verify_body("RS256", b"m", signature)))["value"] is True
    ok(client.op(kid, "sign", sign_body("RS256")))


def test_disabling_by_update(client, name):
    client.create_key(name, {"kty": "EC"})
    ok(client.op(name, "sign", sign_body()))
    ok(client.patch(f"/keys/{name}", {"attributes": {"enabled": False}}))
    expect_error(client.op(name, "sign", sign_body()), 403, "Forbidden", inner="KeyDisabled")
    expect_error(client.op(name, "verify", verify_body("ES256", b"m", bytes(64))), 403, "Forbidden",
                 inner="KeyDisabled")


# --- validity window ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("window,inner", [
    ({"nbf": HOUR}, "KeyNotYetValid"),
    ({"exp": -HOUR}, "KeyExpired"),
    ({"nbf": -2 * HOUR, "exp": -HOUR}, "KeyExpired"),
    ({"nbf": HOUR, "exp": 2 * HOUR}, "KeyNotYetValid"),
], ids=["not-yet-valid", "expired", "window-past", "window-future"])
def test_outside_validity_window_rsa(client, name, rsa_private, window, inner):
    now = int(time.time())
    attributes = {field: now + offset for field, offset in window.items()}
    bundle = client.import_key(name, h.rsa_private_jwk(rsa_private), attributes=attributes)
    kid = bundle["key"]["kid"]
    # sign, encrypt and wrap make something new: refused.
    for operation, body in (
        ("sign", sign_body("PS256")),
        ("encrypt", {"alg": "RSA-OAEP-256", "value": h.b64e(b"s")}),
        ("wrapkey", {"alg": "RSA-OAEP-256", "value": h.b64e(os.urandom(32))}),
    ):
        expect_error(client.op(kid, operation, body), 403, "Forbidden", inner=inner)
    # decrypt, unwrap and verify still work.
    public = rsa_private.public_key()
    ciphertext = public.encrypt(b"still readable", h.rsa_encryption_padding("RSA-OAEP-256"))
    result = ok(client.op(kid, "decrypt", {"alg": "RSA-OAEP-256", "value": h.b64e(ciphertext)}))
    assert h.b64d(result["value"]) == b"still readable"
    result = ok(client.op(kid, "unwrapkey", {"alg": "RSA-OAEP-256", "value": h.b64e(ciphertext)}))
    assert h.b64d(result["value"]) == b"still readable"
    signature = rsa_private.sign(h.digest("PS256", b"m"), h.pss("PS256"), utils.Prehashed(h.hash_for("PS256")))
    assert ok(client.op(kid, "verify", verify_body("PS256", b"m", signature)))["value"] is True


def test_outside_validity_window_ec_and_aes(client):
    now = int(time.time())
    private = ec.generate_private_key(ec.SECP256R1())
    ec_bundle = client.import_key(h.unique_name(), h.ec_private_jwk(private, "P-256"), attributes={"exp": now - 10})
    expect_error(client.op(ec_bundle["key"]["kid"], "sign", sign_body()), 403, "Forbidden", inner="KeyExpired")
    signature = h.der_to_raw(private.sign(h.digest("ES256", b"m"), ec.ECDSA(utils.Prehashed(h.hash_for("ES256")))),
                             "P-256")
    assert ok(client.op(ec_bundle["key"]["kid"], "verify", verify_body("ES256", b"m", signature)))["value"] is True

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap
    k = os.urandom(32)
    aes = client.import_key(h.unique_name(), h.oct_jwk(k), attributes={"nbf": now + HOUR})
    kid = aes["key"]["kid"]
    expect_error(client.op(kid, "encrypt", {"alg": "A256GCM", "value": "AA"}), 403, "Forbidden", inner="KeyNotYetValid")
    expect_error(client.op(kid, "wrapkey", {"alg": "A256KW", "value": h.b64e(os.urandom(16))}), 403, "Forbidden",
                 inner="KeyNotYetValid")
    nonce = os.urandom(12)
    sealed = AESGCM(k).encrypt(nonce, b"old data", None)
    opened = ok(client.op(kid, "decrypt", {"alg": "A256GCM", "value": h.b64e(sealed[:-16]), "iv": h.b64e(nonce),
                                           "tag": h.b64e(sealed[-16:])}))
    assert h.b64d(opened["value"]) == b"old data"
    secret = os.urandom(16)
    unwrapped = ok(client.op(kid, "unwrapkey", {"alg": "A256KW", "value": h.b64e(aes_key_wrap(k, secret))}))
    assert h.b64d(unwrapped["value"]) == secret


def test_window_set_by_update_then_cleared(client, name):
    client.create_key(name, {"kty": "EC"})
    now = int(time.time())
    ok(client.patch(f"/keys/{name}", {"attributes": {"exp": now - 5}}))
    expect_error(client.op(name, "sign", sign_body()), 403, "Forbidden", inner="KeyExpired")
    ok(client.patch(f"/keys/{name}", {"attributes": {"exp": now + HOUR}}))
    ok(client.op(name, "sign", sign_body()))


# --- key_ops ------------------------------------------------------------------------------------------------


def test_operations_outside_key_ops_are_forbidden(client, name):
    bundle = client.create_key(name, {"kty": "RSA", "key_ops": ["sign"]})
    kid = bundle["key"]["kid"]
    public = h.public_key(bundle["key"])
    ciphertext = public.encrypt(b"x", h.rsa_encryption_padding("RSA-OAEP"))
    signature = h.b64d(ok(client.op(kid, "sign", sign_body("RS256")))["value"])
    for operation, body in (
        ("verify", verify_body("RS256", b"m", signature)),
        ("encrypt", {"alg": "RSA-OAEP", "value": h.b64e(b"x")}),
        ("decrypt", {"alg": "RSA-OAEP", "value": h.b64e(ciphertext)}),
        ("wrapkey", {"alg": "RSA-OAEP", "value": h.b64e(os.urandom(16))}),
        ("unwrapkey", {"alg": "RSA-OAEP", "value": h.b64e(ciphertext)}),
    ):
        response = expect_error(client.op(kid, operation, body), 403, "Forbidden", inner="KeyOperationForbidden")
        assert "key_ops" in response.message
    # The signature is still good, checked locally.
    h.verify_locally(bundle["key"], "RS256", b"m", signature)


def test_wrap_only_aes_key(client, name):
    bundle = client.import_key(name, h.oct_jwk(os.urandom(16), key_ops=["wrapKey"]))
    kid = bundle["key"]["kid"]
    ok(client.op(kid, "wrapkey", {"alg": "A128KW", "value": h.b64e(os.urandom(16))}))
    for operation, body in (
        ("unwrapkey", {"alg": "A128KW", "value": h.b64e(os.urandom(24))}),
        ("encrypt", {"alg": "A128GCM", "value": "AA"}),
        ("decrypt", {"alg": "A128CBC", "value": h.b64e(bytes(16)), "iv": h.b64e(bytes(16))}),
    ):
        expect_error(client.op(kid, operation, body), 403, "Forbidden", inner="KeyOperationForbidden")


def test_ec_key_cannot_encrypt_or_wrap(client, ec_keys):
    kid = ec_keys["P-256"]["key"]["kid"]
    expect_error(client.op(kid, "encrypt", {"alg": "RSA-OAEP", "value": "AA"}), 403, "Forbidden",
                 inner="KeyOperationForbidden")
    expect_error(client.op(kid, "wrapkey", {"alg": "A256KW", "value": h.b64e(bytes(16))}), 403, "Forbidden",
                 inner="KeyOperationForbidden")


# --- algorithm / key mismatch and digest length -------------------------------------------------------------


@pytest.mark.parametrize("key,operation,body", [
    ("ec256", "sign", {"alg": "ES384", "value": h.b64e(bytes(48))}),
    ("ec256", "sign", {"alg": "ES256K", "value": h.b64e(bytes(32))}),
    ("ec256", "sign", {"alg": "RS256", "value": h.b64e(bytes(32))}),
    ("ec256", "sign", {"alg": "PS256", "value": h.b64e(bytes(32))}),
    ("ec256", "verify", {"alg": "ES512", "digest": h.b64e(bytes(64)), "value": h.b64e(bytes(132))}),
    ("ec521", "sign", {"alg": "ES256", "value": h.b64e(bytes(32))}),
    ("rsa", "sign", {"alg": "ES256", "value": h.b64e(bytes(32))}),
    ("rsa", "encrypt", {"alg": "A256GCM", "value": "AA"}),
    ("rsa", "wrapkey", {"alg": "A256KW", "value": h.b64e(bytes(16))}),
    ("aes256", "encrypt", {"alg": "A128GCM", "value": "AA"}),
    ("aes256", "encrypt", {"alg": "A192CBC", "value": h.b64e(bytes(16)), "iv": h.b64e(bytes(16))}),
    ("aes256", "encrypt", {"alg": "A128CBCPAD", "value": "AA", "iv": h.b64e(bytes(16))}),
    ("aes256", "encrypt", {"alg": "RSA-OAEP", "value": "AA"}),
    ("aes128", "wrapkey", {"alg": "A256KW", "value": h.b64e(bytes(16))}),
    ("aes128", "unwrapkey", {"alg": "A192KW", "value": h.b64e(bytes(24))}),
    ("aes128", "wrapkey", {"alg": "RSA-OAEP", "value": h.b64e(bytes(16))}),
])
def test_algorithm_key_mismatch_is_400(client, ec_keys, rsa_key, aes_keys, key, operation, body):
    kid = {"ec256": ec_keys["P-256"], "ec521": ec_keys["P-521"], "rsa": rsa_key,
           "aes256": aes_keys[256][1], "aes128": aes_keys[128][1]}[key]["key"]["kid"]
    expect_error(client.op(kid, operation, body), 400, "BadParameter")


@pytest.mark.parametrize("key,alg,length", [
    ("rsa", "RS256", 20), ("rsa", "RS256", 48), ("rsa", "RS384", 32), ("rsa", "RS512", 0),
    ("rsa", "PS256", 31), ("rsa", "PS512", 65),
    ("ec256", "ES256", 48), ("ec256", "ES256", 20), ("ec384", "ES384", 32), ("ec521", "ES512", 66),
])
def test_wrong_digest_length_is_400(client, ec_keys, rsa_key, key, alg, length):
    kid = {"rsa": rsa_key, "ec256": ec_keys["P-256"], "ec384": ec_keys["P-384"], "ec521": ec_keys["P-521"]}[key]["key"]["kid"]
    response = expect_error(client.op(kid, "sign", {"alg": alg, "value": h.b64e(os.urandom(length))}), 400,
                            "BadParameter")
    assert "digest" in response.message
    signature_size = 256 if key == "rsa" else 2 * h.COORDINATE_SIZE[{"ec256": "P-256", "ec384": "P-384", "ec521": "P-521"}[key]]
    body = {"alg": alg, "digest": h.b64e(os.urandom(length)), "value": h.b64e(bytes(signature_size))}
    expect_error(client.op(kid, "verify", body), 400, "BadParameter")


@pytest.mark.parametrize("alg", ["A256XYZ", "rsa-oaep", "", "RSA-OAEP-512"])
def test_unknown_encryption_algorithm(client, rsa_key, alg):
    expect_error(client.op(rsa_key["key"]["kid"], "encrypt", {"alg": alg, "value": "AA"}), 400, "BadParameter",
                 contains="alg")
    expect_error(client.op(rsa_key["key"]["kid"], "wrapkey", {"alg": alg, "value": "AA"}), 400, "BadParameter",
                 contains="alg")
