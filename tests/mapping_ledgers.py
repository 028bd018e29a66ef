"""Ledgers whose content the regulation-pack tests know: a compliant story, and violations
injected into copies of it.

The story (UTC), slot ``product_reco`` serving, slot ``next_best_offer`` registered and
bootstrapped but idle (registry violations go there, so they change nothing that serves):

  2025-10-01  v1 registered and bootstrapped as the gate records a bootstrap (no thresholds:
              nothing is compared; the gate policy's digest with the replay inputs); feature schema v1
  2025-11-15  reco-v2-rc1 rejected (failing check and comparison named)
  2025-12-01  reco-v2 pending approval (comparison and significance); 2025-12-02 approved by head-of-mrm
  2026-01-10  reco-v3 force-promoted by mrm-officer-7 with a substantive reason
  every 12 h  a request: data access -> inference -> attribution -> suitability guardrail
              (every 10th proposal unsuitable and replaced: verdict modify); its outcome two days later
  every 30 d  a fairness monitor run on product_reco
  sealed once at the end (a signed checkpoint) and the period is [START, END)

Violations are appended at two instants, A (in SR 11-7's days) and B (in SR 26-2's), so
every pack sees them inside the days it applies to. Each injection returns the keys (request
ids, sequence numbers) the offending rows must name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Callable

from gates.observations import outcome_entry
from ledger import Keyring, Ledger
from ledger.note import Signer

UTC = dt.timezone.utc
START = dt.datetime(2025, 10, 1, tzinfo=UTC)
END = dt.datetime(2026, 5, 20, tzinfo=UTC)
A = dt.datetime(2026, 3, 2, 10, tzinfo=UTC)  # SR 11-7 still applies
B = dt.datetime(2026, 5, 12, 10, tzinfo=UTC)  # SR 26-2 applies
INSTANTS = (A, B)
SLOT, IDLE = "product_reco", "next_best_offer"
US = dt.timedelta(microseconds=1)
THRESHOLDS = {"min_relative_improvement": 0.005, "max_secondary_degradation": 0.02, "alpha": 0.05}
COMPARISON = [{"metric": "auc", "champion": 0.781, "challenger": 0.792, "delta_rel": 0.0141, "threshold": 0.005, "passed": True}]
SIGNIFICANCE = [{"metric": "auc", "test": "paired_bootstrap", "statistic": 3.1, "p_value": 0.002, "p_adjusted": 0.002,
                 "alpha": 0.05, "significant": True}]
# What gates.decision records with a bootstrap: a stage and the replay inputs, whose policy
# digest is what attributes the change (a bootstrap compares nothing, so it has no thresholds).
BOOTSTRAP_DETAILS = {"stage": "bootstrap", "replay": {"kind": "gate", "policy_digest": hashlib.sha256(b"gate policy").hexdigest()}}
KEY = bytes(range(32))
SIGNER = Signer.generate("mrm-test-signer")


def keyring() -> Keyring:
    return Keyring.from_key("test-k1", KEY).with_signer(SIGNER)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def version_at(ts: dt.datetime) -> str:
    if ts < dt.datetime(2025, 12, 2, tzinfo=UTC):
        return "reco-v1"
    if ts < dt.datetime(2026, 1, 10, tzinfo=UTC):
        return "reco-v2"
    return "reco-v3"


def register(ledger: Ledger, slot: str, version: str, ts: dt.datetime) -> int:
    return ledger.log_operation(ts=ts, event_type="model_registered", component="registry", status="candidate",
                                correlation_id=f"{slot}/{version}", details={"slot": slot, "version": version})


def request(ledger: Ledger, rid: str, ts: dt.datetime, *, version: str | None = None, unsuitable: bool = False,
            access: bool = True, attribution: bool = True, verdicts: tuple[tuple[str, str | None], ...] | None = None,
            grades: tuple[float, float] | None = None) -> dict[str, int]:
    """One request's entries; ``verdicts`` overrides the guardrail entries: (verdict, final_output) each."""
    version = version or version_at(ts)
    subject = f"cust-{int(digest(rid)[:6], 16) % 500:04d}"
    proposal = "els_note" if unsuitable else "bond_fund"
    seqs: dict[str, int] = {}
    if access:
        seqs["access"] = ledger.log_data_access(
            ts=ts, operator="teller-017", subject_id=subject, dataset="crm.customer_profile",
            columns=["age_band", "assets", "experience_years", "risk_tolerance"], purpose="kfcpa17_suitability_assessment",
            access_type="read", row_count=1, request_id=rid)
    seqs["inference"] = ledger.log_model_inference(
        ts=ts + 10 * US, request_id=rid, subject_id=subject, model_slot=SLOT, model_version=version,
        input_digest=digest("input:" + rid), scores={proposal: 0.62, "deposit_12m": 0.38},
        decision=proposal, latency_ms=7.5, route="champion")
    if attribution:
        seqs["attribution"] = ledger.log_attribution(
            ts=ts + 20 * US, request_id=rid, model_version=version, method="shap",
            top_features=[{"feature": "risk_tolerance", "value": 3.0, "contribution": 0.21},
                          {"feature": "assets", "value": 5.2e7, "contribution": 0.12}])
    product_grade, allowed = grades or ((1.0, 3.0) if unsuitable else (4.0, 3.0))
    criteria = {"profile_confirmed": 1.0, "product_risk_grade": product_grade, "allowed_risk_grade": allowed}
    if verdicts is None:
        verdicts = (("modify", "balanced_fund"),) if unsuitable else (("pass", proposal),)
    for i, (verdict, final) in enumerate(verdicts):
        seqs[f"guardrail{i}"] = ledger.log_guardrail(
            ts=ts + (30 + i) * US, request_id=rid, gate="kfcpa17_suitability", verdict=verdict, criteria=criteria,
            reason=None if verdict == "pass" else "KFCPA17-GRADE: product riskier than the profile allows",
            original_output=proposal, final_output=final)
    return seqs


