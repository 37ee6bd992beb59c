"""Hypothesis strategies for hostile input: path segments, query strings, JSON texts, base64url strings."""
from __future__ import annotations

import base64
import json
import string

from hypothesis import strategies as st

import fuzzlib as f

UNRESERVED = string.ascii_letters + string.digits + "-._~"
NAME_ALPHABET = string.ascii_letters + string.digits + "-"
LITERALS = ["keys", "deletedkeys", "rng", "health", "hsmd", "create", "sign", "verify", "encrypt", "decrypt",
            "wrapkey", "unwrapkey", "versions", "rotationpolicy", "rotate", "backup", "restore", "recover",
            "release", "attestation", "providers", "Microsoft.Authorization", "roleDefinitions", "roleAssignments",
            "whoami", "ca", "tokens", "clients", "pkcs11", "unmanaged", "adopt", "common", "discovery",
            "instance", "oauth2", "v2.0", "token", ".well-known", "openid-configuration", "KEYS", "Keys", "SIGN"]


def pct(data: bytes) -> str:
    return "".join(f"%{b:02X}" for b in data)


def encode_path_text(text: str) -> str:
    """Percent-encodes everything outside RFC 3986's unreserved characters: the target stays valid HTTP."""
    out = []
    for ch in text:
        if ch in UNRESERVED:
            out.append(ch)
        else:
            out.append(pct(ch.encode("utf-8", "surrogatepass")))
    return "".join(out)


valid_names = st.text(NAME_ALPHABET, min_size=1, max_size=12)
versions = st.one_of(
    st.text("0123456789abcdef", min_size=32, max_size=32),
    st.text("0123456789ABCDEFabcdef", min_size=31, max_size=33),
    st.just(""),
)
percent_junk = st.one_of(
    st.binary(min_size=1, max_size=6).map(pct),                               # any bytes, NULs and invalid UTF-8 too
    st.sampled_from(["%", "%%", "%z", "%1", "%zz", "%0", "%%41", "%u0041", "%C0%AF", "%E0%80%AF", "%ED%A0%80",
                     "%F4%90%80%80", "%00", "%2F", "%2f", "%5C", "%2e", "%2E%2E", "%252F", "%FF%FE"]),
)
dot_segments = st.sampled_from([".", "..", "...", "%2e", "%2e%2e", ".%2e", "%2E.", "..;", ";", "~"])
overlong = st.one_of(
    st.integers(126, 129).map(lambda n: "n" * n),
    st.sampled_from([1000, 8000]).map(lambda n: "x" * n),
)
unicode_segments = st.text(min_size=1, max_size=8).map(encode_path_text)
path_segments = st.one_of(
    st.sampled_from(LITERALS), valid_names, versions, percent_junk, dot_segments, unicode_segments, overlong,
    st.just(""),
    st.lists(st.one_of(st.sampled_from(LITERALS), valid_names, percent_junk), min_size=2, max_size=3).map("".join),
)


@st.composite
def paths(draw, names=("pz-a", "pz-b")) -> str:
    """A path made of route literals, key names, versions and hostile segments."""
    start = draw(st.sampled_from([["keys"], ["deletedkeys"], ["keys", draw(st.sampled_from(names))],
                                  ["hsmd"], ["keys", draw(valid_names)], [], ["providers", "Microsoft.Authorization"]]))
    rest = draw(st.lists(path_segments, max_size=5))
    segments = start + rest
    path = "/" + "/".join(segments)
    if draw(st.booleans()) and draw(st.booleans()):
        path = draw(st.sampled_from(["/", "//", "///"])) + path.lstrip("/")
    if draw(st.integers(0, 5)) == 0:
        path += "/"
    return path


# --------------------------------------------------------------------------------------------------
# Query strings

api_values = st.one_of(
    st.sampled_from(list(f.API_VERSIONS)),
    st.sampled_from(["", "7.3", "7.50", "07.5", "7.5%20", "%207.5", "7.5%00", "7%2E5", "7.5-preview", "2025-07-01x",
                     "2025-7-1", "latest", "%", "%zz", "7.5%26", "7.5%23x", "%37.5", "7.6%20", "7.5,7.4", "7.5;x"]),
    st.text(min_size=0, max_size=8).map(encode_path_text),
)
int_texts = st.one_of(
    st.integers(-30, 60).map(str),
    st.sampled_from(["+5", "-0", "00", "007", "1.0", "1e1", "0x10", " 5", "5 ", "1_0", "２", "١", "9" * 19, "9" * 30,
                     str(2**63 - 1), str(2**63), str(-2**63), str(-2**63 - 1), "", "NaN", "%35", "%2B5", "5%00"]),
)
position_texts = st.one_of(
    st.integers(-5, 40).map(str),
    st.sampled_from(["+1", "01", " 1", "1 ", "", "x", "1.5", str(2**31), str(2**32), str(2**62),
                     str(2**63 - 40), str(-2**63), str(2**63), "9" * 25]),
    st.integers(-2**63, 2**63 - 1).map(str),
)


