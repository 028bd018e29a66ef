"""Reading the gate's state back from a ledger: the I/O edge the pure core is fed from.

The registry is not stored anywhere: it is derived, every time, from the ledger's
``model_promotion`` entries and its registry ``operation`` entries (``model_registered``,
``traffic_split``), in sequence order. What the ledger does not hold did not happen.

Also here: the lock that serialises registry writers (:func:`registry_lock`), the recorded
evaluation of a version (:func:`recorded_evaluation`), and the two errors every caller
distinguishes — a change that is not a valid transition now (:class:`TransitionRefused`, a
usage error) and a ledger whose recorded history is itself not a valid sequence
(:class:`InconsistentHistory`, an integrity failure).
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from gates.evaluation import Evaluation, EvaluationError, evaluation_from_mapping
from gates.registry import Registry, RegistryError
from ledger.read import LedgerSnapshot, as_snapshot, read_table

# Operation event types the registry and the gate write. Other components must not reuse them.
MODEL_REGISTERED = "model_registered"
TRAFFIC_SPLIT = "traffic_split"
REGISTRY_EVENTS = (MODEL_REGISTERED, TRAFFIC_SPLIT)

# Registry writers serialise on an exclusive flock of this file, so that "read the registry,
# decide, append the entry" is atomic across processes. It cannot be the ledger's own LOCK: a
# reader takes a shared flock of LOCK, which would block behind our own exclusive one.
REGISTRY_LOCK_NAME = "REGISTRY.LOCK"

LedgerSource = str | os.PathLike[str] | LedgerSnapshot


class TransitionRefused(ValueError):
    """The requested change is not a valid registry transition now; nothing was written."""


class EntryNotFound(LookupError):
    """No entry of the kind asked for at that sequence number."""


class InconsistentHistory(Exception):
    """The ledger's recorded registry history is not a valid sequence of transitions."""

    def __init__(self, seq: int | None, problem: str):
        self.seq = seq
        super().__init__(f"the ledger's registry history is inconsistent at seq {seq}: {problem}")


# --- locking --------------------------------------------------------------------------------


@contextmanager
def registry_lock(ledger_root: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the registry writers' lock of the ledger at ``ledger_root``."""
    path = Path(ledger_root) / REGISTRY_LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


# --- rows -----------------------------------------------------------------------------------


def parse_details(text: str | None) -> dict[str, Any]:
    """The ``details`` column (RFC 8785 text) as a dict; an absent value is an empty dict."""
    if text is None:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def promotion_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A model_promotion row as read back, with the map column as a dict and details parsed."""
    out = dict(row)
    out["thresholds"] = dict(row["thresholds"]) if row.get("thresholds") is not None else None
    out["details"] = parse_details(row.get("details"))
    return out


def _operations(snap: LedgerSnapshot, event_types: Sequence[str]) -> list[dict[str, Any]]:
    ops = read_table(snap, "operation", ["seq", "ts", "actor", "event_type", "component", "status",
                                         "correlation_id", "details"])
    ops = ops.filter(pc.is_in(ops.column("event_type"), value_set=pa.array(list(event_types), pa.string())))
    rows = ops.to_pylist()
    for r in rows:
        r["table_name"] = "operation"
    return rows


def registry_events(source: LedgerSource) -> list[dict[str, Any]]:
    """Every entry the registry is derived from, in sequence order: model_promotion entries
    and the registry's operation entries. ``details`` stays JSON text, as stored."""
    snap = as_snapshot(source)
    promotions = read_table(snap, "model_promotion").drop_columns(["mac"]).to_pylist()
    events = promotions + _operations(snap, REGISTRY_EVENTS)
    return sorted(events, key=lambda e: e["seq"])


# --- the registry as the ledger records it ----------------------------------------------------


@dataclass(frozen=True)
class TrafficSplit:
    """The challenger currently taking live traffic in a slot, as a traffic_split entry set it."""

    slot: str
    challenger_version: str
    mode: str
    challenger_share: float
    experiment: str
    seq: int
    ts: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"challenger_version": self.challenger_version, "mode": self.mode,
                "challenger_share": self.challenger_share, "experiment": self.experiment, "seq": self.seq,
                "ts": self.ts.isoformat()}


@dataclass
class RegistryView:
    """The registry derived from one snapshot of a ledger, with the entries behind it."""

    registry: Registry
    events: list[dict[str, Any]]
    last_seq: int  # the ledger's last sequence number in the snapshot
    ledger_id: str

    def entry(self, seq: int) -> dict[str, Any]:
        for e in self.events:
            if e["seq"] == seq:
                return e
        raise KeyError(seq)

    def promotions(self, slot: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["table_name"] == "model_promotion" and (slot is None or e["slot"] == slot)]

    def registration(self, slot: str, version: str) -> dict[str, Any] | None:
        for e in self.events:
            if e["table_name"] == "operation" and e["event_type"] == MODEL_REGISTERED:
                d = parse_details(e["details"])
                if d.get("slot") == slot and d.get("version") == version:
                    return {**e, "details": d}
        return None

    def live_entry(self, slot: str) -> dict[str, Any] | None:
        """The model_promotion entry that made the current production version of ``slot`` live."""
        live = self.registry.production(slot)
        if live is None:
            return None
        made_live = [t for t in self.registry.history(slot) if t.version == live and t.to_state == "production"]
        return self.entry(made_live[-1].seq) if made_live and made_live[-1].seq is not None else None

    def pending_entry(self, slot: str, version: str) -> dict[str, Any] | None:
        """The pending_approval entry that put ``version`` up for a human sign-off."""
        found = [e for e in self.promotions(slot)
                 if e["decision"] == "pending_approval" and e["challenger_version"] == version]
        return found[-1] if found else None

    def traffic(self, slot: str) -> TrafficSplit | None:
        """The live traffic split of ``slot``: the latest traffic_split entry, unless it was
        switched off or its challenger has since been decided (promoted, rejected, ...)."""
        latest = None
        for e in self.events:
            if e["table_name"] == "operation" and e["event_type"] == TRAFFIC_SPLIT:
                d = parse_details(e["details"])
                if d.get("slot") == slot:
                    latest = (e, d)
        if latest is None:
            return None
        e, d = latest
        if d.get("mode") == "off":
            return None
        state = self.registry.states(slot).get(d.get("challenger_version"))
        if state not in ("candidate", "pending_approval"):
            return None
        return TrafficSplit(slot, d["challenger_version"], d["mode"], float(d["challenger_share"]),
                            d.get("experiment", ""), e["seq"], e["ts"])


def load_registry(source: LedgerSource) -> RegistryView:
    """Derive the registry from the ledger. A recorded entry that is not a valid transition
    raises :class:`InconsistentHistory` naming its seq: the history is evidence, and a history
    that contradicts itself is reported, never silently skipped."""
    snap = as_snapshot(source)
    events = registry_events(snap)
    registry = Registry()
    for e in events:
        try:
            registry.apply(e)
        except RegistryError as err:
            raise InconsistentHistory(e["seq"], str(err)) from None
    return RegistryView(registry, events, snap.last_seq, snap.ledger_id)


def promotion_entry(source: LedgerSource, seq: int) -> dict[str, Any]:
    """The model_promotion entry with sequence number ``seq`` (MAC included), read back."""
    snap = as_snapshot(source)
    table = read_table(snap, "model_promotion")
    found = table.filter(pc.equal(table.column("seq"), seq)).to_pylist()
    if not found:
        if not 0 <= seq <= snap.last_seq:
            raise EntryNotFound(f"seq {seq}: the ledger's entries run from 0 to {snap.last_seq}")
        raise EntryNotFound(f"seq {seq} is not a model_promotion entry")
    return promotion_row(found[0])


def recorded_evaluation(view: RegistryView, slot: str, version: str) -> Evaluation | None:
    """The most recent evaluation of ``version`` that a gate decision recorded inline (as the
    challenger or the champion), checked against its recorded digest; None if there is none."""
    for e in reversed(view.promotions(slot)):
        rec = parse_details(e["details"]).get("replay") if isinstance(e["details"], str) else e["details"].get("replay")
        if not isinstance(rec, Mapping) or rec.get("kind") != "gate":
            continue
        for role in ("challenger", "champion"):
            data = rec.get(role)
            if isinstance(data, Mapping) and data.get("version") == version:
                try:
                    evaluation = evaluation_from_mapping(data, f"seq {e['seq']} recorded {role} evaluation")
                except EvaluationError:
                    continue
                if evaluation.digest == rec.get(f"{role}_digest"):
                    return evaluation
    return None
