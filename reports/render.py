"""Render a :class:`~reports.model.Report` to a signed PDF/A-3b file.

The pipeline, and why each step is there:

1. ``render_html`` turns the report into autoescaped HTML whose only references are
   ``mrm-asset:`` URLs.
2. WeasyPrint lays it out with an :class:`~reports.fetcher.AssetFetcher` that serves the
   package's stylesheet and fonts and this report's charts, and stops the render on any
   other URL.
3. The PDF is written once (PDF/A-3b), with every evidence attachment and two
   placeholders, ``manifest.json`` and ``manifest.json.sig``, as associated files.
4. Just before WeasyPrint serialises the file, a finisher (:class:`_Sealer`) writes the
   same objects to an uncompressed scratch PDF, takes the digest of what its pages draw
   (:mod:`reports.pages`; attachments hang on the catalog, never on pages, so the digest
   is the final file's), builds ``manifest.json`` (attachments' names, sizes and SHA-256,
   report id, kind, ledger id, checkpoint, page digest), signs it as a C2SP note with the
   author's key (the ledger's own, or an examiner's), and puts both into the placeholders.
   An unsigned report (no signer: someone who holds only public keys and no key of their
   own) carries the manifest without a signature and says so on its cover.
5. The finished file is verified with the signer's public key and the ledger's checkpoint
   keys by the same :func:`reports.verify.verify_report` an examiner runs: a report that
   would not verify is never returned.

Laying out and drawing happen once; the scratch serialisation skips compression, so
sealing costs a small fraction of the render.

``created`` is passed in, never read from a clock: it is the PDF's creation and
modification date, every attachment's date, and (through ``SOURCE_DATE_EPOCH``) the
timestamp fontTools writes into font subsets. WeasyPrint derives the file identifier from
the content. So the same report, key and ``created`` give byte-identical files (tested),
given the same versions of WeasyPrint, pydyf, fontTools, matplotlib and the fonts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pydyf
import weasyprint
from weasyprint.urls import FatalURLFetchingError

from ledger.note import NoteError, Signer, Verifier, open_checkpoint

from .errors import AssetRefusedError, RenderError
from .fetcher import Asset, AssetFetcher, asset_url, package_assets
from .html import SignerInfo, figure_path, render_html
from .manifest import MANIFEST_NAME, SIGNATURE_NAME, ReportManifest, build_manifest, sign_manifest
from .model import AttachmentRole, Report
from .pages import page_digest
from .values import format_timestamp
from .verify import verify_report

__all__ = ["PDF_VARIANT", "RenderedReport", "render_pdf", "render_report"]

PDF_VARIANT = "pdf/a-3b"
_PDF_OPTIONS = {"pdf_variant": PDF_VARIANT}
_MANIFEST_DESCRIPTION = "Signed manifest: name, size and SHA-256 of every attachment, report id, ledger checkpoint, page digest"
_SIGNATURE_DESCRIPTION = "C2SP signed note over the SHA-256 of manifest.json, by the report author's Ed25519 key"


@dataclass(frozen=True)
class RenderedReport:
    pdf: bytes
    manifest: ReportManifest
    manifest_bytes: bytes
    signature: bytes  # empty for an unsigned report
    page_count: int
    requested_urls: tuple[str, ...]  # every URL the renderer asked the fetcher for, in order
    signed_by: SignerInfo | None  # None: unsigned


def render_pdf(report: Report, signer: Signer | None, *, created: dt.datetime,
               checkpoint_keys: Sequence[Verifier] = ()) -> RenderedReport:
    """Render, seal and self-verify ``report`` in memory (see the module docstring).

    ``signer`` signs the manifest (None: an unsigned report, labelled so).
    ``checkpoint_keys`` are the ledger's public keys that the attached checkpoint must
    verify with; by default the signer's own (the ledger's operator signs with the key
    that signs the checkpoints)."""
    if not isinstance(report, Report):
        raise TypeError(f"report must be a Report, got {type(report).__name__}")
    if signer is not None and not isinstance(signer, Signer):
        raise TypeError(f"signer must be a ledger.note.Signer or None, got {type(signer).__name__}")
    checkpoint_keys = tuple(checkpoint_keys) or ((signer.verifier(),) if signer is not None else ())
    if not checkpoint_keys:
        raise RenderError("an unsigned report needs the ledger's public keys to check its checkpoint")
    if not isinstance(created, dt.datetime) or created.tzinfo is None or created.utcoffset() is None:
        raise RenderError("created must be a timezone-aware datetime (the caller's fixed creation date, not 'now')")
    created = created.astimezone(dt.timezone.utc).replace(microsecond=0)  # PDF dates have whole seconds
    _check_checkpoint_signature(report, checkpoint_keys)

    assets = package_assets()
    for index, figure in enumerate(report.figures(), 1):
        assets[asset_url(figure_path(index))] = Asset(figure.svg, "image/svg+xml")
    for attachment in report.attachments:
        assets[asset_url(f"attachments/{attachment.name}")] = Asset(attachment.data, attachment.media_type)
    # Placeholders with distinct contents: WeasyPrint keys AFRelationship by MD5.
    assets[asset_url(f"attachments/{MANIFEST_NAME}")] = Asset(b"placeholder for manifest.json\n", "application/json")
    assets[asset_url(f"attachments/{SIGNATURE_NAME}")] = Asset(b"placeholder for manifest.json.sig\n", "text/plain")
    fetcher = AssetFetcher(assets)
    attachments = [_pdf_attachment(a.name, a.description, a.role.af_relationship, created, fetcher) for a in report.attachments]
    attachments.append(_pdf_attachment(MANIFEST_NAME, _MANIFEST_DESCRIPTION, "Supplement", created, fetcher))
    if signer is not None:
        attachments.append(_pdf_attachment(SIGNATURE_NAME, _SIGNATURE_DESCRIPTION, "Supplement", created, fetcher))
    sealer = _Sealer(report, signer, created)

    signed_by = _signer_info(signer, checkpoint_keys)
    html = render_html(report, signer=signed_by, created=created)
    try:
        document = weasyprint.HTML(string=html, url_fetcher=fetcher).render(**_PDF_OPTIONS)
        with _fixed_font_timestamps(created):
            pdf = document.write_pdf(attachments=attachments, finisher=sealer, **_PDF_OPTIONS)
    except FatalURLFetchingError as e:
        cause = e.__cause__
        if isinstance(cause, AssetRefusedError):
            raise AssetRefusedError(cause.url) from None
        raise RenderError(f"rendering stopped: {e}") from None
    if fetcher.refused:
        # Some loaders (SVG <image>, for one) catch fetch errors and draw without the
        # resource; the refusal still stands: this is not the document that was asked for.
        raise AssetRefusedError(fetcher.refused[0])
    if sealer.manifest is None:  # pragma: no cover - WeasyPrint always calls the finisher
        raise RenderError("the PDF was written without its signed manifest")

    _self_verify(pdf, report, signer, checkpoint_keys)
    return RenderedReport(pdf, sealer.manifest, sealer.manifest_bytes, sealer.signature, sealer.manifest.pages.count,
                          tuple(fetcher.requested), signed_by)


def render_report(report: Report, signer: Signer | None, out_path: str | os.PathLike[str], *, created: dt.datetime,
                  checkpoint_keys: Sequence[Verifier] = ()) -> Path:
    """Render, sign and write ``report`` to ``out_path`` (atomically: a reader never sees
    a half-written file). Returns the path."""
    rendered = render_pdf(report, signer, created=created, checkpoint_keys=checkpoint_keys)
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


# --------------------------------------------------------------------------- sealing


class _Sealer:
    """WeasyPrint finisher: fill the manifest and signature placeholders of the finished
    (not yet serialised) PDF, with a manifest that covers the file's own pages."""

    def __init__(self, report: Report, signer: Signer | None, created: dt.datetime) -> None:
        self._report, self._signer, self._created = report, signer, created
        self.manifest: ReportManifest | None = None
        self.manifest_bytes = b""
        self.signature = b""

    def __call__(self, document: Any, pdf: pydyf.PDF) -> None:
        pages = page_digest(_scratch_serialisation(pdf))
        meta = self._report.meta
        self.manifest = build_manifest(
            self._report,
            created=format_timestamp(self._created, sep="T"),
            generated_at=format_timestamp(meta.generated_at, sep="T"),
            pages=pages,
        )
        self.manifest_bytes = self.manifest.to_bytes()
        _fill_attachment(pdf, MANIFEST_NAME, self.manifest_bytes)
        if self._signer is not None:
            self.signature = sign_manifest(self.manifest_bytes, meta.report_id, self._signer)
            _fill_attachment(pdf, SIGNATURE_NAME, self.signature)
        _dedupe_associated_files(pdf)


