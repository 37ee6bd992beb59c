"""Hostile query strings: api-version missing, garbled, repeated or misspelt; maxresults and $skiptoken out of
range or malformed; $filter junk; stray parameters and separators. Besides the invariants, the documented
rules are the oracle: an api-version hsmd does not serve is 400 BadParameter, a maxresults outside 1-25 is 400,
and so is a $skiptoken hsmd cannot have issued (keys and deleted keys: base64url of `after:NAME`; versions:
of a position in the list)."""
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fuzzlib as f
import strategies as S

P = f.PROVIDER
LIST_ROUTES = ["/keys", "/deletedkeys", "/keys/fz-ec-p256/versions"]
OTHER_ROUTES = [("GET", "/keys/fz-ec-p256"), ("GET", f"{P}/roleDefinitions"), ("GET", f"{P}/roleAssignments"),
                ("GET", f"/keys{P}/roleAssignments"), ("GET", f"/keys/fz-rsa{P}/roleDefinitions"),
                ("GET", "/keys/fz-aes128/rotationpolicy"), ("POST", "/rng"), ("GET", "/hsmd/whoami"),
                ("GET", "/hsmd/unmanaged"), ("GET", "/health")]


def send(daemon, method, target, body=None):
    assume(f.known_defect(method, target, body) is None)
    try:
        response = f.exchange(daemon.connect, f.build_request(method, target, body), timeout=30, method=method)
        f.check_answer(response, method=method, target=target)
    finally:
        daemon.assert_alive(after=f"{method} {target[:400]}")
    return response


def expected_api_error(query: dict) -> bool:
    return query.get("api-version") not in f.API_VERSIONS


@settings(max_examples=f.examples(200))
@given(route=st.sampled_from(LIST_ROUTES), query=S.queries())
def test_list_queries(hsmd, route, query):
    hsmd.pool  # the listed key exists
    target = route + query
    response = send(hsmd, "GET", target)
    params = f.server_query(target)
    ctx = response.describe()
    if expected_api_error(params):
        assert response.status == 400 and f.error_code(response) == "BadParameter", f"api-version{ctx}"
        assert "version" in f.error_message(response).lower(), ctx
        return
    max_results = params.get("maxresults")
    if max_results is not None and not (f.swift_int(max_results) is not None and 1 <= f.swift_int(max_results) <= 25):
        assert response.status == 400 and "maxresults" in f.error_message(response), f"maxresults{ctx}"
        return
    token = params.get("$skiptoken")
    if token is not None:
        decoded = f.server_b64decode(token)
        try:
            text = decoded.decode("utf-8") if decoded is not None else None
        except UnicodeDecodeError:
            text = None
        # Keys and deleted keys page by name (`after:NAME`, any name); versions by position in the list.
        if f.target_path(route).rstrip("/").endswith("/versions"):
            position = f.swift_int(text) if text is not None else None
            if position is None or position < 0 or response.status == 400:
                assert response.status == 400 and "skiptoken" in f.error_message(response), f"$skiptoken{ctx}"
                return
        elif text is None or not text.startswith("after:") or text == "after:":
            assert response.status == 400 and "skiptoken" in f.error_message(response), f"$skiptoken{ctx}"
            return
    assert response.status == 200, ctx
    page = response.json
    assert set(page) == {"value", "nextLink"} and isinstance(page["value"], list), ctx
    limit = f.swift_int(max_results) if max_results is not None else 25
    assert len(page["value"]) <= limit, ctx


@settings(max_examples=f.examples(120))
@given(route=st.sampled_from(OTHER_ROUTES), query=S.queries())
def test_other_queries(hsmd, route, query):
    hsmd.pool
    method, path = route
    target = path + query
    response = send(hsmd, method, target, b'{"count": 3}' if method == "POST" else None)
    params = f.server_query(target)
    if path != "/health" and path != "/hsmd/whoami" and expected_api_error(params):
        assert response.status == 400 and f.error_code(response) == "BadParameter", response.describe()
    elif path in ("/health", "/hsmd/whoami") or path.endswith("roleDefinitions") or path.endswith("roleAssignments"):
        assert response.status == 200, response.describe()


def test_last_api_version_wins(hsmd):
    """hsmd reads the last of repeated parameters (7.4 has no hsmPlatform)."""
    hsmd.pool
    response = hsmd.send("GET", "/keys/fz-ec-p256?api-version=7.6&api-version=7.4")
    assert response.status == 200 and "hsmPlatform" not in response.json["attributes"], response.describe()
    response = hsmd.send("GET", "/keys/fz-ec-p256?api-version=7.4&api-version=7.6")
    assert response.json["attributes"]["hsmPlatform"] == "2", response.describe()
    response = hsmd.send("GET", "/keys/fz-ec-p256?api-version=7.6&api-version=bogus")
    assert response.status == 400, response.describe()


@pytest.mark.parametrize("maxresults", ["0", "26", "-1", "1.5", "1e1", "0x10", "", "%zz", "9" * 30, "%EF%BC%92"])
def test_maxresults_out_of_range_is_400(hsmd, maxresults):
    response = hsmd.send("GET", f"/keys?api-version={f.API}&maxresults={maxresults}")
    assert response.status == 400 and "maxresults" in f.error_message(response), response.describe()


def test_paging_with_every_maxresults_follows_next_links(hsmd):
    """maxresults 1..25 and the nextLinks hsmd issues walk the whole list without loss or repetition."""
    hsmd.pool

    def walk(size):
        seen, target = [], f"/keys?api-version={f.API}&maxresults={size}"
        for _ in range(1_000_000):
            page = hsmd.send("GET", target).json
            assert len(page["value"]) <= size
            seen += [item["kid"] for item in page["value"]]
            if page["nextLink"] is None:
                return seen
            target = "/" + page["nextLink"].split("/", 3)[3]
        raise AssertionError("nextLink never ended")

    everything = walk(25)
    assert len(everything) == len(set(everything))
    for size in (1, 2, 7, 24):
        assert walk(size) == everything, size
