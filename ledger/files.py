"""Reading a batch of entries from JSON Lines, CSV or Parquet (for `mrm ingest`).

Errors name the file and the line (JSON Lines, CSV) or row (Parquet) at fault."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import EntryError
from .jsontext import JSONTextError, loads_strict
from .schema import table_spec

FORMATS = ("jsonl", "csv", "parquet")


def guess_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"jsonl": "jsonl", "ndjson": "jsonl", "json": "jsonl", "csv": "csv", "parquet": "parquet", "pq": "parquet"}.get(suffix, "")


@dataclass
class Batch:
    rows: list[dict] | pa.Table
    lines: list[int] | None  # line number of each row in the file, where the format has lines

    def where(self, path: Path, row: int | None) -> str:
        if row is None:
            return str(path)
        if self.lines is not None and 0 <= row < len(self.lines):
            return f"{path}:{self.lines[row]}"
        return f"{path} row {row}"


def read_jsonl(path: Path) -> Batch:
    rows, lines = [], []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                row = loads_strict(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise EntryError(f"{path}:{number}: not valid UTF-8 (byte {e.start})") from None
            except JSONTextError as e:
                raise EntryError(f"{path}:{number}: {e}") from None
            if not isinstance(row, dict):
                raise EntryError(f"{path}:{number}: each line must be a JSON object")
            rows.append(row)
            lines.append(number)
    return Batch(rows, lines)


def _csv_value(type_: pa.DataType, text: str) -> Any:
    if text == "":
        return None
    if pa.types.is_int64(type_):
        return int(text)
    if pa.types.is_float64(type_):
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{text} is not allowed: numbers must be finite")
        return value
    if pa.types.is_boolean(type_):
        if text.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    if pa.types.is_list(type_) or pa.types.is_map(type_) or pa.types.is_struct(type_):
        return loads_strict(text)
    return text  # strings, ISO 8601 timestamps, JSON details text


def read_csv(path: Path, table: str) -> Batch:
    spec = table_spec(table)
    types = {c.name: c.type for c in spec.columns}
    rows, lines = [], []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for row in reader:
                out = {}
                for name, text in row.items():
                    if name is None:
                        raise EntryError(f"{path}:{reader.line_num}: more cells than header columns")
                    if name not in types:
                        out[name] = text  # refused, with its name, by the normaliser
                        continue
                    try:
                        out[name] = _csv_value(types[name], text or "")
                    except ValueError as e:
                        raise EntryError(f"{path}:{reader.line_num}: field {name!r}: {e}") from None
                rows.append(out)
                lines.append(reader.line_num)
    except UnicodeDecodeError as e:
        raise EntryError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    return Batch(rows, lines)


def read_batch(path: str | Path, table: str, fmt: str | None = None) -> Batch:
    path = Path(path)
    fmt = fmt or guess_format(path)
    if fmt == "jsonl":
        return read_jsonl(path)
    if fmt == "csv":
        return read_csv(path, table)
    if fmt == "parquet":
        try:
            return Batch(pq.read_table(path), None)
        except (pa.ArrowInvalid, OSError) as e:
            raise EntryError(f"{path}: not a readable Parquet file ({e})") from None
    raise EntryError(f"{path}: cannot tell the format; use --format {'|'.join(FORMATS)}")

