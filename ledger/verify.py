"""Verification with the HMAC key: every MAC and link, every file, every gap.

Problems are reported by kind, with the first affected sequence number, the table and the
file wherever they are known:

    INVALID    an entry's MAC does not match what is stored (edited values, typed columns
               that no longer encode to what was MACed, a forged or re-chained row, a row
               moved to another table)
    GAP        sequence numbers missing
    DUPLICATE  a sequence number present more than once
    ORDER      rows out of sequence order inside a file
    MISSING    a file the manifest lists is absent
    EXTRA      a file the manifest does not list, or rows outside their segment
    FILE       a listed file whose bytes, size or row count differ from the manifest
    MANIFEST   a manifest line whose MAC or hash link is broken, or that overlaps another
    KEY        no key for a key id, a key that does not match the ledger's key check value
               (wrong key, or a re-keyed ledger), or a key change without a rotation entry
    TRUNCATED  the data ends before the persisted head (entries HEAD says another
               writer's local log holds, unsealed, are a note: not verified here)
    HEAD       the persisted head is missing, names its entry with another MAC than the
               one stored, or lags the sealed data further than a writer leaves it
    META       LEDGER.json disagrees with what the entries record (the ledger id changed)
    TILE       a stored tree tile (tree/tile/<level>/...) that is damaged, or whose hashes
               are not the entries' or do not give the signed roots

and, against the signed checkpoints and the anchors given from outside (ledger/anchors.py):

    CHECKPOINT a checkpoint that is malformed, badly signed, for another ledger, out of
               its chain (one before it removed or replaced), or whose signed root the
               entries do not hash to
    ROLLBACK   the newest checkpoint is older than the last one verified (--state)
    FORK       a checkpoint of the same size as one verified before, with another root,
               or one that does not extend it

Segments are verified in parallel processes, each in memory bounded by one segment.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import wal
from .chain import GENESIS_PREV
from .hashing import as_rows, mac_links, table_leaf_hashes
from .keys import Keyring, key_check
from .anchors import check_anchors, check_tree, entry_roots, read_anchors, save_state, tile_problem
from .checkpoints import tree_dir
from .errors import LedgerError
from .recovery import REPAIR_EVENT, Examination, examine
from .merkle import aligned_subtrees, perfect_root
from .problems import KINDS, Problem
from .read import LedgerSnapshot, snapshot
from .schema import TABLES
from .storage import NO_PREV, SEGMENT_FILE, Layout, held_elsewhere, SegmentRecord, read_meta, record_mac
from .tiles import TILE_WIDTH, stored_leaf_tiles

MAX_PROBLEMS_PER_KIND = 50  # per segment; the total count is still reported
PARALLEL_MIN_ENTRIES = 200_000


@dataclass
class VerifyReport:
    path: str
    ledger_id: str
    entries: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    segments: int = 0
    files: int = 0
    wal_entries: int = 0
    head_seq: int | None = None
    key_ids: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)  # problems beyond the per-kind cap
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    mode: str = "hmac"  # "hmac": with the secret key; "public": with public keys only
    checkpoint: dict | None = None  # the newest verified checkpoint (size, root, time, signer)
    losses: list[dict] = field(default_factory=list)  # acknowledged entries lost, as repair entries record them
    entries_checked: bool = False  # every entry was checked: then problems without a seq (files, checkpoints) leave them intact; an unreadable file's entries are GAPs

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None

    def kinds(self) -> set[str]:
        return {p.kind for p in self.problems}

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "mode": self.mode,
            "path": self.path,
            "ledger_id": self.ledger_id,
            "entries": self.entries,
            "tables": self.tables,
            "segments": self.segments,
            "files": self.files,
            "wal_entries": self.wal_entries,
            "head_seq": self.head_seq,
            "key_ids": self.key_ids,
            "first_bad_seq": self.first_bad_seq,
            "entries_checked": self.entries_checked,
            "problems": [p.to_dict() for p in self.problems],
            "suppressed": self.suppressed,
            "notes": self.notes,
            "checkpoint": self.checkpoint,
            "losses": self.losses,
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def to_text(self) -> str:
        lines = [
            f"ledger   {self.path} ({self.ledger_id})",
            f"entries  {self.entries} in {self.segments} segments, {self.files} files"
            + (f", {self.wal_entries} in the write-ahead log" if self.wal_entries else ""),
            "tables   " + ", ".join(f"{t} {n}" for t, n in sorted(self.tables.items())),
        ]
        if self.key_ids:
            lines.append(f"keys     {', '.join(self.key_ids)}")
        if self.checkpoint:
            c = self.checkpoint
            lines.append(f"checkpoint size {c['size']} root {c['root']} signed {c['time']} by {', '.join(c['signed_by'])}")
        lines += [f"note     {n}" for n in self.notes]
        lines += [f"LOSS     {describe_loss(loss)}" for loss in self.losses]
        losses = f"; {len(self.losses)} recorded loss(es) of acknowledged entries, above" if self.losses else ""
        if self.ok and self.mode == "public":
            lines.append(f"OK       every checkpoint, signature, root, file and sequence number verified with public keys in {self.elapsed_s:.2f}s{losses}")
        elif self.ok:
            lines.append(f"OK       every MAC, link, sequence number and file verified in {self.elapsed_s:.2f}s{losses}")
        else:
            if self.first_bad_seq is not None:
                lines.append(f"FAILED   {len(self.problems)} problem(s); first bad sequence number {self.first_bad_seq}")
            elif self.entries_checked:
                lines.append(f"FAILED   {len(self.problems)} problem(s), none in an entry: the entries themselves are intact")
            else:
                lines.append(f"FAILED   {len(self.problems)} problem(s); the entries could not be checked")
            lines += [f"  {p}" for p in self.problems]
            lines += [f"  ... and {n} more {kind} problem(s)" for kind, n in self.suppressed.items()]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- one segment


# The segment check below is shared by both verifiers (this module and ledger/public.py):
# a task names one segment's files and what to compute, a result holds what was found.


@dataclass
class SegmentTask:
    """One segment (or the unsealed log) to check, in a worker process."""

    root: str
    ledger_id: bytes
    first_seq: int
    last_seq: int
    prev_mac: bytes  # MAC of entry first_seq - 1 (as the manifest records it)
    files: list[tuple[str, str, int | None, str]]  # (table, relative path, rows, sha256) of present files
    wal_tables: dict[str, pa.Table] | None = None  # instead of files, for the unsealed log
    public: bool = False  # no MACs: compute the Merkle subtrees instead
    cuts: tuple[int, ...] = ()  # tree sizes inside (first_seq, last_seq] to split the subtrees at
    tree: tuple[str, int] | None = None  # (directory, committed size) of the stored tree to compare leaves with
    listed_by: str = "the manifest"  # who vouches for the files, for messages


@dataclass
class SegmentResult:
    """What checking one segment found."""

    first_seq: int
    last_seq: int
    problems: list[Problem]
    suppressed: dict[str, int]
    tables: dict[str, int]
    entries: int
    last_mac: bytes | None  # stored MAC of last_seq, if present
    key_changes: list[tuple[int, str]]  # (seq, key id) where the key id differs from the previous row
    first_key_id: str | None
    key_events: list[tuple[int, str, str]]  # (seq, key id, details JSON) of genesis / key_rotation
    subtrees: list[list[tuple[int, bytes]]] | None = None  # per range between cuts; None if entries are missing
    tile_mismatches: list[tuple[str, int]] = field(default_factory=list)  # (tile, first entry whose stored leaf hash differs)


_KEYS: dict[str, bytes] = {}


def _init_worker(keys: dict[str, bytes]) -> None:
    _KEYS.clear()
    _KEYS.update(keys)


class ProblemCollector:
    """Problems as found, at most MAX_PROBLEMS_PER_KIND of each kind kept (all counted)."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.counts: dict[str, int] = {}

    def add(self, problem: Problem) -> None:
        n = self.counts.get(problem.kind, 0) + 1
        self.counts[problem.kind] = n
        if n <= MAX_PROBLEMS_PER_KIND:
            self.problems.append(problem)

    def suppressed(self) -> dict[str, int]:
        return {k: n - MAX_PROBLEMS_PER_KIND for k, n in self.counts.items() if n > MAX_PROBLEMS_PER_KIND}


