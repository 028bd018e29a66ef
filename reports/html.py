"""From a :class:`~reports.model.Report` to the HTML WeasyPrint lays out.

Two rules keep ledger values inert:

* the Jinja environment autoescapes **every** template (``autoescape=True``, not a
  file-extension guess), and no template marks a value safe: tests scan the templates for
  ``|safe`` and ``Markup``;
* values never go into CSS, URLs or attributes other than ``class``/``id`` values we
  compute ourselves. The running header gets the report id and title through
  ``string-set: ... content()`` from escaped text on the cover, not by writing them into
  a stylesheet.

Python prepares a small view model (heading numbers, anchors, formatted cells) so the
template only arranges text.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Sequence

import jinja2

from .fetcher import asset_url
from .model import (
    Attachment,
    Block,
    CodeBlock,
    Column,
    Figure,
    KeyValue,
    KeyValues,
    Paragraph,
    Report,
    Section,
    Status,
    StatusBadge,
    Table,
    ValueKind,
)
from .widths import column_layout, short_digest
from .values import NULL_TEXT, format_timestamp, format_value, status_of, visible_text

__all__ = ["render_html", "template_environment", "figure_path", "SignerInfo"]


def template_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,  # for every template, whatever its name
        undefined=jinja2.StrictUndefined,  # a missing field is a bug, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["visible"] = visible_text
    return env


_ENV = template_environment()


def figure_path(index: int) -> str:
    """The asset path of the report's ``index``-th figure (1-based)."""
    return f"figures/{index}.svg"


@dataclass(frozen=True)
class SignerInfo:
    """What the cover says about the key that signs the manifest (public facts only)."""

    name: str
    key_id: str  # 8 hex digits
    signs_checkpoints: bool = True  # the ledger's own key, or a report author's (an examiner's)

    @property
    def label(self) -> str:
        return f"{self.name}+{self.key_id}"


# --------------------------------------------------------------------------- view model


@dataclass(frozen=True)
class CellView:
    text: str
    css: str
    badge: StatusBadge | None = None


@dataclass(frozen=True)
class BlockView:
    type: str  # paragraph | keyvalues | badge | table | code | figure
    block: Block
    number: int = 0  # table or figure number
    anchor: str = ""
    rows: tuple[tuple[CellView, ...], ...] = ()
    widths: tuple[str, ...] = ()
    breaks: tuple[bool, ...] = ()  # per column: prose that may wrap anywhere (the table is too wide otherwise)
    url: str = ""


@dataclass(frozen=True)
class SectionView:
    number: str
    anchor: str
    level: int
    title: str
    blocks: tuple[BlockView, ...]
    subsections: tuple["SectionView", ...]


def _cell(value, kind: ValueKind, column: Column | None = None, zone: dt.tzinfo | None = None) -> CellView:
    css = f"k-{kind.value}"
    if value is None:
        return CellView(NULL_TEXT, css + " null")
    badge = status_of(value) if kind is ValueKind.STATUS else None
    return CellView(format_value(value, kind, column, zone), css, badge)


def _table_cell(value, column: Column, shorten_digest: bool, zone: dt.tzinfo | None) -> CellView:
    view = _cell(value, column.kind, column, zone)
    if shorten_digest and column.kind is ValueKind.DIGEST and value is not None:
        return CellView(short_digest(view.text), view.css, view.badge)
    return view


def _measured(view: CellView) -> tuple[str, bool]:
    """What a cell draws, for its column's width: a badge's detail is measured as badge text,
    a little wider than it is drawn."""
    if view.badge is not None and view.badge.detail:
        return f"{view.text} {visible_text(view.badge.detail)}", True
    return view.text, view.badge is not None


def _breakable(view: CellView) -> CellView:
    """A cell of prose in a table too wide for whole words: it may wrap anywhere."""
    return CellView(view.text, view.css + " may-break", view.badge)


def _key_value(item: KeyValue, zone: dt.tzinfo | None = None) -> CellView:
    assert item.kind is not None
    return _cell(item.value, item.kind, zone=zone)


class _Numbering:
    def __init__(self, zone: dt.tzinfo | None = None) -> None:
        self.tables = 0
        self.figures = 0
        self.zone = zone  # the report's local time zone, shown next to UTC


