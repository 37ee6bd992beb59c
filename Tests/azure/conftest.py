"""Azure's own Python SDK (azure-keyvault-keys, azure-identity) against hsmd over HTTPS.

Run through `make test` (which builds the virtual environment), or by hand:
    python3 -m venv .venv-azure && .venv-azure/bin/pip install -r Tests/azure/requirements.txt
    .venv-azure/bin/python -m pytest Tests/azure -q
"""
import socket
import sys
import time
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from azure.identity import ClientSecretCredential

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
import hsmdtest as h  # noqa: E402

API_VERSIONS = ["2025-07-01", "7.5"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class StaticToken:
    """A TokenCredential holding one token `hsmctl token issue` made (here: POST /hsmd/tokens)."""

    def __init__(self, token: str, expires_on: int):
        self.token = AccessToken(token, expires_on)

    def get_token(self, *scopes, **kwargs):
        return self.token


class HTTPSDaemon:
    def __init__(self):
        self.port = free_port()
        self.daemon = h.Daemon("--tls-port", str(self.port)).start()
        self.url = f"https://localhost:{self.port}"
        connection = h.UnixHTTPConnection(str(self.daemon.socket_path))
        connection.request("GET", "/hsmd/ca")
        answer = connection.getresponse()
        assert answer.status == 200, answer.status
        self.ca = self.daemon.workdir / "ca.pem"
        self.ca.write_bytes(answer.read())
        connection.close()

    def token(self, principal: str) -> StaticToken:
        issued = h.ok(self.daemon.client.post("/hsmd/tokens", {"principal": principal}), 201)
        return StaticToken(issued["access_token"], int(time.time()) + issued["expires_in"])

    def client_secret_credential(self, principal: str) -> ClientSecretCredential:
        registered = h.ok(self.daemon.client.post("/hsmd/clients", {"principal": principal}), 201)
        return ClientSecretCredential(
            registered["tenant"], registered["clientId"], registered["clientSecret"], authority=self.url,
            disable_instance_discovery=True, connection_verify=str(self.ca))

    def sdk_options(self, api_version: str) -> dict:
        return {"verify_challenge_resource": False, "connection_verify": str(self.ca), "api_version": api_version}


@pytest.fixture(scope="session")
def hsmd_https():
    daemon = HTTPSDaemon()
    try:
        yield daemon
    finally:
        code = daemon.daemon.stop()
        log = daemon.daemon.log_tail()
        daemon.daemon.cleanup()
    assert code == 0, log


@pytest.fixture(scope="session", params=["static-token", "client-secret"])
def credential(request, hsmd_https):
    # The daemon runs as this test's uid, an initial administrator; tokens name it the same way.
    import os
    principal = f"uid:{os.getuid()}"
    if request.param == "static-token":
        return hsmd_https.token(principal)
    return hsmd_https.client_secret_credential(principal)


@pytest.fixture(scope="session", params=API_VERSIONS)
def api_version(request):
    return request.param
