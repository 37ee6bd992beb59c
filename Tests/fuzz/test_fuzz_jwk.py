"""Hostile JWKs for import (PUT /keys/{name}): members missing, added or retyped; parts of the wrong size; n=0,
e=1, d=0; points off the curve; parts of two keys mixed; kty/crv mismatches; odd key_ops. Mutations that break
the key must be refused with 400 (never imported); harmless ones may succeed, and then the key hsmd holds must
be the one sent (its public parts are compared)."""
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import event, given, settings
from hypothesis import strategies as st

import fuzzlib as f
import strategies as S
from fuzzlib import h

CURVE_OBJECTS = {"P-256": ec.SECP256R1, "P-256K": ec.SECP256K1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}


@pytest.fixture(scope="module")
def jwks():
    keys = {"RSA": [h.rsa_private_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048)) for _ in range(2)]}
    for crv, curve in CURVE_OBJECTS.items():
        keys[crv] = [h.ec_private_jwk(ec.generate_private_key(curve()), crv) for _ in range(2)]
    keys["oct"] = [h.oct_jwk(os.urandom(32)), h.oct_jwk(os.urandom(16))]
    keys["hmac"] = [h.oct_jwk(os.urandom(64), key_ops=["sign", "verify"])]
    return keys


def _int(text: str) -> int:
    return int.from_bytes(f.server_b64decode(text) or b"", "big") if text else 0


def _enc(number: int, size: int | None = None) -> str:
    return h.b64e(h.to_bytes(number, size)) if number or size else "AA"


@st.composite
def mutations(draw, jwks) -> tuple[dict, str, bool | None]:
    """(jwk, what was done, whether the key is broken so that import must fail)."""
    family = draw(st.sampled_from(sorted(jwks)))
    jwk = dict(draw(st.sampled_from(jwks[family])))
    other = dict(jwks[family][-1] if jwks[family][0] == jwk else jwks[family][0])
    members = [m for m in jwk if m not in ("kty", "key_ops", "crv")]
    action = draw(st.sampled_from(["none", "drop", "truncate", "extend", "leading_zero", "zero", "one", "plus_one",
                                   "swap", "kty", "crv", "e", "retype", "extra", "key_hsm", "key_ops", "padding"]))
    member = draw(st.sampled_from(members))
    is_oct = family in ("oct", "hmac")
    broken = True
    if action == "none":
        broken = False
    elif action == "drop":
        jwk.pop(member)
    elif action == "truncate":
        jwk[member] = h.b64e(h.b64d(jwk[member])[:-1])
    elif action == "extend":
        jwk[member] = h.b64e(h.b64d(jwk[member]) + b"\x01")
    elif action == "leading_zero":
        jwk[member] = h.b64e(b"\x00" + h.b64d(jwk[member]))
        broken = None                       # RSA may read it as the same integer; EC sizes are exact; oct changes k
    elif action == "zero":
        jwk[member] = draw(st.sampled_from(["", "AA", "AAAA"]))
    elif action == "one":
        jwk[member] = "AQ"
    elif action == "plus_one":
        jwk[member] = _enc(_int(jwk[member]) + 1, len(h.b64d(jwk[member])))
        if is_oct:
            broken = False                  # any k of the right size is a key
    elif action == "swap" and not is_oct:
        broken = jwk[member] != other[member]             # both keys have e = 65537
        jwk[member] = other[member]
    elif action == "swap":
        jwk["k"] = other["k"]
        broken = len(h.b64d(other["k"])) not in (16, 24, 32) if family == "oct" else None
    elif action == "kty":
        jwk["kty"] = draw(st.sampled_from(["RSA", "EC", "oct", "RSA-HSM", "EC-HSM", "oct-HSM", "rsa", "ec", "OKP",
                                           "", "RSA ", "EC\u0000"]))
        same = {"RSA": ("RSA", "RSA-HSM"), "oct": ("oct", "oct-HSM"), "hmac": ("oct", "oct-HSM")}.get(family, ("EC", "EC-HSM"))
        broken = jwk["kty"] not in same
    elif action == "crv":
        jwk["crv"] = draw(st.sampled_from(["P-256", "P-256K", "P-384", "P-521", "p-256", "P-224", "secp256k1", "", "X25519"]))
        # On an RSA or oct JWK, crv is not documented as refused (only create refuses it): either answer is fine.
        broken = None if family in ("RSA", "oct", "hmac") else jwk["crv"] != family
    elif action == "e" and family == "RSA":
        jwk["e"] = draw(st.sampled_from(["AQAB", "AAEAAQ", "Aw", "AQ", "AA", "", "AQAA", "_____w", "AQAB" * 40]))
        broken = jwk["e"] not in ("AQAB", "AAEAAQ")
        if jwk["e"] == "AAEAAQ":
            broken = None
    elif action == "retype":
        jwk[draw(st.sampled_from(list(jwk)))] = draw(st.sampled_from([1, 2.5, True, None, [], {}, ["AQAB"]]))
        broken = None
    elif action == "extra":
        jwk[draw(st.sampled_from(["kid", "use", "alg", "x5c", "ext", "unknown", "k" if not is_oct else "n"]))] = draw(S.json_values)
        broken = None
    elif action == "key_hsm":
        jwk["key_hsm"] = draw(st.sampled_from(["AAAA", "", "x"]))
    elif action == "key_ops":
        jwk["key_ops"] = draw(st.one_of(st.lists(st.sampled_from(
            ["sign", "verify", "encrypt", "decrypt", "wrapKey", "unwrapKey", "import", "export", "SIGN", "", "x"]),
            max_size=4), st.sampled_from([None, "sign", 1, {}])))
        broken = None
    elif action == "padding":
        jwk[member] = h.b64e_padded(h.b64d(jwk[member]))
        broken = False
    else:
        broken = False
    return jwk, f"{family}:{action}:{member}", broken



