"""The client side of the crash harness: worker threads that keep changing their own keys over the
Unix socket until hsmd disappears, and the requests they send."""
from __future__ import annotations

import http.client
import json
import os
import random
import threading
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import hsmdtest as h
from crash_model import ACTIVE, DELETED, KeyState, Model, Operation, Version, frozen_tags

API = "7.5"
MAX_VERSIONS = 4  # keeps the token small, so that listing it between kills stays fast
SIGN_ALG = {"P-256": "ES256", "P-384": "ES384"}


class NotSent(Exception):
    """No connection: hsmd cannot have seen the request."""


class Unanswered(Exception):
    """The request may have reached hsmd, but no answer came."""


def send(socket_path: str, method: str, path: str, body: dict | None, timeout: float = 60.0) -> h.Response:
    """One request on its own connection. Connecting is a separate step, so that a request hsmd cannot
    have seen (NotSent) is told apart from one it may have executed without answering (Unanswered)."""
    target = f"{path}?api-version={API}"
    connection = h.UnixHTTPConnection(socket_path, timeout=timeout)
    try:
        try:
            connection.connect()
        except OSError as error:
            raise NotSent(error) from error
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Accept": "application/json", **({"Content-Type": "application/json"} if data else {})}
            connection.request(method, target, body=data, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
        except (OSError, http.client.HTTPException) as error:
            raise Unanswered(error) from error
    finally:
        connection.close()
    response = h.Response(method, target, answer.status, {k.lower(): v for k, v in answer.getheaders()}, payload)
    h.check_invariants(response)
    return response


# Planning: which operation next, given the key's expected state ---------------------------------------


def plan(name: str, state: KeyState, model: Model, rng: random.Random) -> Operation:
    if state.status == ACTIVE:
        choices = {"update": 3, "delete": 2, "backup": 2, "evidence": 4}
        if len(state.versions) < MAX_VERSIONS:
            choices.update({"rotate": 3, "new-version": 2})
    elif state.status == DELETED:
        choices = {"recover": 1, "purge": 2}
    else:
        choices = {"create-ec": 3, "create-rsa": 1, "create-oct": 2, "import-ec": 2, "import-rsa": 1, "import-oct": 1}
        if name in model.backups:
            choices["restore"] = 3
    kind = rng.choices(list(choices), weights=list(choices.values()))[0]
    return PLANNERS[kind](name, state, model, rng)


def _adding(kind: str, name: str, state: KeyState, method: str, path: str, body: dict | None,
            new: Version, **extra) -> Operation:
    return Operation(kind, name, method, path, body, KeyState(ACTIVE, state.versions + (new,)), extra)


def plan_create(family: str):
    def planner(name, state, model, rng):
        body = {"rsa": {"kty": "RSA-HSM", "key_size": 2048},
                "ec": {"kty": "EC-HSM", "crv": rng.choice(list(SIGN_ALG))},
                "oct": {"kty": "oct-HSM", "key_size": 256}}[family]
        body["tags"] = {"made-by": "create"}
        new = Version(None, body["kty"], None, frozen_tags(body["tags"]))
        return _adding(f"create-{family}", name, state, "POST", f"/keys/{name}/create", body, new)
    return planner


def plan_import(family: str):
    def planner(name, state, model, rng):
        tags = {"made-by": "import"}
        if family == "rsa":
            private = rsa.generate_private_key(65537, 2048)
            jwk = h.rsa_private_jwk(private)
            material, extra = jwk["n"], {}
        elif family == "ec":
            jwk = h.ec_private_jwk(ec.generate_private_key(ec.SECP256R1()), "P-256")
            material, extra = f"P-256:{jwk['x']}:{jwk['y']}", {}
        else:
            k = os.urandom(32)
            jwk, material, extra = h.oct_jwk(k), None, {"k": k}
        new = Version(None, f"{jwk['kty']}-HSM", material, frozen_tags(tags))
        return _adding(f"import-{family}", name, state, "PUT", f"/keys/{name}", {"key": jwk, "tags": tags}, new, **extra)
    return planner


def plan_new_version(name, state, model, rng):
    family = {"RSA-HSM": "rsa", "EC-HSM": "ec", "oct-HSM": "oct"}[state.versions[-1].kty]
    return plan_create(family)(name, state, model, rng)


def plan_rotate(name, state, model, rng):
    latest = state.versions[-1]
    # A rotated version keeps the type and the tags of the current one; its material is new.
    new = Version(None, latest.kty, None, latest.tags)
    return _adding("rotate", name, state, "POST", f"/keys/{name}/rotate", None, new)


def plan_update(name, state, model, rng):
    index = rng.randrange(len(state.versions))
    target = state.versions[index]
    tags = {"generation": os.urandom(4).hex()}
    changed = replace(target, tags=frozen_tags(tags))
    versions = state.versions[:index] + (changed,) + state.versions[index + 1:]
    return Operation("update", name, "PATCH", f"/keys/{name}/{target.version}", {"tags": tags},
                     KeyState(ACTIVE, versions), {"version": changed})


def plan_status(kind: str, method: str, path: str, status: str, versions_kept: bool = True):
    def planner(name, state, model, rng):
        after = KeyState(status, state.versions if versions_kept else ())
        return Operation(kind, name, method, path.format(name=name), None, after)
    return planner


def plan_backup(name, state, model, rng):
    return Operation("backup", name, "POST", f"/keys/{name}/backup", None, state)


def plan_restore(name, state, model, rng):
    blob, versions = model.backups[name]
    return Operation("restore", name, "POST", "/keys/restore", {"value": blob}, KeyState(ACTIVE, versions))


def plan_evidence(name, state, model, rng):
    """A signature (RSA, EC) or an AES-GCM ciphertext to check after later crashes: the material
    behind the version must stay the same."""
    target = rng.choice(state.versions)
    if target.kty == "oct-HSM":
        plaintext = os.urandom(24)
        body = {"alg": "A256GCM", "value": h.b64e(plaintext)}
        return Operation("encrypt", name, "POST", f"/keys/{name}/{target.version}/encrypt", body, state,
                         {"version": target, "plaintext": plaintext})
    alg = "RS256" if target.kty == "RSA-HSM" else SIGN_ALG[target.material.split(":")[0]]
    message = os.urandom(32)
    body = {"alg": alg, "value": h.b64e(h.digest(alg, message))}
    return Operation("sign", name, "POST", f"/keys/{name}/{target.version}/sign", body, state,
                     {"version": target, "message": message, "alg": alg})


PLANNERS = {
    "create-rsa": plan_create("rsa"), "create-ec": plan_create("ec"), "create-oct": plan_create("oct"),
    "import-rsa": plan_import("rsa"), "import-ec": plan_import("ec"), "import-oct": plan_import("oct"),
    "new-version": plan_new_version, "rotate": plan_rotate, "update": plan_update,
    "delete": plan_status("delete", "DELETE", "/keys/{name}", DELETED),
    "recover": plan_status("recover", "POST", "/deletedkeys/{name}/recover", ACTIVE),
    "purge": plan_status("purge", "DELETE", "/deletedkeys/{name}", "absent", versions_kept=False),
    "backup": plan_backup, "restore": plan_restore, "evidence": plan_evidence,
}


# Evidence: what acknowledged crypto results must still satisfy after a crash -------------------------


def record_evidence(model: Model, op: Operation, response: h.Response) -> None:
    if op.kind == "import-oct":
        # The imported AES key is known here: a ciphertext made locally proves hsmd kept that key.
        made = response.json["key"]["kid"].rsplit("/", 1)[1]
        nonce, plaintext = os.urandom(12), os.urandom(24)
        sealed = AESGCM(op.extra["k"]).encrypt(nonce, plaintext, None)
        model.add_evidence(op.name, made, {"kind": "decrypt", "alg": "A256GCM", "value": h.b64e(sealed[:-16]),
                                           "iv": h.b64e(nonce), "tag": h.b64e(sealed[-16:]), "plaintext": plaintext})
    elif op.kind == "encrypt":
        answer = response.json
        model.add_evidence(op.name, op.extra["version"].version, {
            "kind": "decrypt", "alg": "A256GCM", "value": answer["value"], "iv": answer["iv"], "tag": answer["tag"],
            "plaintext": op.extra["plaintext"]})
    elif op.kind == "sign":
        version = op.extra["version"]
        jwk = jwk_of(version)
        signature = h.b64d(response.json["value"])
        try:
            h.verify_locally(jwk, op.extra["alg"], op.extra["message"], signature)
        except Exception as error:  # noqa: BLE001 - any failure means hsmd signed wrongly
            model.problem("answer", f"{op.name}/{version.version}: the signature hsmd made does not verify: {error!r}")
            return
        model.add_evidence(op.name, version.version, {
            "kind": "verify", "alg": op.extra["alg"], "digest": h.b64e(h.digest(op.extra["alg"], op.extra["message"])),
            "value": response.json["value"], "jwk": jwk})


def jwk_of(version: Version) -> dict:
    """The public JWK the model recorded for an RSA or EC version (e is AQAB for every RSA key here)."""
    if version.kty == "RSA-HSM":
        return {"kty": "RSA", "n": version.material, "e": "AQAB"}
    crv, x, y = version.material.split(":")
    return {"kty": "EC", "crv": crv, "x": x, "y": y}


# The workers -----------------------------------------------------------------------------------------


class Worker(threading.Thread):
    """Changes its own key names, one request at a time, until hsmd stops answering or `stop` is
    set. The request it was sending when hsmd died stays in flight, for the model to settle."""

    def __init__(self, names: list[str], model: Model, socket_path: str, stop: threading.Event, seed: int):
        super().__init__(daemon=True)
        self.names = names
        self.model = model
        self.socket_path = socket_path
        self.stop = stop
        self.rng = random.Random(seed)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                names = [name for name in self.names if name not in self.model.quarantined]
                if not names or not self.step(self.rng.choice(names)):
                    return
        except Exception as error:  # noqa: BLE001 - a harness fault must fail the test, not vanish with the thread
            self.model.problem("harness", f"worker crashed: {error!r}")

    def step(self, name: str) -> bool:
        """One operation; False once hsmd is gone."""
        op = plan(name, self.model.states[name], self.model, self.rng)
        self.model.begin(op)
        try:
            response = send(self.socket_path, op.method, op.path, op.body)
        except NotSent:
            return False
        except Unanswered:
            op.sent = True
            return False
        op.sent = True
        if 200 <= response.status < 300:
            self.model.acknowledge(op, response)
            record_evidence(self.model, op, response)
        else:
            self.model.refuse(op, response)
        return True
