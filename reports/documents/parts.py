"""The parts every ledger document shares: the cover's metadata and verification verdict,
the evidence attachments (verification report, checkpoint note, inclusion proofs), the
integrity section, the FAILED section, and the appendix on method and on how to check the
document without trusting the institution.

Builders (decision dossier, validation history, and the evidence pack after them) supply
their own sections and call these for the rest, so every document states what it rests on
in the same words and checks the same way.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ..model import (
    Attachment,
    AttachmentRole,
    Block,
    CodeBlock,
    Column,
    KeyValue,
    KeyValues,
    Paragraph,
    Period,
    ReportKind,
    ReportMeta,
    Section,
    Status,
    StatusBadge,
    Table,
    ValueKind,
    VerificationSummary,
)
from ..values import format_timestamp
from .basis import EvidenceBasis, ProofCheck, VerificationMethod

__all__ = [
    "CHECKPOINT_ATTACHMENT",
    "PARQUET",
    "PROOFS_ATTACHMENT",
    "VERIFICATION_ATTACHMENT",
    "DocumentInfo",
    "ShownEntry",
    "cover_verification",
    "document_meta",
    "evidence_attachments",
    "failed_verification_section",
    "how_to_verify_section",
    "integrity_section",
    "json_bytes",
    "method_section",
    "overall_status",
    "parquet_attachment",
    "parquet_bytes",
    "report_id_for",
]

UTC = dt.timezone.utc
PARQUET = "application/vnd.apache.parquet"
VERIFICATION_ATTACHMENT = "verification.json"
CHECKPOINT_ATTACHMENT = "checkpoint.note"
PROOFS_ATTACHMENT = "inclusion-proofs.json"
DEFAULT_INSTITUTION = "Institution not named (pass --institution)"
VERIFICATION_FORMAT = "mrm-report-verification/1"


@dataclass(frozen=True)
class DocumentInfo:
    """What the caller says about a document, as opposed to what the ledger says."""

    institution: str = DEFAULT_INSTITUTION
    prepared_by: str = ""
    report_id: str | None = None  # default: derived from the ledger id and what is reported on
    generated_at: dt.datetime | None = None  # when the evidence was assembled; default now
    time_zone: str = ""  # the institution's IANA time zone, shown next to UTC ("": UTC only)

    def assembled_at(self) -> dt.datetime:
        return (self.generated_at or dt.datetime.now(UTC)).astimezone(UTC)


@dataclass(frozen=True)
class ShownEntry:
    """An entry a document shows and proves: what it is, for the integrity table. A routine
    entry (a weekly reject, a monitor run that did not alert) names its kind: it is proven
    like any other, and listed with the others of its kind in one row."""

    seq: int
    what: str
    routine: str | None = None


# --------------------------------------------------------------------------- encoding


def parquet_bytes(table: pa.Table) -> bytes:
    """A query result as Parquet (zstd), the same bytes for the same table."""
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def parquet_attachment(name: str, table: pa.Table, description: str) -> Attachment:
    return Attachment(name, PARQUET, parquet_bytes(table), description, AttachmentRole.QUERY_RESULT)


def json_bytes(doc: Any) -> bytes:
    """Pretty, sorted, strict JSON (NaN refused) with a final newline."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False, default=_json_default) + "\n").encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def report_id_for(prefix: str, basis: EvidenceBasis, *parts: str | int) -> str:
    """A stable report id: the prefix, the ledger id's first 12 hex digits, the parts
    (characters a report id cannot hold become '-', and a short digest of the original
    keeps two different values from colliding), and the checkpoint size."""
    pieces = [prefix, basis.ledger_id[:12]]
    for part in parts:
        text = str(part)
        safe = _ID_UNSAFE.sub("-", text).strip("-._")[:40] or "x"
        if safe != text:
            safe += "-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:6]
        pieces.append(safe)
    pieces.append(f"c{basis.checkpoint.size}")
    return "-".join(pieces)[:128]


# --------------------------------------------------------------------------- verdict


def overall_status(basis: EvidenceBasis, proofs: ProofCheck | None) -> Status:
    """FAIL if the ledger or any proof fails; WARNING when only the entries shown were
    proven (the rest of the ledger was not checked); PASS otherwise."""
    if basis.ledger_ok is False or (proofs is not None and not proofs.ok):
        return Status.FAIL
    if not basis.method.full:
        return Status.WARN if proofs is not None and proofs.results else Status.NOT_RUN
    return Status.PASS


