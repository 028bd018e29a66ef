"""Online champion/challenger and production monitors over the ledger (the I/O edge of
:mod:`gates.online` and :mod:`gates.monitors`), fed by :mod:`gates.observations`.

What the monitors write:

- **Alerts**: a breach writes ``operation`` entries with ``event_type = "monitor_alert"``
  (:meth:`gates.alerts.Alert.to_operation_entry`). Every monitor run also writes one
  ``monitor_run`` entry with all its results, breach or not — evidence that monitoring ran and
  what it saw — and its alerts share the run's ``correlation_id``.
- **Online evaluations**: one ``operation`` entry, ``event_type = "online_evaluation"``.

Monitors of the live model read served predictions only (shadow predictions were not served).
Fairness judges what the customer received by default (a guardrail may have changed or
blocked the model's proposal); the run records the basis it used (``inputs.basis``) and its
breach rule (``inputs.breach_rule``, :data:`gates.monitors.BREACH_RULES`).

Computation (``compute_*``) reads only; recording (``record_*``, :func:`act_on_serving`)
writes. Drift never deploys anything: the most it does is propose a retrain, and a rollback
goes through :func:`gates.promotion.rollback`, so it is a model_promotion entry like any other.
"""

from __future__ import annotations

import csv
import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gates.alerts import PROPOSE_RETRAIN, ROLLBACK, Alert
from gates.ledger_io import LedgerSource, TransitionRefused, as_snapshot, load_registry
from gates.links import MONITOR_ALERT
from gates.monitors import (
    POINT_ESTIMATE,
    DriftResult,
    disparate_impact,
    equal_opportunity_difference,
    population_stability,
    statistical_parity_difference,
)
from gates.observations import (
    LATENCY,
    MonitorInputError,
    Window,
    count_errors,
    read_inferences,
    read_outcomes,
    read_served_outputs,
    request_values,
)
from gates.online import ServingWindow, check_rollback, evaluate_online
from gates.policy import Policy
from gates.promotion import Recorded, rollback
from gates.stats import WELCH
from ledger import Ledger
from ledger.read import LedgerSnapshot

MONITOR_RUN, ONLINE_EVALUATION = "monitor_run", "online_evaluation"
RETRAIN_PROPOSAL = "retrain_proposal"
SERVED_ROUTES = ("champion", "challenger")  # plus null: what a customer actually received
# Which decision a fairness run judges: what the customer was served, or what the model proposed.
SERVED, PROPOSED = "served", "proposed"
BASES = (SERVED, PROPOSED)


# --- online champion/challenger ---------------------------------------------------------------


@dataclass(frozen=True)
class OnlineReport:
    slot: str
    champion_version: str
    challenger_version: str
    window: Window
    n_champion: int  # requests in each arm, before missing values
    n_challenger: int
    results: tuple[Any, ...]  # gates.online.OnlineEvaluation, one per metric
    missing: Mapping[str, tuple[int, int]]  # metric -> (champion, challenger) requests without a value

    def to_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot, "champion_version": self.champion_version,
            "challenger_version": self.challenger_version, "window": self.window.to_dict(),
            "n_champion": self.n_champion, "n_challenger": self.n_challenger,
            "results": [{"metric": r.metric, "outcome": r.outcome, "detail": r.detail,
                         "test": r.test.to_dict() if r.test else None,
                         "missing_champion": self.missing[r.metric][0], "missing_challenger": self.missing[r.metric][1]}
                        for r in self.results],
        }


