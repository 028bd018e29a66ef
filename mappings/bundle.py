"""The evidence bundle: one directory an examiner can read without the ledger.

    OUT/
      summary.json                 the PackResult (statuses, explanations, SQL, counts, what it rests on)
      pack.toml                    the exact pack text that judged the ledger (its SHA-256 is in summary.json)
      checkpoint.note              the signed checkpoint the answers rest on, when there is one
      evidence/<requirement>/<item>/
        query.sql                  the query as run, with the period it ran for
        scope.sql                  the scope query, when the item has one
        scope.parquet              the first rows of the scope (the population judged; scope_count says how many)
        rows.parquet               the first rows of its result (row_count says how many there were)
        offending.parquet          the rows that fail (row checks), first ones
        result.json                status, explanation, rule, counts, columns

The bundle is written into a new directory next to its destination and renamed into place
when complete, so a reader never sees half a bundle. It is refused inside the ledger.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import MappingError
from .result import EvidenceResult, PackResult

__all__ = ["PARQUET_FILES", "evidence_parquet", "evidence_tables", "write_bundle"]


def write_bundle(result: PackResult, out: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``result`` as an evidence bundle directory at ``out``; returns its path."""
    target = Path(out)
    ledger_root = Path(os.path.realpath(result.rests_on.path))
    real = Path(os.path.realpath(target))
    if real == ledger_root or ledger_root in real.parents:
        raise MappingError(f"{target} is inside the ledger at {ledger_root}; write the bundle outside it")
    if target.exists() and not overwrite:
        raise MappingError(f"{target} already exists; choose a new directory (or overwrite)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.writing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _write(result, staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _write(result: PackResult, root: Path) -> None:
    summary = result.to_dict()
    pack_file = Path(result.pack.file)
    if pack_file.is_file():
        shutil.copyfile(pack_file, root / "pack.toml")
        summary["pack"]["bundled_as"] = "pack.toml"
    if result.rests_on.checkpoint is not None:
        (root / "checkpoint.note").write_bytes(result.rests_on.checkpoint.note)
        summary["rests_on"]["checkpoint"]["bundled_as"] = "checkpoint.note"
    for req, req_doc in zip(result.requirements, summary["requirements"]):
        for ev, ev_doc in zip(req.evidence, req_doc["evidence"]):
            directory = root / "evidence" / req.id / ev.id
            directory.mkdir(parents=True)
            ev_doc["files"] = _write_evidence(result, ev, ev_doc, directory, root)
    _dump(summary, root / "summary.json")


def _write_evidence(result: PackResult, ev: EvidenceResult, doc: dict[str, Any], directory: Path, root: Path) -> dict[str, str]:
    params = ", ".join(f"${k} = '{v}'" for k, v in doc["parameters"].items()) or "(none)"
    header = (f"-- pack {result.pack.id} {result.pack.pack_version}, evidence {ev.id} ({doc['pack_location']})\n"
              f"-- parameters: {params}\n-- expectation: {doc['rule']}\n-- rests on: {result.rests_on.line}\n")
    files = {"query": "query.sql", "result": "result.json"}
    (directory / "query.sql").write_text(header + ev.sql.rstrip() + "\n", encoding="utf-8")
    if ev.item.scope is not None:
        (directory / "scope.sql").write_text(header + ev.item.scope.sql.rstrip() + "\n", encoding="utf-8")
        files["scope"] = "scope.sql"
    notes = []
    for part, table in evidence_tables(ev).items():
        data, table_notes = evidence_parquet(table)
        (directory / PARQUET_FILES[part]).write_bytes(data)
        files[part] = PARQUET_FILES[part]
        notes += table_notes
    if notes:
        doc["parquet_notes"] = sorted(set(notes))
    _dump(doc, directory / "result.json")
    return {k: str((directory / v).relative_to(root)) for k, v in files.items()}


# The query results of one evidence item, by part, and the file each is written to.
PARQUET_FILES = {"rows": "rows.parquet", "offending": "offending.parquet", "scope_rows": "scope.parquet"}


def evidence_tables(ev: EvidenceResult) -> dict[str, pa.Table]:
    """The item's kept query results by part (rows, offending, scope_rows), as the bundle
    writes them and the examiner evidence pack embeds them."""
    tables = {"rows": ev.rows, "offending": ev.offending}
    if ev.scope_rows is not None:
        tables["scope_rows"] = ev.scope_rows
    return tables


def evidence_parquet(table: pa.Table) -> tuple[bytes, list[str]]:
    """``table`` as Parquet (zstd) bytes, and notes on columns written as text. Parquet has
    no type for some DuckDB results (intervals): those columns are written as their text
    form, and the note says which."""
    notes = []
    columns, fields = [], []
    for f, column in zip(table.schema, table.columns):
        if pa.types.is_interval(f.type):
            column = pa.array([None if v is None else _iso_duration(v) for v in column.to_pylist()], pa.string())
            f = pa.field(f.name, pa.string())
            notes.append(f"column {f.name} (an interval) is written as ISO 8601 duration text")
        columns.append(column)
        fields.append(f)
    out = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(columns, schema=pa.schema(fields)), out, compression="zstd")
    return out.getvalue().to_pybytes(), notes


def _iso_duration(value: Any) -> str:
    """An Arrow month-day-nano interval as ISO 8601 text: P1M2DT3.5S, P3D, PT0S."""
    months, days, nanos = value.months, value.days, value.nanoseconds
    date = (f"{months}M" if months else "") + (f"{days}D" if days else "")
    time = f"T{nanos / 1e9:g}S" if nanos or not date else ""
    return f"P{date}{time}"


def _dump(doc: Any, path: Path) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
