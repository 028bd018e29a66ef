"""What a writer finds when it opens a ledger, and the one recorded way past a loss.

Opening a ledger for writing re-derives its head from the manifest (sealed segments) and
the write-ahead log. `examine` does that without changing anything, and says what it found:

* the frames that continue the chain: each frame's entries are numbered on from the last
  sealed entry and their MACs chain from its MAC, under keys the ledger recorded;
* frames that do not (a frame duplicated, reordered, or from elsewhere): a crash cannot
  make one, so the writer refuses to seal them rather than sign its own corruption;
* bytes after the last complete commit (a torn write), and whether HEAD counts them;
* entries HEAD records that neither the manifest nor the log holds: acknowledged entries
  that were lost (a log deleted or cut).

A writer refuses a ledger with a loss or a frame that does not continue the chain
(IntegrityError, exit 1), and changes nothing. `repair` is the only way on: it keeps every
frame that continues the chain, saves the original log under ``repairs/``, and writes an
operation entry (``event_type = "ledger_repair"``) that names what was dropped and which
acknowledged range was lost with its last known MAC. Both verifiers report that range for
ever after. A loss that a signed checkpoint or the stored tree already covers cannot be
accepted this way (the sequence numbers would be signed twice): restore the files instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import uuid
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import wal
from .chain import GENESIS_PREV
from .errors import IntegrityError, KeyringError
from .hashing import as_rows, mac_chain, segment_leaves
from .keys import Keyring, key_check
from .storage import Head, Layout, SegmentRecord, read_head, read_manifest, record_mac
from .store import ObjectExists
from .storage_io import write_file_atomic

REPAIR_EVENT = "ledger_repair"
REPAIRS_DIR = "repairs"


@dataclass
class Examination:
    """The ledger as a writer finds it (nothing changed)."""

    records: list[SegmentRecord]
    sealed: Head  # the head the manifest alone gives
    head: Head  # the head after the frames that continue the chain
    kept: list[wal.Frame]  # whole commits that continue the chain, in chain order
    dropped: list[tuple[wal.Frame, str]]  # complete frames that do not, and why
    wal_size: int
    torn: str | None  # why bytes after the last complete commit were not accepted
    torn_at: int  # where those bytes start
    persisted: Head | None  # HEAD as found
    repairs: list[dict] = field(default_factory=list)  # ledger_repair details found in the kept frames

    @property
    def lost(self) -> tuple[int, int] | None:
        """The acknowledged range HEAD records and nothing holds, unless a repair entry in
        the log already accepted it."""
        if self.persisted is None or self.persisted.seq <= self.head.seq:
            return None
        if any(r.get("lost_last_seq", -1) >= self.persisted.seq for r in self.repairs):
            return None
        return self.head.seq + 1, self.persisted.seq

    @property
    def torn_acknowledged(self) -> bool:
        """Whether HEAD counts bytes that the torn tail cut (then they were acknowledged)."""
        return self.torn is not None and self.persisted is not None and self.torn_at < self.persisted.wal_size

    @property
    def in_order(self) -> bool:
        """Whether the log is exactly its kept frames, in file order."""
        return not self.dropped and all(a.end == b.start for a, b in zip(self.kept, self.kept[1:]))

    @property
    def sound(self) -> bool:
        return self.lost is None and self.in_order

    def problems(self, where: str) -> list[str]:
        """What makes the ledger unfit to write, in words (empty when sound)."""
        out = []
        if self.lost is not None:
            first, last = self.lost
            cut = ""
            if self.torn_acknowledged:
                cut = f"; the log is cut at byte {self.torn_at} ({self.torn}) inside what HEAD counts ({self.persisted.wal_size} bytes)"
            out.append(
                f"{where}: HEAD records entries up to {self.persisted.seq}, but the manifest and the write-ahead log hold "
                f"entries only up to {self.head.seq}: entries {first}-{last} were acknowledged and are lost{cut}"
            )
        for frame, why in self.dropped:
            out.append(f"{where}: the write-ahead log's frame at byte {frame.start} (entries {frame.first_seq}-{frame.last_seq}) {why}")
        if not self.dropped and not self.in_order:
            frame = next(b for a, b in zip(self.kept, self.kept[1:]) if a.end != b.start)
            out.append(f"{where}: the write-ahead log's frame at byte {frame.start} (entries {frame.first_seq}-{frame.last_seq}) stands out of sequence order")
        return out


def examine(layout: Layout, keyring: Keyring, ledger_id: bytes) -> Examination:
    """Read the manifest, HEAD and the log, check every frame against the chain and the
    keys against what the ledger recorded. Raises KeyringError for a key that is not the
    ledger's; changes nothing."""
    records, problems = read_manifest(layout)
    if problems:
        raise IntegrityError(f"{layout.where}: the manifest: {problems[0]}; run `mrm verify`")
    persisted = read_head(layout)
    last = records[-1] if records else None
    if last is not None:
        _check_record_key(layout, keyring, last)
        sealed = Head(last.last_seq, last.last_mac, last.key_id, 0, last.last_seq)
    elif persisted is not None and persisted.seq == -1:
        sealed = persisted  # a ledger being created: nothing written yet
    else:
        sealed = Head(-1, GENESIS_PREV.hex(), persisted.key_id if persisted else keyring.active, 0, -1)
    try:
        data = layout.wal.read_bytes()
    except FileNotFoundError:
        data = b""
    scan = wal.scan(io.BytesIO(data), keep_payload=True)
    pending = [fr for fr in scan.frames if fr.last_seq > sealed.sealed_seq]
    kept, repairs = _chain(pending, sealed, keyring, ledger_id)
    dropped = [(fr, _why_not(fr, kept)) for fr in pending if not any(fr is k for k in kept)]
    head = sealed
    if kept:
        tail = kept[-1]
        head = Head(tail.last_seq, tail.last_mac.hex(), tail.next_key_id, tail.end, sealed.sealed_seq)
    return Examination(records, sealed, head, kept, dropped, scan.file_size, scan.problem, scan.valid_end, persisted, repairs)


