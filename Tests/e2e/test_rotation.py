"""Rotate and rotation policy."""
import os
import time

import pytest

import hsmdtest as h
from hsmdtest import expect_error, ok

DAY = 86_400


@pytest.mark.parametrize("body", [
    {"kty": "EC-HSM", "crv": "P-384", "key_ops": ["sign"], "tags": {"t": "1"}},
    {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["encrypt", "decrypt"]},
    {"kty": "oct-HSM", "key_size": 192, "key_ops": ["wrapKey", "unwrapKey"]},
], ids=["ec", "rsa", "oct"])
def test_rotate_makes_a_new_version_like_the_current(client, name, body):
    original = client.create_key(name, body)
    rotated = ok(client.post(f"/keys/{name}/rotate"))
    h.check_bundle(rotated, name, original["key"]["kty"], original["key"]["key_ops"])
    assert h.version_of(rotated) != h.version_of(original)
    assert rotated.get("tags") == original.get("tags")
    assert "exp" not in rotated["attributes"]                    # no policy: no expiry
    key, new = original["key"], rotated["key"]
    if key["kty"] == "EC-HSM":
        assert new["crv"] == key["crv"] and (new["x"], new["y"]) != (key["x"], key["y"])
    elif key["kty"] == "RSA-HSM":
        assert len(h.b64d(new["n"])) == len(h.b64d(key["n"])) and new["n"] != key["n"]
    else:
        # Same size: A192KW works with the new version too.
        ok(client.op(new["kid"], "wrapkey", {"alg": "A192KW", "value": h.b64e(os.urandom(16))}))
    assert ok(client.get(f"/keys/{name}")) == rotated
    assert ok(client.get(f"/keys/{name}/{h.version_of(original)}")) == original
    kids = [item["kid"] for item in h.items(client.pages(f"/keys/{name}/versions"))]
    assert kids == [original["key"]["kid"], rotated["key"]["kid"]]


def test_old_version_still_works_after_rotate(client, name):
    original = client.create_key(name, {"kty": "EC", "crv": "P-256K"})
    rotated = ok(client.post(f"/keys/{name}/rotate"))
    d = h.digest("ES256K", b"old and new")
    for bundle in (original, rotated):
        result = ok(client.op(bundle["key"]["kid"], "sign", {"alg": "ES256K", "value": h.b64e(d)}))
        assert result["kid"] == bundle["key"]["kid"]
        h.verify_locally(bundle["key"], "ES256K", b"old and new", h.b64d(result["value"]))
    # Versionless operations use the newest version.
    assert ok(client.op(name, "sign", {"alg": "ES256K", "value": h.b64e(d)}))["kid"] == rotated["key"]["kid"]


def test_rotation_policy_default(client, name):
    client.create_key(name, {"kty": "EC"})
    policy = ok(client.get(f"/keys/{name}/rotationpolicy"))
    assert policy["id"] == f"{h.AUTHORITY}/keys/{name}/rotationpolicy"
    assert policy["lifetimeActions"] == []
    assert "expiryTime" not in policy["attributes"]


@pytest.mark.parametrize("expiry,seconds", [("P90D", 90 * DAY), ("P1Y", 365 * DAY), ("PT672H", 28 * DAY),
                                            ("P4W", 28 * DAY), ("P1M", 30 * DAY)])
def test_rotation_policy_sets_exp_of_rotated_versions(client, name, expiry, seconds):
    original = client.create_key(name, {"kty": "EC"})
    body = {"lifetimeActions": [{"trigger": {"timeAfterCreate": "P90D"}, "action": {"type": "rotate"}}],
            "attributes": {"expiryTime": expiry}}
    put = ok(client.put(f"/keys/{name}/rotationpolicy", body))
    assert put["id"] == f"{h.AUTHORITY}/keys/{name}/rotationpolicy"
    assert put["lifetimeActions"] == body["lifetimeActions"]
    assert put["attributes"]["expiryTime"] == expiry
    assert isinstance(put["attributes"]["created"], int) and isinstance(put["attributes"]["updated"], int)
    assert ok(client.get(f"/keys/{name}/rotationpolicy")) == put

    before = int(time.time())
    rotated = ok(client.post(f"/keys/{name}/rotate"))
    after = int(time.time())
    assert before + seconds - 2 <= rotated["attributes"]["exp"] <= after + seconds + 2
    assert "exp" not in ok(client.get(f"/keys/{name}/{h.version_of(original)}"))["attributes"]
    # The rotated version refuses nothing yet: it is inside its window.
    ok(client.op(name, "sign", {"alg": "ES256", "value": h.b64e(bytes(32))}))


