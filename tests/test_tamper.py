"""The tamper suite: each attack is found, by kind, at the first sequence number it touches."""

import datetime as dt
import json
import os
import shutil
import unicodedata

import pytest

from ledger import Keyring, verify_ledger
from ledger.keys import key_check
from ledger.storage import Layout, manifest_line, read_meta, record_mac
from ledger.storage_io import sha256_file

from .conftest import KEY, OTHER_KEY
from .helpers import write_manifest_lines, all_rows, edit_rows, manifest_lines, read_rows, rechain, records, segment_files, write_rows


def check(path, keyring, kind, first_seq, *, also=()):
    report = verify_ledger(path, keyring, workers=1)
    assert not report.ok, "tampering went unnoticed"
    assert kind in report.kinds(), report.to_text()
    assert set(also) <= report.kinds(), report.to_text()
    assert report.first_bad_seq == first_seq, report.to_text()
    return report


def second_segment_inference(path):
    return segment_files(path, "model_inference")[1]


def test_untouched_ledger_verifies(segmented, keyring):
    report = verify_ledger(segmented, keyring, workers=1)
    assert report.ok, report.to_text()
    assert report.entries == len(all_rows(segmented))
    assert set(report.tables) == {"operation", "model_inference", "data_access", "dimension_change", "attribution", "guardrail", "model_promotion"}


@pytest.mark.parametrize("field, change", [
    ("decision", lambda v: v[:-1] + chr(ord(v[-1]) ^ 1)),       # one byte of an entry flipped
    ("latency_ms", lambda v: v + 0.001),                          # a typed column edited
    ("ts", lambda v: v + dt.timedelta(microseconds=1)),
    ("actor", lambda v: v + "x"),
    ("scores", lambda v: [(k, x * 0.5) for k, x in v]),
])
def test_edited_field(segmented, keyring, field, change):
    f = second_segment_inference(segmented)
    rows = read_rows(f)
    target = rows[1]["seq"]
    rows[1][field] = change(rows[1][field])
    write_rows(f, "model_inference", rows)
    check(segmented, keyring, "INVALID", target, also=["FILE"])


def test_edited_key_id(segmented, keyring):
    f = second_segment_inference(segmented)
    rows = read_rows(f)
    target = rows[1]["seq"]
    rows[1]["key_id"] = "test-k2"
    write_rows(f, "model_inference", rows)
    check(segmented, keyring, "KEY", target)


def test_deleted_middle_row(segmented, keyring):
    f = second_segment_inference(segmented)
    rows = read_rows(f)
    target = rows[2]["seq"]
    write_rows(f, "model_inference", rows[:2] + rows[3:])
    check(segmented, keyring, "GAP", target, also=["FILE"])


def test_deleted_genesis_row(segmented, keyring):
    genesis = segment_files(segmented, "operation")[0]
    write_rows(genesis, "operation", [])
    check(segmented, keyring, "GAP", 0)


def test_inserted_forged_row_with_renumbering(segmented, keyring):
    first = records(segmented)[2].first_seq
    forged_seq = first + 5
    for table_dir in (segmented / "tables").iterdir():
        for f in segment_files(segmented, table_dir.name):
            rows = read_rows(f)
            if not rows or rows[0]["seq"] < first or rows[0]["seq"] > records(segmented)[2].last_seq:
                continue
            for r in rows:
                if r["seq"] >= forged_seq:
                    r["seq"] += 1
            if table_dir.name == "model_inference":
                forged = dict(rows[0], seq=forged_seq, decision="els_note", request_id="req-forged")
                rows = sorted(rows + [forged], key=lambda r: r["seq"])
            write_rows(f, table_dir.name, rows)
    check(segmented, keyring, "INVALID", forged_seq)


def test_duplicated_row(segmented, keyring):
    f = second_segment_inference(segmented)
    rows = read_rows(f)
    target = rows[1]["seq"]
    write_rows(f, "model_inference", rows[:2] + [rows[1]] + rows[2:])
    check(segmented, keyring, "DUPLICATE", target)


