"""Bugs found by review, each pinned by the test that showed it."""
import uuid

import hsmdtest as h
from hsmdtest import expect_error, ok

P = "/providers/Microsoft.Authorization"


def test_wrap_and_unwrap_refuse_cipher_parameters(client, rsa_key):
    for operation in ("wrapkey", "unwrapkey"):
        body = {"alg": "RSA-OAEP", "value": h.b64e(b"k" * 32), "iv": h.b64e(b"i" * 16)}
        expect_error(client.op(rsa_key["key"]["kid"], operation, body), 400, "BadParameter", contains="iv, aad and tag")


def test_purge_of_an_unknown_name_is_404_even_under_purge_protection(protected_hsmd):
    expect_error(protected_hsmd.client.delete(f"/deletedkeys/{h.unique_name()}"), 404, "KeyNotFound")


def test_padding_in_the_middle_of_base64url_is_refused(client, ec_keys):
    key = next(iter(ec_keys.values()))
    expect_error(client.op(key["key"]["kid"], "sign", {"alg": "ES256", "value": "AA=A"}), 400, "BadParameter", contains="value")


def test_a_body_that_is_not_an_object_is_named(client, name):
    expect_error(client.post(f"/keys/{name}/create", [1]), 400, "BadParameter", contains="JSON object")


def test_method_not_allowed_carries_allow(client):
    response = client.request("PUT", "/keys")
    assert response.status == 405
    assert response.headers.get("allow") == "GET"


def test_a_custom_role_cannot_take_a_built_in_role_name(client):
    body = {"properties": {"roleName": "Managed HSM Crypto User",
                           "permissions": [{"dataActions": ["Microsoft.KeyVault/managedHsm/keys/read/action"]}]}}
    expect_error(client.put(f"{P}/roleDefinitions/{uuid.uuid4()}", body), 409, "Conflict")


def test_an_assignment_is_reachable_only_from_its_scope_or_above(client, name):
    ok(client.create_key(name, {"kty": "EC-HSM"}) and client.get(f"/keys/{name}"))
    assignment = str(uuid.uuid4())
    role = "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/2c18b078-7c48-4d3a-af88-5a3a1b3f82b3"
    ok(client.put(f"{P}/roleAssignments/{assignment}", {"properties": {"roleDefinitionId": role, "principalId": "uid:4343"}}), 201)
    # Through a key's scope, an assignment at / does not exist.
    expect_error(client.get(f"/keys/{name}{P}/roleAssignments/{assignment}"), 404, "RoleAssignmentNotFound")
    expect_error(client.delete(f"/keys/{name}{P}/roleAssignments/{assignment}"), 404, "RoleAssignmentNotFound")
    ok(client.get(f"{P}/roleAssignments/{assignment}"))
    ok(client.delete(f"{P}/roleAssignments/{assignment}"))
