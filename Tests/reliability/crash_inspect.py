"""Reading a state directory behind hsmd's back: the token's objects (pkcs11-tool), the metadata
store (a copy of the SQLite file) and the audit log — and checking that they agree.

The token may be read only while hsmd is not running: SoftHSM2 corrupts a token that two processes
are logged in to (docs/pkcs11.md).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import hsmdtest as h

SOFTHSM2_MODULE = os.environ.get("SOFTHSM2_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
SERVICE_PREFIX = "hsmd."  # hsmd.domain, hsmd.token-signing: no key name can contain a dot
OBJECT_KINDS = {"private key object": "private", "public key object": "public", "secret key object": "secret",
                "data object": "data", "certificate object": "certificate"}
# pkcs11-tool starts each object with an unindented header: "Private Key Object; EC", "Data object 46".
HEADER = re.compile(r"^(\S.*?\b[Oo]bject)\b")
# The objects one key version is made of (docs/pkcs11.md).
KINDS_OF = {"rsa": {"private", "public"}, "ec": {"private", "public"}, "oct": {"secret"}}


def hsmctl_binary() -> Path:
    override = os.environ.get("HSMCTL_BIN")
    return Path(override) if override else h.REPO_ROOT / ".build" / "debug" / "hsmctl"


# The token ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenObject:
    kind: str  # private, public, secret, or the header pkcs11-tool printed
    label: str
    id: str  # CKA_ID in hex; hsmd's version


def pkcs11_tool(state_dir: Path, *args: str) -> str:
    """pkcs11-tool logged in to the state directory's token as the user; its stdout."""
    label = json.loads((state_dir / "token.json").read_text())["label"]
    pin = (state_dir / "pins" / "user.pin").read_text().strip()
    result = subprocess.run(
        ["pkcs11-tool", "--module", SOFTHSM2_MODULE, "--token-label", label, "--login", "--pin", pin, *args],
        env={**os.environ, "SOFTHSM2_CONF": str(state_dir / "softhsm2.conf")},
        capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"pkcs11-tool {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def list_token_objects(state_dir: Path) -> list[TokenObject]:
    """Every object of the state directory's token, as the user sees it after logging in."""
    return parse_object_list(pkcs11_tool(state_dir, "--list-objects"))


def parse_object_list(text: str) -> list[TokenObject]:
    """pkcs11-tool prints a header line per object, then its fields indented."""
    objects, current = [], None
    for line in text.splitlines():
        header = HEADER.match(line)
        if header:
            if current is not None:
                objects.append(TokenObject(**current))
            kind = header.group(1).lower()
            current = {"kind": OBJECT_KINDS.get(kind, kind), "label": "", "id": ""}
        elif current is not None and ":" in line:
            field, value = (part.strip() for part in line.split(":", 1))
            if field == "label":
                current["label"] = "" if value == "<empty>" else value
            elif field == "ID":
                current["id"] = value.lower()
    if current is not None:
        objects.append(TokenObject(**current))
    return objects


# The metadata store --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRow:
    name: str  # the stored spelling: the objects' CKA_LABEL
    version: str
    kty: str  # rsa, ec, oct
    state: str  # pending, active
    purging: bool
    deleted: bool


@dataclass
class Metadata:
    versions: list[VersionRow]
    empty_keys: list[str]  # key rows without any version row

    def active_versions(self, name: str) -> list[str]:
        return [row.version for row in self.versions if row.name == name and row.state == "active" and not row.purging]


def read_metadata(state_dir: Path) -> Metadata:
    """Reads a copy of the store (with its rollback journal, if a crash left one, which SQLite then
    rolls back in the copy exactly as hsmd would): the state directory is never written."""
    with tempfile.TemporaryDirectory(prefix="hsmd-meta-") as scratch:
        for source in state_dir.glob("metadata.sqlite*"):
            shutil.copy2(source, Path(scratch) / source.name)
        connection = sqlite3.connect(Path(scratch) / "metadata.sqlite")
        try:
            rows = connection.execute(
                "SELECT k.name, v.version, v.kty, v.state, k.purging, k.deleted_date IS NOT NULL "
                "FROM keys k JOIN versions v ON v.name_key = k.name_key ORDER BY k.name_key, v.seq").fetchall()
            empty = connection.execute(
                "SELECT name FROM keys k WHERE NOT EXISTS (SELECT 1 FROM versions v WHERE v.name_key = k.name_key)").fetchall()
            orphans = connection.execute(
                "SELECT name_key, version FROM versions v WHERE NOT EXISTS (SELECT 1 FROM keys k WHERE k.name_key = v.name_key)").fetchall()
        finally:
            connection.close()
    if orphans:
        raise AssertionError(f"version rows without a key row: {orphans}")
    return Metadata([VersionRow(n, v, k, s, bool(p), bool(d)) for n, v, k, s, p, d in rows], [name for (name,) in empty])


# Token against metadata ---------------------------------------------------------------------------------


@dataclass
class Pairing:
    violations: list[str]
    interrupted: list[str]  # pending rows and purging keys, with the objects they have: reconciled at start
    blank: list["TokenObject"]  # objects a kill left without label and id inside SoftHSM2: documented, counted


def check_pairing(objects: list[TokenObject], metadata: Metadata, settled: bool) -> Pairing:
    """Every active version has exactly its objects, and every key object has a row. Before
    reconciliation (`settled` False) pending rows and purging keys may have any objects; after a
    clean stop (`settled` True) there must be none of them."""
    groups: dict[tuple[str, str], set[str]] = {}
    violations, interrupted, blank = [], [], []
    for obj in objects:
        if obj.label.startswith(SERVICE_PREFIX):
            continue
        if not obj.label and not obj.id:
            # A kill inside SoftHSM2's object write leaves an object without its template: no label, no
            # id. hsmd never makes such objects and lists them as unmanaged (docs/RELIABILITY.md).
            blank.append(obj)
            continue
        if not obj.id or obj.kind not in ("private", "public", "secret"):
            violations.append(f"token object hsmd cannot have made: {obj}")
            continue
        groups.setdefault((obj.label, obj.id), set()).add(obj.kind)
    for row in metadata.versions:
        kinds = groups.pop((row.name, row.version), set())
        complete = kinds == KINDS_OF[row.kty]
        if row.state == "active" and not row.purging:
            if not complete:
                violations.append(f"metadata without its token objects: {row.name}/{row.version} ({row.kty}) has {sorted(kinds)}")
        elif settled:
            violations.append(f"{'pending row' if row.state == 'pending' else 'purging key'} after a clean stop: {row}")
        else:
            interrupted.append(f"{row.name}/{row.version} {row.state}{' purging' if row.purging else ''} "
                               f"({row.kty}) with objects {sorted(kinds)}")
    for (label, version), kinds in sorted(groups.items()):
        violations.append(f"token objects without metadata: {label}/{version} {sorted(kinds)}")
    for name in metadata.empty_keys:
        violations.append(f"key row without versions: {name}")
    return Pairing(violations, interrupted, blank)


# The audit log -----------------------------------------------------------------------------------------


def verify_audit(state_dir: Path) -> str | None:
    """`hsmctl audit verify`; a violation, or None when the chain is intact."""
    result = subprocess.run([str(hsmctl_binary()), "audit", "verify", "--dir", str(state_dir / "audit")],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        return f"hsmctl audit verify exited {result.returncode}: {result.stdout.strip()} {result.stderr.strip()}"
    return None


def audited_request_ids(state_dir: Path) -> set[str]:
    ids = set()
    for path in (state_dir / "audit").glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            try:
                ids.add(json.loads(line)["request_id"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn line; the chain check reports it if it matters
    return ids


# Repair ------------------------------------------------------------------------------------------------


def remove_blank_objects(state_dir: Path) -> list[str]:
    """Removes the object files a kill left holding only SoftHSM2's 8-byte generation counter, no
    attribute: they keep hsmd from starting (empty files do not). The operator's manual repair, used
    only to let a keep-going run continue after reporting it. Returns the files removed."""
    removed = []
    for path in sorted((state_dir / "token").glob("*/*.object")):
        size = path.stat().st_size
        if 0 < size <= 8:
            path.unlink()
            path.with_suffix(".lock").unlink(missing_ok=True)
            removed.append(f"{path.name} ({size} bytes)")
    return removed
