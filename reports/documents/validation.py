"""The model validation history of one slot, for SR 11-7 (and SR 26-2) examinations.

What an examiner asks for, each from the ledger: every gate decision with its metrics, tests
and p-values; every decision a person made, with its rationale and what the gate had said
(override analysis); rollbacks; monitoring over time (fairness with its band, drift with its
thresholds) and its alerts; and the production timeline. Charts where a person would rather
look than read. Every entry shown is proven against the signed checkpoint, and the query
results are attached as Parquet with the SQL that produced them.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

from forensics.errors import ForensicsError
from forensics.reconstruct import parse_instant
from gates.monitors import BREACH_RULES, INSUFFICIENT, OUTSIDE_NOT_ALERTED, FairnessResult
from ledger.note import Signer

from ..model import (
    Block,
    CodeBlock,
    Column,
    KeyValue,
    KeyValues,
    Paragraph,
    Period,
    Report,
    ReportKind,
    Section,
    Status,
    StatusBadge,
    Table,
    ValueKind,
)
from .badges import drift_status, fairness_finding, passed, promotion_status
from .fairness import DI, EOD, SPD, FairnessRun, fairness_runs
from .basis import EvidenceBasis, ProofCheck, TrustPlan, establish_basis, prove_shown_entries
from .history import AlertEntry, AlertResponse, GateDecision, SlotHistory, read_slot_history, starting_production_text
from .slot_charts import (
    decisions_over_time_chart,
    di_band,
    drift_chart,
    fairness_chart,
    primary_metric_chart,
)
from .parts import (
    DocumentInfo,
    ShownEntry,
    document_meta,
    evidence_attachments,
    failed_verification_section,
    how_to_verify_section,
    integrity_section,
    method_section,
    parquet_attachment,
    report_id_for,
)
from .written import WrittenReport, write_report
from ..values import format_timestamp, format_value
from ..widths import short_digest

__all__ = ["ValidationScope", "build_validation_report", "write_validation_report"]

UTC = dt.timezone.utc
ATTACHMENTS = {
    "promotions": ("promotions.parquet", "Query result: the slot's model_promotion entries in the period, details included"),
    "production_periods": ("production-periods.parquet", "Query result: the periods each version was production (derived registry)"),
    "registry_history": ("registry-history.parquet", "Query result: every registry state transition in the period"),
    "registry_problems": ("registry-problems.parquet", "Query result: entries the registry refused (stale or out of order)"),
    "monitoring": ("monitoring.parquet", "Query result: monitor_run, monitor_alert, online_evaluation, retrain_proposal "
                   "and traffic_split entries of the slot"),
    "follow_ups": ("follow-ups.parquet", "Query result: the slot's override_review and policy_change entries"),
}


@dataclass(frozen=True)
class ValidationScope:
    """The slot, and optionally the period [since, until) to report on (default: all of it)."""

    slot: str
    since: str | dt.datetime | None = None
    until: str | dt.datetime | None = None

    def bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        since = parse_instant(self.since, "--from") if self.since is not None else None
        until = parse_instant(self.until, "--to") if self.until is not None else None
        if since is not None and until is not None and until <= since:
            raise ForensicsError(f"--to {until.isoformat()} is not after --from {since.isoformat()}")
        return since, until


def build_validation_report(ledger_path: str | os.PathLike[str], scope: ValidationScope, plan: TrustPlan,
                            info: DocumentInfo = DocumentInfo()) -> Report:
    """The validation history as a :class:`~reports.model.Report`."""
    since, until = scope.bounds()
    basis = establish_basis(ledger_path, plan, checked_at=info.assembled_at())
    history = read_slot_history(basis.source, scope.slot, since, until)
    shown = _shown_entries(history)
    proofs = prove_shown_entries(basis, [e.seq for e in shown])
    return _document(basis, history, shown, proofs, info)


def write_validation_report(ledger_path: str | os.PathLike[str], scope: ValidationScope, plan: TrustPlan, signer: Signer | None,
                            out_path: str | os.PathLike[str] | None = None, *, info: DocumentInfo = DocumentInfo(),
                            created: dt.datetime | None = None) -> WrittenReport:
    report = build_validation_report(ledger_path, scope, plan, info)
    return write_report(report, signer, out_path, created=created, checkpoint_keys=plan.public_keys)


# --------------------------------------------------------------------------- assembly


def _shown_entries(h: SlotHistory) -> list[ShownEntry]:
    """Every entry the document shows. Exceptions (decisions other than routine rejects, runs
    that alerted, alerts, what answered them, reviews and policy changes cited) are listed one
    by one under Integrity; routine rejects and quiet runs, one row per kind."""
    alerted = {a.correlation_id for a in h.alerts if a.correlation_id}
    shown = [ShownEntry(d.seq, f"{d.decision} of {d.challenger_version}",
                        "Routine rejects (gate, in competition)" if d.routine else None) for d in h.decisions]
    for r in h.runs:
        what = f"{r.kind} monitor run" if r.event_type == "monitor_run" else r.event_type
        quiet = r.event_type == "monitor_run" and r.correlation_id not in alerted
        shown.append(ShownEntry(r.seq, what, f"{r.kind.capitalize()} monitor runs without an alert" if quiet else None))
    shown += [ShownEntry(a.seq, f"alert {a.monitor}: {a.status}") for a in h.alerts]
    for a in h.actions:
        if a.event_type == "retrain_proposal":
            shown.append(ShownEntry(a.seq, "retrain proposal"))
        else:
            shown.append(ShownEntry(a.seq, f"{a.event_type} of {_str_or_dash(a.details.get('challenger_version'))}",
                                    "Challengers' traffic splits (shadow, canary)"))
    listed, cited = {e.seq for e in shown}, set(h.shown_seqs())
    for u in h.follow_ups:
        if u.seq in cited and u.seq not in listed:
            shown.append(ShownEntry(u.seq, u.event_type.replace("_", " ")))
    return sorted(shown, key=lambda e: e.seq)


def _period(h: SlotHistory, basis: EvidenceBasis) -> Period:
    signed = basis.checkpoint.signed_at
    last = h.last_ts()
    start = h.since or h.first_ts() or signed
    end = h.until or max(signed, last + dt.timedelta(microseconds=1) if last else signed)
    return Period(min(start, end), end)


def _document(basis: EvidenceBasis, h: SlotHistory, shown: list[ShownEntry], proofs: ProofCheck, info: DocumentInfo) -> Report:
    period = _period(h, basis)
    sections = [s for s in (failed_verification_section(basis, proofs),) if s is not None]
    sections += [
        _summary_section(h, period),
        _exceptions_section(h),
        _override_section(h),
        _rollback_section(h),
        _gate_section(h, period),
        _timeline_section(h, period),
        _monitoring_section(h),
        integrity_section(basis, proofs, shown, intro=(
            "Every entry behind this history (each promotion decision and each monitoring entry in the period) is listed "
            "below with the result of its inclusion proof, checkable with the public key alone.")),
        method_section(basis, _method_blocks(h), (_queries_section(h),)),
        how_to_verify_section(basis, proofs),
    ]
    id_parts: list[str | int] = [h.slot]
    if h.since or h.until:
        id_parts.append(f"{_day(h.since) if h.since else 'start'}-{_day(h.until) if h.until else 'end'}")
    meta = document_meta(
        ReportKind.VALIDATION, basis, proofs, info,
        report_id=report_id_for("VAL", basis, *id_parts),
        title=f"Model validation history: {h.slot}",
        subtitle="Gate decisions, overrides, rollbacks, monitoring and the production timeline (SR 11-7), from the audit ledger",
        system=f"{h.slot} (model slot)",
        period=period,
    )
    attachments = (
        *evidence_attachments(basis, proofs, proofs_description=(
            f"Inclusion proofs of the {len(shown)} entries behind this history (mrm-ledger-proof/1)")),
        *(parquet_attachment(name, h.query(q).table, description) for q, (name, description) in ATTACHMENTS.items()),
    )
    return Report(meta, tuple(sections), attachments)


# --------------------------------------------------------------------------- summary


def _summary_section(h: SlotHistory, period: Period) -> Section:
    counts = Counter(d.decision for d in h.decisions)
    findings = h.override_findings()
    against = [f for f in findings if f.questioned]
    start = h.starting_production(period.start, period.end)
    start_text = starting_production_text(start)
    end_version = h.production_at(period.end - dt.timedelta(microseconds=1)) if period.end > period.start else start.version
    until = _when(period.end) if h.until else f"the checkpoint ({_when(period.end)})"
    text = (f"From {_when(period.start)} to {until} the ledger records {len(h.decisions)} promotion "
            f"decision(s) for slot {h.slot}: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none") + ". "
            f"Production at the start of the period: {start_text}; at its end: {end_version or 'none'}. "
            f"{len(h.overrides)} decision(s) were made by a person, {len(h.rollbacks)} were rollbacks, and monitoring recorded "
            f"{len(h.runs)} run(s) and {len(h.alerts)} alert(s).")
    blocks: list[Block] = [Paragraph(text)]
    if against:
        blocks.append(StatusBadge(Status.WARN, "OVERRIDE", f"{len(against)} decision(s) by a person against, or "
                                  "without, a current gate verdict (see Overrides)"))
    elif h.overrides:
        blocks.append(StatusBadge(Status.INFO, "HUMAN DECISIONS", f"{len(h.overrides)} sign-off(s) or rollback(s) by a person, "
                                  "none against, or without, a current gate verdict"))
    blocks.append(_fairness_badge(h))
    blocks.append(_drift_badge(h))
    if h.problems:
        blocks.append(StatusBadge(Status.WARN, "REGISTRY PROBLEMS", f"{len(h.problems)} entr(y/ies) the registry refused"))
    blocks.append(KeyValues((
        KeyValue("Model slot", h.slot, ValueKind.IDENTIFIER),
        KeyValue("Production at the start", start_text),
        KeyValue("Production at the end", end_version or "none", ValueKind.IDENTIFIER),
        KeyValue("Promotion decisions", len(h.decisions)),
        KeyValue("Gate verdicts (promote, reject, pending, bootstrap)", sum(1 for d in h.decisions if d.is_gate_verdict)),
        KeyValue("Decisions by a person", len(h.overrides)),
        KeyValue("Rollbacks", len(h.rollbacks)),
        KeyValue("Monitoring runs", len(h.runs)),
        KeyValue("Monitoring alerts", len(h.alerts)),
    ), caption="At a glance"))
    return Section("Summary", tuple(blocks))


def _fairness_badge(h: SlotHistory) -> StatusBadge:
    runs = fairness_runs(h)
    if not runs:
        return StatusBadge(Status.NOT_RUN, "NO FAIRNESS RUNS", "no fairness monitoring is recorded for this slot in the period")
    alerted = [f for f in runs if f.alerted]
    if alerted:
        return StatusBadge(Status.FAIL, "FAIRNESS ALERT", f"{sum(f.alerts for f in alerted)} breach alert(s) recorded by the "
                           f"fairness monitor in {len(alerted)} of {len(runs)} run(s)")
    outside = sum(1 for f in runs if f.finding == OUTSIDE_NOT_ALERTED)
    quiet = f"; in {outside} run(s) a point estimate was outside its band with an interval its breach rule does not alert on" \
        if outside else ""
    return StatusBadge(Status.PASS, "NO FAIRNESS ALERT", f"none of {len(runs)} fairness run(s) recorded a breach alert{quiet}")


def _drift_badge(h: SlotHistory) -> StatusBadge:
    runs = h.runs_of("drift")
    if not runs:
        return StatusBadge(Status.NOT_RUN, "NO DRIFT RUNS", "no drift monitoring is recorded for this slot in the period")
    significant = [r for r in runs if any(x.get("status") == "significant_drift" for x in r.results)]
    moderate = [r for r in runs if any(x.get("status") == "moderate_drift" for x in r.results)]
    if significant:
        return StatusBadge(Status.FAIL, "SIGNIFICANT DRIFT", f"{len(significant)} of {len(runs)} drift run(s) at or above the act threshold")
    if moderate:
        return StatusBadge(Status.WARN, "MODERATE DRIFT", f"{len(moderate)} of {len(runs)} drift run(s) at or above the investigate threshold")
    return StatusBadge(Status.PASS, "STABLE", f"all {len(runs)} drift run(s) below the investigate threshold")


# --------------------------------------------------------------------------- production timeline


def _timeline_section(h: SlotHistory, period: Period) -> Section:
    blocks: list[Block] = [Paragraph(
        "The registry is not stored anywhere: it is derived, every time, from the ledger's model_promotion and registry "
        "operation entries in sequence order. Each period below runs from the entry that put a version into production to "
        "the entry that took it out.")]
    rows = tuple((p["version"], p["live_from"], format_timestamp(p["live_until"]) if p["live_until"] else "still production",
                  f"{p['promotion_decision']} (seq {p['promotion_seq']})", _decider(h, p["promotion_seq"], p["promotion_operator"]),
                  f"{p['ended_by_decision']} (seq {p['ended_by_seq']})" if p["ended_by_seq"] is not None else "still production")
                 for p in h.periods)
    blocks.append(Table(
        (Column("Version", ValueKind.IDENTIFIER, weight=1.4), Column("Live from", ValueKind.TIMESTAMP, weight=1.3),
         Column("Live until", ValueKind.TEXT, weight=1.3), Column("Made live by", ValueKind.TEXT, weight=1.6),
         Column("Decided by", ValueKind.TEXT, weight=1.9), Column("Ended by", ValueKind.TEXT, weight=1.6)),
        rows, caption="Production periods overlapping the report period", source_attachment=ATTACHMENTS["production_periods"][0],
        total_rows=len(rows), empty_text="No version was production in this slot during the period."))
    # A routine reject's two transitions (registered as a candidate, then rejected) are
    # already its row under Gate decisions; the table keeps every other transition.
    routine = {d.seq for d in h.routine_rejects}
    others = {d.challenger_version for d in h.all_decisions if not d.routine}
    routine_versions = {d.challenger_version for d in h.routine_rejects} - others
    shown = [t for t in h.transitions if not _routine_transition(t, routine, routine_versions)]
    t_rows = tuple((t["seq"], t["ts"], t["version"], f"{t['from_state'] or '(new)'} \u2192 {t['to_state']}", t["cause"],
                    _decider(h, t["seq"], t["operator"])) for t in shown)
    left_out = len(h.transitions) - len(shown)
    note = (f"; the {left_out:,} registrations and rejections of routinely rejected challengers are left out here "
            "(each reject is a row under Gate decisions)") if left_out else ""
    blocks.append(Table(
        (Column("Seq", ValueKind.IDENTIFIER, weight=0.7), Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.3),
         Column("Version", ValueKind.IDENTIFIER, weight=1.3), Column("Transition", ValueKind.TEXT, weight=2.2),
         Column("Cause", ValueKind.IDENTIFIER, weight=1.3), Column("Decided by", ValueKind.TEXT, weight=1.9)),
        t_rows, caption=f"Registry state transitions in the period{note}", source_attachment=ATTACHMENTS["registry_history"][0],
        total_rows=len(h.transitions), empty_text="No registry transition in the period."))
    if h.problems:
        blocks.append(StatusBadge(Status.WARN, "REFUSED ENTRIES", "the registry refused these entries; they changed nothing"))
        blocks.append(Table(
            (Column("Seq", ValueKind.IDENTIFIER, weight=0.7), Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.5),
             Column("Table", ValueKind.IDENTIFIER, weight=1.3), Column("Why it was refused", ValueKind.TEXT, weight=4.5)),
            tuple((p["seq"], p["ts"], p["table_name"], p["message"]) for p in h.problems),
            caption="Entries the registry refused", source_attachment=ATTACHMENTS["registry_problems"][0], total_rows=len(h.problems)))
    return Section("Production timeline", tuple(blocks))


# --------------------------------------------------------------------------- exceptions


def _exceptions_section(h: SlotHistory) -> Section:
    """What an examiner reads first: every decision that is not a routine reject, and every
    alert with the decision that answered it; each decision's full record follows."""
    blocks: list[Block] = [Paragraph(
        "Exceptions first: every decision that changed production or could have (bootstrap, promotion, pending "
        "sign-off, approval or decline, force-promote, rollback), every reject at the fidelity floor or the functional "
        "checks, and every monitor alert with the decision that answered it. Routine rejects (an automatic reject in "
        "competition: the challenger did not beat the champion) are one row each under Gate decisions. Each decision's "
        f"full record (every check, comparison and test as the gate wrote it) is in {ATTACHMENTS['promotions'][0]}.")]
    rows: list[tuple[Any, ...]] = []
    for d in h.exceptions:
        rows.append((d.seq, d.ts, promotion_status(d.decision), d.challenger_version, d.decided_by, d.reason))
    for a in h.alerts:
        rows.append((a.seq, a.ts, _alert_status(a), a.version or "not recorded", f"{a.monitor.split('.')[0]} monitor",
                     _alert_text(a, h.response_to(a))))
    rows.sort(key=lambda r: r[0])
    blocks.append(Table(
        (Column("Seq", ValueKind.IDENTIFIER, weight=0.7), Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.2),
         Column("Event", ValueKind.STATUS, weight=1.4), Column("Version", ValueKind.IDENTIFIER, weight=1.2),
         Column("Decided by", ValueKind.TEXT, weight=1.6), Column("What happened", ValueKind.TEXT, weight=4.6)),
        tuple(rows), caption="Exceptions in the period: decisions other than routine rejects, and monitor alerts",
        source_attachment=ATTACHMENTS["promotions"][0], total_rows=len(rows),
        empty_text="No exception in the period: every decision was a routine reject, and no monitor alerted."))
    details = tuple(_decision_detail(d) for d in h.exceptions if d.has_detail)
    return Section("Exceptions", tuple(blocks), details)


