"""Hostile-input suite (issue #9) against real hsmd daemons on real SoftHSM2 tokens.

    cd /work/main && HSMD_BIN=.build/debug/hsmd python3 -m pytest Tests/fuzz -q       # CI mode, < 3 minutes
    HSMD_FUZZ_EXAMPLES=2000 python3 -m pytest Tests/fuzz -q                          # long mode

See Tests/fuzz/README.md. HSMD_BIN and HSMCTL_BIN select the binaries (default .build/debug/).
"""
import os

import pytest
from hypothesis import HealthCheck, Phase, settings

import fuzzlib as f

# CI mode is derandomized: the same examples every run, so a red CI run is a real regression, not luck.
# Long mode (HSMD_FUZZ_EXAMPLES) explores with fresh randomness each run; HSMD_FUZZ_SEED pins it.
_common = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink])
settings.register_profile("ci", derandomize=True, **_common)
settings.register_profile("long", derandomize=False, **_common)
settings.load_profile("long" if f.long_mode() else "ci")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running")


@pytest.fixture(scope="session")
def hsmd():
    """The socket fuzzers' daemon (default settings, HTTPS on too so that /hsmd/tokens and /hsmd/ca serve).
    Restarted by FuzzDaemon.assert_alive if a case kills it."""
    yield from f.FuzzDaemon(tls=True).serving()


@pytest.fixture(scope="session")
def hsmd_https():
    """A daemon with the HTTPS listener, its CA and an administrator's bearer token (from hsmctl)."""
    yield from f.FuzzDaemon(tls=True).serving()


@pytest.fixture
def scratch_hsmd():
    """A daemon of its own for a case that may kill it (the corpus's known crashes)."""
    daemon = f.FuzzDaemon(tls=True, backtraces=False).start()
    try:
        yield daemon
    finally:
        if daemon.running():
            daemon.stop()
        daemon.cleanup()


@pytest.fixture(autouse=True)
def _daemons_survive(request):
    """After every test, each shared daemon it used must still answer GET /health."""
    yield
    for name in ("hsmd", "hsmd_https"):
        if name in request.fixturenames:
            daemon = request.getfixturevalue(name)
            daemon.assert_alive(after=f"test {request.node.nodeid}")