def compute_online(source: LedgerSource, slot: str, policy: Policy, *, challenger_version: str | None = None,
                   champion_version: str | None = None, metrics: Sequence[str] | None = None,
                   window: Window = Window()) -> OnlineReport:
    """Welch's test of every online (``test = "welch"``) metric of the policy, champion arm
    against challenger arm, from the ledger's predictions and outcomes. The champion arm is the
    production version's champion-routed predictions; the challenger arm its challenger- and
    shadow-routed ones. Below ``online.min_samples`` per arm the outcome is insufficient_data."""
    snap = as_snapshot(source)
    view = load_registry(snap)
    champion_version = champion_version or view.registry.production(slot)
    if champion_version is None:
        raise MonitorInputError(f"slot {slot} has no production version; name the champion version")
    if challenger_version is None:
        traffic = view.traffic(slot)
        if traffic is None:
            raise MonitorInputError(f"slot {slot} has no challenger taking traffic; name the challenger version")
        challenger_version = traffic.challenger_version
    names = list(metrics) if metrics else [m.name for m in policy.metrics if m.test == WELCH]
    if not names:
        raise MonitorInputError("the policy declares no online metric (a [metrics.NAME] with test = \"welch\")")
    champ_rows = read_inferences(snap, slot, versions=[champion_version], routes=["champion", None], window=window)
    chal_rows = read_inferences(snap, slot, versions=[challenger_version], routes=["challenger", "shadow"], window=window)
    outcomes = read_outcomes(snap, [r["request_id"] for r in champ_rows + chal_rows])
    results, missing = [], {}
    for name in names:
        a, miss_a = request_values(name, champ_rows, outcomes)
        b, miss_b = request_values(name, chal_rows, outcomes)
        try:
            results.append(evaluate_online(a, b, metric=name, policy=policy))
        except KeyError:
            raise MonitorInputError(f"metric {name!r} is not declared in the policy") from None
        except ValueError as e:
            raise MonitorInputError(str(e)) from None
        missing[name] = (miss_a, miss_b)
    return OnlineReport(slot, champion_version, challenger_version, window, len(champ_rows), len(chal_rows),
                        tuple(results), missing)


def record_online(ledger: Ledger, report: OnlineReport) -> int:
    """One ``online_evaluation`` operation entry with every metric's test."""
    outcomes = {r.outcome for r in report.results}
    status = "challenger_worse" if "challenger_worse" in outcomes else sorted(outcomes)[0] if len(outcomes) == 1 else "mixed"
    return ledger.log_operation(event_type=ONLINE_EVALUATION, component="gates.online", status=status,
                                correlation_id=f"{report.slot}/{report.challenger_version}",
                                details=report.to_dict(), durable=True)


# --- serving health: rollback triggers --------------------------------------------------------


def _p99(values: Sequence[float]) -> float:
    return float(np.quantile(np.asarray(values, dtype=float), 0.99)) if len(values) else 0.0


