"""The gate wired to a real ledger: the exact entries each branch writes, replay from the
ledger (and edited records reported), refusals that write nothing, a failing write that changes
nothing, registry invariants under random operations, concurrent writers, the serving manifest.

Evaluations and expected entries come from test_gates_decision.py (pROC's aSAH holdout)."""

from __future__ import annotations

import hmac
import json
import os
import threading
from hashlib import sha256
from typing import Any

import numpy as np
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gates.decision import GateInputError, MissingMetric, decide_approval, decide_force_promote, replay
from gates.evaluation import evaluation_from_mapping, evaluation_to_dict
from gates.ledger_io import InconsistentHistory, TransitionRefused, load_registry, promotion_entry
from gates.manifest import serving_manifest
from gates.promotion import (
    approve,
    decline,
    force_promote,
    register_candidate,
    rollback,
    run_gate,
    set_traffic,
)
from gates.registry import ARCHIVED, CANDIDATE, PENDING, PRODUCTION, REJECTED, ROLLED_BACK
from gates.replay_check import check_replay
from ledger import Ledger, verify_ledger
from ledger.read import read_table

from .helpers import edit_rows, segment_files
from .test_gates_decision import (
    CHALLENGER_SCORES,
    CHALLENGER_THRESHOLD,
    CHAMPION_SCORES,
    CHAMPION_THRESHOLD,
    FIDELITY_OK,
    FUNCTIONAL_OK,
    LABELS,
    LINK_KEYS,
    THRESHOLDS,
    WIN,
    assert_entry,
    challenger_dict,
    champion_dict,
    evaluation,
    policy,
    winning_entry,
)

SLOT = "credit_pd"


@pytest.fixture
def ledger(tmp_path, keyring):
    with Ledger.create(tmp_path / "ledger", keyring, actor="gate-test") as opened:
        yield opened


def observed(e) -> dict[str, str]:
    return {a.path: a.sha256 for a in e.lineage.artifacts}


def gate(ledger: Ledger, d: dict[str, Any], *, auto: bool = True, **kw):
    e = evaluation_from_mapping(d)
    return run_gate(ledger, e, policy(auto), observed_artifacts=observed(e), **kw)


def bootstrap_champion(ledger: Ledger):
    return gate(ledger, champion_dict())


def stored(ledger: Ledger, seq: int) -> dict[str, Any]:
    """The model_promotion entry at ``seq`` as read back from the ledger, minus the replay
    inputs and test records (compared separately), in the shape Decision.to_promotion_entry has."""
    ledger.flush()
    e = promotion_entry(ledger.path, seq)
    assert (e["table_name"], e["actor"], e["key_id"]) == ("model_promotion", "gate-test", "test-k1")
    out = {k: e[k] for k in ("slot", "champion_version", "challenger_version", "decision", "trigger", "operator",
                             "reason", "comparison", "significance", "thresholds")}
    out["details"] = {k: v for k, v in e["details"].items() if k not in ("replay", "tests", *LINK_KEYS)}
    return out


def promotions(ledger: Ledger) -> list[dict]:
    ledger.flush()
    return read_table(ledger.path, "model_promotion").to_pylist()


def operations(ledger: Ledger, event_type: str) -> list[dict]:
    ledger.flush()
    return [r for r in read_table(ledger.path, "operation").to_pylist() if r["event_type"] == event_type]


# --- every branch of the ladder, as the ledger holds it --------------------------------------------


def test_bootstrap_registers_then_writes_exactly_one_entry(ledger):
    r = bootstrap_champion(ledger)
    assert (r.registered_seq, r.seq) == (1, 2)
    champ = evaluation_from_mapping(champion_dict())
    [registration] = operations(ledger, "model_registered")
    assert {k: registration[k] for k in ("seq", "component", "status", "correlation_id")} == {
        "seq": 1, "component": "registry", "status": "candidate", "correlation_id": "credit_pd/v011"}
    assert json.loads(registration["details"]) == json.loads(rfc8785.dumps({
        "slot": SLOT, "version": "v011", "evaluation_digest": champ.digest, "holdout_digest": champ.holdout_digest,
        "lineage": evaluation_to_dict(champ)["lineage"], "feature_schema_digest": "schema-1"}))
    assert_entry(stored(ledger, 2), {
        "slot": SLOT, "champion_version": None, "challenger_version": "v011", "decision": "bootstrap",
        "trigger": "auto", "operator": None, "reason": "no champion in slot credit_pd: v011 bootstraps the slot",
        "comparison": [], "significance": [], "thresholds": {},
        "details": {"gate_format": 2, "stage": "bootstrap", "checks": [
            {"name": "champion_exists", "passed": True, "detail": "slot credit_pd has no production version"}]},
    })
    assert len(promotions(ledger)) == 1
    assert registration["ts"] == promotions(ledger)[0]["ts"]
    assert load_registry(ledger.path).registry.production(SLOT) == "v011"


