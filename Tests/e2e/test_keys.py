"""Key management: create, import, get, list, list versions, update."""
import os
import time

import pytest
from urllib.parse import urlsplit
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import hsmdtest as h
from hsmdtest import expect_error, ok


def gcm_works(client, kid, bits):
    """True when A{bits}GCM encrypts with the key (so the AES key has exactly `bits` bits)."""
    response = client.op(kid, "encrypt", {"alg": f"A{bits}GCM", "value": h.b64e(b"size probe")})
    if response.status == 200:
        return True
    expect_error(response, 400, "BadParameter")
    return False


# --- create -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2048, 3072, 4096])   # the only RSA-4096 key of the suite
def test_create_rsa_sizes(client, name, bits):
    bundle = client.create_key(name, {"kty": "RSA-HSM", "key_size": bits})
    h.check_bundle(bundle, name, "RSA-HSM", h.RSA_DEFAULT_OPS)
    assert len(h.b64d(bundle["key"]["n"])) * 8 == bits
    assert h.public_key(bundle["key"]).key_size == bits
    assert bundle["attributes"]["enabled"] is True
    assert bundle["attributes"]["hsmPlatform"] == "2"
    assert "tags" not in bundle and "recoveryId" not in bundle


@pytest.mark.parametrize("crv", list(h.CURVES))
def test_create_ec_curves(client, name, crv):
    bundle = client.create_key(name, {"kty": "EC-HSM", "crv": crv})
    h.check_bundle(bundle, name, "EC-HSM", h.EC_DEFAULT_OPS)
    assert bundle["key"]["crv"] == crv
    assert isinstance(h.public_key(bundle["key"]).curve, h.CURVES[crv])


@pytest.mark.parametrize("crv,size", [("P-256", 256), ("P-256K", 256), ("P-384", 384), ("P-521", 521)])
def test_create_ec_with_matching_key_size(client, name, crv, size):
    assert client.create_key(name, {"kty": "EC-HSM", "crv": crv, "key_size": size})["key"]["crv"] == crv


@pytest.mark.parametrize("bits", [128, 192, 256])
def test_create_oct_sizes(client, name, bits):
    bundle = client.create_key(name, {"kty": "oct-HSM", "key_size": bits})
    h.check_bundle(bundle, name, "oct-HSM", h.OCT_DEFAULT_OPS)
    assert "k" not in bundle["key"]
    assert "k" not in ok(client.get(f"/keys/{name}"))["key"]
    for other in (128, 192, 256):
        assert gcm_works(client, bundle["key"]["kid"], other) == (other == bits)


@pytest.mark.parametrize("short,full", [("RSA", "RSA-HSM"), ("EC", "EC-HSM"), ("oct", "oct-HSM")])
def test_short_kty_names_are_stored_as_hsm(client, name, short, full):
    bundle = client.create_key(name, {"kty": short})
    h.check_bundle(bundle, name, full)
    assert ok(client.get(f"/keys/{name}"))["key"]["kty"] == full


def test_defaults(client):
    rsa_key = client.create_key(h.unique_name(), {"kty": "RSA-HSM"})
    assert len(h.b64d(rsa_key["key"]["n"])) == 256
    assert rsa_key["key"]["key_ops"] == h.RSA_DEFAULT_OPS
    ec_key = client.create_key(h.unique_name(), {"kty": "EC-HSM"})
    assert ec_key["key"]["crv"] == "P-256" and ec_key["key"]["key_ops"] == h.EC_DEFAULT_OPS
    oct_key = client.create_key(h.unique_name(), {"kty": "oct-HSM"})
    assert oct_key["key"]["key_ops"] == h.OCT_DEFAULT_OPS
    assert gcm_works(client, oct_key["key"]["kid"], 256) and not gcm_works(client, oct_key["key"]["kid"], 128)
    # An empty attributes object is the same as none.
    assert client.create_key(h.unique_name(), {"kty": "EC", "attributes": {}})["attributes"]["enabled"] is True


def test_create_with_ops_attributes_and_tags(client, name):
    now = int(time.time())
    body = {"kty": "RSA", "key_ops": ["verify", "sign"], "public_exponent": 65537,
            "attributes": {"enabled": False, "nbf": now - 60, "exp": now + 3600}, "tags": {"env": "test", "x": ""}}
    bundle = client.create_key(name, body)
    assert bundle["key"]["key_ops"] == ["sign", "verify"]       # Azure's order
    assert bundle["attributes"]["enabled"] is False
    assert bundle["attributes"]["nbf"] == now - 60 and bundle["attributes"]["exp"] == now + 3600
    assert bundle["tags"] == {"env": "test", "x": ""}
    assert ok(client.get(f"/keys/{name}")) == bundle


