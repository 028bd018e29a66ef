"""Production monitors, pure math: fairness with confidence intervals, and drift (PSI, KL).

Fairness metrics follow AIF360's definitions (signed, unprivileged minus or over privileged):

- disparate impact      DI  = P(fav | unprivileged) / P(fav | privileged), fair range e.g. [0.8, 1.25]
- statistical parity    SPD = P(fav | unprivileged) - P(fav | privileged)
- equal opportunity     EOD = TPR(unprivileged) - TPR(privileged), among the truly positive

Both bounds are checked (the old monitor could never fire on DI > 1.25). A group smaller than
``min_group_size`` — an empty group above all — is ``insufficient_data``, never ``fair``.
The status uses the point estimate; ``confident`` says whether the whole confidence interval
lies outside the fair range (the breach is not sampling noise).

Which breach a monitor alerts on is its *breach rule* (:data:`BREACH_RULES`), recorded with
every run; :meth:`FairnessResult.alerts_under` is the one definition, used by the monitors to
alert and by the documents that report their runs.

Intervals: Wilson score for one proportion; Newcombe's hybrid score interval (1998, method 10)
for differences; Katz's log interval for the ratio, with 0.5 added to each cell when a count
is zero (Haldane), so a zero count still gets a finite interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from gates.alerts import INVESTIGATE, NONE, PROPOSE_RETRAIN, Alert
from gates.policy import Bounds, MonitorRules

from .metrics import scipy_stats

FAIR, BREACH, INSUFFICIENT = "fair", "breach", "insufficient_data"

# Breach rules. One comparison per run: a point estimate outside the fair range is a breach to
# alert on. Many comparisons per run (e.g. 48 segments a week): a point estimate outside the
# range is common noise in a small segment, so only a breach whose whole interval lies outside
# the range alerts.
POINT_ESTIMATE, WHOLE_INTERVAL = "point_estimate", "whole_interval"
BREACH_RULES = {
    POINT_ESTIMATE: "a point estimate outside the fair range",
    WHOLE_INTERVAL: "a point estimate outside the fair range with the whole confidence interval outside it too",
}
# What a result is under a breach rule, least to most serious: too small to judge, within the
# fair range, outside it but not alerted on (sampling noise by the rule), alerted on.
NOT_JUDGED, WITHIN, OUTSIDE_NOT_ALERTED, ALERTED = "not_judged", "within", "outside_not_alerted", "alerted"
FINDINGS = (NOT_JUDGED, WITHIN, OUTSIDE_NOT_ALERTED, ALERTED)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n <= 0:
        raise ValueError("a proportion needs at least one observation")
    z = float(scipy_stats().norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Interval for p1 - p2 from the two Wilson intervals (Newcombe 1998, method 10)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, confidence)
    l2, u2 = wilson_interval(x2, n2, confidence)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def katz_ratio_interval(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Interval for (x1/n1) / (x2/n2) on the log scale (Katz et al. 1978)."""
    if x1 == 0 or x2 == 0:
        x1, n1, x2, n2 = x1 + 0.5, n1 + 1, x2 + 0.5, n2 + 1  # type: ignore[assignment]
    z = float(scipy_stats().norm.ppf(0.5 + confidence / 2))
    log_ratio = math.log((x1 / n1) / (x2 / n2))
    se = math.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
    return math.exp(log_ratio - z * se), math.exp(log_ratio + z * se)


