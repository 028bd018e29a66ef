"""Online champion/challenger and monitors over a real ledger: routing recorded and replayed,
late outcomes, online evaluation, rollback triggers (proposed or performed), fairness and drift
runs and the entries they write."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gates.alerts import PROPOSE_RETRAIN, PROPOSE_ROLLBACK
from gates.ledger_io import load_registry
from gates.manifest import serving_manifest
from gates.monitoring import (
    act_on_serving,
    compute_drift,
    compute_fairness,
    compute_online,
    compute_serving,
    load_subjects,
    record_monitor_report,
    record_online,
)
from gates.observations import (
    MonitorInputError,
    Window,
    read_inferences,
    read_outcomes,
    record_inference_error,
    record_outcome,
    record_outcomes,
)
from gates.online import BUCKETS, TrafficMode, route
from gates.policy import parse_policy
from gates.promotion import force_promote, register_candidate, set_traffic
from gates.replay_check import check_replay
from ledger import Ledger
from ledger.read import read_table

SLOT = "credit_pd"

POLICY = """
[gate]
primary_metric = "auc"
[metrics.auc]
[metrics.latency_ms]
direction = "lower"
test = "welch"
[metrics.revenue]
direction = "higher"
test = "welch"
[online]
min_samples = 30
alpha = 0.05
[rollback]
max_error_rate = 0.02
max_latency_p99_ratio = 2.0
slo_metric = "accuracy"
slo_floor = 0.88
slo_window = 3
slo_consecutive = 2
action = "{action}"
[monitors]
min_group_size = 30
"""


def policy(action: str = "propose"):
    return parse_policy(POLICY.format(action=action), "monitor-policy.toml")


@pytest.fixture
def ledger(tmp_path, keyring):
    with Ledger.create(tmp_path / "ledger", keyring, actor="monitor-test") as opened:
        yield opened


def live(ledger: Ledger, *versions: str) -> dt.datetime:
    """Register and force-promote each version in turn; returns when the last one went live."""
    for v in versions:
        register_candidate(ledger, slot=SLOT, version=v)
        r = force_promote(ledger, slot=SLOT, version=v, operator="eng", reason="setup")
    return r.ts


def infer(ledger: Ledger, version: str, n: int, *, start: dt.datetime, step: dt.timedelta = dt.timedelta(seconds=1),
          route_: str | None = "champion", latency=lambda i: 10.0, decision=lambda i: "approve",
          subject=lambda i: f"cust-{i}", scores=None, prefix: str | None = None) -> list[str]:
    prefix = prefix or f"{version}-{route_}"
    ids = [f"{prefix}-{i}" for i in range(n)]
    rows = [{"ts": start + i * step, "request_id": rid, "subject_id": subject(i), "model_slot": SLOT,
             "model_version": version, "input_digest": hashlib.sha256(rid.encode()).hexdigest(),
             "decision": decision(i), "latency_ms": float(latency(i)), "route": route_,
             "scores": scores(i) if scores else {"approve": 0.5}} for i, rid in enumerate(ids)]
    ledger.append("model_inference", rows)
    return ids


def ops(ledger: Ledger, event_type: str) -> list[dict]:
    ledger.flush()
    rows = [r for r in read_table(ledger.path, "operation").to_pylist() if r["event_type"] == event_type]
    for r in rows:
        r["details"] = json.loads(r["details"]) if r["details"] else None
    return rows


def promotions(ledger: Ledger) -> list[dict]:
    ledger.flush()
    return read_table(ledger.path, "model_promotion").to_pylist()


# --- routing as the ledger records it ---------------------------------------------------------------


def test_routing_recorded_in_the_ledger_is_stable_and_close_to_the_split(ledger):
    t0 = live(ledger, "v1")
    register_candidate(ledger, slot=SLOT, version="v2")
    set_traffic(ledger, slot=SLOT, challenger_version="v2", mode="canary_10", experiment="exp-1",
                operator="eng-7", reason="canary after the offline pass")
    split = serving_manifest(ledger.path)["slots"][SLOT]["challenger"]
    mode, experiment = TrafficMode(split["mode"]), split["experiment"]
    rows = []
    n = 4000
    for i in range(n):  # what a serving system does with the manifest
        rid = f"req-{i:05d}"
        r = route(rid, mode, experiment)
        rows.append({"ts": t0, "request_id": rid, "subject_id": f"c{i}", "model_slot": SLOT,
                     "model_version": "v2" if r.served == "challenger" else "v1",
                     "input_digest": hashlib.sha256(rid.encode()).hexdigest(), "decision": "approve",
                     "latency_ms": 5.0, "route": r.served})
    ledger.append("model_inference", rows)
    ledger.flush()
    recorded = read_inferences(ledger.path, SLOT)
    share = sum(r["route"] == "challenger" for r in recorded) / n
    assert abs(share - 0.10) <= 4 * math.sqrt(0.1 * 0.9 / n)
    # Deterministic: every recorded request routes the same way again, from its id alone.
    assert all(route(r["request_id"], mode, experiment).served == r["route"] for r in recorded)
    assert all((r["model_version"] == "v2") == (r["route"] == "challenger") for r in recorded)
    assert round(mode.challenger_share * BUCKETS) == 1000


# --- late outcomes ------------------------------------------------------------------------------------


def test_outcomes_are_append_only_and_the_latest_one_counts(ledger):
    observed = dt.datetime(2026, 5, 3, 9, 30, tzinfo=dt.timezone.utc)
    first = record_outcome(ledger, "req-1", "approve", observed_at=observed, source="servicing")
    second = record_outcome(ledger, "req-1", "decline", observed_at=observed + dt.timedelta(days=1),
                            values={"revenue": 12.5}, source="servicing-correction")
    record_outcomes(ledger, [{"request_id": "req-2", "label": 1, "observed_at": "2026-05-04T00:00:00+00:00"}])
    entries = ops(ledger, "outcome")
    assert [(e["seq"], e["correlation_id"], e["component"], e["status"]) for e in entries] == [
        (first, "req-1", "outcomes", "recorded"), (second, "req-1", "outcomes", "recorded"),
        (second + 1, "req-2", "outcomes", "recorded")]
    assert entries[0]["details"] == {"label": "approve", "observed_at": "2026-05-03T09:30:00Z", "source": "servicing"}
    got = read_outcomes(ledger.path)
    assert (got["req-1"].label, got["req-1"].values, got["req-1"].seq) == ("decline", {"revenue": 12.5}, second)
    assert got["req-2"].label == 1
    with pytest.raises(MonitorInputError, match="outcome 1: request r: an outcome needs a label or values"):
        record_outcomes(ledger, [{"request_id": "q", "label": 0}, {"request_id": "r"}])
    assert len(ops(ledger, "outcome")) == 3  # all or nothing


# --- online champion/challenger -----------------------------------------------------------------------


def test_online_evaluation_from_the_ledger_with_a_minimum_sample_size(ledger):
    t0 = live(ledger, "v1")
    register_candidate(ledger, slot=SLOT, version="v2")
    set_traffic(ledger, slot=SLOT, challenger_version="v2", mode="ab_50", operator="eng", reason="A/B")
    rng = np.random.default_rng(1)
    champ_lat, chal_lat = rng.normal(20, 2, 60), rng.normal(15, 2, 60)
    infer(ledger, "v1", 60, start=t0, latency=lambda i: champ_lat[i])
    chal_ids = infer(ledger, "v2", 20, start=t0, route_="challenger", latency=lambda i: chal_lat[i])
    ledger.flush()
    early = compute_online(ledger.path, SLOT, policy(), metrics=["latency_ms"])
    [r] = early.results
    assert (r.outcome, early.n_champion, early.n_challenger) == ("insufficient_data", 60, 20)
    assert "20 samples, the policy requires at least 30" in r.detail
    more = infer(ledger, "v2", 40, start=t0, route_="challenger", latency=lambda i: chal_lat[20 + i], prefix="v2-more")
    for rid in chal_ids + more[:15]:  # revenue arrives late, for some requests only
        record_outcome(ledger, rid, values={"revenue": 10.0})
    ledger.flush()
    report = compute_online(ledger.path, SLOT, policy())
    by = {r.metric: r for r in report.results}
    assert by["latency_ms"].outcome == "challenger_better" and by["latency_ms"].test.p_value < 1e-6
    assert by["revenue"].outcome == "insufficient_data"  # the champion arm has no revenue outcomes at all
    assert report.missing["revenue"] == (60, 25)
    seq = record_online(ledger, report)
    [entry] = ops(ledger, "online_evaluation")
    assert (entry["seq"], entry["status"], entry["correlation_id"]) == (seq, "mixed", "credit_pd/v2")
    assert entry["details"]["challenger_version"] == "v2" and len(entry["details"]["results"]) == 2


# --- serving health: rollback triggers ---------------------------------------------------------------


def test_an_error_rate_breach_writes_an_alert_proposing_a_rollback(ledger):
    t0 = live(ledger, "v1", "v2")
    ids = infer(ledger, "v2", 95, start=t0 + dt.timedelta(seconds=1))
    for i in range(5):
        record_inference_error(ledger, request_id=f"failed-{i}", slot=SLOT, version="v2", error="timeout")
    ledger.flush()
    report = compute_serving(ledger.path, SLOT, policy("propose"), window=Window(t0, t0 + dt.timedelta(hours=1)))
    assert (report.version, report.serving.requests, report.serving.errors) == ("v2", 100, 5)
    assert len(ids) == 95
    action = act_on_serving(ledger, report)
    [alert] = ops(ledger, "monitor_alert")
    assert alert["seq"] == action.alert_seq and action.rollback is None
    assert (alert["component"], alert["status"]) == ("gates.online.rollback", "breach")
    d = alert["details"]
    assert (d["slot"], d["version"], d["action"]) == (SLOT, "v2", PROPOSE_ROLLBACK)
    assert d["summary"] == "credit_pd v2: rollback proposed: error rate 5.00% > 2.00%"
    assert d["measurements"]["error_rate"] == 0.05
    assert load_registry(ledger.path).registry.production(SLOT) == "v2"  # proposed, not done
    assert [p["decision"] for p in promotions(ledger)] == ["force_promote", "force_promote"]


def test_a_sustained_slo_breach_rolls_back_through_the_ledger_when_the_policy_says_so(ledger):
    t0 = live(ledger, "v1", "v2")
    day = dt.timedelta(days=1)
    accuracy = [0.95, 0.93, 0.80, 0.78, 0.75, 0.74]  # rolling mean of 3 below 0.88 twice in a row
    for d, acc in enumerate(accuracy):
        ids = infer(ledger, "v2", 50, start=t0 + d * day + dt.timedelta(minutes=1), prefix=f"day{d}")
        correct = int(round(acc * 50))
        for i, rid in enumerate(ids):
            record_outcome(ledger, rid, "approve" if i < correct else "decline")
    ledger.flush()
    report = compute_serving(ledger.path, SLOT, policy("rollback"), window=Window(t0, t0 + 7 * day))
    assert report.serving.slo_values == pytest.approx(accuracy, abs=0.011)
    assert "accuracy rolling mean over 3 below 0.88 for 2 periods in a row (period 4)" in report.alert.summary
    action = act_on_serving(ledger, report)
    assert action.rollback is not None
    entry = promotions(ledger)[-1]
    assert (entry["decision"], entry["trigger"], entry["operator"], entry["challenger_version"],
            entry["champion_version"]) == ("rollback", "auto", None, "v1", "v2")
    assert entry["reason"] == f"rollback of slot credit_pd from v2 to v1 by the monitor: {report.alert.summary}"
    recorded_alert = json.loads(entry["details"])["replay"]["alert"]
    assert recorded_alert["seq"] == action.alert_seq < entry["seq"]  # the alert is written first
    assert load_registry(ledger.path).registry.production(SLOT) == "v1"
    assert all(r.matches for r in check_replay(ledger.path))


def test_p99_latency_is_compared_with_the_version_it_replaced(ledger):
    t0 = live(ledger, "v1", "v2")
    hour = dt.timedelta(hours=1)
    infer(ledger, "v1", 200, start=t0 - hour, step=dt.timedelta(seconds=10), latency=lambda i: 10.0 + i % 5)
    infer(ledger, "v2", 200, start=t0 + dt.timedelta(seconds=1), step=dt.timedelta(seconds=10),
          latency=lambda i: 30.0 + i % 5)
    ledger.flush()
    report = compute_serving(ledger.path, SLOT, policy(), window=Window(t0, t0 + hour))
    assert report.serving.baseline_latency_p99_ms == pytest.approx(14.0)
    assert report.serving.latency_p99_ms == pytest.approx(34.0)
    assert "p99 latency 34 ms is 2.43x the baseline (max 2x)" in report.alert.summary


def test_an_automatic_rollback_with_nowhere_to_go_leaves_the_alert_for_a_human(ledger):
    t0 = live(ledger, "v1")
    infer(ledger, "v1", 90, start=t0)
    for i in range(10):
        record_inference_error(ledger, request_id=f"e{i}", slot=SLOT, version="v1", error="oom")
    ledger.flush()
    action = act_on_serving(ledger, compute_serving(ledger.path, SLOT, policy("rollback")))
    assert action.rollback is None and action.alert_seq is not None
    assert "automatic rollback not possible: slot credit_pd has no archived former production version" in action.note


# --- fairness -----------------------------------------------------------------------------------------


def _subjects_csv(tmp_path, groups: dict[str, str]):
    path = tmp_path / "subjects.csv"
    path.write_text("subject_id,age_band,region\n" + "".join(f"{s},{g},north\n" for s, g in groups.items()))
    return path


def test_fairness_breach_above_the_upper_bound_writes_the_run_and_its_alerts(ledger, tmp_path):
    t0 = live(ledger, "v1")
    # 100 privileged (A) approved at 40 %, 100 unprivileged (B) at 80 %: DI 2.0 (> 1.25), SPD +0.4.
    groups = {f"a{i}": "A" for i in range(100)} | {f"b{i}": "B" for i in range(100)}
    subjects = load_subjects(_subjects_csv(tmp_path, groups), "age_band")
    infer(ledger, "v1", 100, start=t0, subject=lambda i: f"a{i}", decision=lambda i: "approve" if i < 40 else "decline",
          prefix="a")
    infer(ledger, "v1", 100, start=t0, subject=lambda i: f"b{i}", decision=lambda i: "approve" if i < 80 else "decline",
          prefix="b")
    infer(ledger, "v1", 3, start=t0, subject=lambda i: f"unknown{i}", prefix="u")
    infer(ledger, "v1", 50, start=t0, route_="shadow", subject=lambda i: f"a{i}", prefix="shadow")  # not served
    ledger.flush()
    report = compute_fairness(ledger.path, SLOT, policy(), subjects, attribute="age_band", privileged="A",
                              unprivileged="B", favorable=["approve"])
    by = {r["metric"]: r for r in report.results}
    assert by["disparate_impact"]["value"] == pytest.approx(2.0) and by["disparate_impact"]["status"] == "breach"
    assert by["disparate_impact"]["confident"]  # the whole interval is above 1.25
    assert by["statistical_parity_difference"]["value"] == pytest.approx(0.4)
    assert by["equal_opportunity_difference"]["status"] == "insufficient_data"  # no outcomes yet
    assert (report.inputs["predictions"], report.inputs["unmatched_subjects"]) == (203, 3)
    run = record_monitor_report(ledger, report)
    [run_entry] = ops(ledger, "monitor_run")
    assert (run_entry["seq"], run_entry["component"], run_entry["status"], run_entry["correlation_id"]) == (
        run.run_seq, "gates.monitor.fairness", "alert", run.run_id)
    alerts = ops(ledger, "monitor_alert")
    assert [(a["seq"], a["component"], a["status"], a["details"]["action"]) for a in alerts] == [
        (run.alert_seqs[0], "gates.fairness.disparate_impact", "breach", "investigate"),
        (run.alert_seqs[1], "gates.fairness.statistical_parity_difference", "breach", "investigate"),
        (run.alert_seqs[2], "gates.fairness.equal_opportunity_difference", "insufficient_data", "none")]
    assert all(a["correlation_id"] == run.run_id for a in alerts)
    assert alerts[0]["details"]["measurements"]["n_unprivileged"] == 100


def test_fairness_judges_what_was_served_unless_the_proposal_is_asked_for(ledger, tmp_path):
    t0 = live(ledger, "v1")
    groups = {f"a{i}": "A" for i in range(100)} | {f"b{i}": "B" for i in range(100)}
    subjects = load_subjects(_subjects_csv(tmp_path, groups), "age_band")
    # The model proposes approve to half of each group (DI 1.0); the guardrail changes 40 of B's
    # approvals to decline and blocks 5 more, so B was served approve 5 times (DI 0.1).
    infer(ledger, "v1", 100, start=t0, subject=lambda i: f"a{i}", decision=lambda i: "approve" if i < 50 else "decline",
          prefix="a")
    b = infer(ledger, "v1", 100, start=t0, subject=lambda i: f"b{i}", decision=lambda i: "approve" if i < 50 else "decline",
              prefix="b")
    for i, rid in enumerate(b[:45]):
        ledger.log_guardrail(request_id=rid, gate="affordability", verdict="modify" if i < 40 else "block",
                             criteria={"dti": 0.6}, reason="debt-to-income above the limit", original_output="approve",
                             final_output="decline" if i < 40 else None)
    ledger.flush()
    kw = dict(attribute="age_band", privileged="A", unprivileged="B", favorable=["approve"])
    served = compute_fairness(ledger.path, SLOT, policy(), subjects, **kw)
    proposed = compute_fairness(ledger.path, SLOT, policy(), subjects, basis="proposed", **kw)
    di = lambda report: {r["metric"]: r for r in report.results}["disparate_impact"]  # noqa: E731
    assert di(served)["value"] == pytest.approx(0.1) and di(served)["status"] == "breach"
    assert di(proposed)["value"] == pytest.approx(1.0) and di(proposed)["status"] == "fair"
    assert (served.inputs["basis"], served.inputs["served_without_guardrail"], proposed.inputs["basis"]) == (
        "served", 155, "proposed")
    record_monitor_report(ledger, served)
    [run] = ops(ledger, "monitor_run")
    assert run["details"]["inputs"]["basis"] == "served" and run["details"]["inputs"]["breach_rule"] == "point_estimate"
    with pytest.raises(MonitorInputError, match="unknown basis"):
        compute_fairness(ledger.path, SLOT, policy(), subjects, basis="hoped_for", **kw)


def test_a_tiny_group_is_insufficient_data_never_fair(ledger, tmp_path):
    t0 = live(ledger, "v1")
    groups = {f"a{i}": "A" for i in range(100)} | {f"c{i}": "C" for i in range(5)}
    infer(ledger, "v1", 100, start=t0, subject=lambda i: f"a{i}", decision=lambda i: "approve" if i % 2 else "x",
          prefix="a")
    infer(ledger, "v1", 5, start=t0, subject=lambda i: f"c{i}", decision=lambda i: "approve" if i % 2 else "x",
          prefix="c")
    ledger.flush()
    report = compute_fairness(ledger.path, SLOT, policy(), load_subjects(_subjects_csv(tmp_path, groups), "age_band"),
                              attribute="age_band", privileged="A", unprivileged="C", favorable=["approve"],
                              version="v1")
    assert {r["status"] for r in report.results} == {"insufficient_data"}
    assert all("too few" in r["detail"] and "unprivileged 5" in r["detail"] for r in report.results[:2])
    assert len(report.alerts) == 3 and report.status == "alert"


def test_equal_opportunity_uses_the_recorded_outcomes(ledger, tmp_path):
    t0 = live(ledger, "v1")
    groups = {f"a{i}": "A" for i in range(60)} | {f"b{i}": "B" for i in range(60)}
    a = infer(ledger, "v1", 60, start=t0, subject=lambda i: f"a{i}", decision=lambda i: "approve" if i < 54 else "x",
              prefix="a")
    b = infer(ledger, "v1", 60, start=t0, subject=lambda i: f"b{i}", decision=lambda i: "approve" if i < 30 else "x",
              prefix="b")
    record_outcomes(ledger, [{"request_id": rid, "label": "repaid"} for rid in a + b])  # all truly positive
    report = compute_fairness(ledger.path, SLOT, policy(), load_subjects(_subjects_csv(tmp_path, groups), "age_band"),
                              attribute="age_band", privileged="A", unprivileged="B", favorable=["approve"],
                              positive_labels=["repaid"])
    eod = {r["metric"]: r for r in report.results}["equal_opportunity_difference"]
    assert eod["value"] == pytest.approx(0.5 - 0.9) and eod["status"] == "breach"
    assert report.inputs["labelled"] == 120


def test_subjects_files_parquet_and_errors(tmp_path):
    pq.write_table(pa.table({"subject_id": ["s1", "s2"], "age_band": ["A", "B"]}), tmp_path / "s.parquet")
    assert load_subjects(tmp_path / "s.parquet", "age_band") == {"s1": "A", "s2": "B"}
    with pytest.raises(MonitorInputError, match="no column 'gender' \\(columns: subject_id, age_band\\)"):
        load_subjects(tmp_path / "s.parquet", "gender")
    (tmp_path / "dup.csv").write_text("subject_id,age_band\ns1,A\ns1,B\n")
    with pytest.raises(MonitorInputError, match="subject s1 appears twice with different age_band values"):
        load_subjects(tmp_path / "dup.csv", "age_band")


# --- drift --------------------------------------------------------------------------------------------


def test_significant_drift_proposes_a_retrain_and_never_deploys(ledger):
    t0 = live(ledger, "v1")
    rng = np.random.default_rng(3)
    base, shifted = rng.beta(2, 5, 1000), rng.beta(5, 2, 1000)
    day = dt.timedelta(days=1)
    infer(ledger, "v1", 1000, start=t0 - 2 * day, step=dt.timedelta(seconds=60),
          scores=lambda i: {"approve": float(base[i])}, prefix="base")
    infer(ledger, "v1", 1000, start=t0, step=dt.timedelta(seconds=60),
          scores=lambda i: {"approve": float(shifted[i])}, prefix="cur")
    ledger.flush()
    before = load_registry(ledger.path).registry.transitions
    report = compute_drift(ledger.path, SLOT, policy(), baseline=Window(t0 - 2 * day, t0), current=Window(t0, t0 + day))
    [result] = report.results
    assert (result["feature"], result["status"], result["n_baseline"], result["n_current"]) == (
        "score:approve", "significant_drift", 1000, 1000)
    assert result["psi"] > 0.25 and result["kl"] > 0
    [alert] = report.alerts
    assert alert.action == PROPOSE_RETRAIN and "retraining proposed" in alert.summary
    run = record_monitor_report(ledger, report)
    assert len(run.alert_seqs) == 1 and ops(ledger, "monitor_alert")[0]["details"]["action"] == "propose_retrain"
    assert load_registry(ledger.path).registry.transitions == before
    assert len(promotions(ledger)) == 1  # nothing promoted, retrained or deployed


def test_stable_distributions_write_an_ok_run_and_no_alert(ledger):
    t0 = live(ledger, "v1")
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 800), rng.normal(0, 1, 800)
    day = dt.timedelta(days=1)
    infer(ledger, "v1", 800, start=t0 - day, step=dt.timedelta(seconds=60), latency=lambda i: 10 + abs(a[i]),
          prefix="base")
    infer(ledger, "v1", 800, start=t0, step=dt.timedelta(seconds=60), latency=lambda i: 10 + abs(b[i]), prefix="cur")
    ledger.flush()
    report = compute_drift(ledger.path, SLOT, policy(), baseline=Window(t0 - day, t0), current=Window(t0, t0 + day),
                           features=["latency_ms"])
    assert report.status == "ok" and report.results[0]["status"] == "stable"
    run = record_monitor_report(ledger, report)
    assert run.alert_seqs == () and ops(ledger, "monitor_run")[0]["status"] == "ok"
    with pytest.raises(MonitorInputError, match="no served predictions of slot credit_pd in the baseline window"):
        compute_drift(ledger.path, SLOT, policy(), baseline=Window(t0 - 9 * day, t0 - 8 * day), current=Window(t0, None))
