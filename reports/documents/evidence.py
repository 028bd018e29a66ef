"""The examiner evidence pack: one regulation, one period, every requirement against what the
audit ledger holds.

A regulation pack (:mod:`mappings`) names, for each requirement, the SQL that evidences it and
the expectation that decides it. This document evaluates the pack over the entries of one
signed checkpoint, through the same read-only SQL session an examiner gets with `mrm sql`,
and lays the result out for a reader who was not there: a cover with what it rests on; an
executive summary with the coverage matrix and every gap; what the models did in the period,
as charts; one section per requirement (citation, paraphrase, what an examiner asks, the
status and why, the offending rows, a bounded sample of what was judged with the exact
count, and the SQL, runnable as printed); the requirements a ledger cannot evidence, with
what to ask for instead; the integrity of every entry shown; and the method.

It embeds what it shows: each query's kept rows as Parquet, the evaluation as the evidence
bundle's summary.json, the exact pack text (pack.toml, whose SHA-256 the document prints),
the verification report, the checkpoint note and an inclusion proof of every entry a table
names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from forensics.session import LedgerSQL
from ledger.note import Signer
from ledger.transfer import RetentionState
from mappings.bundle import PARQUET_FILES, evidence_parquet, evidence_tables
from mappings.catalog import load_pack
from mappings.evaluate import evaluate, ledger_period
from mappings.expectations import NO_ROWS
from mappings.pack import Pack
from mappings.period import Period as PackPeriod
from mappings.period import parse_instant
from mappings.result import EvidenceResult, PackResult
from mappings.status import Status as PackStatus

from ..errors import ReportError
from ..model import (
    Attachment,
    AttachmentRole,
    Block,
    CodeBlock,
    Paragraph,
    Period,
    Report,
    ReportKind,
    Section,
)
from .activity import PeriodActivity, activity_queries, activity_section, read_activity
from .arrow_tables import entry_numbers
from .basis import EvidenceBasis, ProofCheck, TrustPlan, establish_basis, prove_shown_entries
from .pack_sections import (
    Limits,
    Numbering,
    outside_ledger_section,
    pack_method_blocks,
    requirement_sections,
    summary_section,
)
from .parts import (
    DocumentInfo,
    ShownEntry,
    cover_verification,
    document_meta,
    evidence_attachments,
    failed_verification_section,
    how_to_verify_section,
    integrity_section,
    json_bytes,
    method_section,
    report_id_for,
)
from .written import WrittenReport, write_report

__all__ = ["EvidenceScope", "Limits", "build_evidence_report", "write_evidence_report"]

UTC = dt.timezone.utc
PARQUET = "application/vnd.apache.parquet"
PACK_ATTACHMENT = "pack.toml"
SUMMARY_ATTACHMENT = "summary.json"
MAX_ATTACHMENT_NAME = 100


@dataclass(frozen=True)
class EvidenceScope:
    """Which pack, over which period [since, until) (default: the ledger's whole history up
    to the checkpoint), and how much of each result the document carries."""

    pack: str | os.PathLike[str] | Pack
    since: str | dt.datetime | None = None
    until: str | dt.datetime | None = None
    as_if_in_force: bool = False  # judge the whole period even where the pack was not in force (readiness)
    packs_dirs: tuple[Path, ...] | None = None
    limits: Limits = Limits()


def build_evidence_report(ledger_path: str | os.PathLike[str], scope: EvidenceScope, plan: TrustPlan,
                          info: DocumentInfo = DocumentInfo(), *, retention: RetentionState | None = None,
                          timings: dict[str, float] | None = None) -> Report:
    """The examiner evidence pack as a :class:`~reports.model.Report`. ``retention``: the
    retention state of the store the ledger lives in (ledger.transfer.retention_state), for
    the packs' retention evidence; without it a mirror of an object store shows as not read.
    ``timings``, when given, receives the seconds each step took (for benchmarks)."""
    clock = _Clock(timings)
    pack = load_pack(scope.pack, scope.packs_dirs)  # a bad pack is refused before the ledger is read
    basis = establish_basis(ledger_path, plan, checked_at=info.assembled_at())
    clock.lap("basis")
    with LedgerSQL(basis.source, retention=retention) as session:
        period = _period(scope, session)
        result = evaluate(session, pack, period, as_if_in_force=scope.as_if_in_force, max_rows=scope.limits.kept)
    clock.lap("evaluate")
    judged = result.period or result.requested
    activity = read_activity(basis.source, judged.start, judged.end)
    clock.lap("activity")
    shown = _shown_entries(result, scope.limits)
    proofs = prove_shown_entries(basis, [e.seq for e in shown])
    clock.lap("proofs")
    report = _document(basis, result, activity, shown, proofs, scope.limits, info)
    clock.lap("assemble")
    return report


def write_evidence_report(ledger_path: str | os.PathLike[str], scope: EvidenceScope, plan: TrustPlan, signer: Signer | None,
                          out_path: str | os.PathLike[str] | None = None, *, info: DocumentInfo = DocumentInfo(),
                          created: dt.datetime | None = None, retention: RetentionState | None = None) -> WrittenReport:
    """Build, render, sign and write the evidence pack (default file name: ``<report id>.pdf``)."""
    report = build_evidence_report(ledger_path, scope, plan, info, retention=retention)
    return write_report(report, signer, out_path, created=created, checkpoint_keys=plan.public_keys)


class _Clock:
    def __init__(self, timings: dict[str, float] | None):
        self.timings, self.last = timings, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = now - self.last
        self.last = now


# --------------------------------------------------------------------------- reading


def _period(scope: EvidenceScope, session: LedgerSQL) -> PackPeriod:
    if scope.since is not None and scope.until is not None:
        return PackPeriod(parse_instant(scope.since, "from"), parse_instant(scope.until, "to"))
    whole = ledger_period(session)  # the entries of the checkpoint: oldest to just after the newest
    start = parse_instant(scope.since, "from") if scope.since is not None else whole.start
    end = parse_instant(scope.until, "to") if scope.until is not None else max(whole.end, start)
    return PackPeriod(start, end)


def _shown_entries(result: PackResult, limits: Limits) -> list[ShownEntry]:
    """Every entry a table of the document names (seq and *_seq columns of the rows shown),
    once, described by the evidence item that shows it first."""
    seen: dict[int, ShownEntry] = {}
    for r in result.requirements:
        for e in r.evidence:
            tables = [(e.offending, limits.shown)]
            if e.item.expect.kind != NO_ROWS:
                tables.append((e.rows, limits.shown))
            if e.scope_rows is not None:
                tables.append((e.scope_rows, limits.sample))
            for table, limit in tables:
                for seq in entry_numbers(table, limit):
                    seen.setdefault(seq, ShownEntry(seq, f"{r.requirement.citation}: {e.id}"))
    return sorted(seen.values(), key=lambda s: s.seq)


# --------------------------------------------------------------------------- attachments


class _AttachmentNames:
    """Names of the embedded query results: ``<requirement>.<item>.<file>``, the evidence
    bundle's ``evidence/<requirement>/<item>/<file>`` flattened (attachment names cannot hold
    a path), shortened with a digest where a pack's ids make it too long. Empty results are
    not embedded: summary.json still gives their (zero) counts and columns."""

    def __init__(self, result: PackResult):
        self.names: dict[tuple[str, str, str], str] = {}
        taken: set[str] = set()
        for r in result.requirements:
            for e in r.evidence:
                for part, table in evidence_tables(e).items():
                    if not table.num_rows:
                        continue
                    name = _attachment_name(r.id, e.id, PARQUET_FILES[part], taken)
                    taken.add(name.lower())
                    self.names[(r.id, e.id, part)] = name

    def __call__(self, requirement_id: str, item_id: str, part: str) -> str | None:
        return self.names.get((requirement_id, item_id, part))


def _attachment_name(requirement_id: str, item_id: str, file: str, taken: set[str]) -> str:
    name = f"{requirement_id}.{item_id}.{file}"
    if len(name) > MAX_ATTACHMENT_NAME or name.lower() in taken:
        digest = hashlib.sha256(f"{requirement_id}/{item_id}/{file}".encode()).hexdigest()[:10]
        name = f"{requirement_id[:40]}.{item_id[:30]}-{digest}.{file}"
    return name


def _result_attachments(result: PackResult, names: _AttachmentNames, basis: EvidenceBasis,
                        pack_text: bytes | None) -> list[Attachment]:
    """The evaluation (summary.json, the bundle's summary with attachment names for files),
    the pack text, and each non-empty query result as Parquet."""
    out: list[Attachment] = []
    summary = result.to_dict()
    # The institution's file system layout is not evidence: name files, not paths.
    summary["rests_on"]["path"] = basis.path.name
    summary["pack"]["file"] = Path(result.pack.file).name
    if pack_text is not None:
        summary["pack"]["bundled_as"] = PACK_ATTACHMENT
    checkpoint = summary["rests_on"].get("checkpoint")
    if checkpoint is not None and checkpoint.get("size") == basis.checkpoint.size:
        checkpoint["bundled_as"] = "checkpoint.note"
    for r, r_doc in zip(result.requirements, summary["requirements"]):
        for e, e_doc in zip(r.evidence, r_doc["evidence"]):
            files: dict[str, str] = {}
            notes: list[str] = []
            for part, table in evidence_tables(e).items():
                name = names(r.id, e.id, part)
                if name is None:
                    continue
                data, table_notes = evidence_parquet(table)
                notes += table_notes
                files[part] = name
                out.append(Attachment(name, PARQUET, data, _describe(part, e.id, r.requirement.citation, table.num_rows,
                                                                    _total(e, part)), AttachmentRole.QUERY_RESULT))
            e_doc["files"] = files
            if notes:
                e_doc["parquet_notes"] = sorted(set(notes))
    head = [Attachment(SUMMARY_ATTACHMENT, "application/json", json_bytes(summary),
                       f"The evaluation of pack {result.pack.id} (mrm-pack-result/1, as in an evidence bundle's summary.json): "
                       "statuses, explanations, SQL, parameters, counts, and the attachment holding each result",
                       AttachmentRole.QUERY_RESULT)]
    if pack_text is not None:
        head.append(Attachment(PACK_ATTACHMENT, "application/toml", pack_text,
                               f"The exact text of pack {result.pack.id} {result.pack.pack_version} that judged the ledger "
                               f"(SHA-256 {result.pack.sha256})", AttachmentRole.OTHER))
    return head + out


def _pack_text(pack: Pack) -> bytes | None:
    path = Path(pack.file)
    if not path.is_file():
        return None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != pack.sha256:
        raise ReportError(f"{path} changed while the document was being built (its SHA-256 is no longer the one that "
                          "judged the ledger); build the document again")
    return data


def _total(e: EvidenceResult, part: str) -> int:
    return {"rows": e.row_count, "offending": e.offending_count, "scope_rows": e.scope_count or 0}[part]


def _describe(part: str, item_id: str, citation: str, held: int, total: int) -> str:
    what = {"rows": "rows the query returned", "offending": "offending rows (findings)",
            "scope_rows": "rows of the population (scope query)"}[part]
    count = f"all {total:,}" if held >= total else f"the first {held:,} of {total:,}"
    return f"Query result, {citation} / {item_id}: {what}, {count}"


# --------------------------------------------------------------------------- assembly


def _document(basis: EvidenceBasis, result: PackResult, activity: PeriodActivity, shown: list[ShownEntry],
              proofs: ProofCheck, limits: Limits, info: DocumentInfo) -> Report:
    pack = result.pack
    pack_text = _pack_text(pack)
    names = _AttachmentNames(result)
    failed = failed_verification_section(basis, proofs)
    first = 1 + (failed is not None)  # number of the executive summary
    requirements = requirement_sections(result, limits, names)
    outside = outside_ledger_section(result)
    judged_no, outside_no = first + 2, first + 3
    numbering = Numbering({
        **{r.id: f"{judged_no}.{i}" for i, r in enumerate(
            (r for r in result.requirements if r.status != PackStatus.OUT_OF_SCOPE), 1)},
        **{r.id: f"{outside_no}.{i}" for i, r in enumerate(
            (r for r in result.requirements if r.status == PackStatus.OUT_OF_SCOPE), 1)},
    })
    c = basis.checkpoint
    verdict_line = (f"The evidence rests on the signed checkpoint of {c.size:,} entries (root {c.root.hex()[:16]}...), "
                    f"checked by {basis.method.title}: {cover_verification(basis, proofs).headline}.")
    sections = [s for s in (failed,) if s is not None]
    sections += [
        summary_section(result, numbering, verdict_line),
        activity_section(activity),
        Section("Requirements judged from the ledger", (Paragraph(
            "One section per requirement the ledger can evidence, in the pack's order: what it requires, what an examiner "
            "asks, its status and why, and for each evidence item the rule, the counts, the offending rows, a sample of "
            "what was judged, and the query that produced them with its parameters written in."),) if requirements else (
            Paragraph("The pack has no requirement the ledger can evidence."),), tuple(requirements)),
    ]
    if outside is not None:
        sections.append(outside)
    sections += [
        integrity_section(basis, proofs, shown, intro=(
            "Every entry a table of this document names by its sequence number (the seq and *_seq columns of the rows "
            "shown) is listed below with the result of its inclusion proof, checkable with the public key alone. Counts "
            "and charts cover every entry of the checkpoint; they are as good as the whole-ledger check above.")),
        method_section(basis, pack_method_blocks(result, limits, PACK_ATTACHMENT if pack_text is not None else None),
                       (activity_queries(activity),)),
        how_to_verify_section(basis, proofs, extra=_rerun_blocks(result)),
    ]
    start, end = result.requested.start, result.requested.end
    readiness = " Readiness assessment: judged as if in force." if result.applicability.as_if_in_force else ""
    meta = document_meta(
        ReportKind.EVIDENCE, basis, proofs, info,
        report_id=report_id_for("EVP", basis, pack.id, f"{start:%Y%m%d}-{end:%Y%m%d}"),
        title=f"Examiner evidence pack: {pack.title}",
        subtitle=(f"{pack.instrument}. Each requirement against what the audit ledger holds, with the evidence, the SQL "
                  f"that produced it and its proof (pack {pack.id} {pack.pack_version}).{readiness}"),
        system=("model slots " + ", ".join(activity.slot_names)) if activity.slot_names else
               "no model slot was active in the period",
        period=Period(start, end),
    )
    attachments = (
        *evidence_attachments(basis, proofs, proofs_description=(
            f"Inclusion proofs of the {len(shown)} entries the evidence tables name (mrm-ledger-proof/1)")),
        *_result_attachments(result, names, basis, pack_text),
    )
    return Report(meta, tuple(sections), attachments)


def _rerun_blocks(result: PackResult) -> list[Block]:
    start, end = result.requested.start, result.requested.end
    flags = " --as-if-in-force" if result.applicability.as_if_in_force else ""
    command = (
        "# Re-run the whole evaluation on the ledger, read-only, resting on its signed checkpoints\n"
        f"mrm map LEDGER --pack {PACK_ATTACHMENT} --from {_iso(start)} --to {_iso(end)}{flags} \\\n"
        "    --verify --public-key ledger.pub --out rerun\n"
        "# ...or one query: paste it from its section into\n"
        "mrm sql LEDGER --verify --public-key ledger.pub\n"
    )
    return [
        Paragraph(
            f"To repeat the findings with access to the ledger, extract {PACK_ATTACHMENT} and run the pack yourself. The "
            "statuses and counts are the same as long as the answers rest on the same entries: entries written after "
            "this document's checkpoint are in a later checkpoint, and can change a count."),
        CodeBlock(command, language="text", caption="Repeating the evaluation"),
    ]


def _iso(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if not t.microsecond else \
        t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

