"""Recovery never destroys the evidence of a loss, and a recorded repair is the only way on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger import IntegrityError, Keyring, KeyringError, Ledger, verify_ledger
from ledger.public import verify_public
from ledger.recovery import examine, pending_repairs, plan_repair, stage_repair
from ledger.storage import Layout, read_head
from mrm.cli import main

from .conftest import KEY, OTHER_KEY
from .helpers import crashed_with_unsealed, fingerprint, log_event, wal_frames

SIGNED = Keyring.generate("test-k1")


@pytest.fixture(params=["deleted", "cut"])
def lost_tail(request, tmp_path, keyring) -> Path:
    path = tmp_path / "ledger"
    crashed_with_unsealed(path, keyring)
    log = path / "wal.log"
    if request.param == "deleted":
        log.unlink()
    else:
        fs = wal_frames(path)
        os.truncate(log, fs[4].start + (fs[4].end - fs[4].start) // 2)  # mid-frame, inside what HEAD counts
    return path


def test_opening_a_ledger_that_lost_acknowledged_entries_refuses_and_changes_nothing(lost_tail, keyring):
    before = fingerprint(lost_tail)
    with pytest.raises(IntegrityError, match=r"entries \d+-10 were acknowledged and are lost.*Nothing was changed"):
        Ledger.open(lost_tail, keyring)
    assert fingerprint(lost_tail) == before
    for _ in range(2):  # and again: the evidence stays
        report = verify_ledger(lost_tail, keyring, workers=1)
        assert "TRUNCATED" in report.kinds(), report.to_text()
        assert "never acknowledged" not in report.to_text()
        with pytest.raises(IntegrityError):
            Ledger.open(lost_tail, keyring)


def test_cli_writes_refuse_with_the_integrity_exit_code(lost_tail, keyring, tmp_path):
    keyfile = tmp_path / "keys.json"
    keyring.save(keyfile)
    rows = tmp_path / "ops.jsonl"
    rows.write_text(json.dumps({"event_type": "x", "component": "c", "status": "ok"}) + "\n")
    result = CliRunner().invoke(main, ["ingest", str(lost_tail), "operation", str(rows), "--keyring", str(keyfile)])
    assert result.exit_code == 1, result.output
    assert "acknowledged and are lost" in result.output
    assert "Traceback" not in result.output


def test_repair_needs_accept_loss_then_records_the_loss_for_ever(lost_tail, keyring, tmp_path):
    head = read_head(Layout(lost_tail))
    before = fingerprint(lost_tail)
    with pytest.raises(IntegrityError, match="--accept-loss"):
        Ledger.repair(lost_tail, keyring, reason="disk swap")
    assert fingerprint(lost_tail) == before
    plan = Ledger.repair(lost_tail, keyring, reason="disk swap (INC-1)", accept_loss=True, actor="ops-kim")
    assert plan.lost[1] == 10 and plan.last_known_mac == head.mac
    assert plan.entry_seq == plan.lost[0]
    with Ledger.open(lost_tail, keyring) as ledger:  # writable again
        for i in range(3):
            log_event(ledger, 100 + i)
        ledger.seal()
    report = verify_ledger(lost_tail, keyring, workers=1)
    assert report.ok, report.to_text()
    assert [(loss["first_seq"], loss["last_seq"], loss["recorded_at_seq"]) for loss in report.losses] == [(plan.lost[0], 10, plan.entry_seq)]
    assert "LOSS" in report.to_text() and head.mac[:16] in report.to_text()
    repair_entry = [r for r in _operations(lost_tail) if r["event_type"] == "ledger_repair"]
    assert len(repair_entry) == 1 and repair_entry[0]["actor"] == "ops-kim"
    details = json.loads(repair_entry[0]["details"])
    assert details["reason"] == "disk swap (INC-1)" and details["recorded_head"]["seq"] == 10
    assert (lost_tail / details["saved_wal"]).exists()


def test_public_verification_reports_a_recorded_loss(tmp_path):
    path = tmp_path / "ledger"
    crashed_with_unsealed(path, SIGNED)
    (path / "wal.log").unlink()
    Ledger.repair(path, SIGNED, reason="lost", accept_loss=True)
    report = verify_public(path, SIGNED.verifiers(), workers=1)
    assert report.ok, report.to_text()
    assert [loss["last_seq"] for loss in report.losses] == [10]


def test_cli_repair(lost_tail, keyring, tmp_path):
    keyfile = tmp_path / "keys.json"
    keyring.save(keyfile)
    runner = CliRunner()
    args = ["repair", str(lost_tail), "--keyring", str(keyfile), "--reason", "disk swap"]
    before = fingerprint(lost_tail)
    dry = runner.invoke(main, args + ["--accept-loss", "--dry-run"])
    assert dry.exit_code == 0 and "would record the loss" in dry.output
    assert fingerprint(lost_tail) == before
    refused = runner.invoke(main, args)
    assert refused.exit_code == 1 and "--accept-loss" in refused.output
    done = runner.invoke(main, args + ["--accept-loss", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["repair"]["lost"]["last_seq"] == 10
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "nothing to repair" in again.output
    verified = runner.invoke(main, ["verify", str(lost_tail), "--keyring", str(keyfile)])
    assert verified.exit_code == 0 and "LOSS" in verified.output


def test_a_repair_stopped_after_staging_is_finished_by_the_next_writer(lost_tail, keyring):
    layout = Layout(lost_tail)
    exam = examine(layout, keyring, bytes.fromhex(json.loads((lost_tail / "LEDGER.json").read_text())["ledger_id"]))
    plan = stage_repair(layout, exam, plan_repair(layout, exam, accept_loss=True, covered_size=0), "interrupted", "ops")
    assert pending_repairs(layout)
    with Ledger.open(lost_tail, keyring):  # the crash happened here: the next writer writes the entry
        pass
    assert not pending_repairs(layout)
    with Ledger.open(lost_tail, keyring):
        pass
    repairs = [r for r in _operations(lost_tail) if r["event_type"] == "ledger_repair"]
    assert [json.loads(r["details"])["repair_id"] for r in repairs] == [plan.repair_id]
    assert verify_ledger(lost_tail, keyring, workers=1).losses


@pytest.mark.parametrize("damage", ["duplicated", "reordered"])
def test_a_log_frame_that_does_not_continue_the_chain_is_never_sealed(tmp_path, damage):
    path = tmp_path / "ledger"
    seqs = crashed_with_unsealed(path, SIGNED, n=6)
    data = (path / "wal.log").read_bytes()
    fs = wal_frames(path)
    if damage == "duplicated":
        data = data + data[fs[2].start : fs[2].end]
    else:
        data = data[: fs[2].start] + data[fs[3].start : fs[3].end] + data[fs[2].start : fs[2].end] + data[fs[3].end :]
    (path / "wal.log").write_bytes(data)
    before = fingerprint(path)
    with pytest.raises(IntegrityError, match="frame at byte"):
        Ledger.open(path, SIGNED)
    assert fingerprint(path) == before, "nothing sealed, nothing signed"
    plan = Ledger.repair(path, SIGNED, reason="log damaged")
    assert plan.lost is None and (plan.dropped if damage == "duplicated" else plan.reordered)
    report = verify_ledger(path, SIGNED, workers=1)
    assert report.ok and not report.losses, report.to_text()
    operations = _operations(path)
    assert [r["seq"] for r in operations if r["event_type"] == "monitor_check"] == seqs, "every entry kept, once, in order"
    assert verify_public(path, SIGNED.verifiers(), workers=1).ok


def test_a_loss_that_a_signed_checkpoint_covers_cannot_be_accepted(tmp_path):
    path = tmp_path / "ledger"
    with Ledger.create(path, SIGNED) as ledger:
        for i in range(5):
            log_event(ledger, i)
        ledger.seal()
        for i in range(5):
            log_event(ledger, i)
    sorted((path / "manifest").glob("*.json"))[-1].unlink()
    with pytest.raises(IntegrityError, match="signed checkpoint covers"):
        Ledger.open(path, SIGNED)
    with pytest.raises(IntegrityError, match="restore the segment files"):
        Ledger.repair(path, SIGNED, reason="x", accept_loss=True)


# ------------------------------------------------------------------------------ a wrong key


@pytest.mark.parametrize("unsealed", [False, True])
def test_a_key_with_the_right_id_and_wrong_bytes_is_refused_before_anything_is_written(tmp_path, keyring, unsealed):
    path = tmp_path / "ledger"
    if unsealed:
        crashed_with_unsealed(path, keyring, n=3)
    else:
        with Ledger.create(path, keyring) as ledger:
            log_event(ledger, 1)
    wrong = Keyring.from_key("test-k1", OTHER_KEY)
    before = fingerprint(path)
    with pytest.raises(KeyringError, match="'test-k1' is not the one"):
        Ledger.open(path, wrong)
    assert fingerprint(path) == before
    assert verify_ledger(path, keyring, workers=1).ok


def test_cli_ingest_with_a_wrong_key_exits_2_naming_the_key(tmp_path, keyring):
    path = tmp_path / "ledger"
    Ledger.create(path, keyring).close()
    keyfile = tmp_path / "wrong.json"
    Keyring.from_key("test-k1", OTHER_KEY).save(keyfile)
    rows = tmp_path / "ops.jsonl"
    rows.write_text(json.dumps({"event_type": "x", "component": "c", "status": "ok"}) + "\n")
    before = fingerprint(path)
    result = CliRunner().invoke(main, ["ingest", str(path), "operation", str(rows), "--keyring", str(keyfile)])
    assert result.exit_code == 2 and "'test-k1'" in result.output, result.output
    assert fingerprint(path) == before
    assert verify_ledger(path, keyring, workers=1).ok


def test_a_rotated_key_with_wrong_bytes_is_refused(tmp_path, keyring):
    path = tmp_path / "ledger"
    Ledger.create(path, keyring).close()
    writer = Ledger.open(path, keyring)
    rotated = keyring.with_key("test-k2", bytes(range(50, 82)))
    writer.rotate_key(rotated)
    writer.flush()
    writer.close()
    wrong = keyring.with_key("test-k2", bytes(range(60, 92)))
    with pytest.raises(KeyringError, match="'test-k2'"):
        Ledger.open(path, wrong)
    with Ledger.open(path, rotated):
        pass


def _operations(path: Path) -> list[dict]:
    from ledger.read import read_table

    return read_table(path, "operation").to_pylist()
