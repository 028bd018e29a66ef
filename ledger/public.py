"""Verification with public keys only: what an examiner, a court or a customer can run.

Nothing here needs the HMAC key, and nothing the ledger stores unsigned is trusted: the
signed checkpoints say which files hold the data (with their SHA-256) and which Merkle
root the entries must hash to at each size. The check:

1. every checkpoint note is signed by a trusted key, is for this ledger, and links to the
   one before it (a removed or replaced checkpoint breaks the chain);
2. the file listing rebuilt along the chain matches the digest each checkpoint signs, and
   the data files match the newest listing (MISSING, EXTRA, FILE);
3. leaf hashes are recomputed from the stored entries, and the RFC 6962 root at every
   checkpoint size from them (CHECKPOINT on a mismatch, located to the entry when the
   stored tree tiles are themselves consistent with the signatures);
4. with a state file, the newest checkpoint must extend the last one verified: a smaller
   size is a ROLLBACK, the same size with another root (or a tree that does not extend
   the remembered one) a FORK.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .checkpoints import NO_PREV, LedgerCheckpoint, ListedFile, listed, listing_digest, note_digest, origin_for, parse, stored_notes, tree_dir
from .merkle import CompactRange
from .note import (
    InvalidSignatureError,
    NoteError,
    OriginMismatchError,
    UnverifiedNoteError,
    Verifier,
    open_checkpoint,
)
from .read import snapshot as read_snapshot
from .storage import Layout, read_head, read_manifest, read_meta
from .storage_io import write_file_atomic
from .tiles import TileStore, TileStoreError
from .verify import Problem, VerifyReport, _Collector, _Task, recorded_losses, run_tasks

_SEGMENT = re.compile(r"tables/([a-z_]+)/(\d{12})-(\d{12})\.parquet")


@dataclass(frozen=True)
class SignedCheckpoint:
    info: LedgerCheckpoint
    note: bytes
    path: Path | None
    signed_by: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.info.size

    def summary(self) -> dict:
        return {
            "size": self.size,
            "root": base64.b64encode(self.info.root).decode(),
            "time": self.info.time,
            "signed_by": list(self.signed_by),
            "note_sha256": note_digest(self.note),
        }


def open_ledger_checkpoint(note: bytes, verifiers: Sequence[Verifier], ledger_id: str) -> SignedCheckpoint:
    """A checkpoint note checked against trusted keys and this ledger's origin; raises
    NoteError subclasses (UnverifiedNoteError: no trusted signature)."""
    checkpoint, opened = open_checkpoint(note, verifiers, origin=origin_for(ledger_id))
    return SignedCheckpoint(parse(checkpoint), note, None, tuple(f"{s.name}+{s.key_id:08x}" for s in opened.verified))


def verify_public(
    path: str | os.PathLike[str],
    verifiers: Sequence[Verifier],
    *,
    state_path: str | os.PathLike[str] | None = None,
    extra_checkpoints: Sequence[bytes] = (),
    tsa_roots: Sequence[Any] = (),
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify a ledger against its signed checkpoints with public keys only."""
    started = time.perf_counter()
    layout = Layout(Path(path))
    meta = read_meta(layout)
    report = VerifyReport(str(layout.root), meta.ledger_id, mode="public")
    out = _Collector()

    # 1. Checkpoints: signatures, origin, chain.
    chain: list[SignedCheckpoint] = []
    for size, note_path in stored_notes(layout):
        note = note_path.read_bytes()
        try:
            signed = open_ledger_checkpoint(note, verifiers, meta.ledger_id)
        except UnverifiedNoteError:
            out.add(Problem("KEY", f"checkpoint for size {size} is signed by no trusted key", file=_rel(layout, note_path)))
            continue
        except InvalidSignatureError:
            out.add(Problem("CHECKPOINT", f"checkpoint for size {size} has an invalid signature by a trusted key", file=_rel(layout, note_path)))
            continue
        except OriginMismatchError as e:
            out.add(Problem("CHECKPOINT", f"checkpoint is not for this ledger: {e}", file=_rel(layout, note_path)))
            continue
        except NoteError as e:
            out.add(Problem("CHECKPOINT", f"malformed checkpoint: {e}", file=_rel(layout, note_path)))
            continue
        if signed.size != size:
            out.add(Problem("CHECKPOINT", f"file name says size {size}, the signed checkpoint says {signed.size}", file=_rel(layout, note_path)))
            continue
        chain.append(SignedCheckpoint(signed.info, note, note_path, signed.signed_by))
    if not chain:
        out.add(Problem("CHECKPOINT", "no checkpoint signed by a trusted key: nothing can be verified without the HMAC key"))
        return _finish(report, out, started)

    # The file listing each checkpoint signs (as a digest): taken from the manifest when it
    # matches (then the manifest is as good as signed), else rebuilt from the "+" lines
    # along the chain, which a removed checkpoint leaves incomplete.
    records, _ = read_manifest(layout)
    rebuilt: dict[str, ListedFile] = {}
    listing: dict[str, ListedFile] = {}
    previous: SignedCheckpoint | None = None
    for c in chain:
        expected_prev = note_digest(previous.note) if previous else NO_PREV
        if c.info.prev != expected_prev:
            what = f"after the one for size {previous.size}" if previous else "as the first"
            out.add(Problem("CHECKPOINT", f"checkpoint for size {c.size} does not follow {what}: a checkpoint between them was removed or replaced", previous.size if previous else 0, file=_rel(layout, c.path)))
        rebuilt.update({f.path: f for f in c.info.added})
        from_manifest = {f.path: f for r in records if r.last_seq < c.size for f in listed(r.files)}
        for candidate in (from_manifest, rebuilt):
            if listing_digest(candidate.values()) == c.info.files_digest and len(candidate) == c.info.file_count:
                listing = dict(candidate)
                break
        else:
            listing = dict(rebuilt)
            out.add(Problem("CHECKPOINT", f"the file listing signed at size {c.size} matches neither the manifest nor the checkpoint chain", previous.size if previous else 0, file=_rel(layout, c.path)))
        previous = c
    newest = chain[-1]
    report.checkpoint = newest.summary()
    _check_timestamps(layout, chain, tsa_roots, out, report)

    # 2. Files against the newest listing.
    snap = read_snapshot(layout.root)
    present = set(layout.data_files())
    segments: dict[tuple[int, int], list[tuple[str, str, int | None, str]]] = {}
    for rel, f in sorted(listing.items()):
        m = _SEGMENT.fullmatch(rel)
        if not m:
            out.add(Problem("CHECKPOINT", f"listed path {rel!r} is not a segment file name", file=rel))
            continue
        table, first, last = m.group(1), int(m.group(2)), int(m.group(3))
        if rel not in present:
            out.add(Problem("MISSING", f"file listed by the checkpoint for size {newest.size} is absent", table=table, file=rel))
            continue
        segments.setdefault((first, last), []).append((table, rel, None, f.sha256))
    uncovered = 0
    for rel in sorted(present - listing.keys()):
        m = _SEGMENT.fullmatch(rel)
        if m and int(m.group(2)) >= newest.size:
            uncovered += int(m.group(3)) - int(m.group(2)) + 1
        else:
            out.add(Problem("EXTRA", f"file is not listed by the checkpoint for size {newest.size}", file=rel))
    uncovered += sum(len(t) for t in snap.unsealed.values())
    if uncovered:
        report.notes.append(f"{uncovered} entries are newer than the newest checkpoint; they are covered by the HMAC chain only until the next checkpoint")

    # 3. Leaves and roots.
    state = _read_state(state_path, meta.ledger_id) if state_path else None
    cuts = sorted({c.size for c in chain} | ({state["size"]} if state else set()) | {_size_of(n, verifiers, meta.ledger_id, out) for n in extra_checkpoints} - {None})
    tasks = [
        _Task(str(layout.root), meta.ledger_id_bytes, first, last, b"", files, None, public=True, cuts=tuple(cuts), listed_by="the checkpoint")
        for (first, last), files in sorted(segments.items())
    ]
    total = sum(t.last_seq - t.first_seq + 1 for t in tasks)
    results = run_tasks(tasks, {}, workers, progress, total)
    roots: dict[int, bytes] = {}
    tree = CompactRange()
    broken_at: int | None = None
    events = []
    for task, result in zip(tasks, results):
        events.extend(result.key_events)
        for p in result.problems:
            out.add(p)
        for t, n in result.tables.items():
            report.tables[t] = report.tables.get(t, 0) + n
        report.entries += result.entries
        if broken_at is not None:
            continue
        if task.first_seq != tree.size:
            out.add(Problem("GAP", f"no listed segment holds entries {tree.size}-{task.first_seq - 1}", tree.size))
            broken_at = tree.size
            continue
        if result.subtrees is None:
            broken_at = task.first_seq
            continue
        for piece in result.subtrees:
            for level, digest in piece:
                tree.append_subtree(level, digest)
            roots[tree.size] = tree.root()
    report.segments = len(tasks)
    report.files = len(listing)
    report.losses = recorded_losses(events)

    first_mismatch: tuple[SignedCheckpoint, int] | None = None
    later_mismatches: list[SignedCheckpoint] = []
    for c in chain:
        if c.size in roots:
            if roots[c.size] != c.info.root:
                if first_mismatch is not None:
                    later_mismatches.append(c)  # covers the same bad entry: one line for them all below
                    continue
                first_bad = _locate(layout, c, segments)
                first_mismatch = (c, first_bad if first_bad is not None else _previous_size(chain, c))
                out.add(Problem("CHECKPOINT", f"the entries do not hash to the root signed for size {c.size}", first_mismatch[1], file=_rel(layout, c.path)))
        elif broken_at is not None and c.size > broken_at:
            report.notes.append(f"the root for size {c.size} could not be recomputed: entries from {broken_at} on are missing")
        elif c.size > tree.size and broken_at is None:
            out.add(Problem("TRUNCATED", f"the checkpoint for size {c.size} covers entries the data no longer holds (it ends at {tree.size - 1})", tree.size))

    if first_mismatch is not None and later_mismatches:
        first, bad_seq = first_mismatch
        out.add(Problem("CHECKPOINT", f"nor to the roots signed for the {len(later_mismatches)} later checkpoint(s), sizes "
                        f"{later_mismatches[0].size} to {later_mismatches[-1].size}, which all cover those first {first.size} entries",
                        bad_seq, file=_rel(layout, later_mismatches[0].path)))

    # Extra checkpoints presented (e.g. one received earlier) must agree with the ledger.
    for note in extra_checkpoints:
        try:
            other = open_ledger_checkpoint(note, verifiers, meta.ledger_id)
        except NoteError:
            continue  # reported by _size_of
        mine = next((c for c in chain if c.size == other.size), None)
        if mine is not None and mine.info.root != other.info.root:
            out.add(Problem("FORK", f"two checkpoints for size {other.size} with different roots", other.size))
        elif other.size > newest.size:
            out.add(Problem("ROLLBACK", f"a checkpoint for size {other.size} exists, but the ledger's newest is for size {newest.size}", newest.size))
        elif other.size in roots and roots[other.size] != other.info.root:
            out.add(Problem("FORK", f"the presented checkpoint for size {other.size} is not a prefix of this ledger", other.size))

    # Hints the ledger keeps unsigned: a tree or head that ran further than the data.
    hint = _furthest_hint(layout)
    if hint is not None and hint > max(newest.size, tree.size) + uncovered:
        out.add(Problem("TRUNCATED", f"the ledger's own tree and head record {hint} entries; the data and checkpoints end at {max(newest.size, tree.size)}", max(newest.size, tree.size)))

    # 4. The state remembered from the last verification.
    if state:
        if newest.size < state["size"]:
            out.add(Problem("ROLLBACK", f"the newest checkpoint is for size {newest.size}; {state_path} last verified size {state['size']}", newest.size))
        elif newest.size == state["size"] and newest.info.root != state["root"]:
            out.add(Problem("FORK", f"checkpoint for size {newest.size} has another root than the one verified before", newest.size))
        elif state["size"] in roots and roots[state["size"]] != state["root"]:
            out.add(Problem("FORK", f"the ledger does not extend the tree of size {state['size']} verified before", state["size"]))

    report = _finish(report, out, started)
    if state_path and report.ok:
        _write_state(state_path, meta.ledger_id, newest)
    return report


