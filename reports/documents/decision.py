"""The decision dossier: the record of one disputed decision, with its own proof.

For a customer's dispute (KFCPA Art. 17 and 28), an explanation request (EU AI Act Art. 86,
PIPA Art. 37-2) or an examiner's sample: who accessed the data and why, which model version
decided on which input, what it output and what was served, the main factors in plain
language (honest about what an attribution is), the suitability verdict, the promotion that
had made the model version live, and an inclusion proof of every entry shown.

It reads one decision through the fast reconstruct path (the side index when no whole-ledger
check is run) and proves a handful of entries in O(log n) each, so it is quick at any ledger
size; a whole-ledger check, when asked for, costs what verification costs.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pyarrow as pa

from forensics.errors import NotFound
from forensics.reconstruct import (
    AttributionRecord,
    DecisionRecord,
    GuardrailRecord,
    OutcomeRecord,
    PromotionRecord,
    Reconstructor,
)
from ledger.note import Signer

from ..charts import Threshold, bar_chart
from ..model import (
    Attachment,
    AttachmentRole,
    Block,
    Column,
    Figure,
    KeyValue,
    KeyValues,
    Paragraph,
    Period,
    Report,
    ReportKind,
    Section,
    Status,
    StatusBadge,
    Table,
    ValueKind,
)
from .badges import passed, promotion_status, verdict_status
from .basis import EvidenceBasis, ProofCheck, TrustPlan, establish_basis, prove_shown_entries
from .parts import (
    DocumentInfo,
    ShownEntry,
    document_meta,
    evidence_attachments,
    failed_verification_section,
    how_to_verify_section,
    integrity_section,
    json_bytes,
    method_section,
    parquet_attachment,
    report_id_for,
)
from .written import WrittenReport, write_report
from ..values import format_timestamp, time_zone

__all__ = ["DecisionQuery", "build_decision_report", "criterion_meaning", "factors_account", "method_meaning",
           "write_decision_report"]

RECORD_ATTACHMENT = "decision-record.json"
ENTRIES_ATTACHMENT = "decision-entries.parquet"
TOP_FACTORS = 5
CRITERIA_FILE = Path(__file__).with_name("suitability_criteria.toml")


@dataclass(frozen=True)
class DecisionQuery:
    """Which decision: a request id, or a subject's latest served decision (at or before ``at``)."""

    request_id: str | None = None
    subject_id: str | None = None
    at: str | dt.datetime | None = None
    inference_seq: int | None = None  # one of several inferences sharing a request id


def build_decision_report(ledger_path: str | os.PathLike[str], query: DecisionQuery, plan: TrustPlan,
                          info: DocumentInfo = DocumentInfo()) -> Report:
    """The decision dossier as a :class:`~reports.model.Report` (render it with
    :func:`reports.render.render_report`, or use :func:`write_decision_report`)."""
    basis = establish_basis(ledger_path, plan, checked_at=info.assembled_at())
    with Reconstructor(basis.source) as reconstructor:
        try:
            record = reconstructor.reconstruct(request_id=query.request_id, subject_id=query.subject_id, at=query.at,
                                               inference_seq=query.inference_seq)
        except NotFound as e:
            if not basis.newer_entries:
                raise
            raise NotFound(f"{e}; the ledger holds {basis.newer_entries:,} entries newer than checkpoint "
                           f"{basis.checkpoint.size:,}, which this document cannot prove: if the decision is among them, "
                           "run `mrm checkpoint LEDGER` first") from None
    shown = _shown_entries(record)
    proofs = prove_shown_entries(basis, [e.seq for e in shown])
    return _dossier(basis, record, shown, proofs, info)


def write_decision_report(ledger_path: str | os.PathLike[str], query: DecisionQuery, plan: TrustPlan, signer: Signer | None,
                          out_path: str | os.PathLike[str] | None = None, *, info: DocumentInfo = DocumentInfo(),
                          created: dt.datetime | None = None) -> WrittenReport:
    """Build, render, sign and write the dossier (default file name: ``<report id>.pdf``)."""
    report = build_decision_report(ledger_path, query, plan, info)
    return write_report(report, signer, out_path, created=created, checkpoint_keys=plan.public_keys)


# --------------------------------------------------------------------------- assembly