def monitor_run(ledger: Ledger, ts: dt.datetime) -> int:
    return ledger.log_operation(ts=ts, event_type="monitor_run", component="gates.monitor.fairness", status="ok",
                                correlation_id=f"run-{ts:%Y%m%d}",
                                details={"kind": "fairness", "slot": SLOT, "version": version_at(ts), "results": []})


def build(path: Path, *, hole: tuple[dt.datetime, dt.datetime] | None = None, label_until: dt.datetime | None = None) -> Path:
    """The compliant story; ``hole`` leaves a stretch without requests, ``label_until`` stops
    recording outcomes for requests after it."""
    with Ledger.create(path, keyring(), actor="reco-api") as ledger:
        register(ledger, SLOT, "reco-v1", START)
        ledger.log_model_promotion(ts=START, slot=SLOT, challenger_version="reco-v1", decision="bootstrap", trigger="auto",
                                   reason="no champion in slot product_reco", details=BOOTSTRAP_DETAILS)
        register(ledger, IDLE, "nbo-v1", START + US)
        ledger.log_model_promotion(ts=START + US, slot=IDLE, challenger_version="nbo-v1", decision="bootstrap", trigger="auto",
                                   reason="no champion in slot next_best_offer", details=BOOTSTRAP_DETAILS)
        ledger.log_dimension_change(ts=START, component="feature_pipeline", new_schema_digest=digest("schema-v1"),
                                    new_dimension=4, features_added=["age_band", "assets", "experience_years", "risk_tolerance"],
                                    features_removed=[], reason="initial feature schema of the suitability recommender")
        events: list[tuple[dt.datetime, Callable[[], object]]] = []

        def promotion(ts: dt.datetime, **entry: object) -> None:
            events.append((ts, lambda: ledger.log_model_promotion(ts=ts, slot=SLOT, **entry)))

        events.append((dt.datetime(2025, 11, 15, tzinfo=UTC), lambda: register(ledger, SLOT, "reco-v2-rc1", dt.datetime(2025, 11, 15, tzinfo=UTC))))
        promotion(dt.datetime(2025, 11, 15, tzinfo=UTC) + US, champion_version="reco-v1", challenger_version="reco-v2-rc1",
                  decision="reject", trigger="auto", thresholds=THRESHOLDS,
                  reason="rejected by the fidelity floor, before competition: 1 failing check: fidelity:suitability",
                  comparison=[{**COMPARISON[0], "challenger": 0.779, "delta_rel": -0.0026, "passed": False}],
                  details={"stage": "fidelity", "checks": [{"name": "fidelity:suitability", "passed": False, "detail": "js 0.09 > max 0.05"}]})
        events.append((dt.datetime(2025, 12, 1, tzinfo=UTC), lambda: register(ledger, SLOT, "reco-v2", dt.datetime(2025, 12, 1, tzinfo=UTC))))
        promotion(dt.datetime(2025, 12, 1, tzinfo=UTC) + US, champion_version="reco-v1", challenger_version="reco-v2",
                  decision="pending_approval", trigger="auto", thresholds=THRESHOLDS, comparison=COMPARISON, significance=SIGNIFICANCE,
                  reason="cleared every gate; auto_promote is off, waiting for sign-off")
        promotion(dt.datetime(2025, 12, 2, tzinfo=UTC), champion_version="reco-v1", challenger_version="reco-v2", decision="approve",
                  trigger="manual", operator="head-of-mrm", reason="validation report MRM-120 reviewed and accepted by the committee")
        events.append((dt.datetime(2026, 1, 10, tzinfo=UTC) - US, lambda: register(ledger, SLOT, "reco-v3", dt.datetime(2026, 1, 10, tzinfo=UTC) - US)))
        promotion(dt.datetime(2026, 1, 10, tzinfo=UTC), champion_version="reco-v2", challenger_version="reco-v3",
                  decision="force_promote", trigger="manual", operator="mrm-officer-7",
                  reason="regulator-mandated fix of the suitability mapping (ticket MRM-118)")
        ts = START + dt.timedelta(hours=1)
        i = 0
        while ts < END:
            if not (hole and hole[0] <= ts < hole[1]):
                rid = f"req-{i:05d}"
                events.append((ts, lambda rid=rid, ts=ts, i=i: request(ledger, rid, ts, unsuitable=i % 10 == 9)))
                seen = ts + dt.timedelta(days=2)
                if seen < END and (label_until is None or ts < label_until):
                    events.append((seen, lambda rid=rid, seen=seen: ledger.log_operation(
                        ts=seen, **outcome_entry(rid, "bond_fund", observed_at=seen, source="core-banking"))))
            ts += dt.timedelta(hours=12)
            i += 1
        run = START + dt.timedelta(hours=12)
        while run < END:
            events.append((run, lambda run=run: monitor_run(ledger, run)))
            run += dt.timedelta(days=30)
        for _, write in sorted(events, key=lambda e: e[0]):
            write()
        ledger.seal()
    return path


