"""A small but complete demo report built from plain data (no ledger needed), so the engine
can be exercised end to end: every block type, two charts, SQL, typed tables, and the
evidence attachments a real report carries (Parquet query results, a verification report,
a signed checkpoint note, proofs).

The data is generated from a fixed seed, so ``sample_report`` returns the same report
every time; with the same signer and ``created`` the PDF is byte-identical.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq

from ledger.note import Checkpoint, Signer, sign_checkpoint

from .charts import Series, Threshold, bar_chart, line_chart
from .model import (
    Attachment,
    AttachmentRole,
    CheckpointRef,
    CodeBlock,
    Column,
    Figure,
    KeyValue,
    KeyValues,
    Paragraph,
    Period,
    Report,
    ReportKind,
    ReportMeta,
    Section,
    Status,
    StatusBadge,
    Table,
    ValueKind,
    VerificationSummary,
)

__all__ = ["SAMPLE_CREATED", "SAMPLE_ORIGIN", "sample_report", "sample_checkpoint", "decisions_table_rows"]

UTC = dt.timezone.utc
SAMPLE_CREATED = dt.datetime(2026, 4, 2, 9, 30, tzinfo=UTC)
SAMPLE_ORIGIN = "bank.example/mrm-ledger/product-reco"
_PERIOD = Period(dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 4, 1, tzinfo=UTC))
_PRODUCTS = ("deposit_12m", "bond_fund", "balanced_fund", "equity_fund", "els_note")

PROMOTIONS_SQL = """\
-- Every champion/challenger decision in the period, oldest first.
SELECT seq, ts, slot, champion_version, challenger_version, decision,
       primary_metric, primary_delta_rel, p_value, reason
FROM model_promotion
WHERE ts >= TIMESTAMP '2026-01-01 00:00:00+00'
  AND ts <  TIMESTAMP '2026-04-01 00:00:00+00'
ORDER BY seq;"""

DECISIONS_SQL = """\
SELECT i.seq, i.ts, i.subject_id, i.model_version, i.input_digest, i.decision,
       g.verdict AS guardrail_verdict
