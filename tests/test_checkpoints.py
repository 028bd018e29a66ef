"""Signed checkpoints, public verification and proofs: what needs no secret."""

import base64
import json
import os
import shutil
import time

import pytest

from ledger import Keyring, Ledger, verify_ledger
from ledger.checkpoints import checkpoint_path, stored_notes
from ledger.keys import key_check
from ledger.merkle import leaf_hash
from ledger.note import Signer
from ledger.proofs import find_request, prove_consistency, prove_entries, verify_proof
from ledger.public import verify_public
from ledger.storage import Layout, read_meta
from mrm.synthetic import stream

from .conftest import KEY, OTHER_KEY
from .helpers import write_manifest_lines, manifest_lines, read_rows, rechain, records, segment_files, write_rows

SIGNER = Signer.parse("PRIVATE+KEY+mrm-test+64b144e8+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f")


@pytest.fixture(scope="module")
def signed_keyring():
    return Keyring.from_key("test-k1", KEY).with_signer(SIGNER)


@pytest.fixture(scope="module")
def signed_template(tmp_path_factory, signed_keyring):
    path = tmp_path_factory.mktemp("signed") / "ledger"
    entries = list(stream(12, seed=5))
    with Ledger.create(path, signed_keyring, actor="test") as ledger:
        for start in range(0, len(entries), 12):
            for table, row in entries[start : start + 12]:
                ledger.log(table, row)
            ledger.seal()
    return path


@pytest.fixture
def signed(tmp_path, signed_template):
    path = tmp_path / "ledger"
    shutil.copytree(signed_template, path)
    return path


def public(path, keyring, **kw):
    return verify_public(path, keyring.verifiers(), workers=1, **kw)


def sizes(path):
    return [s for s, _ in stored_notes(Layout(path))]


def test_a_checkpoint_per_seal_and_everything_verifies(signed, signed_keyring):
    assert sizes(signed) == [r.last_seq + 1 for r in records(signed)]
    report = public(signed, signed_keyring)
    assert report.ok, report.to_text()
    assert report.checkpoint["size"] == sizes(signed)[-1] and report.entries == sizes(signed)[-1]
    note = checkpoint_path(Layout(signed), sizes(signed)[-1]).read_text()
    origin, size, root = note.split("\n")[:3]
    assert origin == f"mrm-ledger/{read_meta(Layout(signed)).ledger_id}" and int(size) == sizes(signed)[-1]
    assert base64.b64decode(root) == base64.b64decode(report.checkpoint["root"])


def test_checkpoints_written_every_t_seconds_and_on_close(tmp_path, signed_keyring):
    path = tmp_path / "ledger"
    Ledger.create(path, signed_keyring).close()
    ledger = Ledger.open(path, signed_keyring, checkpoint_interval=0.2)
    ledger.log_operation(event_type="tick", component="c", status="ok")
    deadline = time.monotonic() + 10
    while sizes(path)[-1] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sizes(path)[-1] == 2, "no checkpoint within the interval"
    ledger.log_operation(event_type="tock", component="c", status="ok")
    ledger.close()
    assert sizes(path)[-1] == 3


def test_checkpoints_every_n_entries(tmp_path, signed_keyring):
    path = tmp_path / "ledger"
    with Ledger.create(path, signed_keyring, seal_entries=10) as ledger:
        for table, row in list(stream(10, seed=1))[:35]:
            ledger.log(table, row, durable=True)
    assert len(sizes(path)) >= 4 and public(path, signed_keyring).ok


def test_truncated_tail(signed, signed_keyring):
    last = records(signed)[-1]
    for f in last.files:
        (signed / f.path).unlink()
    report = public(signed, signed_keyring)
    assert "MISSING" in report.kinds() and "TRUNCATED" in report.kinds(), report.to_text()
    assert report.first_bad_seq == last.first_seq


def test_truncated_tail_and_newest_checkpoints_deleted(signed, signed_keyring, tmp_path):
    state = tmp_path / "state.json"
    assert public(signed, signed_keyring, state_path=state).ok
    last = records(signed)[-1]
    for f in last.files:
        (signed / f.path).unlink()
    checkpoint_path(Layout(signed), last.last_seq + 1).unlink()
    write_manifest_lines(signed, manifest_lines(signed)[:-1])
    report = public(signed, signed_keyring)  # no state: the ledger's own tree still knew more
    assert "TRUNCATED" in report.kinds(), report.to_text()
    shutil.rmtree(signed / "tree")  # a thorough attacker: only the remembered state catches it
    report = public(signed, signed_keyring, state_path=state)
    assert "ROLLBACK" in report.kinds(), report.to_text()
    assert report.first_bad_seq == last.first_seq