# ---------------------------------------------------------------------- violations


def _at(at: dt.datetime, minutes: int) -> dt.datetime:
    return at + dt.timedelta(minutes=minutes)


def missing_attribution(ledger: Ledger, at: dt.datetime) -> list[str]:
    rid = f"bad-noattr-{at:%m%d}"
    request(ledger, rid, at, attribution=False)
    return [rid]


def blocked_served(ledger: Ledger, at: dt.datetime) -> list[str]:
    """A block whose own entry records the proposal as served."""
    rid = f"bad-blockserved-{at:%m%d}"
    request(ledger, rid, at, unsuitable=True, verdicts=(("block", "els_note"),))
    return [rid]


def served_after_block(ledger: Ledger, at: dt.datetime) -> list[str]:
    """Blocked, then a later verdict put the blocked proposal back and it was served."""
    rid = f"bad-afterblock-{at:%m%d}"
    request(ledger, rid, at, unsuitable=True, verdicts=(("block", None), ("pass", "els_note")))
    return [rid]


def thin_override(ledger: Ledger, at: dt.datetime) -> list[int]:
    """A force-promote the ledger accepts (operator and reason given) whose reason says nothing."""
    version = f"nbo-hotfix-{at:%m%d}"
    register(ledger, IDLE, version, at)
    champion = "nbo-v1" if at == A else f"nbo-hotfix-{A:%m%d}"
    return [ledger.log_model_promotion(ts=at + US, slot=IDLE, champion_version=champion, challenger_version=version,
                                       decision="force_promote", trigger="manual", operator="eng-1", reason="hotfix")]