def _shown_entries(r: DecisionRecord) -> list[ShownEntry]:
    shown = [ShownEntry(a.entry.seq, f"Data access by {a.operator}") for a in r.data_access]
    shown.append(ShownEntry(r.inference.entry.seq, "Model inference (the decision)"))
    shown += [ShownEntry(a.entry.seq, f"Attribution ({a.method}, {a.model_version})") for a in r.attributions]
    shown += [ShownEntry(g.entry.seq, f"Guardrail {g.gate}: {g.verdict}") for g in r.guardrails]
    if r.promotion is not None:
        shown.append(ShownEntry(r.promotion.entry.seq, f"Promotion: {r.promotion.decision} of {r.promotion.challenger_version}"))
    shown += [ShownEntry(o.entry.seq, "Outcome recorded later") for o in r.outcomes]
    return sorted(shown, key=lambda e: e.seq)


def _dossier(basis: EvidenceBasis, r: DecisionRecord, shown: list[ShownEntry], proofs: ProofCheck, info: DocumentInfo) -> Report:
    i = r.inference
    zone = time_zone(info.time_zone) if info.time_zone else None
    times = [i.entry.ts] + [a.entry.ts for a in r.data_access] + [a.entry.ts for a in r.attributions] + [g.entry.ts for g in r.guardrails]
    times += [o.entry.ts for o in r.outcomes]
    sections = [s for s in (failed_verification_section(basis, proofs),) if s is not None]
    sections += [
        _summary_section(r, zone),
        _decision_section(r),
        _access_section(r, zone),
        _factors_section(r),
        _suitability_section(r, zone),
        _outcome_section(r, zone),
        _promotion_section(r, basis, zone),
        integrity_section(basis, proofs, shown, intro=(
            "Every entry this dossier shows is listed below with the result of its inclusion proof. A reader can check "
            "them with the public key alone, without access to the ledger (see How to verify this document).")),
        _regulatory_section(),
        method_section(basis, _method_blocks(r), zone=zone),
        how_to_verify_section(basis, proofs),
    ]
    meta = document_meta(
        ReportKind.DECISION, basis, proofs, info,
        report_id=report_id_for("DEC", basis, i.entry.seq),
        title=f"Decision dossier: request {r.request_id}",
        subtitle="How one recommendation was made and why, with proof from the audit ledger",
        system=f"{i.model_slot} (model slot)",
        period=Period(min(times), max(times)),
    )
    attachments = (
        *evidence_attachments(basis, proofs, proofs_description=(
            f"Inclusion proofs of the {len(shown)} entries shown (mrm-ledger-proof/1): check with mrm verify-proof")),
        Attachment(RECORD_ATTACHMENT, "application/json", json_bytes(_record_document(r, basis)),
                   "The reconstructed decision record (what the sections show), as JSON", AttachmentRole.QUERY_RESULT),
        parquet_attachment(ENTRIES_ATTACHMENT, _entries_table(shown, proofs),
                           "Query result: the entries shown, with table, seq, time, actor, key id, MAC and leaf hash"),
    )
    return Report(meta, tuple(sections), attachments)


# --------------------------------------------------------------------------- sections


