"""Self-contained proofs: one decision shown to be in the ledger, or one checkpoint shown to
extend another, checkable offline with nothing but a public key.

An inclusion proof document (JSON, format "mrm-ledger-proof/1", kind "inclusion") holds
the signed checkpoint note and, per entry: the entry as JSON, its canonical bytes
(base64), and the RFC 6962 inclusion proof of its leaf at the checkpoint's size. The
verifier checks the note's signature against trusted keys, that the JSON encodes to
exactly those bytes (so what a person reads is what was proven), that the bytes name this
ledger, and that the leaf is in the signed tree. Generating one reads O(log n) tree tiles
and the one row group holding the entry.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .checkpoints import stored_notes, tree_dir
from .encoding import RowEncoder, entry_prefix
from .entries import entry_from_json, entry_to_json
from .errors import EntryError, LedgerError
from .merkle import ConsistencyProof, InclusionProof, ProofError, leaf_hash
from .note import NoteError, Verifier
from .public import SignedCheckpoint, open_ledger_checkpoint
from .read import snapshot
from .schema import TABLE_NAMES, TABLES
from .storage import Layout, read_meta
from .tiles import TileStore

FORMAT = "mrm-ledger-proof/1"
REQUEST_TABLES = ("data_access", "model_inference", "attribution", "guardrail")


class ProofRequestError(LedgerError):
    """A proof cannot be made: no such entry, or not covered by a checkpoint yet."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _newest_checkpoint(layout: Layout, size: int | None = None) -> tuple[int, bytes]:
    notes = stored_notes(layout)
    if size is not None:
        notes = [(s, p) for s, p in notes if s == size]
    if not notes:
        raise ProofRequestError(f"{layout.root}: no checkpoint{'' if size is None else f' for size {size}'}; run `mrm checkpoint`")
    s, path = notes[-1]
    return s, path.read_bytes()


def find_entry(path: str | os.PathLike[str], seq: int) -> tuple[str, dict]:
    """(table, stored row) of one sequence number: only the files whose range holds it,
    and in them only the row groups whose statistics do."""
    snap = snapshot(path)
    for table in TABLE_NAMES:
        for f in snap.files[table]:
            first, last = (int(x) for x in f.stem.split("-"))
            if first <= seq <= last:
                rows = pq.read_table(f, filters=[("seq", "=", seq)]).to_pylist()
                if rows:
                    return table, rows[0]
        unsealed = snap.unsealed.get(table)
        if unsealed is not None:
            rows = [r for r in unsealed.to_pylist() if r["seq"] == seq]
            if rows:
                return table, rows[0]
    raise ProofRequestError(f"no entry with sequence number {seq}")


def find_request(path: str | os.PathLike[str], request_id: str) -> list[int]:
    """Sequence numbers of every entry written for one request, in order."""
    snap = snapshot(path)
    seqs: list[int] = []
    for table in REQUEST_TABLES:
        if snap.files[table]:
            found = ds.dataset([str(f) for f in snap.files[table]], format="parquet").to_table(
                columns=["seq"], filter=ds.field("request_id") == request_id
            )
            seqs.extend(found.column("seq").to_pylist())
        unsealed = snap.unsealed.get(table)
        if unsealed is not None:
            seqs.extend(r["seq"] for r in unsealed.select(["seq", "request_id"]).to_pylist() if r["request_id"] == request_id)
    if not seqs:
        raise ProofRequestError(f"no entry for request id {request_id!r}")
    return sorted(seqs)


def prove_entries(path: str | os.PathLike[str], seqs: Sequence[int], *, checkpoint_size: int | None = None) -> dict[str, Any]:
    """An inclusion proof document for these entries at the newest (or given) checkpoint."""
    layout = Layout(Path(path))
    meta = read_meta(layout)
    size, note = _newest_checkpoint(layout, checkpoint_size)
    entries = []
    with TileStore(tree_dir(layout), readonly=True) as tree:
        for seq in seqs:
            if seq >= size:
                raise ProofRequestError(f"entry {seq} is newer than the checkpoint for size {size}; run `mrm checkpoint` first")
            table, row = find_entry(path, seq)
            canonical = RowEncoder(TABLES[table], meta.ledger_id_bytes)(entry_from_json(table, entry_to_json(table, row)))
            proof = tree.inclusion_proof(seq, size)
            entries.append({
                "seq": seq,
                "table": table,
                "entry": entry_to_json(table, row),
                "canonical": _b64(canonical),
                "leaf_hash": _b64(leaf_hash(canonical)),
                "inclusion": proof.to_json(),
            })
    return {"format": FORMAT, "kind": "inclusion", "ledger_id": meta.ledger_id, "checkpoint": note.decode("utf-8"), "entries": entries}


