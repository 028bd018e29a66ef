"""reports/widths.py: columns at least as wide as their longest token, in the fonts and sizes
the stylesheet sets."""

from __future__ import annotations

import re
from importlib import resources

from reports import widths
from reports.model import Column, ValueKind


def _css() -> str:
    return resources.files("reports").joinpath("assets/report.css").read_text()


def test_the_sizes_measured_are_the_stylesheets():
    css = _css()
    assert re.search(r"table\.data \{[^}]*font-size: 7\.6pt", css) and widths.BODY_PT == 7.6
    assert "table.data td.k-digest, table.data td.k-identifier { font-size: 7pt; }" in css and widths.MONO_PT == 7.0
    assert "padding: 0.7mm 1.2mm" in css and "margin: 24mm 16mm 20mm 16mm" in css
    assert "table.data th, table.data td { overflow-wrap: normal; word-break: normal; hyphens: none; }" in css


def _points(layout, i: int) -> float:
    return float(layout.widths[i].rstrip("%")) / 100 * widths.LINE_PT


def test_a_narrow_weight_still_gets_its_longest_token():
    columns = (Column("Seq", ValueKind.IDENTIFIER, weight=0.1), Column("Reason", ValueKind.TEXT, weight=10))
    layout = widths.column_layout(columns, [[("1367123", False), ("a short reason", False)]])
    need = widths.text_width("1367123", mono=True, size_pt=widths.MONO_PT)
    assert _points(layout, 0) >= need + widths.CELL_PADDING_PT
    assert layout.may_break == (False, False)


def test_only_prose_gives_way_when_the_tokens_do_not_fit():
    long_id = "x" * 40
    columns = (Column("Id", ValueKind.IDENTIFIER), Column("Other id", ValueKind.IDENTIFIER),
               Column("Why", ValueKind.TEXT))
    cells = [[(long_id, False), (long_id, False), ("one two three " + "y" * 80, False)]]
    layout = widths.column_layout(columns, cells)
    assert layout.may_break == (False, False, True)
    assert _points(layout, 0) >= widths.text_width(long_id, mono=True, size_pt=widths.MONO_PT)


def test_short_digest_keeps_twelve_digits():
    assert widths.short_digest("ab" * 32) == "abababababab\u2026"
    assert widths.short_digest("abc") == "abc"
