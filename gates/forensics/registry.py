"""The registry history of a ledger snapshot, derived by gates.registry (never re-implemented)."""

from __future__ import annotations

from typing import Any

import pyarrow.dataset as ds

from gates.sql import RegistryTables, registry_tables

from .source import Source


PROMOTION_COLUMNS = [
    "seq", "table_name", "ts", "actor", "key_id", "slot", "champion_version", "challenger_version", "decision", "trigger",
    "operator", "reason", "comparison", "significance", "mac",
]


def registry_entries(source: Source) -> list[dict[str, Any]]:
    """The snapshot's model_promotion entries and model_registered operations, in sequence
    order: everything the registry state machine reads."""
    # Promotion details can carry whole evaluations (gates' replay inputs): not read here.
    promotions = source.read("model_promotion", columns=PROMOTION_COLUMNS).to_pylist()
    registrations = source.read("operation", filter=ds.field("event_type") == "model_registered").to_pylist()
    return sorted(promotions + registrations, key=lambda e: e["seq"])


def load_registry(source: Source) -> RegistryTables:
    return registry_tables(registry_entries(source))
