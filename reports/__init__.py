"""Regulator-ready documents from ledger evidence: a typed document model, a PDF/A-3b
renderer that embeds the evidence and a signed manifest, and the verifier for both.

    report = Report(meta, sections, attachments)          # reports.model
    render_report(report, signer, "out.pdf", created=...)  # reports.render
    verify_report("out.pdf", [signer.verifier()])          # reports.verify

``reports`` imports ``ledger`` (signed notes, checkpoints) and may import ``gates`` and
``mappings``; never ``mrm``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public names and the module that defines each. They are imported on first use (PEP 562),
# so `import reports.verify` (the `mrm report verify` path) does not load WeasyPrint and
# matplotlib, which take most of a second.
_EXPORTS = {
    "charts": ("Series", "Threshold", "bar_chart", "line_chart"),
    "errors": ("AssetRefusedError", "RenderError", "ReportError", "ReportInputError", "ReportModelError"),
    "model": (
        "Attachment", "AttachmentRole", "CheckpointRef", "CodeBlock", "Column", "Figure", "KeyValue", "KeyValues",
        "Paragraph", "Period", "Report", "ReportKind", "ReportMeta", "Section", "Status", "StatusBadge", "Table",
        "ValueKind", "VerificationSummary",
    ),
    "render": ("RenderedReport", "render_pdf", "render_report"),
    "verify": ("AttachmentStatus", "ReportVerification", "SignatureStatus", "load_verifier_keys",
               "verify_report"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'reports' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from .charts import Series, Threshold, bar_chart, line_chart  # noqa: F401
    from .errors import AssetRefusedError, RenderError, ReportError, ReportInputError, ReportModelError  # noqa: F401
    from .model import (  # noqa: F401
        Attachment, AttachmentRole, CheckpointRef, CodeBlock, Column, Figure, KeyValue, KeyValues, Paragraph, Period,
        Report, ReportKind, ReportMeta, Section, Status, StatusBadge, Table, ValueKind, VerificationSummary,
    )
    from .render import RenderedReport, render_pdf, render_report  # noqa: F401
    from .verify import (  # noqa: F401
        AttachmentStatus, ReportVerification, SignatureStatus, load_verifier_keys, verify_report,
    )
