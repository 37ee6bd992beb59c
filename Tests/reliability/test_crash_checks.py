"""The crash harness's checks themselves: each one must fail on the state it exists to catch, on
the real token and audit log (a check that cannot fail proves nothing)."""
import hsmdtest as h
import crash_inspect as inspect
from crash_model import ACTIVE, DELETED, KeyState, Model, Operation, Version


def _model(tmp_path, state: KeyState) -> Model:
    model = Model(["k"], tmp_path / "journal.jsonl")
    model.states["k"] = state
    return model


V1 = Version("a" * 32, "EC-HSM", "P-256:x1:y1", ())
V2 = Version("b" * 32, "EC-HSM", "P-256:x2:y2", ())


def test_model_refuses_a_lost_acknowledged_version(tmp_path):
    model = _model(tmp_path, KeyState(ACTIVE, (V1, V2)))
    assert model.resolve("k", KeyState(ACTIVE, (V1,))) is not None
    assert "k" in model.quarantined


def test_model_refuses_changed_material_and_a_wrong_deletion_state(tmp_path):
    other_material = Version(V1.version, "EC-HSM", "P-256:x9:y9", ())
    assert _model(tmp_path, KeyState(ACTIVE, (V1,))).resolve("k", KeyState(ACTIVE, (other_material,))) is not None
    assert _model(tmp_path, KeyState(DELETED, (V1,))).resolve("k", KeyState(ACTIVE, (V1,))) is not None


def test_model_accepts_either_outcome_of_an_operation_in_flight_but_never_half(tmp_path):
    blob_versions = (V1, V2)
    for seen, accepted in [(KeyState(), True), (KeyState(ACTIVE, blob_versions), True), (KeyState(ACTIVE, (V1,)), False)]:
        model = _model(tmp_path, KeyState())
        op = Operation("restore", "k", "POST", "/keys/restore", {}, KeyState(ACTIVE, blob_versions), sent=True)
        model.begin(op)
        assert (model.resolve("k", seen) is None) == accepted, seen


def test_model_refuses_an_effect_of_a_request_that_was_never_sent(tmp_path):
    model = _model(tmp_path, KeyState(ACTIVE, (V1,)))
    model.begin(Operation("delete", "k", "DELETE", "/keys/k", None, KeyState(DELETED, (V1,)), sent=False))
    assert model.resolve("k", KeyState(DELETED, (V1,), complete=False)) is not None


def test_pairing_check_finds_a_stray_object_and_a_version_without_material(crash_daemon):
    client = crash_daemon.client
    h.ok(client.post("/keys/signer/create", {"kty": "EC-HSM", "crv": "P-256"}))
    aes = h.ok(client.post("/keys/sealer/create", {"kty": "oct-HSM", "key_size": 256}))
    assert crash_daemon.stop() == 0
    state = crash_daemon.state_dir
    clean = inspect.check_pairing(inspect.list_token_objects(state), inspect.read_metadata(state), settled=True)
    assert clean.violations == [], clean.violations

    inspect.pkcs11_tool(state, "--delete-object", "--type", "secrkey", "--id", h.version_of(aes))
    inspect.pkcs11_tool(state, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "stray", "--id", "ab" * 16)
    found = inspect.check_pairing(inspect.list_token_objects(state), inspect.read_metadata(state), settled=True)
    text = "\n".join(found.violations)
    assert f"metadata without its token objects: sealer/{h.version_of(aes)}" in text, text
    assert f"token objects without metadata: stray/{'ab' * 16} ['private', 'public']" in text, text


def test_audit_check_finds_an_edited_line(crash_daemon):
    h.ok(crash_daemon.client.post("/rng", {"count": 8}))
    assert crash_daemon.stop() == 0
    assert inspect.verify_audit(crash_daemon.state_dir) is None
    log = crash_daemon.state_dir / "audit" / "audit.log"
    lines = log.read_text().splitlines(keepends=True)
    assert '"status":200' in lines[1], lines[1]
    lines[1] = lines[1].replace('"status":200', '"status":201')
    log.write_text("".join(lines))
    assert inspect.verify_audit(crash_daemon.state_dir) is not None
