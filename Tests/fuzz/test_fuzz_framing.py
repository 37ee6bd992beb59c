"""Raw HTTP/1.1 framing on the socket: request lines, methods, versions, header bombs, missing Host,
content-length that is garbage, repeated, or disagrees with the body, chunked bodies right and wrong,
pipelining, stray bytes. hsmd must answer every complete message within seconds, with a well-formed response
(or the documented bare 400 for what is not HTTP/1.1), and go on serving."""
import resource
import socket
import time

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import fuzzlib as f

T = 5.0          # seconds within which any complete message must be answered
EOL = b"\r\n"

methods = st.one_of(st.sampled_from([b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS", b"TRACE",
                                     b"CONNECT", b"get", b"Post", b"FOO", b"M-SEARCH", b"PRI", b"G\x00T", b"",
                                     b"GET GET", b"\xff\xfe", b"GE\tT"]),
                    st.binary(min_size=1, max_size=8))
targets = st.sampled_from([b"/health", b"/rng?api-version=7.6", b"/keys?api-version=7.6", b"/keys/fz-ec-p256/sign?api-version=7.6",
                           b"*", b"http://localhost/health", b"//health", b"", b"/a b", b"/%00", b"/\xc3\xa9",
                           b"/\x00", b"/health#frag", b"/keys?api-version=7.6&x=\x7f", b"health", b"/" + b"k" * 9000,
                           b"/keys?" + b"a=b&" * 3000])
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.2", b"http/1.1",
                            b"HTTP/1.1 ", b"", b"HTTP/11", b"HTTP/1.1\x00", b"HTTP/9.9"])
header_lines = st.one_of(
    st.sampled_from([b"Host: localhost", b"Host:", b"Host: \xff", b"Host: a, b", b"host: x", b"HOST: y",
                     b"Connection: close", b"Connection: keep-alive", b"Connection: upgrade", b"Connection: \x00",
                     b"Upgrade: h2c", b"Expect: 100-continue", b"Expect: garbage", b"Content-Type: text/plain",
                     b"X-Empty:", b"X-Tab:\tv", b"X-Fold: a", b" folded continuation", b"\tfolded", b"NoColon",
                     b": novalue", b"X-NUL: a\x00b", b"X-CR: a\rb", b"X-Bin: \x80\x81\xfe\xff",
                     b"Authorization: Bearer x.y.z", b"x-ms-client-request-id: \x00",
                     b"Transfer-Encoding: gzip", b"Transfer-Encoding: identity", b"Content-Encoding: gzip"]),
    st.tuples(st.binary(min_size=1, max_size=10), st.binary(max_size=20)).map(lambda t: t[0] + b": " + t[1]),
    st.integers(1000, 120000).map(lambda n: b"X-Big: " + b"a" * n),
)
bodies = st.one_of(st.just(b""), st.just(b'{"count": 4}'), st.binary(max_size=64), st.just(b'{"kty":"EC"}'))
framings = st.sampled_from(["none", "length", "length", "chunked", "chunked_bad", "length_garbage", "length_dup",
                            "length_short", "te_and_length", "length_huge"])


def chunk(body: bytes, pieces: int) -> bytes:
    out, size = b"", max(1, len(body) // max(1, pieces))
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += f"{len(part):x}".encode() + EOL + part + EOL
    return out + b"0" + EOL + EOL


@st.composite
def messages(draw):
    method, target, version = draw(methods), draw(targets), draw(versions)
    eol = draw(st.sampled_from([EOL, EOL, EOL, b"\n", b"\r"]))
    headers = draw(st.lists(header_lines, max_size=4))
    if draw(st.integers(0, 4)) > 0:
        headers.insert(0, b"Host: localhost")
    if draw(st.integers(0, 9)) == 0:
        headers += [b"X-H%d: v" % i for i in range(draw(st.sampled_from([200, 2000, 20000])))]
    body = draw(bodies)
    framing = draw(framings)
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(body))
    elif framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        body = chunk(body, draw(st.integers(1, 4)))
    elif framing == "chunked_bad":
        headers.append(b"Transfer-Encoding: chunked")
        body = draw(st.sampled_from([b"zz\r\nab\r\n0\r\n\r\n", b"-1\r\n\r\n", b"ffffffffffffffffffff\r\n", b"3\r\nabcdef\r\n0\r\n\r\n",
                                     b"0\r\nTrailer: \x00\r\n\r\n", b"1;" + b"e" * 10000 + b"\r\na\r\n0\r\n\r\n",
                                     b"0x1\r\na\r\n0\r\n\r\n", b"\r\n\r\n"]))
    elif framing == "length_garbage":
        headers.append(b"Content-Length: " + draw(st.sampled_from([b"abc", b"-1", b"+4", b"1e3", b"99999999999999999999999",
                                                                   b"", b"4 4", b"0x10", b"\xff", b"18446744073709551616"])))
    elif framing == "length_dup":
        headers += [b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 1)]
    elif framing == "length_short":
        headers.append(b"Content-Length: %d" % max(0, len(body) - draw(st.integers(1, 5))))
    elif framing == "te_and_length":
        headers += [b"Transfer-Encoding: chunked", b"Content-Length: %d" % len(body)]
        body = chunk(body, 1)
    elif framing == "length_huge":
        headers.append(b"Content-Length: %d" % draw(st.sampled_from([2**20 + 1, 2**31, 2**62])))
    head = method + b" " + target + (b" " + version if version else b"") + eol
    head += b"".join(line + eol for line in headers) + eol
    return head + body, framing