def test_create_again_adds_a_version(client, name):
    first = client.create_key(name, {"kty": "EC"})
    second = client.create_key(name, {"kty": "EC", "crv": "P-384"})
    assert h.version_of(first) != h.version_of(second)
    assert ok(client.get(f"/keys/{name}"))["key"]["kid"] == second["key"]["kid"]
    assert ok(client.get(f"/keys/{name}/{h.version_of(first)}"))["key"]["crv"] == "P-256"


@pytest.mark.parametrize("body,mentions", [
    ({"kty": "DSA"}, "kty"),
    ({"kty": "RSA-HSM", "key_size": 1024}, "key_size"),
    ({"kty": "RSA-HSM", "key_size": 2047}, "key_size"),
    ({"kty": "RSA-HSM", "public_exponent": 3}, "public_exponent"),
    ({"kty": "RSA-HSM", "crv": "P-256"}, "crv"),
    ({"kty": "EC-HSM", "crv": "P-999"}, "crv"),
    ({"kty": "EC-HSM", "crv": "P-256", "key_size": 384}, "key_size"),
    ({"kty": "EC-HSM", "public_exponent": 65537}, "public_exponent"),
    ({"kty": "EC-HSM", "key_ops": ["encrypt"]}, "key_ops"),
    ({"kty": "EC-HSM", "key_ops": ["fly"]}, "key_ops"),
    ({"kty": "oct-HSM", "key_size": 512}, "key_size"),
    ({"kty": "oct-HSM", "key_size": 64}, "key_size"),
    ({"kty": "oct-HSM", "key_ops": ["sign", "encrypt"]}, "key_ops"),
    ({"kty": "oct-HSM", "key_ops": ["sign", "verify"], "key_size": 128}, "key_size"),
    ({"kty": "oct-HSM", "crv": "P-256"}, "crv"),
    ({"kty": "EC", "attributes": {"exportable": True}}, "exportable"),
    ({"kty": "EC", "release_policy": {"data": "e30"}}, "release_policy"),
    ({"kty": "EC", "attributes": {"nbf": 2000, "exp": 1000}}, "nbf"),
    ({"kty": "EC", "attributes": {"nbf": 1000, "exp": 1000}}, "nbf"),
])
def test_create_validation(client, name, body, mentions):
    expect_error(client.post(f"/keys/{name}/create", body), 400, "BadParameter", contains=mentions)
    expect_error(client.get(f"/keys/{name}"), 404, "KeyNotFound")


# --- import -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kty", ["RSA", "RSA-HSM"])
def test_import_rsa(client, name, rsa_private, kty):
    bundle = client.import_key(name, h.rsa_private_jwk(rsa_private, kty=kty), Hsm=True)
    h.check_bundle(bundle, name, "RSA-HSM", h.RSA_DEFAULT_OPS)
    numbers = rsa_private.public_key().public_numbers()
    assert h.as_int(bundle["key"]["n"]) == numbers.n and h.as_int(bundle["key"]["e"]) == numbers.e


@pytest.mark.parametrize("crv", list(h.CURVES))
def test_import_ec(client, name, crv):
    private = ec.generate_private_key(h.CURVES[crv]())
    bundle = client.import_key(name, h.ec_private_jwk(private, crv), tags={"src": "import"})
    h.check_bundle(bundle, name, "EC-HSM", h.EC_DEFAULT_OPS)
    numbers = private.public_key().public_numbers()
    assert (h.as_int(bundle["key"]["x"]), h.as_int(bundle["key"]["y"])) == (numbers.x, numbers.y)
    assert bundle["tags"] == {"src": "import"}


