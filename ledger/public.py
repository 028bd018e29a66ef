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
   stored tree tiles are themselves consistent with the signatures; TILE when the tiles
   are not);
4. with a state file or presented checkpoints, the ledger must extend them: a newest
   checkpoint older than them is a ROLLBACK, the same size with another root (or a tree
   that does not extend theirs) a FORK (ledger/anchors.py, shared with the HMAC verifier).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow.compute as pc

from .anchors import SignedCheckpoint, check_anchors, check_tree, entry_roots, open_ledger_checkpoint, read_anchors, save_state, tile_problem
from .checkpoints import ORIGIN_PREFIX, ListedFile, listed, listing_digest, stored_notes, tree_dir
from .note import Checkpoint, NoteError, Verifier, parse_note
from .read import snapshot as read_snapshot
from .storage import SEGMENT_FILE, Layout, held_elsewhere, read_head, read_manifest, read_meta
from .verify import Problem, VerifyReport, ProblemCollector, SegmentTask, account_files, check_head, recorded_losses, run_tasks, stored_entry_mac

__all__ = ["SignedCheckpoint", "open_ledger_checkpoint", "verify_public"]


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
    report = _verify_public(layout, meta.ledger_id, verifiers, extra_checkpoints, tsa_roots, workers, progress, state_path)
    signed = _signed_ledger_id(layout)
    if signed is not None and signed != meta.ledger_id:
        # Every checkpoint signs the ledger id in its origin and every leaf encodes it: an
        # edited LEDGER.json fails them all. If all verifies under the signed id, that is the one problem.
        under_signed = _verify_public(layout, signed, verifiers, extra_checkpoints, tsa_roots, workers, progress, state_path)
        if under_signed.checkpoint is not None and not any(p.kind == "CHECKPOINT" and "not for this ledger" in p.message
                                                           for p in under_signed.problems):
            report = under_signed
            report.problems.insert(0, Problem("META", f"the ledger id changed: LEDGER.json says {meta.ledger_id}, the signed "
                                              f"checkpoints are for {signed}, and the entries verify under {signed}", file="LEDGER.json"))
    save_state(state_path, report)
    report.elapsed_s = time.perf_counter() - started
    return report


def _signed_ledger_id(layout: Layout) -> str | None:
    """The ledger id the stored checkpoints' origin names, when they all name the same one."""
    origins = set()
    for _, note_path in stored_notes(layout):
        try:
            origins.add(Checkpoint.from_text(parse_note(note_path.read_bytes()).text).origin)
        except NoteError:
            continue  # a malformed checkpoint is reported as one by the verification itself
    if len(origins) != 1:
        return None
    ledger_id = origins.pop().removeprefix(ORIGIN_PREFIX)
    try:
        return ledger_id if len(bytes.fromhex(ledger_id)) == 16 else None
    except ValueError:
        return None


