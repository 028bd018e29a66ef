"""Issue 13: what both verifiers missed or told an examiner wrongly, on small hand-built ledgers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger import IntegrityError, Keyring, Ledger, verify_ledger
from ledger.checkpoints import checkpoint_path, stored_notes
from ledger.merkle import root_from_packed
from ledger.note import Signer
from ledger.public import verify_public
from ledger.storage import Layout
from ledger.tiles import CorruptTileError, _State
from mrm.cli import main

from .conftest import KEY
from .helpers import fixed_clock, write_manifest_lines, crashed_with_unsealed, manifest_lines, read_rows, records, segment_files, wal_frames, write_rows

SIGNER = Signer.parse("PRIVATE+KEY+mrm-test+64b144e8+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f")
SIGNED = Keyring.from_key("test-k1", KEY).with_signer(SIGNER)
WT = Path(__file__).resolve().parents[1]
def write_segment(ledger: Ledger, labels) -> None:
    for label in labels:
        ledger.log_operation(event_type="monitor_check", component="drift", status="ok", actor="test", details={"label": label})
    ledger.seal()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """Three sealed segments of operations, a signed checkpoint and the tree at each seal."""
    path = tmp_path_factory.mktemp("gaps") / "ledger"
    with Ledger.create(path, SIGNED, actor="test", clock=fixed_clock()) as ledger:
        for segment in range(3):
            write_segment(ledger, [f"s{segment}-{i}" for i in range(6)])
    return path


@pytest.fixture
def signed(tmp_path, template) -> Path:
    path = tmp_path / "ledger"
    shutil.copytree(template, path)
    return path


def hmac(path, **kw):
    return verify_ledger(path, SIGNED, workers=1, **kw)


def public(path, **kw):
    return verify_public(path, SIGNED.verifiers(), workers=1, **kw)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], env={"MRM_KEYRING": "", "MRM_HMAC_KEY": ""})


def keyring_file(tmp_path) -> Path:
    path = tmp_path / "keys.json"
    SIGNED.save(path)
    return path


def truncate_consistently(path: Path) -> int:
    """Remove the newest segment, its manifest line and the checkpoints covering it, and
    rewrite HEAD to the new end: only the tree (and outside anchors) still know more."""
    last, previous = records(path)[-1], records(path)[-2]
    for f in last.files:
        (path / f.path).unlink()
    write_manifest_lines(path, manifest_lines(path)[:-1])
    for size, note in stored_notes(Layout(path)):
        if size > previous.last_seq + 1:
            note.unlink()
    head = json.loads((path / "HEAD").read_text())
    head.update(seq=previous.last_seq, mac=previous.last_mac, sealed_seq=previous.last_seq, wal_size=0)
    (path / "HEAD").write_text(json.dumps(head) + "\n")
    return last.first_seq


# ---------------------------------------------------------------------------- 1. truncation


def test_hmac_verification_finds_a_consistent_truncation_through_the_stored_tree(signed):
    first_removed = truncate_consistently(signed)
    report = hmac(signed)
    assert "TRUNCATED" in report.kinds(), report.to_text()
    assert report.first_bad_seq == first_removed


def test_hmac_verification_takes_state_and_checkpoints_like_the_public_one(signed, tmp_path):
    keys = keyring_file(tmp_path)
    state = tmp_path / "state.json"
    newest = stored_notes(Layout(signed))[-1][1]
    held = tmp_path / "held.note"
    shutil.copy(newest, held)
    ok = cli("verify", signed, "--keyring", keys, "--state", state, "--checkpoint", held, "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(state.read_text())["size"] == records(signed)[-1].last_seq + 1

    first_removed = truncate_consistently(signed)
    shutil.rmtree(signed / "tree")  # a thorough attacker: only the outside anchors know
    assert hmac(signed).ok, "nothing inside the ledger is left to tell"
    for anchor in (["--state", state], ["--checkpoint", held]):
        result = cli("verify", signed, "--keyring", keys, *anchor, "--json")
        assert result.exit_code == 1, result.output
        doc = json.loads(result.output)
        assert {"TRUNCATED", "ROLLBACK"} & {p["kind"] for p in doc["problems"]}, result.output
        assert doc["first_bad_seq"] == first_removed

    for size, note in stored_notes(Layout(signed)):
        note.unlink()  # no checkpoint at all: the data is simply shorter than the anchor
    report = hmac(signed, state_path=state)
    assert "TRUNCATED" in report.kinds(), report.to_text()


# ---------------------------------------------------------------------------- 2. tiles


def leaf_tile(path: Path) -> Path:
    (tile,) = (path / "tree" / "tile" / "0").rglob("*.p/*")
    return tile


def corrupt_tile_consistently(path: Path) -> str:
    """Change one leaf hash and re-commit the tree's root over it: the store opens cleanly."""
    tile = leaf_tile(path)
    raw = bytearray(tile.read_bytes())
    raw[32 * 7] ^= 1
    tile.write_bytes(bytes(raw))
    state = path / "tree" / "tree-state"
    old = _State.decode(state.read_bytes(), "test")
    state.write_bytes(_State(old.size, root_from_packed(bytes(raw)), old.prev, None).encode())
    return tile.relative_to(path).as_posix()