def _check_record_key(layout: Layout, keyring: Keyring, record: SegmentRecord) -> None:
    key = keyring.key(record.key_id)
    if record_mac(key, record.body()) != record.mac:
        raise KeyringError(
            f"{layout.where}: the key given for key id {record.key_id!r} is not the one this ledger was written with "
            f"(the newest manifest line fails its MAC under it); nothing was written. Give the ledger's own keyring, "
            f"or run `mrm verify` if the manifest may have been edited"
        )


def _chain(frames: list[wal.Frame], sealed: Head, keyring: Keyring, ledger_id: bytes) -> tuple[list[wal.Frame], list[dict]]:
    """The longest run of whole commits that continues the chain from the sealed head, each
    frame taken wherever it stands in the log (a duplicate or a frame out of place is not)."""
    kept: list[wal.Frame] = []
    repairs: list[dict] = []
    committed = 0  # how many of `kept` end a commit
    seq, prev = sealed.seq + 1, bytes.fromhex(sealed.mac)
    candidates = list(frames)
    while True:
        found = None
        for fr in candidates:
            if fr.first_seq == seq and _continues(fr, prev, keyring, ledger_id, repairs):
                found = fr
                break
        if found is None:
            break
        candidates.remove(found)
        kept.append(found)
        seq, prev = found.last_seq + 1, found.last_mac
        if not found.more:
            committed = len(kept)
    return kept[:committed], repairs


def _continues(frame: wal.Frame, prev: bytes, keyring: Keyring, ledger_id: bytes, repairs: list[dict]) -> bool:
    """Whether the frame's entries are numbered on from `prev`'s and MACed in its chain."""
    tables = frame.tables()
    seqs, leaves = segment_leaves(tables, ledger_id)
    if not np.array_equal(seqs, np.arange(frame.first_seq, frame.last_seq + 1)):
        return False
    key_ids = {k for t in tables.values() for k in t.column("key_id").unique().to_pylist()}
    if len(key_ids) != 1:
        return False
    key_id = key_ids.pop()
    events = _key_and_repair_events(tables)
    for details in events:
        _check_announced_key(keyring, ledger_id, details)
    stored = np.concatenate([_macs(t) for t in tables.values() if len(t)])[np.argsort(
        np.concatenate([t.column("seq").to_numpy() for t in tables.values() if len(t)]), kind="stable")]
    computed = as_rows(mac_chain(keyring.key(key_id), prev, leaves))
    if not np.array_equal(computed, stored) or computed[-1].tobytes() != frame.last_mac:
        return False
    repairs.extend(d for d in events if d.get("event") == REPAIR_EVENT)
    return True