def _summary_section(r: DecisionRecord, zone: dt.tzinfo | None) -> Section:
    i = r.inference
    when = format_timestamp(i.entry.ts, zone=zone)
    lines = [f"On {when} the {i.model_slot} model, version {i.model_version}, recommended {i.decision} "
             f"for subject {r.subject_id} (request {r.request_id})."]
    if i.route == "shadow":
        lines.append("This was a shadow inference: its output was not served to the customer.")
    for g in r.guardrails:
        lines.append(_guardrail_sentence(g))
    if not r.guardrails:
        lines.append("No suitability verdict is recorded for this request, so what was served is not in the ledger.")
    elif r.served_output is not None:
        lines.append(f"What was served: {r.served_output}.")
    else:
        lines.append("Nothing was served: the recommendation was blocked.")
    p = r.promotion
    if p is not None:
        who = f" by {p.operator}" if p.operator else " automatically by the promotion gate"
        lines.append(f"Version {p.challenger_version} was in production at that moment because of the {p.decision} "
                     f"decision recorded at sequence number {p.entry.seq} on {format_timestamp(p.entry.ts, zone=zone)}{who}, "
                     f"for the reason: \u201c{p.reason}\u201d.")
    else:
        lines.append(f"Version {i.model_version} was not the production version of the slot at that moment "
                     f"(registry state: {r.version_state or 'unregistered'}; production: {r.champion_version or 'none'}).")
    lines.append(_outcome_sentence(r, zone))
    blocks: list[Block] = [Paragraph(" ".join(lines))]
    for g in r.guardrails:
        blocks.append(StatusBadge(verdict_status(g.verdict).status, verdict_status(g.verdict).text,
                                  f"suitability gate {g.gate}: {g.original_output or '-'} \u2192 {g.final_output or 'nothing served'}"))
    if p is not None:
        badge = promotion_status(p.decision)
        blocks.append(StatusBadge(badge.status, badge.text, f"{p.challenger_version} made live at seq {p.entry.seq}"
                                  + (f" by {p.operator}" if p.operator else "")))
    blocks.append(KeyValues((
        KeyValue("Request", r.request_id, ValueKind.IDENTIFIER),
        KeyValue("Subject (pseudonymous id)", r.subject_id, ValueKind.IDENTIFIER),
        KeyValue("Decided at", i.entry.ts),
        KeyValue("Model slot / version", f"{i.model_slot} / {i.model_version}", ValueKind.IDENTIFIER),
        KeyValue("Model output", i.decision, ValueKind.IDENTIFIER),
        KeyValue("Served", r.served_output if r.served_output is not None else "nothing (blocked or not recorded)"),
        KeyValue("Suitability verdict", verdict_status(r.guardrails[-1].verdict) if r.guardrails else StatusBadge(Status.NOT_RUN, "NONE RECORDED")),
        KeyValue("Made live by", f"{p.decision} at seq {p.entry.seq}" + (f", {p.operator}" if p.operator else "") if p else "not production at the decision"),
        KeyValue("Outcome recorded later", _outcome_label(r.outcomes[-1]) if r.outcomes else "none recorded"),
    ), caption="At a glance"))
    return Section("Summary", tuple(blocks))


def _decision_section(r: DecisionRecord) -> Section:
    i = r.inference
    items = (
        KeyValue("Request id", r.request_id, ValueKind.IDENTIFIER),
        KeyValue("Subject (pseudonymous id)", r.subject_id, ValueKind.IDENTIFIER),
        KeyValue("Time", i.entry.ts),
        KeyValue("Model slot", i.model_slot, ValueKind.IDENTIFIER),
        KeyValue("Model version", i.model_version, ValueKind.IDENTIFIER),
        KeyValue("Route", i.route, ValueKind.IDENTIFIER),
        KeyValue("Input digest (SHA-256 of the features the model saw)", i.input_digest, ValueKind.DIGEST),
        KeyValue("Model output", i.decision, ValueKind.IDENTIFIER),
        KeyValue("Served output", r.served_output, ValueKind.IDENTIFIER),
        KeyValue("Latency (ms)", i.latency_ms),
        KeyValue("Entry", f"seq {i.entry.seq}, written by {i.entry.actor}, HMAC key {i.entry.key_id}"),
    )
    blocks: list[Block] = [
        Paragraph("The model_inference entry of the request, as the ledger holds it. The input digest identifies the "
                  "exact feature vector the model was given without disclosing it: the institution can show the "
                  "inputs and anyone can check they hash to this digest."),
        KeyValues(items, caption="The decision"),
    ]
    if i.scores:
        blocks.append(Table(
            (Column("Output label", ValueKind.IDENTIFIER, weight=2), Column("Score", ValueKind.NUMBER, weight=1.5),
             Column("Chosen", ValueKind.BOOLEAN, weight=0.8)),
            tuple((label, score, label == i.decision) for label, score in i.scores),
            caption="The model's scores, highest first", source_attachment=RECORD_ATTACHMENT, total_rows=len(i.scores)))
    if r.notes:
        blocks.append(Paragraph("Notes from the reconstruction:\n" + "\n".join(f"\u2022 {n}" for n in r.notes)))
    if r.other_decisions:
        blocks.append(Paragraph(f"The subject has {len(r.other_decisions)} other served decision(s) in the ledger; "
                                f"they are listed in {RECORD_ATTACHMENT}."))
    return Section("The decision as recorded", tuple(blocks))


