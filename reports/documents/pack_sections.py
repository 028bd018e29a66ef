"""The sections of the examiner evidence pack that come from a regulation pack's result: the
executive summary with the coverage matrix and every gap, one section per requirement judged
from the ledger (with its evidence tables and the SQL that produced them), the requirements
a ledger cannot evidence with what else to ask for, and the pack-specific part of the method
appendix.

The rows shown are bounded (:class:`Limits`); counts are always exact, and every table names
the attachment holding the rows kept (the first :attr:`Limits.kept` of each query).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from mappings.evaluate import show_value
from mappings.expectations import NO_ROWS
from mappings.result import EvidenceResult, PackResult, RequirementResult
from mappings.status import PRECEDENCE, Status as PackStatus

from ..model import Block, CodeBlock, Column, KeyValue, KeyValues, Paragraph, Section, Status, StatusBadge, Table, ValueKind
from .arrow_tables import MAX_CELL_CHARS, report_table
from .badges import requirement_status

__all__ = [
    "Limits",
    "MATRIX_ORDER",
    "outside_ledger_section",
    "pack_method_blocks",
    "requirement_sections",
    "runnable_sql",
    "summary_section",
]

UTC = dt.timezone.utc
MATRIX_ORDER = (PackStatus.MET, PackStatus.GAP, PackStatus.INSUFFICIENT_EVIDENCE, PackStatus.NOT_APPLICABLE,
                PackStatus.OUT_OF_SCOPE)
_MATRIX_TITLES = {PackStatus.MET: "Met", PackStatus.GAP: "Gap", PackStatus.INSUFFICIENT_EVIDENCE: "Insuff.",
                  PackStatus.NOT_APPLICABLE: "N/A", PackStatus.OUT_OF_SCOPE: "Outside"}
_MARK = "\u25cf"  # a filled circle: one per requirement, in the column of its status

# Names the attachments of an evidence item: (requirement id, item id, part) -> attachment name,
# or None when that part is not attached (an empty result).
AttachmentNamer = Callable[[str, str, str], "str | None"]


@dataclass(frozen=True)
class Limits:
    """How much of each query result the document carries."""

    kept: int = 1000  # rows kept per query and embedded as Parquet (counts are exact regardless)
    shown: int = 25  # rows a table of findings or judged rows shows
    sample: int = 10  # rows of a population (a scope) shown

    def __post_init__(self) -> None:
        if not (1 <= self.sample <= self.kept and 1 <= self.shown <= self.kept):
            raise ValueError(f"limits must satisfy 1 <= shown, sample <= kept; got {self}")


@dataclass(frozen=True)
class Numbering:
    """Where each requirement's section lands, so the summary can point at it."""

    by_requirement: dict[str, str]

    def of(self, requirement_id: str) -> str:
        return self.by_requirement.get(requirement_id, "")


# --------------------------------------------------------------------------- summary


def summary_section(result: PackResult, numbering: Numbering, verdict_line: str) -> Section:
    pack, app = result.pack, result.applicability
    counts = result.counts()
    total = len(result.requirements)
    judged = app.evaluated
    text = (f"This pack sets what the audit ledger holds against each of the {total} requirements of {pack.instrument}, "
            f"as the regulation pack {pack.id} (version {pack.pack_version}) states them, for the period "
            f"{_period_text(result.requested.start, result.requested.end)}. "
            + ("" if judged == result.requested else
               f"The requirements were judged on {_period_text(judged.start, judged.end)}. " if judged else
               "No requirement was judged: the pack was not in force in the period. ")
            + f"Applicability: {app.note}. {verdict_line}")
    blocks: list[Block] = [Paragraph(text)]
    if app.as_if_in_force:
        blocks.append(StatusBadge(Status.WARN, "READINESS ASSESSMENT",
                                  "the pack was not in force for all of the period and was applied anyway, as asked: the "
                                  "findings say whether the ledger would meet it, not that it was due"))
    elif judged is None:
        blocks.append(StatusBadge(Status.INFO, "NOT IN FORCE", app.note))
    gaps, insufficient = counts[PackStatus.GAP], counts[PackStatus.INSUFFICIENT_EVIDENCE]
    if gaps:
        blocks.append(StatusBadge(Status.FAIL, f"{gaps} GAP" + ("S" if gaps > 1 else ""),
                                  "requirement(s) for which the ledger shows a violation or lacks required evidence"))
    elif insufficient:
        blocks.append(StatusBadge(Status.WARN, "NO GAP; NOT ALL JUDGED",
                                  f"{insufficient} requirement(s) could not be judged from the period's records"))
    elif judged is not None:
        blocks.append(StatusBadge(Status.PASS, "NO GAP", "every requirement the ledger can evidence is met"))
    blocks.append(KeyValues(tuple(KeyValue(s.label[0].upper() + s.label[1:], counts[s]) for s in MATRIX_ORDER)
                            + (KeyValue("Requirements in the pack", total),), caption="Requirements by status"))
    subsections = [_matrix_section(result, numbering), _findings_section(result, numbering)]
    return Section("Executive summary", tuple(blocks), tuple(subsections))