def _ranges(values: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs in a sorted array of ints."""
    if not len(values):
        return []
    breaks = np.flatnonzero(np.diff(values) != 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(values) - 1]))
    return [(int(values[s]), int(values[e])) for s, e in zip(starts, ends)]


def _load_file(task: SegmentTask, table: str, rel: str, rows: int, digest: str, out: ProblemCollector) -> pa.Table | None:
    path = Path(task.root) / rel
    try:
        raw = path.read_bytes()  # read once: hashed, then parsed from memory
    except OSError as e:
        out.add(Problem("FILE", f"unreadable ({e.strerror})", table=table, file=rel))
        return None
    actual = hashlib.sha256(raw).hexdigest()
    if actual != digest:
        out.add(Problem("FILE", f"SHA-256 is {actual[:16]}..., {task.listed_by} lists {digest[:16]}...", table=table, file=rel))
    try:
        metadata = pq.read_metadata(pa.BufferReader(raw))
        columns = None
        if task.public:
            # Checking MACs needs the key: public verification neither reads nor decodes them.
            names = metadata.schema.to_arrow_schema().names
            expected = TABLES[table].arrow_schema.names
            if names != expected:
                out.add(Problem("INVALID", f"columns are {names}, expected {expected}", table=table, file=rel))
                return None
            columns = [n for n in names if n != "mac"]
        # One thread: the verifier already runs one process per core, and Arrow's pool on
        # top of that only contends (measured 1.6x slower per file on 2 cores). read_table,
        # not ParquetFile(metadata=...).read: parsing the footer twice costs far less than
        # the latter's slower read path (3x here).
        data = pq.read_table(pa.BufferReader(raw), columns=columns, use_threads=False,
                             read_dictionary=_low_cardinality_strings(metadata))
    except Exception as e:  # any unreadable file is reported, never raised
        out.add(Problem("FILE", f"unreadable Parquet ({type(e).__name__}: {e})", table=table, file=rel))
        return None
    if rows is not None and len(data) != rows:
        out.add(Problem("FILE", f"holds {len(data)} rows, {task.listed_by} lists {rows}", table=table, file=rel))
    return data


def _low_cardinality_strings(metadata: pq.FileMetaData) -> list[str]:
    """Top-level string columns whose first row group's dictionary is tiny (a few distinct
    values: actor, key id, model version, ...). Read as dictionaries, they are not expanded
    into one string per row (measured 1.4x faster reads); their encoding is the same."""
    if metadata.num_row_groups == 0:
        return []
    group = metadata.row_group(0)
    found = []
    for i in range(group.num_columns):
        chunk = group.column(i)
        if chunk.physical_type != "BYTE_ARRAY" or "." in chunk.path_in_schema or not chunk.has_dictionary_page:
            continue
        if chunk.dictionary_page_offset is not None and chunk.data_page_offset - chunk.dictionary_page_offset <= group.num_rows // 4:
            found.append(chunk.path_in_schema)
    return found


def _conform(spec, data: pa.Table, rel: str | None, out: ProblemCollector, *, without_mac: bool = False) -> pa.Table | None:
    """The table in exactly the schema a reader is promised (less the MACs, for public
    verification), or None (reported)."""
    schema = spec.arrow_schema
    if without_mac:
        schema = schema.remove(schema.get_field_index("mac"))
    if data.column_names != schema.names:
        out.add(Problem("INVALID", f"columns are {data.column_names}, expected {schema.names}", table=spec.name, file=rel))
        return None
    # A column read as a dictionary of the promised type stays one (its values are checked
    # against the type; its rows encode the same as the plain column's).
    schema = pa.schema([
        pa.field(f.name, pa.dictionary(pa.int32(), f.type), f.nullable, f.metadata)
        if data.schema.field(f.name).type == pa.dictionary(pa.int32(), f.type) else f
        for f in schema
    ], metadata=schema.metadata)
    try:
        return data.cast(schema, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        out.add(Problem("INVALID", f"column types differ from the table schema ({e})", table=spec.name, file=rel))
        return None


def verify_segment(task: SegmentTask) -> SegmentResult:
    out = ProblemCollector()
    parts: list[tuple[str, str | None, pa.Table]] = []
    if task.wal_tables is not None:
        parts = [(name, None, t) for name, t in task.wal_tables.items()]
    else:
        for table, rel, rows, digest in task.files:
            data = _load_file(task, table, rel, rows, digest, out)
            if data is not None:
                parts.append((table, rel, data))

    seq_parts, leaf_parts, mac_parts, key_parts, source_parts = [], [], [], [], []
    sources: list[tuple[str, str | None]] = []  # (table, file) of each part
    counts: dict[str, int] = {}
    key_events: list[tuple[int, str, str]] = []
    for table, rel, data in parts:
        spec = TABLES[table]
        data = _conform(spec, data, rel, out, without_mac=task.public)
        if data is None:
            continue
        counts[table] = counts.get(table, 0) + len(data)
        seqs = data.column("seq").to_numpy()
        if len(seqs) > 1:
            backwards = np.flatnonzero(np.diff(seqs) <= 0)
            for i in backwards[:MAX_PROBLEMS_PER_KIND]:
                out.add(Problem("ORDER", f"follows seq {int(seqs[i])} in the file", int(seqs[i + 1]), table, rel))
        outside = (seqs < task.first_seq) | (seqs > task.last_seq)
        for i in np.flatnonzero(outside)[:MAX_PROBLEMS_PER_KIND]:
            out.add(Problem("EXTRA", f"outside its segment {task.first_seq}-{task.last_seq}", int(seqs[i]), table, rel))
        moved = pc.not_equal(data.column("table_name"), table)
        if pc.any(moved).as_py():
            names = data.column("table_name").to_pylist()
            for i in np.flatnonzero(np.asarray(moved))[:MAX_PROBLEMS_PER_KIND]:
                out.add(Problem("INVALID", f"row of table {names[i]!r} stored in table {table!r}", int(seqs[i]), table, rel))
        seq_parts.append(seqs)
        source_parts.append(np.full(len(seqs), len(sources), dtype=np.int32))
        sources.append((table, rel))
        leaf_parts.append(as_rows(table_leaf_hashes(spec, task.ledger_id, data)))
        if not task.public:
            mac_parts.append(_mac_rows(data.column("mac")))
        key_parts.append(data.column("key_id").combine_chunks())
        if table == "operation":
            events = pc.is_in(data.column("event_type"), value_set=pa.array(["genesis", "key_rotation", REPAIR_EVENT]))
            if pc.any(events).as_py():
                picked = data.filter(events)
                for s, k, d in zip(picked["seq"].to_pylist(), picked["key_id"].to_pylist(), picked["details"].to_pylist()):
                    key_events.append((s, k, d or "{}"))

    seqs = np.concatenate(seq_parts) if seq_parts else np.empty(0, dtype=np.int64)
    order = np.argsort(seqs, kind="stable")
    seqs = seqs[order]
    leaves = np.concatenate(leaf_parts)[order] if leaf_parts else np.empty((0, 32), np.uint8)
    key_names, key_codes = _codes(key_parts)
    key_codes = key_codes[order]
    source_of = np.concatenate(source_parts)[order] if source_parts else np.empty(0, dtype=np.int32)

    dup = np.flatnonzero(np.diff(seqs) == 0)
    for i in dup[:MAX_PROBLEMS_PER_KIND]:
        table, rel = sources[source_of[i + 1]]
        out.add(Problem("DUPLICATE", "sequence number stored more than once", int(seqs[i]), table, rel))
    expected = np.arange(task.first_seq, task.last_seq + 1, dtype=np.int64)
    for lo, hi in _ranges(np.setdiff1d(expected, seqs, assume_unique=True)):
        out.add(Problem("GAP", f"entries {lo}-{hi} are missing" if hi > lo else f"entry {lo} is missing", lo))

    complete = len(seqs) == len(expected) and np.array_equal(seqs, expected)
    subtrees = _subtrees(task, leaves) if complete and (task.public or task.cuts) else None  # only anchors need roots
    mismatches = _tile_mismatches(task, leaves) if complete and task.tree else []
    if task.public:
        return SegmentResult(
            task.first_seq, task.last_seq, out.problems, out.suppressed(), counts, len(seqs), None, [], None, key_events,
            subtrees, mismatches,
        )
    macs = np.concatenate(mac_parts)[order] if mac_parts else np.empty((0, 32), np.uint8)

    # Links: each entry against the stored MAC of its predecessor (the last copy of seq - 1,
    # which sorts just before it). A duplicate's second copy and an entry whose predecessor
    # is missing are not checked: DUPLICATE and GAP already report them.
    n = len(seqs)
    prevs = np.empty((n, 32), dtype=np.uint8)
    checkable = np.zeros(n, dtype=bool)
    if n:
        prevs[1:] = macs[:-1]
        checkable[1:] = seqs[:-1] == seqs[1:] - 1
        first = seqs == task.first_seq
        first[1:] &= seqs[:-1] != seqs[1:]
        prevs[first] = np.frombuffer(task.prev_mac, dtype=np.uint8)
        checkable |= first
    for code, key_id in enumerate(key_names):
        key = _KEYS.get(key_id)
        if key is None:
            continue  # reported once by the caller as a KEY problem
        positions = np.flatnonzero(checkable & (key_codes == code))
        if not len(positions):
            continue
        computed = as_rows(mac_links(key, prevs[positions].tobytes(), leaves[positions].tobytes()))
        for b in np.flatnonzero(np.any(computed != macs[positions], axis=1))[:MAX_PROBLEMS_PER_KIND * 4]:
            i = positions[b]
            table, rel = sources[source_of[i]]
            out.add(Problem("INVALID", "MAC does not match the entry and its predecessor", int(seqs[i]), table, rel, key_id=key_id))

    changes = np.flatnonzero(key_codes[1:] != key_codes[:-1]) + 1
    key_changes = [(int(seqs[i]), key_names[key_codes[i]]) for i in changes]
    last = np.flatnonzero(seqs == task.last_seq)
    return SegmentResult(
        task.first_seq,
        task.last_seq,
        out.problems,
        out.suppressed(),
        counts,
        n,
        macs[last[-1]].tobytes() if len(last) else None,
        key_changes,
        key_names[key_codes[0]] if n else None,
        key_events,
        subtrees,
        mismatches,
    )


def _tile_mismatches(task: SegmentTask, leaves: np.ndarray) -> list[tuple[str, int]]:
    """Each level-0 tile of the stored tree whose leaf hashes differ from the segment's
    (complete) entries, with the first entry that differs. A short or missing tile is left
    to the store's own check."""
    directory, size = task.tree
    end = min(task.last_seq + 1, size)
    out = []
    for rel, first_leaf, data in stored_leaf_tiles(directory, size, task.first_seq, end):
        lo, hi = max(first_leaf, task.first_seq), min(first_leaf + TILE_WIDTH, end)
        stored = np.frombuffer(data, dtype=np.uint8)[32 * (lo - first_leaf) : 32 * (hi - first_leaf)]
        if len(stored) != 32 * (hi - lo):
            continue
        differ = np.flatnonzero(np.any(stored.reshape(-1, 32) != leaves[lo - task.first_seq : hi - task.first_seq], axis=1))
        if len(differ):
            out.append((rel, lo + int(differ[0])))
    return out


