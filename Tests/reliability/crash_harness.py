"""The crash-consistency harness (issue #9): hsmd on one state directory, worker threads changing
keys over its socket, SIGKILL at random moments, and after every kill the invariants:

1. every acknowledged operation survived, and the operation in flight at the kill happened all or
   nothing (crash_model.py);
2. the token's objects and the metadata store agree: no active version without its objects, no key
   object without a row, and after reconciliation no object hsmd does not manage;
3. the audit chain is intact, and every acknowledged request has its audit line;
4. the material behind acknowledged versions is unchanged: signatures made before a crash still
   verify in hsmd, hsmd's new signatures verify against the public key recorded before, AES
   ciphertexts still decrypt.
"""
from __future__ import annotations

import os
import random
import subprocess
import signal
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import hsmdtest as h
import crash_inspect as inspect
from crash_model import ACTIVE, DELETED, KeyState, Model, version_of_bundle
from crash_workload import SIGN_ALG, Worker, jwk_of

API = "7.5"


@dataclass
class Settings:
    kills: int
    seed: int
    workers: int = 4
    names_per_worker: int = 5
    min_delay: float = 0.2
    max_delay: float = 2.0
    keep_going: bool = False  # go on after a violation (deduplicated), to count them
    max_seconds: float | None = None  # stop killing after this long; the figures say how far it got
    daemon_args: tuple[str, ...] = ()  # hsmd's options, e.g. ("--audit-durability", "write")

    @classmethod
    def from_environment(cls) -> "Settings":
        env = os.environ
        return cls(
            kills=int(env.get("HSMD_CRASH_KILLS", "9")),
            seed=int(env.get("HSMD_CRASH_SEED", str(random.randrange(1 << 32)))),
            workers=int(env.get("HSMD_CRASH_WORKERS", "4")),
            keep_going=env.get("HSMD_CRASH_KEEP_GOING", "") not in ("", "0"),
            max_seconds=float(env["HSMD_CRASH_MAX_SECONDS"]) if env.get("HSMD_CRASH_MAX_SECONDS") else None)


class CrashDaemon(h.Daemon):
    """The e2e daemon, restartable after SIGKILL on the same state directory with the same binary
    and arguments. Daemon.start truncates its log, so each run's log is appended to hsmd-all.log."""

    def __init__(self, *args: str, binary: Path | None = None):
        super().__init__(*args, binary=binary)
        self.all_logs = self.workdir / "hsmd-all.log"

    def start(self, timeout: float = 60.0) -> "CrashDaemon":
        self._archive_log()
        return super().start(timeout)

    def kill(self) -> int | None:
        """SIGKILL; returns the exit status hsmd had already reached by itself, if any."""
        already = self.process.poll()
        if already is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._archive_log()
        return already

    def _archive_log(self) -> None:
        if self.log_path.exists():
            with open(self.all_logs, "ab") as out:
                out.write(self.log_path.read_bytes())
            self.log_path.unlink()


@dataclass
class Figures:
    kills: int = 0
    interrupted_rows: int = 0  # pending rows or purging keys found at a kill, left for reconciliation
    checks: Counter = field(default_factory=Counter)
    max_token_objects: int = 0
    failed_starts: int = 0
    blank_objects: int = 0  # objects left without label and id inside SoftHSM2 (they persist: the most seen at once)
    blank_objects_removed: int = 0  # by hsmd --check-state --repair at the end


class _Stopped(Exception):
    """The run cannot go on (hsmd does not start); the violation is recorded."""


def obj_named(where: str) -> bool:
    """An object with a label and an id; SoftHSM2 can leave objects with neither."""
    label, _, object_id = where.partition("/")
    return bool(label and object_id)


