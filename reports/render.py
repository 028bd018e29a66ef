"""Render a :class:`~reports.model.Report` to a signed PDF/A-3b file.

The pipeline, and why each step is there:

1. ``render_html`` turns the report into autoescaped HTML whose only references are
   ``mrm-asset:`` URLs.
2. WeasyPrint lays it out with an :class:`~reports.fetcher.AssetFetcher` that serves the
   package's stylesheet and fonts and this report's charts, and stops the render on any
   other URL.
3. The laid-out document is written once *without* attachments, and the digest of what
   its pages draw is taken (:mod:`reports.pages`). Attachments do not change page content,
   so the digest is the same in the final file, where the verifier recomputes it.
4. ``manifest.json`` (attachments' names, sizes, SHA-256; report id, kind, ledger id,
   checkpoint; the page digest) is built and signed as a C2SP note with the ledger key.
5. The same layout is written again with every evidence attachment plus ``manifest.json``
   and ``manifest.json.sig`` as PDF/A-3 associated files, and checked: its page digest
   must equal step 3's and it must carry exactly the attachments we meant.

``created`` is passed in, never read from a clock, and used for the PDF's creation and
modification dates and every attachment's dates; WeasyPrint derives the file identifier
from the content. With the same report, key and ``created`` two renders are
byte-identical (tested), on the same versions of WeasyPrint, pydyf, matplotlib and fonts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import weasyprint
from weasyprint.urls import FatalURLFetchingError

from ledger.note import Checkpoint, NoteError, Signer, open_checkpoint

from .errors import AssetRefusedError, RenderError
from .fetcher import Asset, AssetFetcher, asset_url, package_assets
from .html import SignerInfo, figure_path, render_html
from .manifest import MANIFEST_NAME, SIGNATURE_NAME, ReportManifest, build_manifest, sign_manifest
from .model import AttachmentRole, Report
from .pages import page_digest
from .values import format_timestamp

__all__ = ["PDF_VARIANT", "RenderedReport", "render_pdf", "render_report"]

PDF_VARIANT = "pdf/a-3b"
_PDF_OPTIONS = {"pdf_variant": PDF_VARIANT}


@dataclass(frozen=True)
class RenderedReport:
    pdf: bytes
    manifest: ReportManifest
    manifest_bytes: bytes
    signature: bytes
    page_count: int
    requested_urls: tuple[str, ...]  # every URL the renderer asked the fetcher for


def render_pdf(report: Report, signer: Signer, *, created: dt.datetime) -> RenderedReport:
    """Render and sign ``report`` in memory. See the module docstring for the steps."""
    if not isinstance(report, Report):
        raise TypeError(f"report must be a Report, got {type(report).__name__}")
    if not isinstance(signer, Signer):
        raise TypeError(f"signer must be a ledger.note.Signer, got {type(signer).__name__}")
    if not isinstance(created, dt.datetime) or created.tzinfo is None or created.utcoffset() is None:
        raise RenderError("created must be a timezone-aware datetime (the caller's fixed creation date, not 'now')")
    created = created.astimezone(dt.timezone.utc).replace(microsecond=0)  # PDF dates have whole seconds
    _check_checkpoint_signature(report, signer)

    assets = package_assets()
    for index, figure in enumerate(report.figures(), 1):
        assets[asset_url(figure_path(index))] = Asset(figure.svg, "image/svg+xml")
    for attachment in report.attachments:
        assets[asset_url(f"attachments/{attachment.name}")] = Asset(attachment.data, attachment.media_type)
    fetcher = AssetFetcher(assets)

    html = render_html(report, signer=SignerInfo(signer.name, f"{signer.key_id:08x}"), created=created)
    try:
        document = weasyprint.HTML(string=html, url_fetcher=fetcher).render(**_PDF_OPTIONS)
        with _fixed_font_timestamps(created):
            unsigned = document.write_pdf(**_PDF_OPTIONS)
    except FatalURLFetchingError as e:
        cause = e.__cause__
        if isinstance(cause, AssetRefusedError):
            raise AssetRefusedError(cause.url) from None
        raise RenderError(f"rendering stopped: {e}") from None

    pages = page_digest(unsigned)
    manifest = build_manifest(
        report, created=format_timestamp(created, sep="T"), generated_at=format_timestamp(report.meta.generated_at, sep="T"), pages=pages
    )
    manifest_bytes = manifest.to_bytes()
    signature = sign_manifest(manifest_bytes, report.meta.report_id, signer)
    assets[asset_url(f"attachments/{MANIFEST_NAME}")] = Asset(manifest_bytes, "application/json")
    assets[asset_url(f"attachments/{SIGNATURE_NAME}")] = Asset(signature, "text/plain")
    fetcher = AssetFetcher(assets)  # a fresh log for the attachment fetches
    attachments = [
        _pdf_attachment(a.name, a.description, a.role.af_relationship, created, fetcher) for a in report.attachments
    ] + [
        _pdf_attachment(MANIFEST_NAME, "Signed manifest: name, size and SHA-256 of every attachment, report id, ledger checkpoint, page digest", "Supplement", created, fetcher),
        _pdf_attachment(SIGNATURE_NAME, "C2SP signed note over the SHA-256 of manifest.json, by the ledger's Ed25519 key", "Supplement", created, fetcher),
    ]
    try:
        with _fixed_font_timestamps(created):
            pdf = document.write_pdf(attachments=attachments, **_PDF_OPTIONS)
    except FatalURLFetchingError as e:  # pragma: no cover - the attachments are all registered
        raise RenderError(f"attaching evidence failed: {e}") from None

    final_pages = page_digest(pdf)
    if final_pages != pages:
        raise RenderError("the pages changed when the attachments were added; the report would not verify")
    _check_attachments_written(pdf, report)
    return RenderedReport(pdf, manifest, manifest_bytes, signature, pages.count, tuple(fetcher.requested))


def render_report(report: Report, signer: Signer, out_path: str | os.PathLike[str], *, created: dt.datetime) -> Path:
    """Render, sign and write ``report`` to ``out_path`` (atomically: a reader never sees
    a half-written file). Returns the path."""
    rendered = render_pdf(report, signer, created=created)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(rendered.pdf)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


# --------------------------------------------------------------------------- helpers

_ENVIRONMENT_LOCK = threading.Lock()


@contextlib.contextmanager
def _fixed_font_timestamps(created: dt.datetime) -> Iterator[None]:
    """Make embedded font subsets reproducible.

    Without HarfBuzz-subset, WeasyPrint subsets fonts with fontTools, which stamps each
    subset's ``head.modified`` with the current time, so two renders a second apart
    differ. fontTools honours ``SOURCE_DATE_EPOCH`` (reproducible-builds.org) instead of
    the clock, so we set it to the document's creation date while the PDF is written.
    The environment is process-wide: the lock serialises our renders, and another
    thread's fontTools work meanwhile would only get this timestamp, never wrong data."""
    with _ENVIRONMENT_LOCK:
        previous = os.environ.get("SOURCE_DATE_EPOCH")
        os.environ["SOURCE_DATE_EPOCH"] = str(int(created.timestamp()))
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("SOURCE_DATE_EPOCH", None)
            else:
                os.environ["SOURCE_DATE_EPOCH"] = previous



