import shutil

from ledger import Ledger
from ledger.read import read_table, snapshot

from .helpers import all_rows


def test_reads_sealed_and_unsealed_entries_and_ignores_unlisted_files(segmented, keyring):
    expected = [r for r in all_rows(segmented) if r["table_name"] == "model_inference"]
    stray = segmented / "tables" / "model_inference" / "999999999990-999999999999.parquet"
    shutil.copy(sorted(stray.parent.glob("*.parquet"))[0], stray)
    ledger = Ledger.open(segmented, keyring, flush_interval=3600)
    seq = ledger.log_model_inference(request_id="late", subject_id="s", model_slot="m", model_version="v",
                                     input_digest="0" * 64, decision="d", latency_ms=1.0, durable=True)
    table = read_table(segmented, "model_inference")
    assert table.column("seq").to_pylist() == [r["seq"] for r in expected] + [seq]
    assert table.column("request_id").to_pylist()[-1] == "late"
    assert snapshot(segmented).last_seq == seq
    ledger.close()
    assert read_table(segmented, "model_inference", ["seq"]).column_names == ["seq"]
