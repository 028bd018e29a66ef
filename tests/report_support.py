"""Shared tools for the report tests: fixed keys, a cached render of the sample report,
text extraction, and an attacker's tools for editing a report PDF with pypdf."""

from __future__ import annotations

import functools
import hashlib
import io
import re
from typing import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject

from ledger.note import Signer
from reports.manifest import ReportManifest, sign_manifest
from reports.render import RenderedReport, render_pdf
from reports.sample import SAMPLE_CREATED, sample_report

# The ledger's key, and a key of the same name that an attacker generated.
SIGNER = Signer("bank.example-ledger", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
FOREIGN = Signer("bank.example-ledger", Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132))))
TRUSTED = [SIGNER.verifier()]


@functools.lru_cache(maxsize=None)
def rendered_sample() -> RenderedReport:
    """The sample report rendered once per test session (about a second and a half)."""
    return render_pdf(sample_report(SIGNER), SIGNER, created=SAMPLE_CREATED)


def page_texts(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def squash(text: str) -> str:
    """Text without whitespace: long unbroken values wrap over lines in the PDF."""
    return re.sub(r"\s+", "", text)


# --------------------------------------------------------------------------- tampering


def rewrite(pdf: bytes, edit: Callable[[PdfWriter], None]) -> bytes:
    """Load ``pdf`` into a pypdf writer, apply ``edit``, and save it again."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    edit(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _name_tree(writer: PdfWriter) -> ArrayObject:
    return writer.root_object["/Names"]["/EmbeddedFiles"]["/Names"]


def _filespec(writer: PdfWriter, name: str) -> tuple[int, DictionaryObject]:
    names = _name_tree(writer)
    for i in range(0, len(names), 2):
        spec = names[i + 1].get_object()
        if spec.get("/UF") == name:
            return i, spec
    raise KeyError(name)


def embedded_bytes(pdf: bytes, name: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    _, spec = _filespec(writer, name)
    return spec["/EF"]["/F"].get_object().get_data()


def replace_attachment(pdf: bytes, name: str, data: bytes) -> bytes:
    def edit(writer: PdfWriter) -> None:
        _, spec = _filespec(writer, name)
        spec["/EF"]["/F"].get_object().set_data(data)

    return rewrite(pdf, edit)


def remove_attachment(pdf: bytes, name: str) -> bytes:
    """Unhook ``name`` from the name tree and the catalog's /AF, as a PDF editor would."""

    def edit(writer: PdfWriter) -> None:
        index, spec = _filespec(writer, name)
        names = _name_tree(writer)
        ref = names[index + 1]
        del names[index : index + 2]
        af = writer.root_object["/AF"]
        af[:] = [item for item in af if not (isinstance(item, IndirectObject) and item.idnum == ref.idnum)]

    return rewrite(pdf, edit)


def add_attachment(pdf: bytes, name: str, data: bytes) -> bytes:
    return rewrite(pdf, lambda writer: writer.add_attachment(name, data))


def add_annotation_attachment(pdf: bytes, name: str, data: bytes, page: int = 0) -> bytes:
    """Hang a file on a page through a FileAttachment annotation (not the name tree)."""

    def edit(writer: PdfWriter) -> None:
        stream = writer._add_object(_stream(data))  # noqa: SLF001 - test tooling
        spec = DictionaryObject({
            NameObject("/Type"): NameObject("/Filespec"),
            NameObject("/F"): _text(name),
            NameObject("/UF"): _text(name),
            NameObject("/EF"): DictionaryObject({NameObject("/F"): stream}),
        })
        annot = DictionaryObject({
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/FileAttachment"),
            NameObject("/Rect"): ArrayObject([_num(10), _num(10), _num(30), _num(30)]),
            NameObject("/FS"): writer._add_object(spec),  # noqa: SLF001
        })
        target = writer.pages[page]
        if "/Annots" not in target:
            target[NameObject("/Annots")] = ArrayObject()
        target["/Annots"].append(writer._add_object(annot))  # noqa: SLF001

    return rewrite(pdf, edit)


def draw_on_page(pdf: bytes, page: int, operators: bytes = b"\nq 1 0 0 rg 100 100 200 40 re f Q\n") -> bytes:
    """Append drawing operators (by default a filled box that hides whatever is under it)."""

    def edit(writer: PdfWriter) -> None:
        contents = writer.pages[page]["/Contents"].get_object()
        contents.set_data(contents.get_data() + operators)

    return rewrite(pdf, edit)


def reseal(pdf: bytes, signer: Signer, *, replace: dict[str, bytes] | None = None, keep_signatures_from: bytes | None = None) -> bytes:
    """An attacker's re-signing: swap attachments, rebuild manifest.json with their new
    sizes and digests, and sign it with ``signer``. ``keep_signatures_from`` appends the
    new signature to the signature lines of an existing note (to test that a trusted
    signature over other text is not accepted)."""
    replace = dict(replace or {})
    manifest = ReportManifest.from_bytes(embedded_bytes(pdf, "manifest.json"))
    entries = []
    for e in manifest.attachments:
        if e.name in replace:
            data = replace[e.name]
            e = type(e)(e.name, e.media_type, e.role, len(data), hashlib.sha256(data).hexdigest(), e.description)
        entries.append(e)
    forged = type(manifest)(**{**manifest.__dict__, "attachments": tuple(entries)})
    manifest_bytes = forged.to_bytes()
    note = sign_manifest(manifest_bytes, forged.report_id, signer)
    if keep_signatures_from is not None:
        text, _, new_sig = note.decode().rpartition("\n\n")
        _, _, old_sigs = keep_signatures_from.decode().rpartition("\n\n")
        note = (text + "\n\n" + old_sigs + new_sig).encode()
    replace["manifest.json"] = manifest_bytes
    replace["manifest.json.sig"] = note
    out = pdf
    for name, data in replace.items():
        out = replace_attachment(out, name, data)
    return out


def _stream(data: bytes):
    from pypdf.generic import DecodedStreamObject

    s = DecodedStreamObject()
    s.set_data(data)
    s[NameObject("/Type")] = NameObject("/EmbeddedFile")
    return s


def _text(value: str):
    from pypdf.generic import TextStringObject

    return TextStringObject(value)


def _num(value: int):
    from pypdf.generic import NumberObject

    return NumberObject(value)