def _verify_public(layout: Layout, ledger_id: str, verifiers: Sequence[Verifier], extra_checkpoints: Sequence[bytes],
                   tsa_roots: Sequence[Any], workers: int | None, progress: Callable[[int, int], None] | None,
                   state_path: str | os.PathLike[str] | None) -> VerifyReport:
    started = time.perf_counter()
    report = VerifyReport(str(layout.root), ledger_id, mode="public")
    out = ProblemCollector()

    # 1. Checkpoints: signatures, origin, chain; and the anchors given from outside.
    anchors = read_anchors(layout, verifiers, ledger_id, out.add, report.notes,
                           state_path=state_path, extra_checkpoints=extra_checkpoints)
    chain = anchors.chain
    if not chain:
        out.add(Problem("CHECKPOINT", "no checkpoint signed by a trusted key: nothing can be verified without the HMAC key"))
        return _finish(report, out, started)

    # The file listing each checkpoint signs (as a digest): taken from the manifest when it
    # matches (then the manifest is as good as signed), else rebuilt from the "+" lines
    # along the chain, which a removed checkpoint leaves incomplete.
    records, _ = read_manifest(layout)
    rebuilt: dict[str, ListedFile] = {}
    listing: dict[str, ListedFile] = {}
    for c in chain:
        rebuilt.update({f.path: f for f in c.info.added})
        from_manifest = {f.path: f for r in records if r.last_seq < c.size for f in listed(r.files)}
        for candidate in (from_manifest, rebuilt):
            if listing_digest(candidate.values()) == c.info.files_digest and len(candidate) == c.info.file_count:
                listing = dict(candidate)
                break
        else:
            listing = dict(rebuilt)
            out.add(Problem("CHECKPOINT", f"the file listing signed at size {c.size} matches neither the manifest nor the checkpoint chain", file=_rel(layout, c.path)))
    newest = chain[-1]
    report.checkpoint = newest.summary()
    _check_timestamps(layout, chain, tsa_roots, out, report)

    # 2. Files against the newest listing.
    snap = read_snapshot(layout.root)
    present, unlisted = account_files(listing, layout.data_files(), report.notes, records[-1].last_seq if records else -1)
    segments: dict[tuple[int, int], list[tuple[str, str, int | None, str]]] = {}
    for rel, f in sorted(listing.items()):
        m = SEGMENT_FILE.fullmatch(rel)
        if not m:
            out.add(Problem("CHECKPOINT", f"listed path {rel!r} is not a segment file name", file=rel))
            continue
        table, first, last = m.group(1), int(m.group(2)), int(m.group(3))
        if rel not in present:
            out.add(Problem("MISSING", f"file listed by the checkpoint for size {newest.size} is absent", table=table, file=rel))
            continue
        segments.setdefault((first, last), []).append((table, rel, None, f.sha256))
    # Files newer than the newest checkpoint: the manifest (unsigned) must list them, or
    # they are slipped-in files no writer sealed.
    manifest_listed = {f.path for r in records for f in r.files}
    uncovered_ranges = set()  # newer segments, each once (a segment has a file per table)
    for rel in unlisted:
        m = SEGMENT_FILE.fullmatch(rel)
        if m and int(m.group(2)) >= newest.size and rel in manifest_listed:
            uncovered_ranges.add((int(m.group(2)), int(m.group(3))))
        elif m and int(m.group(2)) >= newest.size:
            out.add(Problem("EXTRA", f"file is listed neither by the checkpoint for size {newest.size} nor by the manifest", file=rel))
        else:
            out.add(Problem("EXTRA", f"file is not listed by the checkpoint for size {newest.size}", file=rel))
    uncovered = sum(last - first + 1 for first, last in uncovered_ranges) + sum(len(t) for t in snap.unsealed.values())
    if uncovered:
        report.notes.append(f"{uncovered} entries are newer than the newest checkpoint; they are covered by the HMAC chain only until the next checkpoint")

    # 3. Leaves and roots, and the stored tree's leaves beside them.
    tree = (str(tree_dir(layout)), anchors.tree_size) if anchors.tree_size else None
    tasks = [
        SegmentTask(str(layout.root), bytes.fromhex(ledger_id), first, last, b"", files, None, public=True, cuts=anchors.cuts(), listed_by="the checkpoint", tree=tree)
        for (first, last), files in sorted(segments.items())
    ]
    total = sum(t.last_seq - t.first_seq + 1 for t in tasks)
    results = run_tasks(tasks, {}, workers, progress, total)
    events = []
    for result in results:
        events.extend(result.key_events)
        for p in result.problems:
            out.add(p)
        for t, n in result.tables.items():
            report.tables[t] = report.tables.get(t, 0) + n
        report.entries += result.entries
    report.segments = len(tasks)
    report.files = len(listing)
    report.losses = recorded_losses(events)
    entries = entry_roots(tasks, results)
    report.entries_checked = entries.broken_at is None
    if entries.gap_at is not None:
        next_first = next(t.first_seq for t in tasks if t.first_seq > entries.gap_at)
        out.add(Problem("GAP", f"no listed segment holds entries {entries.gap_at}-{next_first - 1}", entries.gap_at))

    stored = check_tree(layout, anchors, out.add, report.notes, entries.size + uncovered)
    mismatches = sorted((seq, tile) for r in results for tile, seq in r.tile_mismatches)
    bad = check_anchors(layout, anchors, entries, out.add, report.notes,
                        lambda c: next((s for s, _ in mismatches if s < c.size), None) if stored.trusted_at(c.size) else None)
    for seq, tile in mismatches:
        if bad is None or seq >= bad.size:  # the entries hash to the signed roots: the tile is what changed
            out.add(tile_problem(tile, f"the leaf hash stored for entry {seq} is not that entry's"))

    # The head (unsigned): it may claim no more entries than are here, lag them no further
    # than a writer leaves them, and must name its entry's stored MAC.
    head = read_head(layout)
    sealed_to = records[-1].last_seq if records else -1
    accounted = max(newest.size, entries.size) + uncovered  # entries the data, checkpoints and log hold
    if head is not None:
        report.head_seq = head.seq
        held = sorted(set(present) | manifest_listed)
        check_head(head, accounted - 1, (records[-1].first_seq, sealed_to) if records else None,
                   lambda seq: _unsealed_mac(snap.unsealed, seq) or stored_entry_mac(layout.root, held, seq),
                   out.add, report.notes, elsewhere=held_elsewhere(layout, head, sealed_to))

    return _finish(report, out, started)


def _check_timestamps(layout: Layout, chain: list[SignedCheckpoint], roots: Sequence[Any], out: ProblemCollector, report: VerifyReport) -> None:
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


def _finish(report: VerifyReport, out: ProblemCollector, started: float) -> VerifyReport:
    report.problems = sorted(out.problems, key=lambda p: (p.seq if p.seq is not None else -1, p.kind, p.file or ""))
    for kind, n in out.suppressed().items():
        report.suppressed[kind] = report.suppressed.get(kind, 0) + n
    report.elapsed_s = time.perf_counter() - started
    return report


def _unsealed_mac(unsealed: dict, seq: int) -> bytes | None:
    """The MAC stored with entry `seq` in this machine's write-ahead log, if it holds it."""
    for table in unsealed.values():
        found = table.filter(pc.equal(table.column("seq"), seq))
        if len(found):
            return found.column("mac")[0].as_py()
    return None


def _rel(layout: Layout, path: Path | None) -> str | None:
    return None if path is None else path.relative_to(layout.root).as_posix()