def test_swapped_rows_without_renumbering(segmented, keyring):
    f = second_segment_inference(segmented)
    rows = read_rows(f)
    lower = rows[1]["seq"]
    rows[1], rows[3] = rows[3], rows[1]
    write_rows(f, "model_inference", rows)
    check(segmented, keyring, "ORDER", lower)


def test_swapped_rows_with_renumbering(segmented, keyring):
    f = second_segment_inference(segmented)
    rows = read_rows(f)
    lower = rows[1]["seq"]
    rows[1], rows[3] = dict(rows[3], seq=rows[1]["seq"]), dict(rows[1], seq=rows[3]["seq"])
    write_rows(f, "model_inference", rows)
    check(segmented, keyring, "INVALID", lower)


def test_deleted_segment_file(segmented, keyring):
    f = second_segment_inference(segmented)
    target = read_rows(f)[0]["seq"]
    f.unlink()
    check(segmented, keyring, "GAP", target, also=["MISSING"])


def test_unlisted_file_added(segmented, keyring):
    src = second_segment_inference(segmented)
    shutil.copy(src, src.with_name("999999999990-999999999999.parquet"))
    report = verify_ledger(segmented, keyring, workers=1)
    assert [p.kind for p in report.problems] == ["EXTRA"], report.to_text()
    assert report.problems[0].file.endswith("999999999990-999999999999.parquet")


def test_file_replaced_by_a_rechained_copy(segmented, keyring):
    f = second_segment_inference(segmented)
    target = read_rows(f)[0]["seq"]
    rechain(segmented, "test-k1", OTHER_KEY, start_seq=target, modify=lambda r: {"decision": "els_note"} if r["table_name"] == "model_inference" else {})
    check(segmented, keyring, "INVALID", target, also=["FILE"])


def test_rows_moved_to_another_table(segmented, keyring):
    f = segment_files(segmented, "guardrail")[1]
    target = read_rows(f)[0]["seq"]
    os.replace(f, segmented / "tables" / "attribution" / f.name.replace("-", "-9"))
    check(segmented, keyring, "GAP", target, also=["MISSING", "EXTRA"])


def test_row_relabelled_to_another_table(segmented, keyring):
    f = segment_files(segmented, "operation")[1]
    rows = read_rows(f)
    rows[0]["table_name"] = "guardrail"
    write_rows(f, "operation", rows)
    check(segmented, keyring, "INVALID", rows[0]["seq"])


def _reseal(path, key_id, key):
    """An attacker's rewrite of the manifest and head to match files they re-chained."""
    layout = Layout(path)
    lines, prev = [], "0" * 64
    rows = {r["seq"]: r for r in all_rows(path)}
    import hashlib
    from dataclasses import replace
    for r in records(path):
        files = tuple(replace(f, sha256=sha256_file(path / f.path), bytes=(path / f.path).stat().st_size) for f in r.files)
        rec = replace(r, files=files, prev=prev, last_mac=rows[r.last_seq]["mac"].hex(), key_id=key_id)
        rec = replace(rec, mac=record_mac(key, rec.body()))
        line = manifest_line(rec)
        lines.append(line)
        prev = hashlib.sha256(line).hexdigest()
    write_manifest_lines(path, lines)
    head = json.loads((path / "HEAD").read_text())
    head["mac"] = rows[max(rows)]["mac"].hex()
    (path / "HEAD").write_text(json.dumps(head))


