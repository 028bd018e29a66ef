"""What happened in production, as the ledger records it: predictions, late outcomes, errors.

- **Predictions**: ``model_inference`` entries (slot, version, route, decision, scores,
  latency). ``route`` is champion, challenger or shadow (scored, not served); a null route is a
  served prediction.
- **Late outcomes**: one ``operation`` entry per observed outcome, ``event_type = "outcome"``,
  ``correlation_id`` = the request id, ``details = {"label": ..., "observed_at": ISO 8601,
  "values": {metric: number}, "source": ...}`` (label, values and source optional). Outcomes are
  append-only: a corrected label is a new entry, and the latest (highest seq) per request id is
  the one used; the earlier ones stay as evidence of the correction.
- **What was served**: a guardrail verdict may change or block the model's proposal
  (``model_inference.decision``); the customer received the ``final_output`` of the request's
  last ``guardrail`` entry (:func:`read_served_outputs`).
- **Serving errors**: ``operation`` entries with ``event_type = "inference_error"``,
  ``correlation_id`` = the request id, ``details = {"slot", "version", "error"}``.

Per-request metric values (:func:`request_values`, for online evaluation and SLOs):
``latency_ms`` is the inference's latency; ``accuracy`` is 1 when the outcome's label equals the
served decision (labels are recorded in the decision's vocabulary), else 0; any other name is
read from the outcome's ``values``. A request without the value is left out and counted.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from gates.canonical import utc_text
from gates.ledger_io import LedgerSource, as_snapshot, parse_details
from gates.metrics import metric_value
from ledger import Ledger
from ledger.errors import InputError
from ledger.read import read_table

OUTCOME, INFERENCE_ERROR = "outcome", "inference_error"
LATENCY, ACCURACY = "latency_ms", "accuracy"
INFERENCE_COLUMNS = ["seq", "ts", "request_id", "subject_id", "model_version", "decision", "latency_ms", "scores",
                     "route"]


class MonitorInputError(InputError):
    """Inputs a monitor cannot run on (an empty window, an unknown attribute, ...); nothing written."""



@dataclass(frozen=True)
class Window:
    """A half-open time window [since, until); None is unbounded on that side."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            v = getattr(self, name)
            if v is not None and v.tzinfo is None:
                raise MonitorInputError(f"window {name} {v.isoformat()} has no time zone")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise MonitorInputError(f"window until {self.until.isoformat()} is not after since {self.since.isoformat()}")

    def to_dict(self) -> dict[str, str | None]:
        return {"since": utc_text(self.since) if self.since else None,
                "until": utc_text(self.until) if self.until else None}


# --- recording outcomes and errors ------------------------------------------------------------


def outcome_entry(request_id: str, label: Any = None, *, observed_at: dt.datetime, values: Mapping[str, float] | None = None,
                  source: str | None = None) -> dict[str, Any]:
    """Keyword arguments of the ``operation`` entry recording one late outcome (pure)."""
    if not isinstance(request_id, str) or not request_id:
        raise MonitorInputError("an outcome needs the request id it belongs to")
    if label is None and not values:
        raise MonitorInputError(f"request {request_id}: an outcome needs a label or values")
    if isinstance(label, float) and not math.isfinite(label):
        raise MonitorInputError(f"request {request_id}: label {label!r} is not a finite number")
    if observed_at.tzinfo is None:
        raise MonitorInputError(f"request {request_id}: observed_at has no time zone")
    details: dict[str, Any] = {"observed_at": utc_text(observed_at)}
    if label is not None:
        details["label"] = label
    if values:
        details["values"] = {str(k): metric_value(str(k), v, f"request {request_id}: values.{k}", error=MonitorInputError)
                             for k, v in values.items()}
    if source:
        details["source"] = source
    return {"event_type": OUTCOME, "component": "outcomes", "status": "recorded", "correlation_id": request_id,
            "details": details}


def record_outcome(ledger: Ledger, request_id: str, label: Any = None, *, observed_at: dt.datetime | None = None,
                   values: Mapping[str, float] | None = None, source: str | None = None, durable: bool = False) -> int:
    """Append one late-arriving outcome for ``request_id``; returns its seq."""
    entry = outcome_entry(request_id, label, observed_at=observed_at or ledger.now(),
                          values=values, source=source)
    return ledger.log_operation(**entry, durable=durable)


def record_outcomes(ledger: Ledger, outcomes: Iterable[Mapping[str, Any]], *, source: str | None = None) -> range:
    """Append many outcomes (mappings with request_id, label, observed_at, values), all or
    nothing, durably; returns the range of seqs. A missing observed_at is the ledger's now."""
    now = ledger.now()
    rows = []
    for i, o in enumerate(outcomes):
        observed = o.get("observed_at") or now
        if isinstance(observed, str):
            try:
                observed = dt.datetime.fromisoformat(observed)
            except ValueError:
                raise MonitorInputError(f"outcome {i}: observed_at {observed!r} is not an ISO 8601 timestamp") from None
        try:
            rows.append(outcome_entry(o.get("request_id"), o.get("label"), observed_at=observed,
                                      values=o.get("values"), source=o.get("source") or source))
        except MonitorInputError as e:
            raise MonitorInputError(f"outcome {i}: {e}") from None
    return ledger.append("operation", rows, durable=True)