@pytest.mark.parametrize("auto, decision, reason", [
    (True, "promote", f"challenger wins: {WIN}"),
    (False, "pending_approval",
     f"challenger passes every gate ({WIN}); auto_promote is off, so it waits for a human sign-off"),
])
def test_a_winning_challenger_entry_is_exact_against_the_recorded_champion(ledger, auto, decision, reason):
    bootstrap_champion(ledger)
    # The champion's evaluation is not passed: the gate takes the one recorded at bootstrap.
    r = gate(ledger, challenger_dict(), auto=auto)
    assert r.decision.outcome == decision
    assert_entry(stored(ledger, r.seq), winning_entry(decision, reason))
    assert len(promotions(ledger)) == 2
    state = load_registry(ledger.path).registry.states(SLOT)
    assert state == ({"v011": ARCHIVED, "v012": PRODUCTION} if auto else {"v011": PRODUCTION, "v012": PENDING})


def test_fidelity_reject_entry_names_every_failing_task(ledger):
    bootstrap_champion(ledger)
    r = gate(ledger, challenger_dict(fidelity={"task_churn": {"kl": 0.31}, "task_next_best": {"kl": 0.25}}))
    assert_entry(stored(ledger, r.seq), {
        "slot": SLOT, "champion_version": "v011", "challenger_version": "v012", "decision": "reject",
        "trigger": "auto", "operator": None,
        "reason": "rejected by the fidelity floor, before competition: 2 failing checks: "
                  "fidelity:task_churn (kl 0.31 > max 0.15); fidelity:task_next_best (kl 0.25 > max 0.2)",
        "comparison": [], "significance": [], "thresholds": THRESHOLDS,
        "details": {"gate_format": 2, "stage": "fidelity", "checks": [
            {"name": "fidelity:task_churn", "passed": False, "detail": "kl 0.31 > max 0.15"},
            {"name": "fidelity:task_next_best", "passed": False, "detail": "kl 0.25 > max 0.2"}]},
    })
    assert load_registry(ledger.path).registry.states(SLOT) == {"v011": PRODUCTION, "v012": REJECTED}


def test_functional_reject_entry(ledger):
    bootstrap_champion(ledger)
    e = evaluation_from_mapping(challenger_dict(schema="schema-2"))
    r = run_gate(ledger, e, policy(), observed_artifacts={"models/v012/model.bin": None})
    fail = {"artifact_digests": "missing: models/v012/model.bin",
            "feature_schema": "changed from schema-1 to schema-2 and the policy blocks schema changes"}
    assert_entry(stored(ledger, r.seq), {
        "slot": SLOT, "champion_version": "v011", "challenger_version": "v012", "decision": "reject",
        "trigger": "auto", "operator": None,
        "reason": "rejected by functional checks: 2 failing checks: " + "; ".join(f"{k} ({v})" for k, v in fail.items()),
        "comparison": [], "significance": [], "thresholds": THRESHOLDS,
        "details": {"gate_format": 2, "stage": "functional", "checks": FIDELITY_OK + [
            {"name": c["name"], "passed": c["name"] not in fail, "detail": fail.get(c["name"], c["detail"])}
            for c in FUNCTIONAL_OK]},
    })


def test_competition_reject_entry_names_the_guardrails_including_di_above_its_upper_bound(ledger):
    bootstrap_champion(ledger)
    r = gate(ledger, challenger_dict(guardrails={"p99_latency_ms": 240.0, "disparate_impact": 1.3}))
    expected = winning_entry("reject", "rejected by competition and guardrails: 2 failing checks: "
                                       "guardrail:disparate_impact (1.3 outside the allowed range ([0.8, 1.25])); "
                                       "guardrail:p99_latency_ms (240 outside the allowed range (at most 200))")
    expected["details"]["checks"][-2:] = [
        {"name": "guardrail:disparate_impact", "passed": False, "detail": "1.3 outside the allowed range ([0.8, 1.25])"},
        {"name": "guardrail:p99_latency_ms", "passed": False, "detail": "240 outside the allowed range (at most 200)"},
    ]
    assert_entry(stored(ledger, r.seq), expected)


