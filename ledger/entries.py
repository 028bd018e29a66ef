"""Entries as JSON, for proofs and exports: exact both ways.

A stored row (as pyarrow returns it) becomes a JSON object that a person can read and any
JSON library can parse; `entry_from_json` turns it back into the normalised row whose
canonical encoding (ledger/encoding.py) is what the ledger MACed and hashed. Floats keep
their exact value (shortest round-trip digits), timestamps their microseconds, maps their
stored (sorted) order, `details` its exact RFC 8785 text.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, Mapping

import pyarrow as pa

from .errors import EntryError
from .normalize import ASSIGNED_FIELDS, RowNormalizer, micros_to_datetime, to_int, to_micros, to_str, _Bad
from .schema import table_spec

_ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


def _to_json(type_: pa.DataType, value: Any) -> Any:
    if value is None:
        return None
    if pa.types.is_timestamp(type_):
        if isinstance(value, int):
            value = micros_to_datetime(value)
        return value.astimezone(dt.timezone.utc).strftime(_ISO)
    if pa.types.is_map(type_):
        return {k: _to_json(type_.item_type, v) for k, v in value}
    if pa.types.is_list(type_):
        return [_to_json(type_.value_type, v) for v in value]
    if pa.types.is_struct(type_):
        return {type_.field(i).name: _to_json(type_.field(i).type, value.get(type_.field(i).name)) for i in range(type_.num_fields)}
    if isinstance(value, bytes):
        return value.hex()
    return value


def entry_to_json(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored (or normalised) row as a JSON-ready object: every column the canonical
    encoding covers, so not the MAC, which only the HMAC key's holder could check."""
    spec = table_spec(table)
    return {c.name: _to_json(c.type, row.get(c.name)) for c in spec.encoded_columns}


@functools.lru_cache(maxsize=None)
def _row_normalizer(table: str) -> RowNormalizer:
    return RowNormalizer(table_spec(table))


def entry_from_json(table: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised row an entry's JSON stands for (without its MAC); refuses anything
    that is not exactly an entry of `table`."""
    spec = table_spec(table)
    if not isinstance(obj, Mapping):
        raise EntryError("an entry is a JSON object", table=table)
    fields = {k: v for k, v in obj.items() if k not in ASSIGNED_FIELDS}
    row = _row_normalizer(table)(fields)
    if row["details"] is not None and row["details"] != obj.get("details"):
        raise EntryError("details are not in RFC 8785 canonical form", table=table, field="details")
    for name, read in (("seq", to_int), ("table_name", to_str), ("key_id", to_str), ("ts", to_micros)):
        try:
            row[name] = read(obj.get(name))
        except _Bad as e:
            raise EntryError(e.message, table=table, field=name) from None
    if row["table_name"] != table:
        raise EntryError(f"entry says table {row['table_name']!r}", table=table, field="table_name")
    return row