def _subtrees(task: SegmentTask, leaves: np.ndarray) -> list[list[tuple[int, bytes]]]:
    """Perfect subtree roots covering the segment, split at the requested tree sizes."""
    bounds = [task.first_seq, *[c for c in task.cuts if task.first_seq < c <= task.last_seq], task.last_seq + 1]
    out = []
    for begin, end in zip(bounds, bounds[1:]):
        out.append([
            (level, perfect_root(leaves[start - task.first_seq : start - task.first_seq + (1 << level)].tobytes()))
            for level, start in aligned_subtrees(begin, end)
        ])
    return out


def _mac_rows(column: pa.ChunkedArray) -> np.ndarray:
    arr = column.combine_chunks()
    if arr.null_count:
        arr = arr.fill_null(bytes(32))
    return np.frombuffer(arr.buffers()[1], dtype=np.uint8, count=32 * (arr.offset + len(arr)))[32 * arr.offset :].reshape(-1, 32)


def _codes(parts: list[pa.Array]) -> tuple[list[str], np.ndarray]:
    """Distinct key ids, and each row's index into them."""
    if not parts:
        return [], np.empty(0, dtype=np.int32)
    keys = pa.concat_arrays([p.cast(pa.string()) for p in parts])
    names = pc.unique(keys).to_pylist()
    return names, np.asarray(pc.index_in(keys, value_set=pa.array(names, pa.string())), dtype=np.int32)


