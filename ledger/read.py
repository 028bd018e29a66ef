"""Reading entries back: the files the manifest lists plus entries not yet sealed.

Readers never glob the table directories: only files the manifest lists are data, so an
unlisted file an attacker drops in (or a seal in progress) is never read as evidence."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from . import wal
from .schema import TABLE_NAMES, TABLES, table_spec
from .errors import IntegrityError
from .storage import Head, Layout, SegmentFile, SegmentRecord, read_head, read_manifest, read_meta


@dataclass(frozen=True)
class LedgerSnapshot:
    """The ledger as of one instant, the one view every reader takes (reading, both
    verifiers, proofs, the SQL layer): the manifest and the files it lists, HEAD, the files
    present, and the entries not yet sealed, all read while writers are paused."""

    root: Path
    ledger_id: str
    files: dict[str, list[Path]]  # table -> absolute paths of listed segment files, in order
    unsealed: dict[str, pa.Table]  # table -> entries in the write-ahead log
    last_seq: int
    records: tuple[SegmentRecord, ...] = ()  # the manifest lines the files come from, in order
    manifest_problems: tuple[str, ...] = ()  # manifest objects that could not be read as records
    head: Head | None = None  # HEAD as persisted
    present: tuple[str, ...] = ()  # segment files the store holds, listed or not
    wal_bytes: bytes = b""  # this machine's write-ahead log, as read
    examined: Any = None  # what `snapshot(examine=...)` found at the same instant


def snapshot(path: str | os.PathLike[str], *, examine: Callable[[Layout], Any] | None = None) -> LedgerSnapshot:
    """The ledger as of now. For a ledger kept in a remote store (a store URL, or its local
    directory) the listed files are fetched into the local mirror first, once each: they
    never change. Entries not yet sealed are those in this machine's write-ahead log.
    `examine(layout)`, when given, runs under the same pause (the HMAC verifier reads what
    a writer's recovery would find, ledger/recovery.examine) and its result is `examined`."""
    layout = Layout(path)
    meta = read_meta(layout)
    with shared_lock(layout):  # a consistent manifest, head and log: writers paused briefly
        records, problems = read_manifest(layout)
        head = read_head(layout)
        try:
            wal_bytes = layout.wal.read_bytes()
        except FileNotFoundError:
            wal_bytes = b""
        present = tuple(sorted(layout.data_files()))
        examined = examine(layout) if examine is not None else None
    files: dict[str, list[Path]] = {t: [] for t in TABLE_NAMES}
    for r in records:
        for f in r.files:
            files[f.table].append(layout.root / f.path)
    _fetch_missing(layout, [f for r in records for f in r.files])
    sealed_to = records[-1].last_seq if records else -1
    parts: dict[str, list[pa.Table]] = {}
    last = sealed_to
    for frame in wal.scan(io.BytesIO(wal_bytes), keep_payload=True).frames:
        if frame.last_seq <= sealed_to:
            continue
        last = frame.last_seq
        for name, t in frame.tables().items():
            parts.setdefault(name, []).append(t)
    unsealed = {name: pa.concat_tables(ts).cast(TABLES[name].arrow_schema) for name, ts in parts.items()}
    return LedgerSnapshot(layout.root, meta.ledger_id, files, unsealed, last, tuple(records), tuple(problems), head,
                          present, wal_bytes, examined)


def _fetch_missing(layout: Layout, listed: Sequence[SegmentFile]) -> None:
    """For a ledger kept in a remote store, fetch the listed files the local mirror lacks
    (in parallel), each checked against the manifest's digest so a reader never caches
    other bytes. A directory's files are read in place."""
    if layout.store.local_root is not None:
        return
    from .store import LocalStore, StoredObject
    from .transfer import fetch_into

    by_path = {f.path: f for f in listed}
    missing = [StoredObject(f.path, f.bytes, "") for f in by_path.values()
               if not ((path := layout.root / f.path).exists() and path.stat().st_size == f.bytes)]

    def check(obj: StoredObject, data: bytes) -> None:
        if hashlib.sha256(data).hexdigest() != by_path[obj.key].sha256:
            raise IntegrityError(f"{layout.store.where(obj.key)}: its bytes are not the ones the manifest lists; run `mrm verify`")

    for _ in fetch_into(layout.store, LocalStore(layout.root), missing, check):
        pass


def as_snapshot(source: str | os.PathLike[str] | LedgerSnapshot) -> LedgerSnapshot:
    """One consistent view of the ledger: a snapshot given is used as it is, a path is read
    now. Readers that take several tables take them from one."""
    return source if isinstance(source, LedgerSnapshot) else snapshot(source)


@contextmanager
def shared_lock(layout: Layout) -> Iterator[None]:
    """Hold the writers' lock shared, so writers pause while a reader takes a consistent
    view. A read-only copy of a ledger (an examiner's evidence disk) is read without
    creating or writing anything, unlocked when the lock file cannot be opened at all: no
    writer can be active there."""
    try:
        fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        try:
            fd = os.open(layout.lock, os.O_RDONLY)
        except OSError:
            fd = None
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def read_table(path: str | os.PathLike[str] | LedgerSnapshot, table: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Every entry of one table, in sequence order, with the typed columns of ledger/schema.py."""
    snap = as_snapshot(path)
    spec = table_spec(table)
    schema = spec.arrow_schema if columns is None else pa.schema([spec.arrow_schema.field(c) for c in columns])
    parts = [pq.read_table(f, columns=list(schema.names)).cast(schema) for f in snap.files[table]]
    if table in snap.unsealed:
        parts.append(snap.unsealed[table].select(list(schema.names)))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def read_tables(path: str | os.PathLike[str], tables: Iterable[str] = TABLE_NAMES) -> dict[str, pa.Table]:
    snap = snapshot(path)
    return {t: read_table(snap, t) for t in tables}
