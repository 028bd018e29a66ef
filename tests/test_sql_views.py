"""Every view and macro of `mrm sql`, checked against a ledger whose content is known."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from forensics.attestation import HmacChainVerifier
from forensics.session import LedgerSQL
from forensics.views import MACRO_NAMES, OBJECTS, VIEW_NAMES
from ledger import Keyring
from ledger.read import read_table
from ledger.schema import TABLE_NAMES, TABLES

from .conftest import KEY
from .forensic_ledger import DIGEST, T0, H, build

KEYRING = Keyring.from_key("test-k1", KEY)


@pytest.fixture(scope="session")
def known_template(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("forensic") / "ledger"
    return path, build(path, KEYRING)


@pytest.fixture
def known(tmp_path, known_template) -> tuple[Path, dict[str, int]]:
    path = tmp_path / "ledger"
    shutil.copytree(known_template[0], path)
    return path, known_template[1]


@pytest.fixture
def session(known):
    with LedgerSQL.open(known[0]) as s:
        yield s


def rows(session: LedgerSQL, sql: str, params=None) -> list[dict]:
    return session.query(sql, params).to_pylist()


def test_every_object_is_documented_and_exists(session):
    assert set(VIEW_NAMES) >= set(TABLE_NAMES) | {"decisions", "registry_history", "production_periods", "entries"}
    assert {"champion_at", "subject_timeline", "manual_overrides", "rejections"} <= set(MACRO_NAMES)
    for obj in OBJECTS:
        assert obj.doc and obj.signature.startswith(obj.name)
        if obj.kind == "view":
            assert session.columns(obj.name), obj.name


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_table_views_hold_every_entry_with_its_verification_columns(session, known, table):
    expected = read_table(known[0], table).to_pylist()
    got = rows(session, f"SELECT * FROM {table} ORDER BY seq")
    assert [r["seq"] for r in got] == [r["seq"] for r in expected]
    names = [c.name for c in TABLES[table].columns]
    assert list(got[0].keys()) == names if got else True
    for g, e in zip(got, expected):
        assert g["key_id"] == "test-k1" and g["mac"] == e["mac"].hex() and len(g["mac"]) == 64
        assert g["ts"] == e["ts"] and g["actor"] == e["actor"] and g["table_name"] == table
        assert (json.loads(g["details"]) if g["details"] else None) == (json.loads(e["details"]) if e["details"] else None)


def test_entries_counts_and_unsealed_entries_are_included(session, known):
    counts = {r["table_name"]: r["n"] for r in rows(session, "SELECT table_name, count(*) AS n FROM entries GROUP BY ALL")}
    assert counts == {"operation": 1, "model_promotion": 6, "data_access": 4, "model_inference": 5, "attribution": 5, "guardrail": 5}
    assert [r["seq"] for r in rows(session, "SELECT seq FROM entries ORDER BY seq")] == list(range(26))
    r5 = rows(session, "SELECT * FROM entry(?)", [known[1]["r5.inference"]])[0]
    assert r5["table_name"] == "model_inference" and json.loads(r5["body"])["request_id"] == "r5"


def test_decisions_one_row_per_request_with_everything_joined(session, known):
    seqs = known[1]
    got = {r["request_id"]: r for r in rows(session, "SELECT * FROM decisions")}
    assert sorted(got) == ["r1", "r2", "r3", "r4", "r5"]
    r1 = got["r1"]
    assert r1["subject_id"] == "s1" and r1["model_version"] == "reco-v1" and r1["model_output"] == "els_note"
    assert r1["inference_seq"] == seqs["r1.inference"] and r1["inference_key_id"] == "test-k1"
    assert r1["input_digest"] == DIGEST["r1"] and dict(r1["scores"]) == {"els_note": 0.7, "deposit_12m": 0.2, "bond_fund": 0.1}
    assert r1["served_output"] == "balanced_fund" and r1["guardrail_verdict"] == "modify"
    assert r1["accessed_by"] == ["teller-1"] and r1["data_access"][0]["purpose"] == "suitability_assessment"
    assert r1["data_access"][0]["seq"] == seqs["r1.access"]
    assert [f["feature"] for f in r1["top_features"]] == ["risk_tolerance", "assets", "age"]
    assert r1["guardrails"][0]["reason"] == "risk grade above profile" and r1["guardrails"][0]["seq"] == seqs["r1.guardrail"]
    assert r1["champion_version"] == "reco-v1" and r1["promotion_seq"] == seqs["bootstrap"]
    assert got["r2"]["promotion_seq"] == seqs["force"] and got["r2"]["served_output"] == "bond_fund"
    assert got["r3"]["served_output"] is None and got["r3"]["guardrail_verdict"] == "block"
    # a shadow inference by a version that was never production: champion shown, no promotion
    assert got["r4"]["route"] == "shadow" and got["r4"]["champion_version"] == "reco-v2" and got["r4"]["promotion_seq"] is None
    assert got["r4"]["data_access"] is None and got["r4"]["accessed_by"] is None
    # r5 is still in the write-ahead log
    assert got["r5"]["promotion_seq"] == seqs["approve"] and got["r5"]["served_output"] == "deposit_12m"
    # The lookup macros filter before aggregating: row for row what the view gives.
    for rid in got:
        assert rows(session, f"SELECT * FROM decision_of('{rid}')") == [got[rid]]
    assert rows(session, "SELECT * FROM decision_of('no-such-request')") == []


def test_registry_history_and_problems_come_from_the_gates_registry(session, known):
    seqs = known[1]
    history = rows(session, "SELECT seq, version, from_state, to_state, cause, operator FROM registry_history")
    assert history == [
        {"seq": seqs["bootstrap"], "version": "reco-v1", "from_state": None, "to_state": "production", "cause": "bootstrap", "operator": None},
        {"seq": seqs["reject"], "version": "reco-v2-rc1", "from_state": None, "to_state": "rejected", "cause": "reject", "operator": None},
        {"seq": seqs["force"], "version": "reco-v1", "from_state": "production", "to_state": "archived", "cause": "force_promote", "operator": "officer-7"},
        {"seq": seqs["force"], "version": "reco-v2", "from_state": None, "to_state": "production", "cause": "force_promote", "operator": "officer-7"},
        {"seq": seqs["pending"], "version": "reco-v3", "from_state": None, "to_state": "pending_approval", "cause": "pending_approval", "operator": None},
        {"seq": seqs["approve"], "version": "reco-v2", "from_state": "production", "to_state": "archived", "cause": "approve", "operator": "head-of-mrm"},
        {"seq": seqs["approve"], "version": "reco-v3", "from_state": "pending_approval", "to_state": "production", "cause": "approve", "operator": "head-of-mrm"},
    ]
    problems = rows(session, "SELECT * FROM registry_problems")
    assert [p["seq"] for p in problems] == [seqs["stale"]] and "stale" in problems[0]["message"]


@pytest.mark.parametrize(
    "at, version, cause",
    [
        ("2025-09-01T00:00:00Z", "reco-v1", "bootstrap"),  # events at the instant are included
        ("2025-09-01T02:59:59.999999Z", "reco-v1", "bootstrap"),
        ("2025-09-01T03:00:00Z", "reco-v2", "force_promote"),
        ("2025-09-01T12:00:00+09:00", "reco-v2", "force_promote"),  # 03:00Z
        ("2025-09-01T08:00:00Z", "reco-v3", "approve"),
        ("2030-01-01T00:00:00Z", "reco-v3", "approve"),
    ],
)
def test_champion_at(session, at, version, cause):
    got = rows(session, "SELECT version, promotion_decision FROM champion_at('reco', ?)", [at])
    assert got == [{"version": version, "promotion_decision": cause}]


def test_champion_at_before_any_promotion_and_unknown_slot(session):
    assert rows(session, "SELECT * FROM champion_at('reco', '2025-08-31T23:59:59Z')") == []
    assert rows(session, "SELECT * FROM champion_at('nope', '2025-09-02T00:00:00Z')") == []


def test_production_periods(session, known):
    seqs = known[1]
    got = rows(session, "SELECT version, live_from, live_until, promotion_seq, promotion_operator, ended_by_seq FROM production_periods")
    assert got == [
        {"version": "reco-v1", "live_from": T0, "live_until": T0 + 3 * H, "promotion_seq": seqs["bootstrap"], "promotion_operator": None, "ended_by_seq": seqs["force"]},
        {"version": "reco-v2", "live_from": T0 + 3 * H, "live_until": T0 + 8 * H, "promotion_seq": seqs["force"], "promotion_operator": "officer-7", "ended_by_seq": seqs["approve"]},
        {"version": "reco-v3", "live_from": T0 + 8 * H, "live_until": None, "promotion_seq": seqs["approve"], "promotion_operator": "head-of-mrm", "ended_by_seq": None},
    ]


def test_subject_timeline_and_window(session, known):
    seqs = known[1]
    everything = rows(session, "SELECT seq, table_name, request_id, summary, entry FROM subject_timeline('s1')")
    expected = [seqs[f"{r}.{t}"] for r in ("r1", "r2") for t in ("access", "inference", "attribution", "guardrail")]
    expected += [seqs[f"r4.{t}"] for t in ("inference", "attribution", "guardrail")]
    assert [r["seq"] for r in everything] == expected
    assert everything[0]["summary"] == "teller-1 read crm.profile [age, assets] for suitability_assessment"
    assert everything[1]["summary"] == "reco reco-v1 -> els_note (champion)"
    assert everything[2]["summary"] == "shap: risk_tolerance -0.42, assets +0.31, age +0.05"
    assert everything[3]["summary"] == "kfcpa_art17 modify: els_note -> balanced_fund (risk grade above profile)"
    window = rows(session, "SELECT request_id FROM subject_timeline('s1', since := '2025-09-01T03:00:00Z', until := '2025-09-01T05:00:00Z')")
    assert {r["request_id"] for r in window} == {"r2"} and len(window) == 4
    assert rows(session, "SELECT * FROM subject_timeline('nobody')") == []
    entry = json.loads(everything[0]["entry"])
    assert entry["subject_id"] == "s1" and entry["columns"] == ["age", "assets"]


def test_subject_decisions(session):
    got = rows(session, "SELECT request_id FROM subject_decisions('s2')")
    assert got == [{"request_id": "r3"}, {"request_id": "r5"}]
    got = rows(session, "SELECT request_id FROM subject_decisions('s2', since := '2025-09-01T06:00:00Z')")
    assert got == [{"request_id": "r5"}]
    for subject in ("s1", "s2"):  # row for row what the view gives
        assert rows(session, f"SELECT * FROM subject_decisions('{subject}')") == rows(
            session, f"SELECT * FROM decisions WHERE subject_id = '{subject}' ORDER BY ts, inference_seq")


def test_manual_overrides_with_reasons(session, known):
    got = rows(session, "SELECT seq, decision, operator, reason FROM manual_overrides()")
    assert got == [
        {"seq": known[1]["force"], "decision": "force_promote", "operator": "officer-7", "reason": "urgent fix of the suitability mapping (MRM-118)"},
        {"seq": known[1]["approve"], "decision": "approve", "operator": "head-of-mrm", "reason": "validation report MRM-120 reviewed"},
    ]
    assert rows(session, "SELECT seq FROM manual_overrides(until := '2025-09-01T04:00:00Z')") == [{"seq": known[1]["force"]}]


def test_rejections_name_their_failing_checks(session, known):
    got = rows(session, "SELECT * FROM rejections()")
    assert len(got) == 1
    r = got[0]
    assert r["seq"] == known[1]["reject"] and r["challenger_version"] == "reco-v2-rc1"
    assert r["failing_checks"] == [{"name": "fidelity:suitability", "passed": False, "detail": "js 0.09 > max 0.05"}]
    assert [c["metric"] for c in r["failing_comparisons"]] == ["auc"]
    assert r["not_significant"] == []


def test_guardrail_interventions(session, known):
    got = rows(session, "SELECT seq, request_id, subject_id, verdict, original_output, final_output, reason FROM guardrail_interventions()")
    assert got == [
        {"seq": known[1]["r1.guardrail"], "request_id": "r1", "subject_id": "s1", "verdict": "modify", "original_output": "els_note",
         "final_output": "balanced_fund", "reason": "risk grade above profile"},
        {"seq": known[1]["r3.guardrail"], "request_id": "r3", "subject_id": "s2", "verdict": "block", "original_output": "els_note",
         "final_output": None, "reason": "customer profile not confirmed"},
    ]


def test_ledger_files_and_info(session, known):
    files = rows(session, "SELECT * FROM ledger_files")
    sealed = [f for f in files if f["path"]]
    assert {f["table_name"] for f in sealed} == {"operation", "model_promotion", "data_access", "model_inference", "attribution", "guardrail"}
    assert all(len(f["sha256"]) == 64 for f in sealed)
    unsealed = {f["table_name"]: (f["first_seq"], f["last_seq"]) for f in files if f["path"] is None}
    assert unsealed["model_promotion"] == (known[1]["stale"], known[1]["stale"])
    info = rows(session, "SELECT * FROM ledger_info")[0]
    assert info["verified"] is False and info["through_seq"] == 25 and info["summary"] == "not verified in this run"


def test_verified_session_says_what_it_rests_on(known):
    with LedgerSQL.open(known[0], verifier=HmacChainVerifier(KEYRING)) as s:
        info = s.query("SELECT * FROM ledger_info").to_pylist()[0]
        assert info["verified"] is True and info["method"] == "hmac-chain" and info["through_seq"] == 25
        assert s.attestation.line().startswith("verified (hmac-chain): answers rest on entries 0-25")


def test_export_to_a_directory_outside_the_ledger(known, tmp_path):
    out = tmp_path / "exports"
    out.mkdir()
    with LedgerSQL.open(known[0], export_dir=out) as s:
        result = s.run(s.statements(f"COPY (SELECT request_id, served_output FROM decisions ORDER BY request_id) TO '{out}/d.csv' (HEADER)")[0])
        assert result.copied == 5
        # and the export can be read back
        assert s.query(f"SELECT count(*) AS n FROM read_csv('{out}/d.csv')").to_pylist() == [{"n": 5}]
    with open(out / "d.csv") as f:
        assert [r["request_id"] for r in csv.DictReader(f)] == ["r1", "r2", "r3", "r4", "r5"]


def test_timestamps_are_utc(session):
    got = rows(session, "SELECT ts FROM model_inference WHERE request_id = 'r1'")[0]["ts"]
    assert got == T0 + H + dt.timedelta(microseconds=10) and got.utcoffset() == dt.timedelta(0)


def test_the_readme_examples_run(session):
    """Every statement in the README's SQL forensics examples runs as written."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## SQL forensics"):]
    block = section[section.index("```sql") + len("```sql"):]
    block = block[: block.index("```")]
    statements = [s.strip() for s in block.split(";") if s.strip() and not all(l.startswith("--") for l in s.strip().splitlines())]
    assert len(statements) >= 5
    for sql in statements:
        session.query(sql)