def test_whole_ledger_rekeyed(segmented, keyring):
    ledger_id = read_meta(Layout(segmented)).ledger_id_bytes

    def forge_key_check(r):
        if r["seq"] == 0:
            details = json.loads(r["details"])
            details["key_check"] = key_check(OTHER_KEY, ledger_id)
            return {"details": json.dumps(details, separators=(",", ":"), sort_keys=True)}
        return {}

    rechain(segmented, "test-k1", OTHER_KEY, modify=forge_key_check)
    _reseal(segmented, "test-k1", OTHER_KEY)
    shutil.rmtree(segmented / "tree")  # the stored tree still holds the real leaves: a thorough forger drops it
    report = check(segmented, keyring, "KEY", 0)
    assert report.kinds() == {"KEY"}, "a re-keyed ledger is one KEY problem, not thousands of edits"
    # ...and the forger's own key verifies it: only a public checkpoint can tell them apart.
    assert verify_ledger(segmented, Keyring.from_key("test-k1", OTHER_KEY), workers=1).ok


def test_forged_genesis(segmented, keyring):
    genesis = segment_files(segmented, "operation")[0]
    rows = read_rows(genesis)
    details = json.loads(rows[0]["details"])
    details["ledger_id"] = "f" * 32
    rows[0]["details"] = json.dumps(details, separators=(",", ":"), sort_keys=True)
    write_rows(genesis, "operation", rows)
    check(segmented, keyring, "INVALID", 0)


def test_bytes_appended_after_parquet_footer(segmented, keyring):
    f = second_segment_inference(segmented)
    target = read_rows(f)[0]["seq"]
    with open(f, "ab") as out:
        out.write(b"PAR1 trailing bytes")
    report = verify_ledger(segmented, keyring, workers=1)
    assert "FILE" in report.kinds(), report.to_text()
    assert report.first_bad_seq in (None, target)


def test_json_one_point_zero_for_one(segmented, keyring):
    f = segment_files(segmented, "operation")[1]
    rows = read_rows(f)
    i = next(i for i, r in enumerate(rows) if r["event_type"] == "monitor_check")
    assert '"psi":1' in rows[i]["details"] and '"psi":1.0' not in rows[i]["details"]
    rows[i]["details"] = rows[i]["details"].replace('"psi":1', '"psi":1.0')
    write_rows(f, "operation", rows)
    check(segmented, keyring, "INVALID", rows[i]["seq"])


def test_null_to_empty_string(segmented, keyring):
    f = segment_files(segmented, "operation")[1]
    rows = read_rows(f)
    i = next(i for i, r in enumerate(rows) if r["correlation_id"] is None)
    rows[i]["correlation_id"] = ""
    write_rows(f, "operation", rows)
    check(segmented, keyring, "INVALID", rows[i]["seq"])


def test_unicode_renormalised(segmented, keyring):
    f = segment_files(segmented, "operation")[1]
    rows = read_rows(f)
    i = next(i for i, r in enumerate(rows) if "é" in r["actor"])
    rows[i]["actor"] = unicodedata.normalize("NFD", rows[i]["actor"])
    write_rows(f, "operation", rows)
    check(segmented, keyring, "INVALID", rows[i]["seq"])


def test_truncated_tail(segmented, keyring):
    last = records(segmented)[-1]
    for f in last.files:
        (segmented / f.path).unlink()
    lines = manifest_lines(segmented)
    write_manifest_lines(segmented, lines[:-1])
    check(segmented, keyring, "TRUNCATED", last.first_seq)


def test_manifest_line_removed_from_the_middle(segmented, keyring):
    lines = manifest_lines(segmented)
    middle = records(segmented)[2]
    for f in middle.files:
        (segmented / f.path).unlink()
    write_manifest_lines(segmented, lines[:2] + lines[3:])
    check(segmented, keyring, "GAP", middle.first_seq, also=["MANIFEST"])


def test_wrong_key_is_reported_as_a_wrong_key(segmented):
    report = check(segmented, Keyring.from_key("test-k1", OTHER_KEY), "KEY", 0)
    assert report.kinds() == {"KEY"}
    assert "wrong key" in report.problems[0].message


def test_missing_key_id(segmented):
    report = check(segmented, Keyring.from_key("another", KEY), "KEY", 0)
    assert "no key for key id 'test-k1'" in report.problems[0].message