def test_rotation_policy_update_keeps_created(client, name):
    client.create_key(name, {"kty": "EC"})
    first = ok(client.put(f"/keys/{name}/rotationpolicy", {"attributes": {"expiryTime": "P60D"}}))
    second = ok(client.put(f"/keys/{name}/rotationpolicy", {
        "lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Rotate"}}],
        "attributes": {"expiryTime": "P60D"}}))
    assert second["attributes"]["created"] == first["attributes"]["created"]
    assert second["attributes"]["updated"] >= first["attributes"]["updated"]
    assert second["lifetimeActions"][0]["trigger"] == {"timeBeforeExpiry": "P30D"}
    # Clearing.
    cleared = ok(client.put(f"/keys/{name}/rotationpolicy", {}))
    assert cleared["lifetimeActions"] == [] and "expiryTime" not in cleared["attributes"]
    assert "exp" not in ok(client.post(f"/keys/{name}/rotate"))["attributes"]


def rotate(trigger, action="Rotate"):
    return {"trigger": trigger, "action": {"type": action}}


@pytest.mark.parametrize("body,mentions", [
    ({"attributes": {"expiryTime": "P27D"}}, "expiryTime"),
    ({"attributes": {"expiryTime": "PT1H"}}, "expiryTime"),
    ({"attributes": {"expiryTime": "90D"}}, "expiryTime"),
    ({"attributes": {"expiryTime": "P"}}, "expiryTime"),
    ({"attributes": {"expiryTime": "PT"}}, "expiryTime"),
    ({"attributes": {"expiryTime": "P1X"}}, "expiryTime"),
    ({"attributes": {"expiryTime": "P1H"}}, "expiryTime"),
    ({"attributes": {"expiryTime": "banana"}}, "expiryTime"),
    ({"lifetimeActions": [rotate({"timeBeforeExpiry": "P30D"}, "Notify")], "attributes": {"expiryTime": "P90D"}},
     "Notify"),
    ({"lifetimeActions": [rotate({"timeAfterCreate": "P30D"}, "Explode")]}, "action.type"),
    ({"lifetimeActions": [rotate({"timeAfterCreate": "P7D"})]}, "timeAfterCreate"),
    ({"lifetimeActions": [rotate({"timeAfterCreate": "soon"})]}, "timeAfterCreate"),
    ({"lifetimeActions": [rotate({"timeAfterCreate": "P30D"}), rotate({"timeAfterCreate": "P60D"})]},
     "lifetimeActions"),
    ({"lifetimeActions": [rotate({"timeAfterCreate": "P30D", "timeBeforeExpiry": "P30D"})]}, "trigger"),
    ({"lifetimeActions": [rotate({})]}, "trigger"),
    ({"lifetimeActions": [rotate({"timeBeforeExpiry": "P30D"})]}, "expiryTime"),
    ({"lifetimeActions": [rotate({"timeBeforeExpiry": "P60D"})], "attributes": {"expiryTime": "P80D"}},
     "timeBeforeExpiry"),
    ({"lifetimeActions": "Rotate"}, "lifetimeActions"),
    ({"lifetimeActions": [{"trigger": {"timeAfterCreate": "P30D"}}]}, "action"),
])
def test_rotation_policy_validation(client, ec_keys, body, mentions):
    name = h.kid_parts(ec_keys["P-521"]["key"]["kid"])[0]
    before = ok(client.get(f"/keys/{name}/rotationpolicy"))
    expect_error(client.put(f"/keys/{name}/rotationpolicy", body), 400, "BadParameter", contains=mentions)
    assert ok(client.get(f"/keys/{name}/rotationpolicy")) == before


def test_rotation_policy_boundaries_accepted(client, name):
    client.create_key(name, {"kty": "EC"})
    ok(client.put(f"/keys/{name}/rotationpolicy", {
        "lifetimeActions": [rotate({"timeAfterCreate": "P28D"})], "attributes": {"expiryTime": "P28D"}}))
    ok(client.put(f"/keys/{name}/rotationpolicy", {
        "lifetimeActions": [rotate({"timeBeforeExpiry": "P28D"})], "attributes": {"expiryTime": "P56D"}}))


def test_rotation_on_unknown_key(client, name):
    expect_error(client.post(f"/keys/{name}/rotate"), 404, "KeyNotFound")
    expect_error(client.get(f"/keys/{name}/rotationpolicy"), 404, "KeyNotFound")
    expect_error(client.put(f"/keys/{name}/rotationpolicy", {"attributes": {"expiryTime": "P90D"}}), 404,
                 "KeyNotFound")