@pytest.mark.parametrize("bits", [128, 192, 256])
def test_import_oct(client, name, bits):
    k = os.urandom(bits // 8)
    bundle = client.import_key(name, h.oct_jwk(k, kty="oct-HSM"))
    h.check_bundle(bundle, name, "oct-HSM", h.OCT_DEFAULT_OPS)
    assert "k" not in bundle["key"] and "k" not in ok(client.get(f"/keys/{name}"))["key"]
    assert gcm_works(client, bundle["key"]["kid"], bits)


def test_import_with_key_ops_and_attributes(client, name):
    now = int(time.time())
    jwk = h.oct_jwk(os.urandom(32), key_ops=["wrapKey", "unwrapKey"])
    bundle = client.import_key(name, jwk, attributes={"exp": now + 600})
    assert bundle["key"]["key_ops"] == ["wrapKey", "unwrapKey"]
    assert bundle["attributes"]["exp"] == now + 600


def test_import_over_existing_adds_a_version(client, name):
    first = client.import_key(name, h.oct_jwk(os.urandom(16)))
    second = client.import_key(name, h.oct_jwk(os.urandom(32)))
    assert h.version_of(first) != h.version_of(second)
    versions = h.items(client.pages(f"/keys/{name}/versions"))
    assert [item["kid"] for item in versions] == [first["key"]["kid"], second["key"]["kid"]]


def _jwk_without(jwk, member):
    return {k: v for k, v in jwk.items() if k != member}


@pytest.mark.parametrize("case", ["no-kty", "bad-kty", "rsa-no-d", "rsa-no-n", "ec-no-crv", "ec-bad-crv",
                                  "ec-no-x", "oct-no-k", "oct-bad-b64", "oct-bad-size", "key_hsm",
                                  "release_policy", "tags", "mismatch"])
def test_import_validation(client, name, rsa_private, case):
    rsa_jwk = h.rsa_private_jwk(rsa_private)
    ec_jwk = h.ec_private_jwk(ec.generate_private_key(ec.SECP256R1()), "P-256")
    body = {
        "no-kty": {"key": _jwk_without(h.oct_jwk(bytes(16)), "kty")},
        "bad-kty": {"key": {**h.oct_jwk(bytes(16)), "kty": "AES"}},
        "rsa-no-d": {"key": _jwk_without(rsa_jwk, "d")},
        "rsa-no-n": {"key": _jwk_without(rsa_jwk, "n")},
        "ec-no-crv": {"key": _jwk_without(ec_jwk, "crv")},
        "ec-bad-crv": {"key": {**ec_jwk, "crv": "P-192"}},
        "ec-no-x": {"key": _jwk_without(ec_jwk, "x")},
        "oct-no-k": {"key": {"kty": "oct"}},
        "oct-bad-b64": {"key": {"kty": "oct", "k": "***"}},
        "oct-bad-size": {"key": h.oct_jwk(bytes(20))},
        "key_hsm": {"key": {"kty": "RSA-HSM", "key_hsm": "AAAA"}},
        "release_policy": {"key": h.oct_jwk(bytes(16)), "release_policy": {"data": "e30"}},
        "tags": {"key": h.oct_jwk(bytes(16)), "tags": {f"t{i}": "v" for i in range(16)}},
        "mismatch": {"key": {**h.oct_jwk(bytes(16)), "kty": "EC"}},
    }[case]
    expect_error(client.put(f"/keys/{name}", body), 400, "BadParameter")
    expect_error(client.get(f"/keys/{name}"), 404, "KeyNotFound")


def test_import_error_names_the_missing_part(client, name, rsa_private):
    response = expect_error(client.put(f"/keys/{name}", {"key": _jwk_without(h.rsa_private_jwk(rsa_private), "d")}),
                            400, "BadParameter")
    assert "key.d" in response.message


# --- get ----------------------------------------------------------------------------------------------


def test_get_latest_and_by_version(client, name):
    first = client.create_key(name, {"kty": "EC", "crv": "P-256"})
    second = client.create_key(name, {"kty": "EC", "crv": "P-256K"})
    v1, v2 = h.version_of(first), h.version_of(second)
    for path in (f"/keys/{name}", f"/keys/{name}/", f"/keys/{name}/{v2}", f"/keys/{name}/{v2.upper()}"):
        assert ok(client.get(path)) == second, path
    assert ok(client.get(f"/keys/{name}/{v1}")) == first
    expect_error(client.get(f"/keys/{name}/{'0' * 32}"), 404, "KeyNotFound")
    expect_error(client.get(f"/keys/{name}/not-a-version"), 404, "KeyNotFound")


# --- list -----------------------------------------------------------------------------------------------


def test_list_keys_versionless_and_paginated(client):
    prefix = h.unique_name("list")
    names = [f"{prefix}-{i}" for i in range(3)]
    for n in names:
        client.create_key(n, {"kty": "EC"})
    client.create_key(names[0], {"kty": "EC"})                       # a second version: still one entry
    expected = {f"{h.AUTHORITY}/keys/{n}" for n in names}

    pages = client.pages("/keys?maxresults=1")
    assert len(pages) >= 3
    assert all(len(page["value"]) <= 1 for page in pages)
    assert all(page["nextLink"] is None for page in pages[-1:])
    for page in pages[:-1]:
        link = page["nextLink"]
        assert link.startswith(f"{h.AUTHORITY}/keys?") and "maxresults=1" in link and "$skiptoken=" in link
    listed = h.items(pages)
    kids = [item["kid"] for item in listed]
    assert len(kids) == len(set(kids)), "a key listed twice across pages"
    assert expected <= set(kids)
    for item in listed:
        assert set(item) <= {"kid", "attributes", "tags", "managed"}, item    # never key material
        assert h.kid_parts(item["kid"])[1] is None, item["kid"]
    # The default page size gives the same keys.
    assert {item["kid"] for item in h.items(client.pages("/keys"))} == set(kids)
    assert all(len(page["value"]) <= 25 for page in client.pages("/keys"))


def test_list_versions_versioned_in_order(client, name):
    bundles = [client.create_key(name, {"kty": "EC", "tags": {"n": str(i)}}) for i in range(3)]
    pages = client.pages(f"/keys/{name}/versions?maxresults=1")
    assert len(pages) == 3
    for page in pages[:-1]:
        assert page["nextLink"].startswith(f"{h.AUTHORITY}/keys/{name}/versions?")
    listed = h.items(pages)
    assert [item["kid"] for item in listed] == [b["key"]["kid"] for b in bundles]
    assert [item["tags"] for item in listed] == [{"n": "0"}, {"n": "1"}, {"n": "2"}]
    assert all("key" not in item for item in listed)
    assert [item["kid"] for item in h.items(client.pages(f"/keys/{name}/versions"))] == [item["kid"] for item in listed]


def test_paging_is_by_name_so_keys_created_or_deleted_between_pages_neither_skip_nor_repeat_others(foreign_hsmd):
    client = foreign_hsmd.client
    for name in ("pg-b", "pg-d", "pg-f", "pg-h"):
        client.create_key(name, {"kty": "EC-HSM", "crv": "P-256"})
    first = ok(client.get("/keys?maxresults=2"))
    assert [h.kid_parts(item["kid"])[0] for item in first["value"]] == ["pg-b", "pg-d"]
    # Between the pages: a key before the cursor appears, one already listed goes, one after it appears.
    client.create_key("pg-a", {"kty": "EC-HSM", "crv": "P-256"})
    ok(client.delete("/keys/pg-b"))
    client.create_key("pg-g", {"kty": "EC-HSM", "crv": "P-256"})
    link = urlsplit(first["nextLink"])
    rest = client.pages(f"{link.path}?{link.query}", api=None)
    assert [h.kid_parts(item["kid"])[0] for item in h.items(rest)] == ["pg-f", "pg-g", "pg-h"]


@pytest.mark.parametrize("query", ["maxresults=0", "maxresults=26", "maxresults=abc", "maxresults=-1",
                                   "$skiptoken=garbage!", "$skiptoken=eHl6"])
def test_list_bad_paging_parameters(client, query):
    expect_error(client.get(f"/keys?{query}"), 400, "BadParameter")
    expect_error(client.get(f"/deletedkeys?{query}"), 400, "BadParameter")


# --- update ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/", "/{version}"])
def test_update_latest(client, name, suffix):
    bundle = client.create_key(name, {"kty": "RSA", "tags": {"old": "1"}})
    version = h.version_of(bundle)
    now = int(time.time())
    body = {"attributes": {"enabled": False, "nbf": now - 100, "exp": now + 1000},
            "tags": {"new": "2"}, "key_ops": ["sign", "verify"]}
    updated = ok(client.patch(f"/keys/{name}{suffix.format(version=version)}", body))
    assert updated["key"]["kid"] == bundle["key"]["kid"]
    assert updated["key"]["n"] == bundle["key"]["n"]                     # material never changes
    assert updated["key"]["key_ops"] == ["sign", "verify"]
    assert updated["attributes"]["enabled"] is False
    assert updated["attributes"]["nbf"] == now - 100 and updated["attributes"]["exp"] == now + 1000
    assert updated["attributes"]["created"] == bundle["attributes"]["created"]
    assert updated["attributes"]["updated"] >= bundle["attributes"]["updated"]
    assert updated["tags"] == {"new": "2"}                               # tags are replaced
    assert ok(client.get(f"/keys/{name}")) == updated
    # Fields left out stay as they are.
    again = ok(client.patch(f"/keys/{name}", {"attributes": {"enabled": True}}))
    assert again["tags"] == {"new": "2"} and again["key"]["key_ops"] == ["sign", "verify"]
    assert again["attributes"]["exp"] == now + 1000 and again["attributes"]["enabled"] is True
    # An empty tag object clears the tags.
    assert "tags" not in ok(client.patch(f"/keys/{name}/", {"tags": {}}))


def test_update_one_version_leaves_the_others(client, name):
    first = client.create_key(name, {"kty": "EC"})
    second = client.create_key(name, {"kty": "EC"})
    updated = ok(client.patch(f"/keys/{name}/{h.version_of(first)}", {"attributes": {"enabled": False},
                                                                        "tags": {"v": "1"}}))
    assert updated["key"]["kid"] == first["key"]["kid"]
    assert ok(client.get(f"/keys/{name}")) == second
    assert ok(client.get(f"/keys/{name}/{h.version_of(first)}"))["attributes"]["enabled"] is False


def test_update_key_ops_takes_effect(client, name):
    bundle = client.create_key(name, {"kty": "EC"})
    sign = {"alg": "ES256", "value": h.b64e(bytes(32))}
    ok(client.op(name, "sign", sign))
    ok(client.patch(f"/keys/{name}", {"key_ops": ["verify"]}))
    expect_error(client.op(name, "sign", sign), 403, "Forbidden", inner="KeyOperationForbidden")
    ok(client.patch(f"/keys/{name}", {"key_ops": ["sign", "verify"]}))
    ok(client.op(bundle["key"]["kid"], "sign", sign))


@pytest.mark.parametrize("body,mentions", [
    ({"attributes": {"nbf": 2_000_000_000, "exp": 1_000_000_000}}, "nbf"),
    ({"attributes": {"exportable": True}}, "exportable"),
    ({"key_ops": ["encrypt"]}, "key_ops"),
    ({"key_ops": ["explode"]}, "key_ops"),
    ({"tags": {f"t{i}": "v" for i in range(16)}}, "tags"),
    ({"release_policy": {}}, "release_policy"),
])
def test_update_validation(client, ec_keys, body, mentions):
    name = h.kid_parts(ec_keys["P-384"]["key"]["kid"])[0]
    before = ok(client.get(f"/keys/{name}"))
    expect_error(client.patch(f"/keys/{name}", body), 400, "BadParameter", contains=mentions)
    assert ok(client.get(f"/keys/{name}")) == before


def test_update_nbf_after_existing_exp_is_refused(client, name):
    now = int(time.time())
    client.create_key(name, {"kty": "EC", "attributes": {"exp": now + 100}})
    expect_error(client.patch(f"/keys/{name}", {"attributes": {"nbf": now + 200}}), 400, "BadParameter")


def test_update_oct_cannot_change_kind(client, aes_keys):
    kid = aes_keys[128][1]["key"]["kid"]
    expect_error(client.patch(h.path_of(kid), {"key_ops": ["sign", "verify"]}), 400, "BadParameter",
                 contains="key_ops")


def test_update_unknown_key_or_version(client, name, ec_keys):
    expect_error(client.patch(f"/keys/{name}", {"tags": {}}), 404, "KeyNotFound")
    existing = h.kid_parts(ec_keys["P-256"]["key"]["kid"])[0]
    expect_error(client.patch(f"/keys/{existing}/{'f' * 32}", {"tags": {}}), 404, "KeyNotFound")


@pytest.mark.parametrize("case", ["ec-public-of-another-key", "ec-point-off-curve", "rsa-modulus-of-another-key"])
def test_import_inconsistent_material_is_refused(client, name, rsa_private, case):
    """The public parts a key is served with must belong to its private part: otherwise every
    signature hsmd makes fails against the JWK it publishes."""
    if case.startswith("ec"):
        jwk = h.ec_private_jwk(ec.generate_private_key(ec.SECP256R1()), "P-256")
        if case == "ec-public-of-another-key":
            other = h.ec_private_jwk(ec.generate_private_key(ec.SECP256R1()), "P-256")
            jwk.update(x=other["x"], y=other["y"])
        else:
            jwk["y"] = jwk["x"]                                   # (x, x) is not on P-256
    else:
        jwk = h.rsa_private_jwk(rsa_private)
        jwk["n"] = h.rsa_private_jwk(rsa.generate_private_key(65537, 2048))["n"]
    expect_error(client.put(f"/keys/{name}", {"key": jwk}), 400, "BadParameter")
    expect_error(client.get(f"/keys/{name}"), 404, "KeyNotFound")


def test_import_rsa_without_crt_parameters_is_refused(client, name, rsa_private):
    # Without p, q, dp, dq and qi the token cannot wrap the key, so it could never be backed up.
    jwk = {m: v for m, v in h.rsa_private_jwk(rsa_private).items() if m in ("kty", "n", "e", "d")}
    expect_error(client.put(f"/keys/{name}", {"key": jwk}), 400, "BadParameter", contains="key.p")


def test_import_rsa_1024_refused(client, name):
    small = rsa.generate_private_key(65537, 1024)
    expect_error(client.put(f"/keys/{name}", {"key": h.rsa_private_jwk(small)}), 400, "BadParameter")