def _alert_text(a: AlertEntry, response: AlertResponse | None) -> str:
    said = a.summary or "no summary recorded"
    action = f"; the monitor's action: {a.action}" if a.action else ""
    if response is None:
        answered = "; nothing later in the slot answers it (no decision or retrain proposal links it)"
    else:
        answered = f"; answered by seq {response.seq}: {response.what}"
    return f"{said}{action}{answered}"


def _decision_detail(d: GateDecision) -> Section:
    replay = d.replay
    items = [
        KeyValue("Decision", promotion_status(d.decision)),
        KeyValue("Time (UTC)", d.ts),
        KeyValue("Challenger / champion", f"{d.challenger_version} / {d.champion_version or 'none (empty slot)'}"),
        KeyValue("Decided by", d.decided_by),
        KeyValue("Trigger", d.trigger, ValueKind.IDENTIFIER),
        KeyValue("Recorded by (actor)", d.actor, ValueKind.IDENTIFIER),
        KeyValue("Stage that decided", d.stage or "not recorded", ValueKind.IDENTIFIER),
        KeyValue("Reason", d.reason),
    ]
    for key, label in (("policy_digest", "Policy digest (SHA-256)"), ("challenger_digest", "Challenger evaluation digest"),
                       ("champion_digest", "Champion evaluation digest")):
        if isinstance(replay.get(key), str):
            items.append(KeyValue(label, replay[key], ValueKind.DIGEST))
    blocks: list[Block] = [KeyValues(tuple(items))]
    if d.comparison:
        blocks.append(Table(
            (Column("Metric", ValueKind.IDENTIFIER, weight=2.4), Column("Champion", ValueKind.NUMBER, precision=4, weight=1.0),
             Column("Challenger", ValueKind.NUMBER, precision=4, weight=1.0), Column("Change", ValueKind.TEXT, weight=1.0),
             Column("Threshold", ValueKind.TEXT, weight=1.0), Column("Result", ValueKind.STATUS, weight=1.0)),
            tuple((c.get("metric"), _num(c.get("champion")), _num(c.get("challenger")), _percent(c.get("delta_rel")),
                   _percent(c.get("threshold")), passed(c.get("passed"))) for c in d.comparison),
            caption=f"Metric comparison, seq {d.seq} (metrics to 4 places, relative change and its threshold in percent)",
            total_rows=len(d.comparison)))
    tests = {str(t.get("metric")): t for t in d.tests}
    if d.significance:
        rows = []
        for sig in d.significance:
            t = tests.get(str(sig.get("metric")), {})
            rows.append((sig.get("metric"), sig.get("test"), _num(t.get("n")), _num(t.get("champion")), _num(t.get("challenger")),
                         _num(sig.get("statistic")), _p4(sig.get("p_value")), _p4(sig.get("p_adjusted")),
                         passed(sig.get("significant"), "YES", "NO")))
        alphas = sorted({format_value(a, ValueKind.NUMBER) for a in (sig.get("alpha") for sig in d.significance) if _finite(a)})
        blocks.append(Table(
            (Column("Metric", ValueKind.IDENTIFIER, weight=2.4), Column("Test", ValueKind.IDENTIFIER, weight=0.9),
             Column("n", ValueKind.NUMBER, weight=0.7), Column("Champion", ValueKind.NUMBER, precision=4, weight=0.9),
             Column("Challenger", ValueKind.NUMBER, precision=4, weight=0.9),
             Column("Statistic", ValueKind.NUMBER, precision=4, weight=0.9), Column("p", ValueKind.NUMBER, weight=0.9),
             Column("p (Holm)", ValueKind.NUMBER, weight=0.9), Column("Significant", ValueKind.STATUS, weight=1.1)),
            tuple(rows), caption=f"Significance tests, seq {d.seq}, at alpha {' / '.join(alphas) or 'not recorded'} "
                                 "(estimates and statistic to 4 places, p-values to 4 significant digits; exact in the "
                                 "attachment)", total_rows=len(rows)))
    if d.checks:
        failed = [c for c in d.checks if c.get("passed") is not True]
        if failed:
            blocks.append(Table(
                (Column("Check", ValueKind.IDENTIFIER, weight=2.4), Column("Result", ValueKind.STATUS, weight=1.0),
                 Column("Detail", ValueKind.TEXT, weight=4.6)),
                tuple((c.get("name"), passed(c.get("passed")), _text(c.get("detail")) or "no detail recorded") for c in failed),
                caption=f"Checks that did not pass, seq {d.seq}", total_rows=len(failed)))
        ok = [str(c.get("name")) for c in d.checks if c.get("passed") is True]
        if ok:
            blocks.append(Paragraph(f"Checks passed, in the order the gate ran them ({len(ok)}): " + ", ".join(ok) + "."))
    return Section(f"Seq {d.seq}: {d.decision} of {d.challenger_version}", tuple(blocks))


