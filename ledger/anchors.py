"""What a ledger's entries are checked against besides their own chain, by both verifiers.

* the signed checkpoints stored beside the data (each signed by a trusted key, for this
  ledger, linked to the one before it);
* checkpoints presented from outside (one received earlier) and the state remembered
  from the last verification (``--state``): the data must not end before them, and must
  extend their trees;
* the ledger's own Merkle tree (tiles under ``tree/``): unsigned, but written at every
  seal, so a tree longer than the data shows a truncation, and its leaves locate the
  first entry that differs from what was sealed. Its tiles are checked against the
  entries and the signed roots (TILE problems name the tile and its level).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .checkpoints import LedgerCheckpoint, NO_PREV, note_digest, origin_for, parse, stored_notes, tree_dir
from .merkle import CompactRange
from .problems import Problem
from .note import InvalidSignatureError, NoteError, OriginMismatchError, UnverifiedNoteError, Verifier, open_checkpoint
from .storage import Layout
from .storage_io import write_file_atomic
from .tiles import CorruptTileError, TileStore, TileStoreError, committed_size


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


@dataclass
class Anchors:
    chain: list[SignedCheckpoint]  # stored checkpoints that verify, by size
    presented: list[SignedCheckpoint]  # checkpoints given from outside that verify
    state: dict | None  # {"size", "root"} remembered from the last verification
    state_path: str | None
    tree_size: int | None  # what the stored tree's state commits to; None without a tree

    @property
    def newest(self) -> SignedCheckpoint | None:
        return self.chain[-1] if self.chain else None

    def cuts(self) -> tuple[int, ...]:
        """Tree sizes the entries' roots are computed at."""
        sizes = {c.size for c in self.chain} | {c.size for c in self.presented}
        if self.state:
            sizes.add(self.state["size"])
        if self.tree_size:
            sizes.add(self.tree_size)
        return tuple(sorted(sizes))


def read_anchors(layout: Layout, verifiers: Sequence[Verifier], ledger_id: str, add: Callable, notes: list[str], *,
                 state_path=None, extra_checkpoints: Sequence[bytes] = ()) -> Anchors:
    """Every anchor the ledger and the caller give; problems with them go to `add`."""
    if verifiers:
        chain = _read_chain(layout, verifiers, ledger_id, add)
    else:
        chain = []
        if stored_notes(layout):
            notes.append(f"{len(stored_notes(layout))} stored checkpoint(s) not checked: no Ed25519 public key to check their signatures")
    presented = []
    for note in extra_checkpoints:
        try:
            presented.append(open_ledger_checkpoint(note, verifiers, ledger_id))
        except NoteError as e:
            add(Problem("CHECKPOINT", f"presented checkpoint refused: {e}"))
    state = read_state(state_path, ledger_id) if state_path else None
    try:
        tree_size = committed_size(tree_dir(layout))
    except TileStoreError:
        tree_size = None  # no tree, or one whose state check_tree reports
    return Anchors(chain, presented, state, str(state_path) if state_path else None, tree_size)