def _access_section(r: DecisionRecord, zone: dt.tzinfo | None) -> Section:
    if not r.data_access:
        return Section("Who accessed the data, and why", (
            StatusBadge(Status.WARN, "NONE RECORDED", "no data_access entry names this request"),))
    rows = tuple((a.entry.ts, a.operator, a.dataset, ", ".join(a.columns), a.purpose, a.access_type, a.row_count, a.entry.seq)
                 for a in r.data_access)
    return Section("Who accessed the data, and why", (
        Paragraph("Every access to the subject's personal data recorded for this request (PIPA, Credit Information Act): "
                  "who, which dataset and columns, for what purpose."),
        Table(
            (Column(_time_heading(zone), ValueKind.TIMESTAMP, weight=1.6), Column("Operator", ValueKind.IDENTIFIER, weight=1.2),
             Column("Dataset", ValueKind.IDENTIFIER, weight=1.4), Column("Columns", ValueKind.TEXT, weight=2.0),
             Column("Purpose", ValueKind.TEXT, weight=1.6), Column("Access", ValueKind.IDENTIFIER, weight=0.8),
             Column("Rows", ValueKind.NUMBER, weight=0.6), Column("Seq", ValueKind.IDENTIFIER, weight=0.7)),
            rows, caption="Data access for this request", source_attachment=RECORD_ATTACHMENT, total_rows=len(rows)),
    ))


def _deciding_attribution(r: DecisionRecord) -> AttributionRecord | None:
    for a in r.attributions:
        if a.model_version == r.inference.model_version:
            return a
    return r.attributions[0] if r.attributions else None


# How strongly a factor weighed, compared with the largest recorded one: words, not numbers,
# for the customer and the dispute handler (the table keeps the exact contributions).
STRONGLY, MODERATELY, SLIGHTLY = "strongly", "moderately", "slightly"


def factor_weight(contribution: float, largest: float) -> str:
    """``strongly`` (at least half the largest recorded contribution), ``moderately`` (a
    fifth to a half) or ``slightly`` (less)."""
    share = abs(contribution) / largest if largest else 0.0
    return STRONGLY if share >= 0.5 else MODERATELY if share >= 0.2 else SLIGHTLY


def factor_sentence(f: Any, output: str, largest: float) -> str:
    """One factor in words: what it was and which way, and how strongly, it moved the recommendation."""
    value = "" if f.value is None else f" (recorded value {_plain_number(f.value)})"
    c = f.contribution or 0.0
    if c == 0:
        return f"{_feature_words(f.feature)}{value} did not move the recommendation of {output} either way."
    direction = "for" if c > 0 else "against"
    return f"{_feature_words(f.feature)}{value} weighed {factor_weight(c, largest)} {direction} recommending {output}."


def factors_account(attribution: AttributionRecord, output: str, top: int = TOP_FACTORS) -> list[str]:
    """The main factors of a recommendation in plain language, from its recorded attribution:
    one sentence per factor, largest first, saying which way it pushed and how strongly
    compared with the others, and the balance of them all. No raw contributions: those are
    in the dossier's table."""
    factors = [f for f in attribution.top_features if f.contribution is not None][:top]
    if not factors:
        return ["The attribution entry records no contributions."]
    factors = sorted(factors, key=lambda f: -abs(f.contribution or 0.0))
    largest = abs(factors[0].contribution or 0.0)
    paragraphs = [f"What the model weighed in recommending {output}, the most important first:\n"
                  + "\n".join(f"\u2022 {factor_sentence(f, output, largest)}" for f in factors)]
    up = sum(f.contribution for f in factors if (f.contribution or 0) > 0)
    down = -sum(f.contribution for f in factors if (f.contribution or 0) < 0)
    if not down:
        balance = f"Every recorded factor weighed for recommending {output}."
    elif not up:
        balance = f"Every recorded factor weighed against recommending {output}; the other inputs, not shown, outweighed them."
    elif abs(up - down) < 0.1 * (up + down):
        balance = "Taken together, the recorded factors for and against it roughly balance."
    else:
        more = "for" if up > down else "against"
        balance = f"Taken together, the recorded factors weighed more {more} recommending {output} than {'against' if more == 'for' else 'for'} it."
    paragraphs.append(balance + " \u201cStrongly\u201d means at least half the weight of the largest factor, \u201cmoderately\u201d "
                      "a fifth to a half, \u201cslightly\u201d less; the exact contributions are in the table below.")
    return paragraphs