def public_parts(jwk: dict) -> dict:
    return {m: h.b64d(jwk[m]) if isinstance(jwk.get(m), str) else None for m in ("n", "e", "x", "y", "crv")
            if m in jwk and m != "crv"} | ({"crv": jwk["crv"]} if "crv" in jwk else {})


@settings(max_examples=f.examples(200))
@given(data=st.data())
def test_hostile_jwk_import(hsmd, jwks, data):
    jwk, what, broken = data.draw(mutations(jwks), label="jwk")
    event(f"{what.split(':')[1]} broken={broken}")
    name = f.unique("jz")
    body = S.dumps({"key": jwk})
    try:
        response = f.exchange(hsmd.connect, f.build_request("PUT", f"/keys/{name}?api-version={f.API}", body), timeout=60)
        f.check_answer(response, method="PUT", target=f"/keys/{name}")
    finally:
        hsmd.assert_alive(after=f"import {what} {body[:600]!r}")
    ctx = f"{what}{response.describe()}"
    if broken is True:
        assert response.status == 400 and f.error_code(response) == "BadParameter", f"broken key imported: {ctx}"
    elif broken is False:
        assert response.status == 200, ctx
    else:
        assert response.status in (200, 400), ctx
    event(f"status {response.status}")
    if response.status == 200:
        held = response.json["key"]
        if jwk["kty"].upper().startswith("RSA"):
            assert _int(held["n"]) == _int(jwk["n"]) and _int(held["e"]) == _int(jwk["e"]), ctx
        elif jwk["kty"].upper().startswith("EC"):
            sent = (jwk["crv"], f.server_b64decode(jwk["x"]), f.server_b64decode(jwk["y"]))
            assert (held["crv"], h.b64d(held["x"]), h.b64d(held["y"])) == sent, ctx


# Broken keys, one per kind, as regression cases.
def _rsa_broken(jwks):
    base = jwks["RSA"][0]
    other = jwks["RSA"][1]
    return {
        "n=0": base | {"n": "AA"}, "e=1": base | {"e": "AQ"}, "e=0": base | {"e": "AA"}, "e=3": base | {"e": "Aw"},
        "mixed n": base | {"n": other["n"]}, "d and crt both wrong": base | {"d": "AQ", "p": "AQ"},
        # BUG-4 (fixed): a wrong d with right CRT parts, or the reverse, used to be imported.
        "d=0": base | {"d": "AA"}, "d=1": base | {"d": "AQ"}, "p=1": base | {"p": "AQ"}, "q=n": base | {"q": base["n"]},
        "mixed d": base | {"d": other["d"]}, "mixed crt": base | {k: other[k] for k in ("p", "q", "dp", "dq", "qi")},
        "n 1024 bits": base | {"n": h.b64e(h.b64d(base["n"])[:128])},
        "no crt": {k: v for k, v in base.items() if k not in ("p", "q", "dp", "dq", "qi")},
        "no d": {k: v for k, v in base.items() if k != "d"},
    }


def _ec_broken(jwks):
    cases = {}
    for crv in CURVE_OBJECTS:
        base, other = jwks[crv]
        size = h.COORDINATE_SIZE[crv]
        cases |= {
            f"{crv} y+1 (off curve)": base | {"y": _enc(_int(base["y"]) + 1, size)},
            f"{crv} x=y=0": base | {"x": _enc(0, size), "y": _enc(0, size)},
            f"{crv} d=0": base | {"d": _enc(0, size)},
            f"{crv} d=n (order)": base | {"d": h.b64e(b"\xff" * size)},
            f"{crv} other key's d": base | {"d": other["d"]},
            f"{crv} short x": base | {"x": h.b64e(h.b64d(base["x"])[1:])},
        }
    cases["P-256 key as P-384"] = jwks["P-256"][0] | {"crv": "P-384"}
    cases["P-256 key as P-256K"] = jwks["P-256"][0] | {"crv": "P-256K"}
    cases["P-384 key as P-256"] = jwks["P-384"][0] | {"crv": "P-256"}
    cases["EC key as RSA"] = jwks["P-256"][0] | {"kty": "RSA"}
    cases["RSA key as EC"] = jwks["RSA"][0] | {"kty": "EC", "crv": "P-256"}
    cases["oct key as RSA"] = jwks["oct"][0] | {"kty": "RSA"}
    cases["oct 15 bytes"] = {"kty": "oct", "k": h.b64e(os.urandom(15))}
    cases["oct 0 bytes"] = {"kty": "oct", "k": ""}
    cases["hmac 16 bytes"] = {"kty": "oct", "k": h.b64e(os.urandom(16)), "key_ops": ["sign"]}
    cases["aes+hmac ops"] = {"kty": "oct", "k": h.b64e(os.urandom(32)), "key_ops": ["sign", "encrypt"]}
    cases["key_hsm"] = {"kty": "RSA-HSM", "key_hsm": h.b64e(b"blob")}
    return cases


def test_broken_keys_are_refused(hsmd, jwks):
    failures = []
    for label, jwk in (_rsa_broken(jwks) | _ec_broken(jwks)).items():
        response = hsmd.send("PUT", f"/keys/{f.unique('jb')}?api-version={f.API}", S.dumps({"key": jwk}))
        if response.status != 400:
            failures.append(f"{label}: {response.describe()}")
        hsmd.assert_alive(after=label)
    assert not failures, "\n".join(failures)
