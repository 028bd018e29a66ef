"""Column widths that keep every token of a table whole.

A table cell may wrap between words, never inside one: a sequence number printed as
``1367`` / ``3`` on two lines, a version as ``reco-2025w0`` / ``1`` or a heading as
``Sectio`` / ``n`` reads as something else. The stylesheet (``table.data td``) forbids
breaking inside a word (``overflow-wrap: normal``, ``hyphens: none``); this module makes
that safe by giving each column at least the width of its longest unbreakable token,
measured with the very fonts the PDF embeds (DejaVu, read with fontTools), and the rest of
the line by the columns' weights.

Only when the longest tokens of all columns together are wider than the page does a column
of prose (``ValueKind.TEXT``) give way and wrap anywhere; identifiers, digests, numbers,
timestamps and statuses never do. Tables keep long digests short (:func:`short_digest`), so
that point is not reached by the documents' own tables.

The sizes below are those of ``assets/report.css`` (tests/test_reports_widths.py reads
the stylesheet to keep the two in step).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import matplotlib
from fontTools.ttLib import TTFont

from .model import Column, ValueKind

__all__ = ["DIGEST_SHOWN", "ColumnLayout", "column_layout", "short_digest", "text_width"]

PT_PER_MM = 72 / 25.4
LINE_PT = (210 - 16 - 16) * PT_PER_MM  # A4 less the page's side margins (@page margin)
CELL_PADDING_PT = 2 * 1.2 * PT_PER_MM  # table.data td / th: padding 1.2mm left and right
BODY_PT = 7.6  # table.data font-size
MONO_PT = 7.0  # table.data td.k-digest, td.k-identifier font-size
BADGE_SCALE = 0.9  # .badge font-size: 0.9em
BADGE_LETTER_SPACING = 0.03  # .badge letter-spacing, em
BADGE_EXTRA_PT = 2 * 1.4 * PT_PER_MM + 2 * 1.4  # .badge padding 1.4mm each side, border up to 1.4pt
SAFETY = 1.04  # rounding in the layout engine; a token a hair too wide would overflow its cell
TEXT_FLOOR_PT = 36.0  # what a column of prose keeps when it must give way

DIGEST_SHOWN = 12  # hex digits of a digest a table prints; the attachment holds the full value

_MONO_KINDS = (ValueKind.IDENTIFIER, ValueKind.DIGEST)


def short_digest(text: str) -> str:
    """A digest as a table prints it: its first :data:`DIGEST_SHOWN` characters and an
    ellipsis. Enough to find the entry in the attachment, and one line at any column width."""
    return text if len(text) <= DIGEST_SHOWN + 1 else text[:DIGEST_SHOWN] + "\u2026"


# --------------------------------------------------------------------------- fonts


@dataclass(frozen=True)
class _Font:
    advances: dict[int, int]  # code point -> advance width in font units
    units_per_em: int
    missing: int  # advance of a character the font lacks (Hangul falls back to a wider font)

    def width(self, text: str, size_pt: float, letter_spacing_em: float = 0.0) -> float:
        units = sum(self.advances.get(ord(ch), self.missing) for ch in text)
        return units / self.units_per_em * size_pt + len(text) * letter_spacing_em * size_pt


@functools.lru_cache(maxsize=None)
def _font(filename: str) -> _Font:
    font = TTFont(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / filename, lazy=True)
    metrics = font["hmtx"].metrics
    advances = {cp: metrics[glyph][0] for cp, glyph in font.getBestCmap().items()}
    units = font["head"].unitsPerEm
    return _Font(advances, units, units)  # a missing glyph counted a full em: Hangul is about that wide


def text_width(text: str, *, mono: bool = False, bold: bool = False, size_pt: float = BODY_PT,
               letter_spacing_em: float = 0.0) -> float:
    """Width in points of ``text`` set on one line in the report's fonts."""
    name = ("DejaVuSansMono" if mono else "DejaVuSans") + ("-Bold" if bold else "") + ".ttf"
    return _font(name).width(text, size_pt, letter_spacing_em)


