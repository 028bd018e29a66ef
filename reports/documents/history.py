"""A model slot's validation history, read from the ledger with the same read-only SQL an
examiner can run (`mrm sql`), and laid out as typed records: every gate decision with its
comparisons, tests and checks, the production timeline, the monitoring runs and alerts, and
the override analysis (what the gate had said about each version a person put live).

Each query is kept here as text, run with parameters, and its result kept as an Arrow table,
so the document can show the SQL and attach exactly the rows it was built from.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import pyarrow as pa

from forensics.session import LedgerSQL
from forensics.source import Source
from gates.policy import PolicyError, policy_from_mapping
from gates.registry import StartingProduction, production_at, starting_production

from ..values import format_timestamp
from ..widths import short_digest

__all__ = [
    "AlertEntry",
    "AlertResponse",
    "FollowUp",
    "GateDecision",
    "MonitorRun",
    "OverrideFinding",
    "Query",
    "SlotHistory",
    "read_slot_history",
    "starting_production_text",
]

GATE_OUTCOMES = ("promote", "reject", "pending_approval", "bootstrap")
MAKES_PRODUCTION = ("bootstrap", "promote", "approve", "force_promote", "rollback")
MONITOR_EVENTS = ("monitor_run", "monitor_alert", "online_evaluation")
FOLLOW_UP_EVENTS = ("override_review", "policy_change")
# What was done in answer to monitoring: a drift run's retrain proposal, a challenger's traffic.
MONITOR_ACTIONS = ("retrain_proposal", "traffic_split")

@dataclass(frozen=True)
class Query:
    """One query of the report: its SQL, the parameters it ran with, and its rows."""

    name: str
    sql: str
    params: tuple[Any, ...]
    table: pa.Table

    def shown(self) -> str:
        """The SQL with its parameters written in, to paste into `mrm sql`."""
        text = self.sql
        for p in self.params:
            text = text.replace("?", _literal(p), 1)
        return text


def _literal(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return "'" + value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"
    return "'" + str(value).replace("'", "''") + "'"


def _window(column: str, since: dt.datetime | None, until: dt.datetime | None) -> tuple[str, list[Any]]:
    """``AND`` conditions keeping ``column`` in [since, until); an open side adds nothing."""
    sql, params = "", []
    if since is not None:
        sql += f" AND {column} >= ?"
        params.append(since)
    if until is not None:
        sql += f" AND {column} < ?"
        params.append(until)
    return sql, params


_PROMOTION_COLUMNS = (
    "SELECT seq, ts, actor, key_id, slot, champion_version, challenger_version, decision, trigger, operator, reason,\n"
    "       comparison, significance, thresholds, CAST(details AS VARCHAR) AS details, mac\n"
    "FROM model_promotion\n"
)


def _queries(slot: str, since: dt.datetime | None, until: dt.datetime | None) -> list[tuple[str, str, list[Any]]]:
    """(name, SQL, parameters) of every query the validation history runs."""
    ts, ts_params = _window("ts", since, until)
    p_ts, p_params = _window("p.ts", since, until)
    overlap, overlap_params = "", []
    if until is not None:
        overlap += " AND live_from < ?"
        overlap_params.append(until)
    if since is not None:
        overlap += " AND (live_until IS NULL OR live_until > ?)"
        overlap_params.append(since)
    return [
        ("promotions", _PROMOTION_COLUMNS + f"WHERE slot = ?{ts}\nORDER BY seq", [slot, *ts_params]),
        ("production_periods", f"SELECT * FROM production_periods\nWHERE slot = ?{overlap}\nORDER BY live_from, promotion_seq",
         [slot, *overlap_params]),
        ("registry_history", f"SELECT * FROM registry_history\nWHERE slot = ?{ts}\nORDER BY seq, version", [slot, *ts_params]),
        ("registry_problems",
         "SELECT p.seq, p.ts, p.table_name, p.message FROM registry_problems p\n"
         "LEFT JOIN model_promotion m ON m.seq = p.seq\n"
         "LEFT JOIN operation o ON o.seq = p.seq\n"
         f"WHERE coalesce(m.slot, json_extract_string(o.details, '$.slot')) = ?{p_ts}\n"
         "ORDER BY p.seq", [slot, *p_params]),
        # what followed a person's decision, before or after the period: the committee's review
        # (details.reviews_seq) and policy changes of the slot
        ("follow_ups",
         "SELECT seq, ts, actor, key_id, event_type, component, status, correlation_id,\n"
         "       CAST(details AS VARCHAR) AS details, mac\n"
         "FROM operation\n"
         "WHERE event_type IN ('override_review', 'policy_change')\n"
         "  AND json_extract_string(details, '$.slot') = ?\n"
         "ORDER BY seq", [slot]),
        ("monitoring",
         "SELECT seq, ts, actor, key_id, event_type, component, status, correlation_id,\n"
         "       CAST(details AS VARCHAR) AS details, mac\n"
         "FROM operation\n"
         f"WHERE event_type IN ({', '.join(repr(e) for e in MONITOR_EVENTS + MONITOR_ACTIONS)})\n"
         f"  AND json_extract_string(details, '$.slot') = ?{ts}\n"
         "ORDER BY seq", [slot, *ts_params]),
    ]


# Decisions before the window are not shown, but the override analysis needs what the gate
# had said about a version before a person put it live.
EARLIER_PROMOTIONS_SQL = _PROMOTION_COLUMNS + "WHERE slot = ? AND ts < ?\nORDER BY seq"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class GateDecision:
    """One model_promotion entry of the slot."""

    seq: int
    ts: dt.datetime
    actor: str
    key_id: str
    champion_version: str | None
    challenger_version: str
    decision: str
    trigger: str
    operator: str | None
    reason: str
    comparison: tuple[Mapping[str, Any], ...]
    significance: tuple[Mapping[str, Any], ...]
    thresholds: Mapping[str, float]
    details: Mapping[str, Any]

    @property
    def stage(self) -> str | None:
        stage = self.details.get("stage")
        return stage if isinstance(stage, str) else None

    @property
    def checks(self) -> tuple[Mapping[str, Any], ...]:
        return _dicts(self.details.get("checks"))

    @property
    def tests(self) -> tuple[Mapping[str, Any], ...]:
        return _dicts(self.details.get("tests"))

    @property
    def replay(self) -> Mapping[str, Any]:
        replay = self.details.get("replay")
        return replay if isinstance(replay, Mapping) else {}

    @property
    def primary(self) -> Mapping[str, Any] | None:
        """The primary-metric comparison row (the gate writes it first, as mean_<metric>)."""
        for row in self.comparison:
            if str(row.get("metric", "")).startswith("mean_"):
                return row
        return self.comparison[0] if self.comparison else None

    @property
    def min_p_adjusted(self) -> float | None:
        values = [s.get("p_adjusted") for s in self.significance if isinstance(s.get("p_adjusted"), (int, float))]
        return min(values) if values else None

    @property
    def is_gate_verdict(self) -> bool:
        """A verdict of the promotion ladder (not a person's sign-off, override or rollback)."""
        return self.decision in GATE_OUTCOMES

    @property
    def manual(self) -> bool:
        return self.trigger == "manual"

    @property
    def has_detail(self) -> bool:
        return bool(self.comparison or self.significance or self.checks or self.tests)

    @property
    def routine(self) -> bool:
        """An automatic reject in competition: the challenger lost fairly, nothing failed
        that protects customers, and nothing changed in production. Such decisions are one
        row each in the report; every other decision is an exception, shown in full."""
        return self.decision == "reject" and self.stage == "competition" and not self.manual

    @property
    def policy_digest(self) -> str | None:
        digest = self.replay.get("policy_digest")
        return digest if isinstance(digest, str) else None

    @property
    def alert(self) -> Mapping[str, Any] | None:
        """The monitor alert an automatic rollback carries (the one that fired it)."""
        alert = self.replay.get("alert")
        return alert if isinstance(alert, Mapping) else None

    @property
    def responds_to_seq(self) -> int | None:
        """The monitor_alert entry this decision answers: its typed link, or the alert it carries."""
        for seq in (self.details.get("responds_to_seq"), (self.alert or {}).get("seq")):
            if isinstance(seq, int) and not isinstance(seq, bool):
                return seq
        return None

    @property
    def decided_by(self) -> str:
        """Who decided: the person; for an automatic rollback the monitor that fired it; for
        any other automatic decision the gate and its policy."""
        if self.operator:
            return self.operator
        monitor = (self.alert or {}).get("monitor")
        if not self.manual and isinstance(monitor, str) and monitor:
            return f"monitor {monitor} (automatic)"
        digest = self.policy_digest
        return f"gate (policy {short_digest(digest)})" if digest else "gate (policy not recorded)"


@dataclass(frozen=True)
class MonitorRun:
    """One monitor_run (or online_evaluation) entry of the slot."""

    seq: int
    ts: dt.datetime
    event_type: str
    component: str
    status: str
    correlation_id: str | None
    details: Mapping[str, Any]

    @property
    def kind(self) -> str:
        if self.event_type == "online_evaluation":
            return "online"
        kind = self.details.get("kind")
        return kind if isinstance(kind, str) else self.component.rsplit(".", 1)[-1]

    @property
    def version(self) -> str | None:
        v = self.details.get("version") or self.details.get("challenger_version")
        return v if isinstance(v, str) else None

    @property
    def results(self) -> tuple[Mapping[str, Any], ...]:
        return _dicts(self.details.get("results"))

    def result(self, metric: str) -> Mapping[str, Any] | None:
        return next((r for r in self.results if r.get("metric") == metric), None)

    @property
    def alert_seqs(self) -> tuple[int, ...]:
        """The alerts a retrain proposal answers."""
        seqs = self.details.get("alert_seqs")
        return tuple(s for s in seqs if isinstance(s, int) and not isinstance(s, bool)) if isinstance(seqs, list) else ()

    @property
    def window(self) -> Mapping[str, Any]:
        w = self.details.get("window")
        return w if isinstance(w, Mapping) else {}


@dataclass(frozen=True)
class AlertEntry:
    seq: int
    ts: dt.datetime
    monitor: str
    status: str
    action: str | None
    summary: str | None
    version: str | None
    correlation_id: str | None


@dataclass(frozen=True)
class AlertResponse:
    """An entry that answered a monitor alert: a decision that links or carries it, or a
    retrain proposal that names it (``details.alert_seqs``)."""

    seq: int
    ts: dt.datetime
    entry: str  # the decision (rollback, force_promote, ...) or "retrain_proposal"
    what: str  # in words, with who decided

    @classmethod
    def of_decision(cls, d: GateDecision) -> "AlertResponse":
        return cls(d.seq, d.ts, d.decision, f"{d.decision} of {d.challenger_version} by {d.decided_by}")

    @classmethod
    def of_proposal(cls, p: MonitorRun) -> "AlertResponse":
        monitor = p.component.removeprefix("gates.monitor.")
        return cls(p.seq, p.ts, p.event_type, f"retrain proposal by monitor {monitor} (automatic; deploys nothing: "
                                               "the retrained challenger goes through the gate)")


@dataclass(frozen=True)
class FollowUp:
    """An override_review or policy_change entry of the slot."""

    seq: int
    ts: dt.datetime
    event_type: str
    status: str
    details: Mapping[str, Any]

    @property
    def reviews_seq(self) -> int | None:
        seq = self.details.get("reviews_seq")
        return seq if isinstance(seq, int) and not isinstance(seq, bool) else None

    def describe(self) -> str:
        d = self.details
        if self.event_type == "override_review":
            return f"seq {self.seq}: {d.get('outcome', self.status)} by {d.get('reviewer')} ({_iso(self.ts)}): {d.get('note')}"
        changes = ", ".join(f"{c.get('key')} {_json_text(c.get('from'))} \u2192 {_json_text(c.get('to'))}"
                            for c in _dicts(d.get("changes")))
        return f"seq {self.seq}: policy change ({_iso(self.ts)}){': ' + changes if changes else ''}"


@dataclass(frozen=True)
class OverrideFinding:
    """A decision a person made, what the gate had said about the same version then, the
    committee's review of it, and what followed."""

    decision: GateDecision
    gate_said: str
    gate_seq: int | None
    against_the_gate: bool  # a person put live a version the gate had rejected, or never evaluated
    gate_age_days: int | None = None  # days from the gate's verdict to the decision
    stale: bool = False  # the verdict no longer spoke for the version: too old, or production changed since
    reviews: tuple[FollowUp, ...] = ()
    followed_by: tuple[str, ...] = ()  # the next decision in the slot, and policy changes before it

    @property
    def finding(self) -> str:
        if self.against_the_gate:
            return "AGAINST GATE"
        return "STALE VERDICT" if self.stale else "CONSISTENT"

    @property
    def questioned(self) -> bool:
        return self.against_the_gate or self.stale

    @property
    def skipped_checks(self) -> tuple[str, ...]:
        checks = self.decision.details.get("skipped_checks")
        return tuple(str(c) for c in checks) if isinstance(checks, list) else ()


@dataclass(frozen=True)
class SlotHistory:
    slot: str
    since: dt.datetime | None  # as asked (None: from the beginning)
    until: dt.datetime | None  # as asked (None: up to the checkpoint)
    decisions: tuple[GateDecision, ...]  # in the window
    earlier_decisions: tuple[GateDecision, ...]  # before the window (context for the override analysis)
    periods: tuple[Mapping[str, Any], ...]  # production periods overlapping the window
    transitions: tuple[Mapping[str, Any], ...]  # registry_history rows in the window
    problems: tuple[Mapping[str, Any], ...]  # registry_problems rows in the window
    runs: tuple[MonitorRun, ...]
    alerts: tuple[AlertEntry, ...]
    queries: tuple[Query, ...] = field(repr=False)
    follow_ups: tuple[FollowUp, ...] = ()  # reviews and policy changes of the slot, whenever they happened
    actions: tuple[MonitorRun, ...] = ()  # retrain_proposal and traffic_split entries (MONITOR_ACTIONS)

    def query(self, name: str) -> Query:
        return next(q for q in self.queries if q.name == name)

    @property
    def all_decisions(self) -> tuple[GateDecision, ...]:
        return self.earlier_decisions + self.decisions

    @property
    def overrides(self) -> tuple[GateDecision, ...]:
        return tuple(d for d in self.decisions if d.manual)

    @property
    def rollbacks(self) -> tuple[GateDecision, ...]:
        return tuple(d for d in self.decisions if d.decision == "rollback")

    def runs_of(self, kind: str) -> tuple[MonitorRun, ...]:
        return tuple(r for r in self.runs if r.kind == kind)

    def first_ts(self) -> dt.datetime | None:
        stamps = [d.ts for d in self.decisions] + [r.ts for r in self.runs] + [a.ts for a in self.alerts]
        return min(stamps) if stamps else None

    def last_ts(self) -> dt.datetime | None:
        stamps = [d.ts for d in self.decisions] + [r.ts for r in self.runs] + [a.ts for a in self.alerts]
        return max(stamps) if stamps else None

    def shown_seqs(self) -> list[int]:
        """Every entry the document shows: the slot's decisions, monitoring entries and
        responses in the window, and the reviews and policy changes the override analysis cites."""
        cited = {u.seq for f in self.override_findings() for u in f.reviews}
        cited |= {u.seq for u in self.follow_ups if u.event_type == "policy_change"
                  and any(u.describe() in f.followed_by for f in self.override_findings())}
        return sorted({d.seq for d in self.decisions} | {r.seq for r in self.runs} | {a.seq for a in self.alerts}
                      | {a.seq for a in self.actions} | cited)

    @property
    def exceptions(self) -> tuple[GateDecision, ...]:
        """Decisions an examiner reads in full: promotions, bootstraps, sign-offs, overrides,
        rollbacks, and rejects at the fidelity floor or the functional checks."""
        return tuple(d for d in self.decisions if not d.routine)

    @property
    def routine_rejects(self) -> tuple[GateDecision, ...]:
        return tuple(d for d in self.decisions if d.routine)

    def decision_at(self, seq: int | None) -> GateDecision | None:
        return next((d for d in self.all_decisions if d.seq == seq), None) if seq is not None else None

    def response_to(self, alert: AlertEntry) -> AlertResponse | None:
        """The first later entry of the slot that answered an alert: a decision that links it
        (``details.responds_to_seq``) or carries it (an automatic rollback), a retrain proposal
        that names it (``details.alert_seqs``); for decisions written before the link existed,
        one whose reason names its sequence number."""
        answers = [AlertResponse.of_decision(d) for d in self.decisions if d.seq > alert.seq and (
            d.responds_to_seq == alert.seq or (d.responds_to_seq is None and re.search(rf"\bseq {alert.seq}\b", d.reason)))]
        answers += [AlertResponse.of_proposal(p) for p in self.actions
                    if p.seq > alert.seq and p.event_type == "retrain_proposal" and alert.seq in p.alert_seqs]
        return min(answers, key=lambda r: r.seq) if answers else None

    def responses(self) -> tuple[tuple[AlertResponse, tuple[int, ...]], ...]:
        """Every entry that answered monitoring, with the alerts it answers, in sequence order:
        retrain proposals, and decisions linked to an alert (automatic rollbacks, a
        force-promote in answer to a breach)."""
        out = [(AlertResponse.of_decision(d), (d.responds_to_seq,)) for d in self.decisions if d.responds_to_seq is not None]
        out += [(AlertResponse.of_proposal(p), p.alert_seqs) for p in self.actions if p.event_type == "retrain_proposal"]
        return tuple(sorted(out, key=lambda r: r[0].seq))

    def override_findings(self) -> tuple[OverrideFinding, ...]:
        return tuple(_override_finding(d, self) for d in self.overrides)

    def production_at(self, instant: dt.datetime) -> str | None:
        period = production_at(self.periods, self.slot, instant)
        return period["version"] if period else None

    def starting_production(self, start: dt.datetime, end: dt.datetime) -> StartingProduction:
        return starting_production(self.periods, self.slot, start, end)

    def recorded_policy(self) -> Mapping[str, Any] | None:
        """The policy the gate recorded with its most recent verdict in the slot, if any."""
        for d in reversed(self.all_decisions):
            policy = d.replay.get("policy")
            if isinstance(policy, Mapping):
                return policy
        return None


def starting_production_text(start: StartingProduction) -> str:
    """"Production at the start" in the words every document uses: the version with the entry
    that made it live, or "none" with the slot's first production version of the period."""
    def made_live(p: Mapping[str, Any]) -> str:
        return f"{p['promotion_decision']} at seq {p['promotion_seq']}"

    if start.at_start is not None:
        p = start.at_start
        return f"{p['version']} (production since {format_timestamp(p['live_from'])}, {made_live(p)})"
    if start.first_in_period is not None:
        p = start.first_in_period
        return f"none; then {p['version']} from {format_timestamp(p['live_from'])} ({made_live(p)})"
    return "none"


# --------------------------------------------------------------------------- reading


def read_slot_history(source: Source, slot: str, since: dt.datetime | None, until: dt.datetime | None) -> SlotHistory:
    """Run the report's queries over ``source`` (already bounded to the checkpoint)."""
    with LedgerSQL(source) as sql:
        def run(name: str, text: str, params: Sequence[Any]) -> Query:
            return Query(name, text, tuple(params), sql.query(text, list(params)))

        queries = tuple(run(name, text, params) for name, text, params in _queries(slot, since, until))
        earlier_rows = sql.query(EARLIER_PROMOTIONS_SQL, [slot, since]).to_pylist() if since is not None else []
    by_name = {q.name: q for q in queries}
    runs, alerts, actions = [], [], []
    for row in by_name["monitoring"].table.to_pylist():
        details = _json(row["details"])
        if row["event_type"] in MONITOR_ACTIONS:
            actions.append(MonitorRun(row["seq"], row["ts"], row["event_type"], row["component"], row["status"],
                                      row["correlation_id"], details))
        elif row["event_type"] == "monitor_alert":
            alerts.append(AlertEntry(row["seq"], row["ts"], row["component"].removeprefix("gates."), row["status"],
                                     _str(details.get("action")), _str(details.get("summary")), _str(details.get("version")),
                                     row["correlation_id"]))
        else:
            runs.append(MonitorRun(row["seq"], row["ts"], row["event_type"], row["component"], row["status"],
                                   row["correlation_id"], details))
    return SlotHistory(
        slot, since, until,
        tuple(_gate_decision(r) for r in by_name["promotions"].table.to_pylist()),
        tuple(_gate_decision(r) for r in earlier_rows),
        tuple(by_name["production_periods"].table.to_pylist()),
        tuple(by_name["registry_history"].table.to_pylist()),
        tuple(by_name["registry_problems"].table.to_pylist()),
        tuple(runs), tuple(alerts), queries,
        tuple(FollowUp(r["seq"], r["ts"], r["event_type"], r["status"], _json(r["details"]))
              for r in by_name["follow_ups"].table.to_pylist()),
        tuple(actions),
    )


def _gate_decision(row: Mapping[str, Any]) -> GateDecision:
    thresholds = row["thresholds"]
    if isinstance(thresholds, list):  # an Arrow map arrives as (key, value) pairs
        thresholds = dict(thresholds)
    return GateDecision(
        seq=row["seq"], ts=row["ts"], actor=row["actor"], key_id=row["key_id"],
        champion_version=row["champion_version"], challenger_version=row["challenger_version"],
        decision=row["decision"], trigger=row["trigger"], operator=row["operator"], reason=row["reason"],
        comparison=tuple(row["comparison"] or ()), significance=tuple(row["significance"] or ()),
        thresholds=dict(thresholds or {}), details=_json(row["details"]),
    )


def _override_finding(d: GateDecision, history: SlotHistory) -> OverrideFinding:
    """What the gate had said about the version a person decided on (the latest gate verdict
    on it before the decision, and how old it was), or why no gate verdict applies; with the
    committee's review of the decision and what followed it."""
    found = _gate_said(d, history)
    reviews = tuple(u for u in history.follow_ups if u.event_type == "override_review" and u.reviews_seq == d.seq)
    return replace(found, reviews=reviews, followed_by=_followed_by(d, history))


def _gate_said(d: GateDecision, history: SlotHistory) -> OverrideFinding:
    before = [p for p in history.all_decisions if p.seq < d.seq and p.challenger_version == d.challenger_version]
    verdicts = [p for p in before if p.is_gate_verdict]
    last = verdicts[-1] if verdicts else None
    if d.decision == "rollback":
        alerts = [a for a in history.alerts if a.seq < d.seq]
        context = f"; the latest alert before it: {alerts[-1].monitor} {alerts[-1].status} at seq {alerts[-1].seq}" if alerts else ""
        return OverrideFinding(d, "no gate verdict applies: a rollback returns the slot to a former production version"
                               + context, None, False)
    if d.decision in ("approve", "decline"):
        if last is not None and last.decision == "pending_approval":
            verb = "approved" if d.decision == "approve" else "declined"
            return OverrideFinding(d, f"the gate passed every check at seq {last.seq} and left it for a human sign-off; "
                                   f"a person {verb} it {_days(d.ts - last.ts)} later", last.seq, False,
                                   (d.ts - last.ts).days)
        return OverrideFinding(d, "no pending gate verdict is recorded for this version before the sign-off", None, True)
    if last is None:
        was_live = [p for p in history.periods if p["version"] == d.challenger_version and p["live_from"] < d.ts]
        note = (f" (it had been production before, from {_iso(was_live[0]['live_from'])})" if was_live else "")
        if d.decision == "force_promote":
            return OverrideFinding(d, "not known: the gate never evaluated this version in this ledger, and a force-promote "
                                   "skips every check" + note, None, True)
        return OverrideFinding(d, f"a {d.decision} run by a person; no earlier gate verdict on this version" + note, None, False)
    age = d.ts - last.ts
    stage = f", {last.stage} stage" if last.stage else ""
    said = f"the gate decided {last.decision} at seq {last.seq}{stage}, {_days(age)} before: {last.reason}"
    # A verdict speaks for the comparison it made: not once the policy's window has passed, nor
    # once another version has held production since (the champion it beat is gone).
    stale = []
    valid_days = _approval_valid_days(last)
    if valid_days is not None and age > dt.timedelta(days=valid_days):
        stale.append(f"older than the policy's approval_valid_days ({valid_days})")
    since = [p for p in history.all_decisions if last.seq < p.seq < d.seq and p.decision in MAKES_PRODUCTION
             and p.challenger_version != d.challenger_version]
    if since:
        stale.append(f"production changed since (seq {since[0].seq}: {since[0].decision} of {since[0].challenger_version}"
                     + (f", and {len(since) - 1} more" if len(since) > 1 else "") + ")")
    if stale:
        said += "; no longer current: " + "; ".join(stale)
    against = d.decision == "force_promote" and last.decision == "reject"
    return OverrideFinding(d, said, last.seq, against, age.days, bool(stale))


def _approval_valid_days(verdict: GateDecision) -> int | None:
    policy = verdict.replay.get("policy")
    if not isinstance(policy, Mapping):
        return None
    try:
        return policy_from_mapping(policy, f"seq {verdict.seq} recorded policy").approval_valid_days
    except PolicyError:
        return None


def _followed_by(d: GateDecision, history: SlotHistory) -> tuple[str, ...]:
    """The policy changes of the slot after ``d`` and before the next decision a person made
    (a committee acts on a review days later, the gate may run in between), then the next
    decision in the slot."""
    later = [p for p in history.all_decisions if p.seq > d.seq]
    nxt = later[0] if later else None
    next_manual = next((p for p in later if p.manual), None)
    changes = [u for u in history.follow_ups if u.event_type == "policy_change" and u.seq > d.seq
               and (next_manual is None or u.seq < next_manual.seq)]
    out = [u.describe() for u in changes]
    if nxt is not None:
        out.append(f"seq {nxt.seq}: {nxt.decision} of {nxt.challenger_version} ({_iso(nxt.ts)}, {_days(nxt.ts - d.ts)} later)")
    elif history.until is not None:
        out.append("no later decision in the period")
    else:
        out.append("no later decision in the slot")
    return tuple(out)


def _days(delta: dt.timedelta) -> str:
    days = delta.days
    return f"{days} day" if days == 1 else f"{days} days"


def _dicts(value: Any) -> tuple[Mapping[str, Any], ...]:
    return tuple(v for v in value if isinstance(v, Mapping)) if isinstance(value, list) else ()


def _json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _json_text(value: Any) -> str:
    """A recorded value as JSON writes it (true, not Python's True)."""
    return value if isinstance(value, str) else json.dumps(value)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
