"""Render, sign and write a ledger document, and say what came out."""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ledger.note import Signer, Verifier
from ledger.storage_io import write_file_atomic

from ..html import SignerInfo
from ..model import Report, Status
from ..render import render_pdf

__all__ = ["WrittenReport", "write_report"]


@dataclass(frozen=True)
class WrittenReport:
    path: Path
    report: Report
    pages: int
    render_seconds: float  # layout, drawing, sealing and the self-verification
    signature: SignerInfo | None  # who signed the manifest; None: unsigned

    @property
    def report_id(self) -> str:
        return self.report.meta.report_id

    @property
    def status(self) -> Status:
        """The verification verdict on the cover (FAIL: the ledger or a proof did not verify)."""
        return self.report.meta.verification.status

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL


def write_report(report: Report, signer: Signer | None, out_path: str | os.PathLike[str] | None = None, *,
                 created: dt.datetime | None = None, checkpoint_keys: Sequence[Verifier] = ()) -> WrittenReport:
    """Render ``report`` as a PDF/A-3b file at ``out_path`` (default ``<report id>.pdf``
    in the working directory), atomically, signed by ``signer`` (None: unsigned, and
    labelled so). ``checkpoint_keys`` are the ledger keys its checkpoint must verify with.
    ``created`` is the PDF's date (default: now); the same report rendered with the same
    date gives the same bytes."""
    created = created or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    out = Path(out_path) if out_path is not None else Path(f"{report.meta.report_id}.pdf")
    started = time.perf_counter()
    rendered = render_pdf(report, signer, created=created, checkpoint_keys=checkpoint_keys)
    elapsed = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(out, rendered.pdf)
    return WrittenReport(out, report, rendered.page_count, elapsed, rendered.signed_by)
