"""Hostile base64url in every field that carries bytes: padding (none, right, too much, inside), the standard
alphabet, whitespace, invalid and non-ASCII characters, 4n+1 lengths, empty strings. The oracle is the
documented rule (docs/api.md, Conventions): what decodes is used as those bytes, what does not is 400 naming
the field. Signatures are checked with `cryptography`, so a wrong decoding cannot pass as a success."""
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import given, settings
from hypothesis import strategies as st

import fuzzlib as f
import strategies as S
from fuzzlib import h


def send(daemon, method, target, body: dict):
    raw = S.dumps(body)
    try:
        response = f.exchange(daemon.connect, f.build_request(method, target, raw), timeout=30, method=method)
        f.check_answer(response, method=method, target=target)
    finally:
        daemon.assert_alive(after=f"{method} {target} body={raw[:400]!r}")
    return response


def refused_naming(response, field):
    ctx = response.describe()
    assert response.status == 400 and f.error_code(response) == "BadParameter", ctx
    assert field in f.error_message(response), ctx


@settings(max_examples=f.examples(150))
@given(data=st.data(), digest=st.binary(min_size=0, max_size=40).map(lambda b: b if len(b) != 31 else b + b"!"))
def test_sign_digest_spellings(hsmd, data, digest):
    pool = hsmd.pool["fz-ec-p256"]
    if data.draw(st.booleans(), label="32 bytes"):
        digest = os.urandom(32)
    text = data.draw(S.base64_variants(digest), label="value")
    response = send(hsmd, "POST", f"/keys/fz-ec-p256/sign?api-version={f.API}", {"alg": "ES256", "value": text})
    decoded = f.server_b64decode(text)
    if decoded is None:
        refused_naming(response, "value")
    elif len(decoded) != 32:
        refused_naming(response, "32")
    else:
        assert response.status == 200, response.describe()
        signature = h.b64d(response.json["value"])
        key = h.public_key(pool["bundle"]["key"])
        key.verify(h.raw_to_der(signature), decoded, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


@settings(max_examples=f.examples(100))
@given(data=st.data())
def test_verify_spellings(hsmd, data):
    digest = os.urandom(32)
    signature = h.b64d(hsmd.send("POST", f"/keys/fz-ec-p256/sign?api-version={f.API}",
                                 S.dumps({"alg": "ES256", "value": h.b64e(digest)})).json["value"])
    digest_text = data.draw(S.base64_variants(digest), label="digest")
    value_text = data.draw(S.base64_variants(signature), label="value")
    response = send(hsmd, "POST", f"/keys/fz-ec-p256/verify?api-version={f.API}",
                    {"alg": "ES256", "digest": digest_text, "value": value_text})
    d, v = f.server_b64decode(digest_text), f.server_b64decode(value_text)
    if d is None or v is None:
        assert response.status == 400, response.describe()
        refused_naming(response, "digest" if d is None else "value")
    elif len(d) != 32:
        refused_naming(response, "32")
    else:
        assert response.status == 200, response.describe()
        assert response.json == {"value": d == digest and v == signature}, response.describe()


@settings(max_examples=f.examples(100))
@given(data=st.data(), plaintext=st.binary(max_size=64), aad=st.binary(max_size=40))
def test_gcm_round_trip_spellings(hsmd, data, plaintext, aad):
    """encrypt with hostile value/aad spellings; decrypt with hostile iv/tag spellings."""
    value_text = data.draw(S.base64_variants(plaintext), label="value")
    aad_text = data.draw(S.base64_variants(aad), label="aad")
    target = f"/keys/fz-aes256/encrypt?api-version={f.API}"
    response = send(hsmd, "POST", target, {"alg": "A256GCM", "value": value_text, "aad": aad_text})
    pv, pa = f.server_b64decode(value_text), f.server_b64decode(aad_text)
    if pv is None or pa is None:
        refused_naming(response, "value" if pv is None else "aad")
        return
    assert response.status == 200, response.describe()
    sealed = response.json
    assert sealed["aad"] == h.b64e(pa), response.describe()
    iv, tag = h.b64d(sealed["iv"]), h.b64d(sealed["tag"])
    iv_text = data.draw(S.base64_variants(iv), label="iv")
    tag_text = data.draw(S.base64_variants(tag), label="tag")
    version = sealed["kid"].rsplit("/", 1)[1]
    response = send(hsmd, "POST", f"/keys/fz-aes256/{version}/decrypt?api-version={f.API}",
                    {"alg": "A256GCM", "value": sealed["value"], "iv": iv_text, "tag": tag_text, "aad": sealed["aad"]})
    di, dt = f.server_b64decode(iv_text), f.server_b64decode(tag_text)
    if di is None or dt is None:
        refused_naming(response, "iv" if di is None else "tag")
    elif di == iv and dt == tag:
        assert response.status == 200 and h.b64d(response.json["value"]) == pv, response.describe()
    else:
        assert response.status == 400, response.describe()


@settings(max_examples=f.examples(80))
@given(data=st.data(), size=st.sampled_from([15, 16, 17, 24, 32, 33, 0, 64]))
def test_import_k_spellings(hsmd, data, size):
    k = os.urandom(size)
    text = data.draw(S.base64_variants(k), label="k")
    name = f.unique("b64imp")
    response = send(hsmd, "PUT", f"/keys/{name}?api-version={f.API}", {"key": {"kty": "oct", "k": text}})
    decoded = f.server_b64decode(text)
    if decoded is None:
        refused_naming(response, "k")
    elif len(decoded) in (16, 24, 32):
        assert response.status == 200, response.describe()
    else:
        assert response.status == 400, response.describe()


@pytest.fixture(scope="module")
def backup_blob(hsmd):
    hsmd.pool
    return h.b64d(hsmd.send("POST", f"/keys/fz-aes128/backup?api-version={f.API}").json["value"])


@settings(max_examples=f.examples(40))
@given(data=st.data())
def test_restore_blob_spellings(hsmd, backup_blob, data):
    """A real (multi-kilobyte) backup blob in hostile spellings: if it decodes to the blob, the name is taken
    (409); if it does not decode, 400 naming value."""
    text = data.draw(S.base64_variants(backup_blob), label="value")
    response = send(hsmd, "POST", f"/keys/restore?api-version={f.API}", {"value": text})
    decoded = f.server_b64decode(text)
    if decoded is None:
        refused_naming(response, "value")
    elif decoded == backup_blob:
        assert response.status == 409 and f.error_code(response) == "Conflict", response.describe()
    else:
        assert response.status == 400, response.describe()
