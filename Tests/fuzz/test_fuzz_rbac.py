"""Hostile role definitions and role assignments (docs/api.md, Access control): odd GUIDs in the path, scopes
with hostile key names, bodies with wrong types, empty or huge role names, data actions that are patterns,
junk or unicode, role definition ids in every spelling, principals that are empty, huge or odd. Oracles: a
name that is not a GUID is 400 on PUT; what is created can be read back and deleted; the administrator is
never locked out."""
import re
import uuid

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import fuzzlib as f
import strategies as S

P = f.PROVIDER
BUILT_IN = {"Managed HSM Administrator": "a290e904-7015-4bba-90c8-60543313cdb4",
            "Managed HSM Crypto Officer": "515eb02d-2335-4d2d-92f2-b1cbdf9c3778",
            "Managed HSM Crypto User": "21dbd100-6940-42c2-9190-5d6cb909625b",
            "Managed HSM Crypto Auditor": "2c18b078-7c48-4d3a-af88-5a3a1b3f82b3"}
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ROLE_PREFIX = "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"
DATA_ACTION = "Microsoft.KeyVault/managedHsm/"

guids = st.one_of(
    st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()), st.sampled_from(list(BUILT_IN.values())),
    st.uuids().map(lambda u: "{" + str(u) + "}"), st.uuids().map(lambda u: u.hex), st.uuids().map(lambda u: str(u)[:-1]),
    st.uuids().map(lambda u: str(u) + "0"), st.just("00000000-0000-0000-0000-000000000000"),
    st.text(max_size=12).map(S.encode_path_text), st.sampled_from(["", "%00", "..", "ffffffff-ffff-ffff-ffff-fffffffffffg"]),
)
scopes = st.one_of(st.sampled_from(["", "/keys", "/keys/rz-key", "/keys/RZ-KEY"]),
                   S.path_segments.map(lambda s: f"/keys/{s}"))
data_actions = st.one_of(
    st.sampled_from(["*", DATA_ACTION + "*", DATA_ACTION + "keys/*", DATA_ACTION + "keys/sign/action",
                     DATA_ACTION.upper() + "KEYS/SIGN/ACTION", DATA_ACTION + "keys/nothing/action", "Microsoft.*",
                     "**", "*/*", DATA_ACTION + "keys/*/action", "", " ", DATA_ACTION + "rng/action",
                     DATA_ACTION + "roleAssignments/write/action", "Microsoft.Storage/*"]),
    st.text(max_size=30),
)
role_ids = st.one_of(
    st.sampled_from(list(BUILT_IN.values())).map(lambda g: ROLE_PREFIX + g),
    st.sampled_from(list(BUILT_IN.values())),
    st.sampled_from(list(BUILT_IN.values())).map(str.upper),
    st.sampled_from(list(BUILT_IN.values())).map(lambda g: "/providers/Microsoft.Authorization/roleDefinitions/" + g),
    st.sampled_from(list(BUILT_IN.values())).map(lambda g: "Microsoft.Other/roleDefinitions/" + g),
    st.sampled_from(list(BUILT_IN.values())).map(lambda g: g + "/"),
    guids, st.text(max_size=20),
)
principals = st.one_of(
    st.sampled_from(["uid:4242", "gid:4242", "alice", "uid:0", "UID:4242", "uid:-1", "uid:99999999999999999999",
                     "uid:", "gid:", ":", "uid:4242 ", " uid:4242", "uid:4242\u0000", "x" * 256, "x" * 257, "é" * 200]),
    st.text(max_size=40),
)


@st.composite
def role_definition_bodies(draw):
    permission = {"dataActions": draw(st.lists(data_actions, max_size=3)),
                  "notDataActions": draw(st.lists(data_actions, max_size=2)),
                  "actions": draw(st.lists(st.text(max_size=10), max_size=2)), "notActions": []}
    body = {"properties": {"roleName": draw(st.one_of(st.just(f.unique("rz-role")), st.sampled_from(list(BUILT_IN)),
                                                      st.text(max_size=30), st.just("r" * 5000))),
                           "description": draw(st.one_of(st.text(max_size=30), st.just("d" * 20000))),
                           "permissions": [permission], "assignableScopes": draw(st.sampled_from(
                               [["/"], [], ["/keys"], ["/", "/"], ["/keys/x"], ["*"]]))}}
    return draw(S.mutated_json(body))


@st.composite
def role_assignment_bodies(draw):
    return draw(S.mutated_json({"properties": {"roleDefinitionId": draw(role_ids), "principalId": draw(principals)}}))


@pytest.fixture(scope="module")
def rbac(hsmd):
    hsmd.client.create_key("rz-key", {"kty": "EC-HSM"}, api=f.API)
    return hsmd


def send(daemon, method, target, body=None):
    try:
        response = f.exchange(daemon.connect, f.build_request(method, target, body), timeout=30, method=method)
        f.check_answer(response, method=method, target=target)
    finally:
        daemon.assert_alive(after=f"{method} {target} body={(body or b'')[:500]!r}")
    return response


def admin_still_works(daemon):
    response = send(daemon, "GET", f"/keys/rz-key?api-version={f.API}")
    assert response.status == 200, f"the administrator lost access:{response.describe()}"