def _block_view(block: Block, counter: _Numbering) -> BlockView:
    if isinstance(block, Paragraph):
        return BlockView("paragraph", block)
    if isinstance(block, KeyValues):
        return BlockView("keyvalues", block, rows=tuple((_key_value(i, counter.zone),) for i in block.items))
    if isinstance(block, StatusBadge):
        return BlockView("badge", block)
    if isinstance(block, Table):
        counter.tables += 1
        # A digest in a table is shortened when an attachment holds the full value.
        shorten = block.source_attachment is not None
        rows = tuple(tuple(_table_cell(v, c, shorten, counter.zone) for v, c in zip(row, block.columns)) for row in block.rows)
        layout = column_layout(block.columns, [[_measured(c) for c in row] for row in rows])
        rows = tuple(tuple(_breakable(c) if may else c for c, may in zip(row, layout.may_break)) for row in rows)
        return BlockView("table", block, number=counter.tables, anchor=f"tbl-{counter.tables}", rows=rows,
                         widths=layout.widths, breaks=layout.may_break)
    if isinstance(block, CodeBlock):
        return BlockView("code", block)
    if isinstance(block, Figure):
        counter.figures += 1
        return BlockView("figure", block, number=counter.figures, anchor=f"fig-{counter.figures}",
                         url=asset_url(figure_path(counter.figures)))
    raise TypeError(f"not a block: {type(block).__name__}")  # pragma: no cover - model refuses these


def _section_views(sections: Sequence[Section], prefix: str, level: int, counter: _Numbering) -> tuple[SectionView, ...]:
    views = []
    for i, section in enumerate(sections, 1):
        number = f"{prefix}{i}"
        views.append(
            SectionView(
                number=number,
                anchor="sec-" + number.replace(".", "-"),
                level=level,
                title=section.title,
                blocks=tuple(_block_view(b, counter) for b in section.blocks),
                subsections=_section_views(section.subsections, number + ".", level + 1, counter),
            )
        )
    return tuple(views)


def _flatten(views: Sequence[SectionView]) -> list[SectionView]:
    out: list[SectionView] = []
    for v in views:
        out.append(v)
        out.extend(_flatten(v.subsections))
    return out


@dataclass(frozen=True)
class AttachmentView:
    name: str
    media_type: str
    role: str
    size: str
    sha256: str
    description: str


def _attachment_views(attachments: Sequence[Attachment]) -> list[AttachmentView]:
    return [
        AttachmentView(a.name, a.media_type, a.role.value, f"{len(a.data):,}", hashlib.sha256(a.data).hexdigest(), a.description)
        for a in attachments
    ]


# --------------------------------------------------------------------------- entry point


def render_html(report: Report, *, signer: SignerInfo | None, created: dt.datetime) -> str:
    """The report as an HTML document whose only external references are ``mrm-asset:``
    URLs: the stylesheet (which loads the fonts) and one SVG per figure, in order."""
    meta = report.meta
    zone = meta.zone
    counter = _Numbering(zone)
    sections = _section_views(report.sections, "", 1, counter)
    failed = meta.verification.status is Status.FAIL
    return _ENV.get_template("report.html").render(
        meta=meta,
        # A failed verification is repeated in every page's running header, not only on the cover.
        kind_label=meta.kind.value.capitalize() + " report" + (" — VERIFICATION FAILED" if failed else ""),
        failed=failed,
        sections=sections,
        toc=_flatten(sections),
        attachments=_attachment_views(report.attachments),
        signer=signer,
        created=format_timestamp(created, zone=zone),
        created_w3c=format_timestamp(created.replace(microsecond=0), sep="T"),
        period_start=format_timestamp(meta.period.start, zone=zone),
        period_end=format_timestamp(meta.period.end, zone=zone),
        generated_at=format_timestamp(meta.generated_at, zone=zone),
        checkpoint_root_b64=base64.b64encode(meta.checkpoint.root).decode("ascii"),
        checkpoint_root_hex=meta.checkpoint.root.hex(),
        verification_badge=StatusBadge(meta.verification.status),
        verification_facts=[(f.key, _key_value(f, zone)) for f in meta.verification.facts],
        stylesheet=asset_url("report.css"),
    )