def _longest_token(text: str, **font) -> float:
    return max((text_width(t, **font) for t in text.split()), default=0.0)


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class ColumnLayout:
    widths: tuple[str, ...]  # CSS widths, in percent of the table
    may_break: tuple[bool, ...]  # a column of prose that had to give way: wraps anywhere


def _need(column: Column, cells: Sequence[tuple[str, bool]]) -> float:
    """The narrowest the column can be without breaking a token: its header's longest word
    in bold, and its cells' longest token (a badge's in the badge's bold small capitals)."""
    need = _longest_token(column.title, bold=True)
    mono = column.kind in _MONO_KINDS
    for text, is_badge in cells:
        if is_badge:
            need = max(need, _longest_token(text, bold=True, size_pt=BODY_PT * BADGE_SCALE,
                                            letter_spacing_em=BADGE_LETTER_SPACING) + BADGE_EXTRA_PT)
        else:
            need = max(need, _longest_token(text, mono=mono, size_pt=MONO_PT if mono else BODY_PT))
    return need * SAFETY + CELL_PADDING_PT


def column_layout(columns: Sequence[Column], cells: Sequence[Sequence[tuple[str, bool]]],
                  line_pt: float = LINE_PT) -> ColumnLayout:
    """Widths for ``columns`` whose rows show ``cells`` (per row, per column: the text and
    whether it is drawn as a badge). Each column gets at least its longest token; the line
    left over goes by weight to the columns whose share by weight is more than they need."""
    by_column = list(zip(*cells)) if cells else [() for _ in columns]
    needs = [_need(c, col) for c, col in zip(columns, by_column)]
    may_break = [False] * len(columns)
    # Too wide for whole tokens: prose gives way, the widest first, wrapping anywhere; what
    # must stay whole (identifiers, digests, numbers, timestamps, statuses, one-word values)
    # keeps its width.
    for i in sorted((i for i, c in enumerate(columns) if _is_prose(c, by_column[i])), key=lambda i: -needs[i]):
        over = sum(needs) - line_pt
        if over <= 0:
            break
        needs[i] = max(TEXT_FLOOR_PT, needs[i] - over)
        may_break[i] = True
    if sum(needs) > line_pt:  # still too wide: the weights decide, and every column may wrap
        total = sum(c.weight for c in columns)
        return ColumnLayout(tuple(f"{100 * c.weight / total:.3f}%" for c in columns), (True,) * len(columns))
    widths = _fill(needs, [c.weight for c in columns], line_pt)
    return ColumnLayout(tuple(f"{100 * w / line_pt:.3f}%" for w in widths), tuple(may_break))


def _is_prose(column: Column, cells: Sequence[tuple[str, bool]]) -> bool:
    """A column of sentences (reasons, summaries), which may wrap inside a word when it must;
    a column of one- or two-word values (a p-value, "still production") never does."""
    return column.kind is ValueKind.TEXT and any(len(text.split()) > 3 for text, _ in cells)


def _fill(needs: list[float], weights: list[float], line_pt: float) -> list[float]:
    """Water-filling: a column whose weighted share is less than it needs is fixed at its
    need; the others share what is left by weight, until every share covers its need."""
    fixed: dict[int, float] = {}
    while True:
        free = [i for i in range(len(needs)) if i not in fixed]
        left = line_pt - sum(fixed.values())
        total = sum(weights[i] for i in free)
        short = [i for i in free if left * weights[i] / total < needs[i]] if total > 0 else free
        if not short:
            shares = {i: left * weights[i] / total for i in free}
            return [fixed.get(i, shares.get(i, 0.0)) for i in range(len(needs))]
        for i in short:
            fixed[i] = needs[i]
        if len(fixed) == len(needs):
            spare = (line_pt - sum(fixed.values())) / len(needs)
            return [fixed[i] + spare for i in range(len(needs))]