# --------------------------------------------------------------------------- gate decisions


def _gate_section(h: SlotHistory, period: Period) -> Section:
    blocks: list[Block] = [Paragraph(
        "Every champion/challenger decision writes exactly one model_promotion entry with its inputs and reason. The gate "
        "runs its checks in a fixed order, and the first that resolves decides: a force-promote override, bootstrap of an "
        "empty slot, the fidelity floor (before any competition, so performance cannot bargain with safety), functional "
        "checks, then competition: the primary metric must improve by at least the minimum relative improvement, no "
        "secondary metric may degrade beyond its limit, and the improvement must be significant after Holm's correction.")]
    blocks += _policy_tables(h)
    # One table per policy, so the decider is named once, in the caption.
    by_policy: dict[str | None, list[GateDecision]] = {}
    for d in h.routine_rejects:
        by_policy.setdefault(d.policy_digest, []).append(d)
    for rejects in by_policy.values() or ([],):
        rows = []
        for d in rejects:
            primary = d.primary
            failing = [str(c.get("name")) for c in d.checks if c.get("passed") is not True]
            rows.append((d.seq, d.ts, d.challenger_version, d.champion_version or "none",
                         _percent(primary.get("delta_rel")) if primary else "not recorded", _p(d.min_p_adjusted),
                         ", ".join(failing) or "none recorded"))
        decider = f" decided by {rejects[0].decided_by}" if rejects else ""
        blocks.append(Table(
            (Column("Seq", ValueKind.IDENTIFIER, weight=0.7), Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.2),
             Column("Challenger", ValueKind.IDENTIFIER, weight=1.2), Column("Champion", ValueKind.IDENTIFIER, weight=1.2),
             Column("Δ primary", ValueKind.TEXT, weight=0.8), Column("min p (Holm)", ValueKind.TEXT, weight=0.8),
             Column("Failing checks", ValueKind.TEXT, weight=2.6)),
            tuple(rows), caption=f"Routine rejects{decider}: automatic rejects in competition (relative change of the "
                                 "primary metric in percent, smallest Holm-adjusted p-value to 4 significant digits; every "
                                 "check, comparison and test in the attachment)",
            source_attachment=ATTACHMENTS["promotions"][0], total_rows=len(rows),
            empty_text="No routine reject in the period."))
    for chart in (primary_metric_chart(h.decisions),
                  decisions_over_time_chart(h.decisions, period.start, h.until or h.last_ts() or period.end)):
        if chart is not None:
            blocks.append(chart)
    return Section("Gate decisions", tuple(blocks))


