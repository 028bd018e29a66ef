"""The signed manifest every report carries: what is attached, and who vouches for it.

``manifest.json`` lists each evidence attachment's name, media type, role, size and
SHA-256, the report's id, kind and title, the ledger id and the checkpoint the report rests
on, and a digest of the rendered pages (:mod:`reports.pages`). ``manifest.json.sig`` is a
C2SP signed note (:mod:`ledger.note`) whose text binds the manifest's SHA-256 to the
report id::

    mrm-ledger report manifest v1
    <report id>
    <SHA-256 of manifest.json, lowercase hex>

signed with the ledger's Ed25519 key, so the one public key (``vkey``) that verifies the
ledger's checkpoints also verifies its reports. The first line separates report notes
from checkpoint notes (a checkpoint's third line is the base64 of a 32-byte root; 64 hex
digits never are), so one kind of signature cannot be passed off as the other.

The manifest is parsed strictly: duplicate keys, NaN, unknown or missing fields and wrong
types are refused, because two parsers reading the same signed bytes differently is how
a signature gets bypassed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from ledger.note import Signer, Verifier, VerifiedNote, open_note, sign_note
from ledger.jsontext import JSONTextError, loads_strict

from .model import MANIFEST_NAME, SIGNATURE_NAME, Report

__all__ = [
    "MANIFEST_FORMAT",
    "NOTE_HEADER",
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "ManifestError",
    "ManifestEntry",
    "PagesDigest",
    "ReportManifest",
    "build_manifest",
    "signature_text",
    "sign_manifest",
    "SignedManifestRef",
    "open_manifest_signature",
]

MANIFEST_FORMAT = "mrm-report-manifest/v1"
NOTE_HEADER = "mrm-ledger report manifest v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """manifest.json or its signature note is malformed or does not match."""


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    media_type: str
    role: str
    size: int
    sha256: str  # lowercase hex
    description: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "media_type": self.media_type,
            "role": self.role,
            "size": self.size,
            "sha256": self.sha256,
            "description": self.description,
        }


@dataclass(frozen=True)
class PagesDigest:
    """SHA-256 over what the pages draw (see :mod:`reports.pages`)."""

    method: str
    count: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "count": self.count, "sha256": self.sha256}


@dataclass(frozen=True)
class ReportManifest:
    report_id: str
    kind: str
    title: str
    generated_at: str
    created: str
    ledger_id: str
    checkpoint_origin: str
    checkpoint_size: int
    checkpoint_root: str  # standard base64, as in the checkpoint note
    pages: PagesDigest
    attachments: tuple[ManifestEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "report": {
                "id": self.report_id,
                "kind": self.kind,
                "title": self.title,
                "generated_at": self.generated_at,
                "created": self.created,
            },
            "ledger": {
                "ledger_id": self.ledger_id,
                "checkpoint": {"origin": self.checkpoint_origin, "size": self.checkpoint_size, "root": self.checkpoint_root},
            },
            "pages": self.pages.to_json(),
            "attachments": [a.to_json() for a in self.attachments],
        }

    def to_bytes(self) -> bytes:
        """Deterministic bytes: sorted keys, two-space indent, UTF-8, final newline."""
        return (json.dumps(self.to_json(), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> "ReportManifest":
        try:
            doc = loads_strict(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ManifestError("manifest.json is not UTF-8") from None
        except JSONTextError as e:
            raise ManifestError(f"manifest.json: {e}") from None
        top = _obj(doc, "manifest", {"format", "report", "ledger", "pages", "attachments"})
        if top["format"] != MANIFEST_FORMAT:
            raise ManifestError(f"manifest format {top['format']!r} is not {MANIFEST_FORMAT!r}")
        report = _obj(top["report"], "report", {"id", "kind", "title", "generated_at", "created"})
        ledger = _obj(top["ledger"], "ledger", {"ledger_id", "checkpoint"})
        checkpoint = _obj(ledger["checkpoint"], "ledger.checkpoint", {"origin", "size", "root"})
        pages = _obj(top["pages"], "pages", {"method", "count", "sha256"})
        if not isinstance(top["attachments"], list):
            raise ManifestError("manifest attachments must be a list")
        entries = []
        for i, item in enumerate(top["attachments"]):
            a = _obj(item, f"attachments[{i}]", {"name", "media_type", "role", "size", "sha256", "description"})
            entries.append(
                ManifestEntry(
                    name=_str(a["name"], f"attachments[{i}].name"),
                    media_type=_str(a["media_type"], f"attachments[{i}].media_type"),
                    role=_str(a["role"], f"attachments[{i}].role"),
                    size=_uint(a["size"], f"attachments[{i}].size"),
                    sha256=_hex64(a["sha256"], f"attachments[{i}].sha256"),
                    description=_str(a["description"], f"attachments[{i}].description"),
                )
            )
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise ManifestError("manifest lists an attachment name twice")
        if {MANIFEST_NAME, SIGNATURE_NAME} & set(names):
            raise ManifestError("manifest lists itself or its signature as an attachment")
        return cls(
            report_id=_str(report["id"], "report.id"),
            kind=_str(report["kind"], "report.kind"),
            title=_str(report["title"], "report.title"),
            generated_at=_str(report["generated_at"], "report.generated_at"),
            created=_str(report["created"], "report.created"),
            ledger_id=_str(ledger["ledger_id"], "ledger.ledger_id"),
            checkpoint_origin=_str(checkpoint["origin"], "ledger.checkpoint.origin"),
            checkpoint_size=_uint(checkpoint["size"], "ledger.checkpoint.size"),
            checkpoint_root=_str(checkpoint["root"], "ledger.checkpoint.root"),
            pages=PagesDigest(
                method=_str(pages["method"], "pages.method"),
                count=_uint(pages["count"], "pages.count"),
                sha256=_hex64(pages["sha256"], "pages.sha256"),
            ),
            attachments=tuple(entries),
        )

    def entry(self, name: str) -> ManifestEntry | None:
        return next((e for e in self.attachments if e.name == name), None)


def build_manifest(report: Report, *, created: str, generated_at: str, pages: PagesDigest) -> ReportManifest:
    meta = report.meta
    return ReportManifest(
        report_id=meta.report_id,
        kind=meta.kind.value,
        title=meta.title,
        generated_at=generated_at,
        created=created,
        ledger_id=meta.ledger_id,
        checkpoint_origin=meta.checkpoint.origin,
        checkpoint_size=meta.checkpoint.size,
        checkpoint_root=base64.b64encode(meta.checkpoint.root).decode("ascii"),
        pages=pages,
        attachments=tuple(
            ManifestEntry(a.name, a.media_type, a.role.value, len(a.data), hashlib.sha256(a.data).hexdigest(), a.description)
            for a in report.attachments
        ),
    )


# --------------------------------------------------------------------------- signature


def signature_text(report_id: str, manifest_bytes: bytes) -> str:
    return f"{NOTE_HEADER}\n{report_id}\n{hashlib.sha256(manifest_bytes).hexdigest()}\n"


def sign_manifest(manifest_bytes: bytes, report_id: str, signer: Signer) -> bytes:
    return sign_note(signature_text(report_id, manifest_bytes), [signer])


@dataclass(frozen=True)
class SignedManifestRef:
    """What a verified signature note vouches for."""

    report_id: str
    manifest_sha256: str
    note: VerifiedNote

    @property
    def signed_by(self) -> tuple[str, ...]:
        return tuple(f"{s.name}+{s.key_id:08x}" for s in self.note.verified)


def open_manifest_signature(note_bytes: bytes, verifiers: Iterable[Verifier]) -> SignedManifestRef:
    """Check the note's signature against trusted keys (:func:`ledger.note.open_note`
    raises :class:`~ledger.note.NoteError` subclasses), then parse its text."""
    note = open_note(note_bytes, verifiers)
    lines = note.text.split("\n")
    if len(lines) != 4 or lines[3] != "" or lines[0] != NOTE_HEADER:
        raise ManifestError("the signed note is not an mrm-ledger report manifest signature")
    report_id, digest = lines[1], lines[2]
    if not report_id or not _HEX64.fullmatch(digest):
        raise ManifestError("the report manifest signature names no report id or no SHA-256")
    return SignedManifestRef(report_id, digest, note)


# --------------------------------------------------------------------------- strict JSON


def _obj(value: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(f"manifest {where} must be an object")
    if set(value) != keys:
        missing, extra = sorted(keys - set(value)), sorted(set(value) - keys)
        raise ManifestError(f"manifest {where}: missing {missing}, unexpected {extra}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"manifest {where} must be a string")
    return value


def _uint(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ManifestError(f"manifest {where} must be a non-negative integer")
    return value


def _hex64(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ManifestError(f"manifest {where} must be 64 lowercase hex digits")
    return value