def _headline(basis: EvidenceBasis, proofs: ProofCheck | None, status: Status) -> str:
    check = basis.check
    proven = f"; {proofs.proven} of {len(proofs.results)} inclusion proofs verify" if proofs and proofs.results else ""
    if status is Status.FAIL:
        if check is not None and not check.ok:
            return (f"LEDGER VERIFICATION FAILED ({basis.method.value}): {len(check.problems)} problem(s). "
                    "The figures in this document come from a ledger that does not verify.")
        return (f"INCLUSION PROOFS FAILED: {proofs.proven if proofs else 0} of {len(proofs.results) if proofs else 0} "
                "entries shown are proven in the signed checkpoint.")
    if status is Status.WARN:
        return (f"Inclusion proofs of the {len(proofs.results) if proofs else 0} entries shown verify against the signed "
                "checkpoint; the rest of the ledger was not checked in this run")
    if status is Status.NOT_RUN:
        return "No verification was run"
    assert check is not None
    how = "HMAC chain" if basis.method is VerificationMethod.HMAC_CHAIN else "signed checkpoints, public keys only"
    return f"Ledger verified ({how}): {check.entries:,} entries, no problems{proven}"


def cover_verification(basis: EvidenceBasis, proofs: ProofCheck | None) -> VerificationSummary:
    status = overall_status(basis, proofs)
    c = basis.checkpoint
    facts: list[KeyValue] = [KeyValue("Method", basis.method.title)]
    if basis.check is not None:
        facts += [KeyValue("Entries checked", basis.check.entries), KeyValue("Problems found", len(basis.check.problems))]
    else:
        facts.append(KeyValue("Whole-ledger check", "not run (inclusion proofs only)"))
    if proofs is not None and proofs.results:
        facts.append(KeyValue("Inclusion proofs", f"{proofs.proven} of {len(proofs.results)} verify against the checkpoint root"))
    facts += [
        KeyValue("Evidence covers", f"entries 0 to {c.size - 1:,} (the checkpoint); nothing newer"),
        KeyValue("Checkpoint signed", c.signed_at),
        KeyValue("Checkpoint signed by", ", ".join(c.signed_by)),
    ]
    if basis.newer_entries:
        facts.append(KeyValue("Newer entries, not covered", basis.newer_entries))
    facts.append(KeyValue("Checked at", basis.checked_at))
    return VerificationSummary(status, _headline(basis, proofs, status), tuple(facts))


def document_meta(kind: ReportKind, basis: EvidenceBasis, proofs: ProofCheck | None, info: DocumentInfo, *,
                  report_id: str, title: str, subtitle: str, system: str, period: Period) -> ReportMeta:
    return ReportMeta(
        kind=kind,
        report_id=info.report_id or report_id,
        title=title,
        subtitle=subtitle,
        institution=info.institution,
        system=system,
        period=period,
        ledger_id=basis.ledger_id,
        checkpoint=basis.checkpoint.ref,
        verification=cover_verification(basis, proofs),
        generated_at=info.assembled_at(),
        prepared_by=info.prepared_by,
        time_zone=info.time_zone,
    )


# --------------------------------------------------------------------------- attachments


def verification_document(basis: EvidenceBasis, proofs: ProofCheck | None) -> dict[str, Any]:
    c = basis.checkpoint
    check = basis.check
    return {
        "format": VERIFICATION_FORMAT,
        "ledger_id": basis.ledger_id,
        "ledger_directory": basis.path.name,
        "method": basis.method.value,
        "method_title": basis.method.title,
        "checked_at": basis.checked_at,
        "result": overall_status(basis, proofs).value,
        "ledger_check": None if check is None else {
            "ok": check.ok, "summary": check.summary, "entries": check.entries, "segments": check.segments,
            "problems": list(check.problems), "report": check.report,
        },
        "checkpoint": {
            "origin": c.origin, "size": c.size, "root_base64": base64.b64encode(c.root).decode("ascii"),
            "root_hex": c.root.hex(), "time": c.time, "signed_by": list(c.signed_by),
            "note_sha256": hashlib.sha256(c.note).hexdigest(), "attachment": CHECKPOINT_ATTACHMENT,
        },
        "evidence_bound": {"first_seq": 0, "last_seq": c.size - 1, "newer_entries_not_covered": basis.newer_entries},
        "inclusion_proofs": None if proofs is None else {
            "ok": proofs.ok, "proven": proofs.proven, "total": len(proofs.results), "results": list(proofs.results),
            "problems": list(proofs.problems), "attachment": PROOFS_ATTACHMENT if proofs.document else None,
        },
    }