# ---------------------------------------------------------------------------- whole ledger


def _snapshot(layout: Layout, keyring: Keyring, ledger_id: bytes) -> LedgerSnapshot:
    """The ledger as of one instant (ledger.read.snapshot), with what a writer's recovery
    would find at that instant (`examined`; None when the manifest or a key stops it,
    which is reported)."""
    def writers_view(at: Layout) -> Examination | None:
        try:
            return examine(at, keyring, ledger_id)
        except LedgerError:
            return None

    return snapshot(layout.root, examine=writers_view)


def account_files(listed: Iterable[str], present: Iterable[str], notes: list[str], sealed_to: int | None = None) -> tuple[set[str], list[str]]:
    """The listed files that are present, and the present files that are not listed.

    A seal writes its segment files first and its manifest record last (the commit point):
    files of the segment after the last record (first sequence number `sealed_to` + 1) are
    a seal in progress, or one a crash stopped. They are noted, never read as evidence, and
    the next writer removes them; any other unlisted file is a failure."""
    listed, present = set(listed), set(present)
    found = listed & present
    unlisted = []
    for rel in sorted(present - listed):
        named = SEGMENT_FILE.fullmatch(rel)
        if sealed_to is not None and named is not None and int(named.group(2)) == sealed_to + 1:
            notes.append(f"{rel}: written by a seal not yet recorded in the manifest (in progress, or stopped by a crash); "
                         "not read as evidence")
        else:
            unlisted.append(rel)
    return found, unlisted