def test_approve_decline_force_promote_and_rollback_entries(ledger):
    bootstrap_champion(ledger)
    gate(ledger, challenger_dict(), auto=False)
    a = approve(ledger, slot=SLOT, version="v012", operator="mrm-chair", reason="committee 2026-04-24")
    assert_entry(stored(ledger, a.seq), {
        "slot": SLOT, "champion_version": "v011", "challenger_version": "v012", "decision": "approve",
        "trigger": "manual", "operator": "mrm-chair", "reason": "v012 approved by mrm-chair: committee 2026-04-24",
        "comparison": [], "significance": [], "thresholds": {},
        "details": {"gate_format": 2, "stage": "approval",
                    "checks": [{"name": "human_sign_off", "passed": True, "detail": "approved by mrm-chair"}]},
    })
    rb = rollback(ledger, slot=SLOT, operator="eng-7", reason="p99 latency breach")
    assert_entry(stored(ledger, rb.seq), {
        "slot": SLOT, "champion_version": "v012", "challenger_version": "v011", "decision": "rollback",
        "trigger": "manual", "operator": "eng-7",
        "reason": "rollback of slot credit_pd from v012 to v011 by eng-7: p99 latency breach",
        "comparison": [], "significance": [], "thresholds": {},
        "details": {"gate_format": 2, "stage": "rollback", "checks": [
            {"name": "target_was_production", "passed": True, "detail": "v011 was production in slot credit_pd before"}]},
    })
    register_candidate(ledger, slot=SLOT, version="v013")
    f = force_promote(ledger, slot=SLOT, version="v013", operator="eng-42", reason="DI breach emergency")
    assert_entry(stored(ledger, f.seq), {
        "slot": SLOT, "champion_version": "v011", "challenger_version": "v013", "decision": "force_promote",
        "trigger": "manual", "operator": "eng-42",
        "reason": "force-promote by eng-42: DI breach emergency; every other check skipped",
        "comparison": [], "significance": [], "thresholds": {},
        "details": {"gate_format": 2, "stage": "force_promote", "checks": [
            {"name": "force_promote", "passed": True, "detail": "operator eng-42: DI breach emergency"}]},
    })
    # What was skipped, as data: every check a full gate run in this slot ran, in the ladder's
    # order, under the policy the latest gate entry (seq of the pending_approval) recorded.
    full_run = [c["name"] for c in winning_entry("promote", "")["details"]["checks"]]
    details = promotion_entry(ledger.path, f.seq)["details"]
    assert details["skipped_checks"] == full_run
    assert details["skipped_checks_from_seq"] == promotions(ledger)[1]["seq"]
    assert details["responds_to_seq"] is None
    gate(ledger, evaluation("v014", CHALLENGER_SCORES, CHALLENGER_THRESHOLD, trained_end="2026-04-20T03:00:00Z"),
         auto=False, champion=evaluation_from_mapping(
             evaluation("v013", CHAMPION_SCORES, CHAMPION_THRESHOLD, trained_end="2026-04-13T03:00:00Z")))
    d = decline(ledger, slot=SLOT, version="v014", operator="mrm-chair", reason="needs a stress back-test")
    assert (stored(ledger, d.seq)["decision"], stored(ledger, d.seq)["reason"]) == (
        "decline", "v014 declined by mrm-chair: needs a stress back-test")
    reg = load_registry(ledger.path).registry
    assert reg.states(SLOT) == {"v011": ARCHIVED, "v012": ROLLED_BACK, "v013": PRODUCTION, "v014": REJECTED}
    # One model_promotion entry per decision, nothing else in that table.
    assert [p["decision"] for p in promotions(ledger)] == [
        "bootstrap", "pending_approval", "approve", "rollback", "force_promote", "pending_approval", "decline"]


def test_with_auto_promote_off_even_the_first_version_waits_for_a_sign_off(ledger):
    r = gate(ledger, champion_dict(), auto=False)
    assert_entry(stored(ledger, r.seq), {
        "slot": SLOT, "champion_version": None, "challenger_version": "v011", "decision": "pending_approval",
        "trigger": "auto", "operator": None,
        "reason": "no champion in slot credit_pd: v011 would bootstrap the slot; auto_promote is off, "
                  "so it waits for a human sign-off",
        "comparison": [], "significance": [], "thresholds": {},
        "details": {"gate_format": 2, "stage": "bootstrap", "checks": [
            {"name": "champion_exists", "passed": True, "detail": "slot credit_pd has no production version"}]},
    })
    assert load_registry(ledger.path).registry.production(SLOT) is None
    a = approve(ledger, slot=SLOT, version="v011", operator="mrm-chair", reason="first model, committee 2026-04-10")
    assert (stored(ledger, a.seq)["decision"], stored(ledger, a.seq)["champion_version"]) == ("approve", None)
    assert load_registry(ledger.path).registry.production(SLOT) == "v011"
    assert all(check_replay(ledger.path, seq=seq)[0].matches for seq in (r.seq, a.seq))


@pytest.mark.parametrize("approver", ["dev-3", "gate-test"], ids=["the gate's operator", "the gate entry's actor"])
def test_whoever_requested_a_sign_off_cannot_give_it(ledger, approver):
    bootstrap_champion(ledger)
    gate(ledger, challenger_dict(), auto=False, operator="dev-3")
    ledger.flush()
    before = ledger.head.seq
    with pytest.raises(GateInputError, match=f"{approver} requested the sign-off of v012 and cannot approve it; "
                                             "another operator must"):
        approve(ledger, slot=SLOT, version="v012", operator=approver, reason="looks good to me")
    ledger.flush()
    assert ledger.head.seq == before
    assert load_registry(ledger.path).registry.states(SLOT)["v012"] == PENDING
    a = approve(ledger, slot=SLOT, version="v012", operator="mrm-chair", reason="committee 2026-04-24")
    assert promotion_entry(ledger.path, a.seq)["details"]["replay"]["requested_by"] == ["dev-3", "gate-test"]
    assert check_replay(ledger.path, seq=a.seq)[0].matches


