"""hsmd killed with SIGKILL at random moments under a concurrent workload keeps every acknowledged
operation, keeps its token and metadata store in step, and keeps its audit chain (crash_harness.py).

Short mode by default (9 kills). Long mode: HSMD_CRASH_KILLS=N with N >= 200.
"""
import json
import os

from crash_harness import CrashHarness, Settings


def test_crash_consistency_under_sigkill(report_summary):
    settings = Settings.from_environment()
    harness = CrashHarness(settings)
    summary = harness.run()
    _publish(summary, report_summary)
    assert summary["kills"] > 0, "no kill happened"
    assert summary["acknowledged_total"] > 0, "no operation was acknowledged: the workload never ran"
    assert not summary["violations"], harness.failure_message()
    harness.cleanup()  # kept on failure: the state directory is the evidence


def _publish(summary: dict, report_summary) -> None:
    path = os.environ.get("HSMD_RELIABILITY_REPORT")
    if path:
        with open(path, "w") as out:
            json.dump(summary, out, indent=2)
    shown = dict(summary, violations=summary["violations"][:10])
    if len(summary["violations"]) > 10:
        shown["violations_not_shown"] = len(summary["violations"]) - 10
    report_summary(("hsmd crash consistency", shown))
