"""Verify a report PDF: its signed manifest, every attachment, and what its pages draw.

:func:`verify_report` refuses rather than guesses. Without exactly one ``manifest.json``
and one ``manifest.json.sig``, or when the signature is not a valid signature by a
trusted key over exactly these manifest bytes and this report id, it compares nothing
and says why (``refused``): attachments checked against an unauthenticated manifest
would prove nothing, however well they matched. Once the manifest is trusted, each
attachment is reported precisely:

* ``ok``: present once, same size and SHA-256 (and media type) as the manifest lists;
* ``altered``: present, but its bytes or media type differ;
* ``removed``: listed in the manifest, not in the PDF;
* ``added``: in the PDF (name tree, associated files or a page annotation), not listed;
* ``duplicated``: the name appears more than once (a viewer could show either copy);
* ``unreadable``: present, but its stream cannot be decoded.

The page digest (:mod:`reports.pages`) is recomputed and compared, so an edited page is
caught too, and an attached checkpoint note is opened with the same trusted keys and must
be the checkpoint the manifest names.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable

from ledger.errors import KeyringError
from ledger.keys import load_verifiers
from ledger.note import (
    AmbiguousKeyError,
    InvalidSignatureError,
    NoteError,
    UnverifiedNoteError,
    Verifier,
    open_checkpoint,
)

from .errors import ReportInputError
from .manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    ManifestError,
    ReportManifest,
    SignedManifestRef,
    open_manifest_signature,
)
from .model import AttachmentRole
from .pages import PAGES_METHOD, page_digest
from .pdffiles import EmbeddedFile, open_pdf, read_embedded_files

__all__ = [
    "AttachmentStatus",
    "SignatureStatus",
    "AttachmentCheck",
    "PagesCheck",
    "CheckpointCheck",
    "ReportVerification",
    "verify_report",
    "load_verifier_keys",
]


class AttachmentStatus(str, Enum):
    OK = "ok"
    ALTERED = "altered"
    REMOVED = "removed"
    ADDED = "added"
    DUPLICATED = "duplicated"
    UNREADABLE = "unreadable"


class SignatureStatus(str, Enum):
    VALID = "valid"  # a trusted key signed exactly this manifest for this report id
    MISSING = "missing"  # no manifest.json or no manifest.json.sig
    DUPLICATED = "duplicated"  # more than one of either: which one would we trust?
    UNTRUSTED = "untrusted"  # well formed, but signed only by keys we do not trust
    INVALID = "invalid"  # a trusted key's signature does not verify
    MALFORMED = "malformed"  # not a signed note / not a report manifest signature
    MISMATCH = "mismatch"  # a valid signature, but over other manifest bytes or another report
    UNSIGNED = "unsigned"  # a manifest and no signature, checked because the caller allowed it: nobody vouches for it


@dataclass(frozen=True)
class AttachmentCheck:
    name: str
    status: AttachmentStatus
    expected_size: int | None = None
    expected_sha256: str | None = None
    actual_size: int | None = None
    actual_sha256: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "expected": None if self.expected_sha256 is None else {"size": self.expected_size, "sha256": self.expected_sha256},
            "actual": None if self.actual_sha256 is None else {"size": self.actual_size, "sha256": self.actual_sha256},
            "detail": self.detail,
        }


@dataclass(frozen=True)
class PagesCheck:
    ok: bool
    expected_count: int
    actual_count: int
    expected_sha256: str
    actual_sha256: str | None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "expected": {"count": self.expected_count, "sha256": self.expected_sha256},
            "actual": {"count": self.actual_count, "sha256": self.actual_sha256},
            "detail": self.detail,
        }


@dataclass(frozen=True)
class CheckpointCheck:
    status: str  # ok | mismatch | invalid | not_attached
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class ReportVerification:
    path: str
    signature: SignatureStatus
    refused: str | None = None  # why nothing was compared; None once the manifest is trusted
    signed_by: tuple[str, ...] = ()
    manifest: ReportManifest | None = None
    attachments: tuple[AttachmentCheck, ...] = ()
    pages: PagesCheck | None = None
    checkpoint: CheckpointCheck | None = None
    problems: tuple[str, ...] = ()  # every finding, one line each
    embedded: tuple[str, ...] = field(default=())  # names of all files found, for diagnostics

    @property
    def ok(self) -> bool:
        """Everything matches. UNSIGNED is reached only when the caller allowed it."""
        signed = self.signature in (SignatureStatus.VALID, SignatureStatus.UNSIGNED)
        return self.refused is None and signed and not self.problems

    def attachment(self, name: str) -> AttachmentCheck:
        for check in self.attachments:
            if check.name == name:
                return check
        raise KeyError(name)

    def by_status(self, status: AttachmentStatus) -> list[str]:
        return [c.name for c in self.attachments if c.status is status]

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "path": self.path,
            "ok": self.ok,
            "refused": self.refused,
            "signature": {"status": self.signature.value, "signed_by": list(self.signed_by)},
            "report": None if m is None else {
                "id": m.report_id, "kind": m.kind, "title": m.title, "created": m.created, "ledger_id": m.ledger_id,
                "checkpoint": {"origin": m.checkpoint_origin, "size": m.checkpoint_size, "root": m.checkpoint_root},
            },
            "attachments": [c.to_json() for c in self.attachments],
            "pages": None if self.pages is None else self.pages.to_json(),
            "checkpoint": None if self.checkpoint is None else self.checkpoint.to_json(),
            "problems": list(self.problems),
            "embedded": list(self.embedded),
        }

    def to_text(self) -> str:
        lines = [f"file        {self.path}"]
        if self.refused is not None:
            lines.append(f"signature   {self.signature.value.upper()}")
            lines.append(f"REFUSED: {self.refused}")
            if self.embedded:
                lines.append(f"embedded files: {', '.join(self.embedded)}")
            return "\n".join(lines)
        m = self.manifest
        assert m is not None
        lines.append(f"report      {m.report_id} ({m.kind}): {m.title}")
        if self.signature is SignatureStatus.UNSIGNED:
            lines.append("signature   NONE: the manifest is not signed; what follows matches it, but anyone could have written it")
        else:
            lines.append(f"signature   valid, by {', '.join(self.signed_by)}")
        lines.append(f"ledger      {m.ledger_id}, checkpoint {m.checkpoint_origin} size {m.checkpoint_size:,} root {m.checkpoint_root}")
        if self.pages is not None:
            lines.append(f"pages       {self.pages.actual_count}: " + ("drawn content matches the manifest" if self.pages.ok else self.pages.detail))
        if self.checkpoint is not None:
            lines.append(f"checkpoint  {self.checkpoint.status}: {self.checkpoint.detail}")
        lines.append("attachments")
        width = max((len(c.name) for c in self.attachments), default=0)
        for c in self.attachments:
            label = c.status.value if c.status is AttachmentStatus.OK else c.status.value.upper()
            size = f"{c.actual_size:,} bytes" if c.actual_size is not None else ""
            lines.append(f"  {label:<10} {c.name:<{width}}  {size:>14}  {c.detail}".rstrip())
        if self.ok:
            # Say what was checked, so a success can be compared with the cover and the checkpoint.
            checked = (f": {len(self.attachments)} attachments, {self.pages.actual_count if self.pages else 0} pages, "
                       f"checkpoint size {m.checkpoint_size:,} root {m.checkpoint_root}")
            lines.append(("VERIFIED, UNSIGNED" if self.signature is SignatureStatus.UNSIGNED else "VERIFIED") + checked)
        else:
            lines.append(f"FAILED: {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}")
        lines.extend(f"  - {p}" for p in self.problems)
        return "\n".join(lines)


# --------------------------------------------------------------------------- keys


def load_verifier_keys(path: str | os.PathLike[str]) -> list[Verifier]:
    """Trusted verifier keys (vkey lines), as for checkpoints: ledger.keys.load_verifiers."""
    try:
        return load_verifiers(path)
    except KeyringError as e:
        raise ReportInputError(str(e)) from None


# --------------------------------------------------------------------------- verification


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_report(pdf_path: str | os.PathLike[str] | bytes, verifiers: Iterable[Verifier], *,
                  allow_unsigned: bool = False) -> ReportVerification:
    """Verify a report PDF (a path, or the PDF's bytes) against trusted verifier keys.

    An unsigned report (a manifest and no signature, as someone with only public keys
    writes) is refused unless ``allow_unsigned``; then it is checked against its own
    manifest and its checkpoint against the trusted keys, and reported UNSIGNED.

    Raises :class:`ReportInputError` only when the input is not a readable PDF; every
    integrity finding is in the returned :class:`ReportVerification`."""
    verifiers = list(verifiers)
    if not verifiers:
        raise ReportInputError("no trusted verifier key given")
    for v in verifiers:
        if not isinstance(v, Verifier):
            raise TypeError(f"verifiers must be ledger.note.Verifier objects, got {type(v).__name__}")
    shown = "<bytes>" if isinstance(pdf_path, bytes) else str(pdf_path)
    reader = open_pdf(pdf_path)
    found = read_embedded_files(reader)
    embedded = tuple(f.name for f in found.files)

    def refuse(status: SignatureStatus, reason: str, signed_by: tuple[str, ...] = ()) -> ReportVerification:
        return ReportVerification(shown, status, refused=reason, signed_by=signed_by, problems=(reason,), embedded=embedded)

    manifests, signatures = found.named(MANIFEST_NAME), found.named(SIGNATURE_NAME)
    if len(manifests) == 1 and not signatures:
        if not allow_unsigned:
            return refuse(SignatureStatus.MISSING, "no manifest.json.sig embedded: the report is unsigned (or its signature "
                                                   "was removed), so nobody vouches for it; check it anyway with --allow-unsigned")
        if manifests[0].data is None:
            return refuse(SignatureStatus.MALFORMED, f"the manifest cannot be read: {manifests[0].error}")
        try:
            manifest = ReportManifest.from_bytes(manifests[0].data)
        except ManifestError as e:
            return refuse(SignatureStatus.MALFORMED, f"the unsigned manifest is malformed: {e}")
        return _check_contents(shown, SignatureStatus.UNSIGNED, (), manifest, found, (manifests[0],), reader, verifiers, embedded)
    if not manifests or not signatures:
        missing = " and ".join(n for n, f in ((MANIFEST_NAME, manifests), (SIGNATURE_NAME, signatures)) if not f)
        return refuse(SignatureStatus.MISSING, f"no {missing} embedded: not an mrm-ledger report, or its signed manifest was removed")
    if len(manifests) > 1 or len(signatures) > 1:
        return refuse(SignatureStatus.DUPLICATED, "manifest.json or manifest.json.sig is embedded more than once; refusing to choose one")
    manifest_file, signature_file = manifests[0], signatures[0]
    if manifest_file.data is None or signature_file.data is None:
        return refuse(SignatureStatus.MALFORMED, f"the manifest or its signature cannot be read: {manifest_file.error or signature_file.error}")

    signed, refusal = _open_signature(signature_file.data, verifiers)
    if signed is None:
        status, reason = refusal
        return refuse(status, reason)
    signed_by = signed.signed_by
    actual_digest = _sha256(manifest_file.data)
    if actual_digest != signed.manifest_sha256:
        return refuse(SignatureStatus.MISMATCH,
                      f"manifest.json was changed after it was signed (signed SHA-256 {signed.manifest_sha256}, found {actual_digest})", signed_by)
    try:
        manifest = ReportManifest.from_bytes(manifest_file.data)
    except ManifestError as e:
        return refuse(SignatureStatus.MALFORMED, f"the signed manifest is malformed: {e}", signed_by)
    if manifest.report_id != signed.report_id:
        return refuse(SignatureStatus.MISMATCH,
                      f"the signature is for report {signed.report_id!r} but the manifest is for {manifest.report_id!r}", signed_by)

    return _check_contents(shown, SignatureStatus.VALID, signed_by, manifest, found, (manifest_file, signature_file),
                           reader, verifiers, embedded)


def _check_contents(shown: str, signature: SignatureStatus, signed_by: tuple[str, ...], manifest: ReportManifest, found,
                    sealing_files, reader, verifiers: list[Verifier], embedded: tuple[str, ...]) -> ReportVerification:
    """Attachments, pages and checkpoint against a manifest already accepted."""
    problems: list[str] = list(found.problems)
    checks = _check_attachments(manifest, found.files)
    for c in checks:
        if c.status is not AttachmentStatus.OK:
            problems.append(f"attachment {c.name}: {c.status.value}{': ' + c.detail if c.detail else ''}")
    for f in sealing_files:
        if len(f.found_in) > 1 and set(f.found_in) - {"EmbeddedFiles", "catalog AF"}:
            problems.append(f"{f.name} is also hung on {', '.join(f.found_in)}")
    pages = _check_pages(manifest, reader)
    if not pages.ok:
        problems.append(f"pages: {pages.detail}")
    checkpoint = _check_checkpoint(manifest, found.files, checks, verifiers)
    if checkpoint.status not in ("ok", "not_attached"):
        problems.append(f"checkpoint: {checkpoint.detail}")
    elif checkpoint.status == "not_attached" and signature is SignatureStatus.UNSIGNED:
        problems.append("checkpoint: an unsigned report with no signed checkpoint rests on nothing that can be checked")
    return ReportVerification(shown, signature, None, signed_by, manifest, tuple(checks), pages, checkpoint, tuple(problems), embedded)


def _open_signature(data: bytes, verifiers: list[Verifier]) -> tuple[SignedManifestRef | None, tuple[SignatureStatus, str]]:
    try:
        return open_manifest_signature(data, verifiers), (SignatureStatus.VALID, "")
    except UnverifiedNoteError as e:
        signers = ", ".join(f"{s.name}+{s.key_id:08x}" for s in e.note.signatures) or "nobody"
        trusted = ", ".join(v.to_vkey().rsplit("+", 1)[0] for v in verifiers)
        return None, (SignatureStatus.UNTRUSTED,
                      f"manifest.json.sig is signed only by keys that are not trusted ({signers}); trusted: {trusted}")
    except InvalidSignatureError as e:
        return None, (SignatureStatus.INVALID, f"manifest.json.sig: {e}")
    except AmbiguousKeyError as e:
        raise ReportInputError(f"the trusted keys are ambiguous: {e}") from None
    except (NoteError, ManifestError) as e:
        return None, (SignatureStatus.MALFORMED, f"manifest.json.sig is not a report manifest signature: {e}")


def _check_attachments(manifest: ReportManifest, files: tuple[EmbeddedFile, ...]) -> list[AttachmentCheck]:
    by_name: dict[str, list[EmbeddedFile]] = {}
    for f in files:
        if f.name not in (MANIFEST_NAME, SIGNATURE_NAME):
            by_name.setdefault(f.name, []).append(f)
    checks = []
    for entry in manifest.attachments:
        present = by_name.pop(entry.name, [])
        expected = dict(expected_size=entry.size, expected_sha256=entry.sha256)
        if not present:
            checks.append(AttachmentCheck(entry.name, AttachmentStatus.REMOVED, **expected, detail="listed in the manifest but not embedded"))
            continue
        if len(present) > 1:
            digests = ", ".join(_sha256(f.data)[:16] if f.data is not None else "unreadable" for f in present)
            checks.append(AttachmentCheck(entry.name, AttachmentStatus.DUPLICATED, **expected,
                                          detail=f"embedded {len(present)} times (SHA-256 {digests}...)"))
            continue
        f = present[0]
        if f.data is None:
            checks.append(AttachmentCheck(entry.name, AttachmentStatus.UNREADABLE, **expected, detail=f.error or ""))
            continue
        actual = dict(actual_size=len(f.data), actual_sha256=_sha256(f.data))
        differences = []
        if actual["actual_sha256"] != entry.sha256:
            differences.append(f"SHA-256 {actual['actual_sha256']} instead of {entry.sha256}")
        if actual["actual_size"] != entry.size:
            differences.append(f"{actual['actual_size']:,} bytes instead of {entry.size:,}")
        if f.media_type != entry.media_type:
            differences.append(f"media type {f.media_type} instead of {entry.media_type}")
        status = AttachmentStatus.ALTERED if differences else AttachmentStatus.OK
        checks.append(AttachmentCheck(entry.name, status, **expected, **actual, detail="; ".join(differences)))
    for name, extra in by_name.items():
        for f in extra:
            size = len(f.data) if f.data is not None else None
            checks.append(AttachmentCheck(
                name, AttachmentStatus.ADDED, actual_size=size, actual_sha256=_sha256(f.data) if f.data is not None else None,
                detail=f"not listed in the manifest (found in {', '.join(f.found_in)})",
            ))
    return checks


def _check_pages(manifest: ReportManifest, reader) -> PagesCheck:
    expected = manifest.pages
    if expected.method != PAGES_METHOD:
        return PagesCheck(False, expected.count, len(reader.pages), expected.sha256, None,
                          f"unknown page digest method {expected.method!r}; cannot check the pages")
    actual = page_digest(reader)
    if actual.count != expected.count:
        detail = f"the document has {actual.count} pages, the signed manifest says {expected.count}"
    elif actual.sha256 != expected.sha256:
        detail = "what the pages draw (text, images, fonts or annotations) differs from what was signed"
    else:
        detail = ""
    return PagesCheck(not detail, expected.count, actual.count, expected.sha256, actual.sha256, detail)


def _check_checkpoint(manifest: ReportManifest, files: tuple[EmbeddedFile, ...], checks: list[AttachmentCheck],
                      verifiers: list[Verifier]) -> CheckpointCheck:
    entries = [e for e in manifest.attachments if e.role == AttachmentRole.CHECKPOINT.value]
    if not entries:
        return CheckpointCheck("not_attached", "the report carries no checkpoint note")
    entry = entries[0]
    check = next(c for c in checks if c.name == entry.name)
    if check.status is not AttachmentStatus.OK:
        return CheckpointCheck("invalid", f"{entry.name} is {check.status.value}; cannot rely on it")
    data = next(f.data for f in files if f.name == entry.name)
    assert data is not None
    try:
        checkpoint, note = open_checkpoint(data, verifiers)
    except NoteError as e:
        return CheckpointCheck("invalid", f"{entry.name} does not verify with the trusted keys: {e}")
    named = (manifest.checkpoint_origin, manifest.checkpoint_size, manifest.checkpoint_root)
    actual = (checkpoint.origin, checkpoint.size, base64.b64encode(checkpoint.root).decode("ascii"))
    if named != actual:
        return CheckpointCheck("mismatch", f"{entry.name} is {actual[0]} size {actual[1]} root {actual[2]}, "
                                          f"but the manifest names {named[0]} size {named[1]} root {named[2]}")
    signers = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.verified)
    root = base64.b64encode(checkpoint.root).decode("ascii")
    return CheckpointCheck("ok", f"{checkpoint.origin} size {checkpoint.size:,} root {root}, signed by {signers}")