def _read_chain(layout: Layout, verifiers: Sequence[Verifier], ledger_id: str, add: Callable) -> list[SignedCheckpoint]:
    """Stored checkpoints: signatures, origin, and the link of each to the one before it.
    These are problems of the checkpoint files, not of entries: they carry no sequence number."""
    chain: list[SignedCheckpoint] = []
    for size, note_path in stored_notes(layout):
        rel = _rel(layout, note_path)
        note = note_path.read_bytes()
        try:
            signed = open_ledger_checkpoint(note, verifiers, ledger_id)
        except UnverifiedNoteError:
            add(Problem("KEY", f"checkpoint for size {size} is signed by no trusted key", file=rel))
            continue
        except InvalidSignatureError:
            add(Problem("CHECKPOINT", f"checkpoint for size {size} has an invalid signature by a trusted key", file=rel))
            continue
        except OriginMismatchError as e:
            add(Problem("CHECKPOINT", f"checkpoint is not for this ledger: {e}", file=rel))
            continue
        except NoteError as e:
            add(Problem("CHECKPOINT", f"malformed checkpoint: {e}", file=rel))
            continue
        if signed.size != size:
            add(Problem("CHECKPOINT", f"file name says size {size}, the signed checkpoint says {signed.size}", file=rel))
            continue
        chain.append(SignedCheckpoint(signed.info, note, note_path, signed.signed_by))
    previous: SignedCheckpoint | None = None
    for c in chain:
        if c.info.prev != (note_digest(previous.note) if previous else NO_PREV):
            what = f"after the one for size {previous.size}" if previous else "as the first"
            add(Problem("CHECKPOINT", f"checkpoint for size {c.size} does not follow {what}: a checkpoint between them was removed or replaced", file=_rel(layout, c.path)))
        previous = c
    return chain


# ---------------------------------------------------------------------------- roots


@dataclass
class EntryRoots:
    """The RFC 6962 roots of the entries at the anchors' sizes, from each segment's subtrees."""

    roots: dict[int, bytes] = field(default_factory=dict)
    size: int = 0  # entries hashed, from 0 on
    broken_at: int | None = None  # entries from here on could not be hashed (missing or unreadable)
    gap_at: int | None = None  # no segment starts here


def entry_roots(tasks: Sequence, results: Sequence) -> EntryRoots:
    out = EntryRoots()
    tree = CompactRange()
    for task, result in zip(tasks, results):
        if task.first_seq != tree.size:
            out.gap_at = out.broken_at = tree.size
            break
        if result.subtrees is None:
            out.broken_at = task.first_seq
            break
        for piece in result.subtrees:
            for level, digest in piece:
                tree.append_subtree(level, digest)
            out.roots[tree.size] = tree.root()
    out.size = tree.size
    return out


def check_anchors(layout: Layout, anchors: Anchors, entries: EntryRoots, add: Callable, notes: list[str],
                  locate: Callable[[SignedCheckpoint], int | None]) -> SignedCheckpoint | None:
    """The entries against every checkpoint and the state: roots, truncation, rollback,
    fork. Returns the first checkpoint whose root the entries do not hash to."""
    chain, roots = anchors.chain, entries.roots
    first_mismatch: tuple[SignedCheckpoint, int] | None = None
    later_mismatches: list[SignedCheckpoint] = []
    for c in chain:
        if c.size in roots:
            if roots[c.size] != c.info.root:
                if first_mismatch is not None:
                    later_mismatches.append(c)  # covers the same bad entry: one line for them all below
                    continue
                first_bad = locate(c)
                first_mismatch = (c, first_bad if first_bad is not None else _previous_size(chain, c))
                add(Problem("CHECKPOINT", f"the entries do not hash to the root signed for size {c.size}", first_mismatch[1], file=_rel(layout, c.path)))
        elif entries.broken_at is not None and c.size > entries.broken_at:
            notes.append(f"the root for size {c.size} could not be recomputed: entries from {entries.broken_at} on are missing")
        elif c.size > entries.size:
            add(Problem("TRUNCATED", f"the checkpoint for size {c.size} covers entries the data no longer holds (it ends at {entries.size - 1})", entries.size))
    if first_mismatch is not None and later_mismatches:
        first, bad_seq = first_mismatch
        add(Problem("CHECKPOINT", f"nor to the roots signed for the {len(later_mismatches)} later checkpoint(s), sizes "
                     f"{later_mismatches[0].size} to {later_mismatches[-1].size}, which all cover those first {first.size} entries",
                     bad_seq, file=_rel(layout, later_mismatches[0].path)))

    newest = anchors.newest
    outside = [(f"a checkpoint presented for size {c.size}", c.size, c.info.root) for c in anchors.presented]
    if anchors.state:
        outside.append((f"{anchors.state_path} last verified size {anchors.state['size']}", anchors.state["size"], anchors.state["root"]))
    for what, size, root in outside:
        mine = next((c for c in chain if c.size == size), None)
        if mine is not None and mine.info.root != root:
            add(Problem("FORK", f"{what} with another root than the ledger's checkpoint of that size", size))
        elif newest is not None and size > newest.size:
            add(Problem("ROLLBACK", f"{what}, but the ledger's newest checkpoint is for size {newest.size}", newest.size))
        elif size > entries.size and entries.broken_at is None:
            add(Problem("TRUNCATED", f"{what}, but the data ends at {entries.size - 1}", entries.size))
        elif size in roots and roots[size] != root:
            add(Problem("FORK", f"the ledger does not extend the tree of {what}", size))
    return first_mismatch[0] if first_mismatch else None


