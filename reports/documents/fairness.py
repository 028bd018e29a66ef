"""Fairness runs as a reader needs them: per run, the segment that matters most by the
monitor's own breach rule, and the alerts the run recorded.

A fairness monitor_run records one result per metric and compared segment: one segment for
`mrm monitor fairness` (the unprivileged group against the privileged one), 48 for the demo's
weekly run (each age band x region cell against the rest of its band, labelled ``segment``).
Showing the first result of a run shows whichever segment happened to be listed first; this
module picks the worst with :meth:`gates.monitors.FairnessResult.severity` under the breach
rule the run recorded, the definition the monitor alerted with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from gates.monitors import BREACH_RULES, FINDINGS, POINT_ESTIMATE, FairnessResult

from .history import MonitorRun, SlotHistory

__all__ = ["DI", "EOD", "SPD", "FairnessRun", "Segment", "fairness_runs"]

DI, SPD, EOD = "disparate_impact", "statistical_parity_difference", "equal_opportunity_difference"


@dataclass(frozen=True)
class Segment:
    label: str
    results: Mapping[str, FairnessResult]  # by metric

    def severity(self, rule: str) -> tuple[int, float]:
        return max(r.severity(rule) for r in self.results.values())

    def finding(self, rule: str) -> str:
        """The most serious finding among the segment's metrics (gates.monitors.FINDINGS)."""
        return FINDINGS[self.severity(rule)[0]]


@dataclass(frozen=True)
class FairnessRun:
    run: MonitorRun
    rule: str  # the breach rule the run recorded (runs recorded before rules were: point_estimate)
    basis: str | None  # served or proposed; None when the run did not record it
    segments: int
    worst: Segment | None  # None when the run recorded no readable result
    alerts: int  # breach alerts the run wrote (monitor_alert entries sharing its correlation id)
    not_computed: Mapping[str, str]  # metric -> why the monitor did not compute it

    @property
    def alerted(self) -> bool:
        return self.alerts > 0

    @property
    def finding(self) -> str | None:
        return self.worst.finding(self.rule) if self.worst else None


def fairness_runs(h: SlotHistory) -> tuple[FairnessRun, ...]:
    """Every fairness run of the slot in the period, in sequence order."""
    breach_alerts: dict[str, int] = {}
    for a in h.alerts:
        if a.monitor.startswith("fairness.") and a.status == "breach" and a.correlation_id is not None:
            breach_alerts[a.correlation_id] = breach_alerts.get(a.correlation_id, 0) + 1
    return tuple(_fairness_run(r, breach_alerts.get(r.correlation_id or "", 0)) for r in h.runs_of("fairness"))


def _fairness_run(run: MonitorRun, alerts: int) -> FairnessRun:
    inputs = run.details.get("inputs") if isinstance(run.details.get("inputs"), Mapping) else {}
    rule = inputs.get("breach_rule") if inputs.get("breach_rule") in BREACH_RULES else POINT_ESTIMATE
    basis = inputs.get("basis") if isinstance(inputs.get("basis"), str) else None
    pair = f"{inputs.get('unprivileged', 'unprivileged')} vs {inputs.get('privileged', 'privileged')}"
    by_segment: dict[str, dict[str, FairnessResult]] = {}
    for recorded in run.results:
        try:
            result = FairnessResult.from_dict(recorded)
        except ValueError:
            continue  # not a fairness result this document can read; the attachment has it as recorded
        label = recorded.get("segment") if isinstance(recorded.get("segment"), str) else pair
        by_segment.setdefault(label, {})[result.metric] = result
    segments = [Segment(label, results) for label, results in by_segment.items()]
    worst = max(segments, key=lambda s: s.severity(rule)) if segments else None
    not_computed = inputs.get("not_computed") if isinstance(inputs.get("not_computed"), Mapping) else {}
    return FairnessRun(run, rule, basis, len(segments), worst, alerts,
                       {str(k): str(v) for k, v in not_computed.items()})
