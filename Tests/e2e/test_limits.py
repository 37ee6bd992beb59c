"""The limits that protect hsmd from its callers (docs/api.md, "Limits"): oversized heads get 431,
broken framing an Azure-shaped 400, a client that does not finish its request in time 408 (or a
close when it sent nothing), connections past the limit and requests past the queue 503 with
Retry-After. After each abuse the daemon still serves."""
import json
import socket
import threading
import time

import pytest

import hsmdtest as h


def connect(daemon: h.Daemon, timeout: float = 10.0) -> socket.socket:
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.settimeout(timeout)
    raw.connect(str(daemon.socket_path))
    return raw


def read_response(raw: socket.socket) -> tuple[int, dict[str, str], dict]:
    """Reads one response off a connection that hsmd closes after it."""
    data = b""
    while True:
        chunk = raw.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(body) if body else {}


def still_serves(daemon: h.Daemon) -> None:
    assert daemon.client.get("/health", api=None).status == 200


@pytest.fixture(scope="module")
def limited():
    daemon = h.Daemon("--client-timeout-seconds", "2", "--max-connections", "4", "--max-header-bytes", "4096")
    daemon.start()
    yield daemon
    assert daemon.stop() == 0
    daemon.cleanup()


def test_oversized_head_gets_431_in_azure_shape(limited):
    raw = connect(limited)
    raw.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 5000 + b"\r\n\r\n")
    status, headers, body = read_response(raw)
    assert status == 431
    assert body["error"]["code"] == "RequestHeaderFieldsTooLarge"
    assert "4096" in body["error"]["message"]
    assert headers["x-ms-request-id"]
    still_serves(limited)


@pytest.mark.parametrize("garbage", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"GET /health HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"POST /keys/x/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
    # Asking to close does not excuse a broken body: it is answered, not left to the client timeout.
    b"POST /keys/x/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
])
def test_broken_framing_gets_400_in_azure_shape(limited, garbage):
    raw = connect(limited)
    raw.sendall(garbage)
    status, headers, body = read_response(raw)
    assert status == 400
    assert body["error"]["code"] == "BadRequest"
    assert headers["x-ms-request-id"]
    still_serves(limited)


def test_a_client_trickling_its_body_gets_408_and_the_connection_closes(limited):
    raw = connect(limited)
    raw.sendall(b"POST /keys/slow/create?api-version=7.5 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{")
    started = time.monotonic()
    status, _, body = read_response(raw)
    assert status == 408
    assert body["error"]["code"] == "RequestTimeout"
    assert time.monotonic() - started < 10
    assert limited.client.get("/keys/slow").status == 404, "a timed-out request must not have run"


def test_a_silent_connection_is_closed_after_the_client_timeout(limited):
    raw = connect(limited)
    started = time.monotonic()
    assert raw.recv(1) == b"", "hsmd must close a connection that sends nothing"
    assert 1.5 < time.monotonic() - started < 10


def test_connections_past_the_limit_are_answered_503_with_retry_after(limited):
    held = [connect(limited) for _ in range(4)]
    try:
        time.sleep(0.2)
        extra = connect(limited)
        extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(extra)
        assert status == 503
        assert body["error"]["code"] == "TooManyConnections"
        assert headers["retry-after"] == "1"
    finally:
        for raw in held:
            raw.close()
    time.sleep(0.2)
    still_serves(limited)


def test_requests_past_the_queue_are_answered_503_server_busy():
    daemon = h.Daemon("--max-pending-requests", "1")
    daemon.start()
    try:
        statuses: list[tuple[int, str | None]] = []
        lock = threading.Lock()

        def create(index: int) -> None:
            response = daemon.client.post(f"/keys/busy-{index}/create", {"kty": "RSA-HSM", "key_size": 4096})
            with lock:
                statuses.append((response.status, response.code if response.status >= 400 else None))
                if response.status == 503:
                    assert response.headers["retry-after"] == "1"

        threads = [threading.Thread(target=create, args=(index,)) for index in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(status in (200, 503) for status, _ in statuses), statuses
        assert (503, "ServerBusy") in statuses, f"six 4096-bit key generations at once must overflow a queue of one: {statuses}"
        assert any(status == 200 for status, _ in statuses)
        still_serves(daemon)
    finally:
        assert daemon.stop() == 0
        daemon.cleanup()
