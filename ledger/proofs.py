"""Self-contained proofs: one decision shown to be in the ledger, or one checkpoint shown to
extend another, checkable offline with nothing but a public key.

An inclusion proof document (JSON, format "mrm-ledger-proof/1", kind "inclusion")::

    {"format": "mrm-ledger-proof/1", "kind": "inclusion", "ledger_id": <32 lowercase hex>,
     "checkpoint": <the signed checkpoint note, as text>,
     "entries": [{"seq": int, "table": str,
                  "entry": {<every column the canonical encoding covers; no mac>},
                  "canonical": <base64 of the entry's canonical bytes>,
                  "leaf_hash": <base64 SHA-256 leaf hash of those bytes>,
                  "inclusion": {"index": int, "size": int, "hashes": [base64, ...]}}, ...]}

A consistency proof document (kind "consistency") holds "old_checkpoint", "new_checkpoint"
and "consistency": {"size1", "size2", "hashes"}. Base64 is standard and canonical.

The verifier checks every field a proof carries or refuses the document: first its shape
(exactly these fields, each of its type, range and canonical encoding; entries in strictly
ascending seq order; each entry the canonical JSON of a valid entry of its table; each
leaf_hash the hash of the canonical bytes beside it), refusing anything else with a
ProofFormatError naming the JSON path (exit code 2). Then what the proof claims: the
checkpoint notes are signed by trusted keys, by no other key and each signature once, and
are for this ledger; the entry encodes to exactly the canonical bytes (so what a person
reads is what was proven); those bytes are a leaf of the signed tree. A failure there makes
a report that does not hold (exit code 1). An entry's HMAC `mac` is not in a proof: no
public verifier could check it. Generating a proof reads one snapshot of the ledger,
O(log n) tree tiles and the row group holding each entry, and refuses when the stored tree
does not hash to the root the checkpoint signs.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .checkpoints import stored_notes, tree_dir
from .encoding import RowEncoder, entry_prefix
from .entries import entry_from_json, entry_to_json
from .errors import EntryError, IntegrityError, LedgerError, ProofFormatError
from .jsontext import JSONTextError, json_path, loads_strict
from .merkle import ConsistencyProof, InclusionProof, ProofError, leaf_hash
from .note import Checkpoint, MalformedNoteError, NoteError, Signature, Verifier, _b64decode, parse_note
from .public import SignedCheckpoint, open_ledger_checkpoint
from .read import LedgerSnapshot, as_snapshot, snapshot
from .schema import TABLE_NAMES, TABLES
from .storage import Layout, read_meta
from .tiles import TileStore, TileStoreError

FORMAT = "mrm-ledger-proof/1"
REQUEST_TABLES = ("data_access", "model_inference", "attribution", "guardrail")
MAX_SEQ = 2**63 - 1  # sequence numbers and tree sizes are int64
MAX_PATH = 64  # hashes in an inclusion or consistency proof of a tree of up to 2^63 leaves
_HEX = frozenset("0123456789abcdef")
_INCLUSION_DOC = ("format", "kind", "ledger_id", "checkpoint", "entries")
_CONSISTENCY_DOC = ("format", "kind", "ledger_id", "old_checkpoint", "new_checkpoint", "consistency")
_ENTRY = ("seq", "table", "entry", "canonical", "leaf_hash", "inclusion")


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


def find_entry(path: str | os.PathLike[str] | LedgerSnapshot, seq: int) -> tuple[str, dict]:
    """(table, stored row) of one sequence number: only the files whose range holds it,
    and in them only the row groups whose statistics do."""
    snap = as_snapshot(path)
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


def find_request(path: str | os.PathLike[str] | LedgerSnapshot, request_id: str) -> list[int]:
    """Sequence numbers of every entry written for one request, in order."""
    snap = as_snapshot(path)
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


def _stored_root(layout: Layout, size: int, note: bytes) -> bytes:
    """The root the stored checkpoint for `size` signs (read, not verified: it is the
    ledger's own file; the reader of the proof verifies it)."""
    try:
        checkpoint = Checkpoint.from_text(parse_note(note).text)
    except NoteError as e:
        raise IntegrityError(f"{layout.root}: the stored checkpoint for size {size} is damaged ({e}); `mrm verify` reports it") from None
    if checkpoint.size != size:
        raise IntegrityError(f"{layout.root}: the checkpoint stored as size {size} says size {checkpoint.size}; `mrm verify` reports it")
    return checkpoint.root


def _open_tree(layout: Layout, sizes: Sequence[tuple[int, bytes]]) -> TileStore:
    """The stored tree, refused unless it hashes to the root each (size, note) signs: a
    proof from a tree that disagrees with the signed checkpoint could never verify."""
    try:
        tree = TileStore(tree_dir(layout), readonly=True)
    except TileStoreError as e:
        raise IntegrityError(f"{layout.root}: the ledger's Merkle tree cannot be read ({e}); `mrm verify` reports the damage") from None
    try:
        for size, note in sizes:
            signed = _stored_root(layout, size, note)
            if size > tree.size:
                raise IntegrityError(f"{layout.root}: the stored tree holds {tree.size} leaves, fewer than the {size} "
                                     f"the checkpoint signs; `mrm verify` reports the damage")
            if tree.root(size) != signed:
                raise IntegrityError(f"{layout.root}: the stored tree's root at size {size} is {_b64(tree.root(size))}, "
                                     f"not the root the checkpoint signs, {_b64(signed)}; no proof is made from it. "
                                     f"`mrm verify` reports the damage")
    except BaseException:
        tree.close()
        raise
    return tree


def prove_entries(path: str | os.PathLike[str], seqs: Sequence[int], *, checkpoint_size: int | None = None,
                  snap: LedgerSnapshot | None = None) -> dict[str, Any]:
    """An inclusion proof document for these entries (in ascending order, each once) at the
    newest (or given) checkpoint, all read from one snapshot of the ledger (`snap`, or
    one taken now). Raises ProofRequestError for entries it cannot prove, IntegrityError
    when the stored tree disagrees with the signed checkpoint."""
    layout = Layout(Path(path))
    meta = read_meta(layout)
    size, note = _newest_checkpoint(layout, checkpoint_size)
    wanted = sorted(set(seqs))
    if not wanted:
        raise ProofRequestError("no entry to prove")
    for seq in wanted:
        if seq < 0:
            raise ProofRequestError(f"no entry with sequence number {seq}")
        if seq >= size:
            raise ProofRequestError(f"entry {seq} is newer than the checkpoint for size {size}; run `mrm checkpoint` first")
    snap = snap or snapshot(path)
    entries = []
    with _open_tree(layout, [(size, note)]) as tree:
        for seq in wanted:
            table, row = find_entry(snap, seq)
            # An entry edited on disk is still proven as stored: its proof then fails for
            # whoever checks it, which is what a report on a damaged ledger must show.
            shown = entry_to_json(table, row)
            canonical = RowEncoder(TABLES[table], meta.ledger_id_bytes)(entry_from_json(table, shown))
            entries.append({
                "seq": seq,
                "table": table,
                "entry": shown,
                "canonical": _b64(canonical),
                "leaf_hash": _b64(leaf_hash(canonical)),
                "inclusion": tree.inclusion_proof(seq, size).to_json(),
            })
    return {"format": FORMAT, "kind": "inclusion", "ledger_id": meta.ledger_id, "checkpoint": note.decode("utf-8"), "entries": entries}


def prove_consistency(path: str | os.PathLike[str], old_size: int, new_size: int) -> dict[str, Any]:
    """A consistency proof document: the checkpoint for `new_size` extends the one for `old_size`."""
    if not 0 < old_size < new_size:
        raise ProofRequestError(f"a consistency proof needs 0 < OLD < NEW, got {old_size} and {new_size}")
    layout = Layout(Path(path))
    meta = read_meta(layout)
    _, old_note = _newest_checkpoint(layout, old_size)
    _, new_note = _newest_checkpoint(layout, new_size)
    with _open_tree(layout, [(old_size, old_note), (new_size, new_note)]) as tree:
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
    checkpoint: dict | None = None  # the (new) checkpoint: size, root, time, signed_by, note_sha256
    entries: list[dict] = field(default_factory=list)  # per entry: seq, table, ok, problem
    problems: list[str] = field(default_factory=list)
    old_checkpoint: dict | None = None  # consistency proofs: the checkpoint extended

    def summary(self) -> str:
        """What was checked, with the sizes and roots, or that the proof does not hold."""
        if not self.ok:
            return "proof does NOT hold"
        new = self.checkpoint or {}
        signers = ", ".join(new.get("signed_by", ()))
        if self.kind == "consistency":
            old = self.old_checkpoint or {}
            return (f"proof holds: the tree of size {old.get('size')} (root {old.get('root')}) is a prefix of the tree of "
                    f"size {new.get('size')} (root {new.get('root')}); both checkpoints signed by {signers}")
        seqs = ", ".join(str(e["seq"]) for e in self.entries)
        return (f"proof holds: {len(self.entries)} {'entry' if len(self.entries) == 1 else 'entries'} (seq {seqs}) in the "
                f"tree of size {new.get('size')} with root {new.get('root')}, signed {new.get('time')} by {signers}")

    def to_dict(self) -> dict:
        return {"ok": self.ok, "kind": self.kind, "ledger_id": self.ledger_id, "checkpoint": self.checkpoint,
                "old_checkpoint": self.old_checkpoint, "entries": self.entries, "problems": self.problems,
                "summary": self.summary()}


# --------------------------------------------------------------------------- the shape


def _refuse(parts: Sequence[str | int], message: str) -> ProofFormatError:
    return ProofFormatError(message, json_path(parts))


def _object(value: Any, parts: list[str | int], names: Sequence[str], what: str) -> Mapping[str, Any]:
    """`value` as an object with exactly the fields `names` (the first unknown or missing one is named)."""
    if not isinstance(value, dict):
        raise _refuse(parts, f"{what} must be a JSON object, not {_json_kind(value)}")
    for key in value:
        if key not in names:
            why = ("an entry's MAC is not part of a proof: no public verifier could check it"
                   if key == "mac" else f"{what} has only the fields {', '.join(names)}")
            raise _refuse([*parts, key], f"unknown field; {why}")
    for name in names:
        if name not in value:
            raise _refuse([*parts, name], f"missing field of {what}")
    return value


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _integer(value: Any, parts: list[str | int], low: int = 0, high: int = MAX_SEQ) -> int:
    if type(value) is not int:
        raise _refuse(parts, f"must be an integer, not {_json_kind(value)}")
    if not low <= value <= high:
        raise _refuse(parts, f"{value} is outside [{low}, {high}]")
    return value


def _text(value: Any, parts: list[str | int]) -> str:
    if type(value) is not str or not value:
        raise _refuse(parts, f"must be a non-empty string, not {_json_kind(value)}")
    return value


def _base64(value: Any, parts: list[str | int], size: int | None = None) -> bytes:
    text = _text(value, parts)
    try:
        raw = _b64decode(text, "value", MalformedNoteError)
    except NoteError as e:
        raise _refuse(parts, f"must be standard base64 in canonical form ({str(e).removeprefix('value ')})") from None
    if size is not None and len(raw) != size:
        raise _refuse(parts, f"decodes to {len(raw)} bytes, not the {size} of a SHA-256 hash")
    return raw


def _hashes(value: Any, parts: list[str | int]) -> tuple[bytes, ...]:
    if type(value) is not list:
        raise _refuse(parts, f"must be an array of base64 hashes, not {_json_kind(value)}")
    if len(value) > MAX_PATH:
        raise _refuse(parts, f"{len(value)} hashes, more than any proof in a tree of up to 2^63 leaves ({MAX_PATH})")
    return tuple(_base64(h, [*parts, i], 32) for i, h in enumerate(value))


def _ledger_id(doc: Mapping[str, Any]) -> str:
    value = _text(doc["ledger_id"], ["ledger_id"])
    if len(value) != 32 or not set(value) <= _HEX:
        raise _refuse(["ledger_id"], "must be 32 lowercase hex digits")
    return value


@dataclass(frozen=True)
class _ShownEntry:
    """One entry of an inclusion proof whose shape has been checked."""

    seq: int
    table: str
    row: dict[str, Any]  # the normalised row the entry's JSON stands for
    canonical: bytes
    inclusion: InclusionProof


def _shown_entry(item: Any, i: int) -> _ShownEntry:
    parts: list[str | int] = ["entries", i]
    item = _object(item, parts, _ENTRY, "an entry of a proof")
    seq = _integer(item["seq"], [*parts, "seq"])
    table = _text(item["table"], [*parts, "table"])
    if table not in TABLES:
        raise _refuse([*parts, "table"], f"{table!r} is not a table of the ledger")
    spec = TABLES[table]
    shown = _object(item["entry"], [*parts, "entry"], [c.name for c in spec.encoded_columns], f"a {table} entry")
    try:
        row = entry_from_json(table, shown)
    except EntryError as e:
        where = json_path([*parts, "entry"]) + (f".{e.field}" if e.field else "")
        raise ProofFormatError(e.reason, where) from None
    canonical_json = entry_to_json(table, row)
    if json.dumps(shown, sort_keys=True) != json.dumps(canonical_json, sort_keys=True):  # type-exact: 1 is not 1.0
        for name, value in shown.items():
            if json.dumps(value, sort_keys=True) != json.dumps(canonical_json[name], sort_keys=True):
                raise _refuse([*parts, "entry", name], f"not in canonical form: the entry stands for {json.dumps(canonical_json[name])}")
    canonical = _base64(item["canonical"], [*parts, "canonical"])
    if _base64(item["leaf_hash"], [*parts, "leaf_hash"], 32) != leaf_hash(canonical):
        raise _refuse([*parts, "leaf_hash"], f"is not the leaf hash of entries[{i}].canonical ({_b64(leaf_hash(canonical))})")
    o = _object(item["inclusion"], [*parts, "inclusion"], ("index", "size", "hashes"), "an inclusion proof")
    inclusion = InclusionProof(_integer(o["index"], [*parts, "inclusion", "index"]),
                               _integer(o["size"], [*parts, "inclusion", "size"]),
                               _hashes(o["hashes"], [*parts, "inclusion", "hashes"]))
    return _ShownEntry(seq, table, row, canonical, inclusion)


def _shown_entries(value: Any) -> list[_ShownEntry]:
    if type(value) is not list or not value:
        raise _refuse(["entries"], f"must be a non-empty array of entries, not {_json_kind(value) if value != [] else 'empty'}")
    entries: list[_ShownEntry] = []
    for i, item in enumerate(value):
        entry = _shown_entry(item, i)
        if entries and entry.seq <= entries[-1].seq:
            same = next((j for j, e in enumerate(entries) if e.seq == entry.seq), None)
            raise _refuse(["entries", i, "seq"], f"entry {entry.seq} appears twice (also entries[{same}])" if same is not None
                          else f"entry {entry.seq} comes after entry {entries[-1].seq}: entries are in ascending seq order")
        entries.append(entry)
    return entries


def _consistency(value: Any) -> ConsistencyProof:
    o = _object(value, ["consistency"], ("size1", "size2", "hashes"), "a consistency proof")
    return ConsistencyProof(_integer(o["size1"], ["consistency", "size1"]), _integer(o["size2"], ["consistency", "size2"]),
                            _hashes(o["hashes"], ["consistency", "hashes"]))


@dataclass(frozen=True)
class _Note:
    key: str  # the field that holds it
    note: bytes
    signatures: tuple[Signature, ...]  # () when the note is malformed: opening it says why


def _note(value: Any, key: str) -> _Note:
    """A checkpoint note, refusing a signature line given twice (it would not be checked twice)."""
    text = _text(value, [key])
    try:
        note = text.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse([key], "is not valid UTF-8 text (a lone surrogate)") from None
    try:
        signatures = parse_note(note).signatures
    except NoteError:
        return _Note(key, note, ())
    for number, sig in enumerate(signatures):
        if sig in signatures[:number]:
            raise _refuse([key], f"signature line {number + 1} repeats an earlier one")
    return _Note(key, note, signatures)


def parse_proof(text: str | bytes) -> dict[str, Any]:
    """A proof document from JSON text: strict JSON (ProofFormatError naming the path of
    a duplicate key, NaN, 1e400, 10**400 or too deep a nesting); its shape is checked by
    verify_proof."""
    try:
        doc = loads_strict(text)
    except JSONTextError as e:
        raise ProofFormatError(e.reason, e.path) from None
    if not isinstance(doc, dict):
        raise ProofFormatError(f"a proof is a JSON object, not {_json_kind(doc)}")
    return doc


# --------------------------------------------------------------------------- verification


def verify_proof(doc: Any, verifiers: Sequence[Verifier]) -> ProofReport:
    """Check a proof document offline. Raises ProofFormatError (naming the JSON path) for
    a document that is not a well-formed proof; a well-formed one that does not verify is
    a report that says why."""
    if not isinstance(doc, dict):
        raise ProofFormatError(f"a proof is a JSON object, not {_json_kind(doc)}")
    for name in ("format", "kind"):
        if name not in doc:
            raise _refuse([name], "missing field of a proof document")
    if doc["format"] != FORMAT:
        raise _refuse(["format"], f"not an {FORMAT} document")
    kind = doc["kind"]
    if kind not in ("inclusion", "consistency"):
        raise _refuse(["kind"], f"unknown proof kind {kind!r}; the kinds are inclusion and consistency")
    if kind == "consistency":
        _object(doc, [], _CONSISTENCY_DOC, "a consistency proof document")
        ledger_id = _ledger_id(doc)
        old_note, new_note = _note(doc["old_checkpoint"], "old_checkpoint"), _note(doc["new_checkpoint"], "new_checkpoint")
        return _verify_consistency(ledger_id, old_note, new_note, _consistency(doc["consistency"]), verifiers)
    _object(doc, [], _INCLUSION_DOC, "an inclusion proof document")
    ledger_id = _ledger_id(doc)
    note = _note(doc["checkpoint"], "checkpoint")
    return _verify_inclusion(ledger_id, note, _shown_entries(doc["entries"]), verifiers)


def _signed(report: ProofReport, note: _Note, verifiers: Sequence[Verifier]) -> SignedCheckpoint | None:
    try:
        signed = open_ledger_checkpoint(note.note, verifiers, report.ledger_id)
    except NoteError as e:
        report.problems.append(f"{note.key}: {type(e).__name__}: {e}")
        return None
    untrusted = [f"{s.name}+{s.key_id:08x}" for s in note.signatures if f"{s.name}+{s.key_id:08x}" not in signed.signed_by]
    if untrusted:
        raise _refuse([note.key], f"also signed by {', '.join(untrusted)}, not a trusted key, so that signature cannot be "
                                  f"checked; pass its public key too, or remove its line")
    return signed


def _verify_consistency(ledger_id: str, old_note: _Note, new_note: _Note, proof: ConsistencyProof,
                        verifiers: Sequence[Verifier]) -> ProofReport:
    report = ProofReport(False, "consistency", ledger_id)
    old, new = _signed(report, old_note, verifiers), _signed(report, new_note, verifiers)
    if old is None or new is None:
        return report
    report.old_checkpoint, report.checkpoint = old.summary(), new.summary()
    try:
        if (proof.size1, proof.size2) != (old.size, new.size):
            raise ProofError(f"proof is for sizes {proof.size1}->{proof.size2}, the checkpoints for {old.size}->{new.size}")
        proof.verify(old.info.root, new.info.root)
    except ProofError as e:
        report.problems.append(f"consistency: {e}")
        return report
    report.ok = True
    return report


def _verify_inclusion(ledger_id: str, note: _Note, entries: Sequence[_ShownEntry], verifiers: Sequence[Verifier]) -> ProofReport:
    report = ProofReport(False, "inclusion", ledger_id)
    checkpoint = _signed(report, note, verifiers)
    if checkpoint is None:
        return report
    report.checkpoint = checkpoint.summary()
    ledger_bytes = bytes.fromhex(ledger_id)
    prefix = entry_prefix(ledger_bytes)
    for i, e in enumerate(entries):
        result: dict[str, Any] = {"seq": e.seq, "table": e.table, "ok": False}
        try:
            if not e.canonical.startswith(prefix):
                raise ProofError("the canonical bytes are for another ledger or format")
            if RowEncoder(TABLES[e.table], ledger_bytes)(e.row) != e.canonical:
                raise ProofError("the entry shown does not encode to the proven bytes")
            if e.row["seq"] != e.seq:
                raise ProofError(f"the entry's seq {e.row['seq']} differs from the proof's {e.seq}")
            if e.inclusion.index != e.seq or e.inclusion.size != checkpoint.size:
                raise ProofError(f"proof is for leaf {e.inclusion.index} of {e.inclusion.size}, "
                                 f"not {e.seq} of the checkpoint's {checkpoint.size}")
            e.inclusion.verify(leaf_hash(e.canonical), checkpoint.info.root)
            result["ok"] = True
        except ProofError as err:
            result["problem"] = f"entries[{i}]: {type(err).__name__}: {err}"
        report.entries.append(result)
    report.ok = all(e["ok"] for e in report.entries)
    if not report.ok:
        report.problems.append("at least one entry does not verify")
    return report


def write_proof(doc: dict, out: str | os.PathLike[str]) -> Path:
    path = Path(out)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path