def test_a_requester_may_withdraw_their_own_request(ledger):
    bootstrap_champion(ledger)
    gate(ledger, challenger_dict(), auto=False, operator="dev-3")
    decline(ledger, slot=SLOT, version="v012", operator="dev-3", reason="withdrawn: wrong holdout")
    assert load_registry(ledger.path).registry.states(SLOT)["v012"] == REJECTED


def test_a_verdict_older_than_the_policy_window_cannot_be_approved(tmp_path, keyring):
    day = 86_400 * 1_000_000
    now = [1_767_225_600 * 1_000_000]  # 2026-01-01T00:00:00Z
    windowed = policy(False, **{"auto_promote = false": "auto_promote = false\napproval_valid_days = 30"})
    assert windowed.approval_valid_days == 30
    with Ledger.create(tmp_path / "ledger", keyring, actor="gate-test", clock=lambda: now[0]) as ledger:
        bootstrap_champion(ledger)
        for version in ("v012", "v013"):
            e = evaluation_from_mapping(evaluation(version, CHALLENGER_SCORES, CHALLENGER_THRESHOLD,
                                                   trained_end="2026-04-20T03:00:00Z"))
            run_gate(ledger, e, windowed, observed_artifacts=observed(e))
            now[0] += day
        now[0] += 29 * day  # v012 waited 31 days, v013 30
        ledger.flush()
        before = ledger.head.seq
        with pytest.raises(GateInputError, match=r"v012 has waited 31 days for a sign-off \(since 2026-01-01T00:00:00Z\); "
                                                 "the policy it was evaluated under accepts an approval within 30 days"):
            approve(ledger, slot=SLOT, version="v012", operator="mrm-chair", reason="late")
        ledger.flush()
        assert ledger.head.seq == before
        d = decline(ledger, slot=SLOT, version="v012", operator="mrm-chair", reason="stale verdict")
        a = approve(ledger, slot=SLOT, version="v013", operator="mrm-chair", reason="within the window")
        recorded = promotion_entry(ledger.path, a.seq)["details"]["replay"]
        assert (recorded["requested_at"], recorded["decided_at"], recorded["valid_days"]) == (
            "2026-01-02T00:00:00Z", "2026-02-01T00:00:00Z", 30)
        assert all(check_replay(ledger.path, seq=seq)[0].matches for seq in (d.seq, a.seq))
        assert load_registry(ledger.path).registry.production(SLOT) == "v013"


# --- refusals write nothing ---------------------------------------------------------------------------


def _refusals():
    other = evaluation_from_mapping(
        evaluation("v010", CHAMPION_SCORES, CHAMPION_THRESHOLD, trained_end="2026-04-13T03:00:00Z"))
    no_metric = challenger_dict()
    del no_metric["metrics"]["task_churn"]["accuracy"]
    swapped = champion_dict()
    swapped["lineage"]["artifacts"][0]["sha256"] = "b" * 64
    return [
        ("approve a version that is not pending", lambda l: approve(l, slot=SLOT, version="v011", operator="o", reason="r"),
         TransitionRefused, "only a pending_approval version can be approved"),
        ("decline an unknown version", lambda l: decline(l, slot=SLOT, version="v099", operator="o", reason="r"),
         TransitionRefused, "v099 is not registered"),
        ("force-promote an unregistered version",
         lambda l: force_promote(l, slot=SLOT, version="v099", operator="o", reason="r"),
         TransitionRefused, "only a registered version can be force-promoted"),
        ("force-promote without a reason", lambda l: force_promote(l, slot=SLOT, version="v011", operator="o", reason=" "),
         GateInputError, "needs a reason"),
        ("roll back with nothing to return to", lambda l: rollback(l, slot=SLOT, operator="o", reason="r"),
         TransitionRefused, "no archived former production version"),
        ("roll back to a version never in production",
         lambda l: rollback(l, slot=SLOT, operator="o", reason="r", to_version="v099"),
         GateInputError, "it was never production there"),
        ("gate the production version again", lambda l: gate(l, champion_dict()),
         TransitionRefused, "v011 is production in slot credit_pd; the gate decides on a version once"),
        ("gate against a champion that is not production",
         lambda l: gate(l, challenger_dict(), champion=other),
         GateInputError, "the champion evaluation is of v010, but production in slot credit_pd is v011"),
        ("gate against a champion evaluation of other artifacts",
         lambda l: gate(l, challenger_dict(), champion=evaluation_from_mapping(swapped)),
         GateInputError, "the champion evaluation's artifacts differ from those registered for v011 at seq 1"),
        ("gate with a missing metric", lambda l: gate(l, no_metric),
         MissingMetric, "metric 'accuracy' is missing for task task_churn"),
        ("gate an unregistered version without registering", lambda l: gate(l, challenger_dict(), register=False),
         TransitionRefused, "v012 is not registered"),
        ("traffic to an unregistered version",
         lambda l: set_traffic(l, slot=SLOT, challenger_version="v099", mode="canary_5", operator="o", reason="r"),
         TransitionRefused, "only a candidate or pending_approval version can take challenger traffic"),
    ]