def method_meaning(method: str, recorded: int) -> str:
    """What an attribution of this method does and does not say, without overstating it."""
    m = method.lower()
    if "linear" in m or "coef" in m:
        text = (f"The attribution method recorded is {method}. For a linear model it is exact: each contribution is the "
                "model's coefficient for that input multiplied by the input's (transformed) value, and the contributions "
                "plus the model's intercept add up to the score (for a logistic model, the log-odds) of the recommended "
                "product. A contribution measures the input against a value of zero, not against an average customer. ")
    elif "shap" in m:
        text = (f"The attribution method recorded is {method}: each input's share, in SHAP's sense, of the difference "
                "between this prediction and the model's average prediction over a background sample. The shares add "
                "up to that difference; they depend on the background sample chosen. ")
    else:
        text = (f"The attribution method recorded is {method}; the contributions are as that method computed them, and "
                "their exact meaning depends on it. ")
    return text + (
        "Attributions describe how the model arrived at its score; they are not causes in the world, and they do not "
        "say what the model would have recommended had an input been different, except by the arithmetic of a linear "
        f"model. The ledger keeps the {recorded} largest contributions only: the other inputs also contributed, and "
        "their contributions are not shown here and are not zero.")


def _factors_section(r: DecisionRecord) -> Section:
    a = _deciding_attribution(r)
    if a is None:
        return Section("Main factors behind the recommendation", (
            StatusBadge(Status.WARN, "NOT RECORDED", "no attribution entry for this request"),
            Paragraph("The ledger holds no attribution for this request, so the main factors cannot be stated from the record."),
        ))
    i = r.inference
    blocks: list[Block] = [Paragraph(p) for p in factors_account(a, i.decision)]
    if a.model_version != i.model_version:
        blocks.insert(0, StatusBadge(Status.WARN, "OTHER VERSION", f"this attribution is for model version {a.model_version}, "
                                     f"not the deciding version {i.model_version}"))
    if r.served_output is not None and r.served_output != i.decision or (r.guardrails and r.served_output is None):
        blocks.append(Paragraph(f"These factors explain the model's proposal ({i.decision}). The suitability guardrail acted "
                                "after the model; its reasons are in the next section, and the attribution does not explain them."))
    features = [f for f in a.top_features]
    largest = max((abs(f.contribution) for f in features if f.contribution is not None), default=0.0)
    blocks.append(Table(
        (Column("Input feature", ValueKind.IDENTIFIER, weight=2.0), Column("Value", ValueKind.NUMBER, weight=1.3),
         Column("Contribution", ValueKind.NUMBER, weight=1.3), Column("Effect on the recommendation", ValueKind.TEXT, weight=1.6)),
        tuple((f.feature, f.value, f.contribution, _effect(f.contribution, largest)) for f in features),
        caption=f"Recorded attribution ({a.method}, model version {a.model_version}, seq {a.entry.seq})",
        source_attachment=RECORD_ATTACHMENT, total_rows=len(features)))
    plotted = [f for f in features if f.contribution is not None]
    if plotted:
        svg = bar_chart([f.feature for f in plotted], [float(f.contribution) for f in plotted],  # type: ignore[arg-type]
                        title=f"Contributions to the score for {i.decision}", y_label="contribution",
                        thresholds=[Threshold(0.0, "no effect")], size=(6.5, 2.4))
        blocks.append(Figure(svg, f"Recorded contributions to the score of {i.decision}: above the line raised it, below lowered it",
                             alt="Bar chart of each recorded feature contribution"))
    blocks.append(Paragraph(method_meaning(a.method, len(a.top_features))))
    return Section("Main factors behind the recommendation", tuple(blocks))


def _guardrail_sentence(g: GuardrailRecord) -> str:
    if g.verdict == "pass":
        return f"The suitability check {g.gate} passed the recommendation ({g.original_output or '-'})."
    if g.verdict == "modify":
        why = f" because: {g.reason}" if g.reason else ""
        return f"The suitability check {g.gate} changed the recommendation from {g.original_output or '-'} to {g.final_output or '-'}{why}."
    if g.verdict == "block":
        why = f" because: {g.reason}" if g.reason else ""
        return f"The suitability check {g.gate} blocked the recommendation of {g.original_output or '-'}{why}."
    return f"The suitability check {g.gate} returned the verdict {g.verdict!r}."


