"""The demo scenario, checked from the ledger alone.

One demo is built for the whole module, through the command line (so the CLI is tested by the
same run), and every story claim is then read back from the ledger's own entries: promotions,
the fidelity-floor rejection of a challenger with the higher AUC, the pending approval and its
approver, the emergency force-promote after a fairness alert, the schema change, the key
rotation, and that no unsuitable recommendation was served. Determinism is checked with a
second, shorter run: its ledger must be exactly the first weeks of the full one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from gates.evaluation import EvaluationFile
from gates.ledger_io import load_registry, parse_details
from gates.replay_check import check_replay
from ledger import Keyring, verify_ledger
from ledger.keys import load_verifiers
from ledger.proofs import verify_proof
from ledger.public import verify_public
from ledger.read import read_tables
from mrm.cli import main
from mrm.demo import suitability as S
from mrm.demo import world as W
from mrm.demo.scenario import DEFAULT_SEED, HOLDOUT_SIZE, SLOT, ledger_content, run_demo

# The default request volume: the smallest at which the weekly fairness monitor has 30
# eligible customers in the breached segment (its minimum group size).
REQUESTS = 50_000
SHORT_WEEKS = 10  # bootstrap, schema change, fidelity rejection, first promotion
REPO = Path(__file__).resolve().parents[1]
KST = dt.timezone(dt.timedelta(hours=9))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Iterator[tuple[subprocess.Popen, Path]]:
    """The first weeks again, same seed, in another process: started before the full year is
    built, so on two cores the two runs overlap (the determinism test waits for it)."""
    out = tmp_path_factory.mktemp("short") / "demo-out"
    code = (f"from mrm.demo.scenario import run_demo; "
            f"run_demo({str(out)!r}, {REQUESTS}, {DEFAULT_SEED}, weeks={SHORT_WEEKS})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def demo(tmp_path_factory, short_run) -> dict:
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--requests", str(REQUESTS)])
    tables = read_tables(out / "ledger")
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table)
    return {"out": out, "cli": result, "tables": tables, "sql": con}


def rows(demo: dict, sql: str, params: list | None = None) -> list[dict]:
    return demo["sql"].sql(sql, params=params).to_arrow_table().to_pylist() if params else \
        demo["sql"].sql(sql).to_arrow_table().to_pylist()


def promotions(demo: dict) -> list[dict]:
    out = demo["tables"]["model_promotion"].drop_columns(["mac"]).to_pylist()
    for r in out:
        r["details"] = parse_details(r["details"])
    return out


def operations(demo: dict, event_type: str) -> list[dict]:
    ops = demo["tables"]["operation"]
    out = ops.filter(pc.equal(ops.column("event_type"), event_type)).drop_columns(["mac"]).to_pylist()
    for r in out:
        r["details"] = parse_details(r["details"])
    return out


# --- the command line --------------------------------------------------------------------------


def test_cli_exits_0_and_prints_where_everything_is(demo):
    result, out = demo["cli"], demo["out"]
    assert result.exit_code == 0, result.output
    text = result.output
    for name in ("ledger", "ledger.keyring.json", "ledger.pub", "disputed-request.txt", "disputed-request.json",
                 "proofs/"):
        assert str(out / name).rstrip("/") in text or name in text
    assert f"{REQUESTS:,} requests" in text
    assert "verified: HMAC chain ok, signed checkpoints with the public key ok, inclusion proof ok" in text
    assert "mrm verify-proof" in text and "--public-key" in text and "mrm registry history" in text
    assert "mrm reconstruct" in text and "mrm sql" in text
    assert "mrm gate replay" in text and "--evaluation" in text
    assert len(text.splitlines()) < 64  # a summary, not a log: the year's events and where things are
    result_file = json.loads((out / "demo-result.json").read_text())
    assert result_file["requests"] == REQUESTS and result_file["hmac_verified"] and result_file["public_verified"]


# --- every request ---------------------------------------------------------------------------


def test_every_request_writes_access_inference_attribution_guardrail_in_that_order(demo):
    t = demo["tables"]
    # a challenger scoring in shadow adds its own inference, never served (no attribution, no verdict)
    served = rows(demo, "SELECT count(*) AS n FROM model_inference WHERE route <> 'shadow'")[0]["n"]
    assert served == len(t["attribution"]) == len(t["guardrail"]) == REQUESTS < len(t["model_inference"])
    out_of_order = rows(demo, """
        SELECT count(*) AS n FROM data_access d JOIN model_inference m USING (request_id)
        JOIN attribution a USING (request_id) JOIN guardrail g USING (request_id)
        WHERE m.route <> 'shadow' AND NOT (d.seq < m.seq AND m.seq < a.seq AND a.seq < g.seq)""")
    assert out_of_order == [{"n": 0}]
    assert rows(demo, "SELECT count(DISTINCT request_id) AS n FROM data_access WHERE request_id IS NOT NULL") == \
        [{"n": REQUESTS}]
    access = rows(demo, "SELECT DISTINCT split_part(operator, ':', 1) AS kind, access_type, dataset FROM data_access "
                        "WHERE request_id IS NOT NULL ORDER BY kind")
    assert {a["kind"] for a in access} == {"advisor", "channel", "teller"}
    assert {(a["access_type"], a["dataset"]) for a in access} == {("read", W.PROFILE_DATASET)}
    assert rows(demo, "SELECT count(*) AS n FROM data_access WHERE request_id IS NOT NULL "
                      "AND purpose NOT LIKE '%KFCPA Art. 17%'") == [{"n": 0}]
    # the model version served is the production version of the registry at that instant
    registry = load_registry(demo["out"] / "ledger").registry
    sample = rows(demo, "SELECT ts, model_version FROM (SELECT * FROM model_inference WHERE route = 'champion') "
                        "USING SAMPLE 200 ROWS (reservoir, 7)")
    assert all(registry.champion_at(SLOT, r["ts"]) == r["model_version"] for r in sample)
    # attributions are of the version that made the inference, five features each
    assert rows(demo, "SELECT count(*) AS n FROM model_inference m JOIN attribution a USING (request_id) "
                      "WHERE m.route <> 'shadow' AND (m.model_version <> a.model_version OR len(a.top_features) <> 5)") == [{"n": 0}]


def test_no_unsuitable_recommendation_was_served(demo):
    g = rows(demo, "SELECT request_id, subject_id, verdict, original_output, final_output, reason, criteria "
                   "FROM guardrail JOIN model_inference USING (request_id) WHERE route <> 'shadow'")
    stopped = [r for r in g if r["verdict"] != "pass"]
    assert stopped and {r["verdict"] for r in g} == {"pass", "modify", "block"}
    assert all(r["final_output"] != r["original_output"] and "KFCPA Art. 17" in r["reason"] for r in stopped)
    assert all(r["final_output"] is None for r in g if r["verdict"] == "block")
    # the rule, recomputed from the bank's own customer profiles (not from what the ledger says)
    world = W.World(W.WorldConfig(seed=DEFAULT_SEED))
    population = world.customer_base(REQUESTS)  # the population and the campaign's pool
    index = {sid: i for i, sid in enumerate(population.subject_ids())}
    customers = population.take(np.array([index[r["subject_id"]] for r in g]))
    allowed = S.check_suitability_batch(customers, np.zeros(len(g), dtype=np.int64)).allowed_grade
    grade = {p.id: p.risk_grade for p in W.PRODUCTS}
    for r, allowed_grade in zip(g, allowed.tolist()):
        assert dict(r["criteria"])["allowed_risk_grade"] == allowed_grade
        if r["final_output"] is not None:
            assert grade[r["final_output"]] >= allowed_grade, r
        if r["verdict"] == "pass":
            assert grade[r["original_output"]] >= allowed_grade


# --- the gate's year ----------------------------------------------------------------------------


def test_bootstrap_then_promotions_by_the_gate(demo):
    p = promotions(demo)
    assert p[0]["decision"] == "bootstrap" and p[0]["trigger"] == "auto" and p[0]["champion_version"] is None
    promoted = [r for r in p if r["decision"] == "promote"]
    assert len(promoted) >= 2
    for r in promoted:
        assert r["trigger"] == "auto" and r["operator"] is None
        mean = r["comparison"][0]
        assert mean["metric"] == "mean_auc" and mean["passed"] and mean["delta_rel"] >= 0.005
        assert any(s["significant"] for s in r["significance"])
    # one weekly challenger per Monday 03:08 KST, each decided once
    gated = [r for r in p if r["decision"] in ("bootstrap", "promote", "reject", "pending_approval")]
    assert len(gated) == 52 and len({r["challenger_version"] for r in gated}) == 52
    assert {(r["ts"].astimezone(KST).weekday(), r["ts"].astimezone(KST).strftime("%H:%M")) for r in gated} == {(0, "03:08")}


def test_rejected_at_the_fidelity_floor_although_its_auc_is_higher(demo):
    evaluated = {(e["details"]["version"], e["details"]["holdout_digest"]): e["details"]
                 for e in operations(demo, "model_evaluated")}
    found = []
    for r in promotions(demo):
        if r["decision"] != "reject" or r["details"]["stage"] != "fidelity":
            continue
        digest = r["details"]["replay"]["challenger_digest"]
        challenger = next(e for e in evaluated.values() if e["evaluation_digest"] == digest)
        champion = evaluated[(r["champion_version"], challenger["holdout_digest"])]
        failing = [c for c in r["details"]["checks"] if not c["passed"]]
        assert failing and all(c["name"].startswith("fidelity:") for c in failing)
        assert "fidelity floor, before competition" in r["reason"] and r["comparison"] == []
        if challenger["mean_auc"] > champion["mean_auc"]:
            found.append((r, challenger, champion))
    assert found, "a challenger with the higher mean AUC must have been rejected at the fidelity floor"
    r, challenger, champion = found[0]
    task = r["details"]["checks"][[c["passed"] for c in r["details"]["checks"]].index(False)]["name"].split(":")[1]
    assert challenger["fidelity_kl"][task] > dict(r["thresholds"])[f"fidelity.{task}.kl.max"]
    # the recorded evaluation file is the one the gate decided on (digest-only recording)
    evaluation = EvaluationFile.load(demo["out"] / challenger["evaluation_file"])
    assert evaluation.digest == r["details"]["replay"]["challenger_digest"]
    assert len(evaluation.holdout["task_time_deposit"].sample_ids) == HOLDOUT_SIZE
    # ... and with both files the decision replays from the ledger's record
    (report,) = check_replay(demo["out"] / "ledger", r["seq"],
                             [evaluation, EvaluationFile.load(demo["out"] / champion["evaluation_file"])])
    assert report.matches, report.to_text()


def test_left_pending_under_the_sign_off_policy_then_approved_by_a_named_operator(demo):
    p = promotions(demo)
    policy_change = operations(demo, "policy_change")
    assert len(policy_change) == 1
    change = policy_change[0]
    assert change["details"]["changes"] == [{"key": "gate.auto_promote", "from": True, "to": False}]
    pending = [r for r in p if r["decision"] == "pending_approval"]
    assert pending and all(r["seq"] > change["seq"] for r in pending)
    assert all(not r["details"]["replay"]["policy"]["gate"]["auto_promote"] for r in pending)
    assert all(r["details"]["replay"]["policy"]["gate"]["auto_promote"] for r in p
               if r["seq"] < change["seq"] and r["details"]["replay"].get("kind") == "gate")
    first = pending[0]
    approval = next(r for r in p if r["decision"] == "approve" and r["challenger_version"] == first["challenger_version"])
    assert approval["seq"] > first["seq"] and approval["trigger"] == "manual"
    assert approval["operator"] == "mrm.park.seoyeon" and approval["actor"] == "mrm.park.seoyeon"
    assert f"seq {first['seq']}" in approval["reason"] and "MRM committee" in approval["reason"]
    registry = load_registry(demo["out"] / "ledger").registry
    assert registry.champion_at(SLOT, approval["ts"]) == first["challenger_version"]
    assert registry.champion_at(SLOT, first["ts"]) == first["champion_version"]  # pending did not serve


def test_emergency_force_promote_after_a_fairness_breach(demo):
    p = promotions(demo)
    forced = [r for r in p if r["decision"] == "force_promote"]
    assert len(forced) == 1
    f = forced[0]
    assert f["trigger"] == "manual" and f["operator"] == "eng.choi.minjun"
    assert "DI breach" in f["reason"] and f["details"]["stage"] == "force_promote"
    alerts = [a for a in operations(demo, "monitor_alert")
              if a["seq"] < f["seq"] and a["component"] == "gates.fairness.disparate_impact"]
    breach = alerts[-1]
    assert breach["status"] == "breach" and breach["component"] == "gates.fairness.disparate_impact"
    assert breach["details"]["version"] == f["champion_version"]  # the breached version is what was replaced
    m = breach["details"]["measurements"]
    assert m["value"] < m["min"] == 0.8 and m["confident"] and m["ci_high"] < 0.8
    assert f"alert seq {breach['seq']}" in f["reason"]
    assert f["details"]["responds_to_seq"] == breach["seq"]  # the typed link, not only the text
    assert dt.timedelta(0) < f["ts"] - breach["ts"] <= dt.timedelta(hours=1)
    assert breach["ts"].astimezone(KST).weekday() == 1 and breach["ts"].astimezone(KST).hour == 14  # Tuesday 2 p.m.
    run = next(r for r in operations(demo, "monitor_run") if r["correlation_id"] == breach["correlation_id"])
    assert run["status"] == "alert" and run["seq"] < breach["seq"]
    # the restored version is a known-good one: production before, never alerted on
    registry = load_registry(demo["out"] / "ledger").registry
    assert f["challenger_version"] in [t.version for t in registry.history(SLOT)
                                       if t.to_state == "production" and t.seq < f["seq"]]
    assert all(a["details"]["version"] != f["challenger_version"] for a in operations(demo, "monitor_alert")
               if a["seq"] < f["seq"])
    review = operations(demo, "override_review")
    assert review and review[0]["details"]["reviews_seq"] == f["seq"] and review[0]["seq"] > f["seq"]
    # the monitor ran every Tuesday, and alerted on no other version
    fairness_runs = [r for r in operations(demo, "monitor_run") if r["details"]["kind"] == "fairness"]
    assert len(fairness_runs) == 52
    assert {a["details"]["version"] for a in operations(demo, "monitor_alert")
            if a["component"].startswith("gates.fairness")} == {f["champion_version"]}


def test_feature_schema_change(demo):
    (change,) = demo["tables"]["dimension_change"].to_pylist()
    assert (change["old_dimension"], change["new_dimension"]) == (W.SCHEMA_V1.dimension, W.SCHEMA_V2.dimension)
    assert change["old_schema_digest"] == W.SCHEMA_V1.digest and change["new_schema_digest"] == W.SCHEMA_V2.digest
    assert change["features_removed"] == ["invest_experience_years"] and "debt_ratio" in change["features_added"]
    registered = operations(demo, "model_registered")
    schemas = [(r["seq"], r["details"]["lineage"]["feature_schema_digest"]) for r in registered]
    assert all(d == W.SCHEMA_V1.digest for s, d in schemas if s < change["seq"])
    assert all(d == W.SCHEMA_V2.digest for s, d in schemas if s > change["seq"])
    assert any(s > change["seq"] for s, _ in schemas)


def test_key_rotation_midyear_and_the_whole_ledger_verifies(demo):
    out = demo["out"]
    (rotation,) = operations(demo, "key_rotation")
    old, new = rotation["details"]["previous_key_id"], rotation["details"]["new_key_id"]
    assert old != new and rotation["key_id"] == old  # the rotation entry is MACed under the old key
    assert rotation["ts"].astimezone(KST).date() == dt.date(2025, 7, 1)
    by_key = rows(demo, " UNION ALL ".join(
        f"SELECT key_id, min(seq) AS lo, max(seq) AS hi FROM {t} GROUP BY key_id" for t in demo["tables"]))
    assert all(r["hi"] <= rotation["seq"] for r in by_key if r["key_id"] == old)
    assert all(r["lo"] > rotation["seq"] for r in by_key if r["key_id"] == new)
    keyring = Keyring.load(out / "ledger.keyring.json")
    assert set(keyring.keys) == {old, new} and keyring.active == new
    report = verify_ledger(out / "ledger", keyring)
    assert report.ok, report.to_text()
    public = verify_public(out / "ledger", load_verifiers(out / "ledger.pub"))
    assert public.ok, public.to_text()


def test_late_outcomes_and_the_simulated_calendar(demo):
    t = demo["tables"]
    start = dt.datetime(2025, 1, 5, tzinfo=dt.timezone.utc)
    end = dt.datetime(2026, 1, 5, tzinfo=KST)
    for name, table in t.items():
        assert pc.min(table.column("ts")).as_py() >= start and pc.max(table.column("ts")).as_py() < end, name
    late = rows(demo, """
        SELECT m.ts AS served, o.ts AS observed, json_extract_string(o.details, '$.label') AS label
        FROM operation o JOIN model_inference m ON o.correlation_id = m.request_id
        WHERE o.event_type = 'outcome'""")
    assert 0.9 * REQUESTS < len(late) < REQUESTS  # the last two weeks' outcomes are still to come
    for r in late:
        days = (r["observed"].astimezone(KST).date() - r["served"].astimezone(KST).date()).days
        assert days >= (1 if r["label"] == "time_deposit" else 7)
    actors = {r["actor"] for r in rows(demo, "SELECT DISTINCT actor FROM operation UNION SELECT DISTINCT actor "
                                             "FROM model_promotion UNION SELECT DISTINCT actor FROM guardrail")}
    assert {"reco-pipeline", "reco-api", "fairness-monitor", "outcomes-etl", "eng.choi.minjun"} <= actors


def test_the_disputed_recommendation_is_reconstructed_and_proven(demo):
    out = demo["out"]
    rec = json.loads((out / "disputed-request.json").read_text(encoding="utf-8"))
    decision = rec["decision"]
    rid = decision["request_id"]
    seqs = sorted(r["seq"] for r in rows(demo, " UNION ALL ".join(
        f"SELECT seq FROM {t} WHERE request_id = ?" for t in ("data_access", "model_inference", "attribution",
                                                              "guardrail")), [rid] * 4))
    recorded = sorted([decision["inference"]["entry"]["seq"]]
                      + [part["entry"]["seq"] for key in ("data_access", "attributions", "guardrails")
                         for part in decision[key]])
    assert recorded == seqs and len(seqs) == 4
    assert decision["attestation"]["verified"] and decision["attestation"]["method"] == "signed-checkpoint"
    assert decision["data_access"][0]["operator"] and "KFCPA Art. 17" in decision["data_access"][0]["purpose"]
    assert decision["guardrails"][0]["verdict"] == "modify" and decision["attributions"][0]["top_features"]
    assert decision["served_output"] == decision["guardrails"][0]["final_output"] != decision["inference"]["decision"]
    promotion = decision["promotion"]
    assert promotion["decision"] == "approve" and promotion["operator"] == "mrm.park.seoyeon"
    assert promotion["challenger_version"] == decision["inference"]["model_version"]
    assert rec["outcome"] is None or rec["outcome"]["details"]["label"] in {p.id for p in W.PRODUCTS}
    text = (out / "disputed-request.txt").read_text(encoding="utf-8")
    assert rid in text and "mrm.park.seoyeon" in text and "verified (signed-checkpoint)" in text
    proof_file = out / "proofs" / f"{rid}.proof.json"
    report = verify_proof(json.loads(proof_file.read_text()), load_verifiers(out / "ledger.pub"))
    assert report.ok and [e["seq"] for e in json.loads(proof_file.read_text())["entries"]] == seqs


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_the_same_ledger_and_another_seed_differs(demo, short_run, tmp_path):
    proc, short_out = short_run
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output.decode(errors="replace")
    full = ledger_content(demo["out"] / "ledger")
    again = ledger_content(short_out / "ledger")
    last = max(pc.max(t.column("seq")).as_py() for t in again.values() if len(t))
    assert last > 10_000
    for name, table in again.items():
        prefix = full[name].filter(pc.less_equal(full[name].column("seq"), last))
        assert prefix.equals(table), name  # every typed column, timestamps included
    # ... though the ledger id, the keys and so every MAC differ
    assert json.loads((short_out / "ledger" / "LEDGER.json").read_text())["ledger_id"] != \
        json.loads((demo["out"] / "ledger" / "LEDGER.json").read_text())["ledger_id"]
    macs = demo["tables"]["guardrail"].column("mac")[0], read_tables(short_out / "ledger")["guardrail"].column("mac")[0]
    assert macs[0] != macs[1]

    other = ledger_content(run_demo(tmp_path / "other", REQUESTS, DEFAULT_SEED + 1, weeks=2).paths.ledger)
    inference = full["model_inference"].slice(0, len(other["model_inference"]))
    assert not inference.equals(other["model_inference"])
    assert inference.column("input_digest") != other["model_inference"].column("input_digest")


def test_output_directory_that_is_not_a_demo_is_refused(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    result = CliRunner().invoke(main, ["demo", "--out", str(precious), "--requests", "100"])
    assert result.exit_code == 2 and "does not hold an earlier demo" in result.output
    assert (precious / "chapter1.tex").exists()


def test_the_demo_ends_with_examiner_pdfs_that_verify(demo):
    """`mrm demo` writes the disputed decision's dossier, the slot's validation history and
    the SR 11-7 evidence pack, each verifying with the public key written beside the ledger."""
    from reports.verify import load_verifier_keys, verify_report

    out = demo["out"]
    keys = load_verifier_keys(out / "ledger.pub")
    for kind, name in (("decision", "decision-dossier.pdf"), ("validation", "validation-history.pdf"),
                       ("evidence", "evidence-pack-sr-11-7.pdf")):
        pdf = out / "reports" / name
        assert str(pdf) in demo["cli"].output or name in demo["cli"].output
        checked = verify_report(pdf, keys)
        assert checked.ok, (kind, checked.problems)
        assert checked.manifest.kind == kind


def test_the_real_gates_entries_meet_the_sr_11_7_pack(demo):
    """The packs judge what the real gate writes (a bootstrap records its policy, not
    thresholds); the demo's year has no SR 11-7 gap."""
    result = CliRunner().invoke(main, ["map", str(demo["out"] / "ledger"), "--pack", "sr-11-7", "--json", "--no-bundle"])
    assert result.exit_code == 0, result.output
    statuses = {r["id"]: r["status"] for r in json.loads(result.stdout)["requirements"]}
    assert statuses["sec6-policies-change-control"] == "met"
    assert "gap" not in statuses.values(), statuses