def _policy_tables(h: SlotHistory) -> list[Block]:
    """The thresholds of each policy the gate decided under, printed once per policy."""
    groups: dict[tuple[str | None, tuple[tuple[str, float], ...]], list[GateDecision]] = {}
    for d in h.decisions:
        if d.thresholds:
            key = (d.policy_digest, tuple(sorted((k, float(v)) for k, v in d.thresholds.items())))
            groups.setdefault(key, []).append(d)
    blocks: list[Block] = []
    for (digest, thresholds), used in groups.items():
        name = f"policy {short_digest(digest)}" if digest else "a policy whose digest is not recorded"
        blocks.append(Table(
            (Column("Threshold", ValueKind.IDENTIFIER, weight=3.0), Column("Value", ValueKind.NUMBER, weight=1.0)),
            thresholds, caption=f"Thresholds of {name}, used by {len(used)} decision(s), seq {used[0].seq} to {used[-1].seq} "
                                "(the full digest is in each decision's record)", total_rows=len(thresholds)))
    return blocks


# --------------------------------------------------------------------------- overrides and rollbacks


def _override_section(h: SlotHistory) -> Section:
    findings = h.override_findings()
    blocks: list[Block] = [Paragraph(
        "Override analysis (SR 11-7): every promotion decision a person made (trigger manual: force-promote, approval, "
        "decline, manual rollback), who made it and why, set against what the gate had said about the same version at "
        "the time, with the committee's review of it and what followed. The gate's verdict is the latest gate decision "
        "on that version before the person's decision, with its age; it is no longer current once it is older than the "
        "policy's approval_valid_days, or once another version has held production since. A force-promote of a version "
        "the gate never evaluated, or had rejected, is flagged; so is one resting on a verdict that is no longer current.")]
    if not findings:
        blocks.append(StatusBadge(Status.PASS, "NONE", "no decision in the period was made by a person"))
        return Section("Overrides and human decisions", tuple(blocks))
    blocks.append(KeyValues((
        KeyValue("Decisions by a person", len(findings)),
        KeyValue("Force-promotes", sum(1 for f in findings if f.decision.decision == "force_promote")),
        KeyValue("Approvals / declines", sum(1 for f in findings if f.decision.decision in ("approve", "decline"))),
        KeyValue("Manual rollbacks", sum(1 for f in findings if f.decision.decision == "rollback")),
        KeyValue("Against, or without, a gate verdict", sum(1 for f in findings if f.against_the_gate)),
        KeyValue("On a gate verdict no longer current", sum(1 for f in findings if f.stale and not f.against_the_gate)),
        KeyValue("Reviewed by the committee", sum(1 for f in findings if f.reviews)),
    ), caption="Override counts"))
    # Two tables, so that no column of prose is squeezed until a version or a seq breaks:
    # the decision and the gate's verdict at the time; then why, the review and what followed.
    badge = {"AGAINST GATE": Status.WARN, "STALE VERDICT": Status.WARN, "CONSISTENT": Status.INFO}
    rows = tuple((f.decision.seq, f.decision.ts, promotion_status(f.decision.decision), f.decision.challenger_version,
                  f.decision.decided_by, f.gate_said, StatusBadge(badge[f.finding], f.finding))
                 for f in findings)
    blocks.append(Table(
        (Column("Seq", ValueKind.IDENTIFIER, weight=0.6), Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.2),
         Column("Decision", ValueKind.STATUS, weight=1.4), Column("Version", ValueKind.IDENTIFIER, weight=1.2),
         Column("Who", ValueKind.TEXT, weight=1.3), Column("What the gate had said at the time", ValueKind.TEXT, weight=3.6),
         Column("Finding", ValueKind.STATUS, weight=1.2)),
        rows, caption="Decisions made by a person, with the gate's verdict on the same version at the time",
        source_attachment=ATTACHMENTS["promotions"][0], total_rows=len(rows)))
    after = tuple((f.decision.seq, f.decision.reason,
                   "; ".join(r.describe() for r in f.reviews) or "not reviewed (no override_review entry names it)",
                   "; ".join(f.followed_by))
                  for f in findings)
    blocks.append(Table(
        (Column("Seq", ValueKind.IDENTIFIER, weight=0.6), Column("Why (as recorded)", ValueKind.TEXT, weight=3.0),
         Column("Committee review (reviews_seq)", ValueKind.TEXT, weight=2.6), Column("What followed", ValueKind.TEXT, weight=2.6)),
        after, caption="Each decision by a person: why, as recorded; the committee's review of it; and what followed",
        source_attachment=ATTACHMENTS["follow_ups"][0], total_rows=len(after)))
    forced = [f for f in findings if f.decision.decision == "force_promote"]
    if forced:
        skipped = tuple((f.decision.seq, f.decision.challenger_version, len(f.skipped_checks),
                         ", ".join(f.skipped_checks) or "not recorded (an entry before gate_format 2)")
                        for f in forced)
        blocks.append(Table(
            (Column("Seq", ValueKind.IDENTIFIER, weight=0.6), Column("Version", ValueKind.IDENTIFIER, weight=1.2),
             Column("Checks", ValueKind.NUMBER, weight=0.7), Column("Checks the ladder would have run (details.skipped_checks)",
                                                                 ValueKind.TEXT, weight=6.0)),
            skipped, caption="What each force-promote skipped", source_attachment=ATTACHMENTS["promotions"][0],
            total_rows=len(skipped)))
    return Section("Overrides and human decisions", tuple(blocks))