def _macs(table) -> np.ndarray:
    column = table.column("mac").combine_chunks()
    return np.frombuffer(b"".join(column.to_pylist()), dtype=np.uint8).reshape(-1, 32)


def _key_and_repair_events(tables) -> list[dict]:
    """Details of the genesis, key rotation and repair entries among the frame's entries."""
    ops = tables.get("operation")
    if ops is None or not len(ops):
        return []
    out = []
    columns = (ops.column(c).to_pylist() for c in ("seq", "event_type", "details"))
    for seq, event, details in zip(*columns):
        if event in ("genesis", "key_rotation", REPAIR_EVENT):
            try:
                doc = json.loads(details or "{}")
            except ValueError:
                continue  # its MAC decides whether it is genuine
            if isinstance(doc, dict):
                out.append({**doc, "event": event, "seq": seq})
    return out


def _check_announced_key(keyring: Keyring, ledger_id: bytes, details: dict) -> None:
    """The ledger records a check value for each key it starts to use (genesis, rotation):
    a key of that id with other bytes is refused before anything is written with it."""
    key_id = details.get("key_id") if details["event"] == "genesis" else details.get("new_key_id")
    check = details.get("key_check") if details["event"] == "genesis" else details.get("new_key_check")
    if not isinstance(key_id, str) or not isinstance(check, str) or key_id not in keyring.keys:
        return
    if key_check(keyring.key(key_id), ledger_id) != check:
        raise KeyringError(f"the key given for key id {key_id!r} is not the one this ledger recorded (its check value differs); nothing was written")


def _why_not(frame: wal.Frame, kept: list[wal.Frame]) -> str:
    if any(k.first_seq == frame.first_seq and k.last_seq == frame.last_seq for k in kept):
        return "repeats entries the log already holds (a duplicated frame)"
    return "does not continue the chain (its sequence numbers or MACs do not follow the entry before it)"


# ------------------------------------------------------------------------------ repair


@dataclass(frozen=True)
class RepairPlan:
    """What `repair` does, decided from an examination before anything is written."""

    repair_id: str
    lost: tuple[int, int] | None
    last_known_mac: str | None  # HEAD's MAC for the newest lost entry
    dropped: list[dict]  # frames removed from the log: byte range, entries, why
    reordered: list[dict]  # when the kept frames stood out of order: each one's byte range and entries, in chain order
    wal_sha256: str  # digest of the log as it was
    saved_wal: str | None  # where the original log was kept (relative to the ledger)
    recorded_head: dict | None  # HEAD as found
    entry_seq: int | None = None  # the ledger_repair entry, once written

    def details(self, reason: str) -> dict:
        doc = {"repair_id": self.repair_id, "reason": reason, "wal_sha256": self.wal_sha256, "dropped_frames": self.dropped}
        if self.reordered:
            doc["reordered_frames"] = self.reordered
        if self.saved_wal:
            doc["saved_wal"] = self.saved_wal
        if self.lost is not None:
            doc.update(lost_first_seq=self.lost[0], lost_last_seq=self.lost[1], lost_entries=self.lost[1] - self.lost[0] + 1,
                       last_known_mac=self.last_known_mac, recorded_head=self.recorded_head)
        return doc


def plan_repair(layout: Layout, exam: Examination, *, accept_loss: bool, covered_size: int) -> RepairPlan | None:
    """The repair for what `examine` found, or None when there is nothing to repair.
    `covered_size` is the largest size the stored tree or a signed checkpoint covers."""
    if exam.sound and not exam.torn_acknowledged:
        return None
    sealed_size = exam.sealed.sealed_seq + 1
    if covered_size > sealed_size:
        raise IntegrityError(
            f"{layout.where}: the stored tree or a signed checkpoint covers {covered_size} entries, the manifest only "
            f"{sealed_size}: sealed entries are missing. They cannot be accepted as lost (their sequence numbers are "
            f"already signed); restore the segment files and manifest from a copy"
        )
    lost = exam.lost
    if lost is not None and not accept_loss:
        raise IntegrityError(
            f"{layout.where}: entries {lost[0]}-{lost[1]} were acknowledged and are lost; `mrm repair --accept-loss` "
            f"records the loss in the ledger (verification reports it for ever after) and lets it be written again"
        )
    data = layout.wal.read_bytes() if layout.wal.exists() else b""
    return RepairPlan(
        repair_id=uuid.uuid4().hex,
        lost=lost,
        last_known_mac=exam.persisted.mac if lost is not None else None,
        dropped=[{**_frame_doc(f), "why": why} for f, why in exam.dropped],
        reordered=[] if exam.in_order or exam.dropped else [_frame_doc(f) for f in exam.kept],
        wal_sha256=hashlib.sha256(data).hexdigest(),
        saved_wal=None,
        recorded_head=asdict(exam.persisted) if exam.persisted is not None else None,
    )


