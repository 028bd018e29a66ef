"""Per-sample metric functions the gate can recompute from a holdout.

Every function takes ``(labels, scores, threshold)`` as float arrays and returns a plain
Python float, so a bootstrap can call any of them the same way and the result never carries a
numpy scalar into a ledger entry (numpy types once made the audit writer drop entries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ledger.errors import InputError
from ledger.numbers import finite_float


MetricFn = Callable[[np.ndarray, np.ndarray, float], float]

HIGHER = "higher"
LOWER = "lower"

# log loss clips probabilities away from 0 and 1; the same constant as scikit-learn's
# historical default, so a producer using sklearn reports the same number.
_LOG_LOSS_EPS = 1e-15


@dataclass(frozen=True)
class MetricRange:
    """The values a metric can take at all; a value outside is an input error, not a
    verdict (an AUC of -0.3 is a broken producer, not a bad model)."""

    what: str  # how the message names it
    low: float | None = None
    high: float | None = None


UNIT_INTERVAL = (0.0, 1.0)
NON_NEGATIVE = (0.0, None)

# By name, for evaluation files (metrics, fidelity, guardrails), policies (guardrail bounds,
# the SLO floor) and recorded outcome values. A name not listed is only required finite,
# unless its suffix says what it is (see :func:`metric_range`).
METRIC_RANGES: Mapping[str, MetricRange] = {
    "auc": MetricRange("AUC", *UNIT_INTERVAL),
    "accuracy": MetricRange("accuracy", *UNIT_INTERVAL),
    "brier": MetricRange("the Brier score", *UNIT_INTERVAL),
    "calibration_error": MetricRange("a calibration error", *UNIT_INTERVAL),
    "log_loss": MetricRange("log loss", *NON_NEGATIVE),
    "mae": MetricRange("a mean absolute error", *NON_NEGATIVE),
    "rmse": MetricRange("a root mean squared error", *NON_NEGATIVE),
    "kl": MetricRange("a KL divergence", *NON_NEGATIVE),
    "psi": MetricRange("a PSI", *NON_NEGATIVE),
    "disparate_impact": MetricRange("a disparate impact ratio", *NON_NEGATIVE),
    "latency_ms": MetricRange("a latency", *NON_NEGATIVE),
    "p99_latency_ms": MetricRange("a latency", *NON_NEGATIVE),
}
_SUFFIX_RANGES = (("_rate", MetricRange("a rate", *UNIT_INTERVAL)), ("_ms", MetricRange("a duration", *NON_NEGATIVE)))


def metric_range(name: str) -> MetricRange | None:
    """The range of the metric called ``name``: listed, or by suffix (``*_rate`` in [0, 1],
    ``*_ms`` at least 0); None when nothing is known beyond "a finite number"."""
    known = METRIC_RANGES.get(name)
    if known is not None:
        return known
    return next((r for suffix, r in _SUFFIX_RANGES if name.endswith(suffix)), None)


def scipy_stats():
    """scipy.stats, imported on first use: it takes most of a second to import, and every
    `mrm` command would pay for it otherwise."""
    from scipy import stats

    return stats


def _binary(labels: np.ndarray) -> np.ndarray:
    positive = labels == 1
    if not np.all(positive | (labels == 0)):
        raise ValueError("labels must be 0 or 1 for this metric")
    return positive


def auc(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """ROC AUC by midranks (Mann-Whitney): ties count one half, as in pROC and scikit-learn."""
    positive = _binary(labels)
    m = int(positive.sum())
    n = len(labels) - m
    if m == 0 or n == 0:
        raise ValueError("AUC needs at least one positive and one negative label")
    ranks = scipy_stats().rankdata(scores, method="average")
    return float((ranks[positive].sum() - m * (m + 1) / 2.0) / (m * n))


def accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """Share of samples whose thresholded score (score >= threshold) equals the label."""
    return float(np.mean(correct(labels, scores, threshold)))


def correct(labels: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Per-sample correctness of the decision ``score >= threshold`` (what McNemar pairs)."""
    positive = _binary(labels)
    return (scores >= threshold) == positive


def log_loss(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    positive = _binary(labels)
    p = np.clip(scores, _LOG_LOSS_EPS, 1.0 - _LOG_LOSS_EPS)
    return float(-np.mean(np.where(positive, np.log(p), np.log1p(-p))))


def brier(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    return float(np.mean((scores - labels) ** 2))


def mae(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    return float(np.mean(np.abs(scores - labels)))


def rmse(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    return float(np.sqrt(np.mean((scores - labels) ** 2)))


@dataclass(frozen=True)
class MetricSpec:
    name: str
    direction: str  # "higher" or "lower" is better
    fn: MetricFn
    binary_labels: bool  # needs 0/1 labels (and so a stratified bootstrap keeps both classes)
    uses_threshold: bool = False  # depends on the model's decision threshold


KNOWN_METRICS: Mapping[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("auc", HIGHER, auc, True),
        MetricSpec("accuracy", HIGHER, accuracy, True, uses_threshold=True),
        MetricSpec("log_loss", LOWER, log_loss, True),
        MetricSpec("brier", LOWER, brier, True),
        MetricSpec("mae", LOWER, mae, False),
        MetricSpec("rmse", LOWER, rmse, False),
    )
}


def metric_value(name: str, value: object, where: str, *, error: type[Exception] = InputError) -> float:
    """A value of the metric ``name`` read at ``where``: finite and inside its range."""
    r = metric_range(name)
    if r is None:
        return finite_float(value, where, error=error)
    return finite_float(value, where, r.low, r.high, what=r.what, error=error)