class CrashHarness:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.daemon = CrashDaemon(*settings.daemon_args)
        self.client = h.Client(str(self.daemon.socket_path), api=API)
        # Each worker owns its slots; a slot's name is replaced when it leaves the model (quarantine).
        self.slots = [[f"w{w}-k{k}" for k in range(settings.names_per_worker)] for w in range(settings.workers)]
        self.model = Model([name for slot in self.slots for name in slot], self.daemon.workdir / "journal.jsonl")
        self.figures = Figures()
        self.violations: list[dict] = []
        self._reported: set[str] = set()
        self._interrupted_at_kill: list[str] = []
        self._checked_request_ids = 0
        self.started = time.monotonic()

    # Reporting -------------------------------------------------------------------------------

    def violation(self, check: str, detail: str, key: str | None = None) -> None:
        """Records a violated invariant once: a stray object, or a version whose material is gone, is
        seen again at every later kill. `key` names the thing when `detail` varies between kills."""
        key = key or detail
        if key in self._reported:
            return
        self._reported.add(key)
        self.violations.append({"epoch": self.figures.kills, "check": check, "detail": detail})

    def _collect_worker_problems(self) -> None:
        for check, detail in self.model.problems:
            self.violation(check, detail)
        self.model.problems.clear()

    # The run ---------------------------------------------------------------------------------

    def run(self) -> dict:
        """Kills and checks until the count (or a violation) is reached; always returns the figures."""
        try:
            self.daemon.start()
            while self.figures.kills < self.settings.kills and not self._should_stop():
                self._run_until_killed()
                self._check_after_kill()
                self._restart()
                self._check_after_start()
            self._finish()
        except _Stopped:
            pass
        except Exception:  # noqa: BLE001 - an unexpected answer from hsmd ends the run, as a finding
            self.violation("harness", f"the run stopped at kill {self.figures.kills}:\n{traceback.format_exc()}")
        finally:
            self.model.close()
            if self.daemon.process and self.daemon.process.poll() is None:
                self.daemon.kill()
        return self.summary()

    def _should_stop(self) -> bool:
        if self.violations and not self.settings.keep_going:
            return True
        limit = self.settings.max_seconds
        return limit is not None and time.monotonic() - self.started > limit

    def _run_until_killed(self) -> None:
        self.model.epoch = self.figures.kills
        stop = threading.Event()
        workers = self._start_workers(stop)
        time.sleep(self.rng.uniform(self.settings.min_delay, self.settings.max_delay))
        exited = self.daemon.kill()
        if exited is not None:
            self.violation("daemon", f"hsmd exited by itself with {exited} before the kill:\n{self._log_tail()}")
        self.figures.kills += 1
        stop.set()
        for worker in workers:
            worker.join(timeout=120)
            if worker.is_alive():
                self.violation("harness", f"a worker did not stop after the kill: {worker.name}")
        self._collect_worker_problems()

    def _start_workers(self, stop: threading.Event) -> list[Worker]:
        self._replace_quarantined()
        workers = [Worker(list(names), self.model, str(self.daemon.socket_path), stop, self.rng.randrange(1 << 32))
                   for names in self.slots]
        for worker in workers:
            worker.start()
        return workers

    def _replace_quarantined(self) -> None:
        """A name the model lost track of (after a violation) gets a fresh successor, so that the
        load stays the same; its objects stay covered by the model-free token checks."""
        for names in self.slots:
            for index, name in enumerate(names):
                if name in self.model.quarantined:
                    base, _, generation = name.partition("-g")
                    names[index] = f"{base}-g{int(generation or 0) + 1}"
                    self.model.add_name(names[index])

    def _restart(self) -> None:
        try:
            self.daemon.start()
            return
        except RuntimeError as error:
            self.violation("restart", f"hsmd did not start after kill {self.figures.kills}: {error}",
                           key=f"restart {self.figures.kills}")
            self.figures.failed_starts += 1
        removed = inspect.remove_blank_objects(self.daemon.state_dir) if self.settings.keep_going else []
        if not removed:
            raise _Stopped()
        self.violation("restart", f"after kill {self.figures.kills} the token held object files with no attribute "
                                  f"(removed by hand to go on): {', '.join(removed)}")
        try:
            self.daemon.start()
        except RuntimeError as error:
            raise _Stopped() from error

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.daemon.all_logs.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"

    # Between the kill and the restart: the token and the store as hsmd left them ----------------

    def _check_after_kill(self) -> None:
        objects = inspect.list_token_objects(self.daemon.state_dir)
        metadata = inspect.read_metadata(self.daemon.state_dir)
        self.figures.max_token_objects = max(self.figures.max_token_objects, len(objects))
        pairing = inspect.check_pairing(objects, metadata, settled=False)
        for detail in pairing.violations:
            self.violation("token-metadata", detail)
        self._interrupted_at_kill = pairing.interrupted
        self.figures.interrupted_rows += len(pairing.interrupted)
        self.figures.blank_objects = max(self.figures.blank_objects, len(pairing.blank))
        self._check_acknowledged_rows(metadata)
        self.figures.checks["token listings"] += 1

    def _check_acknowledged_rows(self, metadata: inspect.Metadata) -> None:
        """An acknowledged version's row was made active before the answer: it must be there, active."""
        for name in self.model.live_names():
            state, op = self.model.states[name], self.model.in_flight.get(name)
            if state.status == "absent" or (op and op.kind == "purge" and op.sent):
                continue
            missing = [v.version for v in state.versions if v.version not in metadata.active_versions(name)]
            if missing:
                self.violation("durability", f"{name}: acknowledged versions {missing} are not active rows in the store")

    # After the restart: what hsmd shows ------------------------------------------------------------

    def _check_after_start(self) -> None:
        self._check_model()
        self._check_unmanaged()
        self._check_version_count()
        self._check_evidence()
        self._check_audit()

    def _check_model(self) -> None:
        for name in self.model.live_names():
            seen = self._observe(name)
            if seen is None:
                continue
            problem = self.model.resolve(name, seen)
            if problem:
                self.violation("acknowledged", problem)
        self.model.in_flight.clear()  # quarantined names keep nothing in flight either

    def _observe(self, name: str) -> KeyState | None:
        response = self.client.get(f"/keys/{name}")
        if response.status == 200:
            items = h.items(self.client.pages(f"/keys/{name}/versions"))
            bundles = [h.ok(self.client.get(h.path_of(item["kid"]))) for item in items]
            return KeyState(ACTIVE, tuple(version_of_bundle(b) for b in bundles))
        deleted = self.client.get(f"/deletedkeys/{name}")
        if response.status == 404 and deleted.status == 200:
            return KeyState(DELETED, (version_of_bundle(deleted.json),), complete=False)
        if response.status == 404 and deleted.status == 404:
            return KeyState()
        self.violation("acknowledged", f"{name}: unexpected answers {response} / {deleted}")
        self.model.quarantined.add(name)
        return None

    def _check_unmanaged(self) -> None:
        """After reconciliation every token object is a managed version or a service key."""
        for obj in h.ok(self.client.get("/hsmd/unmanaged"))["value"]:
            where = f"{obj['label']}/{obj['id']}"
            if not obj["label"] and not obj["id"]:
                continue  # half-written inside SoftHSM2 by a kill: listed, never used (counted at the kill)
            self.violation("token-metadata", f"unmanaged object after reconciliation: {obj['kind']} {where} "
                                             f"({obj.get('keyType', '?')}); {self._kill_context(where)}",
                           key=f"unmanaged {obj['kind']} {where}")

    def _kill_context(self, where: str) -> str:
        """What the store held for an object at the kill: the evidence of how it was left behind."""
        rows = [row for row in self._interrupted_at_kill if row.startswith(where + " ")] if obj_named(where) else []
        if rows:
            return "at the kill the store had " + "; ".join(rows)
        shown = self._interrupted_at_kill[:6]
        return "interrupted at the kill: " + ("; ".join(shown) or "nothing") + (" …" if len(self._interrupted_at_kill) > 6 else "")

    def _check_version_count(self) -> None:
        """The token index (complete key objects hsmd found at start) and the store's active
        versions must count the same: a version the index lacks cannot be used, nor purged."""
        indexed = h.ok(self.client.get("/health", api=None))["token"]["keyVersions"]
        stored = len([row for row in inspect.read_metadata(self.daemon.state_dir).versions
                      if row.state == "active" and not row.purging])
        if indexed != stored:
            self.violation("token-metadata", f"after kill {self.figures.kills} the token index holds {indexed} key "
                                             f"versions, the store {stored} active ones",
                           key=f"version-count {indexed - stored}")

    def _check_evidence(self) -> None:
        for name in self.model.live_names():
            state = self.model.states[name]
            if state.status != ACTIVE:
                continue
            for version in state.versions:
                evidence = self.model.evidence.get((name, version.version))
                if evidence:
                    self._check_one_evidence(name, version.version, evidence)
            if state.versions[-1].kty != "oct-HSM":
                self._check_fresh_signature(name, state.versions[-1])

    def _check_one_evidence(self, name: str, version: str, evidence: dict) -> None:
        path = f"/keys/{name}/{version}"
        if evidence["kind"] == "verify":
            body = {k: evidence[k] for k in ("alg", "digest", "value")}
            answer = self.client.post(f"{path}/verify", body)
            ok = answer.status == 200 and answer.json["value"] is True
        else:
            body = {k: evidence[k] for k in ("alg", "value", "iv", "tag")}
            answer = self.client.post(f"{path}/decrypt", body)
            ok = answer.status == 200 and h.b64d(answer.json["value"]) == evidence["plaintext"]
        self.figures.checks[f"evidence {evidence['kind']}"] += 1
        if not ok:
            self.violation("material", f"{name}/{version}: {evidence['kind']} of a result acknowledged before a crash fails: {answer}",
                           key=f"material {name}/{version}")

    def _check_fresh_signature(self, name: str, version) -> None:
        """The private key still matches the public key acknowledged before the crash."""
        alg = "RS256" if version.kty == "RSA-HSM" else SIGN_ALG[version.material.split(":")[0]]
        message = os.urandom(16)
        answer = self.client.post(f"/keys/{name}/{version.version}/sign", {"alg": alg, "value": h.b64e(h.digest(alg, message))})
        self.figures.checks["fresh signatures"] += 1
        try:
            h.verify_locally(jwk_of(version), alg, message, h.b64d(h.ok(answer)["value"]))
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            self.violation("material", f"{name}/{version.version}: a new signature does not verify with the acknowledged public key: {error!r} {answer}",
                           key=f"material {name}/{version.version}")

    def _check_audit(self) -> None:
        problem = inspect.verify_audit(self.daemon.state_dir)
        if problem:
            self.violation("audit", problem)
        acked = self.model.acked_request_ids[self._checked_request_ids:]
        self._checked_request_ids = len(self.model.acked_request_ids)
        missing = set(acked) - inspect.audited_request_ids(self.daemon.state_dir)
        if missing:
            self.violation("audit", f"{len(missing)} acknowledged requests have no audit line, e.g. {sorted(missing)[:3]}")
        self.figures.checks["audit verifications"] += 1

    # The end: a clean stop, after which nothing may be left for reconciliation ------------------

    def _finish(self) -> None:
        code = self.daemon.stop()
        self.daemon._archive_log()
        if code != 0:
            self.violation("daemon", f"hsmd exited with {code} after SIGTERM:\n{self._log_tail()}")
        objects = inspect.list_token_objects(self.daemon.state_dir)
        metadata = inspect.read_metadata(self.daemon.state_dir)
        for detail in inspect.check_pairing(objects, metadata, settled=True).violations:
            self.violation("token-metadata", detail)
        for name in self.model.live_names():
            self._compare_rows(name, self.model.states[name], metadata)
        problem = inspect.verify_audit(self.daemon.state_dir)
        if problem:
            self.violation("audit", problem)
        self._repair_blank_objects()

    def _repair_blank_objects(self) -> None:
        """`hsmd --check-state --repair` removes the objects a kill left without label and id (and no
        others): the pairing must come out the same but for them."""
        before = inspect.check_pairing(inspect.list_token_objects(self.daemon.state_dir),
                                       inspect.read_metadata(self.daemon.state_dir), settled=True)
        repair = subprocess.run([str(self.daemon.binary), "--state-dir", str(self.daemon.state_dir), "--check-state", "--repair"],
                                capture_output=True, text=True, timeout=300)
        if repair.returncode != 0:
            self.violation("repair", f"hsmd --check-state --repair exited {repair.returncode}:\n{repair.stdout}{repair.stderr}")
        after = inspect.check_pairing(inspect.list_token_objects(self.daemon.state_dir),
                                      inspect.read_metadata(self.daemon.state_dir), settled=True)
        # The repair removes blank *key* objects, which it can tell from a tool's by their missing material;
        # a blank data object has nothing to tell it by, so it stays (docs/state-directory.md).
        keys_left = [obj for obj in after.blank if obj.kind in ("private", "public", "secret")]
        if keys_left or after.violations != before.violations:
            self.violation("repair", f"after --repair: blank key objects {keys_left}, violations {after.violations}")
        self.figures.blank_objects_removed = len(before.blank) - len(after.blank)

    def _compare_rows(self, name: str, state: KeyState, metadata: inspect.Metadata) -> None:
        rows = [row for row in metadata.versions if row.name == name]
        expected = [v.version for v in state.versions]
        if [row.version for row in rows] != expected or any(row.deleted != (state.status == DELETED) for row in rows):
            self.violation("acknowledged", f"{name}: the store holds {rows}; acknowledged: {state.describe()}")

    # Figures ---------------------------------------------------------------------------------

    def summary(self) -> dict:
        in_flight: dict[str, dict[str, int]] = {}
        for (kind, outcome), count in sorted(self.model.outcomes.items()):
            in_flight.setdefault(kind, {})[outcome] = count
        return {
            "kills": self.figures.kills,
            "seconds": round(time.monotonic() - self.started, 1),
            "seed": self.settings.seed,
            "workers": self.settings.workers,
            "key_names": len(self.model.states),
            "acknowledged": dict(sorted(self.model.acknowledged.items())),
            "acknowledged_total": sum(self.model.acknowledged.values()),
            "in_flight_at_kill": in_flight,
            "interrupted_rows_reconciled": self.figures.interrupted_rows,
            "blank_objects_left_by_softhsm2": self.figures.blank_objects,
            "blank_objects_removed_by_repair": self.figures.blank_objects_removed,
            "max_token_objects": self.figures.max_token_objects,
            "failed_starts": self.figures.failed_starts,
            "checks": dict(sorted(self.figures.checks.items())),
            "quarantined_names": sorted(self.model.quarantined),
            "violations": self.violations,
            "state_dir": str(self.daemon.state_dir),
        }

    def failure_message(self) -> str:
        lines = [f"{len(self.violations)} invariant violation(s); state kept in {self.daemon.workdir}"]
        lines += [f"  [kill {v['epoch']}] {v['check']}: {v['detail']}" for v in self.violations[:20]]
        return "\n".join(lines)

    def cleanup(self) -> None:
        self.daemon.cleanup()