def cleanup(daemon, created):
    for kind, target in reversed(created):
        response = send(daemon, "DELETE", target)
        assert response.status == 200, f"what PUT made could not be deleted again:{response.describe()}"


@settings(max_examples=f.examples(150))
@given(scope=scopes, name=guids, body=role_definition_bodies())
def test_hostile_role_definitions(rbac, scope, name, body):
    target = f"{scope}{P}/roleDefinitions/{name}?api-version={f.API}"
    response = send(rbac, "PUT", target, body)
    event(f"PUT {response.status}")
    created = []
    try:
        path_name = f.percent_decode(name) or name
        if response.status in (200, 201):
            created.append(("role", f"{P}/roleDefinitions/{path_name}?api-version={f.API}"))
            assert GUID_RE.match(path_name), f"a role was created under a name that is not a GUID{response.describe()}"
            stored = response.json
            assert stored["name"].lower() == path_name.lower() and stored["properties"]["type"] == "CustomRole"
            again = send(rbac, "GET", f"{P}/roleDefinitions/{path_name.upper()}?api-version={f.API}")
            assert again.status == 200 and again.json == stored, again.describe()
        elif scope in ("", "/keys", "/keys/rz-key") and not GUID_RE.match(path_name) and response.status != 404:
            assert response.status in (400, 413), response.describe()      # 413: a body over the limit
        admin_still_works(rbac)
    finally:
        cleanup(rbac, created)


@pytest.fixture(scope="module")
def custom_role(rbac):
    role = str(uuid.uuid4())
    body = {"properties": {"roleName": f.unique("rz-custom"), "permissions": [{"dataActions": [DATA_ACTION + "keys/read/action"]}]}}
    response = rbac.send("PUT", f"{P}/roleDefinitions/{role}?api-version={f.API}", S.dumps(body))
    assert response.status == 201, response.describe()
    return role


@settings(max_examples=f.examples(150))
@given(scope=scopes, name=guids, body=role_assignment_bodies(), custom=st.booleans())
def test_hostile_role_assignments(rbac, custom_role, scope, name, body, custom):
    if custom and body.startswith(b'{"properties"'):
        body = S.dumps({"properties": {"roleDefinitionId": custom_role, "principalId": "uid:777"}})
    target = f"{scope}{P}/roleAssignments/{name}?api-version={f.API}"
    assume(f.known_defect("PUT", target, body) is None)
    response = send(rbac, "PUT", target, body)
    event(f"PUT {response.status}")
    created = []
    try:
        path_name = f.percent_decode(name) or name
        if response.status in (200, 201):
            stored = response.json
            created.append(("assignment", f"{stored['id']}?api-version={f.API}"))        # where it really is
            assert GUID_RE.match(path_name), f"an assignment was made under a name that is not a GUID{response.describe()}"
            assert stored["properties"]["roleDefinitionId"].startswith(ROLE_PREFIX), response.describe()
            again = send(rbac, "GET", f"{scope}{P}/roleAssignments/{path_name}?api-version={f.API}")
            assert again.status == 200 and again.json == stored, again.describe()
            listed = send(rbac, "GET", f"{scope}{P}/roleAssignments?api-version={f.API}")
            assert any(item["name"] == stored["name"] for item in listed.json["value"]), listed.describe()
        elif not GUID_RE.match(path_name) and response.status not in (404, 405):
            assert response.status in (400, 413), response.describe()      # 413: a body over the limit
        admin_still_works(rbac)
    finally:
        cleanup(rbac, created)


@settings(max_examples=f.examples(80))
@given(scope=scopes, kind=st.sampled_from(["roleDefinitions", "roleAssignments"]), name=guids,
       method=st.sampled_from(["GET", "DELETE"]))
def test_unknown_rbac_objects(rbac, scope, kind, name, method):
    response = send(rbac, method, f"{scope}{P}/{kind}/{name}?api-version={f.API}")
    path_name = f.percent_decode(name) or name
    if path_name.lower() in BUILT_IN.values() and kind == "roleDefinitions":
        assert response.status in (200, 400, 404), response.describe()      # built-ins: readable, not deletable
    else:
        assert response.status in (400, 404, 405), response.describe()
        if response.status == 404 and GUID_RE.match(path_name):
            assert f.error_code(response) in ("RoleDefinitionNotFound", "RoleAssignmentNotFound", "NotFound"), response.describe()
    admin_still_works(rbac)


def test_limits_hold_and_clean_up(rbac):
    """51 custom roles: the 51st is refused with 400 (not 5xx); all can be deleted again."""
    made, answer = [], None
    for _ in range(55):
        role = str(uuid.uuid4())
        body = S.dumps({"properties": {"roleName": f.unique("rz-many"), "permissions": [{"dataActions": ["*"]}]}})
        answer = rbac.send("PUT", f"{P}/roleDefinitions/{role}?api-version={f.API}", body)
        if answer.status != 201:
            break
        made.append(role)
    try:
        assert answer.status == 400 and len(made) <= 50, answer.describe()
    finally:
        for role in made:
            assert rbac.send("DELETE", f"{P}/roleDefinitions/{role}?api-version={f.API}").status == 200