def b64(data: bytes, padded: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode()
    return text if padded else text.rstrip("=")


skiptokens = st.one_of(
    position_texts.map(lambda t: b64(t.encode())),
    position_texts.map(lambda t: b64(t.encode(), padded=True)),
    st.text(min_size=0, max_size=12).map(encode_path_text),
    st.binary(max_size=12).map(b64),
)
filters = st.one_of(
    st.sampled_from(["atScope()", "ATSCOPE()", "roleName eq 'Managed HSM Crypto User'", "roleName eq '",
                     "roleName eq ''", "principalId eq 'uid:0'", "principalId eq '", "atScope() and principalId eq 'x'",
                     "principalId eq '%27'", "roleName eq 'a' or 1 eq 1", "", "'", "eq", "%27%27"]),
    st.text(max_size=20).map(encode_path_text),
)


@st.composite
def queries(draw, api_required: bool = True) -> str:
    """A query string: api-version (present, garbled, repeated, missing), maxresults, $skiptoken, $filter,
    junk parameters, odd separators."""
    pairs: list[str] = []
    api_mode = draw(st.sampled_from(["valid", "valid", "valid", "other", "missing", "dup", "case"]))
    if api_mode == "valid":
        pairs.append("api-version=" + draw(st.sampled_from(list(f.API_VERSIONS))))
    elif api_mode == "other":
        pairs.append("api-version=" + draw(api_values))
    elif api_mode == "dup":
        pairs += ["api-version=" + draw(api_values), "api-version=" + draw(api_values)]
    elif api_mode == "case":
        pairs.append(draw(st.sampled_from(["API-VERSION", "Api-Version", "api_version", "api-version%20", "api%2Dversion"]))
                     + "=" + draw(st.sampled_from(list(f.API_VERSIONS))))
    extras = draw(st.lists(st.sampled_from(["maxresults", "skip", "filter", "junk", "bare", "empty"]), max_size=4))
    for extra in extras:
        if extra == "maxresults":
            pairs.append("maxresults=" + encode_path_text(draw(int_texts)))
        elif extra == "skip":
            pairs.append(draw(st.sampled_from(["$skiptoken", "%24skiptoken", "$SKIPTOKEN"])) + "=" + draw(skiptokens))
        elif extra == "filter":
            pairs.append(draw(st.sampled_from(["$filter", "%24filter"])) + "=" + encode_path_text(draw(filters)))
        elif extra == "junk":
            pairs.append(encode_path_text(draw(st.text(max_size=6))) + "=" + encode_path_text(draw(st.text(max_size=6))))
        elif extra == "bare":
            pairs.append(draw(st.sampled_from(["api-version", "maxresults", "=", "==", "&", "a=b=c", "%", "%zz=1"])))
        else:
            pairs.append("")
    pairs = draw(st.permutations(pairs))
    separator = draw(st.sampled_from(["&", "&", "&", "&&"]))
    query = separator.join(pairs)
    return "?" + query if query or draw(st.booleans()) else ""


# --------------------------------------------------------------------------------------------------
# JSON

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
)
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)), max_leaves=12)

NUMBER_TEXTS = ["0", "-0", "1e400", "-1e400", "1e-400", "9223372036854775807", "9223372036854775808",
                "-9223372036854775808", "-9223372036854775809", "18446744073709551616", "1" + "0" * 400, "2.0", "1e1",
                "1E+2", "2.5", "0.0000001", "-1", "1.7976931348623157e308", "4.9e-324", "128.000000000000000001"]


