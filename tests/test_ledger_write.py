"""Writing: the API, normalisation, and refusals that leave the ledger exactly as it was."""

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ledger import EntryError, Keyring, KeyringError, Ledger, LedgerFormatError, verify_ledger
from mrm.synthetic import inference_batch

from .helpers import all_rows, fingerprint

UTC = dt.timezone.utc
TS = dt.datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def inference(**overrides):
    row = dict(request_id="req-1", subject_id="cust-1", model_slot="reco", model_version="v1", input_digest="ab" * 32,
               decision="bond_fund", latency_ms=4.5, scores={"bond_fund": 0.6, "deposit": 0.4}, ts=TS)
    row.update(overrides)
    return row


def test_sequence_is_shared_by_all_tables_and_survives_restarts(ledger_path, keyring):
    with Ledger.open(ledger_path, keyring) as ledger:
        a = ledger.log_model_inference(**inference())
        b = ledger.log_guardrail(request_id="req-1", gate="suitability", verdict="pass", criteria={"risk": 0.1}, ts=TS)
        batch = ledger.append("model_inference", [inference(request_id=f"req-{i}") for i in range(2, 5)])
    assert (a, b) == (1, 2) and batch == range(3, 6)
    with Ledger.open(ledger_path, keyring) as ledger:
        c = ledger.log_operation(event_type="restart", component="api", status="ok")
    assert c == 6
    assert [r["seq"] for r in all_rows(ledger_path)] == list(range(7))
    assert verify_ledger(ledger_path, keyring).ok


def test_values_are_normalised(ledger_path, keyring):
    seoul = dt.timezone(dt.timedelta(hours=9))
    with Ledger.open(ledger_path, keyring) as ledger:
        ledger.log_model_inference(**inference(
            latency_ms=np.float32(2.5), scores={"b": Decimal("0.25"), "a": np.float64(-0.0)},
            ts=dt.datetime(2026, 3, 1, 18, 30, 0, 123456, tzinfo=seoul),
            details={"features": np.arange(3), "threshold": Decimal("0.5"), "at": dt.datetime(2026, 1, 1, tzinfo=UTC)},
        ))
    row = all_rows(ledger_path)[-1]
    assert row["ts"] == dt.datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)
    assert row["latency_ms"] == 2.5
    assert row["scores"] == [("a", 0.0), ("b", 0.25)]  # sorted keys, -0.0 normalised
    assert row["details"] == '{"at":"2026-01-01T00:00:00.000000Z","features":[0,1,2],"threshold":0.5}'


BAD_ROWS = [
    (inference(latency_ms=float("nan")), "latency_ms", "finite"),
    (inference(latency_ms=float("inf")), "latency_ms", "finite"),
    (inference(scores={"a": float("nan")}), "scores['a']", "finite"),
    (inference(ts=dt.datetime(2026, 3, 1)), "ts", "naive"),
    (inference(subject_id=None), "subject_id", "missing required"),
    (inference(subject_id="  "), "subject_id", "empty"),
    (inference(latency_ms="fast"), "latency_ms", "expected a number"),
    (inference(model_version=b"v\xff1"), "model_version", "UTF-8"),
    (inference(model_version="v\ud8001"), "model_version", "UTF-8"),
    (inference(route="canary"), "route", "not one of"),
    (inference(input_digest="xyz"), "input_digest", "64 lowercase hex"),
    (inference(latency_ms=-1.0), "latency_ms", "negative"),
    (inference(colour="blue"), "colour", "unknown field"),
    (inference(seq=5), "seq", "assigned by the ledger"),
    (inference(details={"x": float("nan")}), "details.x", "finite"),
    (inference(details={"big": 2**60}), "details.big", "2^53"),
    (inference(details=[1, 2]), "details", "JSON object"),
    (inference(details='{"a": 1, "a": 2}'), "details", "duplicate"),
]


@pytest.mark.parametrize("row, field, message", BAD_ROWS)
def test_refused_row_names_the_field_and_changes_nothing(ledger_path, keyring, row, field, message):
    before = fingerprint(ledger_path)
    with Ledger.open(ledger_path, keyring) as ledger:
        with pytest.raises(EntryError) as single:
            ledger.log("model_inference", row)
        with pytest.raises(EntryError) as batch:
            ledger.append("model_inference", [inference(request_id="ok-1"), row, inference(request_id="ok-2")])
    assert single.value.field == field and message in str(single.value)
    assert batch.value.field == field and batch.value.row == 1
    assert fingerprint(ledger_path) == before


def test_unknown_table_is_refused(ledger_path, keyring):
    before = fingerprint(ledger_path)
    with Ledger.open(ledger_path, keyring) as ledger:
        with pytest.raises(EntryError, match="unknown table 'inferences'"):
            ledger.log("inferences", inference())
        with pytest.raises(EntryError, match="unknown table"):
            ledger.append("inferences", [inference()])
    assert fingerprint(ledger_path) == before


def test_conditional_requirements(ledger_path, keyring):
    with Ledger.open(ledger_path, keyring) as ledger:
        with pytest.raises(EntryError, match="reason is required when the verdict is block"):
            ledger.log_guardrail(request_id="r", gate="g", verdict="block", criteria={})
        with pytest.raises(EntryError, match="operator is required when the trigger is manual"):
            ledger.log_model_promotion(slot="s", challenger_version="v2", decision="force_promote", trigger="manual", reason="DI breach")


@pytest.mark.parametrize("kind", ["arrow", "pandas"])
def test_columnar_batches(ledger_path, keyring, kind):
    table = inference_batch(500, seed=3)
    data = table if kind == "arrow" else table.to_pandas()
    with Ledger.open(ledger_path, keyring) as ledger:
        seqs = ledger.append("model_inference", data)
    rows = [r for r in all_rows(ledger_path) if r["table_name"] == "model_inference"]
    assert [r["seq"] for r in rows] == list(seqs) and len(rows) == 500
    assert [r["request_id"] for r in rows] == table.column("request_id").to_pylist()
    assert verify_ledger(ledger_path, keyring).ok


