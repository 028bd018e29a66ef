"""Significance tests for champion/challenger comparisons.

Offline tests are *paired*: both models scored the same frozen holdout, sample by sample, so
each test uses the per-sample predictions (the old gate never received them, and its test never
ran). Every test is two-sided, orients its statistic as challenger minus champion, enforces a
minimum sample size, and returns a :class:`TestResult` of plain Python values.

- :func:`delong_test`: correlated ROC AUCs, DeLong et al. (1988) in the O(n log n) midrank
  form of Sun & Xu (2014), checked against pROC's ``roc.test`` in the tests.
- :func:`mcnemar_exact`: accuracy; exact binomial test on the discordant pairs.
- :func:`paired_bootstrap`: any other metric; seeded paired resampling, seed recorded.
- :func:`welch_test`: online per-request metrics from two independent traffic arms.
- :func:`holm`: Holm's step-down adjustment across tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from gates.metrics import MetricFn, scipy_stats

DELONG = "delong"
MCNEMAR = "mcnemar"
PAIRED_BOOTSTRAP = "paired_bootstrap"
WELCH = "welch"
TESTS = (DELONG, MCNEMAR, PAIRED_BOOTSTRAP, WELCH)
OFFLINE_TESTS = (DELONG, MCNEMAR, PAIRED_BOOTSTRAP)



class InsufficientSample(ValueError):
    """Too few samples for the test to mean anything; the gate treats it as a failed check."""


@dataclass(frozen=True)
class TestResult:
    metric: str
    test: str
    statistic: float | None  # None only when the variance of the difference is exactly zero
    p_value: float
    n: int
    champion: float  # the metric's estimate for each model
    challenger: float
    seed: int | None = None
    resamples: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    __test__ = False  # a dataclass named Test* is not a pytest test class

    @property
    def difference(self) -> float:
        return self.challenger - self.champion

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "n": self.n,
            "champion": self.champion,
            "challenger": self.challenger,
            "seed": self.seed,
            "resamples": self.resamples,
            "extra": dict(self.extra),
        }


def _require(n: int, min_samples: int, what: str) -> None:
    if n < min_samples:
        raise InsufficientSample(f"{what}: {n} samples, the policy requires at least {min_samples}")


def _paired_arrays(*arrays: Sequence[float]) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=float) for a in arrays]
    n = len(out[0])
    for a in out:
        if a.ndim != 1 or len(a) != n:
            raise ValueError("paired inputs must be one-dimensional and of equal length")
        if not np.all(np.isfinite(a)):
            raise ValueError("paired inputs must be finite numbers (no NaN or infinity)")
    return out


def _two_sided_normal_p(z: float) -> float:
    return float(2.0 * scipy_stats().norm.sf(abs(z)))


# --- DeLong -------------------------------------------------------------------------------


def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components from midranks (Sun & Xu 2014, Algorithm 1).

    V10[i] is the share of negatives a positive outranks (ties one half); V01[j] the share of
    positives that outrank a negative. Three sorts replace the m*n comparison matrix.
    """
    m, n = len(pos), len(neg)
    tx = scipy_stats().rankdata(pos, method="average")
    ty = scipy_stats().rankdata(neg, method="average")
    tz = scipy_stats().rankdata(np.concatenate([pos, neg]), method="average")
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    return float(auc), v10, v01


def delong_test(
    labels: Sequence[float],
    champion_scores: Sequence[float],
    challenger_scores: Sequence[float],
    *,
    metric: str = "auc",
    min_samples: int = 1,
) -> TestResult:
    """DeLong's test for two correlated AUCs on the same samples; z = (AUC_chal - AUC_champ)/sd."""
    y, a, b = _paired_arrays(labels, champion_scores, challenger_scores)
    _require(len(y), min_samples, f"DeLong test on {metric}")
    positive = y == 1
    if not np.all(positive | (y == 0)):
        raise ValueError("DeLong test needs 0/1 labels")
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        raise InsufficientSample(
            f"DeLong test on {metric}: needs at least 2 positives and 2 negatives, got {m} and {n}"
        )
    auc_a, v10_a, v01_a = _placements(a[positive], a[~positive])
    auc_b, v10_b, v01_b = _placements(b[positive], b[~positive])
    s10 = np.cov(np.vstack([v10_a, v10_b]))  # ddof=1, as DeLong (1988) and pROC
    s01 = np.cov(np.vstack([v01_a, v01_b]))
    s = s10 / m + s01 / n
    var = float(s[0, 0] + s[1, 1] - 2.0 * s[0, 1])
    diff = auc_b - auc_a
    extra = {"positives": m, "negatives": n, "variance": max(var, 0.0)}
    if var <= 1e-300:
        # Identical rankings (or two perfect/constant scorers): no sampling variability.
        # Equal AUCs -> nothing to detect (pROC reports Z=0, p=1); unequal -> certain.
        if diff == 0.0:
            return TestResult(metric, DELONG, 0.0, 1.0, len(y), auc_a, auc_b, extra=extra)
        return TestResult(metric, DELONG, None, 0.0, len(y), auc_a, auc_b, extra=extra)
    z = diff / math.sqrt(var)
    return TestResult(metric, DELONG, float(z), _two_sided_normal_p(z), len(y), auc_a, auc_b, extra=extra)


# --- McNemar ------------------------------------------------------------------------------