def _first_answer(daemon, data: bytes):
    sock = daemon.connect()
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass                                  # hsmd refused early and closed: fine if it answered first
    try:
        return f.read_response(sock, time.monotonic() + T, method=data.split(b" ", 1)[0].decode("latin-1"), request=data)
    except ConnectionError:
        return None                           # closed without an answer
    finally:
        sock.close()


@settings(max_examples=f.examples(300))
@given(message=messages())
def test_hostile_framing(hsmd, message):
    data, framing = message
    words = data.split(b" ")
    assume(f.known_defect(words[0].decode("latin-1"), words[1].decode("latin-1") if len(words) > 1 else "") is None)
    event(framing)
    try:
        if framing == "length_huge":
            # The body never comes: hsmd must refuse at once (413) or wait; it must not need the body to answer
            # a request it refuses, and must never crash.
            response = _first_answer_or_wait(hsmd, data)
        else:
            response = _first_answer(hsmd, data)
        if response is not None:
            event(f"status {response.status}{' bare' if f.is_bare_400(response) else ''}")
            method = data.split(b" ", 1)[0].decode("latin-1")
            target = data.split(b" ")[1].decode("latin-1") if data.count(b" ") >= 1 else ""
            f.check_answer(response, method=method, target=target, allow_bare_400=True)
        else:
            event("closed without an answer")
    finally:
        hsmd.assert_alive(after=f"framing {framing}: {data[:600]!r}")


def _first_answer_or_wait(daemon, data):
    try:
        return _first_answer(daemon, data)
    except f.Hang:
        return None


# --- valid HTTP/1.1 that hsmd must answer in the ordinary way (never the bare 400) --------------------------

VALID = {
    "chunked body": b"POST /rng?api-version=7.6 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    b"6\r\n{\"coun\r\n6\r\nt\": 4}\r\n0\r\n\r\n",
    "chunk extension and trailer": b"POST /rng?api-version=7.6 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                   b"Connection: close\r\n\r\nc;ext=1\r\n{\"count\": 4}\r\n0\r\nX-Trailer: y\r\n\r\n",
    "HTTP/1.0": b"GET /health HTTP/1.0\r\n\r\n",
    "no Host": b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
    "Expect: 100-continue": b"POST /rng?api-version=7.6 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 12\r\n"
                            b"Connection: close\r\n\r\n{\"count\": 4}",
    "header case and tabs": b"GET /health HTTP/1.1\r\nhOsT:\tx \r\nCONNECTION: close\r\n\r\n",
    "90 headers": b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(88))
                   + b"Connection: close\r\n\r\n",
    "8 KB header": b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 8000 + b"\r\nConnection: close\r\n\r\n",
    "GET with a body": b"GET /keys?api-version=7.6 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    "content-length with spaces": b"POST /rng?api-version=7.6 HTTP/1.1\r\nHost: x\r\nContent-Length:   12  \r\n"
                                  b"Connection: close\r\n\r\n{\"count\": 4}",
    "TRACE": b"TRACE /keys?api-version=7.6 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "OPTIONS *": b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "HEAD": b"HEAD /keys?api-version=7.6 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
}


@pytest.mark.parametrize("label", sorted(VALID))
def test_valid_http_gets_an_ordinary_answer(hsmd, label):
    data = VALID[label]
    response = f.exchange(hsmd.connect, data, timeout=T)
    method, target = data.split(b" ")[0].decode(), data.split(b" ")[1].decode()
    assert not f.is_bare_400(response), f"{label}: valid HTTP/1.1 answered as malformed{response.describe()}"
    f.check_answer(response, method=method, target=target)
    assert response.status < 400 or label in ("TRACE", "OPTIONS *", "HEAD"), response.describe()
    hsmd.assert_alive(after=label)


def test_pipelined_requests_are_answered_in_order(hsmd):
    requests = b"".join(f.build_request("POST", "/rng?api-version=7.6", b'{"count": %d}' % n, close=False)
                        for n in range(1, 21)) + f.build_request("GET", "/health")
    sock = hsmd.connect()
    try:
        sock.sendall(requests)
        buffered, deadline = b"", time.monotonic() + 20
        for n in range(1, 21):
            response = f.read_response(sock, deadline, buffered, method="POST", request=requests)
            buffered = response.rest
            f.check_answer(response, method="POST", target="/rng")
            assert response.status == 200 and len(f.h.b64d(response.json["value"])) == n, response.describe()
        last = f.read_response(sock, deadline, buffered, request=requests)
        assert last.status == 200 and last.json["status"] == "ok"
    finally:
        sock.close()


def test_incomplete_messages_then_half_close_do_not_hang(hsmd):
    """A client that stops half-way and half-closes: hsmd answers or closes at once."""
    for data in [b"GET /hea", b"POST /rng?api-version=7.6 HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"count\"",
                 b"POST /rng?api-version=7.6 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                 b"GET /health HTTP/1.1\r\nHost: x\r\n", b"\r\n\r\n\r\n"]:
        sock = hsmd.connect()
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            closed = f.wait_for_close(sock, T, f.RawResponse(0, "", {}, [], b"", 0))
            assert closed, f"hsmd kept a half-closed, incomplete connection open for {T}s: {data!r}"
        finally:
            sock.close()
    hsmd.assert_alive(after="incomplete messages")