@dataclass(frozen=True)
class FairnessResult:
    metric: str
    status: str  # fair, breach or insufficient_data
    value: float | None  # None when undefined (an empty group, or a ratio over zero)
    ci_low: float | None
    ci_high: float | None
    confident: bool  # the whole interval is outside the fair range
    bounds: Bounds
    n_unprivileged: int
    n_privileged: int
    detail: str

    def alerts_under(self, rule: str) -> bool:
        """Whether this finding is a breach its monitor alerts on, under breach rule ``rule``."""
        if rule not in BREACH_RULES:
            raise ValueError(f"unknown breach rule {rule!r}: use one of {', '.join(BREACH_RULES)}")
        return self.status == BREACH and (self.confident or rule == POINT_ESTIMATE)

    def finding(self, rule: str) -> str:
        """What this result is under ``rule``: one of :data:`FINDINGS`."""
        if self.alerts_under(rule):
            return ALERTED
        return {BREACH: OUTSIDE_NOT_ALERTED, FAIR: WITHIN}.get(self.status, NOT_JUDGED)

    def severity(self, rule: str) -> tuple[int, float]:
        """A sort key, larger is worse: the finding (:data:`FINDINGS` order), then how far the
        value lies outside its range (negative inside it; log units for the ratio, whose
        range is multiplicative)."""
        return FINDINGS.index(self.finding(rule)), self._distance_outside()

    def _distance_outside(self) -> float:
        if self.value is None:  # undefined: an unbounded ratio is the farthest out there is
            return math.inf if self.status == BREACH else -math.inf
        on_scale = _log if self.metric == "disparate_impact" else float
        v = on_scale(self.value)
        below = on_scale(self.bounds.min) - v if self.bounds.min is not None else -math.inf
        above = v - on_scale(self.bounds.max) if self.bounds.max is not None else -math.inf
        return max(below, above)

    def to_dict(self) -> dict[str, Any]:
        """The result as a monitor_run entry records it (:meth:`from_dict` reads it back)."""
        return {"metric": self.metric, "status": self.status, "value": self.value, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "confident": self.confident, "min": self.bounds.min, "max": self.bounds.max,
                "n_unprivileged": self.n_unprivileged, "n_privileged": self.n_privileged, "detail": self.detail}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FairnessResult":
        """A recorded result; raises ValueError when a field is missing or of the wrong type."""
        try:
            return cls(str(d["metric"]), str(d["status"]), _number(d.get("value")), _number(d.get("ci_low")),
                       _number(d.get("ci_high")), d.get("confident") is True,
                       Bounds(_number(d.get("min")), _number(d.get("max"))),
                       int(d["n_unprivileged"]), int(d["n_privileged"]), str(d.get("detail") or ""))
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a recorded fairness result: {e}") from None

    def alert(self, slot: str, version: str, rule: str = POINT_ESTIMATE) -> Alert | None:
        """A breach that ``rule`` alerts on, or a group too small to judge, becomes an alert."""
        if not (self.alerts_under(rule) or self.status == INSUFFICIENT):
            return None
        return Alert(f"fairness.{self.metric}", slot, version, self.status,
                     INVESTIGATE if self.status == BREACH else NONE, f"{self.metric}: {self.detail}",
                     {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "confident": self.confident,
                      "min": self.bounds.min, "max": self.bounds.max,
                      "n_unprivileged": self.n_unprivileged, "n_privileged": self.n_privileged})


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _split(outcome: Sequence[bool], groups: Sequence[str], unprivileged: str, privileged: str):
    o = np.asarray(outcome, dtype=bool)
    g = np.asarray(groups, dtype=object)
    if o.shape != g.shape or o.ndim != 1:
        raise ValueError("outcomes and groups must be one-dimensional and of equal length")
    u, p = o[g == unprivileged], o[g == privileged]
    return int(u.sum()), len(u), int(p.sum()), len(p)


def _result(metric: str, value: float | None, ci: tuple[float, float] | None, bounds: Bounds,
            counts: tuple[int, int, int, int], min_group_size: int, what: str) -> FairnessResult:
    xu, nu, xp, np_ = counts
    lo, hi = ci if ci else (None, None)
    if min(nu, np_) < min_group_size:
        small = ", ".join(f"{name} {n}" for name, n in (("unprivileged", nu), ("privileged", np_)) if n < min_group_size)
        return FairnessResult(metric, INSUFFICIENT, value, lo, hi, False, bounds, nu, np_,
                              f"too few {what} to judge ({small}; minimum {min_group_size})")
    if value is None:
        if xp == 0 and xu > 0:  # ratio over zero: unbounded, so above any upper bound
            return FairnessResult(metric, BREACH, None, lo, hi, True, bounds, nu, np_,
                                  "the privileged group has no favorable outcomes, the ratio is unbounded")
        return FairnessResult(metric, INSUFFICIENT, None, lo, hi, False, bounds, nu, np_,
                              "no favorable outcomes in either group, the ratio is undefined")
    ok = bounds.contains(value)
    confident = lo is not None and hi is not None and (
        (bounds.max is not None and lo > bounds.max) or (bounds.min is not None and hi < bounds.min))
    return FairnessResult(metric, FAIR if ok else BREACH, value, lo, hi, confident, bounds, nu, np_,
                          f"{value:.4g} {'within' if ok else 'outside'} {bounds.describe()} "
                          f"(CI {lo:.4g} to {hi:.4g}; unprivileged {xu}/{nu}, privileged {xp}/{np_})")


def disparate_impact(favorable: Sequence[bool], groups: Sequence[str], *, unprivileged: str, privileged: str,
                     rules: MonitorRules = MonitorRules()) -> FairnessResult:
    counts = _split(favorable, groups, unprivileged, privileged)
    xu, nu, xp, np_ = counts
    value = ci = None
    if nu and np_ and xp:
        value = (xu / nu) / (xp / np_)
    if nu and np_:
        ci = katz_ratio_interval(xu, nu, xp, np_, rules.confidence)
    return _result("disparate_impact", value, ci, rules.disparate_impact, counts, rules.min_group_size, "people")


def statistical_parity_difference(favorable: Sequence[bool], groups: Sequence[str], *, unprivileged: str,
                                  privileged: str, rules: MonitorRules = MonitorRules()) -> FairnessResult:
    counts = _split(favorable, groups, unprivileged, privileged)
    xu, nu, xp, np_ = counts
    value = ci = None
    if nu and np_:
        value = xu / nu - xp / np_
        ci = newcombe_interval(xu, nu, xp, np_, rules.confidence)
    return _result("statistical_parity_difference", value, ci, rules.statistical_parity_difference, counts,
                   rules.min_group_size, "people")