def test_two_consecutive_checkpoints_deleted(signed, signed_keyring):
    middle = sizes(signed)[1:3]
    for size in middle:
        checkpoint_path(Layout(signed), size).unlink()
    report = public(signed, signed_keyring)
    assert report.kinds() == {"CHECKPOINT"}, report.to_text()
    assert "removed or replaced" in report.problems[0].message


def test_rollback_to_an_older_valid_checkpoint(signed, signed_keyring, tmp_path):
    state = tmp_path / "state.json"
    old = tmp_path / "old"
    shutil.copytree(signed, old)
    with Ledger.open(signed, signed_keyring) as ledger:
        ledger.log_operation(event_type="later", component="c", status="ok")
    assert public(signed, signed_keyring, state_path=state).ok
    assert json.loads(state.read_text())["size"] == sizes(signed)[-1]
    report = public(old, signed_keyring, state_path=state)
    assert report.kinds() == {"ROLLBACK"}, report.to_text()
    assert json.loads(state.read_text())["size"] == sizes(signed)[-1], "a failed verification must not move the state"


def test_two_checkpoints_of_one_size_with_different_roots(signed, signed_keyring, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(signed, other)
    rows = read_rows(segment_files(other, "model_inference")[0])
    rows[0]["decision"] = "els_note"
    write_rows(segment_files(other, "model_inference")[0], "model_inference", rows)
    # an insider re-signs a checkpoint of the same size over the edited data
    from ledger.checkpoints import build, parse as parse_checkpoint
    from ledger.hashing import segment_leaves
    from ledger.merkle import root_from_packed
    from ledger.note import Checkpoint, parse_note, sign_checkpoint
    from ledger.storage import read_segment_file

    size = sizes(other)[1]
    leaves = b"".join(segment_leaves({f.table: read_segment_file(other / f.path) for f in r.files}, read_meta(Layout(other)).ledger_id_bytes)[1] for r in records(other) if r.last_seq < size)
    original = parse_checkpoint(Checkpoint.from_text(parse_note(checkpoint_path(Layout(other), size).read_bytes()).text))
    forged = Checkpoint(original.checkpoint.origin, size, root_from_packed(leaves), original.checkpoint.extensions)
    note = sign_checkpoint(forged, [SIGNER])
    report = public(signed, signed_keyring, extra_checkpoints=[note])
    assert report.kinds() == {"FORK"}, report.to_text()
    assert report.first_bad_seq == size


def test_checkpoint_signed_by_an_unknown_key(signed, signed_keyring):
    from ledger.note import Checkpoint, parse_note, sign_checkpoint

    size = sizes(signed)[-1]
    path = checkpoint_path(Layout(signed), size)
    text = parse_note(path.read_bytes()).text
    path.write_bytes(sign_checkpoint(Checkpoint.from_text(text), [Signer.generate("intruder")]))
    report = public(signed, signed_keyring)
    assert "KEY" in report.kinds(), report.to_text()
    assert any("signed by no trusted key" in p.message for p in report.problems)


def test_rekeyed_rechained_ledger_against_earlier_checkpoints(signed, signed_keyring):
    ledger_id = read_meta(Layout(signed)).ledger_id_bytes
    target = read_rows(segment_files(signed, "model_inference")[1])[2]["seq"]

    def forge(r):
        if r["seq"] == 0:
            details = json.loads(r["details"])
            details["key_check"] = key_check(OTHER_KEY, ledger_id)
            return {"details": json.dumps(details, separators=(",", ":"), sort_keys=True)}
        if r["seq"] == target:
            return {"decision": "els_note"}
        return {}

    rechain(signed, "test-k1", OTHER_KEY, modify=forge)
    report = public(signed, signed_keyring)
    assert "CHECKPOINT" in report.kinds(), report.to_text()
    # the stored tree still matches the signatures, so the first changed entry is named
    assert report.first_bad_seq == 0
    assert any(p.kind == "CHECKPOINT" and "do not hash to the root" in p.message for p in report.problems)


def test_edited_entry_is_located_through_the_tree(signed, signed_keyring):
    f = segment_files(signed, "guardrail")[1]
    rows = read_rows(f)
    rows[1]["gate"] = "relaxed_gate"
    write_rows(f, "guardrail", rows)
    report = public(signed, signed_keyring)
    assert {"FILE", "CHECKPOINT"} <= report.kinds(), report.to_text()
    assert report.first_bad_seq == rows[1]["seq"]
    # Every later root covers the edited entry: one line for them, not one per checkpoint.
    failing = [s for s in sizes(signed) if s > rows[1]["seq"]]
    checkpoint_problems = [p for p in report.problems if p.kind == "CHECKPOINT"]
    assert [p.seq for p in checkpoint_problems] == [rows[1]["seq"]] * 2, report.to_text()
    assert f"the root signed for size {failing[0]}" in checkpoint_problems[0].message
    assert (f"nor to the roots signed for the {len(failing) - 1} later checkpoint(s), sizes {failing[1]} to {failing[-1]}"
            in checkpoint_problems[1].message)


# ------------------------------------------------------------------------------------ proofs


def test_inclusion_proof_for_a_request_verifies_offline(signed, signed_keyring):
    request_id = read_rows(segment_files(signed, "model_inference")[1])[0]["request_id"]
    seqs = find_request(signed, request_id)
    assert len(seqs) == 4
    doc = json.loads(json.dumps(prove_entries(signed, seqs)))
    report = verify_proof(doc, signed_keyring.verifiers())
    assert report.ok, report.to_dict()
    assert [e["table"] for e in doc["entries"]] == ["data_access", "model_inference", "attribution", "guardrail"]
    hashes = doc["entries"][0]["inclusion"]["hashes"]
    assert len(base64.b64decode("".join(hashes))) <= 32 * 64


def _mutations():
    def entry(d):
        d["entries"][0]["entry"]["decision"] = "els_note"

    def canonical(d):  # with its leaf hash made to match: the bytes no longer are the entry shown
        raw = bytearray(base64.b64decode(d["entries"][0]["canonical"]))
        raw[-3] ^= 1
        d["entries"][0]["canonical"] = base64.b64encode(bytes(raw)).decode()
        d["entries"][0]["leaf_hash"] = base64.b64encode(leaf_hash(bytes(raw))).decode()

    def index(d):
        d["entries"][0]["inclusion"]["index"] += 1

    def size_doubled(d):
        d["entries"][0]["inclusion"]["size"] *= 2

    def size_halved(d):
        d["entries"][0]["inclusion"]["size"] //= 2

    def flipped_hash(d):
        h = bytearray(base64.b64decode(d["entries"][0]["inclusion"]["hashes"][0]))
        h[0] ^= 0x80
        d["entries"][0]["inclusion"]["hashes"][0] = base64.b64encode(bytes(h)).decode()

    def hash_added(d):
        d["entries"][0]["inclusion"]["hashes"].append(d["entries"][0]["inclusion"]["hashes"][0])

    def hash_removed(d):
        d["entries"][0]["inclusion"]["hashes"].pop()

    def checkpoint_edited(d):
        d["checkpoint"] = d["checkpoint"].replace("\n", "\n ", 1)

    def other_ledger(d):
        d["ledger_id"] = "f" * 32

    return [entry, canonical, index, size_doubled, size_halved, flipped_hash, hash_added, hash_removed, checkpoint_edited, other_ledger]


@pytest.mark.parametrize("mutate", _mutations(), ids=lambda f: f.__name__)
def test_corrupted_proofs_are_rejected(signed, signed_keyring, mutate):
    doc = prove_entries(signed, [5])
    assert verify_proof(doc, signed_keyring.verifiers()).ok
    broken = json.loads(json.dumps(doc))
    mutate(broken)
    report = verify_proof(broken, signed_keyring.verifiers())
    assert not report.ok and report.problems


def test_proof_needs_a_trusted_key(signed, signed_keyring):
    doc = prove_entries(signed, [3])
    report = verify_proof(doc, [Signer.generate("stranger").verifier()])
    assert not report.ok and "UnverifiedNoteError" in report.problems[0]


def test_consistency_proofs(signed, signed_keyring):
    old, new = sizes(signed)[1], sizes(signed)[-1]
    doc = prove_consistency(signed, old, new)
    assert verify_proof(doc, signed_keyring.verifiers()).ok
    broken = json.loads(json.dumps(doc))
    broken["consistency"]["hashes"] = broken["consistency"]["hashes"][:-1]
    assert not verify_proof(broken, signed_keyring.verifiers()).ok
    swapped = dict(doc, old_checkpoint=doc["new_checkpoint"], new_checkpoint=doc["old_checkpoint"])
    assert not verify_proof(swapped, signed_keyring.verifiers()).ok


def test_rfc3161_timestamp_on_checkpoints(tmp_path, signed_keyring):
    from .test_timestamp import make_ca, make_response, make_tsa
    from cryptography.hazmat.primitives import hashes as _

    ca_key, ca = make_ca("test tsa root")
    tsa_key, tsa = make_tsa(ca_key, ca)

    def local_tsa(request):
        return make_response(tsa_key, tsa, request.message_imprint.message, nonce=request.nonce)

    path = tmp_path / "ledger"
    Ledger.create(path, signed_keyring, timestamper=local_tsa).close()
    assert checkpoint_path(Layout(path), 1).with_suffix(".tsr").exists()
    report = public(path, signed_keyring, tsa_roots=[ca])
    assert report.ok and "timestamp" in report.checkpoint, report.to_text()
    other_key, other_ca = make_ca("someone else")
    assert "CHECKPOINT" in public(path, signed_keyring, tsa_roots=[other_ca]).kinds()