def _periods(rows: Sequence[Mapping[str, Any]], values_by_request: Mapping[str, float], period: dt.timedelta) -> list[float]:
    """Mean value per period of the inference timestamps, oldest first; empty periods skipped."""
    buckets: dict[int, list[float]] = {}
    seconds = period.total_seconds()
    for r in rows:
        v = values_by_request.get(r["request_id"])
        if v is not None:
            buckets.setdefault(int(r["ts"].timestamp() // seconds), []).append(v)
    return [float(np.mean(buckets[k])) for k in sorted(buckets)]


@dataclass(frozen=True)
class ServingReport:
    slot: str
    version: str
    window: Window
    serving: ServingWindow
    alert: Alert | None

    def to_dict(self) -> dict[str, Any]:
        s = self.serving
        return {"slot": self.slot, "version": self.version, "window": self.window.to_dict(),
                "requests": s.requests, "errors": s.errors, "latency_p99_ms": s.latency_p99_ms,
                "baseline_latency_p99_ms": s.baseline_latency_p99_ms, "slo_values": list(s.slo_values),
                "alert": None if self.alert is None else {"status": self.alert.status, "action": self.alert.action,
                                                          "summary": self.alert.summary}}


def compute_serving(source: LedgerSource, slot: str, policy: Policy, *, window: Window | None = None,
                    period: dt.timedelta = dt.timedelta(days=1)) -> ServingReport:
    """The rollback triggers of the policy on the live version of ``slot``: error rate, p99
    latency against the version it replaced, and a sustained SLO breach per ``period``.

    The default window starts when the live version took production. The baseline p99 is the
    replaced version's served predictions over the same length of time before that instant.
    """
    snap = as_snapshot(source)
    view = load_registry(snap)
    reg = view.registry
    version = reg.production(slot)
    if version is None:
        raise MonitorInputError(f"slot {slot} has no production version to watch")
    made_live = [t for t in reg.history(slot) if t.version == version and t.to_state == "production"][-1]
    window = window or Window(made_live.ts, None)
    rows = read_inferences(snap, slot, versions=[version], routes=["champion", None], window=window)
    errors = count_errors(snap, slot, version, window)
    replaced = [t.version for t in reg.history(slot) if t.index == made_live.index and t.from_state == "production"]
    baseline = 0.0
    if replaced:
        span = (window.until or dt.datetime.now(dt.timezone.utc)) - (window.since or made_live.ts)
        before = Window(made_live.ts - span, made_live.ts)
        baseline = _p99([r["latency_ms"] for r in read_inferences(snap, slot, versions=replaced,
                                                                   routes=["champion", None], window=before)])
    slo_values: list[float] = []
    rules = policy.rollback
    if rules.slo_metric is not None:
        outcomes = read_outcomes(snap, [r["request_id"] for r in rows])
        per_request = {}
        for r in rows:
            vals, _ = request_values(rules.slo_metric, [r], outcomes)
            if vals:
                per_request[r["request_id"]] = vals[0]
        slo_values = _periods(rows, per_request, period)
    serving = ServingWindow(len(rows) + errors, errors, _p99([r["latency_ms"] for r in rows]), baseline, tuple(slo_values))
    return ServingReport(slot, version, window, serving, check_rollback(slot, version, serving, policy))


@dataclass(frozen=True)
class ServingAction:
    report: ServingReport
    alert_seq: int | None = None
    rollback: Recorded | None = None
    note: str | None = None  # why a rollback the policy asked for did not happen

    def to_dict(self) -> dict[str, Any]:
        return {**self.report.to_dict(), "alert_seq": self.alert_seq,
                "rollback": self.rollback.to_dict() if self.rollback else None, "note": self.note}


def act_on_serving(ledger: Ledger, report: ServingReport, *, run_id: str | None = None) -> ServingAction:
    """Write the alert, if any; when the policy says ``rollback.action = "rollback"``, also roll
    the slot back to its most recent archived production version through the ledger.
    ``run_id`` (the alert's correlation_id) defaults to a random UUID."""
    if report.alert is None:
        return ServingAction(report)
    run = run_id or uuid.uuid4().hex
    alert_seq = ledger.log_operation(**report.alert.to_operation_entry(correlation_id=run), durable=True)
    if report.alert.action != ROLLBACK:
        return ServingAction(report, alert_seq)
    alert = {"seq": alert_seq, "monitor": report.alert.monitor, "status": report.alert.status,
             "summary": report.alert.summary, "measurements": dict(report.alert.measurements)}
    try:
        done = rollback(ledger, slot=report.slot, reason=report.alert.summary, trigger="auto", alert=alert,
                        responds_to_seq=alert_seq)
    except TransitionRefused as e:  # e.g. nothing to roll back to: the alert stands, a human must act
        return ServingAction(report, alert_seq, None, f"automatic rollback not possible: {e}")
    return ServingAction(report, alert_seq, done)


# --- fairness and drift -----------------------------------------------------------------------


def load_subjects(path: str | Path, attribute: str) -> dict[str, str]:
    """subject_id -> the value of ``attribute``, from a Parquet or CSV file the caller holds
    (the ledger keeps pseudonymous ids only)."""
    p = Path(path)
    try:
        if p.suffix.lower() == ".parquet":
            table = pq.read_table(p)
            columns = table.column_names
            rows = table.select([c for c in ("subject_id", attribute) if c in columns]).to_pylist()
        else:
            with p.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                columns = list(reader.fieldnames or [])
                rows = list(reader)
    except OSError as e:
        raise MonitorInputError(f"{p}: cannot read the subjects file: {e.strerror or e}") from None
    except (pa.ArrowInvalid, UnicodeDecodeError, csv.Error) as e:
        raise MonitorInputError(f"{p}: not a readable Parquet or CSV file ({e})") from None
    for needed in ("subject_id", attribute):
        if needed not in columns:
            raise MonitorInputError(f"{p}: no column {needed!r} (columns: {', '.join(columns)})")
    out: dict[str, str] = {}
    for i, r in enumerate(rows):
        if r["subject_id"] in (None, ""):
            raise MonitorInputError(f"{p}: row {i + 1} has no subject_id")
        sid, value = str(r["subject_id"]), "" if r[attribute] is None else str(r[attribute])
        if out.get(sid, value) != value:
            raise MonitorInputError(f"{p}: subject {sid} appears twice with different {attribute} values")
        out[sid] = value
    return out


@dataclass(frozen=True)
class MonitorReport:
    kind: str  # "fairness" or "drift"
    slot: str
    version: str
    window: Window
    results: tuple[dict[str, Any], ...]
    alerts: tuple[Alert, ...]
    inputs: Mapping[str, Any] = field(default_factory=dict)  # what the run was asked, for the record

    @property
    def status(self) -> str:
        return "alert" if self.alerts else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "slot": self.slot, "version": self.version, "window": self.window.to_dict(),
                "status": self.status, "inputs": dict(self.inputs), "results": list(self.results),
                "alerts": [{"monitor": a.monitor, "status": a.status, "action": a.action, "summary": a.summary}
                           for a in self.alerts]}


@dataclass(frozen=True)
class RecordedRun:
    run_id: str
    run_seq: int
    alert_seqs: tuple[int, ...]


def record_monitor_report(ledger: Ledger, report: MonitorReport, *, run_id: str | None = None) -> RecordedRun:
    """One ``monitor_run`` entry with every result, then one ``monitor_alert`` per alert, all
    sharing the run id as correlation_id; durable before returning. ``run_id`` defaults to a
    random UUID; a scheduler that names its runs (e.g. ``fairness/2025-W27``) passes its own."""
    run = run_id or uuid.uuid4().hex
    run_seq = ledger.log_operation(event_type=MONITOR_RUN, component=f"gates.monitor.{report.kind}",
                                   status=report.status, correlation_id=run, details=report.to_dict())
    seqs = tuple(ledger.log_operation(**a.to_operation_entry(correlation_id=run)) for a in report.alerts)
    ledger.flush()
    return RecordedRun(run, run_seq, seqs)


def _live_version(snap: LedgerSnapshot, slot: str, version: str | None, window: Window) -> str:
    if version is not None:
        return version
    reg = load_registry(snap).registry
    live = reg.champion_at(slot, window.until) if window.until is not None else reg.production(slot)
    if live is None:
        raise MonitorInputError(f"slot {slot} had no production version at the end of the window; name the version")
    return live


def compute_fairness(source: LedgerSource, slot: str, policy: Policy, subjects: Mapping[str, str], *,
                     attribute: str, privileged: str, unprivileged: str, favorable: Sequence[str],
                     positive_labels: Sequence[str] | None = None, version: str | None = None,
                     window: Window = Window(), basis: str = SERVED) -> MonitorReport:
    """Disparate impact, statistical parity and equal opportunity of the decisions of ``slot``
    in ``window``, unprivileged against privileged ``attribute`` groups.

    ``basis`` says which decision is judged: ``served``, what the customer received (the last
    guardrail verdict's final_output; a request without a guardrail verdict was served the
    model's proposal, and a blocked one nothing), or ``proposed``, the model's own
    ``model_inference.decision``. A decision is favorable when it is one of ``favorable``.
    Equal opportunity looks at the requests whose recorded outcome label is in
    ``positive_labels`` (default: ``favorable``); without outcomes it is insufficient_data.
    Subjects missing from ``subjects`` are counted and left out. A breach (breach rule
    point_estimate: one comparison per run) and a group too small to judge become alerts.
    """
    if not favorable:
        raise MonitorInputError("name at least one favorable decision")
    if basis not in BASES:
        raise MonitorInputError(f"unknown basis {basis!r}: use {' or '.join(BASES)}")
    snap = as_snapshot(source)
    version = _live_version(snap, slot, version, window)
    rows = read_inferences(snap, slot, versions=[version], routes=[*SERVED_ROUTES, None], window=window)
    if not rows:
        raise MonitorInputError(f"no served predictions of {slot} {version} in the window")
    decisions = [r["decision"] for r in rows]
    unguarded = 0
    if basis == SERVED:
        served = read_served_outputs(snap, [r["request_id"] for r in rows])
        unguarded = sum(r["request_id"] not in served for r in rows)
        decisions = [served.get(r["request_id"], r["decision"]) for r in rows]
    groups = [subjects.get(r["subject_id"]) for r in rows]
    unmatched = sum(g is None for g in groups)
    fav = [d in set(favorable) for d in decisions]
    group = [g if g is not None else "\x00unmatched" for g in groups]
    rules = policy.monitors
    kw = dict(unprivileged=unprivileged, privileged=privileged, rules=rules)
    results = [disparate_impact(fav, group, **kw), statistical_parity_difference(fav, group, **kw)]
    outcomes = read_outcomes(snap, [r["request_id"] for r in rows])
    positive = {str(x) for x in (positive_labels or favorable)}
    labelled = [(i, outcomes[r["request_id"]]) for i, r in enumerate(rows)
                if r["request_id"] in outcomes and outcomes[r["request_id"]].label is not None]
    results.append(equal_opportunity_difference(
        [str(o.label) in positive for _, o in labelled], [fav[i] for i, _ in labelled], [group[i] for i, _ in labelled],
        **kw))
    alerts = tuple(a for a in (r.alert(slot, version, POINT_ESTIMATE) for r in results) if a is not None)
    inputs = {"attribute": attribute, "privileged": privileged, "unprivileged": unprivileged,
              "favorable": list(favorable), "positive_labels": sorted(positive), "basis": basis,
              "breach_rule": POINT_ESTIMATE, "predictions": len(rows), "unmatched_subjects": unmatched,
              "labelled": len(labelled)}
    if basis == SERVED:
        inputs["served_without_guardrail"] = unguarded  # served the model's proposal as it was
    return MonitorReport("fairness", slot, version, window, tuple(r.to_dict() for r in results), alerts, inputs)


def _feature_values(rows: Sequence[Mapping[str, Any]], feature: str) -> list[float]:
    if feature == LATENCY:
        return [float(r["latency_ms"]) for r in rows]
    if feature.startswith("score:"):
        key = feature[len("score:"):]
        return [float(r["scores"][key]) for r in rows if key in r["scores"]]
    raise MonitorInputError(f"unknown drift feature {feature!r}: use score:<label> or {LATENCY}")


def _drift_dict(r: DriftResult) -> dict[str, Any]:
    return {"feature": r.feature, "status": r.status, "psi": r.psi, "kl": r.kl, "edges": list(r.edges),
            "expected": list(r.expected), "actual": list(r.actual), "n_baseline": r.n_baseline,
            "n_current": r.n_current}


def compute_drift(source: LedgerSource, slot: str, policy: Policy, *, baseline: Window, current: Window,
                  features: Sequence[str] | None = None, version: str | None = None) -> MonitorReport:
    """PSI and KL of the served predictions' distributions in ``current`` against ``baseline``,
    on quantile bins of the baseline. Features: ``score:<label>`` (default: every score label
    in the baseline) and ``latency_ms``. Significant drift proposes a retrain; never a deploy."""
    snap = as_snapshot(source)
    version = _live_version(snap, slot, version, current)
    routes = [*SERVED_ROUTES, None]
    base_rows = read_inferences(snap, slot, routes=routes, window=baseline)
    cur_rows = read_inferences(snap, slot, versions=[version], routes=routes, window=current)
    if not base_rows:
        raise MonitorInputError(f"no served predictions of slot {slot} in the baseline window")
    if not cur_rows:
        raise MonitorInputError(f"no served predictions of {slot} {version} in the current window")
    names = list(features) if features else sorted({f"score:{k}" for r in base_rows for k in r["scores"]})
    if not names:
        raise MonitorInputError("the baseline predictions carry no scores; name a feature (e.g. latency_ms)")
    inputs = {"baseline": baseline.to_dict(), "features": names, "baseline_predictions": len(base_rows),
              "current_predictions": len(cur_rows)}
    return drift_report(slot, version, policy, {n: _feature_values(base_rows, n) for n in names},
                        {n: _feature_values(cur_rows, n) for n in names}, window=current, inputs=inputs)


def drift_report(slot: str, version: str, policy: Policy, baseline: Mapping[str, Sequence[float]],
                 current: Mapping[str, Sequence[float]], *, window: Window,
                 inputs: Mapping[str, Any] | None = None) -> MonitorReport:
    """PSI and KL of each feature's ``current`` values against its ``baseline`` values (pure):
    the report :func:`compute_drift` makes from the ledger's predictions, for a monitor that
    gets its values elsewhere (a feature store's input features, a bounded nightly sample).
    Significant drift proposes a retrain; never a deploy."""
    results = []
    for name in baseline:
        b, c = baseline[name], current.get(name, ())
        if len(b) == 0 or len(c) == 0:
            raise MonitorInputError(f"feature {name}: no values in the {'baseline' if len(b) == 0 else 'current'} window")
        results.append(population_stability(name, b, c, policy.monitors))
    alerts = tuple(a for a in (r.alert(slot, version, policy.monitors) for r in results) if a is not None)
    return MonitorReport("drift", slot, version, window, tuple(_drift_dict(r) for r in results), alerts,
                         dict(inputs or {}))


def propose_retrain(ledger: Ledger, report: MonitorReport, run: RecordedRun) -> int | None:
    """When a recorded drift run alerts with action ``propose_retrain``, one ``operation`` entry
    (event_type ``retrain_proposal``, status ``proposed``) naming the run, its alerts and the
    features past the act line; None when no alert asks for a retrain. A proposal deploys
    nothing: the retrained challenger still goes through the gate."""
    asking = [(seq, a) for seq, a in zip(run.alert_seqs, report.alerts) if a.action == PROPOSE_RETRAIN]
    if not asking:
        return None
    return ledger.log_operation(
        event_type=RETRAIN_PROPOSAL, component=f"gates.monitor.{report.kind}", status="proposed",
        correlation_id=f"{report.slot}/{report.version}",
        details={"slot": report.slot, "version": report.version, "run_id": run.run_id, "run_seq": run.run_seq,
                 "alert_seqs": [seq for seq, _ in asking],
                 "features": [a.measurements.get("feature") for _, a in asking],
                 "summary": "; ".join(a.summary for _, a in asking),
                 "deploys": None, "next_step": "retrain; the new challenger goes through the promotion gate"},
        durable=True)


__all__ = [
    "BASES", "MONITOR_ALERT", "MONITOR_RUN", "MonitorInputError", "MonitorReport", "ONLINE_EVALUATION", "OnlineReport",
    "PROPOSED", "RETRAIN_PROPOSAL", "RecordedRun", "SERVED", "ServingAction", "ServingReport", "Window",
    "act_on_serving", "compute_drift", "compute_fairness", "compute_online", "compute_serving", "drift_report",
    "load_subjects", "propose_retrain", "record_monitor_report", "record_online",
]