def _suitability_section(r: DecisionRecord, zone: dt.tzinfo | None) -> Section:
    if not r.guardrails:
        return Section("Suitability check (KFCPA Art. 17)", (
            StatusBadge(Status.WARN, "NONE RECORDED", "no guardrail entry for this request"),
            Paragraph("The ledger holds no suitability verdict for this request: whether an unsuitable recommendation "
                      "would have been stopped cannot be shown from the record."),
        ))
    blocks: list[Block] = [Paragraph(
        "KFCPA Art. 17 forbids recommending a product unsuitable for the customer's profile. The guardrail compares the "
        "model's proposal with the customer's confirmed profile and passes, modifies or blocks it; each verdict, its "
        "criteria and its reason are recorded. Pass: the proposal was suitable and was offered. Modified: it was not, "
        "and a suitable product was offered instead. Blocked: nothing suitable could be offered, so nothing was. The "
        "criteria table says what each recorded value means.")]
    for g in r.guardrails:
        badge = verdict_status(g.verdict)
        blocks.append(StatusBadge(badge.status, badge.text, _guardrail_sentence(g)))
        blocks.append(KeyValues((
            KeyValue("Gate", g.gate, ValueKind.IDENTIFIER),
            KeyValue("Verdict", badge),
            KeyValue("Proposed by the model", g.original_output, ValueKind.IDENTIFIER),
            KeyValue("Served", g.final_output if g.final_output is not None else "nothing (blocked)"),
            KeyValue("Reason", g.reason),
            KeyValue("Entry", f"seq {g.entry.seq} at {format_timestamp(g.entry.ts, zone=zone)}"),
        ), caption=f"Guardrail {g.gate}"))
        if g.criteria:
            blocks.append(Table(
                (Column("Criterion", ValueKind.IDENTIFIER, weight=1.6), Column("Value", ValueKind.NUMBER, weight=0.8),
                 Column("What it means", ValueKind.TEXT, weight=4.6)),
                tuple((name, value, criterion_meaning(name)) for name, value in g.criteria),
                caption=f"Criteria recorded by {g.gate}, and what each means", source_attachment=RECORD_ATTACHMENT,
                total_rows=len(g.criteria)))
    return Section("Suitability check (KFCPA Art. 17)", tuple(blocks))


def _outcome_label(o: OutcomeRecord) -> str:
    parts = [str(o.label)] if o.label is not None else []
    parts += [f"{k} {v:g}" for k, v in o.values]
    return ", ".join(parts) or "recorded without a label"


def _outcome_sentence(r: DecisionRecord, zone: dt.tzinfo | None) -> str:
    if not r.outcomes:
        return "No later outcome of this request is recorded in the ledger up to the checkpoint."
    o = r.outcomes[-1]
    observed = f", observed on {format_timestamp(o.observed_at, zone=zone)}" if o.observed_at else ""
    source = f" from {o.source}" if o.source else ""
    more = f" ({len(r.outcomes)} outcomes are recorded; this is the latest)" if len(r.outcomes) > 1 else ""
    return (f"Its outcome was recorded later, on {format_timestamp(o.entry.ts, zone=zone)}{source}: "
            f"{_outcome_label(o)}{observed}{more}.")


def _outcome_section(r: DecisionRecord, zone: dt.tzinfo | None) -> Section:
    title = "Outcome recorded later"
    intro = Paragraph(
        "What actually happened after the recommendation (for example, the product the customer took up), recorded "
        "when it became known. An outcome is written after the decision and does not change it; it is what the "
        "model's performance is later measured against.")
    if not r.outcomes:
        return Section(title, (intro, Paragraph(_outcome_sentence(r, zone))))
    rows = tuple((o.entry.ts, o.observed_at, _outcome_label(o), o.source, o.entry.seq) for o in r.outcomes)
    return Section(title, (
        intro,
        Paragraph(_outcome_sentence(r, zone)),
        Table((Column(_time_heading(zone).replace("Time", "Recorded"), ValueKind.TIMESTAMP, weight=1.8),
               Column("Observed", ValueKind.TIMESTAMP, weight=1.8), Column("Outcome", ValueKind.TEXT, weight=1.6),
               Column("Source", ValueKind.IDENTIFIER, weight=1.2), Column("Seq", ValueKind.IDENTIFIER, weight=0.7)),
              rows, caption="Outcomes recorded for this request", source_attachment=RECORD_ATTACHMENT, total_rows=len(rows)),
    ))