def test_the_validation_history_and_evidence_pack_show_drift_the_online_trial_and_the_rollback(demo):
    """The monitors' evidence reaches the PDFs: the drift results past the investigate line
    (not every nightly result), the online evaluation with its split, the automatic rollback
    and the alert behind it, read from the rendered text."""
    from tests.report_support import page_texts, squash

    r = json.loads((demo["out"] / "demo-result.json").read_text())
    ops = demo["tables"]["operation"]
    drift = [parse_details(d) for d, e in zip(ops.column("details").to_pylist(), ops.column("event_type").to_pylist())
             if e == "monitor_run" and d and '"kind":"drift"' in d]
    assert len(drift) == r["drift_runs"] >= 350
    results = [x for d in drift for x in d["results"]]
    flagged = [x for x in results if x["status"] != "stable"]
    assert 0 < len(flagged) < len(results) // 20

    validation = squash(" ".join(page_texts((demo["out"] / "reports" / "validation-history.pdf").read_bytes())))
    assert squash(f"{len(flagged)} of the {len(results):,} results of {len(drift)} drift run(s)") in validation \
        or squash(f"{len(flagged)} of the {len(results)} results of {len(drift)} drift run(s)") in validation
    online = next(d for d, e, s in zip(ops.column("details").to_pylist(), ops.column("event_type").to_pylist(),
                                       ops.column("seq").to_pylist()) if s == r["online_evaluation_seq"])
    n_chal = parse_details(online)["n_challenger"]
    for shown in (str(r["online_evaluation_seq"]), str(r["rollback_seq"]), str(r["rollback_alert_seq"]),
                  f"n={n_chal}", "rollback", "latency_ms"):
        assert squash(shown) in validation, shown

    evidence = squash(" ".join(page_texts((demo["out"] / "reports" / "evidence-pack-sr-11-7.pdf").read_bytes())))
    assert squash(str(r["rollback_alert_seq"])) in evidence  # the rollback alert, followed up