def _matrix_section(result: PackResult, numbering: Numbering) -> Section:
    columns = (Column("Citation", ValueKind.TEXT, weight=2.5), Column("Requirement", ValueKind.TEXT, weight=3.3),
               *(Column(_MATRIX_TITLES[s], ValueKind.TEXT, weight=1.05) for s in MATRIX_ORDER),
               Column("Section", ValueKind.IDENTIFIER, weight=0.9))
    rows = [(r.requirement.citation, r.requirement.title,
             *(_MARK if r.status == s else "" for s in MATRIX_ORDER), numbering.of(r.id))
            for r in result.requirements]
    counts = result.counts()
    rows.append(("All requirements", f"{len(result.requirements)} in the pack", *(f"{counts[s]:,}" for s in MATRIX_ORDER), ""))
    table = Table(columns, tuple(rows), caption="Coverage matrix: each requirement against its status (\u25cf), with the "
                                                "count per status in the last row", total_rows=len(rows))
    legend = Paragraph(
        "Met: the evidence the pack asks for is there and shows no violation. Gap: rows that violate the requirement, or "
        "required evidence that is missing. Insufficient evidence: nothing in scope to judge. Not applicable: the pack "
        "says why. Outside the ledger: a ledger cannot evidence it; the pack says what to ask for instead.")
    return Section("Coverage matrix", (table, legend))


def _findings_section(result: PackResult, numbering: Numbering) -> Section:
    blocks: list[Block] = []
    for status, title, none in (
        (PackStatus.GAP, "Every gap", "No requirement has a gap."),
        (PackStatus.INSUFFICIENT_EVIDENCE, "Requirements that could not be judged", ""),
    ):
        found = [r for r in result.requirements if r.status == status]
        if not found:
            if none:
                blocks.append(StatusBadge(Status.PASS, "NO GAP", none))
            continue
        rows = tuple((r.requirement.citation, r.requirement.title, r.explanation, _offending_total(r), numbering.of(r.id))
                     for r in found)
        blocks.append(Table(
            (Column("Citation", ValueKind.TEXT, weight=2.2), Column("Requirement", ValueKind.TEXT, weight=2.6),
             Column("What the ledger shows", ValueKind.TEXT, weight=5.0), Column("Offending rows", ValueKind.NUMBER, weight=1.1),
             Column("Section", ValueKind.IDENTIFIER, weight=0.9)),
            rows, caption=f"{title} ({len(found)})", total_rows=len(rows)))
    return Section("Findings", tuple(blocks))


def _offending_total(r: RequirementResult) -> int:
    return sum(e.offending_count for e in r.evidence)


# --------------------------------------------------------------------------- requirements


def requirement_sections(result: PackResult, limits: Limits, name_of: AttachmentNamer) -> list[Section]:
    """One section per requirement the ledger can evidence (not-applicable ones included,
    with the reason), in the pack's order."""
    return [_requirement_section(r, result, limits, name_of) for r in result.requirements
            if r.status != PackStatus.OUT_OF_SCOPE]


def _requirement_section(r: RequirementResult, result: PackResult, limits: Limits, name_of: AttachmentNamer) -> Section:
    req = r.requirement
    met = sum(1 for e in r.evidence if e.status == PackStatus.MET)
    facts = [KeyValue("Citation", req.citation), KeyValue("Requirement id", req.id, ValueKind.IDENTIFIER)]
    if r.evidence:
        judged = result.period
        assert judged is not None
        facts += [KeyValue("Judged on", _period_text(judged.start, judged.end)),
                  KeyValue("Evidence items met", f"{met} of {len(r.evidence)}")]
    blocks: list[Block] = [
        StatusBadge(requirement_status(r.status.value).status, requirement_status(r.status.value).label, r.explanation),
        KeyValues(tuple(facts)),
        Paragraph("What it requires (paraphrased by the pack, not quoted): " + _one_line(req.paraphrase)),
        Paragraph("What an examiner asks:\n" + _bullets(req.examiner_asks)),
    ]
    if req.ask_for:
        blocks.append(Paragraph("Also ask the institution for:\n" + _bullets(req.ask_for)))
    subsections = tuple(_evidence_section(e, r, result, limits, name_of) for e in r.evidence)
    return Section(f"{req.citation}: {req.title}", tuple(blocks), subsections)