def evidence_attachments(basis: EvidenceBasis, proofs: ProofCheck | None, *, proofs_description: str) -> tuple[Attachment, ...]:
    """The verification report, the checkpoint note and (when made) the inclusion proofs."""
    out = [
        Attachment(VERIFICATION_ATTACHMENT, "application/json", json_bytes(verification_document(basis, proofs)),
                   f"What was checked before this document was built ({basis.method.value}) and the result",
                   AttachmentRole.VERIFICATION),
        Attachment(CHECKPOINT_ATTACHMENT, "text/plain", basis.checkpoint.note,
                   "The signed checkpoint (C2SP tlog-checkpoint note) this document rests on", AttachmentRole.CHECKPOINT),
    ]
    if proofs is not None and proofs.document is not None:
        out.append(Attachment(PROOFS_ATTACHMENT, "application/json", json_bytes(proofs.document), proofs_description,
                              AttachmentRole.PROOFS))
    return tuple(out)


# --------------------------------------------------------------------------- sections


def failed_verification_section(basis: EvidenceBasis, proofs: ProofCheck | None) -> Section | None:
    """The first section of a document built from a ledger that failed its check."""
    if overall_status(basis, proofs) is not Status.FAIL:
        return None
    blocks: list[Block] = [
        StatusBadge(Status.FAIL, "VERIFICATION FAILED",
                    "This document was produced on request from a ledger that did not verify. Its figures are shown "
                    "as read; they are not evidence of what the model decided until the problems below are explained."),
    ]
    problems = list(basis.check.problems) if basis.check is not None and not basis.check.ok else []
    if proofs is not None and not proofs.ok:
        problems += list(proofs.problems)
        problems += [f"seq {r.get('seq')}: {r.get('problem', 'does not verify')}" for r in proofs.results if not r.get("ok")]
    if problems:
        shown = problems[:60]
        blocks.append(Table((Column("Problem", ValueKind.TEXT),), tuple((p,) for p in shown),
                            caption="Problems the verification reported", source_attachment=VERIFICATION_ATTACHMENT,
                            total_rows=len(problems)))
    return Section("Verification FAILED", tuple(blocks))


