"""The corpus of nasty cases (corpus/*.json), replayed as ordinary regression tests.

A case is a request (method, target, body; or raw bytes) and what must come back. Every answer must also keep
issue #9's invariants (fuzzlib.check_answer) and hsmd must still serve afterwards. Cases marked "bug" are
known defects, kept as strict xfails so that the suite runs; each runs on a daemon of its own, since some of
them kill it. When a defect is fixed its case passes, the strict xfail fails the run, and the "bug" entry (and
its steering in fuzzlib.known_defect) goes.

Case fields:
  id, and one of: raw (text sent as latin-1 bytes) | raw_parts ([text, repeat] pairs) |
                  method + target + (body | body_parts | body_latin1)
  setup: requests [method, target, body] sent first (their answers only need to be sane)
  expect: status | status_in, code, inner, message_contains, closes, closes_if_400, nothing_after
  answer_within (seconds, default 15), transport ("socket" or "https"), cleanup (a target to DELETE after)
Placeholders: {unique} a fresh key/role name, {uuid} and {uuid2} fresh GUIDs, {version:NAME} / {VERSION:NAME} the
version of pool key NAME (lower / upper case).
"""
from __future__ import annotations

import json
import re
import uuid

import pytest

import fuzzlib as f

CORPUS = sorted((f.HERE / "corpus").glob("*.json"))


def _load():
    params = []
    for path in CORPUS:
        for case in json.loads(path.read_text())["cases"]:
            marks = [pytest.mark.xfail(strict=True, reason=case["bug"])] if case.get("bug") else []
            params.append(pytest.param(case, id=f"{path.stem}: {case['id']}", marks=marks))
    return params


def _substitute(text: str, daemon: f.FuzzDaemon, names: dict) -> str:
    def version(match):
        value = daemon.pool[match.group(2)]["version"]
        return value.upper() if match.group(1) == "VERSION" else value
    text = re.sub(r"\{(version|VERSION):([a-z0-9-]+)\}", version, text)
    for key, value in names.items():
        text = text.replace("{" + key + "}", value)
    return text


def _build(case: dict, daemon: f.FuzzDaemon, names: dict) -> tuple[bytes, str, str]:
    if "raw" in case or "raw_parts" in case:
        text = case["raw"] if "raw" in case else "".join(part * count for part, count in case["raw_parts"])
        data = _substitute(text, daemon, names).encode("latin-1")
        first = data.split(b"\r\n", 1)[0].split(b" ")
        return data, first[0].decode("latin-1"), first[1].decode("latin-1") if len(first) > 1 else ""
    target = _substitute(case["target"], daemon, names)
    if "body_parts" in case:
        body = "".join(_substitute(part, daemon, names) * count for part, count in case["body_parts"]).encode()
    elif "body_latin1" in case:
        body = _substitute(case["body_latin1"], daemon, names).encode("latin-1")
    elif "body" in case:
        body = _substitute(case["body"], daemon, names).encode("utf-8", "surrogatepass")
    else:
        body = None
    return f.build_request(case["method"], target, body), case["method"], target


@pytest.mark.parametrize("case", _load())
def test_corpus(case, request):
    daemon: f.FuzzDaemon = request.getfixturevalue("scratch_hsmd" if case.get("bug") else "hsmd")
    if re.search(r"fz-|\{version", json.dumps(case)):
        daemon.pool
    names = {"unique": f.unique("corpus"), "uuid": str(uuid.uuid4()), "uuid2": str(uuid.uuid4())}
    for method, target, body in case.get("setup", []):
        setup = daemon.send(method, _substitute(target, daemon, names),
                            _substitute(body, daemon, names).encode() if body is not None else None)
        assert setup.status < 500, setup.describe()
    data, method, target = _build(case, daemon, names)
    connect = daemon.connect_tls if case.get("transport") == "https" else daemon.connect
    expect = case["expect"]
    wait_close = 3.0 if (expect.get("closes") or expect.get("closes_if_400") or expect.get("nothing_after")) else None
    try:
        response = f.exchange(connect, data, timeout=case.get("answer_within", 15), method=method, wait_close=wait_close)
        _check(case, response, method, target)
    finally:
        if case.get("cleanup") and daemon.running():
            daemon.send("DELETE", _substitute(case["cleanup"], daemon, names))
        daemon.assert_alive(after=f"corpus case {case['id']!r}")


def _check(case: dict, response: f.RawResponse, method: str, target: str) -> None:
    expect, ctx = case["expect"], response.describe()
    f.check_answer(response, method=method, target=target, https=case.get("transport") == "https")
    if "status" in expect:
        assert response.status == expect["status"], f"expected {expect['status']}{ctx}"
    if "status_in" in expect:
        assert response.status in expect["status_in"], f"expected one of {expect['status_in']}{ctx}"
    if "code" in expect:
        assert f.error_code(response) == expect["code"], f"expected code {expect['code']}{ctx}"
    if "inner" in expect:
        assert (response.json["error"].get("innererror") or {}).get("code") == expect["inner"], ctx
    if "message_contains" in expect:
        assert expect["message_contains"].lower() in f.error_message(response).lower(), ctx
    if expect.get("closes") or (expect.get("closes_if_400") and response.status == 400):
        assert response.closed, f"hsmd kept the connection open after its answer{ctx}"
    if expect.get("nothing_after"):
        assert response.rest == b"", f"hsmd sent more after a closing answer: {response.rest[:300]!r}{ctx}"