def verify_ledger(
    path: str | os.PathLike[str],
    keyring: Keyring,
    *,
    state_path: str | os.PathLike[str] | None = None,
    extra_checkpoints: Sequence[bytes] = (),
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify everything the ledger can check with its HMAC keys, and the entries against
    its signed checkpoints (checked with the keyring's public keys), its stored tree, and
    the checkpoints and state given (ledger/anchors.py)."""
    started = time.perf_counter()
    layout = Layout(Path(path))
    meta = read_meta(layout)
    report, recorded = _verify_hmac(layout, meta.ledger_id, keyring, state_path, extra_checkpoints, workers, progress)
    if recorded is not None and recorded != meta.ledger_id:
        # Every leaf encodes the ledger id: an edited LEDGER.json fails every entry. If the
        # entries verify under the id their genesis records, that is the one problem.
        under_recorded, _ = _verify_hmac(layout, recorded, keyring, state_path, extra_checkpoints, workers, progress)
        if not any(p.seq == 0 and p.kind in ("INVALID", "KEY") for p in under_recorded.problems):
            report = under_recorded
            report.problems.insert(0, Problem("META", f"the ledger id changed: LEDGER.json says {meta.ledger_id}, the genesis entry "
                                              f"records {recorded}, and every entry verifies under {recorded}", file="LEDGER.json"))
    save_state(state_path, report)
    report.elapsed_s = time.perf_counter() - started
    return report


def _genesis_ledger_id(key_events: list[tuple[int, str, str]]) -> str | None:
    """The ledger id the genesis entry records, if it is one."""
    value = next((_json_object(d).get("ledger_id") for seq, _, d in key_events if seq == 0), None)
    if isinstance(value, str) and len(value) == 32:
        try:
            bytes.fromhex(value)
            return value
        except ValueError:
            pass
    return None


def _verify_hmac(layout: Layout, ledger_id_hex: str, keyring: Keyring, state_path, extra_checkpoints, workers, progress) -> tuple[VerifyReport, str | None]:
    """The verification under one ledger id, and the ledger id the genesis entry records."""
    ledger_id = bytes.fromhex(ledger_id_hex)
    snap = _snapshot(layout, keyring, ledger_id)
    report = VerifyReport(str(layout.root), ledger_id_hex)
    collector = ProblemCollector()
    add = collector.add

    # 1. The manifest: MACs, hash links, contiguous ranges.
    for message in snap.manifest_problems:
        add(Problem("MANIFEST", message))
    prev_line, expected_first = NO_PREV, 0
    missing_keys: dict[str, int] = {}
    for r in snap.records:
        if r.prev != prev_line:
            add(Problem("MANIFEST", "hash link to the previous manifest line is broken (a line was removed, edited or reordered)", r.first_seq))
        if r.key_id in keyring.keys:
            if record_mac(keyring.key(r.key_id), r.body()) != r.mac:
                add(Problem("MANIFEST", f"manifest line for {r.first_seq}-{r.last_seq} fails its MAC", r.first_seq, key_id=r.key_id))
        else:
            missing_keys.setdefault(r.key_id, r.first_seq)
        if r.first_seq > expected_first:
            add(Problem("GAP", f"no segment holds entries {expected_first}-{r.first_seq - 1}", expected_first))
        elif r.first_seq < expected_first:
            add(Problem("MANIFEST", f"segment {r.first_seq}-{r.last_seq} overlaps the previous one", r.first_seq))
        expected_first = max(expected_first, r.last_seq + 1)
        prev_line = r.line_hash

    # 2. The set of files.
    listed = {f.path: (r, f) for r in snap.records for f in r.files}
    present, unlisted = account_files(listed, snap.present, report.notes, snap.records[-1].last_seq if snap.records else -1)
    for rel in unlisted:
        add(Problem("EXTRA", "file is not listed in the manifest", file=rel))
    for rel in sorted(listed.keys() - present):
        r, f = listed[rel]
        add(Problem("MISSING", f"listed file of segment {r.first_seq}-{r.last_seq} ({f.rows} rows) is absent", table=f.table, file=rel))

    # 3. Segments, in parallel, with the roots and tree leaves the anchors need.
    anchors = read_anchors(layout, keyring.verifiers(), ledger_id_hex, add, report.notes,
                           state_path=state_path, extra_checkpoints=extra_checkpoints)
    tree = (str(tree_dir(layout)), anchors.tree_size) if anchors.tree_size else None
    tasks = []
    prev_mac = GENESIS_PREV
    for r in snap.records:
        files = [(f.table, f.path, f.rows, f.sha256) for f in r.files if f.path in present]
        tasks.append(SegmentTask(str(layout.root), ledger_id, r.first_seq, r.last_seq, prev_mac, files, cuts=anchors.cuts(), tree=tree))
        prev_mac = bytes.fromhex(r.last_mac)
    results = run_tasks(tasks, keyring.keys, workers, progress, sum(r.last_seq - r.first_seq + 1 for r in snap.records))
    sealed = list(results)

    # 4. The write-ahead log (entries acknowledged but not yet sealed): the frames that
    # continue the chain, as a writer takes them (ledger/recovery.py).
    scan = wal.scan(io.BytesIO(snap.wal_bytes), keep_payload=True)
    sealed_to = snap.records[-1].last_seq if snap.records else -1
    frames = [fr for fr in scan.frames if fr.last_seq > sealed_to]
    if snap.examined is not None:
        frames = snap.examined.kept
        _check_log_frames(snap.examined, snap.head, add, report.notes)
    if scan.problem:
        if snap.head is not None and scan.valid_end < snap.head.wal_size:
            add(Problem("TRUNCATED", f"write-ahead log: {scan.problem}, inside the {snap.head.wal_size} bytes the persisted head counts as acknowledged"))
        else:
            report.notes.append(f"write-ahead log: {scan.problem}; those bytes were never acknowledged and are dropped when the ledger is next opened")
    if frames:
        tables: dict[str, list[pa.Table]] = {}
        for fr in frames:
            for name, t in fr.tables().items():
                tables.setdefault(name, []).append(t)
        if frames[0].first_seq != expected_first:
            add(Problem("GAP", f"write-ahead log starts at {frames[0].first_seq}, expected {expected_first}", min(expected_first, frames[0].first_seq)))
        _init_worker(keyring.keys)
        wal_task = SegmentTask(str(layout.root), ledger_id, frames[0].first_seq, frames[-1].last_seq, prev_mac, [], {n: pa.concat_tables(ts) for n, ts in tables.items()})
        wal_result = verify_segment(wal_task)
        results.append(wal_result)
        report.wal_entries = wal_result.entries
        if wal_result.last_mac is not None and wal_result.last_mac != frames[-1].last_mac:
            add(Problem("INVALID", "write-ahead log frame header disagrees with its last entry", frames[-1].last_seq))

    # 5. Join the segments: boundaries, keys, head.
    key_changes: list[tuple[int, str]] = []
    key_events: list[tuple[int, str, str]] = []
    previous_key: str | None = None
    for record, result in zip(list(snap.records) + [None] * (len(results) - len(snap.records)), results):
        for p in result.problems:
            add(p)
        for kind, n in result.suppressed.items():
            report.suppressed[kind] = report.suppressed.get(kind, 0) + n
        for t, n in result.tables.items():
            report.tables[t] = report.tables.get(t, 0) + n
        report.entries += result.entries
        chained = record is None or result.last_mac is None or result.last_mac.hex() == record.last_mac
        entries_sound = not any(p.seq is not None for p in result.problems)
        if not chained and not entries_sound:
            add(Problem("INVALID", "last entry's MAC differs from the one its manifest line records", record.last_seq))
        elif not chained:
            add(_not_this_chain(record, result))
        elif result.tile_mismatches and entries_sound:
            for tile, seq in result.tile_mismatches:  # the entries verify: the tile is what changed
                add(tile_problem(tile, f"the leaf hash stored for entry {seq} is not that entry's, which verifies with the HMAC key"))
        if result.first_key_id is not None:
            if previous_key is not None and result.first_key_id != previous_key:
                key_changes.append((result.first_seq, result.first_key_id))
            elif previous_key is None:
                key_changes.append((result.first_seq, result.first_key_id))
            key_changes.extend(result.key_changes)
            previous_key = key_changes[-1][1] if key_changes else previous_key
        key_events.extend(result.key_events)
    report.segments = len(snap.records)
    report.files = len(listed)

    # 6. The anchors: checkpoints, outside checkpoints and state, the stored tree.
    stored = check_tree(layout, anchors, add, report.notes, expected_first)
    mismatches = sorted(seq for r in sealed for _, seq in r.tile_mismatches)
    check_anchors(layout, anchors, entry_roots(tasks, sealed), add, report.notes,
                  lambda c: next((s for s in mismatches if s < c.size), None) if stored.trusted_at(c.size) else None)

    _check_keys(ledger_id_hex, keyring, key_changes, key_events, missing_keys, collector, report)
    report.losses = recorded_losses(key_events)
    covered_to = max(expected_first - 1, frames[-1].last_seq if frames else -1)
    if snap.head is None:
        add(Problem("HEAD", "the persisted head (HEAD) is missing or unreadable"))
    else:
        report.head_seq = snap.head.seq
        boundaries = {r.last_seq: bytes.fromhex(r.last_mac) for r in snap.records} | {fr.last_seq: fr.last_mac for fr in frames}
        check_head(snap.head, covered_to, (snap.records[-1].first_seq, sealed_to) if snap.records else None,
                   lambda seq: boundaries[seq] if seq in boundaries else stored_entry_mac(layout.root, sorted(present), seq),
                   add, report.notes, elsewhere=held_elsewhere(layout, snap.head, sealed_to))

    problems = collector.problems
    for kind, n in collector.suppressed().items():
        report.suppressed[kind] = report.suppressed.get(kind, 0) + n
    report.problems = sorted(problems, key=lambda p: (p.seq if p.seq is not None else -1, KINDS.index(p.kind), p.file or ""))
    report.entries_checked = True
    report.checkpoint = anchors.newest.summary() if anchors.newest else None
    return report, _genesis_ledger_id(key_events)


def _not_this_chain(record: SegmentRecord, result: SegmentResult) -> Problem:
    """A segment whose entries end in another MAC than its manifest line records: entries
    from another copy of the chain (a fork). Pinned where the stored tree's leaves show the
    entries diverge, else at the segment's first entry (the earliest that may)."""
    if result.tile_mismatches:
        seq = min(s for _, s in result.tile_mismatches)
        return Problem("INVALID", f"from entry {seq} on, the segment's entries differ from the stored tree and end in another MAC "
                       f"than its manifest line records: they do not continue this ledger's chain", seq)
    return Problem("INVALID", f"entries {record.first_seq}-{record.last_seq} end in another MAC than their manifest line records: "
                   f"from one of them on they do not continue this ledger's chain", record.first_seq)


def _check_log_frames(exam: Examination, head, add, notes: list[str]) -> None:
    """Frames a writer would refuse (duplicated, out of place, from elsewhere): a problem if
    HEAD counts them as acknowledged, else a note."""
    acknowledged = head.wal_size if head is not None else 0
    refused = "a writer refuses the log until `mrm repair` rewrites it"
    for frame, why in exam.dropped:
        where = f"write-ahead log: the frame at byte {frame.start} (entries {frame.first_seq}-{frame.last_seq}) {why}"
        if frame.start < acknowledged:
            duplicate = any(k.first_seq == frame.first_seq and k.last_seq == frame.last_seq for k in exam.kept)
            add(Problem("DUPLICATE" if duplicate else "INVALID", f"{where}, inside the {acknowledged} bytes HEAD counts as acknowledged",
                        None if duplicate else frame.first_seq))
        else:
            notes.append(f"{where}; HEAD does not count it, so no acknowledged entry is affected; {refused}")
    if not exam.dropped and not exam.in_order:
        frame = next(b for a, b in zip(exam.kept, exam.kept[1:]) if a.end != b.start)
        notes.append(f"write-ahead log: the frame at byte {frame.start} (entries {frame.first_seq}-{frame.last_seq}) stands out of "
                     f"sequence order; every frame continues the chain and was verified in chain order; {refused}")


def _check_keys(ledger_id_hex, keyring, key_changes, key_events, missing_keys, collector: ProblemCollector, report: VerifyReport) -> None:
    """Key ids must follow the genesis and rotation entries, and each key must be the one
    the ledger recorded when it started using it."""
    ledger_id = bytes.fromhex(ledger_id_hex)
    events = {seq: (key_id, _json_object(details)) for seq, key_id, details in sorted(key_events)}
    expected_checks: dict[str, tuple[int, str]] = {}
    announced: dict[int, str] = {}  # seq of first entry under a new key -> key id
    genesis = events.get(0)
    if genesis is None or genesis[1].get("ledger_id") != ledger_id_hex:
        if genesis is not None:
            collector.add(Problem("INVALID", "genesis entry names another ledger id", 0, "operation"))
    else:
        expected_checks[genesis[1].get("key_id")] = (0, genesis[1].get("key_check"))
        announced[0] = genesis[1].get("key_id")
    for seq, (key_id, details) in events.items():
        if seq and "new_key_id" in details:
            expected_checks[details["new_key_id"]] = (seq, details.get("new_key_check"))
            announced[seq + 1] = details["new_key_id"]
    report.key_ids = sorted({k for _, k in key_changes})

    wrong: set[str] = set()
    for key_id in report.key_ids:
        first_seq = next(s for s, k in key_changes if k == key_id)
        if key_id not in keyring.keys:
            collector.add(Problem("KEY", f"no key for key id {key_id!r} in {keyring.source}; its entries cannot be verified", first_seq, key_id=key_id))
            continue
        recorded = expected_checks.get(key_id)
        if recorded is not None and recorded[1] != key_check(keyring.key(key_id), ledger_id):
            wrong.add(key_id)
            collector.add(
                Problem("KEY", f"the key given for key id {key_id!r} is not the one this ledger recorded: a wrong key, or the ledger was re-keyed", first_seq, key_id=key_id)
            )
    for key_id, seq in missing_keys.items():
        if key_id not in {k for _, k in key_changes}:
            collector.add(Problem("KEY", f"no key for key id {key_id!r}; its manifest lines cannot be verified", seq, key_id=key_id))
    for seq, key_id in key_changes:
        if announced.get(seq) != key_id:
            collector.add(Problem("KEY", f"entries switch to key id {key_id!r} without a rotation entry announcing it", seq, key_id=key_id))
    if wrong:
        # With the wrong key every MAC fails: that is one KEY problem, not millions of edits.
        collector.problems = [p for p in collector.problems if not (p.kind in ("INVALID", "MANIFEST") and p.key_id in wrong)]


def recorded_losses(key_events: list[tuple[int, str, str]]) -> list[dict]:
    """The acknowledged ranges that `ledger_repair` entries record as lost, in order."""
    out = []
    for seq, _, details in sorted(key_events):
        doc = _json_object(details)
        if "lost_first_seq" in doc:
            out.append({"first_seq": doc["lost_first_seq"], "last_seq": doc["lost_last_seq"], "entries": doc.get("lost_entries"),
                        "last_known_mac": doc.get("last_known_mac"), "recorded_at_seq": seq, "reason": doc.get("reason")})
    return out


def describe_loss(loss: dict) -> str:
    return (f"entries {loss['first_seq']}-{loss['last_seq']} were acknowledged and lost; a repair entry at seq "
            f"{loss['recorded_at_seq']} records it (newest lost MAC {str(loss['last_known_mac'])[:16]}..., reason: "
            f"{loss['reason']!r}); the sequence numbers from {loss['first_seq']} on now hold later entries")


def _json_object(text: str) -> dict:
    """Details of a key event; an edited, unparsable one counts as empty (its MAC fails)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def check_head(head, covered_to: int, newest_sealed: tuple[int, int] | None, entry_mac: Callable[[int], bytes | None],
               add: Callable[[Problem], None], notes: list[str], *, elsewhere: bool = False) -> None:
    """The persisted head against the entries a verifier holds (`covered_to`: the last
    sequence number they account for; `newest_sealed`: the newest sealed segment's range;
    `entry_mac(seq)`: the MAC stored with an entry, None if it is not held). HEAD carries
    no MAC of its own, so each of its claims is checked against the entries:

    - it may not count entries that are not here (TRUNCATED), with one exception: entries
      HEAD says another writer holds in its local write-ahead log, not yet sealed
      (`elsewhere`, only while HEAD claims no sealed entry beyond the data). Nothing in the
      store can hold them, so nothing here can be missing; they are reported as not
      verified here (a note naming the writer and the range), and verify on that writer's
      machine, or anywhere once sealed (within the checkpoint interval while it writes).
      Failing instead would fail every verification of a live ledger from elsewhere;
    - entries past it are kept (a writer stopped before publishing its head), but only as
      far as a writer leaves them: the newest seal's at most (a directory's writer fsyncs
      its head only at a seal's end, so a power loss can take it back one seal). A head
      further back was rolled back (HEAD);
    - its MAC must be the one stored with the entry it names (HEAD): a forged head with
      the right sequence number otherwise passes."""
    if head.seq > covered_to:
        if elsewhere and head.sealed_seq <= covered_to:
            notes.append(f"NOT VERIFIED HERE: entries {covered_to + 1}-{head.seq} are acknowledged in the write-ahead log of "
                         f"writer {head.writer}, not yet sealed; no store object holds them. They verify on that writer's "
                         "machine, or here once sealed")
        else:
            add(Problem("TRUNCATED", f"the data ends at {covered_to} but the persisted head is at {head.seq}"
                        + (f" and counts entries up to {head.sealed_seq} as sealed" if head.sealed_seq > covered_to else ""),
                        covered_to + 1))
        return
    if head.seq < covered_to:
        first, last = newest_sealed if newest_sealed else (0, -1)
        if head.seq < first - 1:
            add(Problem("HEAD", f"the persisted head is at {head.seq}, behind sealed entries {head.seq + 1}-{last}: HEAD was "
                        "rolled back (a writer leaves at most its newest seal past the head)", head.seq + 1))
            return
        notes.append(f"entries {head.seq + 1}-{covered_to} are past the persisted head (a writer did not close); they verify and are kept")
    if head.seq < 0:
        return
    stored = entry_mac(head.seq)
    if stored is not None and stored.hex() != head.mac:
        add(Problem("HEAD", f"the persisted head names entry {head.seq} with MAC {head.mac[:16]}..., which is not the MAC "
                    f"stored with that entry ({stored.hex()[:16]}...): HEAD was forged or comes from another chain", head.seq))


def stored_entry_mac(root: str | os.PathLike[str], files: Iterable[str], seq: int) -> bytes | None:
    """The MAC stored with entry `seq` in whichever of the segment files (relative to
    `root`) holds it; None if none does or a file cannot be read (reported elsewhere)."""
    for rel in files:
        named = SEGMENT_FILE.fullmatch(rel)
        if named is None or not int(named.group(2)) <= seq <= int(named.group(3)):
            continue
        try:
            data = pq.read_table(Path(root) / rel, columns=["seq", "mac"], filters=[("seq", "=", seq)])
        except Exception:  # noqa: BLE001 - an unreadable file is a FILE problem of its own
            continue
        if len(data):
            return data.column("mac")[0].as_py()
    return None


def run_tasks(tasks: list[SegmentTask], keys: dict[str, bytes], workers: int | None, progress, total: int) -> list[SegmentResult]:
    """Verify segments, in worker processes when there is enough to share."""
    workers = workers or os.cpu_count() or 1
    done = 0
    results: list[SegmentResult] = []
    if workers <= 1 or len(tasks) <= 1 or total < PARALLEL_MIN_ENTRIES:
        _init_worker(keys)
        for t in tasks:
            results.append(verify_segment(t))
            done += t.last_seq - t.first_seq + 1
            if progress:
                progress(done, total)
        return results
    ctx = multiprocessing.get_context("fork")
    with cf.ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx, initializer=_init_worker, initargs=(dict(keys),)) as pool:
        for t, r in zip(tasks, pool.map(verify_segment, tasks)):
            results.append(r)
            done += t.last_seq - t.first_seq + 1
            if progress:
                progress(done, total)
    return results