def _pdf_attachment(name: str, description: str, relationship: str, created: dt.datetime, fetcher: AssetFetcher) -> weasyprint.Attachment:
    # Through the fetcher, so the media type travels with the bytes (WeasyPrint would
    # otherwise guess it from the file name) and nothing is read from disk. Dates are the
    # caller's, so attachments do not make two renders differ.
    return weasyprint.Attachment(
        url=asset_url(f"attachments/{name}"),
        url_fetcher=fetcher,
        name=name,
        description=description,
        created=created,
        modified=created,
        relationship=relationship,
    )


def _check_checkpoint_signature(report: Report, signer: Signer) -> None:
    """The one key verifies checkpoints and reports: refuse to sign a report whose
    attached checkpoint that key did not sign, since the report would never verify."""
    for attachment in report.attachments:
        if attachment.role is not AttachmentRole.CHECKPOINT:
            continue
        try:
            checkpoint, _ = open_checkpoint(attachment.data, [signer.verifier()])
        except NoteError as e:
            raise RenderError(
                f"checkpoint attachment {attachment.name!r} is not signed by the report signer's key {signer.name}+{signer.key_id:08x}: {e}"
            ) from None
        assert isinstance(checkpoint, Checkpoint)


def _check_attachments_written(pdf: bytes, report: Report) -> None:
    """WeasyPrint logs (and skips) an attachment it fails to load: make that an error."""
    from .pdffiles import read_embedded_files

    found = sorted(f.name for f in read_embedded_files(pdf).files)
    wanted = sorted([a.name for a in report.attachments] + [MANIFEST_NAME, SIGNATURE_NAME])
    if found != wanted:
        raise RenderError(f"the PDF carries attachments {found}, not {wanted}")
