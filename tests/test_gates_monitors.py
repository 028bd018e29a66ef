"""Fairness and drift monitors.

Interval references: Newcombe, Stat Med 1998;17:873-890, Table II, method 10: 56/70 - 48/80 gives
0.0524 to 0.3339 and 9/10 - 3/10 gives 0.1705 to 0.8090; Newcombe, Stat Med 1998;17:857-872:
the Wilson interval for 81/263 is 0.2553 to 0.3662. PSI: the worked bucket in the MLOps chapter
(seeds/001): e = 0.20, a = 0.30 contributes 0.10 * ln 1.5 = 0.0405.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gates.monitors import (
    ALERTED,
    BREACH,
    FAIR,
    INSUFFICIENT,
    MODERATE,
    NOT_JUDGED,
    OUTSIDE_NOT_ALERTED,
    POINT_ESTIMATE,
    WHOLE_INTERVAL,
    WITHIN,
    FairnessResult,
    SIGNIFICANT,
    STABLE,
    bin_fractions,
    disparate_impact,
    equal_opportunity_difference,
    katz_ratio_interval,
    kl_from_fractions,
    newcombe_interval,
    population_stability,
    psi_from_fractions,
    quantile_edges,
    statistical_parity_difference,
    wilson_interval,
)
from gates.policy import Bounds, MonitorRules


def test_intervals_match_newcombe():
    assert [round(x, 4) for x in newcombe_interval(56, 70, 48, 80)] == [0.0524, 0.3339]
    assert [round(x, 4) for x in newcombe_interval(9, 10, 3, 10)] == [0.1705, 0.8090]
    assert [round(x, 4) for x in wilson_interval(81, 263)] == [0.2553, 0.3662]


def test_katz_interval_is_the_log_scale_wald_interval():
    lo, hi = katz_ratio_interval(30, 100, 40, 100)
    se = math.sqrt(1 / 30 - 1 / 100 + 1 / 40 - 1 / 100)
    assert lo == pytest.approx(0.75 * math.exp(-1.959963984540054 * se))
    assert hi == pytest.approx(0.75 * math.exp(1.959963984540054 * se))
    lo0, hi0 = katz_ratio_interval(0, 50, 10, 50)  # a zero count still gets a finite interval
    assert 0 < lo0 < hi0 < 1


def _population(fav_u: int, n_u: int, fav_p: int, n_p: int):
    favorable = [True] * fav_u + [False] * (n_u - fav_u) + [True] * fav_p + [False] * (n_p - fav_p)
    groups = ["young"] * n_u + ["old"] * n_p
    return favorable, groups


def test_disparate_impact_fires_on_both_bounds():
    low = disparate_impact(*_population(30, 100, 50, 100), unprivileged="young", privileged="old")
    assert (low.status, low.value) == (BREACH, pytest.approx(0.6))
    assert not low.confident  # CI 0.42 to 0.86 reaches into the fair range at n = 100 ...
    assert disparate_impact(*_population(300, 1000, 500, 1000), unprivileged="young", privileged="old").confident
    high = disparate_impact(*_population(65, 100, 50, 100), unprivileged="young", privileged="old")
    assert (high.status, high.value) == (BREACH, pytest.approx(1.3))
    assert high.detail.startswith("1.3 outside [0.8, 1.25]")
    ok = disparate_impact(*_population(48, 100, 50, 100), unprivileged="young", privileged="old")
    assert (ok.status, ok.confident) == (FAIR, False) and ok.ci_low < 0.96 < ok.ci_high
    assert ok.alert("credit_pd", "v1") is None
    alert = high.alert("credit_pd", "v1")
    assert alert is not None and alert.to_operation_entry()["status"] == "breach"


def test_the_breach_rule_decides_what_alerts_and_what_is_worst():
    noisy = disparate_impact(*_population(30, 100, 50, 100), unprivileged="young", privileged="old")  # 0.6, CI into the band
    sure = disparate_impact(*_population(300, 1000, 500, 1000), unprivileged="young", privileged="old")  # 0.6, CI below
    high = disparate_impact(*_population(65, 100, 50, 100), unprivileged="young", privileged="old")  # 1.3, CI into the band
    fair = disparate_impact(*_population(48, 100, 50, 100), unprivileged="young", privileged="old")
    tiny = disparate_impact(*_population(5, 10, 50, 100), unprivileged="young", privileged="old")
    assert noisy.alerts_under(POINT_ESTIMATE) and not noisy.alerts_under(WHOLE_INTERVAL)
    assert noisy.alert("s", "v", WHOLE_INTERVAL) is None and sure.alert("s", "v", WHOLE_INTERVAL) is not None
    assert [r.finding(WHOLE_INTERVAL) for r in (sure, noisy, fair, tiny)] == [ALERTED, OUTSIDE_NOT_ALERTED, WITHIN, NOT_JUDGED]
    ranked = sorted([tiny, fair, high, noisy, sure], key=lambda r: r.severity(WHOLE_INTERVAL), reverse=True)
    # 0.6 is farther below 0.8 than 1.3 is above 1.25, on the ratio's log scale
    assert ranked == [sure, noisy, high, fair, tiny]
    with pytest.raises(ValueError, match="unknown breach rule"):
        noisy.alerts_under("gut_feeling")


def test_a_recorded_result_reads_back_as_it_was():
    r = equal_opportunity_difference([True] * 4, [True, False, True, True], ["a", "a", "b", "b"], unprivileged="a",
                                     privileged="b")
    assert FairnessResult.from_dict(r.to_dict()) == r
    with pytest.raises(ValueError, match="not a recorded fairness result"):
        FairnessResult.from_dict({"metric": "disparate_impact", "status": "fair", "value": "0.9"})


@pytest.mark.parametrize("fn", [disparate_impact, statistical_parity_difference])
def test_empty_or_tiny_groups_are_insufficient_data_never_fair(fn):
    empty = fn(*_population(0, 0, 50, 100), unprivileged="young", privileged="old")
    assert empty.status == INSUFFICIENT and empty.value is None
    assert empty.detail == "too few people to judge (unprivileged 0; minimum 30)"
    tiny = fn(*_population(10, 20, 50, 100), unprivileged="young", privileged="old")
    assert tiny.status == INSUFFICIENT and tiny.value is not None
    assert tiny.alert("credit_pd", "v1").status == "insufficient_data"
    absent = fn([True, False], ["x", "y"], unprivileged="young", privileged="old")
    assert absent.status == INSUFFICIENT


def test_ratio_over_zero_is_a_breach_not_a_crash():
    r = disparate_impact(*_population(10, 100, 0, 100), unprivileged="young", privileged="old")
    assert (r.status, r.value) == (BREACH, None)
    none = disparate_impact(*_population(0, 100, 0, 100), unprivileged="young", privileged="old")
    assert (none.status, none.value) == (INSUFFICIENT, None)


def test_statistical_parity_difference_is_signed_like_aif360():
    r = statistical_parity_difference(*_population(30, 100, 50, 100), unprivileged="young", privileged="old")
    assert r.value == pytest.approx(-0.2) and r.status == BREACH
    assert (r.ci_low, r.ci_high) == pytest.approx(newcombe_interval(30, 100, 50, 100))
    flipped = statistical_parity_difference(*_population(50, 100, 30, 100), unprivileged="young", privileged="old")
    assert flipped.value == pytest.approx(0.2)


def test_equal_opportunity_difference_counts_only_the_truly_positive():
    # young: 40 positives, 20 approved; old: 40 positives, 36 approved; negatives are noise.
    actual = [True] * 40 + [False] * 60 + [True] * 40 + [False] * 60
    favorable = [True] * 20 + [False] * 20 + [True] * 60 + [True] * 36 + [False] * 4 + [False] * 60
    groups = ["young"] * 100 + ["old"] * 100
    r = equal_opportunity_difference(actual, favorable, groups, unprivileged="young", privileged="old")
    assert r.value == pytest.approx(0.5 - 0.9) and r.status == BREACH
    assert (r.n_unprivileged, r.n_privileged) == (40, 40)
    small = equal_opportunity_difference(actual, favorable, groups, unprivileged="young", privileged="old",
                                         rules=MonitorRules(min_group_size=50))
    assert small.status == INSUFFICIENT and "truly positive" in small.detail


def test_psi_worked_example_and_kl():
    assert psi_from_fractions([0.20], [0.30]) == pytest.approx(0.10 * math.log(1.5))
    assert round(psi_from_fractions([0.20], [0.30]), 4) == 0.0405
    e, a = [0.25, 0.25, 0.5], [0.5, 0.25, 0.25]
    assert kl_from_fractions(e, a) == pytest.approx(0.5 * math.log(2) + 0.25 * math.log(0.5))
    # An empty bin gets epsilon, so the result is finite and documented.
    assert psi_from_fractions([0.5, 0.5], [1.0, 0.0], epsilon=1e-4) == pytest.approx(
        (1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5))


def test_bins_come_from_the_baseline_quantiles():
    base = np.arange(1000, dtype=float)
    edges = quantile_edges(base, 4)
    assert edges == pytest.approx((249.75, 499.5, 749.25))
    assert list(bin_fractions(base, edges)) == [0.25, 0.25, 0.25, 0.25]
    assert quantile_edges([1.0] * 50 + [2.0] * 50, 10) == (1.0, 1.5, 2.0)  # ties collapse


def test_population_stability_levels_and_alerts():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 5000)
    same = population_stability("income", base, rng.normal(0, 1, 5000))
    assert same.status == STABLE and same.psi < 0.02 and same.alert("credit_pd", "v1") is None
    moderate = population_stability("income", base, rng.normal(0.35, 1, 5000))
    assert moderate.status == MODERATE
    assert moderate.alert("credit_pd", "v1").action == "investigate"
    big = population_stability("income", base, rng.normal(1.0, 1, 5000))
    assert big.status == SIGNIFICANT and big.psi > 0.25 and big.kl > 0
    alert = big.alert("credit_pd", "v1")
    assert alert.action == "propose_retrain"  # drift proposes, never deploys
    assert "retraining proposed, the new challenger still goes through the gate" in alert.summary
    assert alert.to_operation_entry()["details"]["measurements"]["edges"] == list(big.edges)
    with pytest.raises(ValueError, match="non-empty"):
        population_stability("income", base, [])


def test_bounds_on_a_single_side():
    assert Bounds(None, 200.0).contains(200.0) and not Bounds(None, 200.0).contains(200.1)
    assert Bounds(0.8, None).describe() == "at least 0.8"
