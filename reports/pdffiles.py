"""Every file embedded in a PDF, wherever it is hung.

A PDF can carry a file in the catalog's ``/EmbeddedFiles`` name tree (possibly nested
through ``/Kids``), in an ``/AF`` (associated files) array on the catalog or a page, or in
a ``/FileAttachment`` annotation on a page. pypdf's ``attachments`` reads only the first,
one level deep; a verifier that misses the others would let an attacker add evidence
unnoticed, so this module walks all of them, follows each structure at most once
(cycles and shared file specifications are de-duplicated by object number), and reports
structural oddities instead of skipping them silently.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PdfReadError, PyPdfError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NullObject, StreamObject

from .errors import ReportInputError

__all__ = ["EmbeddedFile", "EmbeddedFiles", "open_pdf", "read_embedded_files"]

_MAX_TREE_DEPTH = 32


@dataclass(frozen=True)
class EmbeddedFile:
    name: str  # /UF, else /F: what a viewer shows and an examiner extracts
    data: bytes | None = field(repr=False)  # None when the stream could not be read
    media_type: str | None  # the embedded stream's /Subtype, e.g. application/json
    relationship: str | None  # /AFRelationship
    found_in: tuple[str, ...]  # "EmbeddedFiles", "catalog AF", "page 3 AF", "page 3 annotation"
    error: str | None = None


@dataclass(frozen=True)
class EmbeddedFiles:
    files: tuple[EmbeddedFile, ...]
    problems: tuple[str, ...]  # structural oddities worth reporting

    def named(self, name: str) -> list[EmbeddedFile]:
        return [f for f in self.files if f.name == name]


def open_pdf(source: bytes | str | Path) -> PdfReader:
    """Parse a PDF, turning every parser failure into :class:`ReportInputError`."""
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except IsADirectoryError:
        raise ReportInputError(f"{source}: is a directory") from None
    if not data.startswith(b"%PDF-"):
        raise ReportInputError(f"{'the data' if isinstance(source, bytes) else source} is not a PDF (no %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        _ = reader.trailer["/Root"]
        _ = len(reader.pages)
    except (PdfReadError, PyPdfError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise ReportInputError(f"cannot parse the PDF: {e}") from None
    return reader


class _Collector:
    def __init__(self) -> None:
        self.files: dict[Any, dict[str, Any]] = {}  # identity -> fields
        self.order: list[Any] = []
        self.problems: list[str] = []

    def add(self, spec_ref: Any, where: str, tree_key: str | None = None) -> None:
        identity = (spec_ref.idnum, spec_ref.generation) if isinstance(spec_ref, IndirectObject) else ("direct", id(spec_ref))
        spec = _resolve(spec_ref)
        if isinstance(spec, (str, bytes)):  # a file specification string: an external file, never embedded
            self.problems.append(f"{where} refers to an external file {_text(spec)!r}")
            return
        if not isinstance(spec, DictionaryObject):
            self.problems.append(f"{where} holds a file specification that is not a dictionary")
            return
        if identity in self.files:
            entry = self.files[identity]
            if where not in entry["found_in"]:
                entry["found_in"].append(where)
        else:
            self.files[identity] = self._read(spec, where)
            self.order.append(identity)
        name = self.files[identity]["name"]
        if tree_key is not None and tree_key != name:
            self.problems.append(f"EmbeddedFiles lists {name!r} under the different key {tree_key!r}")

    @staticmethod
    def _read(spec: DictionaryObject, where: str) -> dict[str, Any]:
        name = spec.get("/UF", spec.get("/F"))
        name = _text(_resolve(name)) if name is not None else "(unnamed)"
        relationship = spec.get("/AFRelationship")
        entry: dict[str, Any] = {
            "name": name,
            "data": None,
            "media_type": None,
            "relationship": str(relationship)[1:] if relationship is not None else None,
            "found_in": [where],
            "error": None,
        }
        ef = _resolve(spec.get("/EF"))
        stream = None
        if isinstance(ef, DictionaryObject):
            stream = _resolve(ef.get("/UF", ef.get("/F")))
        if not isinstance(stream, StreamObject):
            entry["error"] = "the file specification has no embedded file stream"
            return entry
        subtype = stream.get("/Subtype")
        if subtype is not None:
            entry["media_type"] = str(subtype)[1:]
        try:
            entry["data"] = stream.get_data()
        except Exception as e:  # a corrupt filter or truncated stream: report, do not crash
            entry["error"] = f"the embedded stream cannot be decoded: {type(e).__name__}: {e}"
        return entry

    def result(self) -> EmbeddedFiles:
        files = tuple(
            EmbeddedFile(
                name=e["name"], data=e["data"], media_type=e["media_type"], relationship=e["relationship"],
                found_in=tuple(e["found_in"]), error=e["error"],
            )
            for e in (self.files[i] for i in self.order)
        )
        return EmbeddedFiles(files, tuple(self.problems))


def read_embedded_files(source: bytes | str | Path | PdfReader) -> EmbeddedFiles:
    reader = source if isinstance(source, PdfReader) else open_pdf(source)
    collector = _Collector()
    try:
        root = _resolve(reader.trailer["/Root"])
        names = _resolve(root.get("/Names")) if isinstance(root, DictionaryObject) else None
        if isinstance(names, DictionaryObject) and "/EmbeddedFiles" in names:
            _walk_name_tree(names["/EmbeddedFiles"], collector, set(), 0)
        if isinstance(root, DictionaryObject):
            _add_af(root.get("/AF"), "catalog AF", collector)
        for number, page in enumerate(reader.pages, 1):
            _add_af(page.get("/AF"), f"page {number} AF", collector)
            annots = _resolve(page.get("/Annots"))
            if isinstance(annots, ArrayObject):
                for annot in annots:
                    annot = _resolve(annot)
                    if isinstance(annot, DictionaryObject) and annot.get("/Subtype") == "/FileAttachment" and "/FS" in annot:
                        collector.add(annot.raw_get("/FS"), f"page {number} annotation")
    except (PdfReadError, PyPdfError, RecursionError) as e:
        raise ReportInputError(f"cannot read the PDF's embedded files: {e}") from None
    return collector.result()


def _walk_name_tree(node_ref: Any, collector: _Collector, seen: set, depth: int) -> None:
    if depth > _MAX_TREE_DEPTH:
        collector.problems.append("EmbeddedFiles name tree is deeper than 32 levels; stopped there")
        return
    if isinstance(node_ref, IndirectObject):
        key = (node_ref.idnum, node_ref.generation)
        if key in seen:
            collector.problems.append("EmbeddedFiles name tree contains a loop")
            return
        seen.add(key)
    node = _resolve(node_ref)
    if not isinstance(node, DictionaryObject):
        collector.problems.append("EmbeddedFiles name tree node is not a dictionary")
        return
    pairs = _resolve(node.get("/Names"))
    if isinstance(pairs, ArrayObject):
        if len(pairs) % 2:
            collector.problems.append("EmbeddedFiles name tree has an odd-length /Names array")
        for i in range(0, len(pairs) - 1, 2):
            key = _resolve(pairs[i])
            collector.add(pairs[i + 1], "EmbeddedFiles", tree_key=_text(key))
    kids = _resolve(node.get("/Kids"))
    if isinstance(kids, ArrayObject):
        for kid in kids:
            _walk_name_tree(kid, collector, seen, depth + 1)


def _add_af(af: Any, where: str, collector: _Collector) -> None:
    af = _resolve(af)
    if af is None or isinstance(af, NullObject):
        return
    if not isinstance(af, ArrayObject):
        collector.problems.append(f"{where} is not an array")
        return
    for spec in af:
        collector.add(spec, where)


def _text(obj: Any) -> str:
    """A PDF string as text; byte strings that are not text are shown as Latin-1."""
    if isinstance(obj, bytes):  # pypdf's ByteStringObject: not decodable as text
        return obj.decode("latin-1")
    return str(obj)


def _resolve(obj: Any) -> Any:
    return obj.get_object() if isinstance(obj, IndirectObject) else obj