def integrity_section(basis: EvidenceBasis, proofs: ProofCheck | None, shown: Sequence[ShownEntry], *,
                      title: str = "Integrity of this evidence", intro: str = "") -> Section:
    """How the ledger was checked, the checkpoint, and one row per entry shown with its leaf
    hash and the result of its inclusion proof; routine entries whose proofs verify, one row
    per kind."""
    c = basis.checkpoint
    status = overall_status(basis, proofs)
    blocks: list[Block] = []
    if intro:
        blocks.append(Paragraph(intro))
    blocks.append(StatusBadge(status, None, _headline(basis, proofs, status)))
    items = [
        KeyValue("Verification method", basis.method.title),
        KeyValue("Checkpoint origin", c.origin, ValueKind.IDENTIFIER),
        KeyValue("Checkpoint size", c.size),
        KeyValue("Checkpoint root (hex)", c.root.hex(), ValueKind.DIGEST),
        KeyValue("Checkpoint root (base64)", base64.b64encode(c.root).decode("ascii"), ValueKind.DIGEST),
        KeyValue("Checkpoint signed", c.signed_at),
        KeyValue("Checkpoint signed by", ", ".join(c.signed_by)),
    ]
    if basis.check is not None:
        items.append(KeyValue("Whole-ledger check", basis.check.summary))
    if basis.newer_entries:
        items.append(KeyValue("Entries newer than the checkpoint (not covered)", basis.newer_entries))
    blocks.append(KeyValues(tuple(items), caption="What this document rests on"))
    if shown:
        results = {r.get("seq"): r for r in proofs.results} if proofs is not None else {}
        entries = {e["seq"]: e for e in proofs.document["entries"]} if proofs is not None and proofs.document else {}
        # A routine entry whose proof did not verify is an exception: it gets its own row.
        grouped = [e for e in shown if e.routine is not None and (results.get(e.seq) or {}).get("ok")]
        grouped_seqs = {e.seq for e in grouped}
        single = [e for e in shown if e.seq not in grouped_seqs]
        attachment = PROOFS_ATTACHMENT if proofs is not None and proofs.document is not None else None
        blocks.append(Paragraph(
            f"Each entry shown in this document is proven to be the leaf at its sequence number in the Merkle tree whose "
            f"root, for size {c.size:,}, the checkpoint signs. The proofs are attached ({PROOFS_ATTACHMENT}); each holds the entry "
            "as JSON, its canonical bytes, and the sibling hashes from its leaf to the root."
            + (" Exceptional entries (decisions other than routine rejects, alerts and what answered them) have a row "
               "each; routine entries one row per kind, with the leaf hash of each in the attachment." if grouped else "")))
        rows = [_proof_row(e, results.get(e.seq), entries.get(e.seq)) for e in single]
        blocks.append(Table(
            (Column("Entry", ValueKind.TEXT, weight=2.2), Column("Table", ValueKind.IDENTIFIER, weight=1.6),
             Column("Seq", ValueKind.IDENTIFIER, weight=0.9), Column("Leaf hash, SHA-256 (hex)", ValueKind.DIGEST, weight=4.0),
             Column("Proof hashes", ValueKind.NUMBER, weight=0.9), Column("Inclusion", ValueKind.STATUS, weight=1.5)),
            tuple(rows),
            caption=(f"Entries shown, proven against the checkpoint of size {c.size:,}" if not grouped else
                     f"Exceptional entries shown, each proven against the checkpoint of size {c.size:,}"),
            source_attachment=attachment, total_rows=len(rows),
            empty_text="Every entry shown is routine (below)."))
        if grouped:
            kinds: dict[str, list[ShownEntry]] = {}
            for e in grouped:
                kinds.setdefault(e.routine, []).append(e)  # type: ignore[arg-type]
            kind_rows = tuple((kind, ", ".join(sorted({str(results[e.seq].get("table")) for e in group})), len(group),
                               _seq_span([e.seq for e in group]),
                               StatusBadge(Status.PASS, f"{len(group)} OF {len(group)} PROVEN"))
                              for kind, group in kinds.items())
            blocks.append(Table(
                (Column("Routine entries", ValueKind.TEXT, weight=3.0), Column("Table", ValueKind.IDENTIFIER, weight=1.6),
                 Column("Entries", ValueKind.NUMBER, weight=0.8), Column("Seqs", ValueKind.TEXT, weight=1.6),
                 Column("Inclusion", ValueKind.STATUS, weight=1.8)),
                kind_rows, caption=(f"Routine entries shown, one row per kind: every one proven against the checkpoint of "
                                    f"size {c.size:,} (each entry's seq, leaf hash and proof in {PROOFS_ATTACHMENT})"),
                source_attachment=attachment, total_rows=len(kind_rows)))
    return Section(title, tuple(blocks))


def _seq_span(seqs: Sequence[int]) -> str:
    """The seqs of a kind of routine entry, as the first and the last (each is in the proofs)."""
    first, last = min(seqs), max(seqs)
    return str(first) if first == last else f"{first} to {last}"


