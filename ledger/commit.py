"""The commit protocol: how one writer holds a ledger and makes its entries durable.

`ChainWriter` is what `ledger.Ledger` (the API people call: validation, batching, the
flusher thread, key rotation) drives, with its own mutex held around every call:

* ``acquire`` takes the writers' lock on this machine (an flock on LOCK in the local
  directory) and adopts the head in the store, recovering first when the head, the local
  write-ahead log or a seal left unfinished say it must;
* ``commit`` MACs the pending entries as one chain, appends them to the log, fsyncs it and
  swaps HEAD (compare-and-swap on the version this writer last saw): the entries are
  acknowledged when it returns, and a writer that lost the ledger to another finds out
  here, before anyone is told they are safe;
* ``seal`` moves the log into Parquet segments: segment files, then the manifest record
  (the commit point), then the Merkle tree, a signed checkpoint, retention and HEAD. A seal
  stopped after its commit point is finished by the next ``acquire``, as after a crash;
* ``recover`` re-derives the head from the manifest and the log, finishes or undoes an
  interrupted seal and drops a torn tail that was never acknowledged. It refuses, changing
  nothing, a ledger that lost acknowledged entries (unless a staged repair accepts exactly
  that) and, on a shared store, one that another writer holds or moved on while it looked.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import random
import socket
import time
import uuid
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from . import recovery, wal
from .checkpoints import TREE_PREFIX, Timestamper, checkpoint_key
from .checkpoints import write as write_checkpoint
from .errors import IntegrityError, LedgerError, WriterConflict
from .hashing import as_rows, mac_chain, segment_leaves, table_leaf_hashes
from .key_index import write_index
from .keys import Keyring
from .normalize import rows_to_arrow
from .schema import TABLE_NAMES, TABLES
from .storage import (
    META_KEY,
    NO_PREV,
    SEGMENT_FILE,
    Head,
    Layout,
    LedgerMeta,
    SegmentFile,
    SegmentRecord,
    manifest_key,
    manifest_line,
    parse_manifest_record,
    read_head_versioned,
    read_manifest,
    read_segment,
    record_mac,
    segment_bytes,
    write_head,
    write_manifest_record,
)
from .store import LocalStore, ObjectExists, Store, VersionConflict
from .tiles import StoreLockedError, TileStore

FRAME_ROWS = 100_000  # rows per WAL frame for large batches
PUBLISH_ATTEMPTS = 4  # tree appends tried when other writers keep swapping tree-state

Pending = list[tuple[str, str, Any]]  # ("row", table, dict) or ("batch", table, pa.Table), in sequence order


class ChainWriter:
    """One writer's hold on a ledger: its lock and log on this machine, the head it last
    saw in the store, and the steps that extend the chain. Not thread-safe: the caller
    serialises calls (ledger.Ledger holds its mutex)."""

    def __init__(self, layout: Layout, meta: LedgerMeta, keyring: Keyring, *, timestamper: Timestamper | None,
                 now: Callable[[], dt.datetime]):
        self.layout = layout
        self.meta = meta
        self.keyring = keyring
        self.timestamper = timestamper
        self.now = now
        self.ledger_id = meta.ledger_id_bytes
        self.writer_id = _writer_id(layout)
        self.head: Head | None = None  # the committed head, once acquired
        self.next_seq = 0  # runs ahead of the head while entries are pending
        self.prev_mac = b""
        self.head_version: str | None = None  # HEAD's version as last read or written (compare-and-swap)
        self.records: list[SegmentRecord] | None = None  # the manifest as this writer last read or extended it
        self.locked = False
        # Set when a seal stopped after its commit point (the manifest record): the next
        # acquire re-derives the head and finishes the seal from the store, as after a crash.
        self.unfinished_seal = False
        self.repairs: list = []  # staged repairs whose entries recovery must write (ledger/recovery.py)
        self.logged_repairs: list[dict] = []
        self.last_seal = time.monotonic()
        layout.local.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o644)
        self._wal_fd = -1  # opened (and created if absent) by recovery, once it finds nothing lost
        self._swapped_at: tuple[int, int, int] | None = None  # the log as it was when this writer last swapped HEAD

    def close(self) -> None:
        """Release the lock and close the log (what a crashed process leaves is the same)."""
        self.release()
        if self._wal_fd >= 0:
            os.close(self._wal_fd)
            self._wal_fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def take(self, n: int) -> int:
        """Number `n` entries (lock held); returns the first sequence number."""
        first = self.next_seq
        self.next_seq = first + n
        return first

    def switch_key(self, key_id: str) -> None:
        """MAC entries from the next one on with `key_id` (lock held, nothing pending)."""
        self.head = replace(self.head, key_id=key_id)

    # ------------------------------------------------------------------ locking and recovery
    def acquire(self, *, recover: bool = False) -> None:
        """Take the writers' lock and adopt the head other writers left."""
        if self.locked:
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self.locked = True
        try:
            if recover or not self._holds_head():
                head, self.head_version = read_head_versioned(self.layout)
            else:
                head = self.head  # no request: the next swap finds out if another writer took over
            if (recover or self.unfinished_seal or head is None or os.fstat(self._wal_fd).st_size != head.wal_size
                    or head.writer != self.writer_id):
                head = self.recover()
                self.unfinished_seal = False
            self.set_head(head)
        except BaseException:
            self.release()
            raise

    def _holds_head(self) -> bool:
        """Whether HEAD in a remote store is still what this writer last swapped in, as far as
        this machine can tell: no writer here touched the log since (another process
        sharing this work directory would have). Then acquiring needs no request, and
        another machine that took the ledger over is found out by the next swap, which
        compares versions, before anything is acknowledged."""
        return (self.layout.store.local_root is None and self.head is not None and not self.unfinished_seal
                and self.head.writer == self.writer_id and self._swapped_at is not None
                and self._swapped_at == _log_stamp(self.layout))

    def release(self) -> None:
        if self.locked:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self.locked = False

    def set_head(self, head: Head) -> None:
        """Adopt a committed head; `next_seq` runs ahead of it while entries are pending."""
        self.head = head
        self.prev_mac = bytes.fromhex(head.mac)
        self.next_seq = head.seq + 1

    def recover(self) -> Head:
        """Re-derive the head from the manifest and the log; finish or undo a crashed seal;
        drop a torn tail that was never acknowledged (lock held). Refuses, changing nothing,
        a ledger that lost acknowledged entries or whose log does not continue the chain,
        unless a staged repair (ledger/recovery.py) accepts exactly that."""
        exam = recovery.examine(self.layout, self.keyring, self.ledger_id)
        self.repairs = recovery.pending_repairs(self.layout)
        if self.repairs and not exam.in_order:
            recovery.rewrite_log(self.layout, exam)  # a repair stopped before it rewrote the log
            exam = recovery.examine(self.layout, self.keyring, self.ledger_id)
        self.logged_repairs = exam.repairs
        accepted = exam.lost is not None and any(
            r["details"].get("lost_last_seq", -1) >= exam.persisted.seq for _, r in self.repairs)
        try:
            self.check_examined(exam, accepted)
        except IntegrityError:
            if read_head_versioned(self.layout)[1] != self.head_version:
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
        head = replace(exam.head, wal_size=keep, writer=self.writer_id)
        # From this swap on, this writer holds the ledger: only then may it remove what others
        # could still be writing (a writer that reads HEAD before it is swapped fails its own).
        self.head_version = self.swap_head(head, durable=True)
        sealed_to = records[-1].last_seq if records else -1
        for rel in list(self.layout.data_files()):
            named = SEGMENT_FILE.fullmatch(rel)
            if named is not None and int(named.group(2)) > sealed_to:
                # Written by a seal that stopped before its manifest record: never evidence
                # (no record lists it), and its entries are still in the log.
                self.layout.store.delete(rel)
        self.records = list(records)
        self.publish(records)
        if records:
            self.retain(records[-1])  # a seal may have stopped before it retained its objects
        return head

    def check_examined(self, exam: "recovery.Examination", accepted: bool) -> None:
        """Refuse, changing nothing, what recovery found that it may not repair by itself."""
        covered = recovery.covered_size(self.layout)
        if covered > exam.sealed.sealed_seq + 1:
            raise IntegrityError(
                f"{self.layout.where}: the stored tree or a signed checkpoint covers {covered} entries, the manifest only "
                f"{exam.sealed.sealed_seq + 1}: sealed entries are missing; restore them from a copy. Nothing was changed"
            )
        theirs = exam.persisted.writer if exam.persisted is not None else ""
        if exam.lost is not None and not accepted and theirs and theirs != self.writer_id:
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

    def retain(self, record: SegmentRecord) -> None:
        """Put a sealed segment's files, its manifest record and its checkpoint under the
        ledger's retention (after the record, the commit point: what a stopped seal left
        unrecorded is never retained, so recovery can remove it), and extend LEDGER.json's
        to the same date: without it no segment can be read as the ledger's."""
        if self.meta.retain_days is None:
            return
        until = retain_until(self.meta.retain_days)
        keys = [f.path for f in record.files] + [manifest_key(record.first_seq), META_KEY]
        if self.layout.store.exists(checkpoint_key(record.last_seq + 1)):
            keys.append(checkpoint_key(record.last_seq + 1))
        for key in keys:
            self.layout.store.retain(key, until)

    def swap_head(self, head: Head, *, durable: bool) -> str:
        """Publish `head` if HEAD is still as this writer last saw it (lock held)."""
        try:
            version = write_head(self.layout, head, durable=durable, expected=self.head_version)
        except VersionConflict:
            self._swapped_at = None
            theirs, self.head_version = read_head_versioned(self.layout)
            raise WriterConflict(
                f"{self.layout.where}: another writer ({theirs.writer if theirs and theirs.writer else 'unknown'}) took over "
                "the ledger; this writer stops here and what it had not acknowledged was not written. Open it again to go on"
            ) from None
        except BaseException:
            self._swapped_at = None  # the swap may or may not have happened: read HEAD again
            raise
        self._swapped_at = _log_stamp(self.layout)
        return version

    def sealed_parts(self, pending: Pending) -> list[list[tuple[str, pa.Table]]]:
        """The pending entries as frames of (table, rows with their MACs), in sequence order.

        MACs are computed here, for the whole commit at once: the leaf hashes of each part
        in bulk, then one HMAC chain over all of them in sequence order."""
        frames: list[list[tuple[str, pa.Table]]] = []
        run: dict[str, list[dict]] = {}
        for kind, table, item in pending + [("end", "", None)]:
            if kind == "row":
                run.setdefault(table, []).append(item)
                continue
            if run:
                frames.append([(t, rows_to_arrow(TABLES[t], rows, include_assigned=True, include_mac=False)) for t, rows in run.items()])
                run = {}
            if kind == "batch":
                frames.extend([[(table, item.slice(start, FRAME_ROWS))] for start in range(0, len(item), FRAME_ROWS)])
        parts = [part for frame in frames for part in frame]
        key_ids = {pending[0][2]["key_id"] if pending[0][0] == "row" else pending[0][2].column("key_id")[0].as_py()}
        if len(key_ids) != 1:
            raise LedgerError("internal error: a commit spans two keys")
        seqs = np.concatenate([t.column("seq").to_numpy() for _, t in parts])
        order = np.argsort(seqs, kind="stable")
        if not np.array_equal(seqs[order], np.arange(seqs[order][0], seqs[order][0] + len(seqs))):
            raise LedgerError("internal error: pending entries are not consecutive")
        leaves = np.concatenate([as_rows(table_leaf_hashes(TABLES[t], self.ledger_id, rows)) for t, rows in parts])
        key_id = key_ids.pop()
        chained = as_rows(mac_chain(self.keyring.key(key_id), self.prev_mac, leaves[order].tobytes()))
        macs = np.empty_like(chained)
        macs[order] = chained
        self.prev_mac = chained[-1].tobytes()
        out, at = [], 0
        for frame in frames:
            with_macs = []
            for table, rows in frame:
                column = pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), len(rows), [None, pa.py_buffer(macs[at : at + len(rows)].tobytes())])
                with_macs.append((table, rows.append_column(TABLES[table].arrow_schema.field("mac"), column)))
                at += len(rows)
            out.append(with_macs)
        return out

    # ------------------------------------------------------------------ committing
    def commit(self, pending: Pending, *, durable_head: bool) -> Head:
        """Append `pending` to the log, fsync it and publish the new head (lock held):
        acknowledged when this returns. On any failure none of it is kept: the log is cut
        back and the head is the one before."""
        committed = self.head
        try:
            frames = self.sealed_parts(pending)
            chunks = [
                wal.encode_frame(*_frame_bounds(parts), committed.key_id, dict(parts), more=i < len(frames) - 1)
                for i, parts in enumerate(frames)
            ]
            data = b"".join(chunks)
            view = memoryview(data)
            while view:
                written = os.write(self._wal_fd, view)
                view = view[written:]
            os.fsync(self._wal_fd)
            head = replace(committed, seq=self.next_seq - 1, mac=self.prev_mac.hex(), wal_size=committed.wal_size + len(data))
            self.head_version = self.swap_head(head, durable=durable_head)
        except BaseException:
            try:
                os.truncate(self.layout.wal, committed.wal_size)
            finally:
                self.set_head(committed)
            raise
        self.set_head(head)
        return head


    # ------------------------------------------------------------------ sealing
    def seal(self) -> SegmentRecord | None:
        head = self.head
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
        records = self.manifest_records(head)
        tables = {name: pa.concat_tables(parts[name]).cast(TABLES[name].arrow_schema) for name in TABLE_NAMES if name in parts}
        _, leaves = segment_leaves(tables, self.ledger_id)
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
            self.unfinished_seal = True
            raise WriterConflict(
                f"{self.layout.where}: another writer sealed entries from {first} on first; this writer stops here. "
                "Open the ledger again to go on"
            ) from None
        try:
            self.records = records + [parse_manifest_record(manifest_line(record))]  # with its line hash, as read back
            self.publish(records + [record], fresh=(first, leaves))
            self.retain(record)
            self.last_seal = time.monotonic()
            os.truncate(self.layout.wal, 0)
            os.fsync(self._wal_fd)
            head = replace(head, wal_size=0, sealed_seq=last)
            self.head_version = self.swap_head(head, durable=True)
        except BaseException:
            # Sealed, but not all of what follows the commit point was done: the next
            # acquire finishes it from the store (tree, checkpoint, retention, log, HEAD).
            self.unfinished_seal = True
            raise
        self.set_head(head)
        _write_key_index(self.layout, record, tables)
        return record

    def manifest_records(self, head: Head) -> list[SegmentRecord]:
        """The manifest up to `head`'s last sealed entry: as this writer holds it when that
        is where it ends (no request), else read again. A record another writer added since
        cannot be missed into a fork: its key is the next segment's, which put-if-absent
        then refuses."""
        if self.records is not None and (self.records[-1].last_seq if self.records else -1) == head.sealed_seq:
            return self.records
        self.records, _ = read_manifest(self.layout)
        return self.records

    def publish(self, records: list[SegmentRecord], fresh: tuple[int, bytes] | None = None) -> None:
        """Bring the Merkle tree up to the last sealed entry and, with a signing key, sign a
        checkpoint for it (lock held). Idempotent: recovery calls it after a crash."""
        if not records:
            return
        size = records[-1].last_seq + 1
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                root = self.grow_tree(records, size, fresh)
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

    def grow_tree(self, records: list[SegmentRecord], size: int, fresh: tuple[int, bytes] | None) -> bytes:
        """Append to the stored tree what `records` seal beyond it; its root at `size`."""
        with TileStore(self.layout.store, TREE_PREFIX) as tree:
            for r in records:
                if r.last_seq < tree.size:
                    continue
                if fresh is not None and fresh[0] == r.first_seq:
                    packed = fresh[1]
                else:
                    packed = segment_leaves(_read_segment(self.layout, r), self.ledger_id)[1]
                tree.append_leaf_hashes(packed, start=r.first_seq)
            return tree.root(size)


def _write_key_index(layout: Layout, record: SegmentRecord, tables: dict[str, pa.Table]) -> None:
    """The side index of request and subject ids (ledger/key_index.py). It is only a hint
    for readers and the segment is already durable, so failing to write it never fails the
    seal: readers scan a segment that has no index."""
    try:
        write_index(layout, record, tables)
    except (OSError, LedgerError):
        pass


def retain_until(days: int) -> dt.datetime:
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


def _log_stamp(layout: Layout) -> tuple[int, int, int] | None:
    """The local log's identity, size and modification time: any write to it changes them."""
    try:
        st = os.stat(layout.wal)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _read_segment(layout: Layout, record: SegmentRecord) -> dict[str, pa.Table]:
    return {f.table: read_segment(layout, f.path) for f in record.files}


def _frame_bounds(parts: list[tuple[str, pa.Table]]) -> tuple[int, int, bytes]:
    """First and last sequence number of a frame, and the MAC of the last."""
    first = min(t.column("seq")[0].as_py() for _, t in parts)
    last_table = max((t for _, t in parts), key=lambda t: t.column("seq")[-1].as_py())
    return first, last_table.column("seq")[-1].as_py(), last_table.column("mac")[-1].as_py()
