"""Charts for reports: matplotlib, drawn as SVG, byte-for-byte reproducible.

The same input gives the same bytes, so the same report gives the same PDF:

* ``svg.hashsalt`` is fixed (clip-path and glyph ids are otherwise random per run);
* the ``Date`` and ``Creator`` metadata are dropped (no clock, no matplotlib version);
* text is drawn as paths (``svg.fonttype = path``) with matplotlib's bundled DejaVu Sans,
  so neither the renderer nor the machine's fonts change a glyph;
* ``text.parse_math`` is off: a label taken from the ledger that contains ``$`` is text,
  not a mathtext expression that could fail to parse;
* the figure object is private to each call (no pyplot global state), so charts can be
  drawn from several threads.

Every series uses a line style and marker as well as a colour (Okabe-Ito palette) and
bars use hatching, so charts still read printed in greyscale. Threshold lines are dashed,
black, and labelled with their value.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import math
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence, Union

import matplotlib
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG  # no pyplot: no GUI backend, no global figures
from matplotlib.figure import Figure

from .errors import ReportModelError

__all__ = ["Series", "Threshold", "line_chart", "bar_chart", "CHART_RC"]

# Okabe & Ito (2008): distinguishable with the common colour-vision deficiencies.
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_LINE_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_HATCHES = ("", "//", "..", "xx", "\\\\", "++", "--")
# Thresholds are black and use dash patterns no data series uses, one per threshold.
_THRESHOLD_DASHES = ((0, (1, 1.2)), (0, (7, 2, 1.5, 2)), (0, (3, 1.5, 1, 1.5, 1, 1.5)), (0, (10, 3)))

CHART_RC: dict[str, object] = {
    "svg.hashsalt": "mrm-ledger-report-chart",
    "svg.fonttype": "path",
    "svg.image_inline": True,
    "text.parse_math": False,
    "font.family": "DejaVu Sans",
    "font.size": 8.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 8.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#cccccc",
    "grid.linewidth": 0.5,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "timezone": "UTC",
    "path.simplify": True,
    "svg.id": "mrm-chart",
}
_SVG_METADATA = {"Date": None, "Creator": None}

Number = Union[int, float]
XValue = Union[dt.datetime, int, float]


@dataclass(frozen=True)
class Series:
    """One line: x values (timezone-aware datetimes or numbers) and y values. NaN in y
    leaves a gap."""

    label: str
    x: Sequence[XValue]
    y: Sequence[Number]

    def __post_init__(self) -> None:
        x, y = tuple(self.x), tuple(self.y)
        if len(x) != len(y):
            raise ReportModelError(f"series {self.label!r}: {len(x)} x values but {len(y)} y values")
        kinds = {isinstance(v, dt.datetime) for v in x}
        if len(kinds) > 1:
            raise ReportModelError(f"series {self.label!r}: x mixes datetimes and numbers")
        for v in x:
            if isinstance(v, dt.datetime) and (v.tzinfo is None or v.utcoffset() is None):
                raise ReportModelError(f"series {self.label!r}: naive datetime {v.isoformat()}; give a timezone")
            if not isinstance(v, dt.datetime) and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ReportModelError(f"series {self.label!r}: x value {v!r} is not a datetime or number")
        for v in y:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isinf(v):
                raise ReportModelError(f"series {self.label!r}: y value {v!r} is not a finite number (NaN marks a gap)")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    @property
    def is_time(self) -> bool:
        return bool(self.x) and isinstance(self.x[0], dt.datetime)


@dataclass(frozen=True)
class Threshold:
    """A horizontal limit line, e.g. PSI 0.25 or a fidelity floor."""

    value: float
    label: str

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or not math.isfinite(self.value):
            raise ReportModelError(f"threshold {self.label!r}: value must be a finite number")


def line_chart(
    series: Sequence[Series],
    *,
    title: str = "",
    y_label: str = "",
    x_label: str = "",
    thresholds: Sequence[Threshold] = (),
    step: bool = False,
    size: tuple[float, float] = (6.5, 2.6),
) -> bytes:
    """A line chart (``step=True``: values hold until the next point, as for a metric
    sampled per window or a deployed model version) as SVG bytes."""
    series = tuple(series)
    if not series:
        raise ReportModelError("a line chart needs at least one series")
    if len({s.is_time for s in series if s.x}) > 1:
        raise ReportModelError("all series of a chart must have datetime x values, or all numbers")
    with _chart(size) as (figure, axes):
        _draw_lines(axes, series, step)
        _thresholds(axes, thresholds)
        _labels(axes, title, x_label, y_label, legend=len(series) > 1 or bool(thresholds))
        return _svg(figure)


def _draw_lines(axes, series: tuple[Series, ...], step: bool) -> None:
    for i, s in enumerate(series):
        x = [v.astimezone(dt.timezone.utc) for v in s.x] if s.is_time else list(s.x)
        style = dict(
            label=s.label,
            color=_COLOURS[i % len(_COLOURS)],
            linestyle=_LINE_STYLES[i % len(_LINE_STYLES)],
            marker=_MARKERS[i % len(_MARKERS)],
            markersize=3 if len(x) <= 60 else 0,
            linewidth=1.2,
        )
        if step:
            axes.step(x, list(s.y), where="post", **style)
        else:
            axes.plot(x, list(s.y), **style)
    if any(s.is_time for s in series):
        locator = mdates.AutoDateLocator(tz=dt.timezone.utc)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=dt.timezone.utc))


def bar_chart(
    categories: Sequence[str],
    values: Sequence[Number] | Mapping[str, Sequence[Number]],
    *,
    title: str = "",
    y_label: str = "",
    thresholds: Sequence[Threshold] = (),
    size: tuple[float, float] = (6.5, 2.6),
) -> bytes:
    """Bars per category; ``values`` is one sequence, or ``{series label: sequence}`` for
    grouped bars (each group hatched differently)."""
    categories = [str(c) for c in categories]
    groups = dict(values) if isinstance(values, Mapping) else {"": values}
    if not categories or not groups:
        raise ReportModelError("a bar chart needs categories and values")
    for label, vals in groups.items():
        if len(vals) != len(categories):
            raise ReportModelError(f"bar series {label!r}: {len(vals)} values for {len(categories)} categories")
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ReportModelError(f"bar series {label!r}: value {v!r} is not a finite number")
    long_names = max(map(len, categories)) > 10
    with _chart(size) as (figure, axes):
        width = 0.8 / len(groups)
        for i, (label, vals) in enumerate(groups.items()):
            positions = [c + (i - (len(groups) - 1) / 2) * width for c in range(len(categories))]
            axes.bar(
                positions,
                list(vals),
                width=width,
                label=label or None,
                color=_COLOURS[i % len(_COLOURS)],
                hatch=_HATCHES[i % len(_HATCHES)],
                edgecolor="black",
                linewidth=0.5,
            )
        axes.set_xticks(range(len(categories)), categories, rotation=30 if long_names else 0, ha="right" if long_names else "center")
        axes.grid(axis="x", visible=False)
        _thresholds(axes, thresholds)
        _labels(axes, title, "", y_label, legend=len(groups) > 1 or bool(thresholds))
        return _svg(figure)


# --------------------------------------------------------------------------- internals


@contextlib.contextmanager
def _chart(size: tuple[float, float]) -> Iterator[tuple[Figure, Axes]]:
    """A private figure with one axes, drawn and saved under :data:`CHART_RC` (styles are
    read when artists are created and when the SVG is written, so the context spans both)."""
    with matplotlib.rc_context(CHART_RC):
        figure = Figure(figsize=size, layout="constrained")
        FigureCanvasSVG(figure)
        yield figure, figure.add_subplot()


def _thresholds(axes, thresholds: Sequence[Threshold]) -> None:
    for i, t in enumerate(thresholds):
        dashes = _THRESHOLD_DASHES[i % len(_THRESHOLD_DASHES)]
        axes.axhline(t.value, color="black", linestyle=dashes, linewidth=1.0, label=f"{t.label} ({t.value:g})")


def _labels(axes, title: str, x_label: str, y_label: str, *, legend: bool) -> None:
    if title:
        axes.set_title(title, loc="left")
    if x_label:
        axes.set_xlabel(x_label)
    if y_label:
        axes.set_ylabel(y_label)
    if legend:  # beside the plot, never over the data
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _svg(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata=_SVG_METADATA)
    return buffer.getvalue()
