"""Segment fairness of the recommender: every age band x region cell against the rest of its
age band, with the gates' fairness metrics (``gates.monitors``).

Which outcome counts: *favourable* means an investment product was served
(``world.favourable``: anything but the plain time deposit, and not blocked). Only customers
the suitability rule allows an investment product at all enter the comparison
(``models.fairness_eligible``), and each cell is compared with the same age band in the other
regions, so the legitimate suitability limits (age caps, unconfirmed profiles, stable-type
investors) are not counted as unfairness.

When a finding becomes an alert: 48 cells are compared every week, and in a cell of 30-50
customers a ratio outside [0.8, 1.25] is common noise. A finding is alerted only when it is a
breach *and* the whole confidence interval (``monitors.confidence`` of the policy) lies outside
the fair range: the gates' breach rule ``whole_interval`` (``FairnessResult.alerts_under``),
recorded with the run so the reports apply the same rule. Every cell's result, alerted or
not, goes into the run's ``monitor_run`` entry, so what the monitor saw and ignored is
evidence too.

Two users: the weekly production monitor (:func:`compute_segment_fairness`, reading the served
decisions from the ledger) and the MRM committee's sign-off review of a challenger
(:func:`holdout_segment_breaches`, on the gate's holdout).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from gates.alerts import Alert
from gates.ledger_io import LedgerSource, as_snapshot, load_registry
from gates.monitoring import SERVED, MonitorReport
from gates.monitors import WHOLE_INTERVAL, FairnessResult, disparate_impact, statistical_parity_difference
from gates.observations import Window
from gates.policy import MonitorRules
from ledger.read import LedgerSnapshot
from ledger.schema import TABLES, TIMESTAMP

from .models import fairness_eligible
from .serving import SHADOW_ROUTE
from .suitability import check_suitability_batch
from .world import AGE_BANDS, PRODUCT_INDEX, REGIONS, Customers, favourable

ATTRIBUTE = "age_band x region"
FAVOURABLE = "an investment product was served (anything but the time deposit; blocked is unfavourable)"
BREACH_RULE = WHOLE_INTERVAL  # 48 segments a week: see "When a finding becomes an alert" above
EOD_NOT_COMPUTED = ("the recorded outcomes say which product a customer took, not who was due an investment product, "
                    "so there is no truly positive group to compare")


@dataclass(frozen=True)
class SegmentFinding:
    age_band: str
    region: str
    result: FairnessResult

    @property
    def alerted(self) -> bool:
        return self.result.alerts_under(BREACH_RULE)

    def to_dict(self) -> dict[str, Any]:
        """The gates' record of the result (unprivileged = the segment, privileged = the rest
        of its age band), with the segment it is about and whether it alerted."""
        return {**self.result.to_dict(), "segment": f"age {self.age_band} x {self.region}", "age_band": self.age_band,
                "region": self.region, "alerted": self.alerted}

    def alert(self, slot: str, version: str) -> Alert:
        base = self.result.alert(slot, version, BREACH_RULE)
        assert base is not None, "only a breach becomes an alert"
        where = f"age {self.age_band} in {self.region} vs the same age band elsewhere"
        return replace(base, summary=f"{where}: {base.summary}",
                       measurements={**base.measurements, "age_band": self.age_band, "region": self.region})


def segment_findings(age_band: np.ndarray, region: np.ndarray, favourable_outcome: np.ndarray,
                     rules: MonitorRules) -> list[SegmentFinding]:
    """DI and SPD of every age band x region cell against the rest of its band (the arrays
    hold eligible customers only)."""
    out: list[SegmentFinding] = []
    for b, band in enumerate(AGE_BANDS):
        in_band = age_band == b
        fav = favourable_outcome[in_band]
        for r, name in enumerate(REGIONS):
            groups = np.where(region[in_band] == r, "segment", "reference")
            for metric in (disparate_impact, statistical_parity_difference):
                result = metric(fav, groups, unprivileged="segment", privileged="reference", rules=rules)
                out.append(SegmentFinding(band, name, result))
    return out


def subjects_table(customers: Customers) -> pa.Table:
    """What the bank holds about each customer for fairness monitoring (the ledger has
    pseudonymous ids only): age band, region, gender, income tier and suitability eligibility."""
    return pa.table({
        "subject_id": pa.array(customers.subject_ids(), pa.string()),
        "age_band": pa.array(np.array(AGE_BANDS, dtype=object)[customers.age_band], pa.string()),
        "region": pa.array(np.array(REGIONS, dtype=object)[customers.region], pa.string()),
        "gender": pa.array(np.where(customers.gender == 1, "M", "F").astype(object), pa.string()),
        "income_tier": pa.array(customers.income_tier.astype(np.int64)),
        "investment_eligible": pa.array(fairness_eligible(customers)),
    })


def _read(snap: LedgerSnapshot, table: str, columns: list[str], where: ds.Expression,
          mask: Callable[[pa.Table], pa.ChunkedArray]) -> pa.Table:
    """The rows of ``table`` matching a filter: sealed segments through a Parquet dataset with
    ``where`` (row groups whose statistics rule it out are skipped, so a weekly run does not
    decode the whole year), entries not sealed yet with ``mask``, the same filter as compute
    functions (the write-ahead log's buffers are not aligned for Arrow's query engine)."""
    spec = TABLES[table].arrow_schema
    schema = pa.schema([spec.field(c) for c in columns])
    parts = []
    if snap.files[table]:
        data = ds.dataset([str(f) for f in snap.files[table]], format="parquet")
        parts.append(data.to_table(columns=columns, filter=where).cast(schema))
    if table in snap.unsealed:
        unsealed = snap.unsealed[table]
        parts.append(unsealed.select(columns).filter(mask(unsealed)))
    return pa.concat_tables(parts) if parts else schema.empty_table()


_SERVED_ROUTE = ds.field("route").is_null() | (ds.field("route") != SHADOW_ROUTE)


def _served(source: LedgerSource, slot: str, version: str, window: Window) -> pa.Table:
    """(subject_id, final_output) of every request ``version`` served in ``window``."""
    snap = as_snapshot(source)
    since = pa.scalar(window.since, TIMESTAMP) if window.since is not None else None
    until = pa.scalar(window.until, TIMESTAMP) if window.until is not None else None
    # served only: a shadow prediction was never shown to the customer
    where = (ds.field("model_slot") == slot) & (ds.field("model_version") == version) & _SERVED_ROUTE
    if since is not None:
        where &= ds.field("ts") >= since
    if until is not None:
        where &= ds.field("ts") < until

    def in_window(t: pa.Table) -> pa.ChunkedArray:
        m = pc.and_(pc.equal(t["model_slot"], slot), pc.equal(t["model_version"], version))
        m = pc.and_(m, pc.invert(pc.fill_null(pc.equal(t["route"], SHADOW_ROUTE), False)))
        if since is not None:
            m = pc.and_(m, pc.greater_equal(t["ts"], since))
        if until is not None:
            m = pc.and_(m, pc.less(t["ts"], until))
        return m

    inf = _read(snap, "model_inference", ["request_id", "subject_id", "route"], where, in_window)
    request_ids = inf.column("request_id").combine_chunks()
    guard = _read(snap, "guardrail", ["request_id", "final_output"], ds.field("request_id").isin(request_ids),
                  lambda t: pc.is_in(t["request_id"], value_set=request_ids))
    at = pc.index_in(request_ids, value_set=guard.column("request_id").combine_chunks())
    return pa.table({"subject_id": inf.column("subject_id").combine_chunks(),
                     "final_output": guard.column("final_output").take(at)})


def compute_segment_fairness(source: LedgerSource, slot: str, rules: MonitorRules, subjects: pa.Table, *,
                             window: Window, version: str | None = None) -> MonitorReport:
    """The weekly fairness run over the served recommendations of ``slot`` in ``window``: the
    version production at the window's end unless one is named. Returns the report for
    ``gates.monitoring.record_monitor_report``; alerts as the module docstring says."""
    snap = as_snapshot(source)
    if version is None:
        if window.until is None:
            raise ValueError("name the version or give the window an end")
        version = load_registry(snap).registry.champion_at(slot, window.until)
        if version is None:
            raise ValueError(f"slot {slot} had no production version at {window.until.isoformat()}")
    served = _served(snap, slot, version, window)
    at = pc.index_in(served.column("subject_id"), value_set=subjects.column("subject_id").combine_chunks())
    matched = pc.is_valid(at)
    unmatched = len(served) - pc.sum(matched).as_py() if len(served) else 0
    known = subjects.take(at.filter(matched))
    eligible = known.column("investment_eligible").to_numpy(zero_copy_only=False).astype(bool)
    final = served.column("final_output").filter(matched).to_pylist()
    product = np.array([PRODUCT_INDEX[p] if p is not None else -1 for p in final], dtype=np.int64)[eligible]
    band = np.array([AGE_BANDS.index(b) for b in known.column("age_band").to_pylist()], dtype=np.int64)[eligible]
    region = np.array([REGIONS.index(r) for r in known.column("region").to_pylist()], dtype=np.int64)[eligible]
    findings = segment_findings(band, region, favourable(product), rules)
    alerts = tuple(f.alert(slot, version) for f in findings if f.alerted)
    inputs = {"attribute": ATTRIBUTE, "favourable": FAVOURABLE, "predictions": len(served),
              "unmatched_subjects": unmatched, "eligible": int(eligible.sum()), "segments": len(AGE_BANDS) * len(REGIONS),
              "basis": SERVED, "breach_rule": BREACH_RULE, "confidence": rules.confidence,
              "not_computed": {"equal_opportunity_difference": EOD_NOT_COMPUTED}}
    return MonitorReport("fairness", slot, version, window, tuple(f.to_dict() for f in findings), alerts, inputs)


def holdout_segment_breaches(customers: Customers, proba: np.ndarray, rules: MonitorRules) -> list[SegmentFinding]:
    """The alerted findings of a model on a holdout: its proposals put through the suitability
    rule, then the same segment comparison as the production monitor."""
    proposed = np.argmax(proba, axis=1)
    served = check_suitability_batch(customers, proposed, proba).final
    ok = fairness_eligible(customers)
    findings = segment_findings(customers.age_band[ok].astype(np.int64), customers.region[ok].astype(np.int64),
                                favourable(served[ok]), rules)
    return [f for f in findings if f.alerted]


def window_ending(until: dt.datetime, days: int = 7) -> Window:
    """The ``days`` before ``until``: what a weekly run looks at."""
    return Window(until - dt.timedelta(days=days), until)


__all__ = ["SegmentFinding", "compute_segment_fairness", "holdout_segment_breaches", "segment_findings",
           "subjects_table", "window_ending"]