def _rollback_section(h: SlotHistory) -> Section:
    if not h.rollbacks:
        return Section("Rollbacks", (Paragraph("No rollback of this slot is recorded in the period."),))
    rows = []
    for d in h.rollbacks:
        alert = d.alert
        if alert is not None:
            cause = f"alert seq {alert.get('seq')}: {alert.get('summary')}"
        elif d.responds_to_seq is not None:
            cause = f"alert seq {d.responds_to_seq}"
        else:
            cause = f"by {d.decided_by}, no alert linked"
        rows.append((d.seq, d.ts, d.champion_version, d.challenger_version, d.trigger, d.decided_by, d.reason, cause))
    return Section("Rollbacks", (
        Paragraph("A rollback returns the slot to a version that was production before. An automatic rollback carries the "
                  "monitor alert that fired it and is decided by that monitor; a manual one names its operator."),
        Table(
            (Column("Seq", ValueKind.IDENTIFIER, weight=0.6), Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.3),
             Column("From", ValueKind.IDENTIFIER, weight=1.3), Column("Back to", ValueKind.IDENTIFIER, weight=1.3),
             Column("Trigger", ValueKind.IDENTIFIER, weight=1.0), Column("Decided by", ValueKind.TEXT, weight=1.3),
             Column("Reason", ValueKind.TEXT, weight=2.6), Column("What triggered it", ValueKind.TEXT, weight=2.2)),
            tuple(rows), caption="Rollbacks in the period", source_attachment=ATTACHMENTS["promotions"][0], total_rows=len(rows)),
    ))