def save_state(state_path, report) -> None:
    """After a verification that found nothing wrong, remember its newest checkpoint."""
    if state_path and report.ok and report.checkpoint:
        doc = {"ledger_id": report.ledger_id, **report.checkpoint}
        write_file_atomic(Path(state_path), (json.dumps(doc, indent=2) + "\n").encode())


def read_state(path, ledger_id: str) -> dict | None:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable state file ({e})") from None
    if doc.get("ledger_id") != ledger_id:
        raise ValueError(f"{path}: state is for ledger {doc.get('ledger_id')}, not {ledger_id}")
    return {"size": int(doc["size"]), "root": base64.b64decode(doc["root"])}


# ---------------------------------------------------------------------------- the stored tree


@dataclass
class StoredTree:
    """The stored tree as the verifiers found it."""

    size: int | None  # committed size; None when there is no readable tree
    signed: dict[int, bool] = field(default_factory=dict)  # checkpoint size -> the tree's root there is the signed one

    def trusted_at(self, size: int) -> bool:
        """Whether the tree's leaves below `size` are as good as signed."""
        return self.signed.get(size, False)


def check_tree(layout: Layout, anchors: Anchors, add: Callable, notes: list[str], data_size: int) -> StoredTree:
    """The tree's own consistency (every tile against its parent and the committed root),
    its roots against the signed ones, and its size against the data (`data_size`: the
    entries it should cover at most)."""
    if anchors.tree_size is None:
        if (tree_dir(layout) / "tree-state").exists():
            add(Problem("TILE", "the tree's state file is unreadable", file="tree/tree-state"))
        elif data_size:
            notes.append("the ledger has no stored Merkle tree (tree/): there was nothing to compare the entries with")
        return StoredTree(None)
    tree = StoredTree(anchors.tree_size)
    try:
        with TileStore(tree_dir(layout), readonly=True) as store:
            store.verify()
            for c in anchors.chain:
                if c.size <= store.size:
                    tree.signed[c.size] = store.root(c.size) == c.info.root
                    if not tree.signed[c.size]:
                        add(Problem("TILE", f"the stored tree's root at size {c.size} is not the one signed by its checkpoint",
                                     file=_rel(layout, c.path)))
    except CorruptTileError as e:
        add(tile_problem(e.tile, str(e)))
    if anchors.tree_size > data_size:
        add(Problem("TRUNCATED", f"the ledger's own tree records {anchors.tree_size} entries; the data ends at {data_size - 1}", data_size))
    return tree


def tile_problem(tile: str | None, message: str, seq: int | None = None):
    """A TILE problem naming the tile file and its level, where known."""
    if tile is None:
        return Problem("TILE", message, seq)
    return Problem("TILE", f"level {tile.split('/')[1]} tile: {message}", seq, file=f"tree/{tile}")


def _rel(layout: Layout, path: Path | None) -> str | None:
    return None if path is None else path.relative_to(layout.root).as_posix()


def _previous_size(chain: list[SignedCheckpoint], c: SignedCheckpoint) -> int:
    smaller = [x.size for x in chain if x.size < c.size]
    return max(smaller) if smaller else 0
