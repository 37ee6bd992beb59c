"""Hostile request targets on the socket: percent-encoding (NULs, invalid UTF-8, encoded slashes), dot
segments, overlong and unicode names, empty segments, odd methods. Every answer keeps issue #9's invariants,
and the key-name rule (1-127 of [0-9a-zA-Z-], after percent-decoding) holds where a key would be made."""
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fuzzlib as f
import strategies as S

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]
BODIES = [None, b"{}", b'{"kty":"EC"}', b'{"alg":"ES256","value":"' + b"A" * 43 + b'"}', b'{"count":4}',
          b'{"value":"AAAA"}', b"[]", b"null"]
NAME_RE = re.compile(r"^[0-9A-Za-z-]{1,127}$")


@pytest.fixture(scope="module")
def path_keys(hsmd):
    # pz-* are for the free-for-all (which may delete them); pn-a is only ever read.
    for name in ("pz-a", "pz-b", "pn-a"):
        hsmd.client.create_key(name, {"kty": "EC-HSM"}, api=f.API)
    return hsmd


def send(daemon: f.FuzzDaemon, method: str, target: str, body: bytes | None) -> f.RawResponse:
    assume(f.known_defect(method, target, body) is None)
    request = f.build_request(method, target, body)
    try:
        response = f.exchange(daemon.connect, request, timeout=30, method=method)
        f.check_answer(response, method=method, target=target)
    finally:
        daemon.assert_alive(after=f"{method} {target[:300]} body={body!r}")
    return response


@settings(max_examples=f.examples(250))
@given(method=st.sampled_from(METHODS), path=S.paths(), api=st.sampled_from([f.API, "7.4", None]),
       body=st.sampled_from(BODIES))
def test_hostile_paths(path_keys, method, path, api, body):
    target = path + (f"?api-version={api}" if api else "")
    response = send(path_keys, method, target, body if method in ("POST", "PUT", "PATCH") else None)
    assert response.status != 400 or f.error_code(response) == "BadParameter", response.describe()


def _decoded_name(segment: str) -> str:
    decoded = f.percent_decode(segment)
    return segment if decoded is None else decoded


@settings(max_examples=f.examples(150))
@given(segment=S.path_segments, case=st.sampled_from(["create", "CREATE", "Create"]))
def test_name_rule_on_create(path_keys, segment, case):
    """POST /keys/{segment}/create with a valid body: 200 exactly when the decoded segment is a valid name,
    else 400 naming the name (or 404/405 when an empty segment collapses the path onto another route)."""
    target = f"/keys/{segment}/{case}?api-version={f.API}"
    response = send(path_keys, "POST", target, b'{"kty":"EC-HSM"}')
    name = _decoded_name(segment)
    if segment == "":
        assert response.status in (404, 405), response.describe()        # /keys//create is /keys/create
    elif NAME_RE.match(name):
        if response.status == 409:     # a name the free-for-all soft-deleted
            assert response.json["error"].get("innererror", {}).get("code") == "ObjectIsDeletedButRecoverable"
        else:
            assert response.status == 200, response.describe()
            assert response.json["key"]["kid"].split("/")[-2].lower() == name.lower(), response.describe()
    else:
        assert response.status == 400 and "name" in f.error_message(response).lower(), response.describe()


@settings(max_examples=f.examples(100))
@given(segment=S.path_segments)
def test_name_rule_on_get(path_keys, segment):
    """GET /keys/{segment}: an invalid name is 404 KeyNotFound, or 400 when it holds a '/' (never a 5xx);
    pn-a, in any spelling or percent-encoding, is found."""
    target = f"/keys/{segment}?api-version={f.API}"
    response = send(path_keys, "GET", target, None)
    name = _decoded_name(segment)
    if name.lower() == "pn-a":
        assert response.status == 200, response.describe()
    elif segment == "" or NAME_RE.match(name):
        assert response.status in (200, 404, 405), response.describe()     # GET /keys/ lists; names made above
    elif "/" in name:
        # A %2F would make a name (and an RBAC scope) of several segments: refused outright.
        assert response.status == 400 and f.error_code(response) == "BadParameter", response.describe()
    else:
        assert response.status in (404, 405), response.describe()
        if response.status == 404:
            assert f.error_code(response) in ("KeyNotFound", "NotFound"), response.describe()


@pytest.mark.parametrize("spelling", ["pn-a", "PN-A", "%70%6E%2D%61", "pn%2Da", "%50N-a"])
def test_percent_encoded_names_reach_the_key(path_keys, spelling):
    response = path_keys.send("GET", f"/keys/{spelling}?api-version={f.API}")
    assert response.status == 200, response.describe()


@pytest.mark.parametrize("segment", ["..", ".", "%2e%2e", "%2E", "%00", "pn-a%00", "pn-a%2F", "%2Fpn-a", "pn-a%20",
                                     "%C0%AE%C0%AE", "%FF", "%", "%zz", "n" * 128, "x" * 8000, "%F0%9F%94%91"])
def test_odd_names_are_not_found(path_keys, segment):
    response = path_keys.send("GET", f"/keys/{segment}?api-version={f.API}")
    expected = (400, "BadParameter") if "%2f" in segment.lower() else (404, "KeyNotFound")
    assert (response.status, f.error_code(response)) == expected, response.describe()
    response = path_keys.send("POST", f"/keys/{segment}/create?api-version={f.API}", b'{"kty":"EC"}')
    assert response.status == 400, response.describe()