# --------------------------------------------------------------------------- monitoring


def _monitoring_section(h: SlotHistory) -> Section:
    intro = Paragraph(
        "Ongoing monitoring (SR 11-7): each monitor run writes one monitor_run entry with all its results, breach or not, "
        "and one monitor_alert entry per alert, sharing the run's correlation id. Fairness follows AIF360's signed "
        "definitions with confidence intervals and both bounds checked; drift is the population stability index (PSI) of "
        "the served predictions against a baseline window.")
    subsections = [s for s in (_fairness_subsection(h), _drift_subsection(h), _online_subsection(h), _alerts_subsection(h),
                               _actions_subsection(h)) if s]
    if not h.runs and not h.alerts:
        return Section("Monitoring", (intro, StatusBadge(
            Status.WARN, "NOT EVIDENCED", "no monitor_run or monitor_alert entry for this slot in the period: ongoing monitoring "
            "is not evidenced in the ledger")))
    return Section("Monitoring", (intro,), tuple(subsections))


def _fairness_subsection(h: SlotHistory) -> Section | None:
    runs = fairness_runs(h)
    if not runs:
        return None
    low, high = di_band(h.runs_of("fairness"))
    blocks: list[Block] = [Paragraph(
        "One row per fairness run: the segment that matters most by the breach rule the monitor recorded (a breach it "
        "alerted on, else the farthest outside its band, else the farthest from it; a segment too small to judge last), "
        "with both group sizes, the disparate impact and its confidence interval, the other metrics of the same segment, "
        "and the breach alerts the run wrote. The basis says whether the run judged what customers were served or what "
        "the model proposed. " + "; ".join(f"Breach rule {rule}: {text}" for rule, text in
                                                             sorted(BREACH_RULES.items()) if any(f.rule == rule for f in runs))
        + ".")]
    chart = fairness_chart(h)
    if chart is not None:
        blocks.append(chart)
    # The EOD column only when some run computed it (the paragraph below says why not).
    with_eod = any(f.worst is not None and f.worst.results.get(EOD) is not None for f in runs)
    rows = []
    for f in runs:
        worst = f.worst
        results = worst.results if worst else {}
        di, spd = results.get(DI), results.get(SPD)
        row = [f.run.seq, f.run.ts, f"{f.run.version} ({f.basis or 'basis not recorded'})", _segment_text(f) or "no segment",
               _metric_text(f, DI), _interval(di) or "not computed", fairness_finding(f.finding), _metric_text(f, SPD)]
        if with_eod:
            row.append(_metric_text(f, EOD))
        rows.append((*row, f.alerts))
    columns = [Column("Seq", ValueKind.IDENTIFIER, weight=0.7), Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.5),
               Column("Version (basis)", ValueKind.TEXT, weight=1.4),
               Column("Worst segment: n unpriv. / priv.", ValueKind.TEXT, weight=2.0),
               Column("DI", ValueKind.TEXT, weight=0.9), Column("DI interval", ValueKind.TEXT, weight=1.3),
               Column("Finding", ValueKind.STATUS, weight=1.4), Column("SPD", ValueKind.TEXT, weight=1.0)]
    if with_eod:
        columns.append(Column("EOD", ValueKind.TEXT, weight=1.1))
    columns.append(Column("Alerts", ValueKind.NUMBER, weight=1.0))
    blocks.append(Table(
        tuple(columns),
        tuple(rows), caption=f"Fairness runs, worst segment per run: disparate impact (band [{low:g}, {high:g}]), statistical "
                             "parity and equal opportunity differences (values rounded to 4 places; exact in the attachment)",
        source_attachment=ATTACHMENTS["monitoring"][0], total_rows=len(rows)))
    reasons = sorted({f.not_computed.get(EOD, "not computed by the monitor") for f in runs
                      if f.worst and EOD not in f.worst.results})
    if reasons:
        blocks.append(Paragraph("Equal opportunity (EOD) is not computed by every run: " + "; ".join(reasons) + "."))
    return Section("Fairness", tuple(blocks))