@pytest.mark.parametrize("what, action, error, message", _refusals(), ids=[r[0] for r in _refusals()])
def test_refused_changes_write_nothing(ledger, what, action, error, message):
    bootstrap_champion(ledger)
    ledger.flush()
    before = ledger.head.seq
    with pytest.raises(error, match=message):
        action(ledger)
    ledger.flush()
    assert ledger.head.seq == before, f"{what}: something was written"


def test_approval_is_refused_when_production_changed_since_the_comparison(ledger):
    bootstrap_champion(ledger)
    gate(ledger, challenger_dict(), auto=False)
    register_candidate(ledger, slot=SLOT, version="v013")
    force_promote(ledger, slot=SLOT, version="v013", operator="eng-42", reason="emergency")
    with pytest.raises(TransitionRefused, match="v012 was compared against v011, but production in slot credit_pd "
                                                "is now v013; decline it and evaluate a new version against v013"):
        approve(ledger, slot=SLOT, version="v012", operator="mrm-chair", reason="ok")
    decline(ledger, slot=SLOT, version="v012", operator="mrm-chair", reason="stale comparison")
    assert load_registry(ledger.path).registry.states(SLOT)["v012"] == REJECTED


# --- a failing write changes nothing -----------------------------------------------------------------


class FailingLedger(Ledger):
    """A ledger whose writes to some tables fail, as a full disk would make them."""

    failing = ("model_promotion",)

    def log(self, table, row, *, durable=False):
        if table in self.failing:
            raise OSError(28, "No space left on device")
        return super().log(table, row, durable=durable)


def _registry_shape(path):
    view = load_registry(path)
    return view.registry.states(SLOT), [(t.seq, t.version, t.to_state) for t in view.registry.history(SLOT)]


@pytest.mark.parametrize("approved_first, action", [
    (False, lambda l: approve(l, slot=SLOT, version="v012", operator="mrm-chair", reason="ok")),
    (False, lambda l: decline(l, slot=SLOT, version="v012", operator="mrm-chair", reason="no")),
    (False, lambda l: force_promote(l, slot=SLOT, version="v012", operator="eng", reason="emergency")),
    (True, lambda l: rollback(l, slot=SLOT, operator="eng", reason="latency")),
], ids=["approve", "decline", "force_promote", "rollback"])
def test_a_failing_ledger_write_leaves_the_registry_unchanged(tmp_path, keyring, approved_first, action):
    path = tmp_path / "ledger"
    with Ledger.create(path, keyring, actor="gate-test") as ledger:
        bootstrap_champion(ledger)
        gate(ledger, challenger_dict(), auto=False)
        if approved_first:  # a rollback needs a former production version
            approve(ledger, slot=SLOT, version="v012", operator="mrm-chair", reason="ok")
    before = _registry_shape(path)
    with FailingLedger.open(path, keyring, actor="gate-test") as failing:
        with pytest.raises(OSError, match="No space left on device"):
            action(failing)
    assert _registry_shape(path) == before
    assert verify_ledger(path, keyring).ok


def test_a_failing_fsync_drops_the_entry_and_changes_nothing(ledger, monkeypatch):
    bootstrap_champion(ledger)
    gate(ledger, challenger_dict(), auto=False)
    before = _registry_shape(ledger.path)
    real_fsync = os.fsync

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        approve(ledger, slot=SLOT, version="v012", operator="mrm-chair", reason="ok")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert _registry_shape(ledger.path) == before
    approve(ledger, slot=SLOT, version="v012", operator="mrm-chair", reason="ok")  # the ledger still works
    assert load_registry(ledger.path).registry.production(SLOT) == "v012"
    assert verify_ledger(ledger.path, ledger.keyring).ok


def test_a_failed_decision_write_after_registration_leaves_a_candidate_and_production_as_it_was(tmp_path, keyring):
    path = tmp_path / "ledger"
    with Ledger.create(path, keyring, actor="gate-test") as ledger:
        bootstrap_champion(ledger)
    with FailingLedger.open(path, keyring, actor="gate-test") as failing:
        with pytest.raises(OSError):
            gate(failing, challenger_dict())
    # The submission is a fact (registered); no verdict was recorded, so nothing was decided.
    assert load_registry(path).registry.states(SLOT) == {"v011": PRODUCTION, "v012": CANDIDATE}
    with Ledger.open(path, keyring, actor="gate-test") as ledger:
        assert gate(ledger, challenger_dict()).decision.outcome == "promote"


# --- replay from the ledger ---------------------------------------------------------------------------