def _promotion_section(r: DecisionRecord, basis: EvidenceBasis, zone: dt.tzinfo | None) -> Section:
    p = r.promotion
    title = "Model version and the decision that made it live"
    if p is None:
        return Section(title, (
            StatusBadge(Status.WARN, "NOT PRODUCTION", f"{r.inference.model_version} was not the production version at the decision"),
            KeyValues((
                KeyValue("Model version", r.inference.model_version, ValueKind.IDENTIFIER),
                KeyValue("Its registry state at the decision", r.version_state or "unregistered"),
                KeyValue("Production version of the slot then", r.champion_version, ValueKind.IDENTIFIER),
                KeyValue("Route", r.inference.route, ValueKind.IDENTIFIER),
            ), caption="Registry at the decision"),
        ))
    badge = promotion_status(p.decision)
    blocks: list[Block] = [
        Paragraph("The registry is derived from the ledger's model_promotion entries, in sequence order. The entry below "
                  "is the one that put the deciding model version into production, and it was still in force at the decision."),
        StatusBadge(badge.status, badge.text, _promotion_sentence(p)),
        KeyValues((
            KeyValue("Decision", badge),
            KeyValue("Version made live", p.challenger_version, ValueKind.IDENTIFIER),
            KeyValue("Version it replaced", p.champion_version or "none (the first production version of the slot)"),
            KeyValue("Decided at", p.entry.ts),
            KeyValue("Trigger", "manual: a person decided" if p.trigger == "manual" else f"{p.trigger}: the promotion gate decided"),
            KeyValue("Approver / operator", p.operator if p.operator else "none (automatic decision)"),
            KeyValue("Recorded by (actor)", p.entry.actor, ValueKind.IDENTIFIER),
            KeyValue("Reason", p.reason),
            KeyValue("Live from", p.live_from),
            KeyValue("Live until", p.live_until if p.live_until else "still production at the checkpoint"),
            KeyValue("Entry", f"seq {p.entry.seq}, HMAC key {p.entry.key_id}"),
        ), caption=f"The {p.decision} decision of {p.challenger_version}"),
    ]
    if p.decision == "force_promote":
        blocks.append(Paragraph("A force-promote is an override: the operator put the version into production without the "
                                "gate's checks. The validation history report lists every override with what the gate had said."))
    if p.comparison:
        blocks.append(_comparison_table(p.comparison, f"Champion/challenger comparison recorded with the {p.decision}"))
    if p.significance:
        blocks.append(_significance_table(p.significance, f"Significance tests recorded with the {p.decision}"))
    if not basis.method.full:
        blocks.append(Paragraph("This document did not check the whole ledger, so that no later promotion or rollback "
                                "intervened before the decision rests on the ledger as read, not on a proof."))
    return Section(title, tuple(blocks))


def _promotion_sentence(p: PromotionRecord) -> str:
    who = f" by {p.operator}" if p.operator else ""
    replaced = f", replacing {p.champion_version}" if p.champion_version else ""
    return f"{p.decision} of {p.challenger_version}{who} at seq {p.entry.seq}{replaced}"


def _comparison_table(rows: Sequence[Any], caption: str) -> Table:
    return Table(
        (Column("Metric", ValueKind.IDENTIFIER, weight=2.2), Column("Champion", ValueKind.NUMBER, weight=1.2),
         Column("Challenger", ValueKind.NUMBER, weight=1.2), Column("Relative change", ValueKind.NUMBER, weight=1.2),
         Column("Threshold", ValueKind.NUMBER, weight=1.0), Column("Result", ValueKind.STATUS, weight=1.1)),
        tuple((c.get("metric"), c.get("champion"), c.get("challenger"), c.get("delta_rel"), c.get("threshold"),
               passed(c.get("passed"))) for c in rows),
        caption=caption, total_rows=len(rows))


def _significance_table(rows: Sequence[Any], caption: str) -> Table:
    return Table(
        (Column("Metric", ValueKind.IDENTIFIER, weight=2.0), Column("Test", ValueKind.IDENTIFIER, weight=1.1),
         Column("Statistic", ValueKind.NUMBER, weight=1.2), Column("p-value", ValueKind.NUMBER, weight=1.2),
         Column("p adjusted (Holm)", ValueKind.NUMBER, weight=1.2), Column("Alpha", ValueKind.NUMBER, weight=0.8),
         Column("Significant", ValueKind.STATUS, weight=1.1)),
        tuple((s.get("metric"), s.get("test"), s.get("statistic"), s.get("p_value"), s.get("p_adjusted"), s.get("alpha"),
               passed(s.get("significant"), "YES", "NO")) for s in rows),
        caption=caption, total_rows=len(rows))


