"""The Ledger: append-only writing with group commit, recovery, sealing and key rotation.

Durability (the guarantee the README states):

* ``log_*`` and ``append`` validate, number, encode and MAC the entry, then may return
  before it is on disk. A background flush writes and fsyncs everything pending at most
  ``flush_interval`` seconds (default 0.1) after the first unsynced entry.
* ``flush()``, leaving the ``with`` block, ``close()`` and any call with ``durable=True``
  return only once everything written before them is fsynced in the write-ahead log.
  Such entries are *acknowledged* and survive any crash.
* A writer holds an exclusive lock on the ledger from its first unsynced entry until that
  fsync, so several processes can write one ledger without forking the chain; each one
  picks up the head the others left.
* Opening a ledger recovers from a crash at any instant: a torn or incomplete commit at the
  end of the log is dropped (none of it was acknowledged), an interrupted seal is finished
  or undone, and the head is re-derived.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import getpass
import os
import random
import shutil
import socket
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import recovery, wal
from .chain import GENESIS_PREV
from .hashing import as_rows, mac_chain, segment_leaves, table_leaf_hashes
from .errors import EntryError, IntegrityError, KeyringError, LedgerError, LedgerFormatError, WriterConflict
from .key_index import write_index
from .keys import Keyring, key_check
from .normalize import RowNormalizer, micros_to_datetime, normalize_arrow, rows_to_arrow
from .schema import FORMAT_VERSION, TABLE_NAMES, TABLES, table_spec
from .storage import (
    NO_PREV,
    Head,
    Layout,
    LedgerMeta,
    SegmentFile,
    SegmentRecord,
    META_KEY,
    MIRROR_STATE,
    SEGMENT_FILE,
    manifest_key,
    manifest_line,
    parse_manifest_record,
    new_meta,
    read_head_versioned,
    read_manifest,
    read_meta,
    read_segment,
    record_mac,
    segment_bytes,
    write_head,
    write_manifest_record,
    write_meta,
)
from .store import LocalStore, ObjectExists, Store, VersionConflict, open_store
from .checkpoints import TREE_PREFIX, Timestamper, checkpoint_key, checkpoint_path
from .checkpoints import write as write_checkpoint
from .tiles import StoreLockedError, TileStore
from .storage_io import fsync_dir

DEFAULT_FLUSH_INTERVAL = 0.1
DEFAULT_SEAL_ENTRIES = 250_000
DEFAULT_CHECKPOINT_INTERVAL = 60.0  # seconds: while entries arrive, seal and sign at least this often
FRAME_ROWS = 100_000  # rows per WAL frame for large batches
PUBLISH_ATTEMPTS = 4  # tree appends tried when other writers keep swapping tree-state


def default_actor() -> str:
    return os.environ.get("MRM_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def _now_micros() -> int:
    return time.time_ns() // 1000


# A ledger's clock: microseconds since the Unix epoch, UTC. Every time the ledger stamps
# itself (an entry's default ``ts``, a checkpoint's time) comes from it. The default is the
# system clock; a simulation (the demo's year of operations) or a test passes its own.
Clock = Callable[[], int]


class Ledger:
    """An open ledger. Use `Ledger.create` or `Ledger.open`, preferably as a context manager."""

    # ------------------------------------------------------------------ opening
    def __init__(
        self,
        path: str | os.PathLike[str] | Store,
        keyring: Keyring,
        *,
        work_dir: str | os.PathLike[str] | None = None,
        actor: str | None = None,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        seal_entries: int = DEFAULT_SEAL_ENTRIES,
        checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
        timestamper: Timestamper | None = None,
        clock: Clock | None = None,
    ):
        if not isinstance(keyring, Keyring):
            raise KeyringError("a Keyring is required (there is no default key)")
        self.layout = Layout(path, work_dir)
        if isinstance(self.layout.store, LocalStore) and (self.layout.root / MIRROR_STATE).exists():
            raise LedgerError(f"{self.layout.root}: a mirror of a ledger kept in a store, for reading only; "
                              "write through the store's URL")
        self.meta: LedgerMeta = read_meta(self.layout)
        self._writer_id = _writer_id(self.layout)
        self._head_version: str | None = None  # HEAD's version as last read or written (compare-and-swap)
        self._records: list[SegmentRecord] | None = None  # the manifest as this writer last read or extended it
        self.keyring = keyring
        self.actor = actor or default_actor()
        self.flush_interval = flush_interval
        self.seal_entries = seal_entries
        self.checkpoint_interval = checkpoint_interval
        self.timestamper = timestamper
        self._clock: Clock = clock or _now_micros
        self._last_seal = time.monotonic()
        self._ledger_id = self.meta.ledger_id_bytes
        self._normalizers = {t: RowNormalizer(TABLES[t]) for t in TABLE_NAMES}
        self._mutex = threading.RLock()
        self._cond = threading.Condition(self._mutex)
        self._pending: list[tuple[str, str, Any]] = []  # ("row", table, dict) or ("batch", table, pa.Table)
        self._deadline: float | None = None
        self._commit_seconds = 0.0  # how long the last group commit took to write and fsync
        self._background_error: BaseException | None = None
        self._closed = False
        self._locked = False
        # Set when a seal stopped after its commit point (the manifest record): the next
        # acquire re-derives the head and finishes the seal from the store, as after a crash.
        self._unfinished_seal = False
        self.layout.local.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.layout.lock, os.O_RDWR | os.O_CREAT, 0o644)
        self._wal_fd = -1  # opened (and created if absent) by recovery, once it finds nothing lost
        self._repairs: list = []  # staged repairs whose entries recovery must write (ledger/recovery.py)
        self._logged_repairs: list[dict] = []
        try:
            with self._mutex:
                self._acquire(recover=True)
                try:
                    self._complete_repairs()
                finally:
                    self._release()
        except BaseException:
            if self._wal_fd >= 0:
                os.close(self._wal_fd)
            os.close(self._lock_fd)
            raise
        self._flusher = threading.Thread(target=self._flush_loop, name="mrm-ledger-flush", daemon=True)
        self._flusher.start()

    @classmethod
    def open(cls, path: str | os.PathLike[str] | Store, keyring: Keyring, **options: Any) -> "Ledger":
        return cls(path, keyring, **options)

    @classmethod
    def create(cls, path: str | os.PathLike[str] | Store, keyring: Keyring, **options: Any) -> "Ledger":
        """Create a ledger whose genesis entry binds its id, format version and first key.
        A directory appears whole or not at all; in any other store, LEDGER.json is written
        first and only once, so of two creators in one place one wins."""
        store = open_store(path)
        retain_days = options.pop("retain_days", None)
        if not isinstance(store, LocalStore):
            return cls._create_in_store(store, keyring, retain_days, **options)
        if retain_days is not None:
            raise LedgerFormatError(f"{store.url}: a directory keeps no retention lock; create the ledger on object "
                                    "storage with Object Lock (s3://bucket/prefix) to retain it")
        root = store.root
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise LedgerFormatError(f"{root}: already exists and is not an empty directory")
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = root.parent / f".{root.name}.creating-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            cls._write_genesis(Layout(staging), staging, keyring, options, None)
            if root.exists():
                root.rmdir()
            os.replace(staging, root)
            fsync_dir(root.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(root, keyring, **options)

    @classmethod
    def _create_in_store(cls, store: Store, keyring: Keyring, retain_days: int | None, **options: Any) -> "Ledger":
        if store.list():
            raise LedgerFormatError(f"{store.url}: not empty; a ledger is created only where nothing is stored yet")
        layout = Layout(store, options.get("work_dir"))
        cls._write_genesis(layout, store, keyring, options, retain_days)
        return cls(store, keyring, **options)

    @classmethod
    def _write_genesis(cls, layout: Layout, where: str | os.PathLike[str] | Store, keyring: Keyring, options: dict,
                       retain_days: int | None) -> None:
        clock = options.get("clock") or _now_micros
        meta = new_meta(micros_to_datetime(clock()), retain_days)
        write_meta(layout, meta)
        if retain_days is not None:
            layout.store.retain(META_KEY, _retain_until(retain_days))
        key_id = keyring.active
        write_head(layout, Head(-1, GENESIS_PREV.hex(), key_id, 0, -1), durable=True, expected=None)
        with cls(where, keyring, **options) as ledger:
            ledger.log_operation(
                event_type="genesis",
                component="ledger",
                status="created",
                details={
                    "ledger_id": meta.ledger_id,
                    "format_version": FORMAT_VERSION,
                    "key_id": key_id,
                    "key_check": key_check(keyring.key(key_id), meta.ledger_id_bytes),
                    **({"retain_days": retain_days} if retain_days is not None else {}),
                },
                durable=True,
            )

    @classmethod
    def repair(cls, path: str | os.PathLike[str] | Store, keyring: Keyring, *, reason: str, accept_loss: bool = False,
               actor: str | None = None, dry_run: bool = False, **options: Any) -> "recovery.RepairPlan | None":
        """The one way past a loss or a log that does not continue the chain: keep every
        frame that does, save the original log under repairs/, and write a `ledger_repair`
        operation entry naming what was dropped and which acknowledged range was lost (with
        its last known MAC). Lost entries are accepted only with `accept_loss`. Returns the
        plan carried out (`entry_seq` set), or None when there was nothing to repair."""
        if not reason or not reason.strip():
            raise EntryError("a repair needs a reason; it is recorded in the ledger")
        actor = actor or default_actor()
        layout = Layout(path, options.get("work_dir"))
        meta = read_meta(layout)
        layout.local.mkdir(parents=True, exist_ok=True)
        fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            staged = recovery.pending_repairs(layout)
            plan = None
            if not staged:
                exam = recovery.examine(layout, keyring, meta.ledger_id_bytes)
                plan = recovery.plan_repair(layout, exam, accept_loss=accept_loss, covered_size=recovery.covered_size(layout))
                if plan is None or dry_run:
                    return plan
                plan = recovery.stage_repair(layout, exam, plan, reason, actor)
        finally:
            os.close(fd)
        cls(path, keyring, actor=actor, **options).close()  # recovery writes the staged entry
        return recovery.done_repair(layout, plan.repair_id if plan else staged[-1][1]["details"]["repair_id"])

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({self.layout.where!r}, ledger_id={self.meta.ledger_id!r})"

    @property
    def path(self) -> Path:
        """The ledger's directory (for a ledger on object storage: the writer's local one)."""
        return self.layout.root

    @property
    def ledger_id(self) -> str:
        return self.meta.ledger_id

    def now(self) -> dt.datetime:
        """The ledger's clock (see ``Clock``) as an aware UTC datetime: what an entry's ``ts``
        defaults to. Writers that stamp times of their own (the promotion gate, outcomes)
        take them from here, so one clock orders everything written through this ledger."""
        return micros_to_datetime(self._clock())

    @property
    def head(self) -> Head:
        with self._mutex:
            return self._head

    # ------------------------------------------------------------------ locking and recovery
    def _acquire(self, *, recover: bool = False) -> None:
        """Take the writers' lock and adopt the head other writers left (mutex held)."""
        if self._locked:
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._locked = True
        try:
            head, self._head_version = read_head_versioned(self.layout)
            if (recover or self._unfinished_seal or head is None or os.fstat(self._wal_fd).st_size != head.wal_size
                    or head.writer != self._writer_id):
                head = self._recover()
                self._unfinished_seal = False
            self._set_head(head)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self._locked:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self._locked = False

    def _set_head(self, head: Head) -> None:
        """Adopt a committed head; `_next_seq` runs ahead of it while entries are pending."""
        self._head = head
        self._prev_mac = bytes.fromhex(head.mac)
        self._next_seq = head.seq + 1

    def _recover(self) -> Head:
        """Re-derive the head from the manifest and the log; finish or undo a crashed seal;
        drop a torn tail that was never acknowledged (lock held). Refuses, changing nothing,
        a ledger that lost acknowledged entries or whose log does not continue the chain,
        unless a staged repair (ledger/recovery.py) accepts exactly that."""
        exam = recovery.examine(self.layout, self.keyring, self._ledger_id)
        self._repairs = recovery.pending_repairs(self.layout)
        if self._repairs and not exam.in_order:
            recovery.rewrite_log(self.layout, exam)  # a repair stopped before it rewrote the log
            exam = recovery.examine(self.layout, self.keyring, self._ledger_id)
        self._logged_repairs = exam.repairs
        accepted = exam.lost is not None and any(
            r["details"].get("lost_last_seq", -1) >= exam.persisted.seq for _, r in self._repairs)
        try:
            self._check_examined(exam, accepted)
        except IntegrityError:
            if read_head_versioned(self.layout)[1] != self._head_version:
                # What looked missing or out of order was another writer moving the ledger on
                # while this one read it, one object after another.
                raise WriterConflict(
                    f"{self.layout.where}: another writer changed the ledger while this one examined it; this writer "
                    "wrote nothing. Open it again to go on"
                ) from None
            raise
        records = exam.records
        if self._wal_fd < 0:
            self._wal_fd = os.open(self.layout.wal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        keep = exam.kept[-1].end if exam.kept else 0
        if exam.wal_size != keep:
            os.truncate(self.layout.wal, keep)  # a torn or unacknowledged tail, or frames already sealed
            os.fsync(self._wal_fd)
        head = replace(exam.head, wal_size=keep, writer=self._writer_id)
        # From this swap on, this writer holds the ledger: only then may it remove what others
        # could still be writing (a writer that reads HEAD before it is swapped fails its own).
        self._head_version = self._write_head(head, durable=True)
        sealed_to = records[-1].last_seq if records else -1
        for rel in list(self.layout.data_files()):
            named = SEGMENT_FILE.fullmatch(rel)
            if named is not None and int(named.group(2)) > sealed_to:
                # Written by a seal that stopped before its manifest record: never evidence
                # (no record lists it), and its entries are still in the log.
                self.layout.store.delete(rel)
        self._records = list(records)
        self._publish(records)
        if records:
            self._retain(records[-1])  # a seal may have stopped before it retained its objects
        return head

    def _check_examined(self, exam: "recovery.Examination", accepted: bool) -> None:
        """Refuse, changing nothing, what recovery found that it may not repair by itself."""
        covered = recovery.covered_size(self.layout)
        if covered > exam.sealed.sealed_seq + 1:
            raise IntegrityError(
                f"{self.layout.where}: the stored tree or a signed checkpoint covers {covered} entries, the manifest only "
                f"{exam.sealed.sealed_seq + 1}: sealed entries are missing; restore them from a copy. Nothing was changed"
            )
        theirs = exam.persisted.writer if exam.persisted is not None else ""
        if exam.lost is not None and not accepted and theirs and theirs != self._writer_id:
            first, last = exam.lost
            raise WriterConflict(
                f"{self.layout.where}: another writer ({theirs}) holds entries {first}-{last} in its local write-ahead log, not "
                "yet sealed; this writer wrote nothing. Try again once that writer has sealed or closed; if that machine and "
                "its log are gone for good, `mrm repair --accept-loss` records the loss"
            )
        if not exam.sound and not accepted:
            raise IntegrityError(
                "; ".join(exam.problems(self.layout.where))
                + ". Nothing was changed. `mrm verify` reports it; `mrm repair` (with --accept-loss for lost entries) "
                "records it in the ledger and lets it be written again"
            )

    def _retain(self, record: SegmentRecord) -> None:
        """Put a sealed segment's files, its manifest record and its checkpoint under the
        ledger's retention (after the record, the commit point: what a stopped seal left
        unrecorded is never retained, so recovery can remove it), and extend LEDGER.json's
        to the same date: without it no segment can be read as the ledger's."""
        if self.meta.retain_days is None:
            return
        until = _retain_until(self.meta.retain_days)
        keys = [f.path for f in record.files] + [manifest_key(record.first_seq), META_KEY]
        if self.layout.store.exists(checkpoint_key(record.last_seq + 1)):
            keys.append(checkpoint_key(record.last_seq + 1))
        for key in keys:
            self.layout.store.retain(key, until)

    def _write_head(self, head: Head, *, durable: bool) -> str:
        """Publish `head` if HEAD is still as this writer last saw it (lock held)."""
        try:
            return write_head(self.layout, head, durable=durable, expected=self._head_version)
        except VersionConflict:
            theirs, self._head_version = read_head_versioned(self.layout)
            raise WriterConflict(
                f"{self.layout.where}: another writer ({theirs.writer if theirs and theirs.writer else 'unknown'}) took over "
                "the ledger; this writer stops here and what it had not acknowledged was not written. Open it again to go on"
            ) from None

    def _complete_repairs(self) -> None:
        """Write the entry of each staged repair, once (lock held, right after recovery)."""
        for path, record in self._repairs:
            details = record["details"]
            written = next((r["seq"] for r in self._logged_repairs if r.get("repair_id") == details["repair_id"]), None)
            if written is None:
                written = self.log_operation(event_type=recovery.REPAIR_EVENT, component="ledger",
                                             status="loss_accepted" if "lost_first_seq" in details else "log_repaired",
                                             actor=record.get("actor"), details=details, durable=True)
                self._acquire()
            recovery.complete_repair(self.layout, path, record, written)
        self._repairs = []

    # ------------------------------------------------------------------ writing
    def _check_writable(self) -> None:
        if self._closed:
            raise LedgerError(f"{self.layout.where}: the ledger is closed")
        if self._background_error is not None:
            error, self._background_error = self._background_error, None
            raise LedgerError(f"a background flush failed: {error}") from error

    def log(self, table: str, row: Mapping[str, Any], *, durable: bool = False) -> int:
        """Write one entry to `table`; returns its sequence number."""
        normalizer = self._normalizers.get(table) or self._normalizers[table_spec(table).name]  # names the tables if unknown
        entry = normalizer(row, defaults={"ts": self._clock(), "actor": self.actor})
        with self._mutex:
            self._check_writable()
            self._acquire()
            seq = self._next_seq
            self._next_seq = seq + 1
            entry["seq"], entry["table_name"], entry["key_id"] = seq, table, self._head.key_id
            self._pending.append(("row", table, entry))  # its MAC is computed at commit
            self._after_write(durable)
        return seq

    def append(self, table: str, rows: Any, *, durable: bool = False) -> range:
        """Write a batch (list of dicts, pyarrow Table or pandas DataFrame) to one table,
        all or nothing; returns the range of sequence numbers assigned."""
        spec = table_spec(table)
        normalizer = self._normalizers[table]
        if isinstance(rows, pa.Table):
            batch = normalize_arrow(spec, rows, normalizer)
        elif _is_dataframe(rows):
            batch = normalize_arrow(spec, _from_pandas(spec, rows), normalizer)
        else:
            if isinstance(rows, Mapping) or not isinstance(rows, Iterable):
                raise EntryError("a batch is a list of mappings, a pyarrow Table or a pandas DataFrame", table=table)
            defaults = {"ts": self._clock(), "actor": self.actor}
            batch = rows_to_arrow(spec, [normalizer(r, index=i, defaults=defaults) for i, r in enumerate(rows)], include_assigned=False)
        n = len(batch)
        if n == 0:
            return range(0)
        batch = batch.set_column(
            batch.schema.get_field_index("ts"), "ts", pc.fill_null(batch.column("ts"), pa.scalar(self._clock(), spec.column("ts").type))
        )
        batch = batch.set_column(batch.schema.get_field_index("actor"), "actor", pc.fill_null(batch.column("actor"), self.actor))
        with self._mutex:
            self._check_writable()
            self._acquire()
            first = self._next_seq
            self._next_seq = first + n
            self._pending.append(("batch", table, _with_assigned(spec, batch, first, self._head.key_id)))
            self._after_write(durable)
        return range(first, first + n)

    def _after_write(self, durable: bool) -> None:
        if durable or self.flush_interval <= 0:
            self._commit()
        elif self._deadline is None:
            # Start the commit early by as long as the last one took, so that it ends, and
            # the entry is on disk, within flush_interval of being returned.
            self._deadline = time.monotonic() + max(0.0, self.flush_interval - self._commit_seconds)
            self._cond.notify_all()
        elif time.monotonic() >= self._deadline:
            # A busy writer commits its own overdue entries: the flusher thread may not win
            # the mutex against it, and nothing returned may wait longer than the interval.
            self._commit()

    def flush(self) -> None:
        """Return once every entry written before this call is fsynced."""
        with self._mutex:
            self._check_writable()
            self._commit()

    def _sealed_parts(self) -> list[list[tuple[str, pa.Table]]]:
        """The pending entries as frames of (table, rows with their MACs), in sequence order.

        MACs are computed here, for the whole commit at once: the leaf hashes of each part
        in bulk, then one HMAC chain over all of them in sequence order."""
        frames: list[list[tuple[str, pa.Table]]] = []
        run: dict[str, list[dict]] = {}
        for kind, table, item in self._pending + [("end", "", None)]:
            if kind == "row":
                run.setdefault(table, []).append(item)
                continue
            if run:
                frames.append([(t, rows_to_arrow(TABLES[t], rows, include_assigned=True, include_mac=False)) for t, rows in run.items()])
                run = {}
            if kind == "batch":
                frames.extend([[(table, item.slice(start, FRAME_ROWS))] for start in range(0, len(item), FRAME_ROWS)])
        parts = [part for frame in frames for part in frame]
        key_ids = {self._pending[0][2]["key_id"] if self._pending[0][0] == "row" else self._pending[0][2].column("key_id")[0].as_py()}
        if len(key_ids) != 1:
            raise LedgerError("internal error: a commit spans two keys")
        seqs = np.concatenate([t.column("seq").to_numpy() for _, t in parts])
        order = np.argsort(seqs, kind="stable")
        if not np.array_equal(seqs[order], np.arange(seqs[order][0], seqs[order][0] + len(seqs))):
            raise LedgerError("internal error: pending entries are not consecutive")
        leaves = np.concatenate([as_rows(table_leaf_hashes(TABLES[t], self._ledger_id, rows)) for t, rows in parts])
        key_id = key_ids.pop()
        chained = as_rows(mac_chain(self.keyring.key(key_id), self._prev_mac, leaves[order].tobytes()))
        macs = np.empty_like(chained)
        macs[order] = chained
        self._prev_mac = chained[-1].tobytes()
        out, at = [], 0
        for frame in frames:
            with_macs = []
            for table, rows in frame:
                column = pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), len(rows), [None, pa.py_buffer(macs[at : at + len(rows)].tobytes())])
                with_macs.append((table, rows.append_column(TABLES[table].arrow_schema.field("mac"), column)))
                at += len(rows)
            out.append(with_macs)
        return out

    def _commit(self) -> None:
        """Write and fsync everything pending, publish the new head, release the lock."""
        self._deadline = None
        if not self._pending:
            self._release()
            return
        started = time.monotonic()
        committed = self._head
        try:
            frames = self._sealed_parts()
            chunks = [
                wal.encode_frame(*_frame_bounds(parts), self._head.key_id, dict(parts), more=i < len(frames) - 1)
                for i, parts in enumerate(frames)
            ]
            data = b"".join(chunks)
            view = memoryview(data)
            while view:
                written = os.write(self._wal_fd, view)
                view = view[written:]
            os.fsync(self._wal_fd)
            head = replace(self._head, seq=self._next_seq - 1, mac=self._prev_mac.hex(), wal_size=self._head.wal_size + len(data))
            # Acknowledged once HEAD says so: on a shared store, a writer that lost the ledger
            # to another finds out here, before anyone is told the entries are safe.
            self._head_version = self._write_head(head, durable=not isinstance(self.layout.store, LocalStore))
        except BaseException:
            # Nothing of this commit was acknowledged: put the log back as it was.
            self._pending.clear()
            try:
                os.truncate(self.layout.wal, committed.wal_size)
            finally:
                self._set_head(committed)
                self._release()
            raise
        self._pending.clear()
        self._commit_seconds = time.monotonic() - started
        self._set_head(head)
        try:
            if head.seq - head.sealed_seq >= self.seal_entries:
                self._seal()
        finally:
            self._release()

    def _flush_loop(self) -> None:
        """Commit pending entries by their deadline; seal and sign at least every
        checkpoint_interval seconds while entries arrive."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                seal_due = self._last_seal + self.checkpoint_interval
                unsealed = self._next_seq - 1 > self._head.sealed_seq
                if self._deadline is None and not unsealed:
                    self._cond.wait()
                    continue
                wake = min(self._deadline if self._deadline is not None else seal_due, seal_due if unsealed else float("inf"))
                if wake > now:
                    self._cond.wait(wake - now)
                    continue
                try:
                    if self._deadline is not None and self._deadline <= now:
                        self._commit()
                    if unsealed and seal_due <= now:
                        self._commit()
                        self._acquire()
                        try:
                            self._seal()
                        finally:
                            self._release()
                        self._last_seal = time.monotonic()
                except BaseException as e:  # surfaced to the next caller
                    self._background_error = e
                    self._last_seal = time.monotonic()

    # ------------------------------------------------------------------ sealing
    def seal(self) -> SegmentRecord | None:
        """Flush, then move everything in the write-ahead log into Parquet segments."""
        with self._mutex:
            self._check_writable()
            self._commit()
            self._acquire()
            try:
                return self._seal()
            finally:
                self._release()

    def _seal(self) -> SegmentRecord | None:
        head = self._head
        if head.seq <= head.sealed_seq:
            return None
        parts: dict[str, list[pa.Table]] = {}
        first = None
        for frame, tables in wal.iter_tables(self.layout.wal):
            if frame.last_seq <= head.sealed_seq:
                continue
            first = frame.first_seq if first is None else first
            for name, table in tables.items():
                parts.setdefault(name, []).append(table)
        if first is None:
            return None
        last = head.seq
        records = self._manifest_records(head)
        tables = {name: pa.concat_tables(parts[name]).cast(TABLES[name].arrow_schema) for name in TABLE_NAMES if name in parts}
        _, leaves = segment_leaves(tables, self._ledger_id)
        files = []
        for name, table in tables.items():
            rel = self.layout.segment_name(name, first, last)
            data = segment_bytes(table)
            _put_segment_file(self.layout.store, rel, data)
            files.append(SegmentFile(name, rel, len(table), len(data), hashlib.sha256(data).hexdigest()))
        body = SegmentRecord(
            first, last, head.mac, tuple(files), records[-1].line_hash if records else NO_PREV, head.key_id, ""
        ).body()
        record = SegmentRecord(first, last, head.mac, tuple(files), body["prev"], head.key_id, record_mac(self.keyring.key(head.key_id), body))
        try:
            write_manifest_record(self.layout, record)  # the commit point: the segment is sealed
        except VersionConflict:
            self._unfinished_seal = True
            raise WriterConflict(
                f"{self.layout.where}: another writer sealed entries from {first} on first; this writer stops here. "
                "Open the ledger again to go on"
            ) from None
        try:
            self._records = records + [parse_manifest_record(manifest_line(record))]  # with its line hash, as read back
            self._publish(records + [record], fresh=(first, leaves))
            self._retain(record)
            self._last_seal = time.monotonic()
            os.truncate(self.layout.wal, 0)
            os.fsync(self._wal_fd)
            head = replace(head, wal_size=0, sealed_seq=last)
            self._head_version = self._write_head(head, durable=True)
        except BaseException:
            # Sealed, but not all of what follows the commit point was done: the next
            # acquire finishes it from the store (tree, checkpoint, retention, log, HEAD).
            self._unfinished_seal = True
            raise
        self._set_head(head)
        _write_key_index(self.layout, record, tables)
        return record

    def _manifest_records(self, head: Head) -> list[SegmentRecord]:
        """The manifest up to `head`'s last sealed entry: as this writer holds it when that
        is where it ends (no request), else read again. A record another writer added since
        cannot be missed into a fork: its key is the next segment's, which put-if-absent
        then refuses."""
        if self._records is not None and (self._records[-1].last_seq if self._records else -1) == head.sealed_seq:
            return self._records
        self._records, _ = read_manifest(self.layout)
        return self._records

    def _publish(self, records: list[SegmentRecord], fresh: tuple[int, bytes] | None = None) -> None:
        """Bring the Merkle tree up to the last sealed entry and, with a signing key, sign a
        checkpoint for it (lock held). Idempotent: recovery calls it after a crash."""
        if not records:
            return
        size = records[-1].last_seq + 1
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                root = self._grow_tree(records, size, fresh)
                break
            except StoreLockedError:
                # Another writer swapped tree-state mid-append: it took the ledger over and
                # integrates the same sealed entries (appends are idempotent), or rolled this
                # append back as a stopped one. Look again; the tree is only ever derived.
                if attempt + 1 == PUBLISH_ATTEMPTS:
                    raise WriterConflict(
                        f"{self.layout.where}: another writer keeps changing the Merkle tree; entries up to {size - 1} "
                        "are sealed, and the next writer to open the ledger brings the tree up to them"
                    ) from None
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        signer = self.keyring.signer
        if signer is not None and not self.layout.store.exists(checkpoint_key(size)):
            write_checkpoint(self.layout, signer, self.meta.ledger_id, root, records, timestamper=self.timestamper,
                             now=self.now())

    def _grow_tree(self, records: list[SegmentRecord], size: int, fresh: tuple[int, bytes] | None) -> bytes:
        """Append to the stored tree what `records` seal beyond it; its root at `size`."""
        with TileStore(self.layout.store, TREE_PREFIX) as tree:
            for r in records:
                if r.last_seq < tree.size:
                    continue
                if fresh is not None and fresh[0] == r.first_seq:
                    packed = fresh[1]
                else:
                    packed = segment_leaves(_read_segment(self.layout, r), self._ledger_id)[1]
                tree.append_leaf_hashes(packed, start=r.first_seq)
            return tree.root(size)

    def checkpoint(self) -> Path | None:
        """Seal what is written and sign a checkpoint for it now; returns its path (for a
        ledger on object storage, where it would be in the ledger's directory)."""
        self.seal()
        with self._mutex:
            size = self._head.sealed_seq + 1
        return checkpoint_path(self.layout, size) if self.layout.store.exists(checkpoint_key(size)) else None

    # ------------------------------------------------------------------ keys
    def rotate_key(self, keyring: Keyring, *, reason: str = "scheduled key rotation", actor: str | None = None) -> int:
        """Start MACing with `keyring.active`. The rotation entry is MACed under the old key
        and records the new key id and its check value. Save `keyring` before calling this:
        a ledger whose newest key is lost can no longer be written or verified."""
        new_key_id = keyring.active
        with self._mutex:
            self._check_writable()
            self._acquire()
            old_key_id = self._head.key_id
            if new_key_id == old_key_id:
                raise KeyringError(f"key id {new_key_id!r} is already the ledger's key")
            keyring.key(old_key_id)  # the new keyring must still verify the old entries
            new_key = keyring.key(new_key_id)
            self.keyring = keyring
            seq = self.log_operation(
                event_type="key_rotation",
                component="ledger",
                status="rotated",
                actor=actor,
                details={
                    "previous_key_id": old_key_id,
                    "new_key_id": new_key_id,
                    "new_key_check": key_check(new_key, self._ledger_id),
                    "reason": reason,
                },
            )
            self._head = replace(self._head, key_id=new_key_id)
            self._commit()
        return seq

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Flush, seal the write-ahead log into Parquet, and release every resource."""
        with self._mutex:
            if self._closed:
                return
            try:
                self._commit()
                self._acquire()
                self._seal()
            finally:
                self._release()
                self._closed = True
                self._cond.notify_all()
        self._flusher.join()
        os.close(self._wal_fd)
        os.close(self._lock_fd)

    # ------------------------------------------------------------------ typed writers
    def log_operation(self, *, event_type: str, component: str, status: str, correlation_id: str | None = None, **common: Any) -> int:
        return self._log_typed("operation", locals(), common)

    def log_model_inference(
        self,
        *,
        request_id: str,
        subject_id: str,
        model_slot: str,
        model_version: str,
        input_digest: str,
        decision: str,
        latency_ms: float,
        scores: Mapping[str, float] | None = None,
        route: str | None = None,
        **common: Any,
    ) -> int:
        return self._log_typed("model_inference", locals(), common)

    def log_data_access(
        self,
        *,
        operator: str,
        subject_id: str,
        dataset: str,
        columns: Sequence[str],
        purpose: str,
        access_type: str,
        row_count: int,
        request_id: str | None = None,
        **common: Any,
    ) -> int:
        return self._log_typed("data_access", locals(), common)

    def log_dimension_change(
        self,
        *,
        component: str,
        new_schema_digest: str,
        new_dimension: int,
        features_added: Sequence[str],
        features_removed: Sequence[str],
        reason: str,
        old_schema_digest: str | None = None,
        old_dimension: int | None = None,
        **common: Any,
    ) -> int:
        return self._log_typed("dimension_change", locals(), common)

    def log_attribution(self, *, request_id: str, model_version: str, method: str, top_features: Sequence[Mapping[str, Any]], **common: Any) -> int:
        return self._log_typed("attribution", locals(), common)

    def log_guardrail(
        self,
        *,
        request_id: str,
        gate: str,
        verdict: str,
        criteria: Mapping[str, float],
        reason: str | None = None,
        original_output: str | None = None,
        final_output: str | None = None,
        **common: Any,
    ) -> int:
        return self._log_typed("guardrail", locals(), common)

    def log_model_promotion(
        self,
        *,
        slot: str,
        challenger_version: str,
        decision: str,
        trigger: str,
        reason: str,
        champion_version: str | None = None,
        operator: str | None = None,
        comparison: Sequence[Mapping[str, Any]] | None = None,
        significance: Sequence[Mapping[str, Any]] | None = None,
        thresholds: Mapping[str, float] | None = None,
        **common: Any,
    ) -> int:
        return self._log_typed("model_promotion", locals(), common)

    _COMMON = frozenset({"ts", "actor", "details", "durable"})

    def _log_typed(self, table: str, fields: dict[str, Any], common: dict[str, Any]) -> int:
        unknown = set(common) - self._COMMON
        if unknown:
            raise EntryError(f"unknown field; log_{table} takes the table's fields and ts, actor, details, durable", table=table, field=sorted(unknown)[0])
        row = {k: v for k, v in fields.items() if k not in ("self", "common")}
        durable = bool(common.pop("durable", False))
        row.update(common)
        return self.log(table, row, durable=durable)

    # ------------------------------------------------------------------ reading
    def verify(self, **options: Any):
        """Flush, then verify the whole ledger with this ledger's keyring."""
        from .verify import verify_ledger

        self.flush()
        if not isinstance(self.layout.store, LocalStore):
            raise LedgerError(f"{self.layout.where}: verify a ledger on object storage with `mrm verify` (it reads a mirror)")
        return verify_ledger(self.layout.root, self.keyring, **options)


def _write_key_index(layout: Layout, record: SegmentRecord, tables: dict[str, pa.Table]) -> None:
    """The side index of request and subject ids (ledger/key_index.py). It is only a hint
    for readers and the segment is already durable, so failing to write it never fails the
    seal: readers scan a segment that has no index."""
    try:
        write_index(layout, record, tables)
    except (OSError, LedgerError):
        pass


def _retain_until(days: int) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)


