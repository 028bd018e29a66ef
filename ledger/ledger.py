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
import getpass
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from . import recovery
from .chain import GENESIS_PREV
from .checkpoints import Timestamper, checkpoint_key, checkpoint_path
from .commit import ChainWriter, Pending, retain_until
from .errors import EntryError, KeyringError, LedgerError, LedgerFormatError
from .keys import Keyring, key_check
from .normalize import RowNormalizer, micros_to_datetime, normalize_arrow, rows_to_arrow
from .schema import FORMAT_VERSION, TABLE_NAMES, TABLES, table_spec
from .storage import META_KEY, MIRROR_STATE, Head, Layout, LedgerMeta, SegmentRecord, new_meta, read_meta, write_head, write_meta
from .storage_io import fsync_dir
from .store import LocalStore, Store, open_store

DEFAULT_FLUSH_INTERVAL = 0.1
DEFAULT_SEAL_ENTRIES = 250_000
DEFAULT_CHECKPOINT_INTERVAL = 60.0  # seconds: while entries arrive, seal and sign at least this often


def default_actor() -> str:
    return os.environ.get("MRM_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def now_micros() -> int:
    return time.time_ns() // 1000


# A ledger's clock: microseconds since the Unix epoch, UTC. Every time the ledger stamps
# itself (an entry's default ``ts``, a checkpoint's time) comes from it. The default is the
# system clock; a simulation (the demo's year of operations) or a test passes its own.
Clock = Callable[[], int]


@dataclass(frozen=True)
class PreparedBatch:
    """A batch validated and normalised for one table, `ts` and `actor` filled in where
    missing: what `Ledger.append` writes. Preparing needs no open ledger, so bad input can
    be refused before one is opened (on a shared store, opening takes the ledger over)."""

    table: str
    rows: pa.Table


def prepare_batch(table: str, rows: Any, *, ts: int, actor: str, normalizer: RowNormalizer | None = None) -> PreparedBatch:
    """`rows` (list of dicts, pyarrow Table or pandas DataFrame) as a `PreparedBatch`, or
    EntryError naming the row and field refused. `ts` (ledger clock microseconds) and
    `actor` fill the entries that carry none."""
    spec = table_spec(table)
    normalizer = normalizer or RowNormalizer(TABLES[spec.name])
    if isinstance(rows, pa.Table):
        batch = normalize_arrow(spec, rows, normalizer)
    elif _is_dataframe(rows):
        batch = normalize_arrow(spec, _from_pandas(spec, rows), normalizer)
    else:
        if isinstance(rows, Mapping) or not isinstance(rows, Iterable):
            raise EntryError("a batch is a list of mappings, a pyarrow Table or a pandas DataFrame", table=table)
        defaults = {"ts": ts, "actor": actor}
        batch = rows_to_arrow(spec, [normalizer(r, index=i, defaults=defaults) for i, r in enumerate(rows)], include_assigned=False)
    if len(batch):
        batch = batch.set_column(batch.schema.get_field_index("ts"), "ts",
                                 pc.fill_null(batch.column("ts"), pa.scalar(ts, spec.column("ts").type)))
        batch = batch.set_column(batch.schema.get_field_index("actor"), "actor", pc.fill_null(batch.column("actor"), actor))
    return PreparedBatch(spec.name, batch)


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
        self.keyring = keyring
        self.actor = actor or default_actor()
        self.flush_interval = flush_interval
        self.seal_entries = seal_entries
        self.checkpoint_interval = checkpoint_interval
        self.timestamper = timestamper
        self._clock: Clock = clock or now_micros
        self._normalizers = {t: RowNormalizer(TABLES[t]) for t in TABLE_NAMES}
        self._mutex = threading.RLock()
        self._cond = threading.Condition(self._mutex)
        self._pending: Pending = []
        self._deadline: float | None = None
        self._commit_seconds = 0.0  # how long the last group commit took to write and fsync
        self._background_error: BaseException | None = None
        self._closed = False
        self._writer = ChainWriter(self.layout, self.meta, keyring, timestamper=timestamper, now=self.now)
        try:
            with self._mutex:
                self._writer.acquire(recover=True)
                try:
                    self._complete_repairs()
                finally:
                    self._writer.release()
        except BaseException:
            self._writer.close()
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
        clock = options.get("clock") or now_micros
        meta = new_meta(micros_to_datetime(clock()), retain_days)
        write_meta(layout, meta)
        if retain_days is not None:
            layout.store.retain(META_KEY, retain_until(retain_days))
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
            return self._writer.head


    def _complete_repairs(self) -> None:
        """Write the entry of each staged repair, once (lock held, right after recovery)."""
        writer = self._writer
        for path, record in writer.repairs:
            details = record["details"]
            written = next((r["seq"] for r in writer.logged_repairs if r.get("repair_id") == details["repair_id"]), None)
            if written is None:
                written = self.log_operation(event_type=recovery.REPAIR_EVENT, component="ledger",
                                             status="loss_accepted" if "lost_first_seq" in details else "log_repaired",
                                             actor=record.get("actor"), details=details, durable=True)
                writer.acquire()
            recovery.complete_repair(self.layout, path, record, written)
        writer.repairs = []

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
            self._writer.acquire()
            seq = self._writer.take(1)
            entry["seq"], entry["table_name"], entry["key_id"] = seq, table, self._writer.head.key_id
            self._pending.append(("row", table, entry))  # its MAC is computed at commit
            self._after_write(durable)
        return seq

    def append(self, table: str, rows: Any, *, durable: bool = False) -> range:
        """Write a batch (list of dicts, pyarrow Table, pandas DataFrame, or a
        `PreparedBatch`) to one table, all or nothing; returns the range of sequence
        numbers assigned."""
        spec = table_spec(table)
        if isinstance(rows, PreparedBatch):
            if rows.table != spec.name:
                raise EntryError(f"a batch prepared for {rows.table} cannot be appended to {spec.name}", table=table)
            prepared = rows
        else:
            prepared = prepare_batch(spec.name, rows, ts=self._clock(), actor=self.actor, normalizer=self._normalizers[spec.name])
        batch = prepared.rows
        n = len(batch)
        if n == 0:
            return range(0)
        with self._mutex:
            self._check_writable()
            self._writer.acquire()
            first = self._writer.take(n)
            self._pending.append(("batch", spec.name, _with_assigned(spec, batch, first, self._writer.head.key_id)))
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

    def _commit(self) -> None:
        """Write and fsync everything pending, publish the new head, seal when due, release
        the lock."""
        self._deadline = None
        writer = self._writer
        if not self._pending:
            writer.release()
            return
        started = time.monotonic()
        try:
            # On a shared store HEAD is the acknowledgement itself, so it is made durable.
            head = writer.commit(self._pending, durable_head=not isinstance(self.layout.store, LocalStore))
        except BaseException:
            self._pending.clear()  # nothing of this commit was acknowledged
            writer.release()
            raise
        self._pending.clear()
        self._commit_seconds = time.monotonic() - started
        try:
            if head.seq - head.sealed_seq >= self.seal_entries:
                writer.seal()
        finally:
            writer.release()

    def _flush_loop(self) -> None:
        """Commit pending entries by their deadline; seal and sign at least every
        checkpoint_interval seconds while entries arrive."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                seal_due = self._writer.last_seal + self.checkpoint_interval
                unsealed = self._writer.next_seq - 1 > self._writer.head.sealed_seq
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
                        self._writer.acquire()
                        try:
                            self._writer.seal()
                        finally:
                            self._writer.release()
                        self._writer.last_seal = time.monotonic()
                except BaseException as e:  # surfaced to the next caller
                    self._background_error = e
                    self._writer.last_seal = time.monotonic()

    # ------------------------------------------------------------------ sealing
    def seal(self) -> SegmentRecord | None:
        """Flush, then move everything in the write-ahead log into Parquet segments."""
        with self._mutex:
            self._check_writable()
            self._commit()
            self._writer.acquire()
            try:
                return self._writer.seal()
            finally:
                self._writer.release()

    def checkpoint(self) -> Path | None:
        """Seal what is written and sign a checkpoint for it now; returns its path (for a
        ledger on object storage, where it would be in the ledger's directory)."""
        self.seal()
        with self._mutex:
            size = self._writer.head.sealed_seq + 1
        return checkpoint_path(self.layout, size) if self.layout.store.exists(checkpoint_key(size)) else None

    # ------------------------------------------------------------------ keys
    def rotate_key(self, keyring: Keyring, *, reason: str = "scheduled key rotation", actor: str | None = None) -> int:
        """Start MACing with `keyring.active`. The rotation entry is MACed under the old key
        and records the new key id and its check value. Save `keyring` before calling this:
        a ledger whose newest key is lost can no longer be written or verified."""
        new_key_id = keyring.active
        with self._mutex:
            self._check_writable()
            self._writer.acquire()
            old_key_id = self._writer.head.key_id
            if new_key_id == old_key_id:
                raise KeyringError(f"key id {new_key_id!r} is already the ledger's key")
            keyring.key(old_key_id)  # the new keyring must still verify the old entries
            new_key = keyring.key(new_key_id)
            self.keyring = self._writer.keyring = keyring
            seq = self.log_operation(
                event_type="key_rotation",
                component="ledger",
                status="rotated",
                actor=actor,
                details={
                    "previous_key_id": old_key_id,
                    "new_key_id": new_key_id,
                    "new_key_check": key_check(new_key, self.meta.ledger_id_bytes),
                    "reason": reason,
                },
            )
            self._writer.switch_key(new_key_id)
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
                self._writer.acquire()
                self._writer.seal()
            finally:
                self._writer.release()
                self._closed = True
                self._cond.notify_all()
        self._flusher.join()
        self._writer.close()

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
