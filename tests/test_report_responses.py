"""The validation history on a ledger built for three of its defects (issue 14), each test
failing on the code before the fix:

- integrity proofs: routine entries (weekly competition rejects, drift runs that did not
  alert) are proven one row per kind, exceptions one row each and first;
- the override analysis breaks no identifier or word across lines (two tables);
- responses to monitoring: a retrain proposal answers the drift alert it names
  (details.alert_seqs), and an automatic rollback is decided by its monitor, never NULL; in
  the PDF and in the `alert_responses` view.

The slot, in the demo's names: reco-2025w00 bootstraps; nightly drift runs, the sixth
significant (alert, retrain proposal); weekly challengers lose in competition; reco-2025w09
is promoted; a serving alert rolls it back automatically; a person force-promotes it again
and the committee reviews that. Times from T0 = 2025-01-06T09:00:00Z.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from types import SimpleNamespace

import numpy as np
import pytest

from gates.alerts import ROLLBACK, Alert
from gates.evaluation import evaluation_from_mapping
from gates.monitoring import Window, drift_report, propose_retrain, record_monitor_report
from gates.promotion import force_promote, review_override, rollback, run_gate
from ledger import Ledger
from forensics.session import LedgerSQL
from reports.documents import DocumentInfo, TrustPlan, ValidationScope, build_validation_report
from reports.documents.basis import establish_basis
from reports.documents.history import read_slot_history
from reports.html import render_html
from reports.render import render_pdf

from . import report_ledger as world
from .report_support import page_texts, squash
from .test_gates_decision import (
    CHALLENGER_SCORES,
    CHALLENGER_THRESHOLD,
    CHAMPION_SCORES,
    CHAMPION_THRESHOLD,
    evaluation,
    policy,
)

SLOT = "credit_pd"
T0 = dt.datetime(2025, 1, 6, 9, 0, tzinfo=dt.timezone.utc)
D, H = dt.timedelta(days=1), dt.timedelta(hours=1)
CREATED = dt.datetime(2025, 9, 1, 9, 30, tzinfo=dt.timezone.utc)
INFO = DocumentInfo(institution="Example Bank N.A.", generated_at=dt.datetime(2025, 9, 1, 9, 29, tzinfo=dt.timezone.utc))
QUIET_DRIFT_RUNS, WEEKLY_REJECTS = 5, 8
OPERATOR = "mrm.park.seoyeon"
FORCE_REASON = ("restore reco-2025w09 after the serving incident: latency_ms recovered on canary_20; "
                "fidelity:task_churn and degradation:task_next_best/accuracy rechecked offline (MRM-2025-0042)")
SERVING_SUMMARY = f"{SLOT} reco-2025w09: rolling back: p99 latency 53.4249 ms is 5.73x the baseline (max 2x)"


def _observed(e):
    return {a.path: a.sha256 for a in e.lineage.artifacts}


def _drift_run(ledger, gate_policy, version: str, day: int, shift: float):
    rng = np.random.default_rng(day)
    baseline = {"score:approve": rng.normal(0.4, 0.1, size=2000).tolist()}
    current = {"score:approve": rng.normal(0.4 + shift, 0.1, size=2000).tolist()}
    report = drift_report(SLOT, version, gate_policy, baseline, current,
                          window=Window(T0 + (day - 7) * D, T0 + day * D))
    return report, record_monitor_report(ledger, report, run_id=f"drift/{day}")


def build(path, keyring) -> dict[str, object]:
    now = {"t": T0}
    ledger = Ledger.create(path, keyring, actor="gate-service", clock=lambda: int(now["t"].timestamp() * 1_000_000))
    gate_policy = dataclasses.replace(policy(auto=True), approval_valid_days=30)
    champion = evaluation_from_mapping(evaluation("reco-2025w00", CHAMPION_SCORES, CHAMPION_THRESHOLD,
                                                  trained_end="2026-04-13T03:00:00Z"))
    known: dict[str, object] = {"quiet_drift": [], "rejects": []}
    with ledger:
        known["bootstrap"] = run_gate(ledger, champion, gate_policy, observed_artifacts=_observed(champion)).seq
        for day in range(1, QUIET_DRIFT_RUNS + 1):
            now["t"] = T0 + day * D
            _, run = _drift_run(ledger, gate_policy, "reco-2025w00", day, 0.0)
            assert not run.alert_seqs
            known["quiet_drift"].append(run.run_seq)
        now["t"] = T0 + (QUIET_DRIFT_RUNS + 1) * D
        report, run = _drift_run(ledger, gate_policy, "reco-2025w00", QUIET_DRIFT_RUNS + 1, 0.08)
        [known["drift_alert"]] = run.alert_seqs
        known["drift_run"] = run.run_seq
        known["proposal"] = propose_retrain(ledger, report, run)
        for week in range(1, WEEKLY_REJECTS + 1):
            now["t"] = T0 + week * 7 * D + 2 * H
            loser = evaluation_from_mapping(evaluation(f"reco-2025w{week:02d}", CHAMPION_SCORES, CHAMPION_THRESHOLD,
                                                       trained_end="2026-05-04T03:00:00Z"))
            known["rejects"].append(run_gate(ledger, loser, gate_policy, observed_artifacts=_observed(loser)).seq)
        now["t"] = T0 + 63 * D
        winner = evaluation_from_mapping(evaluation("reco-2025w09", CHALLENGER_SCORES, CHALLENGER_THRESHOLD,
                                                    trained_end="2026-05-11T03:00:00Z"))
        known["promote"] = run_gate(ledger, winner, gate_policy, observed_artifacts=_observed(winner)).seq
        now["t"] = T0 + 64 * D
        alert = Alert("online.rollback", SLOT, "reco-2025w09", "breach", ROLLBACK, SERVING_SUMMARY,
                      {"p99_latency_ms": 53.4249, "baseline_p99_ms": 9.32, "max_ratio": 2.0})
        known["serving_alert"] = ledger.log_operation(**alert.to_operation_entry(correlation_id="serving/reco-2025w09"),
                                                      durable=True)
        carried = {"seq": known["serving_alert"], "monitor": alert.monitor, "status": alert.status,
                   "summary": alert.summary, "measurements": dict(alert.measurements)}
        known["rollback"] = rollback(ledger, slot=SLOT, reason=alert.summary, trigger="auto", alert=carried,
                                     responds_to_seq=known["serving_alert"]).seq
        now["t"] = T0 + 70 * D
        known["force"] = force_promote(ledger, slot=SLOT, version="reco-2025w09", operator=OPERATOR,
                                       reason=FORCE_REASON).seq
        now["t"] = T0 + 72 * D
        known["review"] = review_override(ledger, reviews_seq=known["force"], outcome="upheld", reviewer="mrm-chair",
                                          note="MRM committee 2025-03-19, minute 2: the restore of reco-2025w09 stands")
    return known


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    root = tmp_path_factory.mktemp("responses-report")
    keyring = world.signing_keyring()
    known = build(root / "ledger", keyring)
    report = build_validation_report(root / "ledger", ValidationScope(SLOT), TrustPlan.hmac_chain(keyring), INFO)
    pdf = render_pdf(report, keyring.signer, created=CREATED).pdf
    text = "\n".join(page_texts(pdf))
    basis = establish_basis(root / "ledger", TrustPlan.hmac_chain(keyring))
    history = read_slot_history(basis.source, SLOT, None, None)
    return SimpleNamespace(root=root, keyring=keyring, known=known, report=report, pdf=pdf, text=text,
                           flat=squash(text), history=history)


# Where each part of the document starts and ends in its text (headings also appear in the contents).
OVERRIDES = ("Override analysis (SR 11-7)", "A rollback returns the slot")
ROLLBACKS = ("A rollback returns the slot", "Every champion/challenger decision writes")
TIMELINE = ("The registry is not stored anywhere", "Ongoing monitoring (SR 11-7)")
ALERTS = ("Monitor alerts in the period, each with", "Responses to monitoring:")
RESPONSES = ("Responses to monitoring:", "What this document rests on")
INTEGRITY = ("Every entry behind this history", "The ledger holds seven audit tables")


def has(s, phrase: str) -> bool:
    return squash(phrase) in s.flat


def _section(s, start: str, end: str) -> str:
    """The rendered text from the heading ``start`` to the heading ``end``."""
    i = s.text.index(start)
    return s.text[i:s.text.index(end, i)]


# --------------------------------------------------------------------------- integrity proofs


def test_routine_entries_are_proven_one_row_per_kind_after_the_exceptions(story):
    k = story.known
    rejects, quiet = k["rejects"], k["quiet_drift"]
    assert has(story, f"Routine rejects (gate, in competition) model_promotion {WEEKLY_REJECTS} {rejects[0]} to "
                      f"{rejects[-1]} \u2713 {WEEKLY_REJECTS} OF {WEEKLY_REJECTS} PROVEN")
    assert has(story, f"Drift monitor runs without an alert operation {QUIET_DRIFT_RUNS} {quiet[0]} to {quiet[-1]} "
                      f"\u2713 {QUIET_DRIFT_RUNS} OF {QUIET_DRIFT_RUNS} PROVEN")
    integrity = _section(story, *INTEGRITY)
    exceptional = integrity.index("Exceptional entries shown, each proven")
    assert exceptional < integrity.index("Routine entries shown, one row per kind")
    lines = integrity.splitlines()
    # Each exception has its own row (entry, table, seq, shortened leaf hash); no routine entry has one.
    for name in ("bootstrap", "promote", "rollback", "force", "drift_run", "drift_alert", "proposal", "serving_alert",
                 "review"):
        assert any(re.search(rf"\b{k[name]} [0-9a-f]{{12}}\u2026", line) for line in lines), name
    for seq in rejects + quiet:
        assert not any(re.search(rf"\b{seq} [0-9a-f]{{12}}\u2026", line) for line in lines), seq


def test_every_proof_is_still_attached_and_counted(story):
    k = story.known
    shown = set(k["rejects"]) | set(k["quiet_drift"]) | {k[n] for n in ("bootstrap", "promote", "rollback", "force",
                                                                       "drift_run", "drift_alert", "proposal",
                                                                       "serving_alert", "review")}
    assert has(story, f"{len(shown)} of {len(shown)} inclusion proofs verify")


# --------------------------------------------------------------------------- override analysis


def test_no_table_breaks_a_token(story):
    # the renderer marks a column that had to wrap inside words "may-break" (reports/widths.py)
    html = render_html(story.report, signer=None, created=CREATED)
    assert "may-break" not in html
    overrides = _section(story, *OVERRIDES)
    lines = overrides.splitlines()
    for token in ("reco-2025w09", OPERATOR, "MRM-2025-0042", "fidelity:task_churn", "canary_20",
                  "degradation:task_next_best/accuracy", str(story.known["force"]), str(story.known["review"])):
        assert any(token in line for line in lines), token


def test_the_override_is_shown_with_the_verdict_at_the_time_then_the_review(story):
    k = story.known
    overrides = _section(story, *OVERRIDES)
    first = overrides.index("Decisions made by a person, with the gate's verdict on the same version at the time")
    second = overrides.index("Each decision by a person: why, as recorded; the committee's review of it; and what followed")
    assert first < second
    flat = squash(overrides[first:second])
    assert squash(f"the gate decided promote at seq {k['promote']}, competition stage, 7 days before") in flat
    assert squash(f"production changed since (seq {k['rollback']}: rollback of reco-2025w00)") in flat
    assert squash(FORCE_REASON) not in flat  # why is the second table's, with the review
    rest = squash(overrides[second:])
    assert squash(FORCE_REASON) in rest and squash(f"seq {k['review']}: upheld by mrm-chair") in rest


# --------------------------------------------------------------------------- responses to monitoring


def test_a_retrain_proposal_answers_the_drift_alert_it_names(story):
    k = story.known
    response = story.history.response_to(next(a for a in story.history.alerts if a.seq == k["drift_alert"]))
    assert response is not None and response.seq == k["proposal"] and response.entry == "retrain_proposal"
    alerts = squash(_section(story, *ALERTS))
    assert squash(f"seq {k['proposal']} (retrain_proposal)") in alerts
    assert has(story, f"answered by seq {k['proposal']}: retrain proposal by monitor drift (automatic")
    responses = squash(_section(story, *RESPONSES))
    assert squash(f"{k['proposal']}") in responses and squash(f"alert seq {k['drift_alert']}") in responses
    assert squash("2 entr(y/ies) answering an alert") in responses  # the proposal and the automatic rollback


def test_an_automatic_rollback_is_decided_by_its_monitor_never_null(story):
    k = story.known
    decision = story.history.decision_at(k["rollback"])
    assert decision is not None and decision.operator is None
    assert decision.decided_by == "monitor online.rollback (automatic)"
    rollbacks = squash(_section(story, *ROLLBACKS))
    assert squash(f"{k['rollback']}") in rollbacks and squash("monitor online.rollback (automatic)") in rollbacks
    assert "NULL" not in rollbacks and "None" not in rollbacks
    assert has(story, f"answered by seq {k['rollback']}: rollback of reco-2025w00 by monitor online.rollback (automatic)")
    responses = squash(_section(story, *RESPONSES))
    assert squash(f"alert seq {k['serving_alert']}") in responses
    assert squash("decided by monitor online.rollback (automatic)") in responses
    # the production timeline names the monitor too
    timeline = squash(_section(story, *TIMELINE))
    assert squash("monitor online.rollback (automatic)") in timeline
    assert "NULL" not in story.flat.replace(squash("NULL means the ledger holds no value"), "")


def test_the_alert_responses_view_counts_them_too(story):
    k = story.known
    with LedgerSQL.open(story.root / "ledger") as sql:
        rows = sql.query("SELECT alert_seq, response_seq, response, operator, decided_by FROM alert_responses "
                         "ORDER BY alert_seq, response_seq").to_pylist()
    by_alert = {r["alert_seq"]: r for r in rows}
    assert len(rows) == len(by_alert) == 2
    assert by_alert[k["drift_alert"]] == {"alert_seq": k["drift_alert"], "response_seq": k["proposal"],
                                          "response": "retrain_proposal", "operator": None,
                                          "decided_by": "monitor drift (automatic)"}
    assert by_alert[k["serving_alert"]] == {"alert_seq": k["serving_alert"], "response_seq": k["rollback"],
                                            "response": "rollback", "operator": None,
                                            "decided_by": "monitor online.rollback (automatic)"}
