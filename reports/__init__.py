"""Regulator-ready documents from ledger evidence: a typed document model, a PDF/A-3b
renderer that embeds the evidence and a signed manifest, and the verifier for both.

    report = Report(meta, sections, attachments)          # reports.model
    render_report(report, signer, "out.pdf", created=...)  # reports.render
    verify_report("out.pdf", [signer.verifier()])          # reports.verify

``reports`` imports ``ledger`` (signed notes, checkpoints) and may import ``gates`` and
``mappings``; never ``mrm``.
"""

from .charts import Series, Threshold, bar_chart, line_chart
from .errors import AssetRefusedError, RenderError, ReportError, ReportInputError, ReportModelError
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
from .render import RenderedReport, render_pdf, render_report
from .verify import (
    AttachmentStatus,
    ReportVerification,
    SignatureStatus,
    load_verifier_keys,
    parse_verifier_keys,
    verify_report,
)

__all__ = [
    "AssetRefusedError",
    "Attachment",
    "AttachmentRole",
    "AttachmentStatus",
    "CheckpointRef",
    "CodeBlock",
    "Column",
    "Figure",
    "KeyValue",
    "KeyValues",
    "Paragraph",
    "Period",
    "RenderError",
    "RenderedReport",
    "Report",
    "ReportError",
    "ReportInputError",
    "ReportKind",
    "ReportMeta",
    "ReportModelError",
    "ReportVerification",
    "Section",
    "Series",
    "SignatureStatus",
    "Status",
    "StatusBadge",
    "Table",
    "Threshold",
    "ValueKind",
    "VerificationSummary",
    "bar_chart",
    "line_chart",
    "load_verifier_keys",
    "parse_verifier_keys",
    "render_pdf",
    "render_report",
    "verify_report",
]