def _evidence_section(e: EvidenceResult, r: RequirementResult, result: PackResult, limits: Limits,
                      name_of: AttachmentNamer) -> Section:
    item, expect = e.item, e.item.expect
    badge = requirement_status(e.status.value)
    facts = [KeyValue("Rule", expect.describe())]
    if expect.kind == NO_ROWS:
        facts.append(KeyValue("Findings (rows returned)", e.row_count))
    else:
        facts.append(KeyValue("Rows judged", e.row_count))
        if expect.is_row_check:
            facts.append(KeyValue("Rows failing the rule", e.offending_count))
    if e.scope_count is not None:
        facts.append(KeyValue("Population (scope query rows)", e.scope_count))
    for key in ("span_days", "min", "max"):
        if key in e.observed and e.observed[key] is not None:
            facts.append(KeyValue(f"Observed {key.replace('_', ' ')}", show_value(e.observed[key])))
    facts += [KeyValue(f"${k}", v) for k, v in sorted(e.parameters.items())]
    facts.append(KeyValue("Pack source", f"{item.query.location.file.rsplit('/', 1)[-1]}, line {item.query.location.line}"))
    blocks: list[Block] = [StatusBadge(badge.status, badge.label, e.explanation), Paragraph(_one_line(item.shows)),
                           KeyValues(tuple(facts))]
    if expect.is_row_check and (e.offending_count or expect.kind == NO_ROWS):
        blocks.append(report_table(
            e.offending, caption=f"{item.id}: " + ("findings" if expect.kind == NO_ROWS else "rows failing the rule"),
            limit=limits.shown, total_rows=e.offending_count, source_attachment=name_of(r.id, item.id, "offending"),
            empty_text="None: no row fails the rule." if expect.kind != NO_ROWS else "None: the query returns no row."))
    if expect.kind != NO_ROWS and e.row_count:
        blocks.append(report_table(
            e.rows, caption=f"{item.id}: rows judged" + ("" if e.row_count <= limits.shown else " (the first, in the query's order)"),
            limit=limits.shown, total_rows=e.row_count, source_attachment=name_of(r.id, item.id, "rows")))
    if e.scope_rows is not None and e.scope_count:
        blocks.append(report_table(
            e.scope_rows, caption=f"{item.id}: the population judged (scope), first rows in its order",
            limit=limits.sample, total_rows=e.scope_count, source_attachment=name_of(r.id, item.id, "scope_rows")))
    blocks.append(CodeBlock(runnable_sql(item.query.sql, e.parameters),
                            caption="The query as run, with its parameters written in (runnable in mrm sql LEDGER)"))
    if item.scope is not None:
        blocks.append(CodeBlock(runnable_sql(item.scope.sql, e.parameters),
                                caption="The scope query (the population; an empty one gives the item's when-empty status)"))
    return Section(f"Evidence: {item.id}", tuple(blocks))


# --------------------------------------------------------------------------- outside the ledger


def outside_ledger_section(result: PackResult) -> Section | None:
    outside = [r for r in result.requirements if r.status == PackStatus.OUT_OF_SCOPE]
    if not outside:
        return None
    intro = Paragraph(
        f"{len(outside)} requirement(s) of the pack concern things an audit ledger of model decisions cannot show (board "
        "oversight, an inventory, documentation, training). They are stated here, so that nothing is silently left out, "
        "with what to ask the institution for instead. They are not met or unmet on this evidence.")
    subsections = []
    for r in outside:
        req = r.requirement
        subsections.append(Section(f"{req.citation}: {req.title}", (
            StatusBadge(Status.NOT_RUN, "OUTSIDE THE LEDGER", "judged on other evidence than this ledger"),
            Paragraph("What it requires (paraphrased by the pack, not quoted): " + _one_line(req.paraphrase)),
            Paragraph("What an examiner asks:\n" + _bullets(req.examiner_asks)),
            Paragraph("Ask the institution for:\n" + _bullets(req.ask_for)),
        )))
    return Section("Requirements outside the ledger: what else to ask for", (intro,), tuple(subsections))


# --------------------------------------------------------------------------- method


