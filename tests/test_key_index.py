"""The side index of request and subject ids written at seal time (ledger/key_index.py)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.key_index import INDEX_DIR, KeyIndex, fingerprints, index_path, key_fingerprint
from ledger.read import snapshot
from ledger.storage import BLOOM_COLUMNS, ROW_GROUP_ROWS, Layout

from .helpers import fingerprint


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40), st.text(min_size=250, max_size=300)), max_size=30))
def test_vectorised_fingerprints_equal_the_reference(values):
    got = fingerprints("request_id", pa.array(values, pa.string())).tolist()
    assert got == [key_fingerprint("request_id", v) for v in values if v is not None]


def test_the_column_is_part_of_the_fingerprint():
    assert key_fingerprint("request_id", "x") != key_fingerprint("subject_id", "x")


def test_every_sealed_segment_gets_an_index_that_finds_its_keys(segmented):
    snap = snapshot(segmented)
    names = sorted(p.name for p in (segmented / INDEX_DIR).iterdir())
    assert names == sorted(index_path(Layout(segmented), r.first_seq, r.last_seq).name for r in snap.records)
    with KeyIndex(segmented, snap.records) as index:
        assert index.indexed == len(snap.records) and index.unindexed == [] and index.problems == []
        for record in snap.records:
            for f in record.files:
                if f.table not in ("model_inference", "guardrail"):
                    continue
                table = pq.read_table(segmented / f.path)
                for column in ("request_id", "subject_id"):
                    if column in table.column_names:
                        for value in table.column(column).to_pylist()[:5]:
                            maybe, unindexed = index.segments_for(column, value)
                            assert record in maybe and unindexed == []
        assert index.segments_for("request_id", "no-such-request") == ([], [])


def test_segment_files_have_small_row_groups_and_bloom_filters(segmented, keyring):
    with Ledger.open(segmented, keyring) as ledger:
        for table, rows in (("model_inference", 20_000), ("operation", 3)):
            if table == "model_inference":
                from mrm.synthetic import inference_batch

                ledger.append(table, inference_batch(rows, seed=3))
            else:
                for i in range(rows):
                    ledger.log_operation(event_type="monitor_check", component="drift", status="ok")
        ledger.seal()
    newest = sorted((segmented / "tables" / "model_inference").glob("*.parquet"))[-1]
    md = pq.ParquetFile(newest).metadata
    assert md.num_row_groups == -(-20_000 // ROW_GROUP_ROWS)
    names = [md.row_group(0).column(i).path_in_schema for i in range(md.num_columns)]
    for column in BLOOM_COLUMNS:
        assert md.row_group(0).column(names.index(column)).bloom_filter_offset is not None
    op = pq.ParquetFile(sorted((segmented / "tables" / "operation").glob("*.parquet"))[-1]).metadata
    assert all(op.row_group(0).column(i).bloom_filter_offset is None for i in range(op.num_columns))


def test_reading_the_index_writes_nothing(segmented):
    before = fingerprint(segmented)
    with KeyIndex(segmented, snapshot(segmented).records) as index:
        index.segments_for("subject_id", "cust-0000001")
    assert fingerprint(segmented) == before


def test_an_index_built_from_other_files_is_ignored(segmented):
    snap = snapshot(segmented)
    record = snap.records[1]
    path = index_path(Layout(segmented), record.first_seq, record.last_seq)
    other = snap.records[2]
    # the index of another segment, renamed to this one's range: the header does not match
    path.write_bytes(index_path(Layout(segmented), other.first_seq, other.last_seq).read_bytes())
    with KeyIndex(segmented, snap.records) as index:
        assert record in index.unindexed
    assert any("scanned" in p or "ignored" in p for p in index.problems)


def test_a_failing_index_write_does_not_fail_the_seal(segmented, keyring, monkeypatch):
    import ledger.commit as ledger_module

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ledger_module, "write_index", broken)
    with Ledger.open(segmented, keyring) as ledger:
        ledger.log_operation(event_type="monitor_check", component="drift", status="ok")
        record = ledger.seal()
    assert record is not None
    assert not index_path(Layout(segmented), record.first_seq, record.last_seq).exists()
    with Ledger.open(segmented, keyring) as ledger:
        assert ledger.verify().ok
