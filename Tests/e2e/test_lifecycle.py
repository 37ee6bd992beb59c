"""Soft delete, recover, purge, purge protection, name reuse while deleted."""
import os
import time

import pytest

import hsmdtest as h
from hsmdtest import expect_error, ok

DAY = 86_400


def sign_body():
    return {"alg": "ES256", "value": h.b64e(os.urandom(32))}


def check_deleted(bundle, name, retention_days=90):
    assert bundle["recoveryId"] == f"{h.AUTHORITY}/deletedkeys/{name}"
    assert isinstance(bundle["deletedDate"], int) and abs(bundle["deletedDate"] - time.time()) < 120
    assert bundle["scheduledPurgeDate"] - bundle["deletedDate"] == retention_days * DAY


def deleted_items(client):
    return {item["kid"]: item for item in h.items(client.pages("/deletedkeys?maxresults=5"))}


def test_delete_get_list_recover(client, name):
    first = client.create_key(name, {"kty": "EC", "tags": {"a": "b"}})
    latest = client.create_key(name, {"kty": "EC", "tags": {"a": "c"}})

    deleted = ok(client.delete(f"/keys/{name}"))
    h.check_bundle(deleted, name, "EC-HSM", h.EC_DEFAULT_OPS)
    assert deleted["key"] == latest["key"] and deleted["tags"] == {"a": "c"}
    check_deleted(deleted, name)

    # Gone from /keys ...
    expect_error(client.get(f"/keys/{name}"), 404, "KeyNotFound")
    expect_error(client.get(f"/keys/{name}/"), 404, "KeyNotFound")
    expect_error(client.get(f"/keys/{name}/{h.version_of(first)}"), 404, "KeyNotFound")
    expect_error(client.get(f"/keys/{name}/versions"), 404, "KeyNotFound")
    expect_error(client.op(name, "sign", sign_body()), 404, "KeyNotFound")
    expect_error(client.patch(f"/keys/{name}", {"tags": {}}), 404, "KeyNotFound")
    expect_error(client.delete(f"/keys/{name}"), 404, "KeyNotFound")
    expect_error(client.post(f"/keys/{name}/backup"), 404, "KeyNotFound")
    expect_error(client.post(f"/keys/{name}/rotate"), 404, "KeyNotFound")
    assert f"{h.AUTHORITY}/keys/{name}" not in {item["kid"] for item in h.items(client.pages("/keys"))}

    # ... and visible under /deletedkeys.
    assert ok(client.get(f"/deletedkeys/{name}")) == deleted
    listed = deleted_items(client)
    item = listed[f"{h.AUTHORITY}/keys/{name}"]
    assert set(item) <= {"kid", "attributes", "tags", "managed", "recoveryId", "deletedDate", "scheduledPurgeDate"}
    assert item["recoveryId"] == deleted["recoveryId"]
    assert item["deletedDate"] == deleted["deletedDate"]
    assert item["scheduledPurgeDate"] == deleted["scheduledPurgeDate"]

    recovered = ok(client.post(f"/deletedkeys/{name}/recover"))
    assert recovered["key"] == latest["key"]
    assert not {"recoveryId", "deletedDate", "scheduledPurgeDate"} & set(recovered)
    assert ok(client.get(f"/keys/{name}")) == recovered
    versions = h.items(client.pages(f"/keys/{name}/versions"))
    assert [v["kid"] for v in versions] == [first["key"]["kid"], latest["key"]["kid"]]
    signature = h.b64d(ok(client.op(name, "sign", {"alg": "ES256", "value": h.b64e(h.digest("ES256", b"m"))}))["value"])
    h.verify_locally(latest["key"], "ES256", b"m", signature)
    expect_error(client.get(f"/deletedkeys/{name}"), 404, "KeyNotFound")
    assert f"{h.AUTHORITY}/keys/{name}" not in deleted_items(client)