def _proof_row(entry: ShownEntry, result: Mapping[str, Any] | None, proof: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """One entry's row: what it is, its table, seq, leaf hash, proof length and result."""
    leaf = base64.b64decode(proof["leaf_hash"]).hex() if proof else None
    table = proof["table"] if proof else (result or {}).get("table")
    hashes = len(proof["inclusion"]["hashes"]) if proof else None
    if result is None:
        badge = StatusBadge(Status.NOT_RUN)
    elif result.get("ok"):
        badge = StatusBadge(Status.PASS, "PROVEN")
    else:
        badge = StatusBadge(Status.FAIL, "NOT PROVEN", str(result.get("problem", "")))
    return (entry.what, table, entry.seq, leaf, hashes, badge)


_LEDGER_METHOD = (
    "The ledger holds seven audit tables as Parquet files. Every entry has one canonical byte string "
    "(a length-prefixed layout of the ledger id and every typed column). Its SHA-256 leaf hash, "
    "SHA-256(0x00 || canonical bytes), feeds two mechanisms: an HMAC-SHA256 chain over all entries, which only "
    "the holder of the secret key can check, and an RFC 6962 Merkle tree whose root is signed with Ed25519 in "
    "checkpoints (C2SP signed notes), which anyone holding the public key can check."
)


def method_section(basis: EvidenceBasis, specific: Sequence[Block] = (), subsections: Sequence[Section] = (), *,
                   zone: dt.tzinfo | None = None) -> Section:
    """Appendix: how the evidence was gathered and what the verification does and does not show
    (times with their local time in ``zone`` too, when the document names one)."""
    c = basis.checkpoint
    verification = {
        VerificationMethod.HMAC_CHAIN: (
            "Before this document was built, the whole ledger was verified with the institution's secret HMAC key: "
            "every entry's MAC and its link to the previous entry, sequence gaps and duplicates, and the listed files "
            "with their SHA-256 digests. A reader without that key cannot repeat this check; the signed checkpoint and "
            "the attached proofs are what they can check."),
        VerificationMethod.SIGNED_CHECKPOINTS: (
            "Before this document was built, the whole ledger was verified with public keys only: every checkpoint's "
            "signature and its link to the one before, the listed files against the signed listing, and the Merkle "
            "root recomputed from the stored entries at every checkpoint size. Anyone holding the public key and the "
            "ledger can repeat this check (mrm verify PATH --public-key KEY)."),
        VerificationMethod.INCLUSION_PROOFS: (
            "The ledger as a whole was not verified for this document. What was checked is narrower: each entry shown "
            "is proven, with an RFC 6962 inclusion proof, to be in the Merkle tree the checkpoint signs. That proves "
            "the entries are in the signed record exactly as printed; it does not prove that no other entry (for "
            "instance a later promotion or rollback) bears on what is shown. Run the document again with a whole-ledger "
            "check (HMAC key or public key) before relying on such completeness."),
    }[basis.method]
    blocks: list[Block] = [
        Paragraph(_LEDGER_METHOD),
        Paragraph(verification),
        Paragraph(
            f"The document rests on the checkpoint of size {c.size:,} (entries 0 to {c.size - 1:,}), signed at {format_timestamp(c.signed_at, zone=zone)}. "
            "Only entries it covers are read; entries written after it are left out, so that every figure here can be "
            "checked against that one signed root."
            + (f" The ledger held {basis.newer_entries:,} newer entries when this document was built." if basis.newer_entries else "")),
        Paragraph(
            "Tables show values exactly as the ledger holds them: numbers without a stated precision are printed in "
            "full (never rounded), timestamps are UTC (a local time in parentheses after one only helps reading it), NULL means the ledger holds no value, and invisible or "
            "text-reordering characters are shown as ⟨U+XXXX⟩. Text from the ledger is never interpreted as markup "
            "or followed as a link."),
        *specific,
    ]
    return Section("Method and limitations", tuple(blocks), tuple(subsections))


def how_to_verify_section(basis: EvidenceBasis, proofs: ProofCheck | None, *, extra: Iterable[Block] = ()) -> Section:
    """Appendix: how a reader checks this PDF and the entries in it without trusting the institution."""
    c = basis.checkpoint
    keys = ", ".join(c.signed_by)
    steps = (
        "# 1. Check the document: the signed manifest, every attachment's SHA-256, the pages, the checkpoint\n"
        "mrm report verify THIS.pdf --public-key ledger.pub\n"
        "\n"
        "# 2. Extract the attachments (any PDF reader can save them; or, for example)\n"
        "pdfdetach -saveall THIS.pdf\n"
    )
    if proofs is not None and proofs.document is not None:
        steps += (
            "\n"
            "# 3. Check that each entry shown is in the signed Merkle tree\n"
            f"mrm verify-proof {PROOFS_ATTACHMENT} --public-key ledger.pub\n"
        )
    steps += (
        "\n"
        "# With access to the ledger itself: the whole ledger against its signed checkpoints\n"
        "mrm verify LEDGER --public-key ledger.pub\n"
    )
    blocks: list[Block] = [
        Paragraph(
            f"Obtain the ledger's public key from the institution through a channel you trust, and check that it is the "
            f"key {keys}: the key that signed the checkpoint and this document's manifest. It is a line of the form "
            "name+keyid+base64 (the institution exports it with `mrm keys export-public`). It cannot sign or alter "
            "anything. Then run:"),
        CodeBlock(steps, language="text", caption="Checking this document offline"),
        Paragraph(
            "The first command fails, and names what changed, if any attachment was altered, removed or added, if the "
            "drawn content of a page was changed, if the manifest is not signed by that key, or if the attached "
            "checkpoint is not the one named on the cover. A printed copy can be checked by comparing the SHA-256 digests "
            "in the attachment appendix with the extracted files, and the checkpoint root on the cover with "
            f"{CHECKPOINT_ATTACHMENT}."),
        Paragraph(
            f"To check the checkpoint itself against later ones (that the record was only ever appended to), ask the "
            f"institution for a consistency proof from size {c.size:,} to a newer checkpoint (mrm prove LEDGER "
            f"--consistency {c.size} NEW) and check it with mrm verify-proof."),
        *extra,
    ]
    return Section("How to verify this document", tuple(blocks))


def table_from_rows(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([dict(r) for r in rows], schema=schema)