def _put_segment_file(store: Store, rel: str, data: bytes) -> None:
    """Write a segment file once. One already there with other bytes was left by a seal
    that stopped before its manifest record (recovery removes those), so it is replaced."""
    try:
        store.put_if_absent(rel, data)
    except ObjectExists:
        if store.read(rel) == data:
            return
        store.delete(rel)
        store.put_if_absent(rel, data)


def _writer_id(layout: Layout) -> str:
    """Who holds the write-ahead log of a ledger kept in a shared store: a random id kept in
    the writer's local directory, with its host name for messages. A directory's writers
    share its one log, so they need none."""
    if isinstance(layout.store, LocalStore) and layout.local == layout.store.root:
        return ""
    layout.local.mkdir(parents=True, exist_ok=True)
    path = layout.local / "WRITER"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        ident = f"{socket.gethostname()}/{uuid.uuid4().hex[:16]}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return path.read_text(encoding="utf-8").strip()
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(ident + "\n")
            f.flush()
            os.fsync(f.fileno())
        return ident


def _read_segment(layout: Layout, record: SegmentRecord) -> dict[str, pa.Table]:
    return {f.table: read_segment(layout, f.path) for f in record.files}


def _frame_bounds(parts: list[tuple[str, pa.Table]]) -> tuple[int, int, bytes]:
    """First and last sequence number of a frame, and the MAC of the last."""
    first = min(t.column("seq")[0].as_py() for _, t in parts)
    last_table = max((t for _, t in parts), key=lambda t: t.column("seq")[-1].as_py())
    return first, last_table.column("seq")[-1].as_py(), last_table.column("mac")[-1].as_py()


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "to_dict") and type(obj).__module__.startswith("pandas")