def flip_tile_byte(path: Path) -> str:
    tile = leaf_tile(path)
    raw = bytearray(tile.read_bytes())
    raw[5] ^= 1
    tile.write_bytes(bytes(raw))
    return tile.relative_to(path).as_posix()


@pytest.mark.parametrize("verify", [hmac, public], ids=["hmac", "public"])
@pytest.mark.parametrize("consistent", [True, False], ids=["root-recommitted", "byte-flipped"])
def test_corrupted_tiles_are_reported_by_both_verifiers(signed, verify, consistent):
    rel = corrupt_tile_consistently(signed) if consistent else flip_tile_byte(signed)
    report = verify(signed)
    tiles = [p for p in report.problems if p.kind == "TILE"]
    assert tiles, report.to_text()
    assert any(p.file == rel and "level 0" in p.message for p in tiles), report.to_text()
    assert not {"INVALID", "CHECKPOINT"} & report.kinds(), "the entries are intact: " + report.to_text()


def test_prove_refuses_a_corrupted_tree_with_the_integrity_exit_code(signed):
    assert issubclass(CorruptTileError, IntegrityError)
    flip_tile_byte(signed)
    result = cli("prove", signed, "--seq", 3)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "tile" in result.output and "mrm verify" in result.output


# ---------------------------------------------------------------------------- 3. read-only copy


def run_as_nobody(*args) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(WT), "HOME": "/nonexistent", "MRM_KEYRING": "", "MRM_HMAC_KEY": ""}
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "mrm.cli", *map(str, args)],
                          env=env, cwd="/", capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to run as an unprivileged user")
def test_a_read_only_copy_can_be_verified_proven_and_queried(template):
    base = Path(tempfile.mkdtemp(prefix="mrm-ro-"))
    try:
        os.chmod(base, 0o755)
        copy = base / "ledger"
        shutil.copytree(template, copy)
        keys = base / "keys.json"
        SIGNED.save(keys)
        os.chmod(keys, 0o444)
        pub = base / "ledger.pub"
        pub.write_text("".join(v.to_vkey() + "\n" for v in SIGNED.verifiers()))
        subprocess.run(["chmod", "-R", "a-w", str(base)], check=True)
        probe = run_as_nobody("status", copy)
        assert probe.returncode == 0, probe.stderr
        for args in (("verify", copy, "--keyring", keys), ("verify", copy, "--public-key", pub), ("prove", copy, "--seq", 3),
                     ("sql", copy, "SELECT count(*) AS n FROM operation")):
            result = run_as_nobody(*args)
            assert result.returncode == 0, f"{args[0]}: {result.stdout}{result.stderr}"
            assert "Traceback" not in result.stderr
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=True)
        shutil.rmtree(base)


# ---------------------------------------------------------------------------- 4. crash leftovers


@pytest.mark.parametrize("verify", [hmac, public], ids=["hmac", "public"])
def test_files_of_a_seal_stopped_before_its_record_are_noted_and_the_next_writer_removes_them(signed, verify):
    last = records(signed)[-1]
    source = signed / last.files[0].path
    # killed after writing the next segment's files, before its manifest record (the commit point)
    leftover = source.with_name(f"{last.last_seq + 1:012d}-{last.last_seq + 6:012d}.parquet")
    shutil.copy(source, leftover)
    report = verify(signed)
    assert report.ok, report.to_text()
    assert any(leftover.name in n and "not read as evidence" in n for n in report.notes), report.to_text()
    Ledger.open(signed, SIGNED).close()
    assert not leftover.exists()
    assert verify(signed).ok


@pytest.mark.parametrize("verify", [hmac, public], ids=["hmac", "public"])
def test_any_other_unlisted_file_is_extra(signed, verify):
    last = records(signed)[-1]
    source = signed / last.files[0].path
    elsewhere = source.with_name(f"{last.last_seq + 2:012d}-{last.last_seq + 6:012d}.parquet")  # not the next range
    shutil.copy(source, elsewhere)
    stray = source.with_name("notes.tmp")
    stray.write_bytes(b"x")
    report = verify(signed)
    # A segment past the newest checkpoint that the manifest does not list either is extra
    # to the public verifier too (issue 15: it was counted as newer than the checkpoint).
    expected = [("EXTRA", elsewhere.name), ("EXTRA", "notes.tmp")]
    assert sorted((p.kind, Path(p.file).name) for p in report.problems) == expected, report.to_text()


