"""Test utilities: file fingerprints, and an attacker's tools for editing a ledger."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from ledger.chain import ChainMac
from ledger.merkle import leaf_hash
from ledger.encoding import RowEncoder
from ledger.normalize import rows_to_arrow
from ledger.schema import TABLES
from ledger.storage import Layout, read_manifest, read_meta


def fingerprint(path: Path) -> dict[str, str]:
    """SHA-256 of every file under `path` (lock files excluded: they are only ever flocked)."""
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name not in ("LOCK", ".store-lock")
    }


def segment_files(path: Path, table: str) -> list[Path]:
    return sorted((path / "tables" / table).glob("*.parquet"))


def read_rows(file: Path) -> list[dict]:
    return pq.read_table(file).to_pylist()


def write_rows(file: Path, table: str, rows: list[dict]) -> None:
    """Rewrite a segment file with `rows` (Python values as pyarrow returns them)."""
    schema = TABLES[table].arrow_schema
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), file, compression="zstd")


def edit_rows(file: Path, table: str, edit: Callable[[list[dict]], list[dict]]) -> None:
    write_rows(file, table, edit(read_rows(file)))


def all_rows(path: Path) -> list[dict]:
    rows = []
    for table in TABLES:
        for f in segment_files(path, table):
            rows.extend(read_rows(f))
    return sorted(rows, key=lambda r: r["seq"])


def rechain(path: Path, key_id: str, key: bytes, *, start_seq: int = 0, modify: Callable[[dict], dict] | None = None) -> None:
    """What an attacker without the real key can do: rewrite every entry from `start_seq`
    on (optionally modified) and MAC it with a key of their own, in place."""
    ledger_id = read_meta(Layout(path)).ledger_id_bytes
    rows = all_rows(path)
    mac = ChainMac(key)
    prev = bytes(32) if start_seq == 0 else next(r["mac"] for r in rows if r["seq"] == start_seq - 1)
    by_file: dict[Path, list[dict]] = {}
    for table in TABLES:
        for f in segment_files(path, table):
            by_file[f] = read_rows(f)
    index = {r["seq"]: r for rs in by_file.values() for r in rs}
    for seq in sorted(index):
        if seq < start_seq:
            continue
        r = index[seq]
        if modify:
            r.update(modify(dict(r)))
        r["key_id"] = key_id
        normalised = rows_to_arrow(TABLES[r["table_name"]], [r], include_assigned=True).to_pylist()[0]
        canonical = RowEncoder(TABLES[r["table_name"]], ledger_id)(_as_normalised(normalised))
        r["mac"] = prev = mac(prev, leaf_hash(canonical))
    for f, rs in by_file.items():
        write_rows(f, f.parent.name, rs)


def _as_normalised(row: dict) -> dict:
    """pyarrow's Python values -> the ledger's normalised row values."""
    import datetime as dt

    out = {}
    for k, v in row.items():
        if isinstance(v, dt.datetime):
            v = (v - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)
        out[k] = v
    return out


def manifest_lines(path: Path) -> list[bytes]:
    """The manifest records of a ledger directory, in order, each without its newline."""
    return [p.read_bytes().rstrip(b"\n") for p in sorted((path / "manifest").glob("*.json"))]


def write_manifest_lines(path: Path, lines: list[bytes]) -> None:
    """What an attacker with write access does to the manifest: replace its records with
    `lines`, each stored under the name of the segment it claims (or its position)."""
    for p in (path / "manifest").glob("*.json"):
        p.unlink()
    for i, line in enumerate(lines):
        try:
            first = int(json.loads(line)["first_seq"])
        except (ValueError, KeyError, TypeError):
            first = i
        (path / "manifest" / f"{first:012d}.json").write_bytes(line + b"\n")


def records(path: Path):
    return read_manifest(Layout(path))[0]


def log_event(ledger, i: int, durable: bool = True) -> int:
    return ledger.log_operation(event_type="monitor_check", component="drift", status="ok", details={"i": i}, durable=durable)


def crashed_with_unsealed(path: Path, keyring, n: int = 10, *, frames_per_entry: bool = True) -> list[int]:
    """A ledger whose writer stopped (no close) with `n` acknowledged entries in the log.
    The writer is never closed: its process 'crashed'; a fresh Ledger reads the files."""
    from ledger import Ledger

    Ledger.create(path, keyring).close()
    writer = Ledger.open(path, keyring, checkpoint_interval=3600)
    seqs = [log_event(writer, i, durable=frames_per_entry) for i in range(n)]
    writer.flush()
    abandon(writer)
    return seqs


def abandon(ledger) -> None:
    """Leave a writer as a killed process would: no seal, no head written, its flusher
    stopped and its lock and log descriptors closed."""
    ledger._closed = True
    with ledger._cond:
        ledger._cond.notify_all()
    ledger._flusher.join()
    ledger._writer.close()


def wal_frames(path: Path):
    from ledger import wal

    with open(path / "wal.log", "rb") as f:
        return wal.scan(f).frames


CLOCK_START = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def fixed_clock():
    """A clock that ticks the same way in two ledgers, so they write identical entries."""
    now = [CLOCK_START]

    def tick() -> int:
        now[0] += 1000
        return now[0]

    return tick
