"""Charts of a model slot over a period, shared by every document that shows one: the
validation history draws them for its slot, the examiner evidence pack for each slot that
served in the period examined.

Each function takes the typed history read with the `mrm sql` views
(:mod:`reports.documents.history`) and returns a :class:`~reports.model.Figure`, or None when
there is nothing a chart would show better than a table row (one point is not a trend).
Thresholds drawn are those the ledger recorded (the gate's policy, each fairness run's
band); the monitors' defaults are used only when none was recorded, and the caption says so.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Mapping, Sequence

from ..charts import Series, Threshold, line_chart
from ..model import Figure
from .fairness import DI, FairnessRun, fairness_runs
from .history import GateDecision, MonitorRun, SlotHistory

__all__ = [
    "DEFAULT_DI_BAND",
    "DEFAULT_PSI_LINES",
    "decisions_over_time_chart",
    "di_band",
    "drift_chart",
    "fairness_chart",
    "primary_metric_chart",
    "psi_lines",
]

# What the monitors compare against when no policy is recorded (gates.policy.MonitorRules defaults).
DEFAULT_DI_BAND = (0.8, 1.25)
DEFAULT_PSI_LINES = (0.1, 0.25)
MAX_PSI_FEATURES = 6  # more lines than this on one chart cannot be told apart

# Promotion outcomes grouped as a reader asks about them: what went live, what was turned down.
DECISION_GROUPS = {
    "promoted (promote, approve, bootstrap)": ("promote", "approve", "bootstrap"),
    "rejected or declined": ("reject", "decline"),
    "pending approval": ("pending_approval",),
    "force-promoted": ("force_promote",),
    "rolled back": ("rollback",),
}


def primary_metric_chart(decisions: Sequence[GateDecision], *, slot: str | None = None) -> Figure | None:
    """The primary metric of champion and challenger at each gate decision, with the value
    the challenger had to reach (the recorded minimum relative improvement)."""
    compared = [(d, d.primary) for d in decisions if d.primary is not None
                and finite(d.primary.get("champion")) and finite(d.primary.get("challenger"))]
    if len({d.ts for d, _ in compared}) < 2:
        return None  # one comparison is a table row, not a trend
    metric = str(compared[-1][1].get("metric"))
    x = [d.ts for d, _ in compared]
    champion = [float(row["champion"]) for _, row in compared]
    challenger = [float(row["challenger"]) for _, row in compared]
    bar = [_bar_to_clear(row) for _, row in compared]
    series = [Series("champion (production)", x, champion), Series("challenger", x, challenger)]
    if all(math.isfinite(b) for b in bar):
        series.append(Series("bar to clear (min. improvement)", x, bar))
    svg = line_chart(series, title=_of(slot, f"{metric} at each gate decision"), y_label=metric, size=(6.5, 2.8))
    thresholds = sorted({row.get("threshold") for _, row in compared if finite(row.get("threshold"))})
    needed = ", ".join(f"{t * 100:+.2f}%" for t in thresholds) or "as recorded"
    return Figure(svg, _of(slot, "Primary metric of the champion and the challenger at each gate decision, with the value the "
                             f"challenger had to reach (relative improvement {needed})"),
                  alt=f"Line chart of {metric} for champion, challenger and the bar to clear over time")


def _bar_to_clear(row: Mapping[str, Any]) -> float:
    """The challenger value that would just meet the relative-improvement threshold. The
    direction (higher or lower is better) is read from the recorded relative change."""
    champion, challenger = float(row["champion"]), float(row["challenger"])
    threshold, delta = row.get("threshold"), row.get("delta_rel")
    if not finite(threshold) or not finite(delta) or champion == 0.0:
        return math.nan
    lower_is_better = (challenger - champion) * float(delta) < 0
    step = abs(champion) * float(threshold)
    return champion - step if lower_is_better else champion + step


def decisions_over_time_chart(decisions: Sequence[GateDecision], start: dt.datetime, end: dt.datetime, *,
                              slot: str | None = None) -> Figure | None:
    """Cumulative promotion decisions by outcome: a step up at each decision, readable however
    the decisions are spread (bars per day or week are mostly empty or mostly crowded)."""
    if not decisions:
        return None
    series = []
    for name, kinds in DECISION_GROUPS.items():
        stamps = [d.ts for d in decisions if d.decision in kinds]
        if not stamps:
            continue
        x = [start] + stamps + [max(end, stamps[-1])]
        y = [0.0] + [float(i) for i in range(1, len(stamps) + 1)] + [float(len(stamps))]
        series.append(Series(name, x, y))
    svg = line_chart(series, title=_of(slot, "Promotion decisions over time (cumulative)"), y_label="decisions", step=True,
                     size=(6.5, 2.6))
    return Figure(svg, _of(slot, "Cumulative number of promotion decisions in the period, by outcome"),
                  alt="Step chart of the cumulative number of decisions per outcome over the period")


def di_band(runs: Sequence[MonitorRun]) -> tuple[float, float]:
    """The disparate-impact band the latest fairness run recorded, else the monitors' default."""
    for r in reversed(runs):
        di = r.result("disparate_impact")
        if di and finite(di.get("min")) and finite(di.get("max")):
            return float(di["min"]), float(di["max"])
    return DEFAULT_DI_BAND