def _check_timestamps(layout: Layout, chain: list[SignedCheckpoint], roots: Sequence[Any], out: _Collector, report: VerifyReport) -> None:
    """RFC 3161 tokens stored beside checkpoints: checked against the given TSA roots."""
    from .timestamp import TimestampError, verify_response

    tokens = [(c, c.path.with_suffix(".tsr")) for c in chain if c.path is not None and c.path.with_suffix(".tsr").exists()]
    if tokens and not roots:
        report.notes.append(f"{len(tokens)} checkpoint(s) carry an RFC 3161 timestamp token; give the TSA's root certificate to check them")
        return
    for c, token in tokens:
        try:
            info = verify_response(token.read_bytes(), c.note, roots=list(roots))
        except TimestampError as e:
            out.add(Problem("CHECKPOINT", f"timestamp token for size {c.size} does not verify: {e}", file=_rel(layout, token)))
            continue
        if c is chain[-1] and report.checkpoint is not None:
            report.checkpoint["timestamp"] = info.gen_time.isoformat()


def _finish(report: VerifyReport, out: _Collector, started: float) -> VerifyReport:
    report.problems = sorted(out.problems, key=lambda p: (p.seq if p.seq is not None else -1, p.kind, p.file or ""))
    for kind, n in out.suppressed().items():
        report.suppressed[kind] = report.suppressed.get(kind, 0) + n
    report.elapsed_s = time.perf_counter() - started
    return report