def _frame_doc(frame: wal.Frame) -> dict:
    return {"start": frame.start, "end": frame.end, "first_seq": frame.first_seq, "last_seq": frame.last_seq}


def stage_repair(layout: Layout, exam: Examination, plan: RepairPlan, reason: str, actor: str) -> RepairPlan:
    """Keep the original log, write the pending repair record, and rewrite the log to its
    kept frames (lock held). A crash anywhere here leaves either the old state (HEAD still
    shows the loss) or a pending record that the next writer completes."""
    data = layout.wal.read_bytes() if layout.wal.exists() else b""
    saved = f"{REPAIRS_DIR}/{plan.repair_id}.wal"
    layout.store.put_if_absent(saved, data)
    plan = replace(plan, saved_wal=saved)
    record = {"details": plan.details(reason), "actor": actor, "entry_seq": None,
              "staged_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    layout.store.put_if_absent(pending_key(plan.repair_id), (json.dumps(record, indent=2) + "\n").encode())
    rewrite_log(layout, exam)
    return plan


def rewrite_log(layout: Layout, exam: Examination) -> None:
    """Replace the log with its frames that continue the chain, in chain order."""
    data = layout.wal.read_bytes() if layout.wal.exists() else b""
    write_file_atomic(layout.wal, b"".join(data[f.start : f.end] for f in exam.kept))


def covered_size(layout: Layout) -> int:
    """The most entries the stored tree or a stored checkpoint claims (0 for none)."""
    from .checkpoints import TREE_PREFIX, stored_note_keys
    from .tiles import TileStoreError, committed_size

    sizes = [size for size, _ in stored_note_keys(layout)]
    try:
        sizes.append(committed_size(layout.store, TREE_PREFIX))
    except (TileStoreError, OSError):
        pass  # no tree yet, or one the verifiers report
    return max(sizes, default=0)


def pending_key(repair_id: str) -> str:
    return f"{REPAIRS_DIR}/{repair_id}.pending.json"


def pending_repairs(layout: Layout) -> list[tuple[str, dict]]:
    """Repair records staged but whose entry is not yet known to be written (key, record),
    oldest first."""
    out = []
    for obj in layout.store.list(f"{REPAIRS_DIR}/"):
        if not obj.key.endswith(".pending.json"):
            continue
        try:
            out.append((obj.key, json.loads(layout.store.read(obj.key).decode("utf-8"))))
        except (OSError, ValueError) as e:
            raise IntegrityError(f"{layout.store.where(obj.key)}: unreadable repair record ({type(e).__name__}); it names a loss: "
                                 "keep it and run `mrm verify`") from None
    return sorted(out, key=lambda kr: str(kr[1].get("staged_at", "")))


def done_repair(layout: Layout, repair_id: str) -> RepairPlan:
    """A completed repair, as its record in repairs/ holds it."""
    record = json.loads(layout.store.read(f"{REPAIRS_DIR}/{repair_id}.json").decode("utf-8"))
    d = record["details"]
    lost = (d["lost_first_seq"], d["lost_last_seq"]) if "lost_first_seq" in d else None
    return RepairPlan(repair_id, lost, d.get("last_known_mac"), d["dropped_frames"], d.get("reordered_frames", []), d["wal_sha256"],
                      d.get("saved_wal"), d.get("recorded_head"), record["entry_seq"])


def complete_repair(layout: Layout, key: str, record: dict, entry_seq: int) -> None:
    """Mark a staged repair done: its entry is in the log at `entry_seq`."""
    done = key.replace(".pending.json", ".json")
    data = (json.dumps({**record, "entry_seq": entry_seq}, indent=2) + "\n").encode()
    try:
        layout.store.put_if_absent(done, data)
    except ObjectExists:
        pass  # a completion stopped before it removed the pending record
    layout.store.delete(key)