_REGULATIONS = (
    ("KFCPA Art. 17 (suitability)",
     "Know the customer's profile before recommending; never recommend an unsuitable product.",
     "Suitability check; Who accessed the data"),
    ("KFCPA Art. 28 (record keeping, access for disputes)",
     "Keep the records and give the consumer access to them for a dispute.",
     "The whole dossier; Integrity of this evidence"),
    ("EU AI Act Art. 86 (right to explanation)",
     "A clear explanation of the system's role and the main elements of the decision.",
     "Summary; Main factors behind the recommendation; Model version"),
    ("EU AI Act Art. 12 (record keeping)",
     "Automatic logging of events over the system's lifetime.",
     "Integrity of this evidence"),
    ("PIPA Art. 37-2 (automated decisions)",
     "Right to an explanation of a fully automated decision, to refuse it, or to ask for human review.",
     "Main factors behind the recommendation; Model version (who approved it)"),
    ("Credit Information Act Art. 36-2",
     "The main criteria and base data of an automated evaluation, and the right to ask for a re-evaluation.",
     "The decision as recorded (input digest); Main factors"),
)


def _regulatory_section() -> Section:
    return Section("Regulatory basis", (
        Paragraph("Where this dossier answers what each provision asks. The provisions are paraphrased; the official "
                  "texts govern. How the subject exercises a right to human review or re-evaluation is set by the "
                  "institution's procedures, not by this document."),
        Table((Column("Provision", ValueKind.TEXT, weight=2.0), Column("What it asks (paraphrased)", ValueKind.TEXT, weight=3.2),
               Column("Answered in", ValueKind.TEXT, weight=2.4)), _REGULATIONS, caption="Regulatory cross-reference"),
    ))


def _method_blocks(r: DecisionRecord) -> list[Block]:
    return [
        Paragraph(
            "The decision was reconstructed from the ledger by request id: the model_inference entry, the data_access, "
            "attribution and guardrail entries naming the same request, and, from the registry derived from every "
            f"model_promotion entry, the promotion that made the deciding version production at the decision's time. "
            f"Lookup: {r.lookup}. Rows are always read from the listed files and compared with the key itself; the side "
            "index can only narrow which files are read."),
    ]


# --------------------------------------------------------------------------- evidence files


def _record_document(r: DecisionRecord, basis: EvidenceBasis) -> dict[str, Any]:
    doc = r.to_dict()
    attestation = dict(doc.get("attestation") or {})
    attestation.pop("path", None)
    attestation["ledger_directory"] = basis.path.name
    doc["attestation"] = attestation
    doc["format"] = "mrm-decision-record/1"
    return doc


_ENTRIES_SCHEMA = pa.schema([
    ("what", pa.string()), ("table_name", pa.string()), ("seq", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")),
    ("actor", pa.string()), ("key_id", pa.string()), ("leaf_hash", pa.string()), ("proven", pa.bool_()),
])


def _entries_table(shown: Sequence[ShownEntry], proofs: ProofCheck) -> pa.Table:
    rows = []
    for e in shown:
        proof = proofs.entry_for(e.seq)
        entry = proof["entry"] if proof else {}
        result = proofs.result_for(e.seq) or {}
        rows.append({
            "what": e.what,
            "table_name": proof["table"] if proof else None,
            "seq": e.seq,
            "ts": dt.datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")) if entry.get("ts") else None,
            "actor": entry.get("actor"),
            "key_id": entry.get("key_id"),
            "leaf_hash": base64.b64decode(proof["leaf_hash"]).hex() if proof else None,
            "proven": bool(result.get("ok")),
        })
    return pa.Table.from_pylist(rows, schema=_ENTRIES_SCHEMA)


# --------------------------------------------------------------------------- text helpers


def _plain_number(x: float) -> str:
    """A recorded input value for a sentence: grouped digits for large values, three
    significant digits otherwise."""
    if abs(x) >= 10_000:
        return f"{x:,.0f}".replace("-", "\u2212")
    return f"{x:.3g}".replace("-", "\u2212")


def _feature_words(feature: str) -> str:
    """``risk_tolerance`` -> ``Risk tolerance``: the identifier stays in the table."""
    words = feature.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else feature


def _effect(c: float | None, largest: float) -> str:
    if c is None:
        return "not recorded"
    if c == 0:
        return "none"
    return f"{'for' if c > 0 else 'against'} it, {factor_weight(c, largest)}"


def _time_heading(zone: dt.tzinfo | None) -> str:
    return "Time (UTC, local)" if zone is not None else "Time (UTC)"


@functools.lru_cache(maxsize=1)
def _criteria_meanings() -> Mapping[str, str]:
    with CRITERIA_FILE.open("rb") as f:
        return dict(tomllib.load(f)["criteria"])


def criterion_meaning(name: str) -> str:
    """What a suitability criterion means, from suitability_criteria.toml."""
    return _criteria_meanings().get(name, "not described: see the institution's suitability procedure")