def _from_pandas(spec, frame: Any) -> pa.Table:
    """A DataFrame as Arrow, typed by the table's schema where pandas' own guess fails.
    As everywhere in pandas, NaN and None in a column mean a missing value."""
    known = {f.name: f for f in spec.arrow_schema}
    for name in frame.columns:
        dtype = frame[name].dtype
        if name in known and pa.types.is_timestamp(known[name].type) and dtype.kind == "M" and getattr(dtype, "tz", None) is None:
            raise EntryError("naive datetime column: give a timezone (UTC is stored)", table=spec.name, field=name)
    fields = [known[c] if c in known else None for c in frame.columns]
    try:
        if all(fields):
            return pa.Table.from_pandas(frame, schema=pa.schema(fields), preserve_index=False)
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        records = frame.to_dict("records")
        rows = [{k: None if isinstance(v, float) and v != v else v for k, v in r.items()} for r in records]
        return pa.Table.from_pylist(rows) if rows else pa.table({})


def _with_assigned(spec, batch: pa.Table, first_seq: int, key_id: str) -> pa.Table:
    """The batch in the table's column order with seq, table_name and key_id filled in."""
    n = len(batch)
    assigned = {
        "seq": pa.array(range(first_seq, first_seq + n), pa.int64()),
        "table_name": pa.repeat(pa.scalar(spec.name, pa.string()), n),
        "key_id": pa.repeat(pa.scalar(key_id, pa.string()), n),
    }
    columns = [assigned[c.name] if c.name in assigned else batch.column(c.name) for c in spec.encoded_columns]
    fields = [spec.arrow_schema.field(c.name) for c in spec.encoded_columns]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