def _story(ledger):
    bootstrap_champion(ledger)
    gate(ledger, challenger_dict(fidelity={"task_churn": {"kl": 0.31}, "task_next_best": {"kl": 0.01}}))
    gate(ledger, evaluation("v013", CHALLENGER_SCORES, CHALLENGER_THRESHOLD, trained_end="2026-04-20T03:00:00Z"),
         auto=False)
    approve(ledger, slot=SLOT, version="v013", operator="mrm-chair", reason="ok")
    rollback(ledger, slot=SLOT, operator="eng-7", reason="SLO breach")
    force_promote(ledger, slot=SLOT, version="v013", operator="eng-42", reason="fixed upstream feed")
    ledger.flush()


def test_replay_reproduces_every_decision_in_the_ledger(ledger):
    _story(ledger)
    reports = check_replay(ledger.path)
    assert [(r.recorded_decision, r.kind) for r in reports] == [
        ("bootstrap", "gate"), ("reject", "gate"), ("pending_approval", "gate"), ("approve", "approval"),
        ("rollback", "rollback"), ("force_promote", "force_promote")]
    for r in reports:
        assert r.matches, r.to_text()
        assert r.replayed_decision == r.recorded_decision and r.context_checks
    # And the pure replay of the stored details gives the decision that was written.
    for p in promotions(ledger):
        assert replay(json.loads(p["details"])).outcome == p["decision"]


def test_replay_of_an_entry_recorded_by_digest_only_needs_the_evaluations_back(ledger):
    bootstrap_champion(ledger)
    r = gate(ledger, challenger_dict(), inline_evaluations=False)
    ledger.flush()
    [report] = check_replay(ledger.path, r.seq)
    # Not replayed, but nothing wrong found: it is not reported as an altered record.
    assert (report.matches, report.mismatch, report.problems) == (False, False, ())
    assert "the challenger evaluation was recorded by digest only" in report.missing_input
    assert "NOT REPLAYED" in report.to_text() and "MISMATCH" not in report.to_text()
    # The champion's evaluation is recorded inline at bootstrap; the challenger's file comes back.
    evaluations = [evaluation_from_mapping(challenger_dict()), evaluation_from_mapping(champion_dict())]
    assert check_replay(ledger.path, r.seq, evaluations)[0].matches


def _tamper(path, seq: int, change) -> None:
    for f in segment_files(path, "model_promotion"):
        def edit(rows):
            for row in rows:
                if row["seq"] == seq:
                    change(row)
            return rows
        edit_rows(f, "model_promotion", edit)


def _edit_details(fn):
    def change(row):
        d = json.loads(row["details"])
        fn(d)
        row["details"] = rfc8785.dumps(d).decode()
    return change


@pytest.mark.parametrize("change, expected", [
    (_edit_details(lambda d: d["replay"]["challenger"]["holdout"]["tasks"]["task_churn"]["scores"].__setitem__(0, 0.99)),
     "recorded inputs were altered: the recorded challenger evaluation does not match its recorded digest"),
    (_edit_details(lambda d: d["replay"]["policy"]["gate"].__setitem__("alpha", 0.5)),
     "recorded inputs were altered: the recorded policy does not match its recorded digest"),
    (_edit_details(lambda d: d["replay"]["champion"]["metrics"]["task_churn"].__setitem__("auc", 0.5)),
     "recorded inputs were altered: the recorded champion evaluation does not match its recorded digest"),
])
def test_an_edited_recorded_input_is_reported_not_replayed(tmp_path, keyring, change, expected):
    path = tmp_path / "ledger"
    with Ledger.create(path, keyring, actor="gate-test") as ledger:
        bootstrap_champion(ledger)
        seq = gate(ledger, challenger_dict()).seq
    _tamper(path, seq, change)
    [report] = check_replay(path, seq)
    assert not report.matches and report.replayed_decision is None
    assert report.problems[0] == expected
    assert not verify_ledger(path, keyring).ok  # the chain says the same, independently


def test_an_edited_decision_column_is_reported_field_by_field(tmp_path, keyring):
    path = tmp_path / "ledger"
    with Ledger.create(path, keyring, actor="gate-test") as ledger:
        bootstrap_champion(ledger)
        seq = gate(ledger, challenger_dict(guardrails={"p99_latency_ms": 240.0, "disparate_impact": 0.95})).seq
    original = promotion_entry(path, seq)
    assert original["decision"] == "reject"

    def forge(row):
        row["decision"], row["reason"] = "promote", "challenger wins"
        row["comparison"][0]["passed"] = True

    _tamper(path, seq, forge)
    [report] = check_replay(path, seq)
    assert not report.matches and report.replayed_decision == "reject"
    fields = {d.field: (d.recorded, d.replayed) for d in report.differences}
    assert fields["decision"] == ("promote", "reject")
    assert fields["reason"] == ("challenger wins", original["reason"])
    assert set(fields) == {"decision", "reason"}  # comparison[0] passed was already True: the guardrail failed