def record_inference_error(ledger: Ledger, *, request_id: str, slot: str, version: str, error: str,
                           durable: bool = False) -> int:
    """Append a failed prediction (counts toward the error-rate rollback trigger)."""
    return ledger.log_operation(event_type=INFERENCE_ERROR, component="serving", status="error",
                                correlation_id=request_id, details={"slot": slot, "version": version, "error": error},
                                durable=durable)


# --- reading ----------------------------------------------------------------------------------


def read_inferences(source: LedgerSource, slot: str, *, versions: Sequence[str] | None = None,
                    routes: Sequence[str | None] | None = None, window: Window = Window()) -> list[dict[str, Any]]:
    """model_inference entries of ``slot`` (filtered by version, route and time), as dicts with
    ``scores`` as a dict. ``routes`` may include None for entries without a route."""
    t = read_table(as_snapshot(source), "model_inference", INFERENCE_COLUMNS + ["model_slot"])
    mask = pc.equal(t.column("model_slot"), slot)
    if versions is not None:
        mask = pc.and_(mask, pc.is_in(t.column("model_version"), value_set=pa.array(list(versions), pa.string())))
    if routes is not None:
        named = [r for r in routes if r is not None]
        in_routes = pc.fill_null(pc.is_in(t.column("route"), value_set=pa.array(named, pa.string())), False)
        if None in routes:
            in_routes = pc.or_(in_routes, pc.is_null(t.column("route")))
        mask = pc.and_(mask, in_routes)
    if window.since is not None:
        mask = pc.and_(mask, pc.greater_equal(t.column("ts"), pa.scalar(window.since, t.schema.field("ts").type)))
    if window.until is not None:
        mask = pc.and_(mask, pc.less(t.column("ts"), pa.scalar(window.until, t.schema.field("ts").type)))
    rows = t.filter(mask).drop_columns(["model_slot"]).to_pylist()
    for r in rows:
        r["scores"] = dict(r["scores"]) if r["scores"] is not None else {}
    return rows


def read_served_outputs(source: LedgerSource, request_ids: Iterable[str]) -> dict[str, str | None]:
    """What each request's customer was served: the final_output of its last guardrail verdict
    (None when blocked). Requests without a guardrail verdict are absent."""
    t = read_table(as_snapshot(source), "guardrail", ["request_id", "final_output"])
    wanted = pa.array(sorted(set(request_ids)), pa.string())
    served: dict[str, str | None] = {}
    for r in t.filter(pc.is_in(t.column("request_id"), value_set=wanted)).to_pylist():  # in seq order: the last wins
        served[r["request_id"]] = r["final_output"]
    return served


@dataclass(frozen=True)
class Outcome:
    request_id: str
    label: Any
    observed_at: str | None
    values: Mapping[str, float]
    seq: int


def read_outcomes(source: LedgerSource, request_ids: Iterable[str] | None = None) -> dict[str, Outcome]:
    """The latest recorded outcome per request id (a later entry corrects an earlier one)."""
    t = read_table(as_snapshot(source), "operation", ["seq", "event_type", "correlation_id", "details"])
    mask = pc.equal(t.column("event_type"), OUTCOME)
    if request_ids is not None:
        mask = pc.and_(mask, pc.is_in(t.column("correlation_id"), value_set=pa.array(sorted(set(request_ids)), pa.string())))
    out: dict[str, Outcome] = {}
    for r in t.filter(mask).to_pylist():  # in seq order: the last one per request wins
        d = parse_details(r["details"])
        values = {k: float(v) for k, v in (d.get("values") or {}).items() if isinstance(v, (int, float))}
        out[r["correlation_id"]] = Outcome(r["correlation_id"], d.get("label"), d.get("observed_at"), values, r["seq"])
    return out


def count_errors(source: LedgerSource, slot: str, version: str, window: Window = Window()) -> int:
    t = read_table(as_snapshot(source), "operation", ["ts", "event_type", "details"])
    t = t.filter(pc.equal(t.column("event_type"), INFERENCE_ERROR))
    n = 0
    for r in t.to_pylist():
        d = parse_details(r["details"])
        ts = r["ts"]
        if d.get("slot") == slot and d.get("version") == version and (window.since is None or ts >= window.since) \
                and (window.until is None or ts < window.until):
            n += 1
    return n


def request_values(metric: str, inferences: Sequence[Mapping[str, Any]],
                   outcomes: Mapping[str, Outcome]) -> tuple[list[float], int]:
    """Per-request values of ``metric`` (pure), and how many requests lacked one."""
    values: list[float] = []
    missing = 0
    for r in inferences:
        if metric == LATENCY:
            values.append(float(r["latency_ms"]))
            continue
        o = outcomes.get(r["request_id"])
        if o is None:
            missing += 1
        elif metric == ACCURACY and o.label is not None:
            values.append(1.0 if str(o.label) == str(r["decision"]) else 0.0)
        elif metric in o.values:
            values.append(o.values[metric])
        else:
            missing += 1
    return values, missing
