"""A digest of what a PDF's pages draw, so an edited page is caught, not only an edited
attachment.

The signed manifest cannot contain the hash of the file it is embedded in. What it can
contain is a hash of everything the pages *draw*: each page's content streams and every
object reachable from the page (resources such as fonts, images and form XObjects,
annotations such as links), serialised canonically. Attachments are hung on the catalog,
not on pages, so this digest is the same before and after they are added
(:func:`reports.render.render_pdf` checks that on every render) and the verifier can
recompute it from the signed file.

What it catches: text or numbers edited in a content stream, a page replaced, removed,
added or reordered, a font or image swapped, an annotation (e.g. a box drawn over a
value) added, and any of these done through an incremental update. What it does not
cover: document-level objects that draw nothing (outline, metadata, viewer
preferences), and it is not a PAdES signature of the file's bytes.

Canonical form (method ``mrm-pdf-pages/v1``), every item length-prefixed so no two
structures encode alike:

* streams are hashed on their *decoded* data, their dictionary without ``/Length``,
  ``/Filter`` and ``/DecodeParms`` (how bytes were compressed is not what they say);
* a reference to a page is written as that page's index (links point at pages; following
  them would walk the whole document once per page); ``/Parent`` is skipped;
* any other indirect object is written as the SHA-256 of its own canonical form, computed
  once per object, so shared fonts cost once and object numbers (which differ between
  two writes of the same document) never enter the digest.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pypdf import PdfReader
from pypdf.generic import (
    ArrayObject,
    BooleanObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NullObject,
    NumberObject,
    StreamObject,
)

from .errors import ReportInputError
from .manifest import PagesDigest
from .pdffiles import open_pdf

__all__ = ["PAGES_METHOD", "page_digest"]

PAGES_METHOD = "mrm-pdf-pages/v1"
_STREAM_ENCODING_KEYS = frozenset({"/Length", "/Filter", "/DecodeParms", "/DL"})
_SKIPPED_KEYS = frozenset({"/Parent"})
_MAX_DEPTH = 200


def _lp(tag: bytes, payload: bytes) -> bytes:
    return tag + len(payload).to_bytes(8, "big") + payload


class _Canonicaliser:
    def __init__(self, page_numbers: dict[tuple[int, int], int]) -> None:
        self._pages = page_numbers
        self._memo: dict[tuple[int, int], bytes] = {}
        self._active: set[tuple[int, int]] = set()

    def encode(self, obj: Any, depth: int = 0) -> bytes:
        if depth > _MAX_DEPTH:
            raise ReportInputError("PDF object graph is nested too deeply to digest")
        if isinstance(obj, IndirectObject):
            key = (obj.idnum, obj.generation)
            if key in self._pages:
                return _lp(b"p", str(self._pages[key]).encode())
            if key in self._memo:
                return self._memo[key]
            if key in self._active:  # a cycle that is not through a page: mark it, stop
                return _lp(b"c", b"")
            self._active.add(key)
            digest = hashlib.sha256(self.encode(obj.get_object(), depth + 1)).digest()
            self._active.discard(key)
            self._memo[key] = encoded = _lp(b"r", digest)
            return encoded
        if isinstance(obj, StreamObject):
            try:
                data = obj.get_data()
            except Exception as e:
                raise ReportInputError(f"a page stream cannot be decoded: {type(e).__name__}: {e}") from None
            head = self._dict(obj, depth, skip=_STREAM_ENCODING_KEYS)
            return _lp(b"S", head + hashlib.sha256(data).digest())
        if isinstance(obj, DictionaryObject):
            return self._dict(obj, depth)
        if isinstance(obj, ArrayObject):
            return _lp(b"a", b"".join(self.encode(item, depth + 1) for item in obj))
        if isinstance(obj, NameObject):
            return _lp(b"n", str(obj).encode("utf-8", "surrogatepass"))
        if isinstance(obj, BooleanObject):
            return _lp(b"b", b"1" if obj else b"0")
        if isinstance(obj, NumberObject):
            return _lp(b"i", str(int(obj)).encode())
        if isinstance(obj, FloatObject):
            return _lp(b"f", repr(float(obj)).encode())
        if isinstance(obj, NullObject) or obj is None:
            return _lp(b"z", b"")
        if isinstance(obj, bytes):  # ByteStringObject
            return _lp(b"s", bytes(obj))
        if isinstance(obj, str):  # TextStringObject: its original bytes when pypdf kept them
            original = getattr(obj, "original_bytes", None)
            return _lp(b"s", bytes(original) if original is not None else obj.encode("utf-16-be"))
        raise ReportInputError(f"unexpected PDF object {type(obj).__name__} on a page")

    def _dict(self, obj: DictionaryObject, depth: int, skip: frozenset[str] = frozenset()) -> bytes:
        parts = []
        for key in sorted(str(k) for k in obj.keys()):
            if key in skip or key in _SKIPPED_KEYS:
                continue
            parts.append(_lp(b"k", key.encode("utf-8", "surrogatepass")) + self.encode(obj.raw_get(key), depth + 1))
        return _lp(b"d", b"".join(parts))


def page_digest(source: bytes | PdfReader) -> PagesDigest:
    """The :class:`~reports.manifest.PagesDigest` of a PDF (bytes or an open reader)."""
    reader = source if isinstance(source, PdfReader) else open_pdf(source)
    pages = list(reader.pages)
    numbers: dict[tuple[int, int], int] = {}
    for index, page in enumerate(pages):
        ref = page.indirect_reference
        if ref is None:
            raise ReportInputError(f"page {index + 1} is not an indirect object")
        numbers[(ref.idnum, ref.generation)] = index
    canon = _Canonicaliser(numbers)
    h = hashlib.sha256(PAGES_METHOD.encode() + b"\n")
    for index, page in enumerate(pages):
        h.update(_lp(b"P", str(index).encode()))
        # Inherited attributes (ISO 32000 7.7.3.4) may sit on an ancestor Pages node.
        for key in ("/Resources", "/MediaBox", "/CropBox", "/Rotate"):
            if key not in page:
                inherited = _inherited(page, key)
                if inherited is not None:
                    h.update(_lp(b"k", key.encode()) + canon.encode(inherited))
        h.update(canon.encode(_PageBody(page)))
    return PagesDigest(PAGES_METHOD, len(pages), h.hexdigest())


class _PageBody(DictionaryObject):
    """The page dictionary itself (not a reference to it, which encodes as an index)."""

    def __init__(self, page: DictionaryObject) -> None:
        super().__init__()
        for key in page.keys():
            self[NameObject(str(key))] = page.raw_get(key)


def _inherited(page: DictionaryObject, key: str) -> Any:
    node = page.get("/Parent")
    for _ in range(64):
        if node is None:
            return None
        node = node.get_object()
        if key in node:
            return node.raw_get(key)
        node = node.get("/Parent")
    raise ReportInputError("page tree is nested too deeply")