def mcnemar_exact(
    champion_correct: Sequence[bool],
    challenger_correct: Sequence[bool],
    *,
    metric: str = "accuracy",
    min_samples: int = 1,
) -> TestResult:
    """Exact (conditional) McNemar test on paired correctness.

    Only discordant pairs carry information: b = champion right and challenger wrong,
    c = champion wrong and challenger right. Under H0, c ~ Binomial(b + c, 1/2); the two-sided
    exact p-value comes from scipy.stats.binomtest. The reported statistic is the signed
    (c - b) / sqrt(b + c), whose square is McNemar's chi-square; 0 when there are no
    discordant pairs (p = 1).
    """
    champ = np.asarray(champion_correct, dtype=bool)
    chal = np.asarray(challenger_correct, dtype=bool)
    if champ.shape != chal.shape or champ.ndim != 1:
        raise ValueError("paired inputs must be one-dimensional and of equal length")
    _require(len(champ), min_samples, f"McNemar test on {metric}")
    b = int(np.sum(champ & ~chal))
    c = int(np.sum(~champ & chal))
    discordant = b + c
    if discordant == 0:
        statistic, p = 0.0, 1.0
    else:
        statistic = (c - b) / math.sqrt(discordant)
        p = float(scipy_stats().binomtest(c, discordant, 0.5).pvalue)
    return TestResult(
        metric,
        MCNEMAR,
        float(statistic),
        min(p, 1.0),
        len(champ),
        float(champ.mean()) if len(champ) else 0.0,
        float(chal.mean()) if len(chal) else 0.0,
        extra={"champion_only_correct": b, "challenger_only_correct": c},
    )


# --- paired bootstrap ---------------------------------------------------------------------


def _resample_indices(rng: np.random.Generator, strata: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([s[rng.integers(0, len(s), len(s))] for s in strata])


def paired_bootstrap(
    labels: Sequence[float],
    champion_scores: Sequence[float],
    challenger_scores: Sequence[float],
    metric_fn: MetricFn,
    *,
    metric: str,
    resamples: int,
    seed: int,
    champion_threshold: float = 0.5,
    challenger_threshold: float = 0.5,
    stratify: bool = False,
    min_samples: int = 1,
) -> TestResult:
    """Paired bootstrap test of a metric difference, with the generator seed recorded.

    Each resample draws the same sample indices for both models (that is what makes it
    paired). With ``stratify`` the positives and negatives are resampled separately, so every
    resample keeps both classes (pROC's default for AUC). The p-value is the shift method:
    the share of resampled differences at least |d| away from the observed d, with the usual
    +1 so it is never 0: p = (1 + #{|d*_b - d| >= |d|}) / (B + 1). The statistic is d divided by
    the bootstrap standard deviation (None when that is zero).
    """
    y, a, b = _paired_arrays(labels, champion_scores, challenger_scores)
    _require(len(y), min_samples, f"paired bootstrap on {metric}")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    champ_value = metric_fn(y, a, champion_threshold)
    chal_value = metric_fn(y, b, challenger_threshold)
    observed = chal_value - champ_value
    everything = np.arange(len(y))
    strata = [everything[y == 1], everything[y != 1]] if stratify else [everything]
    strata = [s for s in strata if len(s)]
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for i in range(resamples):
        idx = _resample_indices(rng, strata)
        diffs[i] = metric_fn(y[idx], b[idx], challenger_threshold) - metric_fn(y[idx], a[idx], champion_threshold)
    # A tolerance keeps float noise (identical models giving 1e-17) from counting as distance.
    tol = 1e-12 * max(1.0, abs(observed))
    extreme = int(np.sum(np.abs(diffs - observed) >= abs(observed) - tol))
    p = (1 + extreme) / (resamples + 1)
    sd = float(np.std(diffs, ddof=1)) if resamples > 1 else 0.0
    statistic = observed / sd if sd > 0 else None
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return TestResult(
        metric,
        PAIRED_BOOTSTRAP,
        statistic,
        float(p),
        len(y),
        champ_value,
        chal_value,
        seed=seed,
        resamples=resamples,
        extra={"stratified": stratify, "ci95_low": float(lo), "ci95_high": float(hi)},
    )


# --- Welch --------------------------------------------------------------------------------


def welch_test(
    champion_values: Sequence[float],
    challenger_values: Sequence[float],
    *,
    metric: str,
    min_samples: int = 30,
) -> TestResult:
    """Welch's unequal-variance t-test for per-request metrics from two independent arms."""
    a = np.asarray(champion_values, dtype=float)
    b = np.asarray(challenger_values, dtype=float)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("per-request values must be finite numbers")
    _require(min(len(a), len(b)), min_samples, f"Welch test on {metric} (smaller arm)")
    res = scipy_stats().ttest_ind(b, a, equal_var=False)
    statistic: float | None = float(res.statistic)
    p = float(res.pvalue)
    df = float(res.df)
    if math.isnan(p):  # both arms constant: no variance to test against
        statistic, p = (0.0, 1.0) if float(a.mean()) == float(b.mean()) else (None, 0.0)
        df = 0.0
    return TestResult(
        metric,
        WELCH,
        statistic,
        p,
        len(a) + len(b),
        float(a.mean()),
        float(b.mean()),
        extra={"n_champion": len(a), "n_challenger": len(b), "df": df},
    )


# --- multiple comparisons -----------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (as R's p.adjust "holm")."""
    p = [float(x) for x in p_values]
    for x in p:
        if not 0.0 <= x <= 1.0:
            raise ValueError(f"p-value {x} is outside [0, 1]")
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted
