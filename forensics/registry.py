"""The model registry of a ledger snapshot as tables, for SQL readers of the ledger.

The promotion semantics live in :mod:`gates.registry` and nowhere else: this module only
feeds it the snapshot's ``model_promotion`` and ``operation`` entries in sequence order and
lays its transitions out as Arrow tables (one row per transition, and one row per period a
version was production). An entry the registry refuses (a stale or out-of-order decision)
changes nothing, exactly as :meth:`Registry.apply` promises, and is listed as a problem
instead of failing the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.dataset as ds

from gates.registry import PRODUCTION, Registry, RegistryError, Transition

from .source import Source

TIMESTAMP = pa.timestamp("us", tz="UTC")

HISTORY_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("ts", TIMESTAMP),
        ("slot", pa.string()),
        ("version", pa.string()),
        ("from_state", pa.string()),
        ("to_state", pa.string()),
        ("cause", pa.string()),
        ("trigger", pa.string()),
        ("operator", pa.string()),
        ("actor", pa.string()),
        ("reason", pa.string()),
    ]
)

PRODUCTION_SCHEMA = pa.schema(
    [
        ("slot", pa.string()),
        ("version", pa.string()),
        ("live_from", TIMESTAMP),
        ("live_until", TIMESTAMP),  # null: still production
        ("promotion_seq", pa.int64()),  # the entry that made the version production
        ("promotion_decision", pa.string()),
        ("promotion_trigger", pa.string()),
        ("promotion_operator", pa.string()),
        ("promotion_actor", pa.string()),
        ("promotion_reason", pa.string()),
        ("ended_by_seq", pa.int64()),
        ("ended_by_decision", pa.string()),
    ]
)

PROBLEM_SCHEMA = pa.schema([("seq", pa.int64()), ("ts", TIMESTAMP), ("table_name", pa.string()), ("message", pa.string())])


PROMOTION_COLUMNS = [
    "seq", "table_name", "ts", "actor", "key_id", "slot", "champion_version", "challenger_version", "decision", "trigger",
    "operator", "reason", "comparison", "significance", "mac",
]


@dataclass(frozen=True)
class RegistryTables:
    history: pa.Table  # HISTORY_SCHEMA, in order
    production: pa.Table  # PRODUCTION_SCHEMA, by slot then live_from
    problems: pa.Table  # PROBLEM_SCHEMA: entries the registry refused
    registry: Registry


def registry_entries(source: Source) -> list[dict[str, Any]]:
    """The snapshot's model_promotion entries and model_registered operations, in sequence
    order: everything the registry state machine reads."""
    # Promotion details can carry whole evaluations (gates' replay inputs): not read here.
    promotions = source.read("model_promotion", columns=PROMOTION_COLUMNS).to_pylist()
    registrations = source.read("operation", filter=ds.field("event_type") == "model_registered").to_pylist()
    return sorted(promotions + registrations, key=lambda e: e["seq"])


def read_registry_tables(source: Source) -> RegistryTables:
    """The snapshot's registry history as tables (what the SQL views ``mrm_production``,
    ``mrm_registry_history`` and ``mrm_registry_problems`` hold)."""
    return registry_tables(registry_entries(source))


def registry_tables(entries: Iterable[Mapping[str, Any]]) -> RegistryTables:
    """Apply ``entries`` (model_promotion and operation rows as dicts with their ``seq``, in
    sequence order) to a fresh :class:`Registry` and return its history as tables."""
    registry = Registry()
    history: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    causes: list[tuple[Transition, Mapping[str, Any]]] = []
    for entry in entries:
        try:
            done = registry.apply(entry)
        except RegistryError as e:
            problems.append({"seq": entry.get("seq"), "ts": entry.get("ts"), "table_name": entry.get("table_name"), "message": str(e)})
            continue
        for t in done:
            causes.append((t, entry))
            history.append(
                {
                    "seq": entry.get("seq"),
                    "ts": t.ts,
                    "slot": t.slot,
                    "version": t.version,
                    "from_state": t.from_state,
                    "to_state": t.to_state,
                    "cause": t.cause,
                    "trigger": entry.get("trigger"),
                    "operator": t.operator,
                    "actor": entry.get("actor"),
                    "reason": t.reason,
                }
            )
    return RegistryTables(
        pa.Table.from_pylist(history, schema=HISTORY_SCHEMA),
        pa.Table.from_pylist(_production_periods(causes), schema=PRODUCTION_SCHEMA),
        pa.Table.from_pylist(problems, schema=PROBLEM_SCHEMA),
        registry,
    )


def _production_periods(causes: list[tuple[Transition, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (slot, version) period in production: from the transition into production
    to the transition out of it."""
    open_periods: dict[tuple[str, str], dict[str, Any]] = {}
    periods: list[dict[str, Any]] = []
    for t, entry in causes:
        key = (t.slot, t.version)
        if t.to_state == PRODUCTION:
            period = {
                "slot": t.slot,
                "version": t.version,
                "live_from": t.ts,
                "live_until": None,
                "promotion_seq": entry.get("seq"),
                "promotion_decision": t.cause,
                "promotion_trigger": entry.get("trigger"),
                "promotion_operator": t.operator,
                "promotion_actor": entry.get("actor"),
                "promotion_reason": t.reason,
                "ended_by_seq": None,
                "ended_by_decision": None,
            }
            open_periods[key] = period
            periods.append(period)
        elif t.from_state == PRODUCTION and key in open_periods:
            period = open_periods.pop(key)
            period.update(live_until=t.ts, ended_by_seq=entry.get("seq"), ended_by_decision=t.cause)
    return sorted(periods, key=lambda p: (p["slot"], p["live_from"], p["promotion_seq"] or 0))
