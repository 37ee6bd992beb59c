"""Reliability tests of hsmd (issue #9), against the real daemon and SoftHSM2 token, from the
repository root. The daemon is .build/debug/hsmd or HSMD_BIN; hsmctl is .build/debug/hsmctl or HSMCTL_BIN.

Crash consistency (test_crash_*.py, crash_*.py; docs/RELIABILITY.md):
    python3 -m pytest Tests/reliability -q -k crash                         # short: 9 kills
    HSMD_CRASH_KILLS=200 python3 -m pytest Tests/reliability -q -k crash    # long: use N >= 200
    HSMD_RELIABILITY_REPORT=path writes the crash run's figures as JSON.
"""
import json
import sys
from pathlib import Path

import pytest

# The e2e helper (Daemon, Client, base64url, JWK conversions) is shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

SUMMARIES = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[SUMMARIES] = []


@pytest.fixture
def report_summary(request):
    """Lets a test hand its figures to the terminal summary, which pytest prints even with -q."""
    return request.config.stash[SUMMARIES].append


def pytest_terminal_summary(terminalreporter, config):
    for title, summary in config.stash.get(SUMMARIES, []):
        terminalreporter.section(title)
        terminalreporter.write_line(json.dumps(summary, indent=2))


@pytest.fixture
def crash_daemon():
    """A started hsmd on a fresh state directory, killable and restartable; removed afterwards."""
    from crash_harness import CrashDaemon

    started = CrashDaemon()
    try:
        yield started.start()
    finally:
        if started.process and started.process.poll() is None:
            started.kill()
        started.cleanup()
