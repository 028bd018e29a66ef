"""Query results as an aligned table, CSV, JSON or Parquet, streamed batch by batch.

Values are shown as the ledger means them: timestamps in UTC ISO 8601 with a Z, maps and
structs as JSON objects, binary as hex. CSV holds nested values as JSON text (as `mrm ingest`
reads them); JSON is one array of objects, JSON columns embedded as JSON.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
from typing import IO, Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FORMATS = ("table", "csv", "json", "parquet")
_CELL_WIDTH = 60


def plain(value: Any) -> Any:
    """A value from Arrow as plain JSON-able Python."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(x, tuple) and len(x) == 2 for x in value):  # an Arrow map
            return {str(k): plain(v) for k, v in value}
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, pa.MonthDayNano):
        return f"{value.months} months {value.days} days {value.nanoseconds} ns"
    return value


def cell(value: Any) -> str:
    """One value as text in a table or CSV cell."""
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _rows(batches: Iterable[pa.RecordBatch]) -> Iterator[dict[str, Any]]:
    for batch in batches:
        yield from batch.to_pylist()


# ---------------------------------------------------------------------- table


def write_table(columns: list[str], batches: Iterable[pa.RecordBatch], out: IO[str], *, max_rows: int) -> tuple[int, bool]:
    """An aligned table of at most `max_rows` rows; returns (rows shown, whether more exist)."""
    rows: list[list[str]] = []
    more = False
    for row in _rows(batches):
        if len(rows) >= max_rows:
            more = True
            break
        rows.append([_clip(cell(row[c])) for c in columns])
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in rows:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")
    return len(rows), more


def _clip(text: str) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 3] + "..."


# ---------------------------------------------------------------------- csv / json


def write_csv(columns: list[str], batches: Iterable[pa.RecordBatch], out: IO[str]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    n = 0
    for batch in batches:
        flat = [_csv_column(batch.column(i)) for i in range(batch.num_columns)]
        for i in range(batch.num_rows):
            writer.writerow([col[i] for col in flat])
        n += batch.num_rows
    return n


def _csv_column(array: pa.Array) -> list[str]:
    t = array.type
    if pa.types.is_timestamp(t) and t.tz is not None:
        text = pc.strftime(array.cast(pa.timestamp("us", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")
        return ["" if v is None else v for v in text.to_pylist()]
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return ["" if v is None else v for v in array.to_pylist()]
    return [cell(v) for v in array.to_pylist()]


def write_json(columns: list[str], types: list[str], batches: Iterable[pa.RecordBatch], out: IO[str]) -> int:
    json_columns = {c for c, t in zip(columns, types) if t.upper() == "JSON"}
    out.write("[")
    n = 0
    for row in _rows(batches):
        doc = {}
        for c in columns:
            v = row[c]
            doc[c] = json.loads(v) if c in json_columns and isinstance(v, str) else plain(v)
        out.write(("\n" if n == 0 else ",\n") + json.dumps(doc, ensure_ascii=False, default=str))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n


# ---------------------------------------------------------------------- parquet


def write_parquet(schema: pa.Schema, batches: Iterable[pa.RecordBatch], out: IO[bytes]) -> int:
    n = 0
    with pq.ParquetWriter(pa.PythonFile(out, mode="w"), schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)
            n += batch.num_rows
    return n