def prove_consistency(path: str | os.PathLike[str], old_size: int, new_size: int) -> dict[str, Any]:
    layout = Layout(Path(path))
    meta = read_meta(layout)
    _, old_note = _newest_checkpoint(layout, old_size)
    _, new_note = _newest_checkpoint(layout, new_size)
    with TileStore(tree_dir(layout), readonly=True) as tree:
        proof = tree.consistency_proof(old_size, new_size)
    return {
        "format": FORMAT, "kind": "consistency", "ledger_id": meta.ledger_id,
        "old_checkpoint": old_note.decode("utf-8"), "new_checkpoint": new_note.decode("utf-8"),
        "consistency": proof.to_json(),
    }


@dataclass
class ProofReport:
    ok: bool
    kind: str
    ledger_id: str
    checkpoint: dict | None = None
    entries: list[dict] = field(default_factory=list)  # per entry: seq, table, ok, problem
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "kind": self.kind, "ledger_id": self.ledger_id, "checkpoint": self.checkpoint, "entries": self.entries, "problems": self.problems}


def verify_proof(doc: Any, verifiers: Sequence[Verifier]) -> ProofReport:
    """Check a proof document offline. Never raises for a bad proof: the report says why."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return ProofReport(False, "unknown", "", problems=[f"not an {FORMAT} document"])
    kind, ledger_id = doc.get("kind"), doc.get("ledger_id")
    report = ProofReport(False, str(kind), str(ledger_id))
    if not isinstance(ledger_id, str) or len(ledger_id) != 32:
        report.problems.append("ledger_id must be 32 hex digits")
        return report

    def signed(key: str) -> SignedCheckpoint | None:
        try:
            return open_ledger_checkpoint(str(doc.get(key, "")).encode("utf-8"), verifiers, ledger_id)
        except NoteError as e:
            report.problems.append(f"{key}: {type(e).__name__}: {e}")
            return None

    if kind == "consistency":
        old, new = signed("old_checkpoint"), signed("new_checkpoint")
        if old is None or new is None:
            return report
        report.checkpoint = new.summary()
        try:
            proof = ConsistencyProof.from_json(doc.get("consistency"))
            if (proof.size1, proof.size2) != (old.size, new.size):
                raise ProofError(f"proof is for sizes {proof.size1}->{proof.size2}, the checkpoints for {old.size}->{new.size}")
            proof.verify(old.info.root, new.info.root)
        except (ProofError, ValueError, TypeError) as e:
            report.problems.append(f"consistency: {e}")
            return report
        report.ok = True
        return report

    if kind != "inclusion":
        report.problems.append(f"unknown proof kind {kind!r}")
        return report
    checkpoint = signed("checkpoint")
    if checkpoint is None:
        return report
    report.checkpoint = checkpoint.summary()
    entries = doc.get("entries")
    if not isinstance(entries, list) or not entries:
        report.problems.append("no entries")
        return report
    prefix = entry_prefix(bytes.fromhex(ledger_id))
    for item in entries:
        result = {"seq": item.get("seq") if isinstance(item, dict) else None, "table": item.get("table") if isinstance(item, dict) else None, "ok": False}
        try:
            if not isinstance(item, dict):
                raise ValueError("an entry is a JSON object")
            table, seq = item["table"], item["seq"]
            canonical = base64.b64decode(item["canonical"], validate=True)
            if not canonical.startswith(prefix):
                raise ValueError("the canonical bytes are for another ledger or format")
            encoded = RowEncoder(TABLES[table], bytes.fromhex(ledger_id))(entry_from_json(table, item["entry"]))
            if encoded != canonical:
                raise ValueError("the entry shown does not encode to the proven bytes")
            if item["entry"].get("seq") != seq:
                raise ValueError("the entry's seq differs from the proof's")
            proof = InclusionProof.from_json(item["inclusion"])
            if proof.index != seq or proof.size != checkpoint.size:
                raise ValueError(f"proof is for leaf {proof.index} of {proof.size}, not {seq} of the checkpoint's {checkpoint.size}")
            proof.verify(leaf_hash(canonical), checkpoint.info.root)
            result["ok"] = True
        except (KeyError, ValueError, TypeError, EntryError, ProofError) as e:
            result["problem"] = f"{type(e).__name__}: {e}"
        report.entries.append(result)
    report.ok = all(e["ok"] for e in report.entries)
    if not report.ok:
        report.problems.append("at least one entry does not verify")
    return report


def write_proof(doc: dict, out: str | os.PathLike[str]) -> Path:
    path = Path(out)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path