FROM model_inference AS i
JOIN guardrail AS g USING (request_id)
WHERE i.ts >= TIMESTAMP '2026-01-01 00:00:00+00'
ORDER BY i.seq;"""


def sample_checkpoint(signer: Signer, size: int = 48_213) -> tuple[Checkpoint, bytes]:
    """A checkpoint of a made-up tree, signed by ``signer`` (the sample's ledger key)."""
    checkpoint = Checkpoint(SAMPLE_ORIGIN, size, hashlib.sha256(b"mrm-ledger sample tree %d" % size).digest())
    return checkpoint, sign_checkpoint(checkpoint, [signer])


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def _json(doc: object) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def decisions_table_rows(count: int, seed: int = 20260401) -> list[tuple]:
    """``count`` made-up inference decisions: seq, ts, subject, version, digest, decision, guardrail."""
    rng = random.Random(seed)
    start = _PERIOD.start
    rows = []
    for i in range(count):
        ts = start + dt.timedelta(seconds=37 * i + rng.randrange(30), microseconds=rng.randrange(1_000_000))
        version = "reco-2026.01.2" if i < count * 0.6 else "reco-2026.03.1"
        decision = rng.choice(_PRODUCTS)
        if decision == "els_note" and rng.random() < 0.5:
            verdict = StatusBadge(Status.WARN, "MODIFIED", "to balanced_fund")
        else:
            verdict = StatusBadge(Status.PASS, "PASS")
        digest = hashlib.sha256(f"input-{seed}-{i}".encode()).hexdigest()
        rows.append((1000 + 4 * i, ts, f"cust-{rng.randrange(10**7):07d}", version, digest, decision, verdict))
    return rows


def _promotions() -> list[tuple]:
    t = lambda month, day, hour: dt.datetime(2026, month, day, hour, tzinfo=UTC)  # noqa: E731
    return [
        (812, t(1, 6, 14), "reco-2025.12.1", "reco-2026.01.1", StatusBadge(Status.FAIL, "REJECT"), 0.0031, 0.210, "primary metric +0.31 % < 0.5 % minimum"),
        (1977, t(1, 20, 9), "reco-2025.12.1", "reco-2026.01.2", StatusBadge(Status.PASS, "PROMOTE"), 0.0124, 0.004, "auc +1.24 %, p = 0.004; secondary metrics within 2 %"),
        (30411, t(2, 17, 11), "reco-2026.01.2", "reco-2026.02.1", StatusBadge(Status.FAIL, "REJECT"), None, None, "fidelity floor failed on tasks: risk_grade, horizon"),
        (41100, t(3, 9, 16), "reco-2026.01.2", "reco-2026.03.1", StatusBadge(Status.WARN, "AWAITING SIGN-OFF"), 0.0087, 0.012, "cleared every gate; auto_promote = false, waiting for a human sign-off"),
        (41876, t(3, 11, 10), "reco-2026.01.2", "reco-2026.03.1", StatusBadge(Status.PASS, "PROMOTE"), 0.0087, 0.012, "signed off by mrm-officer-07 (ticket MRM-2291)"),
    ]


def _psi_series() -> tuple[list[dt.datetime], list[float], list[float]]:
    rng = random.Random(7)
    days = [_PERIOD.start + dt.timedelta(days=7 * w) for w in range(13)]
    income = [round(0.04 + 0.02 * w / 12 + rng.random() * 0.02, 4) for w in range(13)]
    assets = [round(0.05 + (0.2 if w >= 9 else 0.0) + rng.random() * 0.03, 4) for w in range(13)]
    return days, income, assets


def sample_report(signer: Signer, *, decision_rows: int = 24, report_id: str = "EVR-2026Q1-0001") -> Report:
    """A demo evidence report signed-checkpoint-consistent with ``signer``.

    ``decision_rows`` sets the length of the decisions table (the stress test uses
    thousands to get a few hundred pages)."""
    checkpoint, checkpoint_note = sample_checkpoint(signer)
    promotions = _promotions()
    decisions = decisions_table_rows(decision_rows)
    days, psi_income, psi_assets = _psi_series()
    table_counts = {
        "operation": 412, "model_inference": 11_803, "data_access": 11_803, "attribution": 11_803,
        "guardrail": 11_803, "dimension_change": 3, "model_promotion": 586,
    }

    verification_doc = {
        "ok": True, "entries": checkpoint.size, "tables": table_counts, "problems": [],
        "checked_at": "2026-04-02T09:12:44Z", "checkpoint": {"origin": checkpoint.origin, "size": checkpoint.size},
    }
    proofs_doc = {
        "consistency": {"size1": 31_007, "size2": checkpoint.size, "hashes": [hashlib.sha256(b"p%d" % i).hexdigest() for i in range(16)]},
        "inclusion": [{"seq": r[0], "index": r[0], "hashes": [hashlib.sha256(b"i%d-%d" % (r[0], k)).hexdigest() for k in range(16)]} for r in promotions],
    }
    promotions_table = pa.table({
        "seq": [r[0] for r in promotions],
        "ts": pa.array([r[1] for r in promotions], pa.timestamp("us", tz="UTC")),
        "champion_version": [r[2] for r in promotions],
        "challenger_version": [r[3] for r in promotions],
        "decision": [r[4].text.lower() for r in promotions],
        "primary_delta_rel": [r[5] for r in promotions],
        "p_value": [r[6] for r in promotions],
        "reason": [r[7] for r in promotions],
    })
    decisions_arrow = pa.table({
        "seq": [r[0] for r in decisions],
        "ts": pa.array([r[1] for r in decisions], pa.timestamp("us", tz="UTC")),
        "subject_id": [r[2] for r in decisions],
        "model_version": [r[3] for r in decisions],
        "input_digest": [r[4] for r in decisions],
        "decision": [r[5] for r in decisions],
        "guardrail_verdict": [r[6].text.lower() for r in decisions],
    })
    psi_table = pa.table({
        "week_start": pa.array(days, pa.timestamp("us", tz="UTC")),
        "psi_income": psi_income,
        "psi_assets": psi_assets,
    })

    attachments = (
        Attachment("promotions.parquet", "application/vnd.apache.parquet", _parquet(promotions_table),
                   "Query result: every model_promotion entry in the period", AttachmentRole.QUERY_RESULT),
        Attachment("decisions.parquet", "application/vnd.apache.parquet", _parquet(decisions_arrow),
                   "Query result: model_inference joined with guardrail verdicts", AttachmentRole.QUERY_RESULT),
        Attachment("psi.parquet", "application/vnd.apache.parquet", _parquet(psi_table),
                   "Query result: weekly population stability index per feature", AttachmentRole.QUERY_RESULT),
        Attachment("verification.json", "application/json", _json(verification_doc),
                   "Ledger verification report at the checkpoint", AttachmentRole.VERIFICATION),
        Attachment("checkpoint.note", "text/plain", checkpoint_note,
                   "Signed checkpoint (C2SP tlog-checkpoint) the report rests on", AttachmentRole.CHECKPOINT),
        Attachment("proofs.json", "application/json", _json(proofs_doc),
                   "Consistency proof from the previous report's checkpoint and inclusion proofs of the promotions", AttachmentRole.PROOFS),
    )

    promotion_chart = bar_chart(
        ["auc", "recall@5", "calibration", "latency_p95"],
        {"champion reco-2026.01.2": [0.781, 0.412, 0.962, 0.88], "challenger reco-2026.03.1": [0.788, 0.419, 0.958, 0.91]},
        title="Champion vs challenger (holdout, normalised)", y_label="score",
    )
    psi_chart = line_chart(
        [Series("income", days, psi_income), Series("assets", days, psi_assets)],
        title="Population stability index, weekly", y_label="PSI",
        thresholds=[Threshold(0.1, "watch"), Threshold(0.25, "alert")], step=True,
    )

    summary = Section("Summary", (
        Paragraph(
            "This report sets out what the product-recommendation system decided between 1 January and "
            "31 March 2026, as recorded in its tamper-evident audit ledger, and shows that the ledger "
            "verifies up to the signed checkpoint named on the cover.\n"
            "Every table is the result of a query over the ledger; the full results are attached to "
            "this PDF and listed, with their SHA-256 digests, in the signed manifest."
        ),
        StatusBadge(Status.PASS, "VERIFIED", "every MAC, chain link and file checks out up to the checkpoint"),
        StatusBadge(Status.WARN, detail="one feature (assets) crossed the PSI alert threshold in week 10"),
        StatusBadge(Status.FAIL, "REJECTED", "two challengers were rejected; one by the fidelity floor"),
        KeyValues((
            KeyValue("Model slot", "product_reco", ValueKind.IDENTIFIER),
            KeyValue("Champion at period end", "reco-2026.03.1", ValueKind.IDENTIFIER),
            KeyValue("Decisions in period", 11_803),
            KeyValue("Promotion decisions", len(promotions)),
            KeyValue("Unsuitable recommendations blocked or modified", 214),
            KeyValue("Human sign-off required", True),
            KeyValue("Checkpoint tree size", checkpoint.size),
            KeyValue("Checkpoint root", checkpoint.root),
        ), caption="At a glance"),
    ))

    integrity = Section("Ledger integrity", (), (
        Section("Verification", (
            Paragraph("The ledger was verified in full at the checkpoint: every entry's HMAC and chain link, "
                      "sequence gaps and duplicates, the set of files, and the typed columns a SQL reader sees."),
            Table(
                (Column("Table", ValueKind.IDENTIFIER, weight=2), Column("Entries", ValueKind.NUMBER), Column("Result", ValueKind.STATUS)),
                tuple((name, n, Status.PASS) for name, n in table_counts.items()),
                caption="Entries per audit table at the checkpoint",
                source_attachment="verification.json",
            ),
        )),
        Section("Checkpoint", (
            Paragraph("The signed checkpoint the evidence rests on, as attached (checkpoint.note). Its signature "
                      "verifies with the same public key as this document's manifest."),
            CodeBlock(checkpoint_note.decode(), language="text", caption="checkpoint.note"),
        )),
    ))

    promotions_section = Section("Model promotions", (
        Paragraph("Each champion/challenger decision is recorded as exactly one model_promotion entry with its "
                  "inputs and reason. Gates run in a fixed order: force-promote, bootstrap, fidelity floor, competition."),
        CodeBlock(PROMOTIONS_SQL, caption="Query"),
        Table(
            (
                Column("Seq", ValueKind.IDENTIFIER, weight=0.7),
                Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.2),
                Column("Champion", ValueKind.IDENTIFIER, weight=1.5),
                Column("Challenger", ValueKind.IDENTIFIER, weight=1.5),
                Column("Decision", ValueKind.STATUS, weight=1.5),
                Column("Δ primary", ValueKind.NUMBER, precision=4, weight=1.0),
                Column("p", ValueKind.NUMBER, precision=3, weight=0.7),
                Column("Reason", ValueKind.TEXT, weight=2.8),
            ),
            promotions,
            caption="Promotion decisions in the period",
            source_attachment="promotions.parquet",
            total_rows=len(promotions),
        ),
        Figure(promotion_chart, "Holdout metrics of the champion and the promoted challenger",
               alt="Grouped bars: auc, recall@5, calibration and latency for champion and challenger"),
    ))

    monitoring = Section("Monitoring", (
        Figure(psi_chart, "Weekly PSI for two input features, with the watch (0.1) and alert (0.25) thresholds",
               alt="Step chart of weekly PSI; assets crosses 0.25 from week 10"),
        Table(
            (Column("Week starting", ValueKind.TIMESTAMP), Column("PSI income", ValueKind.NUMBER, precision=4),
             Column("PSI assets", ValueKind.NUMBER, precision=4), Column("Status", ValueKind.STATUS)),
            tuple((d, a, b, Status.FAIL if max(a, b) >= 0.25 else Status.WARN if max(a, b) >= 0.1 else Status.PASS)
                  for d, a, b in zip(days, psi_income, psi_assets)),
            caption="Weekly population stability index",
            source_attachment="psi.parquet",
        ),
    ))

    decisions_section = Section("Decisions", (
        Paragraph("Individual recommendations with the guardrail's verdict. The input digest identifies the "
                  "exact feature vector the model saw without disclosing it."),
        CodeBlock(DECISIONS_SQL, caption="Query"),
        Table(
            (
                Column("Seq", ValueKind.IDENTIFIER, weight=0.7),
                Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.9),
                Column("Subject", ValueKind.IDENTIFIER, weight=1.4),
                Column("Model version", ValueKind.IDENTIFIER, weight=1.4),
                Column("Input digest (SHA-256)", ValueKind.DIGEST, weight=2.5),
                Column("Decision", ValueKind.IDENTIFIER, weight=1.3),
                Column("Guardrail", ValueKind.STATUS, weight=1.4),
            ),
            decisions,
            caption="Recommendations and guardrail verdicts",
            source_attachment="decisions.parquet",
            total_rows=len(decisions),
        ),
    ))

    meta = ReportMeta(
        kind=ReportKind.EVIDENCE,
        report_id=report_id,
        title="Evidence report: product recommendation, Q1 2026",
        subtitle="What the model decided, and proof the record is complete and unaltered",
        institution="Example Bank N.A.",
        system="product_reco (suitability-gated recommender)",
        period=_PERIOD,
        ledger_id="ldg-7f3a9c2e51b04d8e",
        checkpoint=CheckpointRef.from_checkpoint(checkpoint),
        verification=VerificationSummary(
            Status.PASS,
            f"Ledger verified: {checkpoint.size:,} entries, no problems",
            (
                KeyValue("Entries checked", checkpoint.size),
                KeyValue("Problems", 0),
                KeyValue("Checked at", dt.datetime(2026, 4, 2, 9, 12, 44, tzinfo=UTC)),
            ),
        ),
        generated_at=dt.datetime(2026, 4, 2, 9, 14, 3, tzinfo=UTC),
        prepared_by="Model Risk Management, model validation team",
    )
    return Report(meta, (summary, integrity, promotions_section, monitoring, decisions_section), attachments)