@pytest.mark.parametrize("column, value, message", [
    ("latency_ms", float("nan"), "finite"),
    ("decision", None, "missing required"),
    ("route", "canary", "not one of"),
])
def test_bad_columnar_batch_names_row_and_field(ledger_path, keyring, column, value, message):
    table = inference_batch(50, seed=4)
    values = table.column(column).to_pylist() if column in table.column_names else [None] * 50
    values[17] = value
    table = table.drop_columns([column]) if column in table.column_names else table
    table = table.append_column(column, pa.array(values, pa.string() if column != "latency_ms" else pa.float64()))
    before = fingerprint(ledger_path)
    with Ledger.open(ledger_path, keyring) as ledger:
        with pytest.raises(EntryError) as e:
            ledger.append("model_inference", table)
    assert (e.value.field, e.value.row) == (column, 17) and message in str(e.value)
    assert fingerprint(ledger_path) == before


def test_naive_datetime_column_is_refused(ledger_path, keyring):
    df = inference_batch(5, seed=5).to_pandas()
    df["ts"] = df["ts"].dt.tz_localize(None)
    with Ledger.open(ledger_path, keyring) as ledger, pytest.raises(EntryError, match="naive"):
        ledger.append("model_inference", df)


def test_durable_call_is_on_disk_before_it_returns(ledger_path, keyring):
    ledger = Ledger.open(ledger_path, keyring, flush_interval=3600)
    ledger.log_model_inference(**inference(), durable=True)
    wal_size = (ledger_path / "wal.log").stat().st_size
    ledger.log_model_inference(**inference(request_id="req-2"))  # not yet flushed
    assert (ledger_path / "wal.log").stat().st_size == wal_size > 0
    ledger.flush()
    assert (ledger_path / "wal.log").stat().st_size > wal_size
    ledger.close()


def test_background_flush_bounds_unsynced_time(ledger_path, keyring):
    import time
    with Ledger.open(ledger_path, keyring, flush_interval=0.05) as ledger:
        ledger.log_model_inference(**inference())
        deadline = time.monotonic() + 10
        while (ledger_path / "wal.log").stat().st_size == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (ledger_path / "wal.log").stat().st_size > 0


def test_there_is_no_default_key(ledger_path):
    with pytest.raises(KeyringError):
        Ledger.open(ledger_path, None)


def test_create_refuses_an_existing_ledger(ledger_path, keyring):
    with pytest.raises(LedgerFormatError, match="already exists"):
        Ledger.create(ledger_path, keyring)


def test_key_rotation(ledger_path, keyring):
    rotated = keyring.with_key("test-k2", bytes(range(50, 82)))
    with Ledger.open(ledger_path, keyring) as ledger:
        ledger.log_model_inference(**inference())
        seq = ledger.rotate_key(rotated, reason="annual rotation")
        after = ledger.log_model_inference(**inference(request_id="req-2"))
    rows = all_rows(ledger_path)
    assert rows[seq]["event_type"] == "key_rotation" and rows[seq]["key_id"] == "test-k1"
    assert rows[after]["key_id"] == "test-k2"
    assert verify_ledger(ledger_path, rotated).ok
    # with only the old key the new entries cannot be verified, and it says so
    report = verify_ledger(ledger_path, keyring)
    assert report.kinds() == {"KEY"} and report.first_bad_seq == after
    # reopened with the rotated keyring, writing continues under the new key
    with Ledger.open(ledger_path, rotated) as ledger:
        last = ledger.log_operation(event_type="x", component="y", status="ok")
    assert all_rows(ledger_path)[last]["key_id"] == "test-k2"


def test_short_keys_are_refused():
    with pytest.raises(KeyringError, match="at least 32"):
        Keyring.from_key("k", b"short")


def test_a_ledger_stamps_with_its_own_clock(tmp_path, keyring):
    """Default entry times, the creation time and checkpoint times come from the clock given
    (a simulation replays a past year); explicit times are kept."""
    from ledger.note import Signer

    keyring = keyring.with_signer(Signer.generate("sim"))  # checkpoints are signed
    now = [int(dt.datetime(2025, 1, 6, 3, 0, tzinfo=UTC).timestamp() * 1_000_000)]
    path = tmp_path / "sim"
    with Ledger.create(path, keyring, actor="sim", clock=lambda: now[0]) as ledger:
        assert ledger.now() == dt.datetime(2025, 1, 6, 3, 0, tzinfo=UTC)
        now[0] += 60_000_000
        a = ledger.log_operation(event_type="retrain_start", component="job", status="started")
        b = ledger.append("operation", [{"event_type": "x", "component": "job", "status": "ok"}])[0]
        c = ledger.log_model_inference(**inference())  # an explicit ts wins
        now[0] += 60_000_000
        ledger.checkpoint()
    rows = {r["seq"]: r for r in all_rows(path)}
    assert rows[0]["ts"] == dt.datetime(2025, 1, 6, 3, 0, tzinfo=UTC)  # genesis
    assert rows[a]["ts"] == rows[b]["ts"] == dt.datetime(2025, 1, 6, 3, 1, tzinfo=UTC)
    assert rows[c]["ts"] == TS
    note = sorted((path / "checkpoints").glob("*.note"))[-1].read_text()
    assert "time 2025-01-06T03:02:00.000000Z" in note
    assert '"created_at": "2025-01-06T03:00:00.000000Z"' in (path / "LEDGER.json").read_text()
    assert verify_ledger(path, keyring).ok