FOUR_PLACES = Column("value", ValueKind.NUMBER, precision=4)


def _segment_text(f: FairnessRun) -> str | None:
    """The worst segment and its two group sizes (those of its disparate impact)."""
    if f.worst is None:
        return None
    label = f"{f.worst.label} (worst of {f.segments})" if f.segments > 1 else f.worst.label
    di = f.worst.results.get(DI)
    return f"{label}: {di.n_unprivileged:,} / {di.n_privileged:,}" if di else label


def _interval(result: FairnessResult | None) -> str | None:
    if result is None or result.ci_low is None or result.ci_high is None:
        return None
    return f"{format_value(result.ci_low, ValueKind.NUMBER, FOUR_PLACES)} to {format_value(result.ci_high, ValueKind.NUMBER, FOUR_PLACES)}"


def _metric_text(f: FairnessRun, metric: str) -> str:
    """A metric of the worst segment, or in a word why there is no value."""
    result = f.worst.results.get(metric) if f.worst else None
    if result is not None and result.value is not None:
        return format_value(result.value, ValueKind.NUMBER, FOUR_PLACES)
    if result is None:
        return "not computed"
    return "too few" if result.status == INSUFFICIENT else "undefined"


def _drift_subsection(h: SlotHistory) -> Section | None:
    runs = h.runs_of("drift")
    if not runs:
        return None
    # A nightly monitor records thousands of stable results a year: the table lists those at or
    # above the investigate line, the chart and the attachment show every run.
    rows, results = [], 0
    for r in runs:
        for res in r.results:
            results += 1
            if res.get("status") in (None, "stable"):
                continue
            rows.append((r.seq, r.ts, r.version, str(res.get("feature")), _num(res.get("psi")), _num(res.get("kl")),
                         drift_status(res.get("status")), f"{res.get('n_baseline', '?')} / {res.get('n_current', '?')}"))
    blocks: list[Block] = []
    chart = drift_chart(h)
    if chart is not None:
        blocks.append(chart)
    blocks.append(Table(
        (Column("Seq", ValueKind.IDENTIFIER, weight=0.6), Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.3),
         Column("Version", ValueKind.IDENTIFIER, weight=1.2), Column("Feature", ValueKind.IDENTIFIER, weight=1.6),
         Column("PSI", ValueKind.NUMBER, precision=4, weight=0.8), Column("KL", ValueKind.NUMBER, precision=4, weight=0.8),
         Column("Status", ValueKind.STATUS, weight=1.5), Column("n base / current", ValueKind.TEXT, weight=1.1)),
        tuple(rows), caption=(f"Drift results at or above the investigate line: {len(rows)} of the {results} results of "
                              f"{len(runs)} drift run(s), per feature (values rounded to 4 places; every result, exact, "
                              "in the attachment)"),
        source_attachment=ATTACHMENTS["monitoring"][0], total_rows=results,
        empty_text="No drift result reached the investigate line."))
    return Section("Drift", tuple(blocks))


def _online_subsection(h: SlotHistory) -> Section | None:
    runs = h.runs_of("online")
    if not runs:
        return None
    rows = []
    for r in runs:
        for res in r.results:
            test = res.get("test") if isinstance(res.get("test"), Mapping) else {}
            rows.append((r.seq, r.ts, f"{r.details.get('challenger_version')} vs {r.details.get('champion_version')}",
                         res.get("metric"), res.get("outcome"), _num(test.get("p_value")), _text(res.get("detail"))))
    return Section("Online champion/challenger", (Table(
        (Column("Seq", ValueKind.IDENTIFIER, weight=0.6), Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.3),
         Column("Challenger vs champion", ValueKind.IDENTIFIER, weight=2.0), Column("Metric", ValueKind.IDENTIFIER, weight=1.2),
         Column("Outcome", ValueKind.IDENTIFIER, weight=1.3), Column("p-value", ValueKind.NUMBER, weight=1.0),
         Column("Detail", ValueKind.TEXT, weight=2.6)),
        tuple(rows), caption="Online evaluations (Welch's t-test per metric)", source_attachment=ATTACHMENTS["monitoring"][0],
        total_rows=len(rows)),))


def _alerts_subsection(h: SlotHistory) -> Section | None:
    if not h.alerts:
        return None
    rows = []
    for a in h.alerts:
        response = h.response_to(a)
        rows.append((a.seq, a.ts, f"{a.monitor}: {a.action or 'no action recorded'}", _alert_status(a),
                     a.version or "not recorded", f"seq {response.seq} ({response.entry})" if response else "none"))
    return Section("Alerts", (Table(
        (Column("Seq", ValueKind.IDENTIFIER, weight=0.6), Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.2),
         Column("Monitor: action", ValueKind.TEXT, weight=2.4), Column("Status", ValueKind.STATUS, weight=1.3),
         Column("Version", ValueKind.IDENTIFIER, weight=1.1), Column("Answered by", ValueKind.TEXT, weight=1.6)),
        tuple(rows), caption="Monitor alerts in the period, each with the entry that answered it (a decision or a retrain "
                             "proposal; see Responses to monitoring and Exceptions)",
        source_attachment=ATTACHMENTS["monitoring"][0], total_rows=len(rows)),))


