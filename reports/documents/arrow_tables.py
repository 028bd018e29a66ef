"""Query results (Arrow tables) as report tables: typed cells, bounded rows, and the entries
they name.

A regulation pack's queries return whatever columns their authors chose, so the column kinds
are read from the Arrow types and, for ambiguous text and integers, from the column names the
ledger's views use (``seq`` and ``*_seq`` are entry numbers, ``*_id`` and versions are
identifiers, digests and MACs are digests). Values are never rounded. Nested values (lists,
maps, structs) are shown as compact JSON and cut at :data:`MAX_CELL_CHARS` characters, with
the cut said in the cell; the attachment holds them whole.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa

from gates.canonical import utc_text

from ..model import CellValue, Column, Table, ValueKind

__all__ = ["MAX_CELL_CHARS", "entry_numbers", "report_table"]

MAX_CELL_CHARS = 240
_DIGEST_WORDS = ("digest", "mac", "sha256", "hash", "root")
_IDENTIFIER_NAMES = {"slot", "version", "gate", "verdict", "decision", "route", "operator", "actor", "trigger", "kind",
                     "table_name", "key_id", "event_type", "component", "status", "method"}


@dataclass(frozen=True)
class _ColumnPlan:
    name: str
    arrow_type: pa.DataType
    column: Column

    def cell(self, value: Any) -> CellValue:
        return _cell(value, self.arrow_type, self.column.kind)


def report_table(table: pa.Table, *, caption: str, limit: int, total_rows: int | None = None,
                 source_attachment: str | None = None, empty_text: str = "No rows.") -> Table:
    """The first ``limit`` rows of ``table`` as a report table. ``total_rows`` is how many
    rows the query returned in all (default: the table's); the attachment, when named, holds
    every row of ``table``."""
    plans = [_plan(f) for f in table.schema]
    shown = table.slice(0, max(0, limit)).to_pylist()
    rows = tuple(tuple(p.cell(row[p.name]) for p in plans) for row in shown)
    total = table.num_rows if total_rows is None else total_rows
    held = table.num_rows if source_attachment is not None and table.num_rows < total else None
    return Table(tuple(p.column for p in plans), rows, caption=caption, source_attachment=source_attachment,
                 total_rows=total, empty_text=empty_text, source_rows=held)


def entry_numbers(table: pa.Table, limit: int) -> list[int]:
    """Sequence numbers the first ``limit`` rows name (columns ``seq`` and ``*_seq``): the
    entries a table shows, to be proven against the checkpoint."""
    out: list[int] = []
    head = table.slice(0, max(0, limit))
    for f in head.schema:
        if _is_entry_number(f):
            out += [v for v in head.column(f.name).to_pylist() if isinstance(v, int) and v >= 0]
    return out


# --------------------------------------------------------------------------- columns


def _is_entry_number(f: pa.Field) -> bool:
    return pa.types.is_integer(f.type) and (f.name == "seq" or f.name.endswith("_seq"))


def _plan(f: pa.Field) -> _ColumnPlan:
    t, name = f.type, f.name.lower()
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        kind, weight = ValueKind.TIMESTAMP, 1.7
        if pa.types.is_timestamp(t) and t.tz is None:
            kind = ValueKind.TEXT  # a time without a zone is shown as written, never guessed to be UTC
    elif pa.types.is_boolean(t):
        kind, weight = ValueKind.BOOLEAN, 0.9
    elif pa.types.is_integer(t):
        kind, weight = (ValueKind.IDENTIFIER, 1.0) if _is_entry_number(f) else (ValueKind.NUMBER, 1.0)
    elif pa.types.is_floating(t) or pa.types.is_decimal(t):
        kind, weight = ValueKind.NUMBER, 1.1
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        kind, weight = ValueKind.DIGEST, 3.0
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        if any(w in name for w in _DIGEST_WORDS):
            kind, weight = ValueKind.DIGEST, 3.0
        elif name.endswith("_id") or name in _IDENTIFIER_NAMES or name.endswith(("_version", "_slot", "_output")):
            kind, weight = ValueKind.IDENTIFIER, 2.0 if name.endswith("_id") else 1.5
        else:
            kind, weight = ValueKind.TEXT, 2.4
    else:  # lists, maps, structs, intervals: their text form
        kind, weight = ValueKind.TEXT, 2.8
    # A column is at least as wide as its name needs (query column names are long, like
    # production_since_seq, and a header broken mid-word reads badly), within reason.
    weight = max(weight, min(len(f.name) / 9, 2.6))
    return _ColumnPlan(f.name, t, Column(f.name, kind, weight=weight))


# --------------------------------------------------------------------------- cells


def _cell(value: Any, t: pa.DataType, kind: ValueKind) -> CellValue:
    if value is None:
        return None
    if kind is ValueKind.TEXT and not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return _cut(_text_form(value, t))
    if kind is ValueKind.NUMBER and isinstance(value, float) and not math.isfinite(value):
        return value  # shown as NaN / ±∞, never as a number it is not
    if isinstance(value, str):
        return _cut(value) if kind is ValueKind.TEXT else value
    return value


def _text_form(value: Any, t: pa.DataType) -> str:
    if isinstance(value, dt.datetime):  # a timestamp without a zone
        return value.isoformat(sep=" ") + " (no time zone)"
    if pa.types.is_interval(t):
        return _iso_duration(value)
    return json.dumps(_plain(value, t), ensure_ascii=False, separators=(", ", ": "), default=_json_default)


def _plain(value: Any, t: pa.DataType) -> Any:
    """A nested Arrow value as JSON-ready data: maps become objects (Arrow gives them as
    key-value pairs), timestamps ISO text."""
    if value is None:
        return None
    if pa.types.is_map(t):
        return {str(k): _plain(v, t.item_type) for k, v in value}
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return [_plain(v, t.value_type) for v in value]
    if pa.types.is_struct(t):
        return {t.field(i).name: _plain(value.get(t.field(i).name), t.field(i).type) for i in range(t.num_fields)}
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return utc_text(value) if value.tzinfo else value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _iso_duration(value: Any) -> str:
    months, days, nanos = value.months, value.days, value.nanoseconds
    date = (f"{months}M" if months else "") + (f"{days}D" if days else "")
    time = f"T{nanos / 1e9:g}S" if nanos or not date else ""
    return f"P{date}{time}"


def _cut(text: str) -> str:
    if len(text) <= MAX_CELL_CHARS:
        return text
    return text[:MAX_CELL_CHARS] + f" … (cut: {len(text) - MAX_CELL_CHARS:,} more characters in the attachment)"

