"""Errors the report engine raises on purpose. Messages say what was refused and why."""

from __future__ import annotations


class ReportError(Exception):
    """Base class for every error the report engine raises on purpose."""


class ReportModelError(ReportError, ValueError):
    """A report, section, block or attachment is malformed (wrong type, missing reference,
    reserved or duplicate name, naive datetime...). Raised when the object is built, so a
    bad report never reaches the renderer."""


class AssetRefusedError(ReportError):
    """The renderer was asked for a URL that is not one of the report's own assets.

    Rendering stops: a document whose layout depended on something we refused to fetch is
    not the document we meant to produce."""

    def __init__(self, url: str) -> None:
        shown = url if len(url) <= 200 else url[:200] + "..."
        super().__init__(f"refused to fetch {shown!r}: only the report's own assets may be loaded")
        self.url = url


class RenderError(ReportError):
    """The PDF could not be produced as specified (e.g. it would not verify)."""


class ReportInputError(ReportError):
    """The file given to the verifier is not a readable PDF."""
