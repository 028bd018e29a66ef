"""The override analysis of `mrm report validation`, on a ledger built for it: a force-promote
of a version whose only gate verdict is 120 days old, with production changed since, answering
a fairness alert; the committee's review of it; the policy change that followed; the next gate
run. The PDF's text (pypdf) must show the verdict's age and why it is no longer current, the
review, what followed and the checks the force-promote skipped."""

from __future__ import annotations

import dataclasses
import datetime as dt
from types import SimpleNamespace

import pytest

from gates.alerts import PROPOSE_ROLLBACK, Alert
from gates.evaluation import evaluation_from_mapping
from gates.policy import policy_digest
from gates.promotion import force_promote, review_override, rollback, run_gate
from ledger import Ledger
from reports.documents import DocumentInfo, TrustPlan, ValidationScope, build_validation_report
from reports.documents.history import read_slot_history
from reports.documents.basis import establish_basis
from reports.render import render_pdf

from . import report_ledger as world
from .report_support import page_texts, squash
from .test_gates_decision import CHALLENGER_SCORES, challenger_dict, champion_dict, evaluation, policy

SLOT = "credit_pd"
T0 = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.timezone.utc)
D = dt.timedelta(days=1)
CREATED = dt.datetime(2025, 9, 1, 9, 30, tzinfo=dt.timezone.utc)
INFO = DocumentInfo(institution="Example Bank N.A.", prepared_by="Model validation team",
                    generated_at=dt.datetime(2025, 9, 1, 9, 29, tzinfo=dt.timezone.utc))
REVIEW_NOTE = "MRM committee 2025-07-11, minute 4: breach confirmed on served decisions"


def _observed(e):
    return {a.path: a.sha256 for a in e.lineage.artifacts}


def build(path, keyring) -> dict[str, int]:
    now = {"t": T0}
    ledger = Ledger.create(path, keyring, actor="gate-service",
                           clock=lambda: int(now["t"].timestamp() * 1_000_000))
    gate_policy = dataclasses.replace(policy(auto=True), approval_valid_days=30)
    v011, v012 = evaluation_from_mapping(champion_dict()), evaluation_from_mapping(challenger_dict())
    known = {}
    with ledger:
        known["bootstrap"] = run_gate(ledger, v011, gate_policy, observed_artifacts=_observed(v011)).seq
        now["t"] = T0 + 7 * D
        known["promote"] = run_gate(ledger, v012, gate_policy, observed_artifacts=_observed(v012)).seq
        now["t"] = T0 + 60 * D
        known["rollback"] = rollback(ledger, slot=SLOT, operator="eng-7", reason="latency").seq
        now["t"] = T0 + 127 * D - dt.timedelta(hours=1)
        alert = Alert("fairness.disparate_impact", SLOT, "v011", "breach", PROPOSE_ROLLBACK, "DI 0.70 on v011",
                      {"value": 0.7, "min": 0.8})
        known["alert"] = ledger.log_operation(**alert.to_operation_entry(correlation_id="fair-w18"), durable=True)
        now["t"] = T0 + 127 * D
        known["force"] = force_promote(ledger, slot=SLOT, version="v012", operator="eng-42",
                                       reason="DI breach: back to v012", responds_to_seq=known["alert"]).seq
        now["t"] = T0 + 130 * D
        known["review"] = review_override(ledger, reviews_seq=known["force"], outcome="upheld", reviewer="mrm-chair",
                                          note=REVIEW_NOTE)
        now["t"] = T0 + 130 * D + dt.timedelta(hours=1)
        signoff = dataclasses.replace(gate_policy, auto_promote=False)
        known["policy_change"] = ledger.log_operation(
            event_type="policy_change", component="gates.policy", status="applied", correlation_id=SLOT,
            details={"slot": SLOT, "previous_policy_digest": policy_digest(gate_policy),
                     "policy_digest": policy_digest(signoff),
                     "changes": [{"key": "gate.auto_promote", "from": True, "to": False}]}, durable=True)
        now["t"] = T0 + 134 * D
        v013 = evaluation_from_mapping(evaluation("v013", CHALLENGER_SCORES, 0.6, trained_end="2026-04-27T03:00:00Z",
                                                  fidelity={"task_churn": {"kl": 0.31}, "task_next_best": {"kl": 0.05}}))
        known["reject"] = run_gate(ledger, v013, signoff, observed_artifacts=_observed(v013)).seq
    return known


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("override-report")
    keyring = world.signing_keyring()
    known = build(root / "ledger", keyring)
    doc = build_validation_report(root / "ledger", ValidationScope(SLOT), TrustPlan.hmac_chain(keyring), INFO)
    pdf = render_pdf(doc, keyring.signer, created=CREATED).pdf
    text = "\n".join(page_texts(pdf))
    return SimpleNamespace(root=root, keyring=keyring, known=known, text=text, flat=squash(text))


def has(r, phrase: str) -> bool:
    return squash(phrase) in r.flat


def test_a_force_promote_on_a_verdict_four_months_old_is_not_called_consistent(report):
    k = report.known
    assert has(report, f"the gate decided promote at seq {k['promote']}, competition stage, 120 days before")
    assert has(report, "no longer current: older than the policy's approval_valid_days (30); production changed since "
                       f"(seq {k['rollback']}: rollback of v011)")
    # two decisions by a person: the rollback (no verdict applies) and the force-promote (stale)
    assert report.flat.count("STALEVERDICT") == 1 and report.flat.count("CONSISTENT") == 1
    assert has(report, "On a gate verdict no longer current")
    assert has(report, "1 decision(s) by a person against, or without, a current gate verdict")


def test_each_override_shows_its_review_and_what_followed(report):
    k = report.known
    assert has(report, f"seq {k['review']}: upheld by mrm-chair (2025-07-11T09:00:00Z): {REVIEW_NOTE}")
    assert has(report, f"seq {k['policy_change']}: policy change (2025-07-11T10:00:00Z): gate.auto_promote true → false")
    assert has(report, f"seq {k['reject']}: reject of v013 (2025-07-15T09:00:00Z, 7 days later)")
    # the manual rollback earlier was never reviewed, and the report says so
    assert has(report, "not reviewed (no override_review entry names it)")


def test_the_checks_a_force_promote_skipped_are_listed(report):
    k = report.known
    assert has(report, "What each force-promote skipped")
    # the ladder of the recorded policy: 2 fidelity, 6 functional, 3 competition, 4 degradation, 2 guardrails
    assert has(report, "fidelity:task_churn, fidelity:task_next_best, tasks_present, horizons_present, artifact_digests, "
                       "thresholds_in_unit_interval, training_data_not_older, feature_schema, sample_size, "
                       "primary_improvement, primary_significance, degradation:task_churn/auc")
    assert has(report, "degradation:task_next_best/accuracy, guardrail:disparate_impact, guardrail:p99_latency_ms")
    assert has(report, "7 v012 17 fidelity:task_churn")
    basis = establish_basis(report.root / "ledger", TrustPlan.hmac_chain(report.keyring))
    slot = read_slot_history(basis.source, SLOT, None, None)
    [forced] = [f for f in slot.override_findings() if f.decision.decision == "force_promote"]
    assert len(forced.skipped_checks) == 17 and forced.gate_age_days == 120 and forced.stale
    assert forced.decision.details["responds_to_seq"] == k["alert"]
    assert k["review"] in slot.shown_seqs() and k["policy_change"] in slot.shown_seqs()