def test_an_entry_against_a_stale_champion_is_reported_and_an_invalid_one_breaks_derivation(ledger):
    bootstrap_champion(ledger)
    gate(ledger, challenger_dict(), auto=False)
    # Written around the API: an override naming the wrong champion.
    bad = decide_force_promote(SLOT, "v013", "v999", operator="eng", reason="x")
    ledger.log_model_promotion(**bad.to_promotion_entry(), durable=True)
    report = check_replay(ledger.path)[-1]
    assert not report.matches and report.replayed_decision == "force_promote" and not report.differences
    assert report.problems == ("the entry names champion 'v999', but production in slot credit_pd was 'v011' just before it",)
    # An approval of a version that is not pending is no transition at all: derivation stops there.
    seq = ledger.log_model_promotion(**decide_approval(SLOT, "v011", "v013", approve=True, operator="o",
                                                       reason="r").to_promotion_entry(), durable=True)
    with pytest.raises(InconsistentHistory, match=f"inconsistent at seq {seq}: seq {seq} \\(approve of v011"):
        load_registry(ledger.path)
    assert "not a valid registry transition at this point" in check_replay(ledger.path, seq)[0].problems[-1]


# --- registry invariants under random operations, on a real ledger ------------------------------------


# Three models of increasing skill on the same holdout: each beats the ones before it significantly.
_y = np.asarray(LABELS)
_best = (0.6 * _y + 0.4 * np.random.default_rng(5).random(len(_y))).tolist()
TIERS = {"gate_weak": (CHAMPION_SCORES, CHAMPION_THRESHOLD), "gate_strong": (CHALLENGER_SCORES, CHALLENGER_THRESHOLD),
         "gate_best": ({t: _best for t in CHAMPION_SCORES}, 0.5)}
# Weighted by repetition: gates and sign-offs are what moves production.
OPS = ("register", "gate_weak", "gate_strong", "gate_strong", "gate_best", "gate_best", "approve", "approve", "decline",
       "force", "rollback", "rollback", "rollback_to", "traffic")
PROMOTING = ("bootstrap", "promote", "approve", "force_promote", "rollback")


def _pick(data, reg, op: str, slot: str, fresh: str) -> str:
    """A version for ``op``: usually one the operation can apply to, sometimes any other
    (a new one, or one in the wrong state), so that refusals are exercised too."""
    states = reg.states(slot)
    fitting = {
        "register": [fresh], "gate_weak": [fresh], "gate_strong": [fresh], "gate_best": [fresh],
        "approve": [v for v, s in states.items() if s == PENDING],
        "decline": [v for v, s in states.items() if s == PENDING],
        "force": [v for v, s in states.items() if s != PRODUCTION],
        "rollback_to": list(reg.previous_production(slot)),
        "traffic": [v for v, s in states.items() if s in (CANDIDATE, PENDING)],
    }.get(op, [fresh])
    anything = sorted(states) + [fresh]
    return data.draw(st.sampled_from(fitting) if fitting and data.draw(st.integers(0, 4)) else st.sampled_from(anything))


def _do(ledger, op, slot, version, flag):
    if op == "register":
        return register_candidate(ledger, slot=slot, version=version)
    if op in TIERS:
        scores, threshold = TIERS[op]
        e = evaluation_from_mapping(evaluation(version, scores, threshold, trained_end="2026-04-20T03:00:00Z", slot=slot))
        return run_gate(ledger, e, policy(flag), observed_artifacts=observed(e))
    if op in ("approve", "decline"):
        return (approve if op == "approve" else decline)(ledger, slot=slot, version=version, operator="o", reason="r")
    if op == "force":
        return force_promote(ledger, slot=slot, version=version, operator="o", reason="r")
    if op == "rollback":
        return rollback(ledger, slot=slot, operator="o", reason="r")
    if op == "rollback_to":
        return rollback(ledger, slot=slot, operator="o", reason="r", to_version=version)
    return set_traffic(ledger, slot=slot, challenger_version=version, mode="canary_10" if flag else "off",
                       operator="o", reason="r")


