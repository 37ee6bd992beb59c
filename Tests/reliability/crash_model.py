"""What the crash harness expects of hsmd: per key name, the state that the acknowledged operations
imply, and the one operation that may have been in flight when hsmd was killed.

Each key name is used by one worker thread only, so the operations on a name form a sequence and
its expected state is exact. After a restart, the state hsmd shows must be either the state before
the in-flight operation or the state after it — never anything in between, and never a state that
loses an acknowledged operation.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import hsmdtest as h

ABSENT, ACTIVE, DELETED = "absent", "active", "deleted"

# Operations that add a version; their answer is the new version's bundle.
ADDS_VERSION = ("create-rsa", "create-ec", "create-oct", "import-rsa", "import-ec", "import-oct", "rotate")


def frozen_tags(tags: dict | None) -> tuple:
    return tuple(sorted((tags or {}).items()))


@dataclass(frozen=True)
class Version:
    """A key version as far as a crash can change it. `version` and `material` are None when an
    operation made the version but its answer never came (learnt from hsmd after the restart)."""
    version: str | None
    kty: str
    material: str | None  # RSA n, EC "crv:x:y"; always None for oct keys (they show no material)
    tags: tuple = ()

    def matches(self, seen: "Version") -> bool:
        return ((self.version is None or self.version == seen.version) and self.kty == seen.kty
                and (self.material is None or self.material == seen.material) and self.tags == seen.tags)


def version_of_bundle(bundle: dict) -> Version:
    key = bundle["key"]
    if key["kty"].startswith("RSA"):
        material = key["n"]
    elif key["kty"].startswith("EC"):
        material = f"{key['crv']}:{key['x']}:{key['y']}"
    else:
        material = None
    return Version(h.version_of(bundle), key["kty"], material, frozen_tags(bundle.get("tags")))


@dataclass(frozen=True)
class KeyState:
    status: str = ABSENT
    versions: tuple[Version, ...] = ()
    # hsmd shows a soft-deleted key's latest version only: such an observed state is not complete.
    complete: bool = True

    def matches(self, seen: "KeyState") -> bool:
        if self.status != seen.status:
            return False
        expected = self.versions if seen.complete else self.versions[-1:]
        return len(expected) == len(seen.versions) and all(e.matches(s) for e, s in zip(expected, seen.versions))

    def learn(self, seen: "KeyState") -> "KeyState":
        """This state with what only hsmd knows (ids and material of versions made in flight)."""
        if not seen.complete:
            return self
        return replace(self, versions=tuple(
            replace(e, version=s.version, material=s.material) for e, s in zip(self.versions, seen.versions)))

    def describe(self) -> str:
        parts = [f"{v.version or '?'}:{v.kty}:{(v.material or '-')[:12]}:{dict(v.tags)}" for v in self.versions]
        return f"{self.status}{'' if self.complete else ' (latest only)'} [{', '.join(parts)}]"


@dataclass
class Operation:
    """One request, and the key's state if it takes effect."""
    kind: str
    name: str
    method: str
    path: str
    body: dict | None
    after: KeyState
    extra: dict = field(default_factory=dict)  # what bookkeeping needs: a blob's versions, a digest …
    sent: bool = False  # False while the connection is not made: hsmd cannot have seen it


class Model:
    """Expected states, in-flight operations, backups and evidence, plus the journal of every
    acknowledged operation. Worker threads touch only their own names; counters are locked."""

    def __init__(self, names: list[str], journal_path: Path):
        self.states: dict[str, KeyState] = {name: KeyState() for name in names}
        self.in_flight: dict[str, Operation] = {}
        self.backups: dict[str, tuple[str, tuple[Version, ...]]] = {}
        self.evidence: dict[tuple[str, str], dict] = {}
        self.quarantined: set[str] = set()
        self.acknowledged = Counter()
        self.outcomes = Counter()  # (kind, kept|lost|not-sent|no-effect)
        self.acked_request_ids: list[str] = []
        self.problems: list[tuple[str, str]] = []  # (check, detail), found by workers
        self.epoch = 0
        self._lock = threading.Lock()
        self._journal = open(journal_path, "a", buffering=1)

    def close(self) -> None:
        self._journal.close()

    # Worker side ------------------------------------------------------------------------------

    def begin(self, op: Operation) -> None:
        self.in_flight[op.name] = op

    def acknowledge(self, op: Operation, response: h.Response) -> None:
        """A 2xx: the operation happened and must survive any crash from now on."""
        del self.in_flight[op.name]
        state = op.after
        if op.kind in ADDS_VERSION:
            made = version_of_bundle(response.json)
            if not state.versions[-1].matches(made):
                self.problem("answer", f"{op.kind} {op.name}: answered {made}, expected {state.versions[-1]}")
            state = replace(state, versions=state.versions[:-1] + (made,))
        elif op.kind in ("update", "restore"):
            answered = version_of_bundle(response.json)
            wanted = op.extra["version"] if op.kind == "update" else state.versions[-1]
            if not wanted.matches(answered):
                self.problem("answer", f"{op.kind} {op.name}: answered {answered}, expected {wanted}")
        elif op.kind == "backup":
            self.backups[op.name] = (response.json["value"], state.versions)
        self.states[op.name] = state
        with self._lock:
            self.acknowledged[op.kind] += 1
            self.acked_request_ids.append(response.headers["x-ms-request-id"])
            self._journal.write(json.dumps({
                "time": round(time.time(), 3), "epoch": self.epoch, "kind": op.kind, "name": op.name,
                "status": response.status, "request_id": response.headers["x-ms-request-id"],
                "versions": [v.version for v in state.versions], "state": state.status}) + "\n")

    def refuse(self, op: Operation, response: h.Response) -> None:
        """A non-2xx for an operation the model says is valid: hsmd and the model disagree."""
        del self.in_flight[op.name]
        self.problem("answer", f"{op.method} {op.path} ({op.kind}) in state {self.states[op.name].describe()}: {response}")
        self.quarantined.add(op.name)

    def add_evidence(self, name: str, version: str, evidence: dict) -> None:
        self.evidence[(name, version)] = evidence

    def problem(self, check: str, detail: str) -> None:
        with self._lock:
            self.problems.append((check, detail))

    # After a restart -------------------------------------------------------------------------

    def resolve(self, name: str, seen: KeyState) -> str | None:
        """Settles `name` against what hsmd shows; returns a violation, or None."""
        before = self.states[name]
        op = self.in_flight.pop(name, None)
        if op is None:
            return None if before.matches(seen) else self._diverged(name, before, seen, "no operation in flight")
        if before.matches(seen):
            no_effect = op.after == before
            self.outcomes[(op.kind, "no-effect" if no_effect else ("lost" if op.sent else "not-sent"))] += 1
            return None
        if op.after.matches(seen):
            if not op.sent:
                return self._diverged(name, before, seen, f"{op.kind} took effect though it never reached hsmd")
            self.states[name] = op.after.learn(seen)
            self.outcomes[(op.kind, "kept")] += 1
            return None
        return self._diverged(name, before, seen, f"{op.kind} in flight; all-or-nothing allows {op.after.describe()}")

    def _diverged(self, name: str, before: KeyState, seen: KeyState, why: str) -> str:
        self.quarantined.add(name)
        return f"{name}: hsmd shows {seen.describe()}; acknowledged state {before.describe()}; {why}"

    def add_name(self, name: str) -> None:
        self.states[name] = KeyState()

    def live_names(self) -> list[str]:
        return [name for name in self.states if name not in self.quarantined]