def _scratch_serialisation(pdf: pydyf.PDF) -> bytes:
    """The PDF's objects as a plain, uncompressed PDF with a classic cross-reference
    table, without touching ``pdf`` (compression flags are restored). Only read back by
    :func:`page_digest`; never written out."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets: list[int | None] = []
    streams = [o for o in pdf.objects if isinstance(o, pydyf.Stream)]
    flags = [s.compress for s in streams]
    try:
        for s in streams:
            s.compress = False
        for obj in pdf.objects:
            if obj.free == "f":
                offsets.append(None)
                continue
            offsets.append(out.tell())
            out.write(obj.indirect + b"\n")
    finally:
        for s, flag in zip(streams, flags):
            s.compress = flag
    xref = out.tell()
    out.write(f"xref\n0 {len(offsets)}\n".encode())
    for offset in offsets:
        out.write(b"0000000000 65535 f \n" if offset is None else f"{offset:010} 00000 n \n".encode())
    out.write(b"trailer\n<< /Size " + str(len(offsets)).encode() + b" /Root " + pdf.catalog.reference + b" >>\n")
    out.write(f"startxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def _fill_attachment(pdf: pydyf.PDF, name: str, data: bytes) -> None:
    """Replace the bytes of the embedded file ``name`` (and its /Size and /CheckSum, the
    MD5 that ISO 32000 defines for embedded files)."""
    matches = []
    for obj in pdf.objects:
        if isinstance(obj, dict) and obj.get("Type") == "/Filespec" and getattr(obj.get("UF"), "string", None) == name:
            matches.append(obj)
    if len(matches) != 1:
        raise RenderError(f"found {len(matches)} file specifications named {name!r} in the PDF, expected 1")
    stream = pdf.objects[int(matches[0]["EF"]["F"].split()[0])]
    if not isinstance(stream, pydyf.Stream) or "Params" not in stream.extra:
        raise RenderError(f"the embedded file {name!r} is not laid out as expected; cannot seal the report")
    stream.stream = [data]
    stream.extra["Params"]["Size"] = len(data)
    stream.extra["Params"]["CheckSum"] = f"<{hashlib.md5(data, usedforsecurity=False).hexdigest()}>"


def _dedupe_associated_files(pdf: pydyf.PDF) -> None:
    """WeasyPrint 70's PDF/A code adds every attachment to the catalog's /AF twice (once
    from the name tree, once from the file specifications); list each one once."""
    af = pdf.catalog.get("AF")
    if af is None:
        return
    unique = list(dict.fromkeys(bytes(ref) for ref in af))
    pdf.catalog["AF"] = pydyf.Array(unique)


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


def _signer_info(signer: Signer | None, checkpoint_keys: Sequence[Verifier]) -> SignerInfo | None:
    if signer is None:
        return None
    ledger_key = signer.verifier().public_key in {v.public_key for v in checkpoint_keys}
    return SignerInfo(signer.name, f"{signer.key_id:08x}", signs_checkpoints=ledger_key)


def _check_checkpoint_signature(report: Report, checkpoint_keys: Sequence[Verifier]) -> None:
    """Refuse to seal a report whose attached checkpoint the ledger's keys did not
    sign: it would never verify."""
    for attachment in report.attachments:
        if attachment.role is not AttachmentRole.CHECKPOINT:
            continue
        try:
            open_checkpoint(attachment.data, list(checkpoint_keys))
        except NoteError as e:
            trusted = ", ".join(v.to_vkey().rsplit("+", 1)[0] for v in checkpoint_keys)
            raise RenderError(
                f"checkpoint attachment {attachment.name!r} is not signed by a trusted ledger key ({trusted}): {e}"
            ) from None


def _self_verify(pdf: bytes, report: Report, signer: Signer | None, checkpoint_keys: Sequence[Verifier]) -> None:
    """Run the examiner's verification on what we are about to hand out."""
    trusted = [*checkpoint_keys, *([signer.verifier()] if signer is not None else [])]
    result = verify_report(pdf, trusted, allow_unsigned=signer is None)
    sealing = [MANIFEST_NAME, SIGNATURE_NAME] if signer is not None else [MANIFEST_NAME]
    wanted = sorted([a.name for a in report.attachments] + sealing)
    if not result.ok or sorted(result.embedded) != wanted:
        problems = "; ".join(result.problems) or f"embedded {sorted(result.embedded)}, expected {wanted}"
        raise RenderError(f"the rendered report does not verify: {problems}")