def fairness_chart(h: SlotHistory, *, slot: str | None = None) -> Figure | None:
    """Disparate impact of each fairness run's worst segment (by the run's breach rule), the
    runs that alerted marked, with both bounds of the band."""
    runs = fairness_runs(h)
    if not runs:
        return None
    low, high = di_band(h.runs_of("fairness"))
    x = [f.run.ts for f in runs]
    di = [as_y(_worst_di(f)) for f in runs]
    if not any(math.isfinite(v) for v in di):
        return None
    series = [Series("disparate impact, worst segment", x, di)]
    if any(f.alerted for f in runs):
        series.append(Series("run that alerted", x, [v if f.alerted else math.nan for f, v in zip(runs, di)]))
    svg = line_chart(series, title=_of(slot, "Disparate impact of each run's worst segment"), y_label="DI",
                     thresholds=[Threshold(low, "lower bound"), Threshold(high, "upper bound")], size=(6.5, 2.6))
    return Figure(svg, _of(slot, f"Disparate impact of the worst segment at each fairness run (by the breach rule the "
                             f"monitor recorded), with the fair band [{low:g}, {high:g}]; "
                             f"{sum(f.alerted for f in runs)} of {len(runs)} run(s) alerted"),
                  alt="Line chart of the worst segment's disparate impact over time with the lower and upper bounds")


def _worst_di(f: FairnessRun) -> float | None:
    di = f.worst.results.get(DI) if f.worst else None
    return di.value if di else None


def psi_lines(h: SlotHistory) -> tuple[float, float, str]:
    """The PSI investigate and act thresholds of the slot's recorded gate policy (with where
    they come from), else the monitors' defaults."""
    policy = h.recorded_policy()
    monitors = policy.get("monitors") if isinstance(policy, Mapping) else None
    if isinstance(monitors, Mapping) and finite(monitors.get("psi_investigate")) and finite(monitors.get("psi_act")):
        return float(monitors["psi_investigate"]), float(monitors["psi_act"]), "as recorded in the gate's policy"
    return DEFAULT_PSI_LINES[0], DEFAULT_PSI_LINES[1], "the monitors' defaults (no policy recorded in this slot)"


def drift_chart(h: SlotHistory, *, slot: str | None = None) -> Figure | None:
    """PSI per feature at each drift run (the features that drifted most), with the
    investigate and act thresholds."""
    runs = h.runs_of("drift")
    by_feature: dict[str, list[tuple[dt.datetime, float]]] = {}
    for r in runs:
        for res in r.results:
            by_feature.setdefault(str(res.get("feature")), []).append((r.ts, as_y(res.get("psi"))))
    worst = sorted(by_feature, key=lambda f: -max((v for _, v in by_feature[f] if math.isfinite(v)), default=-1.0))
    worst = worst[:MAX_PSI_FEATURES]
    if not worst:
        return None
    investigate, act, where_from = psi_lines(h)
    series = [Series(f, [t for t, _ in by_feature[f]], [v for _, v in by_feature[f]]) for f in sorted(worst)]
    svg = line_chart(series, title=_of(slot, "Population stability index of served predictions"), y_label="PSI",
                     thresholds=[Threshold(investigate, "investigate"), Threshold(act, "act")], size=(6.5, 2.8))
    shown = "" if len(worst) == len(by_feature) else f" (the {len(worst)} features with the largest PSI of {len(by_feature)})"
    return Figure(svg, _of(slot, f"PSI per feature at each drift run{shown}, with the investigate ({investigate:g}) and act "
                             f"({act:g}) thresholds, {where_from}"),
                  alt="Line chart of PSI per feature over time with two threshold lines")


def _of(slot: str | None, text: str) -> str:
    """A title or caption, naming the slot when the document shows several."""
    return f"Slot {slot}. {text}" if slot else text


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def as_y(value: Any) -> float:
    """A recorded number as a chart value; anything else leaves a gap (NaN)."""
    return float(value) if finite(value) else math.nan
