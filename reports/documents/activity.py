"""What the models did in a period, as charts: the decisions each slot served per day, its
promotions over time, its primary metric at each gate decision, and its fairness and drift
indicators with their thresholds.

The examiner evidence pack shows this beside the requirement-by-requirement findings: a
reader sees a hole in the log, a burst of overrides or a drifting model faster in a chart
than in a table. Every figure comes from a query kept here with its parameters, shown in the
document's method appendix and runnable in `mrm sql`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

from forensics.session import LedgerSQL
from forensics.source import Source

from ..charts import Series, line_chart
from ..model import Block, CodeBlock, Figure, KeyValue, KeyValues, Paragraph, Section
from .history import Query, SlotHistory, read_slot_history, starting_production_text
from .slot_charts import decisions_over_time_chart, drift_chart, fairness_chart, primary_metric_chart

__all__ = ["MAX_SLOTS", "PeriodActivity", "activity_queries", "activity_section", "read_activity"]

MAX_SLOTS = 4  # beyond this the section lists the other slots by name rather than charting them

DAILY_DECISIONS_SQL = (
    "SELECT model_slot AS slot, CAST(date_trunc('day', ts) AS DATE) AS day, count(*) AS decisions\n"
    "FROM model_inference\n"
    "WHERE ts >= ? AND ts < ? AND coalesce(route, 'champion') <> 'shadow'\n"
    "GROUP BY ALL ORDER BY slot, day"
)
PROMOTED_SLOTS_SQL = (
    "SELECT DISTINCT slot FROM model_promotion WHERE ts >= ? AND ts < ?\n"
    "UNION\n"
    "SELECT DISTINCT json_extract_string(details, '$.slot') FROM operation\n"
    "WHERE event_type IN ('monitor_run', 'monitor_alert', 'online_evaluation') AND ts >= ? AND ts < ?\n"
    "ORDER BY 1"
)


@dataclass(frozen=True)
class SlotActivity:
    slot: str
    days: tuple[tuple[dt.date, int], ...]  # decisions served per day with at least one
    history: SlotHistory

    @property
    def decisions(self) -> int:
        return sum(n for _, n in self.days)


@dataclass(frozen=True)
class PeriodActivity:
    start: dt.datetime
    end: dt.datetime
    slots: tuple[SlotActivity, ...]  # charted, busiest first
    other_slots: tuple[str, ...]  # active but not charted (more than MAX_SLOTS)
    queries: tuple[Query, ...]  # the queries behind the section (each slot's history queries included)

    @property
    def slot_names(self) -> tuple[str, ...]:
        return tuple(s.slot for s in self.slots) + self.other_slots


def read_activity(source: Source, start: dt.datetime, end: dt.datetime) -> PeriodActivity:
    """The slots that served, were promoted or were monitored in [start, end), and their
    histories over it (``source`` already bounded to the checkpoint)."""
    with LedgerSQL(source) as sql:
        daily = Query("daily_decisions", DAILY_DECISIONS_SQL, (start, end), sql.query(DAILY_DECISIONS_SQL, [start, end]))
        promoted = Query("active_slots", PROMOTED_SLOTS_SQL, (start, end, start, end),
                         sql.query(PROMOTED_SLOTS_SQL, [start, end, start, end]))
    days: dict[str, list[tuple[dt.date, int]]] = {}
    for row in daily.table.to_pylist():
        days.setdefault(row["slot"], []).append((row["day"], int(row["decisions"])))
    names = set(days) | {r["slot"] for r in promoted.table.to_pylist() if r["slot"]}
    ranked = sorted(names, key=lambda s: (-sum(n for _, n in days.get(s, ())), s))
    charted = ranked[:MAX_SLOTS]
    slots = tuple(SlotActivity(s, tuple(days.get(s, ())), read_slot_history(source, s, start, end)) for s in charted)
    queries = (daily, promoted) + tuple(q for s in slots for q in _named(s.history.queries, s.slot))
    return PeriodActivity(start, end, slots, tuple(ranked[MAX_SLOTS:]), queries)


def _named(queries: Sequence[Query], slot: str) -> list[Query]:
    return [Query(f"{q.name} ({slot})", q.sql, q.params, q.table) for q in queries if q.name in ("promotions", "monitoring")]


def activity_section(activity: PeriodActivity) -> Section:
    intro = Paragraph(
        "What each model slot did in the period, drawn from the same entries the requirements below are judged on: the "
        "decisions it served per day (a gap in the line is a day without a recorded decision), its promotion decisions "
        "over time, the primary metric of champion and challenger at each gate decision, and the fairness and drift "
        "indicators its monitors recorded, with the thresholds they were judged against. The queries are in the method "
        "appendix.")
    if not activity.slots:
        return Section("The models in the period", (intro, Paragraph(
            "No model slot served a decision, was promoted or was monitored in the period.")))
    subsections = tuple(_slot_section(s, activity) for s in activity.slots)
    blocks: list[Block] = [intro]
    if activity.other_slots:
        blocks.append(Paragraph(f"{len(activity.other_slots)} more slot(s) were active and are not charted here: "
                                + ", ".join(activity.other_slots) + ". Their evidence is in the requirement sections."))
    return Section("The models in the period", tuple(blocks), subsections)


def _slot_section(s: SlotActivity, activity: PeriodActivity) -> Section:
    h = s.history
    end_version = h.production_at(activity.end - dt.timedelta(microseconds=1))
    facts = KeyValues((
        KeyValue("Decisions served in the period", s.decisions),
        KeyValue("Days with at least one decision", len(s.days)),
        KeyValue("Production at the start", starting_production_text(h.starting_production(activity.start, activity.end))),
        KeyValue("Production at the end", end_version or "none"),
        KeyValue("Promotion decisions", len(h.decisions)),
        KeyValue("Decisions by a person", len(h.overrides)),
        KeyValue("Rollbacks", len(h.rollbacks)),
        KeyValue("Monitoring runs / alerts", f"{len(h.runs)} / {len(h.alerts)}"),
    ), caption=f"Slot {s.slot} in the period")
    blocks: list[Block] = [facts]
    charts = [
        _daily_chart(s, activity),
        decisions_over_time_chart(h.decisions, activity.start, activity.end, slot=s.slot),
        primary_metric_chart(h.decisions, slot=s.slot),
        fairness_chart(h, slot=s.slot),
        drift_chart(h, slot=s.slot),
    ]
    blocks += [c for c in charts if c is not None]
    if not h.runs:
        blocks.append(Paragraph(f"No monitoring run of slot {s.slot} is recorded in the period, so no fairness or drift "
                                "indicator can be drawn."))
    return Section(f"Slot {s.slot}", tuple(blocks))


def _daily_chart(s: SlotActivity, activity: PeriodActivity) -> Figure | None:
    if len(s.days) < 2:
        return None
    # Every day of the span, zero where nothing was recorded, so a hole shows as a drop.
    first, last = s.days[0][0], s.days[-1][0]
    counts = dict(s.days)
    x, y = [], []
    day = first
    while day <= last:
        x.append(dt.datetime.combine(day, dt.time(), dt.timezone.utc))
        y.append(float(counts.get(day, 0)))
        day += dt.timedelta(days=1)
    svg = line_chart([Series("decisions served", x, y)], title=f"Slot {s.slot}. Decisions served per day", y_label="decisions",
                     step=True, size=(6.5, 2.4))
    return Figure(svg, f"Slot {s.slot}. Decisions served per day (UTC days; champion, canary and A/B traffic, not shadow), "
                       f"{first} to {last}: {s.decisions:,} in all",
                  alt="Step chart of the number of decisions served per day over the period")


def activity_queries(activity: PeriodActivity) -> Section:
    """Appendix subsection: the queries behind the charts, parameters written in."""
    blocks = [CodeBlock(q.shown(), caption=f"{q.name}: {q.table.num_rows:,} row(s)") for q in activity.queries]
    return Section("Queries behind the charts", tuple(blocks) or (Paragraph("No query was needed: nothing was charted."),))
