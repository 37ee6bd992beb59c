"""KeyClient: key management through Azure's SDK, with both credentials and two api-versions."""
import datetime
import uuid

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.keyvault.keys import (
    KeyClient, KeyCurveName, KeyRotationLifetimeAction, KeyRotationPolicy, KeyRotationPolicyAction, KeyType)


def name(prefix: str = "sdk") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def keys(hsmd_https, credential, api_version) -> KeyClient:
    return KeyClient(hsmd_https.url, credential, **hsmd_https.sdk_options(api_version))


def test_create_every_key_type(keys):
    rsa = keys.create_rsa_key(name("rsa"), size=3072, hardware_protected=True)
    assert rsa.key_type == KeyType.rsa_hsm and rsa.key.n and rsa.key.e == b"\x01\x00\x01"
    for curve in (KeyCurveName.p_256, KeyCurveName.p_256_k, KeyCurveName.p_384, KeyCurveName.p_521):
        ec = keys.create_ec_key(name("ec"), curve=curve, hardware_protected=True)
        assert ec.key_type == KeyType.ec_hsm and ec.key.crv == curve
    for size in (128, 192, 256):
        oct_key = keys.create_oct_key(name("oct"), size=size, hardware_protected=True)
        assert oct_key.key_type == KeyType.oct_hsm and not oct_key.key.k


def test_get_list_versions_and_update(keys):
    key_name = name()
    first = keys.create_ec_key(key_name, curve="P-256")
    second = keys.create_ec_key(key_name, curve="P-256", tags={"team": "payments"})
    assert keys.get_key(key_name).properties.version == second.properties.version
    assert keys.get_key(key_name, first.properties.version).id == first.id
    versions = [p.version for p in keys.list_properties_of_key_versions(key_name, max_page_size=1)]
    assert versions == [first.properties.version, second.properties.version]
    assert key_name in [p.name for p in keys.list_properties_of_keys(max_page_size=2)]
    expires = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=400)
    updated = keys.update_key_properties(key_name, enabled=False, expires_on=expires, tags={"team": "risk"})
    assert updated.properties.enabled is False and updated.properties.expires_on == expires
    assert updated.properties.tags == {"team": "risk"}


def test_rotate_and_rotation_policy(keys):
    key_name = name()
    created = keys.create_rsa_key(key_name)
    policy = keys.update_key_rotation_policy(key_name, KeyRotationPolicy(
        lifetime_actions=[KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P90D")],
        expires_in="P1Y"))
    assert policy.expires_in == "P1Y"
    fetched = keys.get_key_rotation_policy(key_name)
    assert fetched.lifetime_actions[0].time_after_create == "P90D"
    rotated = keys.rotate_key(key_name)
    assert rotated.properties.version != created.properties.version
    assert rotated.properties.expires_on is not None, "expiryTime applies to rotated versions"


def test_delete_recover_and_purge_with_the_pollers(keys):
    key_name = name()
    keys.create_ec_key(key_name, curve="P-384")
    deleted = keys.begin_delete_key(key_name).result()
    assert deleted.recovery_id.endswith(f"/deletedkeys/{key_name}") and deleted.scheduled_purge_date
    assert keys.get_deleted_key(key_name).name == key_name
    assert key_name in [k.name for k in keys.list_deleted_keys()]
    recovered = keys.begin_recover_deleted_key(key_name).result()
    assert recovered.name == key_name and keys.get_key(key_name).name == key_name
    keys.begin_delete_key(key_name).wait()
    keys.purge_deleted_key(key_name)
    with pytest.raises(ResourceNotFoundError):
        keys.get_deleted_key(key_name)


def test_backup_and_restore(keys):
    key_name = name()
    original = keys.create_ec_key(key_name, curve="P-256")
    blob = keys.backup_key(key_name)
    keys.begin_delete_key(key_name).wait()
    keys.purge_deleted_key(key_name)
    restored = keys.restore_key_backup(blob)
    assert restored.id == original.id


def test_random_bytes(keys):
    assert len(keys.get_random_bytes(count=32)) == 32


def test_a_principal_without_a_role_gets_403(hsmd_https, api_version):
    stranger = KeyClient(hsmd_https.url, hsmd_https.token("nobody-with-no-role"), **hsmd_https.sdk_options(api_version))
    with pytest.raises(HttpResponseError) as refused:
        stranger.get_key("anything")
    assert refused.value.status_code == 403
    assert "ForbiddenByRbac" in str(refused.value)


def test_a_wrong_token_gets_401(hsmd_https, api_version):
    forged = hsmd_https.token("uid:0")
    header, claims, signature = forged.token.token.split(".")
    forged.token = type(forged.token)(f"{header}.{claims}.{signature[::-1]}", forged.token.expires_on)
    client = KeyClient(hsmd_https.url, forged, **hsmd_https.sdk_options(api_version))
    with pytest.raises(ClientAuthenticationError) as refused:
        client.get_key("anything")
    assert refused.value.status_code == 401