def equal_opportunity_difference(actual: Sequence[bool], favorable: Sequence[bool], groups: Sequence[str], *,
                                 unprivileged: str, privileged: str,
                                 rules: MonitorRules = MonitorRules()) -> FairnessResult:
    """TPR difference among the truly positive; the minimum group size counts positives only."""
    y = np.asarray(actual, dtype=bool)
    counts = _split(np.asarray(favorable, dtype=bool)[y], np.asarray(groups, dtype=object)[y], unprivileged, privileged)
    xu, nu, xp, np_ = counts
    value = ci = None
    if nu and np_:
        value = xu / nu - xp / np_
        ci = newcombe_interval(xu, nu, xp, np_, rules.confidence)
    return _result("equal_opportunity_difference", value, ci, rules.equal_opportunity_difference, counts,
                   rules.min_group_size, "truly positive people")


# --- drift --------------------------------------------------------------------------------

STABLE, MODERATE, SIGNIFICANT = "stable", "moderate_drift", "significant_drift"


def quantile_edges(baseline: Sequence[float], bins: int) -> tuple[float, ...]:
    """Inner bin edges at the baseline's quantiles; tied quantiles collapse into one edge."""
    b = np.asarray(baseline, dtype=float)
    if b.size == 0 or not np.all(np.isfinite(b)):
        raise ValueError("the baseline must be a non-empty set of finite numbers")
    inner = np.quantile(b, np.linspace(0, 1, bins + 1)[1:-1])
    return tuple(float(x) for x in np.unique(inner))


def bin_fractions(values: Sequence[float], edges: Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError("values must be a non-empty set of finite numbers")
    # side="right": a value equal to an edge falls in the bin above it, for baseline and current alike.
    idx = np.searchsorted(np.asarray(edges), v, side="right")
    return np.bincount(idx, minlength=len(edges) + 1) / v.size


def _floor(fractions: Sequence[float], epsilon: float) -> np.ndarray:
    # An empty bin would make ln(a/e) infinite; it gets fraction epsilon instead. The fractions
    # are not renormalised, which moves PSI and KL by O(epsilon) only.
    return np.maximum(np.asarray(fractions, dtype=float), epsilon)


def psi_from_fractions(expected: Sequence[float], actual: Sequence[float], epsilon: float = 1e-4) -> float:
    e, a = _floor(expected, epsilon), _floor(actual, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def kl_from_fractions(expected: Sequence[float], actual: Sequence[float], epsilon: float = 1e-4) -> float:
    """KL(actual || expected), in nats."""
    e, a = _floor(expected, epsilon), _floor(actual, epsilon)
    return float(np.sum(a * np.log(a / e)))


@dataclass(frozen=True)
class DriftResult:
    feature: str
    psi: float
    kl: float
    status: str
    edges: tuple[float, ...]
    expected: tuple[float, ...]
    actual: tuple[float, ...]
    n_baseline: int
    n_current: int

    def alert(self, slot: str, version: str, rules: MonitorRules = MonitorRules()) -> Alert | None:
        """Moderate drift asks for a look; significant drift proposes a retrain. Never a deploy."""
        if self.status == STABLE:
            return None
        action = PROPOSE_RETRAIN if self.status == SIGNIFICANT else INVESTIGATE
        line = rules.psi_act if self.status == SIGNIFICANT else rules.psi_investigate
        return Alert("drift.psi", slot, version, self.status, action,
                     f"{self.feature}: PSI {self.psi:.4g} >= {line:g}; KL {self.kl:.4g}"
                     + ("; retraining proposed, the new challenger still goes through the gate"
                        if action == PROPOSE_RETRAIN else ""),
                     {"feature": self.feature, "psi": self.psi, "kl": self.kl, "edges": list(self.edges),
                      "expected": list(self.expected), "actual": list(self.actual),
                      "n_baseline": self.n_baseline, "n_current": self.n_current})


def population_stability(feature: str, baseline: Sequence[float], current: Sequence[float],
                         rules: MonitorRules = MonitorRules()) -> DriftResult:
    """PSI and KL of ``current`` against ``baseline``, on quantile bins of the baseline."""
    edges = quantile_edges(baseline, rules.psi_bins)
    e, a = bin_fractions(baseline, edges), bin_fractions(current, edges)
    psi = psi_from_fractions(e, a, rules.psi_epsilon)
    status = SIGNIFICANT if psi >= rules.psi_act else MODERATE if psi >= rules.psi_investigate else STABLE
    return DriftResult(feature, psi, kl_from_fractions(e, a, rules.psi_epsilon), status, edges,
                       tuple(float(x) for x in e), tuple(float(x) for x in a), len(baseline), len(current))
