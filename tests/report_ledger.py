"""A ledger whose every report figure the report tests know (see KNOWN and the constants).

Slot `credit_pd`, times from T0 = 2025-03-03T09:00:00Z. Gate decisions are made by the real
gate (gates.decision, on pROC's aSAH holdout, so the p-values are pROC's) and written with
fixed timestamps; monitor runs are the real monitors' results on fixed data.

  T0        bootstrap v011 (auto, under auto_promote = true; the committee then turns it off)
  T0+1d     fairness run on v011: DI fair
  T0+7d     gate v012 vs v011: pending_approval (auto_promote off), DeLong p 0.0272 / 0.00515
  T0+8d     approve v012 by head-of-mrm
  T0+8d+1h  fairness run on v012: DI fair; drift run: stable
  T0+9d     request req-dispute-1 for cust-0042 served by v012: data access by teller-17,
            proposes els_note, attribution, suitability guardrail MODIFY -> balanced_fund
            (its reason carries markup and file:// / http:// references)
  T0+14d    gate v013 vs v012: reject at the fidelity floor
  T0+15d    force_promote v013 by an operator whose name carries markup
  T0+16d    fairness run on v013: DI BREACH (+ alert); drift run: significant (+ alert)
  T0+17d    manual rollback v013 -> v012 by mrm-officer-2
  T0+20d    gate v014 vs v012: reject in competition (its AUC is worse; comparisons and tests recorded)
  T0+21d    req-dispute-1's outcome, observed T0+10d 15:30 (core-banking): the customer took balanced_fund
  --- sealed and checkpointed (ledger closed) ---
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gates.decision import GateInputs, decide, decide_approval, decide_force_promote, decide_rollback
from gates.evaluation import evaluation_from_mapping
from gates.monitoring import MonitorReport
from gates.monitors import disparate_impact, equal_opportunity_difference, population_stability, statistical_parity_difference
from gates.observations import Window, outcome_entry
from ledger import Keyring, Ledger
from ledger.note import Signer

from .test_gates_decision import CHALLENGER_SCORES, CHAMPION_SCORES, challenger_dict, champion_dict, evaluation, policy

SLOT = "credit_pd"
T0 = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.timezone.utc)
D, H, US = dt.timedelta(days=1), dt.timedelta(hours=1), dt.timedelta(microseconds=1)

REQUEST = "req-dispute-1"
OUTCOME_LABEL = "balanced_fund"
OUTCOME_OBSERVED = T0 + 10 * D + 6 * H + dt.timedelta(minutes=30)  # 2025-03-13T15:30:00Z
OUTCOME_RECORDED = T0 + 21 * D  # 2025-03-24T09:00:00Z, the last entry (the other tests' sequence numbers stay)
SUBJECT = "cust-0042"
APPROVER, APPROVAL_REASON = "head-of-mrm", "validation report VR-2025-014 reviewed"
# Hostile ledger values: markup, a template expression and references a renderer might fetch.
HOSTILE_REASON = ('risk grade 1 above profile grade 4 <img src="file:///etc/passwd"> '
                  'see http://evil.example/steal?x=1 {{ 7*7 }}')
HOSTILE_OPERATOR = 'ops-<b>9</b><link rel="stylesheet" href="http://evil.example/a.css">'
FORCE_REASON = "restore the suitability mapping before the audit (MRM-131)"
ROLLBACK_OPERATOR, ROLLBACK_REASON = "mrm-officer-2", "disparate impact breach on v013"
ATTRIBUTION = [
    {"feature": "risk_tolerance", "value": -1.5, "contribution": -0.42},
    {"feature": "assets", "value": 2.0, "contribution": 0.31},
    {"feature": "age", "value": 41.0, "contribution": 0.05},
]
DI_VALUES = {"v011": 0.95, "v012": 0.92, "v013": 0.7}  # favourable-rate ratios the fairness runs see
KNOWN: dict[str, int] = {}


def signing_keyring() -> Keyring:
    """An HMAC key and a fixed Ed25519 checkpoint/report signing key."""
    signer = Signer("bank.example-ledger", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    return Keyring.from_key("test-k1", bytes(range(32))).with_signer(signer)


def _evaluation(d: dict):
    return evaluation_from_mapping(d)


def _log_decision(ledger: Ledger, name: str, decision, ts: dt.datetime) -> None:
    KNOWN[name] = ledger.log_model_promotion(**decision.to_promotion_entry(), ts=ts)


def _fairness_run(ledger: Ledger, name: str, version: str, ts: dt.datetime) -> None:
    """A fairness run whose disparate impact is DI_VALUES[version] (200 people per group)."""
    ratio = DI_VALUES[version]
    privileged_fav, n = 120, 200
    unprivileged_fav = round(privileged_fav * ratio)
    favourable = [True] * unprivileged_fav + [False] * (n - unprivileged_fav) + [True] * privileged_fav + [False] * (n - privileged_fav)
    groups = ["age_60_plus"] * n + ["age_30_59"] * n
    actual = [True, False] * n
    kw = dict(unprivileged="age_60_plus", privileged="age_30_59")
    results = [disparate_impact(favourable, groups, **kw), statistical_parity_difference(favourable, groups, **kw),
               equal_opportunity_difference(actual, favourable, groups, **kw)]
    alerts = tuple(a for a in (r.alert(SLOT, version) for r in results) if a is not None)
    report = MonitorReport("fairness", SLOT, version, Window(ts - 7 * D, ts), tuple(r.to_dict() for r in results), alerts,
                           {"attribute": "age_band", "privileged": "age_30_59", "unprivileged": "age_60_plus",
                            "basis": "served", "breach_rule": "point_estimate"})
    _record(ledger, name, report, ts)


def _drift_run(ledger: Ledger, name: str, version: str, ts: dt.datetime, shift: float) -> None:
    rng = np.random.default_rng(5)
    baseline = rng.normal(0.4, 0.1, size=2000)
    current = rng.normal(0.4 + shift, 0.1, size=2000)
    result = population_stability("score:approve", baseline.tolist(), current.tolist())
    alert = result.alert(SLOT, version)
    d = {"feature": result.feature, "status": result.status, "psi": result.psi, "kl": result.kl, "edges": list(result.edges),
         "expected": list(result.expected), "actual": list(result.actual), "n_baseline": result.n_baseline,
         "n_current": result.n_current}
    report = MonitorReport("drift", SLOT, version, Window(ts - 7 * D, ts), (d,), (alert,) if alert else (),
                           {"features": ["score:approve"]})
    _record(ledger, name, report, ts)


def _record(ledger: Ledger, name: str, report: MonitorReport, ts: dt.datetime) -> None:
    run = f"run-{name}"
    KNOWN[name] = ledger.log_operation(event_type="monitor_run", component=f"gates.monitor.{report.kind}",
                                       status=report.status, correlation_id=run, details=report.to_dict(), ts=ts)
    for i, alert in enumerate(report.alerts):
        KNOWN[f"{name}.alert{i}"] = ledger.log_operation(**alert.to_operation_entry(correlation_id=run), ts=ts + (i + 1) * US)


def build(path: Path, keyring: Keyring) -> dict[str, int]:
    KNOWN.clear()
    v011, v012 = _evaluation(champion_dict(slot=SLOT)), _evaluation(challenger_dict(slot=SLOT))
    v013 = _evaluation(evaluation("v013", CHALLENGER_SCORES, 0.6, trained_end="2026-04-27T03:00:00Z", slot=SLOT,
                                  fidelity={"task_churn": {"kl": 0.31}, "task_next_best": {"kl": 0.05}}))
    gate_policy = policy(auto=False)
    with Ledger.create(path, keyring, actor="gate-service") as ledger:
        _log_decision(ledger, "bootstrap", decide(GateInputs(v011, None, policy(auto=True))), T0)
        _fairness_run(ledger, "fair1", "v011", T0 + D)
        observed = {a.path: a.sha256 for a in v012.lineage.artifacts}
        _log_decision(ledger, "pending", decide(GateInputs(v012, v011, gate_policy, observed_artifacts=observed)), T0 + 7 * D)
        _log_decision(ledger, "approve", decide_approval(SLOT, "v012", "v011", approve=True, operator=APPROVER,
                                                         reason=APPROVAL_REASON), T0 + 8 * D)
        _fairness_run(ledger, "fair2", "v012", T0 + 8 * D + H)
        _drift_run(ledger, "drift1", "v012", T0 + 8 * D + 2 * H, 0.0)
        _request(ledger, T0 + 9 * D)
        observed = {a.path: a.sha256 for a in v013.lineage.artifacts}
        _log_decision(ledger, "reject", decide(GateInputs(v013, v012, gate_policy, observed_artifacts=observed)), T0 + 14 * D)
        _log_decision(ledger, "force", decide_force_promote(SLOT, "v013", "v012", operator=HOSTILE_OPERATOR,
                                                            reason=FORCE_REASON), T0 + 15 * D)
        _fairness_run(ledger, "fair3", "v013", T0 + 16 * D)
        _drift_run(ledger, "drift2", "v013", T0 + 16 * D + H, 0.06)
        _log_decision(ledger, "rollback", decide_rollback(SLOT, "v013", "v012", ["v011", "v012"], reason=ROLLBACK_REASON,
                                                          operator=ROLLBACK_OPERATOR), T0 + 17 * D)
        v014 = _evaluation(evaluation("v014", CHAMPION_SCORES, 0.25, trained_end="2026-05-04T03:00:00Z", slot=SLOT))
        observed = {a.path: a.sha256 for a in v014.lineage.artifacts}
        _log_decision(ledger, "reject2", decide(GateInputs(v014, v012, gate_policy, observed_artifacts=observed)), T0 + 20 * D)
        KNOWN["outcome"] = ledger.log_operation(ts=OUTCOME_RECORDED, **outcome_entry(
            REQUEST, OUTCOME_LABEL, observed_at=OUTCOME_OBSERVED, source="core-banking"))
    return dict(KNOWN)


def _request(ledger: Ledger, ts: dt.datetime) -> None:
    KNOWN["access"] = ledger.log_data_access(
        ts=ts, operator="teller-17", subject_id=SUBJECT, dataset="crm.customer_profile",
        columns=["age_band", "assets", "risk_tolerance"], purpose="suitability_assessment", access_type="read",
        row_count=1, request_id=REQUEST)
    KNOWN["inference"] = ledger.log_model_inference(
        ts=ts + 10 * US, request_id=REQUEST, subject_id=SUBJECT, model_slot=SLOT, model_version="v012",
        input_digest="ab" * 32, scores={"els_note": 0.61, "balanced_fund": 0.27, "deposit_12m": 0.12},
        decision="els_note", latency_ms=7.25, route="champion")
    KNOWN["attribution"] = ledger.log_attribution(
        ts=ts + 20 * US, request_id=REQUEST, model_version="v012", method="linear_coef_x_transformed_value",
        top_features=ATTRIBUTION)
    KNOWN["guardrail"] = ledger.log_guardrail(
        ts=ts + 30 * US, request_id=REQUEST, gate="kfcpa_art17_suitability", verdict="modify",
        criteria={"risk_grade_gap": 3.0, "profile_confirmed": 1.0}, reason=HOSTILE_REASON,
        original_output="els_note", final_output="balanced_fund")
