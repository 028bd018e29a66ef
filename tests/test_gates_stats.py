"""Statistical tests against published reference values and brute-force definitions.

DeLong: pROC's own test suite (xrobin/pROC, tests/testthat/test-roc.test.R) asserts, on its
``aSAH`` data, roc.test(r.wfns, r.s100b): Z = 2.20898359144091, p = 0.0271757822291882;
roc.test(r.wfns, r.ndka): Z = 2.79777591868904, p = 0.00514557970691098;
roc.test(r.ndka, r.s100b): Z = -1.39077002573558, p = 0.164295175223054; and pROC's documented
example prints AUC 0.7314 for s100b. The data below is pROC's aSAH (113 patients, Turck et al.,
Intensive Care Med 2010;36:107), transcribed as CSV.

McNemar: Fagerland, Lydersen & Laake, BMC Med Res Methodol 2013;13:91, Table 1 (Bentur et al.):
21 children, discordant pairs 1 and 7; exact conditional p = 0.070 (= 18/256), mid-p 0.039.
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from scipy import stats as sps

from gates.metrics import KNOWN_METRICS, accuracy, auc, log_loss
from gates.stats import (
    InsufficientSample,
    delong_test,
    holm,
    mcnemar_exact,
    paired_bootstrap,
    welch_test,
)

ASAH_CSV = """\
gos6,outcome,gender,age,wfns,s100b,ndka
5,Good,Female,42,1,0.13,3.01
5,Good,Female,37,1,0.14,8.54
5,Good,Female,42,1,0.1,8.09
5,Good,Female,27,1,0.04,10.42
1,Poor,Female,42,3,0.13,17.4
1,Poor,Male,48,2,0.1,12.75
4,Good,Male,57,5,0.47,6.0
1,Poor,Male,41,4,0.16,13.2
5,Good,Female,49,1,0.18,15.54
4,Good,Female,75,2,0.1,6.01
1,Poor,Male,37,5,0.12,15.96
5,Good,Female,49,2,0.1,17.86
3,Poor,Male,49,5,0.44,5.18
1,Poor,Male,71,5,0.71,8.9
5,Good,Female,64,1,0.04,13.41
5,Good,Female,49,2,0.08,20.75
1,Poor,Male,63,5,0.49,11.6
5,Good,Female,33,2,0.04,16.11
3,Poor,Female,51,2,0.07,32.37
1,Poor,Male,54,5,0.33,54.82
3,Poor,Female,78,2,0.09,32.41
5,Good,Female,47,1,0.09,49.94
3,Poor,Female,56,1,0.07,40.34
5,Good,Male,76,1,0.11,9.47
5,Good,Female,58,1,0.07,6.29
5,Good,Female,50,2,0.17,12.53
5,Good,Male,36,1,0.07,6.54
5,Good,Female,43,2,0.11,6.3
5,Good,Female,61,1,0.13,80.3
5,Good,Male,31,1,0.19,12.8
5,Good,Female,58,3,0.05,9.8
5,Good,Female,61,4,0.16,9.81
1,Poor,Female,76,2,0.41,9.85
5,Good,Female,54,1,0.14,18.21
5,Good,Female,55,4,0.34,5.03
1,Poor,Male,57,5,0.35,14.04
3,Poor,Female,64,4,0.48,21.93
5,Good,Female,67,1,0.09,8.02
3,Poor,Male,71,4,0.96,7.42
3,Poor,Female,74,2,0.25,8.38
5,Good,Female,72,5,0.5,6.59
5,Good,Female,62,5,0.46,9.63
5,Good,Female,65,1,0.16,13.12
5,Good,Male,50,1,0.07,7.96
5,Good,Female,51,2,0.43,14.34
5,Good,Male,50,4,0.45,41.43
5,Good,Male,35,1,0.11,7.63
5,Good,Male,44,1,0.08,7.06
5,Good,Male,45,2,0.09,12.59
3,Poor,Female,48,5,0.86,13.56
3,Poor,Female,61,5,0.52,3.87
5,Good,Male,36,2,0.08,9.44
5,Good,Female,53,1,0.06,7.66
4,Good,Female,66,2,0.13,12.98
1,Poor,Female,73,5,2.07,419.19
5,Good,Female,58,1,0.1,27.19
5,Good,Male,31,2,0.14,22.27
5,Good,Female,28,2,0.15,9.95
1,Poor,Male,32,2,0.07,21.22
5,Good,Female,36,1,0.06,11.73
1,Poor,Female,47,5,0.77,10.4
5,Good,Male,29,1,0.05,58.83
4,Good,Female,46,1,0.09,6.39
1,Poor,Female,73,2,0.3,11.09
1,Poor,Female,45,5,0.03,12.22
1,Poor,Male,40,2,0.09,13.67
5,Good,Male,50,1,0.04,17.21
3,Poor,Male,57,4,0.23,22.63
1,Poor,Male,37,5,0.7,12.9
5,Good,Female,60,2,0.09,9.7
1,Poor,Female,53,4,0.27,21.57
3,Poor,Female,57,4,0.71,8.23
1,Poor,Male,56,1,0.08,72.57
1,Poor,Female,31,4,0.26,15.54
5,Good,Male,59,1,0.08,10.51
5,Good,Female,66,2,0.16,10.6
5,Good,Male,50,1,0.09,14.57
1,Poor,Male,54,4,0.13,5.19
3,Poor,Male,55,2,0.1,9.63
5,Good,Female,51,1,0.08,4.61
1,Poor,Female,44,2,0.11,21.48
5,Good,Female,45,3,0.33,17.3
5,Good,Female,47,2,0.11,12.71
5,Good,Female,57,4,0.28,9.44
5,Good,Male,29,2,0.07,11.07
5,Good,Female,52,1,0.1,19.46
5,Good,Male,18,4,0.32,10.83
1,Poor,Male,68,5,0.22,5.37
5,Good,Female,47,1,0.07,11.97
5,Good,Male,45,1,0.05,7.75
5,Good,Female,34,5,0.24,9.83
5,Good,Female,60,4,0.38,10.55
5,Good,Female,33,2,0.1,28.49
5,Good,Female,38,2,0.15,8.53
5,Good,Female,48,1,0.08,12.57
5,Good,Female,67,1,0.14,12.9
5,Good,Male,64,1,0.1,46.83
5,Good,Female,70,3,0.07,11.68
4,Good,Male,24,1,0.04,12.67
5,Good,Female,74,2,0.19,9.01
1,Poor,Male,42,5,0.56,9.57
1,Poor,Female,63,2,0.14,34.06
1,Poor,Female,81,2,0.58,11.72
3,Poor,Female,62,5,0.32,14.26
1,Poor,Male,33,5,0.82,47.61
1,Poor,Female,51,5,0.74,11.67
5,Good,Female,29,2,0.15,24.58
5,Good,Female,68,4,0.47,10.33
4,Good,Male,53,4,0.17,13.87
1,Poor,Male,58,5,0.44,15.89
5,Good,Female,32,1,0.15,22.43
5,Good,Female,39,1,0.5,6.79
5,Good,Male,34,1,0.48,13.45
"""


def _asah():
    rows = list(csv.DictReader(io.StringIO(ASAH_CSV)))
    assert len(rows) == 113
    y = np.array([r["outcome"] == "Poor" for r in rows], dtype=float)
    col = {k: np.array([float(r[k]) for r in rows]) for k in ("wfns", "s100b", "ndka")}
    return y, col


def _delong_brute_force(y, a, b):
    """DeLong (1988) written from its definition with the m x n comparison matrices."""
    pos, neg = y == 1, y == 0
    comps, v10, v01 = [], [], []
    for s in (a, b):
        psi = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
        comps.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    m, n = pos.sum(), neg.sum()
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    s = s10 / m + s01 / n
    var = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    z = (comps[1] - comps[0]) / math.sqrt(var)
    return comps, z, 2 * sps.norm.sf(abs(z))


@pytest.mark.parametrize(
    "champion, challenger, z, p",
    [
        # roc.test(roc1, roc2) reports (AUC1 - AUC2): roc1 is our challenger.
        ("s100b", "wfns", 2.20898359144091, 0.0271757822291882),
        ("ndka", "wfns", 2.79777591868904, 0.00514557970691098),
        ("s100b", "ndka", -1.39077002573558, 0.164295175223054),
    ],
)
def test_delong_matches_proc_roc_test_on_asah(champion, challenger, z, p):
    y, col = _asah()
    r = delong_test(y, col[champion], col[challenger], metric="auc")
    assert r.test == "delong" and r.n == 113
    assert r.statistic == pytest.approx(z, rel=1e-12)
    assert r.p_value == pytest.approx(p, rel=1e-10)
    # Swapping the models flips the sign and keeps p, as pROC's "reversed" test asserts.
    back = delong_test(y, col[challenger], col[champion])
    assert back.statistic == pytest.approx(-z, rel=1e-12) and back.p_value == pytest.approx(p, rel=1e-10)


def test_asah_auc_matches_proc_documented_example():
    y, col = _asah()
    assert round(auc(y, col["s100b"]), 4) == 0.7314
    assert auc(y, col["s100b"]) == pytest.approx(delong_test(y, col["ndka"], col["s100b"]).challenger)


def test_delong_identical_curves_give_z0_p1():
    y, col = _asah()
    r = delong_test(y, col["wfns"], col["wfns"])
    assert (r.statistic, r.p_value) == (0.0, 1.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_delong_equals_brute_force_with_heavy_ties(seed):
    rng = np.random.default_rng(seed)
    n = 300
    y = (rng.random(n) < 0.35).astype(float)
    a = rng.integers(0, 6, n) + y * rng.integers(0, 3, n)  # few distinct values: many ties
    b = a + rng.normal(0, 1.0, n) * (rng.random(n) < 0.5)
    (auc_a, auc_b), z, p = _delong_brute_force(y, a.astype(float), b)
    r = delong_test(y, a, b)
    assert r.champion == pytest.approx(auc_a, abs=1e-12) and r.challenger == pytest.approx(auc_b, abs=1e-12)
    assert r.statistic == pytest.approx(z, rel=1e-9)
    assert r.p_value == pytest.approx(p, rel=1e-9)


def test_delong_enforces_minimum_sample_and_both_classes():
    y, col = _asah()
    with pytest.raises(InsufficientSample, match="113 samples, the policy requires at least 200"):
        delong_test(y, col["s100b"], col["wfns"], min_samples=200)
    with pytest.raises(InsufficientSample, match="at least 2 positives"):
        delong_test([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3], [0.8, 0.2, 0.1, 0.3])


def test_mcnemar_exact_matches_fagerland_bentur_example():
    # 21 pairs: 1 concordant AHR, 12 concordant no-AHR, 1 (before only) and 7 (after only).
    before = [True] * 1 + [False] * 12 + [True] * 1 + [False] * 7
    after = [True] * 1 + [False] * 12 + [False] * 1 + [True] * 7
    r = mcnemar_exact(before, after)
    assert r.p_value == pytest.approx(18 / 256, abs=1e-15)
    assert round(r.p_value, 3) == 0.070
    assert r.extra == {"champion_only_correct": 1, "challenger_only_correct": 7}
    assert r.statistic == pytest.approx(6 / math.sqrt(8))
    # mid-p as the paper defines it, from our counts: 0.039.
    assert round(r.p_value - sps.binom.pmf(1, 8, 0.5), 3) == 0.039


def test_mcnemar_no_discordant_pairs_is_p1():
    r = mcnemar_exact([True, False] * 20, [True, False] * 20)
    assert (r.statistic, r.p_value) == (0.0, 1.0)


def test_holm_matches_definition():
    assert holm([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    assert holm([0.04, 0.001, 0.5]) == pytest.approx([0.08, 0.003, 0.5])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    with pytest.raises(ValueError, match="outside"):
        holm([1.5])


def test_welch_matches_textbook_formula():
    rng = np.random.default_rng(4)
    a, b = rng.normal(100, 5, 40), rng.normal(97, 12, 60)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (b.mean() - a.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    r = welch_test(a, b, metric="latency_ms", min_samples=30)
    assert r.statistic == pytest.approx(t, rel=1e-12)
    assert r.extra["df"] == pytest.approx(df, rel=1e-12)
    assert r.p_value == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-10)
    with pytest.raises(InsufficientSample, match="smaller arm"):
        welch_test(a[:10], b, metric="latency_ms", min_samples=30)


def test_paired_bootstrap_is_seeded_and_recorded():
    y, col = _asah()
    args = (y, col["s100b"], col["wfns"], KNOWN_METRICS["auc"].fn)
    r1 = paired_bootstrap(*args, metric="auc", resamples=300, seed=11, stratify=True)
    r2 = paired_bootstrap(*args, metric="auc", resamples=300, seed=11, stratify=True)
    r3 = paired_bootstrap(*args, metric="auc", resamples=300, seed=12, stratify=True)
    assert r1 == r2 and r1.seed == 11 and r1.resamples == 300
    assert r1.p_value != r3.p_value or r1.statistic != r3.statistic
    # Same direction and roughly the same evidence as DeLong on the same pair.
    d = delong_test(y, col["s100b"], col["wfns"])
    assert r1.difference == pytest.approx(d.difference)
    assert 0.0 < r1.p_value < 0.1 and r1.statistic == pytest.approx(d.statistic, rel=0.25)


def test_paired_bootstrap_identical_models_p1():
    y, col = _asah()
    r = paired_bootstrap(y, col["ndka"], col["ndka"], auc, metric="auc", resamples=50, seed=0, stratify=True)
    assert r.p_value == 1.0 and r.statistic is None


def test_paired_bootstrap_log_loss_detects_a_better_model():
    rng = np.random.default_rng(9)
    y = (rng.random(500) < 0.4).astype(float)
    good = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.1, 500), 0.01, 0.99)
    bad = np.clip(0.5 + (y - 0.5) * 0.2 + rng.normal(0, 0.1, 500), 0.01, 0.99)
    r = paired_bootstrap(y, bad, good, log_loss, metric="log_loss", resamples=200, seed=3, stratify=True)
    assert r.difference < 0 and r.p_value == pytest.approx(1 / 201)


def test_metric_functions_match_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(5)
    y = (rng.random(200) < 0.3).astype(float)
    s = np.round(rng.random(200), 1)  # ties
    assert auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-15)
    assert accuracy(y, s, 0.5) == pytest.approx(skm.accuracy_score(y, s >= 0.5))
    assert log_loss(y, s) == pytest.approx(skm.log_loss(y, np.clip(s, 1e-15, 1 - 1e-15)), rel=1e-12)