def _actions_subsection(h: SlotHistory) -> Section | None:
    """What was done in answer to monitoring: retrain proposals and decisions linked to an
    alert (an automatic rollback, a force-promote); and challengers' traffic (shadow,
    canary) before a decision."""
    responses = h.responses()
    splits = [a for a in h.actions if a.event_type != "retrain_proposal"]
    if not responses and not splits:
        return None
    rows: list[tuple[Any, ...]] = []
    for r, alerts in responses:
        answers = f"alert seq {', '.join(str(s) for s in alerts)}"
        if r.entry == "retrain_proposal":
            proposal = next(a for a in h.actions if a.seq == r.seq)
            rows.append((r.seq, r.ts, r.entry, _str_or_dash(proposal.details.get("version")), answers,
                         f"{r.what}: {_str_or_dash(proposal.details.get('summary'))}"))
        else:
            d = h.decision_at(r.seq)
            assert d is not None
            rows.append((r.seq, r.ts, r.entry, d.challenger_version, answers, f"decided by {d.decided_by}: {d.reason}"))
    for a in splits:
        d = a.details
        share = d.get("challenger_share")
        served = f"{share:.0%} of requests served" if _finite(share) else "share not recorded"
        rows.append((a.seq, a.ts, a.event_type, _str_or_dash(d.get("challenger_version")), "none (before a decision)",
                     f"{_str_or_dash(d.get('mode'))} ({served}) beside {_str_or_dash(d.get('champion_version'))}: "
                     f"{_str_or_dash(d.get('reason'))}"))
    rows.sort(key=lambda row: row[0])
    return Section("Responses to monitoring", (Table(
        (Column("Seq", ValueKind.IDENTIFIER, weight=0.6), Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.2),
         Column("Entry", ValueKind.IDENTIFIER, weight=1.3), Column("Version", ValueKind.IDENTIFIER, weight=1.2),
         Column("Answers", ValueKind.TEXT, weight=1.1), Column("What", ValueKind.TEXT, weight=3.6)),
        tuple(rows), caption=(f"Responses to monitoring: {len(responses)} entr(y/ies) answering an alert (retrain proposals, "
                              "which deploy nothing: a retrained challenger still goes through the gate; decisions linked "
                              "to an alert), and challengers' live traffic (shadow, canary) before their decision"),
        source_attachment=ATTACHMENTS["monitoring"][0], total_rows=len(rows)),))


def _str_or_dash(value: Any) -> str:
    return value if isinstance(value, str) and value else "-"


# --------------------------------------------------------------------------- method


def _method_blocks(h: SlotHistory) -> list[Block]:
    return [
        Paragraph(
            "Gate decisions are shown as recorded: the comparison and significance columns of each model_promotion entry, "
            "and from its details the stage that decided, every check in the order the gate ran it, the test inputs and "
            "estimates, and the digests of the policy and evaluations, which `mrm gate replay` recomputes the decision from. "
            "p-values are two-sided (DeLong for AUC, exact McNemar for accuracy, a seeded paired bootstrap otherwise); with "
            "several tasks they are adjusted with Holm's method, and a task counts only if its adjusted p is below alpha."),
        Paragraph(
            "The override analysis takes, for each decision a person made, the latest gate verdict (promote, reject, "
            "pending approval, bootstrap) on the same version in the same slot before it, including verdicts before the "
            "report period, and its age; a verdict older than the approval_valid_days of the policy it recorded, or one "
            "after which another version held production, is reported as no longer current. What the gate would have "
            "said about a version it never evaluated is not known and is reported as such; this document does not re-run "
            "the gate. A review is an override_review entry whose reviews_seq names the decision; what followed is read "
            "from the slot's policy_change entries and its next promotion decision."),
        Paragraph(
            "Monitoring values are those the monitors recorded. Disparate impact is the favourable-outcome rate of the "
            "unprivileged group over that of the privileged group; its band is read from each run's recorded bounds. "
            "A fairness run's worst segment, and whether a finding alerted, follow the breach rule the run recorded "
            "(gates.monitors, the definition the monitor alerted with); the breach alerts counted are the monitor_alert "
            "entries the run wrote. The basis says whether the run judged what customers were served or what the model "
            "proposed. PSI thresholds are those of the recorded gate policy when the slot has one."),
        Paragraph("The queries below ran over the entries the checkpoint covers, through the same read-only SQL views an "
                  "examiner gets with `mrm sql LEDGER`; each result is attached as Parquet."),
    ]


def _queries_section(h: SlotHistory) -> Section:
    blocks: list[Block] = []
    for q in h.queries:
        name, _ = ATTACHMENTS[q.name]
        blocks.append(CodeBlock(q.shown(), caption=f"{q.name}: {q.table.num_rows:,} row(s), attached as {name}"))
    return Section("Queries", tuple(blocks))


# --------------------------------------------------------------------------- small helpers


def _alert_status(a: AlertEntry) -> StatusBadge:
    severe = a.status in ("breach", "significant_drift", "rollback") or a.action in ("rollback", "propose_rollback")
    return StatusBadge(Status.FAIL if severe else Status.WARN, a.status.upper().replace("_", " ") or "ALERT")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any) -> float | int | None:
    """A recorded number for a NUMBER column (anything else, e.g. a string, is not shown as one)."""
    return value if _finite(value) else None


def _routine_transition(t: Mapping[str, Any], routine_seqs: set[int], routine_versions: set[str]) -> bool:
    """A routine reject's transitions: the reject itself, and the registration of a challenger
    that nothing but routine rejects ever decided on."""
    if t["seq"] in routine_seqs:
        return True
    return t["from_state"] is None and t["cause"] == "model_registered" and t["version"] in routine_versions


def _decider(h: SlotHistory, seq: int | None, operator: str | None) -> str:
    """Who made a registry change: its operator, or the gate and its policy for an
    automatic decision."""
    if operator:
        return operator
    decision = h.decision_at(seq)
    return decision.decided_by if decision is not None else "not recorded"


def _percent(value: Any) -> str:
    """A relative change (0.0123) as a percentage with its sign (+1.23%)."""
    return f"{value * 100:+.2f}%" if _finite(value) else "not recorded"


def _p(value: Any) -> str:
    """A p-value to 4 significant digits (a p-value means no more)."""
    return f"{value:.4g}" if _finite(value) else "not recorded"


def _p4(value: Any) -> float | None:
    """A p-value rounded to 4 significant digits, for a NUMBER column."""
    return float(f"{value:.4g}") if _finite(value) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _when(ts: dt.datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(ts: dt.datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y%m%d")
