"""Charts are vector, reproducible byte for byte, and inert."""

from __future__ import annotations

import datetime as dt
import re

import matplotlib
import pytest

from reports import ReportModelError, Series, Threshold, bar_chart, line_chart

UTC = dt.timezone.utc
DAYS = [dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(days=7 * i) for i in range(12)]


def psi_chart(label: str = "assets") -> bytes:
    return line_chart([Series(label, DAYS, [0.05 + 0.02 * i for i in range(12)]), Series("income", DAYS, [0.04] * 12)],
                      title="PSI", y_label="PSI", thresholds=[Threshold(0.1, "watch"), Threshold(0.25, "alert")], step=True)


def test_same_input_same_bytes_and_no_clock_in_the_output():
    first = psi_chart()
    with matplotlib.rc_context({"svg.hashsalt": None}):  # the caller's settings do not leak in
        assert psi_chart() == first
    assert bar_chart(["a", "b"], {"x": [1, 2], "y": [2, 1]}) == bar_chart(["a", "b"], {"x": [1, 2], "y": [2, 1]})
    assert b"<dc:date>" not in first and b"Matplotlib v" not in first
    assert str(dt.date.today().year).encode() + b"-" not in first.split(b"</metadata>")[0]


def test_charts_are_vector_svg_with_text_as_paths():
    svg = psi_chart()
    assert svg.startswith(b"<?xml") and b"<svg" in svg
    assert b"<image" not in svg  # nothing rasterised
    assert b"<text" not in svg  # glyphs are paths: the renderer's fonts cannot change them
    assert not re.search(rb'(?:href|src)="(?!#)', svg)  # only internal references


def test_labels_from_the_ledger_are_text_not_mathtext():
    # With mathtext on, this label raises a parse error; ledger values must just print.
    label = "fee $\\bogus{ <b>bold</b> & co -- $"
    svg = line_chart([Series(label, [1, 2], [1.0, 2.0]), Series("b", [1, 2], [2.0, 1.0])], title=label)
    assert svg.startswith(b"<?xml") and b"<b>" not in svg


def test_bad_series_are_refused():
    with pytest.raises(ReportModelError, match="naive datetime"):
        Series("x", [dt.datetime(2026, 1, 1)], [1.0])
    with pytest.raises(ReportModelError, match="2 x values but 1 y"):
        Series("x", [1, 2], [1.0])
    with pytest.raises(ReportModelError, match="finite"):
        Series("x", [1], [float("inf")])
    with pytest.raises(ReportModelError, match="all numbers"):
        line_chart([Series("a", DAYS[:1], [1.0]), Series("b", [1], [1.0])])
    with pytest.raises(ReportModelError, match="categories"):
        bar_chart(["a"], [1, 2])
