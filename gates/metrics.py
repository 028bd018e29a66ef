"""Per-sample metric functions the gate can recompute from a holdout.

Every function takes ``(labels, scores, threshold)`` as float arrays and returns a plain
Python float, so a bootstrap can call any of them the same way and the result never carries a
numpy scalar into a ledger entry (numpy types once made the audit writer drop entries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np


MetricFn = Callable[[np.ndarray, np.ndarray, float], float]

HIGHER = "higher"
LOWER = "lower"

# log loss clips probabilities away from 0 and 1; the same constant as scikit-learn's
# historical default, so a producer using sklearn reports the same number.
_LOG_LOSS_EPS = 1e-15





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