def _check_invariants(reg, expected: dict[str, str | None]) -> None:
    for s, live_now in expected.items():
        assert reg.production(s) == live_now
        # At every instant the history holds at most one production version, and champion_at
        # agrees with the history replayed up to that instant.
        live: dict[str, str] = {}
        history = reg.history(s)
        for i, t in enumerate(history):
            live[t.version] = t.to_state
            assert sum(state == PRODUCTION for state in live.values()) <= 1
            if i + 1 == len(history) or history[i + 1].ts != t.ts:
                now = [v for v, state in live.items() if state == PRODUCTION]
                assert reg.champion_at(s, t.ts) == (now[0] if now else None)
        # Only production is archived or rolled back; a rollback returns to a former production version.
        for t in history:
            if t.to_state in (ARCHIVED, ROLLED_BACK):
                assert t.from_state == PRODUCTION
            if t.cause == "rollback" and t.to_state == PRODUCTION:
                assert any(u.version == t.version and u.to_state == PRODUCTION and u.index < t.index for u in history)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_registry_invariants_under_random_operations_read_back_from_a_real_ledger(tmp_path_factory, keyring, data):
    path = tmp_path_factory.mktemp("registry") / "ledger"
    expected: dict[str, str | None] = {"s1": None, "s2": None}
    with Ledger.create(path, keyring, actor="prop") as ledger:
        for n in range(data.draw(st.integers(3, 16))):
            op, slot = data.draw(st.sampled_from(OPS)), data.draw(st.sampled_from(["s1", "s1", "s2"]))
            version = _pick(data, load_registry(path).registry, op, slot, fresh=f"v{n}")
            flag = data.draw(st.booleans())
            ledger.flush()
            before = ledger.head.seq
            try:
                done = _do(ledger, op, slot, version, flag)
            except (TransitionRefused, GateInputError):
                ledger.flush()
                assert ledger.head.seq == before, f"refused {op} of {version} wrote something"
                continue
            if getattr(getattr(done, "decision", None), "outcome", None) in PROMOTING:
                expected[slot] = done.decision.challenger_version
            _check_invariants(load_registry(path).registry, expected)
    for report in check_replay(path):
        assert report.matches, report.to_text()


# --- concurrent writers -------------------------------------------------------------------------------


def test_concurrent_writers_never_record_a_stale_decision(tmp_path, keyring):
    path = tmp_path / "ledger"
    with Ledger.create(path, keyring, actor="setup") as ledger:
        bootstrap_champion(ledger)
        register_candidate(ledger, slot=SLOT, version="v012")
        register_candidate(ledger, slot=SLOT, version="v013")
    outcomes: list[str] = []
    unexpected: list[BaseException] = []

    def worker(version: str) -> None:
        try:
            with Ledger.open(path, keyring, actor=f"worker-{version}") as ledger:
                for i in range(6):
                    try:
                        if i % 2:
                            rollback(ledger, slot=SLOT, operator=version, reason=f"round {i}")
                        else:
                            force_promote(ledger, slot=SLOT, version=version, operator=version, reason=f"round {i}")
                        outcomes.append("ok")
                    except (TransitionRefused, GateInputError):  # e.g. the other writer got there first
                        outcomes.append("refused")
        except BaseException as e:  # surfaced below: a thread's exception would otherwise be lost
            unexpected.append(e)

    threads = [threading.Thread(target=worker, args=(v,)) for v in ("v012", "v013")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not unexpected, unexpected
    assert len(outcomes) == 12 and outcomes.count("ok") >= 6
    load_registry(path)  # every recorded decision is a valid transition: no stale champion
    assert all(r.matches for r in check_replay(path))
    assert verify_ledger(path, keyring).ok


# --- the serving manifest -----------------------------------------------------------------------------


def _previous_mac(path, seq: int) -> bytes:
    from ledger.schema import TABLE_NAMES

    for table in TABLE_NAMES:
        for row in read_table(path, table, ["seq", "mac"]).to_pylist():
            if row["seq"] == seq - 1:
                return row["mac"]
    raise AssertionError(seq)


def test_the_serving_manifest_names_the_entry_that_made_each_version_live(ledger, keyring):
    bootstrap_champion(ledger)
    gate(ledger, challenger_dict(), auto=False)
    traffic_seq = set_traffic(ledger, slot=SLOT, challenger_version="v012", mode="canary_10", operator="eng-7",
                              reason="canary", experiment="exp-1")
    m = serving_manifest(ledger.path)
    slot = m["slots"][SLOT]
    assert (m["format"], m["ledger_id"], m["as_of_seq"]) == ("mrm-serving-manifest/1", ledger.ledger_id, traffic_seq)
    assert (slot["production"], slot["seq"], slot["decision"]) == ("v011", 2, "bootstrap")
    assert {k: slot["challenger"][k] for k in ("challenger_version", "mode", "challenger_share", "experiment", "seq")} == {
        "challenger_version": "v012", "mode": "canary_10", "challenger_share": 0.1, "experiment": "exp-1",
        "seq": traffic_seq}
    a = approve(ledger, slot=SLOT, version="v012", operator="mrm-chair", reason="ok")
    slot = serving_manifest(ledger.path)["slots"][SLOT]
    assert (slot["production"], slot["seq"], slot["operator"], slot["challenger"]) == ("v012", a.seq, "mrm-chair", None)
    # entry_hash is the leaf the HMAC chain covers: HMAC(key, previous MAC || leaf) is the entry's MAC.
    mac = hmac.new(keyring.key("test-k1"), _previous_mac(ledger.path, a.seq) + bytes.fromhex(slot["entry_hash"]),
                   sha256).digest()
    assert mac.hex() == slot["entry_mac"] == promotion_entry(ledger.path, a.seq)["mac"].hex()