def _rel(layout: Layout, path: Path | None) -> str | None:
    return None if path is None else path.relative_to(layout.root).as_posix()


def _previous_size(chain: list[SignedCheckpoint], c: SignedCheckpoint) -> int:
    smaller = [x.size for x in chain if x.size < c.size]
    return max(smaller) if smaller else 0


def _size_of(note: bytes, verifiers, ledger_id: str, out: _Collector) -> int | None:
    try:
        return open_ledger_checkpoint(note, verifiers, ledger_id).size
    except NoteError as e:
        out.add(Problem("CHECKPOINT", f"presented checkpoint refused: {e}"))
        return None


def _locate(layout: Layout, bad: SignedCheckpoint, segments: dict[tuple[int, int], list]) -> int | None:
    """The first entry whose leaf hash differs from the stored tree, used only when that
    tree's root equals the signed one (then its leaves are as good as signed)."""
    from .hashing import segment_leaves
    from .storage import read_segment_file

    try:
        store = TileStore(tree_dir(layout), readonly=True)
    except (TileStoreError, OSError):
        return None
    with store:
        if store.size < bad.size or store.root(bad.size) != bad.info.root:
            return None
        ledger_id = read_meta(layout).ledger_id_bytes
        for (first, last), files in sorted(segments.items()):
            if first >= bad.size:
                break
            try:
                seqs, leaves = segment_leaves({t: read_segment_file(layout.root / rel) for t, rel, _, _ in files}, ledger_id)
            except Exception:
                return first
            stored = store.leaf_hashes(first, min(last + 1, bad.size))
            for i, seq in enumerate(seqs.tolist()):
                if seq >= bad.size:
                    break
                if seq != first + i or leaves[32 * i : 32 * i + 32] != stored[32 * i : 32 * i + 32]:
                    return first + i
    return None


def _furthest_hint(layout: Layout) -> int | None:
    sizes = []
    head = read_head(layout)
    if head is not None:
        sizes.append(head.seq + 1)  # acknowledged, sealed or not
    try:
        with TileStore(tree_dir(layout), readonly=True) as store:
            sizes.append(store.size)
    except (TileStoreError, OSError):
        pass
    return max(sizes) if sizes else None


def _read_state(path, ledger_id: str) -> dict | None:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable state file ({e})") from None
    if doc.get("ledger_id") != ledger_id:
        raise ValueError(f"{path}: state is for ledger {doc.get('ledger_id')}, not {ledger_id}")
    return {"size": int(doc["size"]), "root": base64.b64decode(doc["root"])}


def _write_state(path, ledger_id: str, newest: SignedCheckpoint) -> None:
    doc = {"ledger_id": ledger_id, **newest.summary()}
    write_file_atomic(Path(path), (json.dumps(doc, indent=2) + "\n").encode())