def test_delete_then_purge(client, name):
    client.create_key(name, {"kty": "oct-HSM", "key_size": 128})
    ok(client.delete(f"/keys/{name}"))
    response = client.delete(f"/deletedkeys/{name}")
    assert response.status == 204 and response.body == b"", response
    expect_error(client.get(f"/keys/{name}"), 404, "KeyNotFound")
    expect_error(client.get(f"/keys/{name}/versions"), 404, "KeyNotFound")
    expect_error(client.get(f"/deletedkeys/{name}"), 404, "KeyNotFound")
    expect_error(client.post(f"/deletedkeys/{name}/recover"), 404, "KeyNotFound")
    expect_error(client.delete(f"/deletedkeys/{name}"), 404, "KeyNotFound")
    assert f"{h.AUTHORITY}/keys/{name}" not in deleted_items(client)
    # The name is free again: a brand-new key with one version.
    fresh = client.create_key(name, {"kty": "EC"})
    assert len(h.items(client.pages(f"/keys/{name}/versions"))) == 1
    assert fresh["key"]["kty"] == "EC-HSM"


def test_recover_or_purge_an_active_key_is_404(client, ec_keys):
    name = h.kid_parts(ec_keys["P-256"]["key"]["kid"])[0]
    expect_error(client.post(f"/deletedkeys/{name}/recover"), 404, "KeyNotFound")
    expect_error(client.delete(f"/deletedkeys/{name}"), 404, "KeyNotFound")
    ok(client.get(f"/keys/{name}"))


def test_deleted_name_cannot_be_reused(client, name):
    client.create_key(name, {"kty": "EC"})
    blob = ok(client.post(f"/keys/{name}/backup"))["value"]
    ok(client.delete(f"/keys/{name}"))
    for response in (
        client.post(f"/keys/{name}/create", {"kty": "EC"}),
        client.put(f"/keys/{name}", {"key": h.oct_jwk(os.urandom(16))}),
        client.post("/keys/restore", {"value": blob}),
    ):
        expect_error(response, 409, "Conflict", inner="ObjectIsDeletedButRecoverable")
    # Also under another spelling of the name.
    expect_error(client.post(f"/keys/{name.upper()}/create", {"kty": "EC"}), 409, "Conflict",
                 inner="ObjectIsDeletedButRecoverable")
    ok(client.post(f"/deletedkeys/{name}/recover"))
    assert len(h.items(client.pages(f"/keys/{name}/versions"))) == 1


def test_list_deleted_paginates(client):
    prefix = h.unique_name("del")
    names = [f"{prefix}-{i}" for i in range(3)]
    for n in names:
        client.create_key(n, {"kty": "EC"})
        ok(client.delete(f"/keys/{n}"))
    pages = client.pages("/deletedkeys?maxresults=1")
    assert all(len(p["value"]) <= 1 for p in pages)
    for page in pages[:-1]:
        assert page["nextLink"].startswith(f"{h.AUTHORITY}/deletedkeys?")
    kids = [item["kid"] for item in h.items(pages)]
    assert len(kids) == len(set(kids))
    assert {f"{h.AUTHORITY}/keys/{n}" for n in names} <= set(kids)


# --- purge protection (separate daemon: --purge-protection --retention-days 7) ---------------------------


def test_purge_protection(protected_hsmd):
    client = protected_hsmd.client
    name = h.unique_name()
    bundle = client.create_key(name, {"kty": "EC"})
    h.check_bundle(bundle, name, "EC-HSM", retention_days=7, recovery_level="CustomizedRecoverable")
    deleted = ok(client.delete(f"/keys/{name}"))
    check_deleted(deleted, name, retention_days=7)
    expect_error(client.delete(f"/deletedkeys/{name}"), 403, "Forbidden", inner="PurgeProtected")
    # Still there, and still recoverable.
    assert ok(client.get(f"/deletedkeys/{name}"))["recoveryId"] == deleted["recoveryId"]
    recovered = ok(client.post(f"/deletedkeys/{name}/recover"))
    assert recovered["key"] == bundle["key"]
    ok(client.op(name, "sign", sign_body()))


def test_purge_protection_blocks_reuse_until_recovered(protected_hsmd):
    client = protected_hsmd.client
    name = h.unique_name()
    client.create_key(name, {"kty": "oct"})
    ok(client.delete(f"/keys/{name}"))
    expect_error(client.post(f"/keys/{name}/create", {"kty": "oct"}), 409, "Conflict",
                 inner="ObjectIsDeletedButRecoverable")
    expect_error(client.delete(f"/deletedkeys/{name}"), 403, "Forbidden", inner="PurgeProtected")