# ---------------------------------------------------------------------------- 5. the log's frames


def damaged_log(path: Path, damage: str) -> None:
    crashed_with_unsealed(path, SIGNED, n=6)
    data = (path / "wal.log").read_bytes()
    fs = wal_frames(path)
    if damage == "duplicated after the acknowledged bytes":
        data = data + data[fs[2].start : fs[2].end]
    elif damage == "reordered":
        data = data[: fs[2].start] + data[fs[3].start : fs[3].end] + data[fs[2].start : fs[2].end] + data[fs[3].end :]
    else:  # a copy of frame 2 inside what HEAD counts, the rest pushed back
        data = data[: fs[3].start] + data[fs[2].start : fs[2].end] + data[fs[3].start :]
    (path / "wal.log").write_bytes(data)


@pytest.mark.parametrize("damage", ["duplicated after the acknowledged bytes", "reordered"])
def test_log_frames_that_the_writer_refuses_but_lose_nothing_are_noted(tmp_path, damage):
    path = tmp_path / "ledger"
    damaged_log(path, damage)
    report = hmac(path)
    assert report.ok, report.to_text()
    assert any("mrm repair" in n and "frame at byte" in n for n in report.notes), report.to_text()


def test_a_duplicated_frame_inside_the_acknowledged_bytes_is_a_problem(tmp_path):
    path = tmp_path / "ledger"
    damaged_log(path, "duplicated inside")
    report = hmac(path)
    assert not report.ok and any("frame at byte" in p.message for p in report.problems), report.to_text()


# ---------------------------------------------------------------------------- 6. messages


def test_entries_newer_than_the_checkpoint_are_counted_once(signed):
    unsigned = Keyring.from_key("test-k1", KEY)  # seals without signing a checkpoint
    with Ledger.open(signed, unsigned, actor="test") as ledger:
        ledger.log_operation(event_type="tick", component="c", status="ok")
        ledger.log_model_inference(request_id="r", subject_id="s", model_slot="m", model_version="v",
                                   input_digest="0" * 64, decision="d", latency_ms=1.0)
        ledger.seal()
    newest = records(signed)[-1]
    report = public(signed)
    assert report.ok, report.to_text()
    assert f"{newest.last_seq - newest.first_seq + 1} entries are newer" in report.to_text(), report.to_text()


def test_a_file_digest_problem_says_the_entries_are_intact(signed):
    f = segment_files(signed, "operation")[1]
    rows = read_rows(f)
    write_rows(f, "operation", rows)  # the same rows, other bytes
    report = hmac(signed)
    assert report.kinds() == {"FILE"}, report.to_text()
    assert "None" not in report.to_text() and "the entries themselves are intact" in report.to_text(), report.to_text()


@pytest.mark.parametrize("verify", [hmac, public], ids=["hmac", "public"])
def test_a_checkpoint_only_problem_names_no_bad_entry(signed, verify):
    size, note = stored_notes(Layout(signed))[1]
    note.write_bytes(note.read_bytes().replace(b"\n", b"\r\n", 1))
    report = verify(signed)
    assert "CHECKPOINT" in report.kinds(), report.to_text()
    assert report.first_bad_seq is None and "first bad sequence number" not in report.to_text(), report.to_text()


@pytest.mark.parametrize("verify", [hmac, public], ids=["hmac", "public"])
def test_an_edited_ledger_id_is_one_problem(signed, verify):
    meta = json.loads((signed / "LEDGER.json").read_text())
    meta["ledger_id"] = "f" * 32
    (signed / "LEDGER.json").write_text(json.dumps(meta))
    report = verify(signed)
    assert len(report.problems) == 1 and "the ledger id changed" in report.problems[0].message, report.to_text()


def test_a_segment_from_a_fork_is_pinned_where_the_chain_diverges(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    with Ledger.create(ours, SIGNED, actor="test", clock=fixed_clock()) as ledger:
        write_segment(ledger, range(4))
    shutil.copytree(ours, theirs)
    for path, labels in ((ours, ["a", "b", "c", "d", "e"]), (theirs, ["a", "b", "X", "d", "e"])):
        with Ledger.open(path, SIGNED, actor="test", clock=fixed_clock()) as ledger:
            write_segment(ledger, labels)
    last = records(ours)[-1]
    for f in last.files:
        shutil.copy(theirs / f.path, ours / f.path)
    report = hmac(ours)
    assert "INVALID" in report.kinds(), report.to_text()
    assert report.first_bad_seq == last.first_seq + 2, report.to_text()