def pack_method_blocks(result: PackResult, limits: Limits, pack_attachment: str | None) -> list[Block]:
    pack, app = result.pack, result.applicability
    precedence = ", then ".join(s.label for s in PRECEDENCE)
    blocks: list[Block] = [
        Paragraph(
            "How statuses are computed. Each requirement of the pack names one or more evidence items: a SELECT over the "
            "ledger's read-only SQL views (the same views as mrm sql), with $from and $to bound to the period, and an "
            "expectation that decides it. Row checks judge every row the query returns and count each failing row as "
            "an offending row (a NULL never passes): no_rows (every row is a finding), all_rows_true, min_value and "
            "max_value. Sufficiency checks ask whether enough evidence exists: at_least_rows and span_at_least. A query "
            "with no population to judge (zero rows, or an empty scope query) gets the item's when-empty status, which "
            "is insufficient evidence unless the pack states why an empty population is fine. Offending rows always "
            f"make a gap. A requirement's status is the first of {precedence} among its items; a requirement the pack "
            "marks as outside the ledger is never judged from it."),
        Paragraph(
            "Counts are exact: every row of every query is counted and judged, in DuckDB when a result is large. Of each "
            f"result the first {limits.kept:,} rows (and the first {limits.kept:,} offending rows, and the first "
            f"{limits.kept:,} rows of each population) are kept and embedded as Parquet; tables show the first "
            f"{limits.shown:,} findings or judged rows and the first {limits.sample:,} rows of a population. Nested values "
            f"(lists, maps) are printed as JSON and cut at {MAX_CELL_CHARS} characters; the attachments hold them whole."),
        Paragraph(
            "Checks over every decision of a period are written as anti-joins on the base tables (the decisions that "
            "lack what is required), with the period's served decisions as the population: what a violation looks like "
            "is then the query's only output, and it costs a few seconds at ten million decisions."),
        Paragraph(
            f"Which pack applies when. The pack is in force from {pack.effective_from}"
            + (f" to {pack.effective_until - dt.timedelta(days=1)}" if pack.effective_until else "")
            + (f", then {pack.superseded_by}" if pack.superseded_by else "")
            + ". The period asked for is clipped to the days the pack was in force (UTC days, half-open periods); "
            f"here: {app.note}."
            + (" The applicability note of the pack: " + _one_line(pack.applicability_note) if pack.applicability_note else "")),
        KeyValues((
            KeyValue("Pack id", pack.id, ValueKind.IDENTIFIER),
            KeyValue("Title", pack.title),
            KeyValue("Instrument", pack.instrument),
            KeyValue("Authority", pack.authority),
            KeyValue("Pack version", pack.pack_version, ValueKind.IDENTIFIER),
            KeyValue("Pack file", pack.file.rsplit("/", 1)[-1], ValueKind.IDENTIFIER),
            KeyValue("Pack file SHA-256", pack.sha256, ValueKind.DIGEST),
            KeyValue("Embedded as", pack_attachment or "not embedded (the pack was not read from a file)"),
            KeyValue("Sources", "; ".join(pack.sources)),
            KeyValue("Period asked for", _period_text(result.requested.start, result.requested.end)),
            KeyValue("Period judged", _period_text(app.evaluated.start, app.evaluated.end) if app.evaluated else "none"),
            KeyValue("Readiness assessment (--as-if-in-force)", app.as_if_in_force),
            KeyValue("Evaluation time", f"{result.seconds:.2f} s"),
        ), caption="The regulation pack that judged the ledger"),
        Paragraph(
            "Paraphrases are the pack's own words, not the regulation's; citations name where to read the official text "
            "(the pack's sources). Check them against the published text before quoting them in a submission."),
    ]
    return blocks


# --------------------------------------------------------------------------- helpers


_PARAMETER = re.compile(r"\$(from|to)\b")


def runnable_sql(sql: str, parameters: dict[str, dt.datetime]) -> str:
    """The pack's SQL with $from and $to written in as TIMESTAMPTZ literals, so it pastes
    into `mrm sql LEDGER` as it ran."""
    def literal(m: re.Match[str]) -> str:
        value = parameters.get(m.group(1))
        if value is None:
            return m.group(0)
        return "TIMESTAMPTZ '" + value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00") + "'"
    return _PARAMETER.sub(literal, sql.strip())


def _period_text(start: dt.datetime, end: dt.datetime) -> str:
    return f"{_when(start)} to {_when(end)} (end excluded)"


def _when(t: dt.datetime) -> str:
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%d") if (t.hour, t.minute, t.second, t.microsecond) == (0, 0, 0, 0) else t.strftime("%Y-%m-%d %H:%M:%S UTC")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"\u2022 {_one_line(i)}" for i in items)