def promotion_without_comparison(ledger: Ledger, at: dt.datetime) -> list[str]:
    version = f"nbo-unchecked-{at:%m%d}"
    register(ledger, IDLE, version, at)
    champion = "nbo-v1" if at == A else f"nbo-unchecked-{A:%m%d}"
    ledger.log_model_promotion(ts=at + US, slot=IDLE, champion_version=champion, challenger_version=version,
                               decision="promote", trigger="auto", thresholds=THRESHOLDS,
                               reason="primary metric improved (comparison not recorded)")
    return [version]


def unattributed_auto_change(ledger: Ledger, at: dt.datetime) -> list[int]:
    """An automatic promotion (comparison recorded) that names no threshold, gate policy or
    alert: nothing says what rule made the change."""
    version = f"nbo-unruled-{at:%m%d}"
    register(ledger, IDLE, version, at)
    champion = "nbo-v1" if at == A else f"nbo-unruled-{A:%m%d}"
    return [ledger.log_model_promotion(ts=at + US, slot=IDLE, champion_version=champion, challenger_version=version,
                                       decision="promote", trigger="auto", comparison=COMPARISON,
                                       significance=SIGNIFICANCE, reason="challenger wins")]


def alert_ignored(ledger: Ledger, at: dt.datetime) -> list[int]:
    return [ledger.log_operation(ts=at, event_type="monitor_alert", component="gates.online.rollback", status="breach",
                                 correlation_id=f"alert-{at:%m%d}",
                                 details={"slot": SLOT, "version": "reco-v3", "action": "rollback",
                                          "summary": "p99 latency 2.4x baseline", "measurements": {"ratio": 2.4}})]


def unexplained_feature_change(ledger: Ledger, at: dt.datetime) -> list[int]:
    return [ledger.log_dimension_change(ts=at, component="feature_pipeline", old_schema_digest=digest("schema-v1"),
                                        new_schema_digest=digest(f"schema-{at:%m%d}"), old_dimension=4, new_dimension=5,
                                        features_added=["region"], features_removed=[], reason="update")]


def duplicate_request(ledger: Ledger, at: dt.datetime) -> list[str]:
    """A second served inference under the request id of a complete request."""
    rid = f"bad-dup-{at:%m%d}"
    request(ledger, rid, at)
    ledger.log_model_inference(ts=at + dt.timedelta(minutes=5), request_id=rid, subject_id="cust-0001", model_slot=SLOT,
                               model_version=version_at(at), input_digest=digest("other input"), scores={"bond_fund": 0.6},
                               decision="bond_fund", latency_ms=6.0, route="champion")
    return [rid]


def no_profile_read(ledger: Ledger, at: dt.datetime) -> list[str]:
    rid = f"bad-noprofile-{at:%m%d}"
    request(ledger, rid, at, access=False)
    return [rid]


def pass_riskier_than_allowed(ledger: Ledger, at: dt.datetime) -> list[str]:
    rid = f"bad-grade-{at:%m%d}"
    request(ledger, rid, at, grades=(2.0, 5.0))  # passes a grade-2 product where grade 5 is the riskiest allowed
    return [rid]


def unapproved_version(ledger: Ledger, at: dt.datetime) -> list[str]:
    rid = f"bad-version-{at:%m%d}"
    request(ledger, rid, at, version="reco-dev-build")
    return [rid]


VIOLATIONS: dict[str, Callable[[Ledger, dt.datetime], list]] = {
    f.__name__: f for f in (missing_attribution, blocked_served, served_after_block, thin_override,
                            promotion_without_comparison, unattributed_auto_change, alert_ignored, unexplained_feature_change, duplicate_request,
                            no_profile_read, pass_riskier_than_allowed, unapproved_version)
}


def inject(path: Path, violation: str) -> list[tuple[dt.datetime, object]]:
    """Append the violation at both instants; returns (instant, key) for each key that the
    offending rows of a pack judging that instant must name."""
    keys: list[tuple[dt.datetime, object]] = []
    with Ledger.open(path, keyring(), actor="reco-api") as ledger:
        for at in INSTANTS:
            keys += [(at, key) for key in VIOLATIONS[violation](ledger, at)]
    return keys