def dumps(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def mutated_json(draw, base: dict) -> bytes:
    """`base` (a plausible body) mutated: a field retyped, dropped, nulled or added; then, sometimes, the text
    itself damaged (truncated, bytes flipped, duplicated keys, invalid UTF-8, deep nesting, odd numbers)."""
    body = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(0, 3))):
        keys = list(body) if isinstance(body, dict) else []
        action = draw(st.sampled_from(["retype", "drop", "null", "add", "nest"]))
        if action == "retype" and keys:
            body[draw(st.sampled_from(keys))] = draw(json_values)
        elif action == "drop" and keys:
            body.pop(draw(st.sampled_from(keys)))
        elif action == "null" and keys:
            body[draw(st.sampled_from(keys))] = None
        elif action == "add":
            body[draw(st.text(max_size=10))] = draw(json_values)
        elif action == "nest" and keys:
            key = draw(st.sampled_from(keys))
            body[key] = {"value": body[key]} if draw(st.booleans()) else [body[key]]
    text = dumps(body)
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "flip", "dupkey", "utf8", "deep", "number",
                                   "wrap", "garbage", "bom", "empty"]))
    if damage == "truncate" and text:
        text = text[:draw(st.integers(0, len(text) - 1))]
    elif damage == "flip" and text:
        index = draw(st.integers(0, len(text) - 1))
        text = text[:index] + bytes([draw(st.integers(0, 255))]) + text[index + 1:]
    elif damage == "dupkey" and isinstance(body, dict) and body:
        key = draw(st.sampled_from(list(body)))
        text = b"{" + dumps(key) + b":" + dumps(draw(json_values)) + b"," + text[1:] if text.startswith(b"{") else text
        if text.endswith(b"}") and draw(st.booleans()):
            text = text[:-1] + (b"," if len(body) else b"") + dumps(key) + b":" + dumps(draw(json_values)) + b"}"
    elif damage == "utf8" and text:
        index = draw(st.integers(0, len(text)))
        text = text[:index] + draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                                    b"\xc0\xaf", b"\x00", b"\\ud800", b"\\u0000"])) + text[index:]
    elif damage == "deep":
        depth = draw(st.sampled_from([64, 512, 2048, 20000, 200000]))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        inner = opener * depth + b"1" + closer * depth
        if isinstance(body, dict) and body and draw(st.booleans()):
            key = draw(st.sampled_from(list(body)))
            text = b"{" + dumps(key) + b":" + inner + b"}"
        else:
            text = inner
    elif damage == "number" and isinstance(body, dict) and body:
        key = draw(st.sampled_from(list(body)))
        text = b"{" + dumps(key) + b":" + draw(st.sampled_from(NUMBER_TEXTS)).encode() + b"}"
    elif damage == "wrap":
        text = draw(st.sampled_from([b"[" + text + b"]", b'"' + text.replace(b'"', b'\\"') + b'"', b"null", b"true",
                                     b"0", b"[]", b'""']))
    elif damage == "garbage":
        text = text + draw(st.sampled_from([b" x", b"}", b",", b"\x00", b"{}", b"\n\n", b" //c"]))
    elif damage == "bom":
        text = b"\xef\xbb\xbf" + text
    elif damage == "empty":
        text = draw(st.sampled_from([b"", b" ", b"\n", b"{", b"}"]))
    return text


# --------------------------------------------------------------------------------------------------
# base64url

@st.composite
def base64_variants(draw, data: bytes) -> str:
    """`data` in one of the spellings hsmd accepts, or damaged so that it does not decode."""
    text = b64(data)
    variant = draw(st.sampled_from(["plain", "padded", "standard", "overpad", "inner_pad", "space", "newline",
                                    "bad_char", "unicode", "truncate1", "empty", "only_pad", "percent", "mixed"]))
    if variant == "padded":
        return b64(data, padded=True)
    if variant == "standard":
        return base64.b64encode(data).decode().rstrip("=") if draw(st.booleans()) else base64.b64encode(data).decode()
    if variant == "overpad":
        return text + "=" * draw(st.integers(1, 6))
    if variant == "inner_pad" and text:
        index = draw(st.integers(0, len(text) - 1))
        return text[:index] + "=" + text[index:]
    if variant == "space":
        index = draw(st.integers(0, len(text)))
        return text[:index] + draw(st.sampled_from([" ", "\t", "\r\n", "\u00a0", "\u2028"])) + text[index:]
    if variant == "newline":
        return "\n".join(text[i:i + 8] for i in range(0, len(text), 8)) or "\n"
    if variant == "bad_char":
        index = draw(st.integers(0, len(text)))
        return text[:index] + draw(st.sampled_from(list("!.*%$#@,;:\\\"'<>?{}[]|^`~&"))) + text[index:]
    if variant == "unicode":
        index = draw(st.integers(0, len(text)))
        return text[:index] + draw(st.text(min_size=1, max_size=2).filter(lambda s: not s.isascii())) + text[index:]
    if variant == "truncate1":
        return text + "A" if len(text) % 4 == 0 else text[: len(text) - (len(text) % 4) + 1] if len(text) % 4 != 1 else text
    if variant == "empty":
        return ""
    if variant == "only_pad":
        return "=" * draw(st.integers(1, 4))
    if variant == "percent":
        return text.replace("-", "%2D") + "%3D"
    if variant == "mixed" and text:
        return "".join(c.replace("-", "+") if i % 2 else c.replace("_", "/") for i, c in enumerate(text))
    return text
