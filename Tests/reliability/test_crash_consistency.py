"""hsmd killed with SIGKILL at random moments under a concurrent workload keeps every acknowledged
operation, keeps its token and metadata store in step, and keeps its audit chain (crash_harness.py).

Short mode by default (9 kills). Long mode: HSMD_CRASH_KILLS=N with N >= 200.
"""
import dataclasses
import json
import os

from crash_harness import CrashHarness, Settings


def test_crash_consistency_under_sigkill(report_summary):
    _run(Settings.from_environment(), report_summary, report_file=os.environ.get("HSMD_RELIABILITY_REPORT"))


def test_audit_durability_write_loses_no_acknowledged_line_to_a_crash_of_hsmd(report_summary):
    """`--audit-durability write` answers before the fsync: a killed hsmd must still have written the
    line of every answer it gave (the harness checks each acknowledged request id in the chain)."""
    settings = Settings.from_environment()
    settings = dataclasses.replace(settings, kills=max(3, settings.kills // 3), daemon_args=("--audit-durability", "write"))
    _run(settings, report_summary, report_file=None)


def _run(settings: Settings, report_summary, report_file: str | None) -> None:
    harness = CrashHarness(settings)
    summary = harness.run()
    _publish(summary, report_summary, " ".join(("hsmd crash consistency", *settings.daemon_args)), report_file)
    assert summary["kills"] > 0, "no kill happened"
    assert summary["acknowledged_total"] > 0, "no operation was acknowledged: the workload never ran"
    assert not summary["violations"], harness.failure_message()
    harness.cleanup()  # kept on failure: the state directory is the evidence


def _publish(summary: dict, report_summary, title: str, report_file: str | None) -> None:
    if report_file:
        with open(report_file, "w") as out:
            json.dump(summary, out, indent=2)
    shown = dict(summary, violations=summary["violations"][:10])
    if len(summary["violations"]) > 10:
        shown["violations_not_shown"] = len(summary["violations"]) - 10
    report_summary((title, shown))
