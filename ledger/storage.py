"""On-disk layout of a ledger, and the records that authenticate it.

    <ledger>/
      LEDGER.json                      ledger id and format version (written once)
      HEAD                             chain head: last sequence number, its MAC, key in use
      LOCK                             writers serialise on an exclusive flock of this file
      wal.log                          write-ahead log of entries not yet sealed (ledger/wal.py)
      manifest.jsonl                   one MACed, hash-chained line per sealed segment
      tables/<table>/<first>-<last>.parquet
                                       immutable zstd Parquet, rows in sequence order;
                                       <first>-<last> is the segment's sequence range,
                                       zero-padded to 12 digits

Any Parquet reader can query ``tables/<table>/*.parquet`` directly; the column types are
those of ledger/schema.py. A segment is one manifest line: its sequence range, the MAC of
its last entry and each file's row count, size and SHA-256, so deleted, added, replaced or
extended files are found without reading them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import rfc8785

from .errors import LedgerFormatError
from .schema import FORMAT_VERSION, TABLE_NAMES
from .storage_io import write_file_atomic

LEDGER_FORMAT = "mrm-ledger"
_MANIFEST_LABEL = b"mrm-ledger manifest v1\x00"
NO_PREV = "0" * 64
SEQ_DIGITS = 12
SEGMENT_FILE = re.compile(r"tables/([a-z_]+)/(\d{12})-(\d{12})\.parquet")  # table, first and last seq


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def meta(self) -> Path:
        return self.root / "LEDGER.json"

    @property
    def head(self) -> Path:
        return self.root / "HEAD"

    @property
    def lock(self) -> Path:
        return self.root / "LOCK"

    @property
    def wal(self) -> Path:
        return self.root / "wal.log"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.jsonl"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    def table_dir(self, table: str) -> Path:
        return self.tables / table

    def segment_name(self, table: str, first: int, last: int) -> str:
        return f"tables/{table}/{first:0{SEQ_DIGITS}d}-{last:0{SEQ_DIGITS}d}.parquet"

    def sealed_file(self, rel: str) -> Path:
        """A listed segment file, or the completed temporary of a seal that a crash stopped
        between its manifest line (written after the temporary was fsynced) and the rename:
        the same bytes, which the next writer renames into place."""
        path = self.root / rel
        if not path.exists():
            pending = self.root / (rel + ".tmp")
            if pending.exists():
                return pending
        return path

    def data_files(self) -> Iterator[str]:
        """Every file under tables/, as a path relative to the ledger root."""
        if not self.tables.exists():
            return
        for dirpath, _, files in os.walk(self.tables):
            for name in files:
                yield Path(dirpath, name).relative_to(self.root).as_posix()


# ------------------------------------------------------------------------------ metadata


@dataclass(frozen=True)
class LedgerMeta:
    ledger_id: str  # 32 hex digits
    format_version: int
    created_at: str

    @property
    def ledger_id_bytes(self) -> bytes:
        return bytes.fromhex(self.ledger_id)


def new_meta(created_at: dt.datetime | None = None) -> LedgerMeta:
    created = (created_at or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return LedgerMeta(uuid.uuid4().hex, FORMAT_VERSION, created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def write_meta(layout: Layout, meta: LedgerMeta) -> None:
    doc = {"format": LEDGER_FORMAT, **asdict(meta), "tables": list(TABLE_NAMES)}
    write_file_atomic(layout.meta, (json.dumps(doc, indent=2) + "\n").encode())


def read_meta(layout: Layout) -> LedgerMeta:
    try:
        doc = json.loads(layout.meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LedgerFormatError(f"{layout.root}: not a ledger (no LEDGER.json)") from None
    except (OSError, ValueError) as e:
        raise LedgerFormatError(f"{layout.meta}: unreadable ({type(e).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != LEDGER_FORMAT:
        raise LedgerFormatError(f"{layout.meta}: not an mrm-ledger metadata file")
    if doc.get("format_version") != FORMAT_VERSION:
        raise LedgerFormatError(f"{layout.meta}: format version {doc.get('format_version')!r} is not supported (this is {FORMAT_VERSION})")
    ledger_id = doc.get("ledger_id")
    if not isinstance(ledger_id, str) or len(ledger_id) != 32:
        raise LedgerFormatError(f"{layout.meta}: ledger_id must be 32 hex digits")
    try:
        bytes.fromhex(ledger_id)
    except ValueError:
        raise LedgerFormatError(f"{layout.meta}: ledger_id must be 32 hex digits") from None
    return LedgerMeta(ledger_id, FORMAT_VERSION, str(doc.get("created_at")))


# ------------------------------------------------------------------------------ head


@dataclass(frozen=True)
class Head:
    seq: int  # last sequence number written (-1 before genesis)
    mac: str  # hex MAC of that entry
    key_id: str  # key the next entry is MACed with
    wal_size: int  # bytes of wal.log that hold those entries
    sealed_seq: int  # last sequence number sealed into Parquet (-1 if none)


def write_head(layout: Layout, head: Head, *, durable: bool) -> None:
    write_file_atomic(layout.head, (json.dumps(asdict(head)) + "\n").encode(), durable=durable)


def read_head(layout: Layout) -> Head | None:
    try:
        doc = json.loads(layout.head.read_text(encoding="utf-8"))
        return Head(int(doc["seq"]), str(doc["mac"]), str(doc["key_id"]), int(doc["wal_size"]), int(doc["sealed_seq"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ------------------------------------------------------------------------------ manifest


@dataclass(frozen=True)
class SegmentFile:
    table: str
    path: str  # relative to the ledger root
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class SegmentRecord:
    first_seq: int
    last_seq: int
    last_mac: str
    files: tuple[SegmentFile, ...]
    prev: str  # SHA-256 of the previous manifest line
    key_id: str
    mac: str
    line_hash: str = ""  # SHA-256 of this record's line, computed when read

    def body(self) -> dict:
        return {
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "last_mac": self.last_mac,
            "files": [asdict(f) for f in self.files],
            "prev": self.prev,
            "key_id": self.key_id,
        }


def record_mac(key: bytes, body: dict) -> str:
    return hmac.new(key, _MANIFEST_LABEL + rfc8785.dumps(body), hashlib.sha256).hexdigest()


def manifest_line(record: SegmentRecord) -> bytes:
    return json.dumps({**record.body(), "mac": record.mac}, separators=(",", ":")).encode()


def read_manifest(layout: Layout) -> tuple[list[SegmentRecord], list[str]]:
    """Records in order, and a description of each line that could not be parsed."""
    records: list[SegmentRecord] = []
    problems: list[str] = []
    try:
        data = layout.manifest.read_bytes()
    except FileNotFoundError:
        return records, problems
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line:
            continue
        try:
            doc = json.loads(line)
            files = tuple(SegmentFile(**f) for f in doc["files"])
            records.append(
                SegmentRecord(
                    int(doc["first_seq"]), int(doc["last_seq"]), str(doc["last_mac"]), files,
                    str(doc["prev"]), str(doc["key_id"]), str(doc["mac"]), hashlib.sha256(line).hexdigest(),
                )
            )
        except (ValueError, KeyError, TypeError) as e:
            problems.append(f"manifest.jsonl line {number}: unreadable ({type(e).__name__})")
    return records, problems


def append_manifest(layout: Layout, record: SegmentRecord) -> None:
    fd = os.open(layout.manifest, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, manifest_line(record) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------ Parquet

ROW_GROUP_ROWS = 8 * 1024
BLOOM_COLUMNS = ("request_id", "subject_id")


def lookup_layout(table: pa.Table) -> dict:
    """Row grouping and Bloom filters that make finding one request or subject cheap.

    A reader looking for one request (`mrm reconstruct`) decompresses only the row groups
    whose filter column matches: small row groups keep that to ~8k rows instead of the whole
    file, and Bloom filters on the id columns let it skip a row group without decompressing
    even that column. Both live inside the file the manifest hashes, so they are evidence
    like the rows they describe; the side index (ledger/key_index.py) only picks the files."""
    bloom = {c: {"ndv": ROW_GROUP_ROWS, "fpp": 0.01} for c in BLOOM_COLUMNS if c in table.column_names}
    return {"row_group_size": ROW_GROUP_ROWS, "bloom_filter_options": bloom or None}


def write_segment_file(path: Path, table: pa.Table) -> None:
    """Write one immutable segment file (fsynced before returning)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pq.write_table(
            table,
            f,
            compression="zstd",
            **lookup_layout(table),
            write_statistics=True,
            write_page_index=True,
            sorting_columns=[pq.SortingColumn(0)],
        )
        f.flush()
        os.fsync(f.fileno())


def read_segment_file(path: Path) -> pa.Table:
    return pq.read_table(path)
