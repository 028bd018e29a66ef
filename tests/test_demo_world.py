"""The demo world: determinism, streaming, the suitability rule, real models and the story."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import struct

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2, norm, rankdata
from sklearn.metrics import roc_auc_score

from ledger.schema import VERDICTS, table_spec
from mrm.demo import models as M
from mrm.demo import suitability as S
from mrm.demo import world as W

# ---------------------------------------------------------------------------------------------
# helpers: a reference promotion gate (DeLong on the macro AUC, McNemar), as REFERENCE.md §1
# ---------------------------------------------------------------------------------------------


def _influence(ev: M.Evaluation) -> tuple[np.ndarray, float]:
    """Per-sample influence on avg_auc (DeLong structural components, averaged over tasks)."""
    psi = np.zeros(len(ev.labels))
    aucs = []
    for t in W.TASKS:
        s, pos = ev.task_data(t)
        m, n = pos.sum(), (~pos).sum()
        r_all = rankdata(s)
        v10 = (r_all[pos] - rankdata(s[pos])) / n
        v01 = 1.0 - (r_all[~pos] - rankdata(s[~pos])) / m
        a = v10.mean()
        aucs.append(a)
        psi[pos] += (v10 - a) / m
        psi[~pos] += (v01 - a) / n
    return psi / len(W.TASKS), float(np.mean(aucs))


def delong_avg_auc(champ: M.Evaluation, chall: M.Evaluation) -> float:
    """Two-sided p-value of the paired difference in avg_auc."""
    pa_, aa = _influence(champ)
    pb, ab = _influence(chall)
    se = np.sqrt(np.sum((pb - pa_) ** 2))
    return float(2 * norm.sf(abs(ab - aa) / se))


def mcnemar(champ: M.Evaluation, chall: M.Evaluation) -> float:
    b = int(np.sum(champ.correct & ~chall.correct))
    c = int(np.sum(~champ.correct & chall.correct))
    return float(chi2.sf((abs(b - c) - 1) ** 2 / max(b + c, 1), 1))


def reference_gate(champ: M.Evaluation | None, chall: M.Evaluation) -> tuple[str, str]:
    if champ is None:
        return "bootstrap", ""
    fails = chall.fidelity_failures()
    if fails:
        return "reject", "fidelity: " + ", ".join(fails)
    rel = (chall.avg_auc - champ.avg_auc) / champ.avg_auc
    drops = [t for t in W.TASKS if (chall.task_auc[t] - champ.task_auc[t]) / champ.task_auc[t] < -0.02]
    p = delong_avg_auc(champ, chall)
    if rel >= 0.005 and not drops and p < 0.05:
        return "promote", f"rel={rel:+.4f} p={p:.2g}"
    return "reject", f"competition rel={rel:+.4f} p={p:.2g} drops={drops}"


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> W.World:
    return W.World()


@pytest.fixture(scope="module")
def story(world):
    specs = M.story_specs()
    return {role: M.train_model(world, spec) for role, spec in specs.items() if role != "known_good"}


@pytest.fixture(scope="module")
def holdouts(world):
    return {e: world.holdout(e) for e in range(len(world.config.holdout_days))}


# ---------------------------------------------------------------------------------------------
# determinism and streaming
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_customers_different_seed_differs():
    a = W.customers_stream(7, "population", 0, 3000)
    b = W.customers_stream(7, "population", 0, 3000)
    c = W.customers_stream(8, "population", 0, 3000)
    assert a.equals(b)
    assert a.subject_ids() == b.subject_ids()
    assert not np.array_equal(a.age, c.age)
    assert not set(a.subject_ids()) & set(c.subject_ids())
    assert len(set(a.subject_ids())) == 3000


def test_customer_chunks_equal_one_draw():
    whole = W.customers_stream(11, "population", 0, 10_000)
    cuts = [0, 1, 999, 4096, 4097, 8191, 10_000]
    parts = [W.customers_stream(11, "population", lo, hi) for lo, hi in zip(cuts, cuts[1:])]
    assert W.Customers.concat(parts).equals(whole)
    assert W.customers_stream(11, "population", 5000, 6000).equals(whole.take(slice(5000, 6000)))


def test_request_stream_chunks_equal_whole_and_are_bounded(world):
    n = 6000
    by_day = list(world.iter_requests(n))
    allb = W.RequestBatch.concat(by_day)
    assert len(allb) == n
    assert np.array_equal(allb.index, np.arange(n))
    assert np.all(np.diff(allb.ts_us) >= 0) and np.all(np.diff(allb.day) >= 0)
    assert all(len(np.unique(b.day)) == 1 for b in by_day)
    for chunk in (1, 777, 5999, 10**9):
        chunks = list(world.iter_requests(n, chunk_size=chunk))
        assert all(len(c) == chunk for c in chunks[:-1]) and len(chunks[-1]) <= chunk
        assert W.RequestBatch.concat(chunks).equals(allb), chunk
    # a different seed serves different requests
    other = W.RequestBatch.concat(list(W.World(seed=1).iter_requests(n)))
    assert not np.array_equal(other.customer_index, allb.customer_index)
    # late-arriving outcomes: investment products are known only after the cooling-off
    delay = allb.label_arrival_day - allb.day
    dep = allb.label == W.DEPOSIT
    assert delay[dep].max() <= 2 and delay[~dep].min() >= 7 and delay.max() <= 14


def test_day_counts_sum_and_follow_the_week(world):
    c = world.day_counts(20_000)
    assert c.sum() == 20_000 and len(c) == W.YEAR_DAYS
    weekday = np.array([W.day_to_date(d).weekday() for d in range(W.YEAR_DAYS)])
    assert c[weekday < 5].mean() > 2 * c[weekday == 6].mean()


def test_customers_have_realistic_correlations():
    c = W.customers_stream(3, "population", 0, 40_000)
    la = np.log10(c.assets_krw)
    corr = lambda x, y: np.corrcoef(x.astype(float), y.astype(float))[0, 1]  # noqa: E731
    assert corr(c.income_tier, la) > 0.3
    assert corr(c.invest_experience_years > 0, c.risk_tolerance) > 0.3
    assert corr(c.knowledge_level, c.risk_tolerance) > 0.3
    assert corr(c.age, c.risk_tolerance) < -0.15
    old = c.age >= 70
    assert c.profile_confirmed[old].mean() < c.profile_confirmed[~old].mean() < 1.0
    mid = (c.age >= 30) & (c.age < 50)
    assert c.debt_ratio[mid].mean() > c.debt_ratio[old].mean()
    shares = np.bincount(c.region, minlength=len(W.REGIONS)) / len(c)
    assert shares[W.REGIONS.index("Gyeonggi-Incheon")] > 0.28 and shares[W.REGIONS.index("Jeju")] < 0.03
    assert set(np.unique(c.risk_tolerance)) == {1, 2, 3, 4, 5}


def test_same_seed_same_models_predictions_and_attributions(world):
    spec = M.story_specs()["promotable"]
    a = M.train_model(world, spec)
    b = M.train_model(W.World(), spec)  # fresh world, same seed
    c = M.train_model(W.World(seed=99), spec)
    cust = world.population(500)
    sa, sb_, sc = a.score(cust), b.score(cust), c.score(cust)
    assert np.array_equal(a.coef_, b.coef_)
    assert np.array_equal(sa.proba, sb_.proba)
    assert np.array_equal(sa.attr_index, sb_.attr_index)
    assert np.array_equal(sa.attr_contribution, sb_.attr_contribution)
    assert sa.input_digests() == sb_.input_digests()
    assert not np.allclose(a.coef_, c.coef_)
    assert not np.allclose(sa.proba, sc.proba)


def test_weekly_retrains_genuinely_differ(world):
    m10 = M.train_model(world, M.TrainSpec("a", 70))
    m11 = M.train_model(world, M.TrainSpec("b", 77))
    cust = world.population(2000)
    p10, p11 = m10.predict_proba(cust), m11.predict_proba(cust)
    assert np.abs(p10 - p11).max() > 0.02
    assert (p10.argmax(1) != p11.argmax(1)).mean() > 0.01


def test_label_process_drift_and_promotion(world):
    cust = world.population(20_000)
    before, after = world.choice_proba(cust, 100), world.choice_proba(cust, 200)
    els, gl = W.PRODUCT_INDEX["els"], W.PRODUCT_INDEX["global_equity_fund"]
    assert after[:, els].mean() < 0.5 * before[:, els].mean()
    assert after[:, gl].mean() > 1.5 * before[:, gl].mean()
    flat = W.World(drift=False, segment_event=None, seasonal_amplitude=0.0)
    assert np.allclose(flat.choice_proba(cust, 100), flat.choice_proba(cust, 300))
    seg = (cust.region == W.REGIONS.index("Gyeonggi-Incheon")) & (cust.age >= 60)
    during, later = world.choice_proba(cust, 160), world.choice_proba(cust, 190)
    assert during[seg, W.DEPOSIT].mean() > 0.85 > 0.5 > later[seg, W.DEPOSIT].mean()
    # labels follow the probabilities
    batch = W.LabelledBatch.concat([world.outcomes(d) for d in range(0, 14)])
    share = np.bincount(batch.label, minlength=W.N_PRODUCTS) / len(batch)
    assert np.abs(share - world.choice_proba(batch.customers, 7).mean(0)).max() < 0.02


def test_training_set_waits_for_late_outcomes(world):
    # with no lag the freshest investment outcomes are still missing (right-censoring)
    censored = world.training_set(100, window_days=14, lag_days=0)
    assert censored.label_arrival_day.max() <= 100
    full = W.LabelledBatch.concat([world.outcomes(d) for d in range(86, 100)])
    assert len(censored) < len(full)
    inv = lambda b: (b.label != W.DEPOSIT).mean()  # noqa: E731
    assert inv(censored) < inv(full) - 0.03
    # the default lag waits out the longest delay: nothing is censored
    ok = world.training_set(100)
    assert len(ok) == 7 * world.config.outcomes_per_day


# ---------------------------------------------------------------------------------------------
# input digest
# ---------------------------------------------------------------------------------------------


def test_input_digest_layout_and_sensitivity():
    names = ["age", "risk_tolerance"]
    x = np.array([61.0, 2.0])
    expected = hashlib.sha256(
        b"mrm-ledger/input-digest/v1\x00"
        + struct.pack(">I", 2)
        + struct.pack(">I", 3) + b"age"
        + struct.pack(">I", 14) + b"risk_tolerance"
        + struct.pack(">I", 3) + b"<f8"
        + struct.pack(">I", 1) + struct.pack(">Q", 2)
        + struct.pack("<dd", 61.0, 2.0)
    ).hexdigest()
    d = W.input_digest(x, names)
    assert d == expected
    assert W.input_digest(x.copy(), list(names)) == d  # stable
    assert W.input_digest(x.astype(">f8"), names) == d  # byte order is normalised
    assert W.input_digest(x, ["age", "risk_tol"]) != d  # name
    assert W.input_digest(x.astype(np.float32), names) != d  # dtype
    assert W.input_digest(x.reshape(1, 2), names) != d  # shape
    assert W.input_digest(np.array([61.0, 3.0]), names) != d  # value
    assert W.input_digest(np.array([0.0, 2.0]), names) != W.input_digest(np.array([-0.0, 2.0]), names)
    with pytest.raises(ValueError):
        W.input_digest(x, ["age"])


def test_batch_digests_equal_single_digests(world, story):
    m = story["promotable"]
    s = m.score(world.population(50))
    digests = s.input_digests()
    assert digests == [W.input_digest(s.X[i], m.feature_names) for i in range(len(s))]
    assert len(set(digests)) == len(digests)
    assert s.recommendation(3).input_digest == digests[3]


# ---------------------------------------------------------------------------------------------
# feature schemas
# ---------------------------------------------------------------------------------------------


def test_schema_change_for_the_dimension_change_entry():
    v1, v2 = W.SCHEMA_V1, W.SCHEMA_V2
    ch = W.schema_change(v1, v2)
    assert ch["old_dimension"] == 6 and ch["new_dimension"] == v2.dimension == 30
    assert ch["features_removed"] == ["invest_experience_years"]
    assert "debt_ratio" in ch["features_added"] and "senior_x_region_gyeonggi_incheon" in ch["features_added"]
    assert set(v1.names) - set(ch["features_removed"]) | set(ch["features_added"]) == set(v2.names)
    canon = json.dumps(list(v2.names), separators=(",", ":")).encode()
    assert ch["new_schema_digest"] == hashlib.sha256(canon).hexdigest() == v2.digest
    assert ch["old_schema_digest"] == v1.digest != v2.digest
    assert W.schema_digest(v2.names[::-1]) != v2.digest  # order matters
    first = W.schema_change(None, v1)
    assert first["old_schema_digest"] is None and first["features_added"] == list(v1.names)
    cust = W.customers_stream(1, "population", 0, 100)
    for sch in (v1, v2):
        X = sch.featurize(cust)
        assert X.shape == (100, sch.dimension) and X.dtype == np.float64 and np.isfinite(X).all()
    X2 = v2.featurize(cust)
    assert np.all(X2[:, list(v2.indicator_index)].sum(1) == 2 + (cust.age >= 60))


# ---------------------------------------------------------------------------------------------
# suitability (KFCPA Art. 17)
# ---------------------------------------------------------------------------------------------

BASE = dict(
    subject_id="SUB-test", age=45, age_band="40-49", income_tier=4, region="Seoul", gender="F",
    assets_krw=80_000_000.0, invest_experience_years=10, risk_tolerance=5, knowledge_level=3,
    debt_ratio=0.1, profile_confirmed=True,
)

# (overrides, expected riskiest allowed grade, binding criterion)
PROFILES = [
    ({}, 1, "questionnaire_type"),
    (dict(risk_tolerance=4), 2, "questionnaire_type"),
    (dict(risk_tolerance=3), 3, "questionnaire_type"),
    (dict(risk_tolerance=2), 5, "questionnaire_type"),
    (dict(risk_tolerance=1), 6, "questionnaire_type"),
    (dict(age=67, age_band="60-69"), 3, "age_cap"),
    (dict(age=83, age_band="70+"), 5, "age_cap"),
    (dict(invest_experience_years=0), 3, "experience_cap"),
    (dict(invest_experience_years=2), 2, "experience_cap"),
    (dict(assets_krw=2_000_000.0), 5, "assets_cap"),
    (dict(assets_krw=8_000_000.0), 2, "assets_cap"),
    (dict(debt_ratio=0.75), 5, "debt_cap"),
    (dict(debt_ratio=0.45), 2, "debt_cap"),
    (dict(knowledge_level=1), 3, "knowledge_cap"),
    (dict(age=72, age_band="70+", invest_experience_years=0, risk_tolerance=2), 5, "questionnaire_type"),
    (dict(profile_confirmed=False), 6, "profile_confirmed"),
    (dict(profile_confirmed=False, risk_tolerance=1, age=85, age_band="70+"), 6, "profile_confirmed"),
]


@pytest.mark.parametrize("overrides,allowed,binding", PROFILES)
def test_suitability_blocks_every_unsuitable_product(overrides, allowed, binding):
    prof = W.CustomerProfile(**{**BASE, **overrides})
    assert S.allowed_products(prof) == tuple(p.id for p in W.PRODUCTS if p.risk_grade >= allowed)
    scores = {p.id: 0.05 + 0.1 * i for i, p in enumerate(W.PRODUCTS)}  # riskier scores higher
    for p in W.PRODUCTS:
        r = S.check_suitability(prof, p.id, scores)
        assert r.criteria["allowed_risk_grade"] == allowed
        assert r.criteria["product_risk_grade"] == p.risk_grade
        assert r.binding == binding
        assert set(r.criteria) == set(S.CRITERIA) and all(isinstance(v, float) for v in r.criteria.values())
        if p.risk_grade >= allowed:
            assert (r.verdict, r.final_output, r.reason, r.criteria["suitable"]) == ("pass", p.id, None, 1.0)
            continue
        assert r.criteria["suitable"] == 0.0 and r.criteria["grade_margin"] < 0
        assert r.verdict == "modify"
        # replaced by the allowed product the model scores highest
        best = max(S.allowed_products(prof), key=lambda i: scores[i])
        assert r.final_output == best and r.criteria["replacement_score"] == scores[best]
        assert W.product(r.final_output).risk_grade >= allowed
        rule = S.RULE_UNCONFIRMED if not prof.profile_confirmed else S.RULE_GRADE
        assert r.rule == rule and rule in r.reason and "KFCPA Art. 17" in r.reason and p.id in r.reason
        blocked = S.check_suitability(prof, p.id, scores, policy="block")
        assert (blocked.verdict, blocked.final_output) == ("block", None)
        low = S.check_suitability(prof, p.id, {k: 0.01 for k in scores})
        assert (low.verdict, low.final_output) == ("block", None)  # nothing suitable worth serving


def test_unconfirmed_profiles_only_get_the_safest_products():
    prof = W.CustomerProfile(**{**BASE, "profile_confirmed": False})
    assert S.allowed_products(prof) == ("time_deposit",)
    r = S.check_suitability(prof, "gov_bond_fund")
    assert r.verdict == "modify" and r.final_output == "time_deposit" and "not confirmed" in r.reason


profiles = st.builds(
    W.CustomerProfile,
    subject_id=st.just("SUB-h"),
    age=st.integers(19, 95),
    age_band=st.just("x"),
    income_tier=st.integers(1, 5),
    region=st.sampled_from(W.REGIONS),
    gender=st.sampled_from(W.GENDERS),
    assets_krw=st.floats(1e5, 5e9),
    invest_experience_years=st.integers(0, 40),
    risk_tolerance=st.integers(1, 5),
    knowledge_level=st.integers(1, 3),
    debt_ratio=st.floats(0.0, 1.5),
    profile_confirmed=st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(profiles, min_size=1, max_size=20), st.data())
def test_batch_rule_equals_scalar_rule(profs, data):
    cust = W.Customers.from_profiles(profs)
    proposed = np.array(data.draw(st.lists(st.integers(0, W.N_PRODUCTS - 1), min_size=len(profs), max_size=len(profs))))
    scores = np.array(data.draw(st.lists(st.lists(st.floats(0, 1), min_size=8, max_size=8),
                                         min_size=len(profs), max_size=len(profs))))
    policy = data.draw(st.sampled_from(["modify", "block"]))
    b = S.check_suitability_batch(cust, proposed, scores, policy=policy)
    for i in range(len(profs)):
        r = b.result(i)
        assert b.verdicts()[i] == r.verdict
        assert (W.PRODUCT_IDS[b.final[i]] if b.final[i] >= 0 else None) == r.final_output
        assert b.criteria(i) == r.criteria
        # never serve an unsuitable product
        if r.final_output is not None:
            assert W.product(r.final_output).risk_grade >= r.criteria["allowed_risk_grade"]


def test_guardrail_on_served_batch_never_serves_unsuitable(world, story):
    cust = world.population(5000)
    s = story["promotable"].score(cust)
    g = S.check_suitability_batch(cust, s.top, s.proba)
    served = g.final >= 0
    assert np.all(W.PRODUCT_GRADES[g.final[served]] >= g.allowed_grade[served])
    rates = np.bincount(g.verdict, minlength=3) / len(cust)
    assert 0.6 < rates[0] < 0.95 and rates[1] > 0.05 and rates[2] > 0.001  # all three verdicts occur


# ---------------------------------------------------------------------------------------------
# models: attributions, evaluation, the fidelity-failing challenger
# ---------------------------------------------------------------------------------------------


def test_attributions_sum_to_the_decision_function(world, story):
    cust = world.population(400)
    for m in (story["bootstrap"], story["promotable"]):
        X = m.features(cust)
        logits = m.pipeline.decision_function(X)
        full = m.score(cust, top_k=m.schema.dimension)
        total = full.attr_contribution.sum(1) + full.intercept
        assert np.allclose(total, logits[np.arange(len(X)), full.top], atol=1e-9)
        assert np.array_equal(full.top, m.pipeline.predict(X))
        s = m.score(cust, top_k=5)
        mag = np.abs(s.attr_contribution)
        assert np.all(mag[:, :-1] >= mag[:, 1:])  # top-k by |contribution|
        assert np.array_equal(s.attr_value, X[np.arange(len(X))[:, None], s.attr_index])  # raw values
        assert np.allclose(mag[:, -1], np.sort(np.abs(full.attr_contribution), axis=1)[:, -5])
    r = story["promotable"].recommend(cust.row(0))
    assert r.method == M.ATTRIBUTION_METHOD == "linear_coef_x_transformed_value"
    assert r.product == max(r.scores, key=r.scores.get) and abs(sum(r.scores.values()) - 1) < 1e-9
    assert r.top_features == story["promotable"].score(cust[0]).top_features(0)
    feat, val, contrib = r.top_features[0]
    assert isinstance(feat, str) and isinstance(val, float) and isinstance(contrib, float)


def test_outputs_fit_the_ledger_columns(world, story):
    cust = world.population(20)
    s = story["promotable"].score(cust)
    g = S.check_suitability_batch(cust, s.top, s.proba)
    inf = table_spec("model_inference").arrow_schema
    att = table_spec("attribution").arrow_schema
    grd = table_spec("guardrail").arrow_schema
    pa.array([list(s.scores_map(i).items()) for i in range(len(s))], type=inf.field("scores").type)
    pa.array(s.input_digests(), type=inf.field("input_digest").type)
    pa.array([[dict(zip(("feature", "value", "contribution"), t)) for t in s.top_features(i)] for i in range(len(s))],
             type=att.field("top_features").type)
    pa.array([list(g.criteria(i).items()) for i in range(len(g))], type=grd.field("criteria").type)
    assert set(g.verdicts()) <= set(VERDICTS) and set(g.verdicts()) <= set(table_spec("guardrail").column("verdict").enum)


def test_fast_auc_matches_sklearn(holdouts, story):
    ev = M.evaluate(story["promotable"], holdouts[0])
    for t in W.TASKS:
        s, y = ev.task_data(t)
        assert abs(ev.task_auc[t] - roc_auc_score(y, s)) < 1e-12


def test_fidelity_failing_challenger_has_higher_auc_but_breaks_the_floor(story, holdouts):
    h = holdouts[M.holdout_epoch_for_week(M.STORY_WEEKS["fidelity_fail"])]
    champ = M.evaluate(story["bootstrap"], h)
    ff = M.evaluate(story["fidelity_fail"], h)
    assert ff.avg_auc > champ.avg_auc * 1.005  # clearly higher, and significantly so
    assert delong_avg_auc(champ, ff) < 1e-6
    fails = ff.fidelity_failures()
    assert fails == ["task_time_deposit"]
    assert ff.fidelity_kl["task_time_deposit"] > 1.25 * M.FIDELITY_FLOOR
    assert not champ.fidelity_failures()
    assert reference_gate(champ, ff)[0] == "reject"


def test_story_models_decide_as_planned(story, holdouts):
    ev = lambda role, e: M.evaluate(story[role], holdouts[e])  # noqa: E731
    # promotable: fs-v2 beats the fs-v1 bootstrap on every criterion
    champ, pro = ev("bootstrap", 0), ev("promotable", 0)
    assert not pro.fidelity_failures()
    assert pro.avg_auc > champ.avg_auc * 1.01
    assert delong_avg_auc(champ, pro) < 1e-6 and mcnemar(champ, pro) < 0.05 and pro.accuracy > champ.accuracy
    assert reference_gate(champ, pro)[0] == "promote"
    # degraded: the label mis-join really costs AUC, and competition rejects it
    deg = ev("degraded", 0)
    assert not deg.fidelity_failures()
    assert deg.avg_auc < pro.avg_auc * 0.995 and delong_avg_auc(pro, deg) < 1e-3
    decision, why = reference_gate(pro, deg)
    assert decision == "reject" and why.startswith("competition")
    # unfair beats the stale known-good on the refreshed holdout; recovery does on epoch 2
    assert reference_gate(ev("promotable", 1), ev("unfair", 1))[0] == "promote"
    assert reference_gate(ev("promotable", 2), ev("recovery", 2))[0] == "promote"


def test_full_year_plan_matches_the_reference_gate(world, holdouts):
    """Every weekly challenger of the plan, through the reference gate, with the week-27
    force-promote of known_good: the decisions are the plan's ``expected``."""
    plan = M.weekly_plan()
    assert len(plan) == 52 and [p.week for p in plan] == list(range(52))
    assert sum(p.schema_change is not None for p in plan) == 1
    known_good = M.version_name(M.STORY_WEEKS["known_good"])
    models, evals = {}, {}
    champion, decided = None, {}

    def evaluation(version, epoch):
        if (version, epoch) not in evals:
            evals[version, epoch] = M.evaluate(models[version], holdouts[epoch])
        return evals[version, epoch]

    for item in plan:
        m = M.train_model(world, item.spec)
        models[m.version] = m
        champ_ev = None if champion is None else evaluation(champion, item.holdout_epoch)
        decision, why = reference_gate(champ_ev, evaluation(m.version, item.holdout_epoch))
        decided[item.week] = decision
        assert decision == item.expected, (item.week, item.role, why)
        if decision in ("promote", "bootstrap"):
            champion = m.version
        if item.week == M.STORY_WEEKS["force_promote"]:
            champion = known_good
    roles = {p.role: p.week for p in plan}
    assert decided[roles["unfair"]] == "promote" and decided[roles["recovery"]] == "promote"


def test_fairness_breach_only_while_the_unfair_challenger_serves(world, story):
    """Serve the default 20k requests with the story's champions and run the reference
    monitor every day on the current champion's decisions of the trailing 7 days."""
    w = M.STORY_WEEKS
    unfair_days = range(7 * w["unfair"], 7 * w["force_promote"] + 1)  # Monday w26 .. Monday w27

    def champion(day):
        wk = day // 7
        if day in unfair_days:
            return "unfair"
        if wk < w["promotable"]:
            return "bootstrap"
        if wk < w["recovery"]:
            return "promotable"
        return "recovery"

    days, final, served_by, custs = [], [], [], []
    for rb in world.iter_requests(20_000):
        role = champion(int(rb.day[0]))
        s = story[role].score(rb.customers)
        g = S.check_suitability_batch(rb.customers, s.top, s.proba)
        days.append(rb.day), final.append(g.final), served_by.append(np.full(len(rb), role)), custs.append(rb.customers)
    day, fin, by, cust = np.concatenate(days), np.concatenate(final), np.concatenate(served_by), W.Customers.concat(custs)

    breaches = {}
    for d in range(7, W.YEAR_DAYS):
        role = champion(d - 1)
        sel = np.flatnonzero((day >= d - 7) & (day < d) & (by == role))
        found = [x for x in M.disparate_impact(cust.take(sel), fin[sel]) if x.breach]
        if found:
            breaches[d] = (role, found)
    assert breaches, "the unfair champion must trip the monitor"
    assert {r for r, _ in breaches.values()} == {"unfair"}
    tuesday = 7 * w["fairness_breach"] + 1
    assert tuesday in breaches
    cells = {(x.age_band, x.region) for x in breaches[tuesday][1]}
    assert ("60-69", "Gyeonggi-Incheon") in cells
    worst = min(breaches[tuesday][1], key=lambda x: x.di)
    assert worst.di < 0.4


# ---------------------------------------------------------------------------------------------
# the monitors' evidence, on the demo's scenario in small: the first 29 weeks at the default
# volume (the fairness incident, the switch to sign-off, the first online trial and the serving
# incident of week 28 all fall in them), read back from the ledger's own entries
# ---------------------------------------------------------------------------------------------

SMALL_WEEKS = 29


@pytest.fixture(scope="module")
def small_year(tmp_path_factory):
    from ledger.read import read_tables
    from mrm.demo.scenario import DEFAULT_REQUESTS, run_demo

    result = run_demo(tmp_path_factory.mktemp("small-year") / "demo-out", DEFAULT_REQUESTS, weeks=SMALL_WEEKS)
    tables = read_tables(result.paths.ledger)
    ops = [{**r, "details": json.loads(r["details"]) if r["details"] else {}}
           for r in tables["operation"].drop_columns(["mac"]).to_pylist()]
    promotions = [{**r, "details": json.loads(r["details"]) if r.get("details") else {}}
                  for r in tables["model_promotion"].drop_columns(["mac"]).to_pylist()]
    return {"result": result, "tables": tables, "ops": ops, "promotions": promotions}


def _ops(year, event_type, **match):
    return [o for o in year["ops"] if o["event_type"] == event_type and all(o.get(k) == v for k, v in match.items())]


def test_nightly_drift_runs_over_inputs_and_scores_and_one_breach_proposes_a_retrain(small_year):
    from mrm.demo.scenario import DRIFT_INPUTS

    r = small_year["result"]
    runs = _ops(small_year, "monitor_run", component="gates.monitor.drift")
    assert len(runs) == r.drift_runs == 7 * SMALL_WEEKS - 14  # every night once a week of reference exists
    assert [o["correlation_id"] for o in runs[:2]] == ["drift/2025-01-20", "drift/2025-01-21"]
    features = set(runs[0]["details"]["inputs"]["features"])
    assert {f"input:{f}" for f in DRIFT_INPUTS} <= features
    assert {f"score:{p}" for p in W.PRODUCT_IDS} <= features
    assert all(o["details"]["inputs"]["current_requests"] <= 1_000 for o in runs)  # bounded sample

    # one breach: the campaign week; its first significant alert proposes a retrain, once
    proposals = _ops(small_year, "retrain_proposal")
    assert len(proposals) == 1 and proposals[0]["seq"] == r.retrain_proposal_seq
    p = proposals[0]
    assert p["status"] == "proposed" and p["details"]["deploys"] is None
    alerts = {o["seq"]: o for o in _ops(small_year, "monitor_alert", component="gates.drift.psi")}
    asked = [alerts[s] for s in p["details"]["alert_seqs"]]
    assert asked[0]["seq"] == r.drift_alert_seq
    assert all(a["details"]["action"] == "propose_retrain" and a["status"] == "significant_drift" for a in asked)
    assert all(a["details"]["measurements"]["psi"] >= 0.25 for a in asked)
    assert "input:age" in p["details"]["features"]
    run = next(o for o in runs if o["seq"] == p["details"]["run_seq"])
    campaign = W.WorldConfig().campaign
    assert run["status"] == "alert" and asked[0]["correlation_id"] == run["correlation_id"]
    assert W.day_to_date(campaign.start_day) <= run["ts"].astimezone(W.KST).date() <= W.day_to_date(campaign.end_day)
    # before the campaign every feature was below the investigate line
    assert all(x["psi"] < 0.1 for o in runs if o["ts"] < p["ts"] - dt.timedelta(days=3) for x in o["details"]["results"])

    # nothing deployed: the next scheduled retrain answers it and its challenger goes through the gate
    answer = next(o for o in small_year["ops"] if o["seq"] == r.retrain_answered_seq)
    assert answer["event_type"] == "retrain_start" and answer["details"]["retrain_proposal_seq"] == p["seq"]
    between = [m for m in small_year["promotions"] if p["seq"] < m["seq"] < answer["seq"]]
    assert between == []
    gate = next(m for m in small_year["promotions"] if m["seq"] > answer["seq"])
    assert gate["challenger_version"] == answer["details"]["version"] and gate["trigger"] == "auto"
    assert gate["decision"] in ("reject", "promote")  # the gate decides, not the monitor


def test_online_trial_shadow_then_canary_with_the_observed_split_and_welch_then_sign_off(small_year):
    from scipy.stats import ttest_ind

    from gates.online import TrafficMode, route

    r, inf = small_year["result"], small_year["tables"]["model_inference"].to_pylist()
    version = r.trial_version
    assert version == "reco-2025w28"
    splits = _ops(small_year, "traffic_split", correlation_id=f"retail_invest_reco/{version}")
    assert [s["status"] for s in splits] == ["shadow", "canary_20"] and tuple(s["seq"] for s in splits) == r.trial_seqs
    pending = next(m for m in small_year["promotions"] if m["challenger_version"] == version)
    assert pending["decision"] == "pending_approval" and pending["seq"] < splits[0]["seq"]
    shadow_from, canary_from = splits[0]["ts"], splits[1]["ts"]

    # shadow: the challenger scored every request the champion served, and served none
    served = [i for i in inf if shadow_from <= i["ts"] < canary_from and i["route"] == "champion"]
    shadowed = [i for i in inf if i["model_version"] == version and i["route"] == "shadow"]
    assert served and {i["request_id"] for i in shadowed} == {i["request_id"] for i in served}
    assert all(shadow_from <= i["ts"] < canary_from + dt.timedelta(seconds=1) for i in shadowed)

    # canary: routed by request id, the split observed as recorded
    online = next(o for o in small_year["ops"] if o["seq"] == r.online_evaluation_seq)
    assert online["event_type"] == "online_evaluation"
    d = online["details"]
    window = [i for i in inf if canary_from <= i["ts"] < online["ts"]]
    arm = [i for i in window if i["model_version"] == version]
    champ = [i for i in window if i["model_version"] == d["champion_version"]]
    assert all(i["route"] == "challenger" for i in arm) and all(i["route"] == "champion" for i in champ)
    assert (d["n_challenger"], d["n_champion"]) == (len(arm), len(champ))
    experiment = splits[1]["details"]["experiment"]
    assert all(route(i["request_id"], TrafficMode.CANARY_20, experiment).served == i["route"] for i in window)
    assert 0.1 < len(arm) / len(window) < 0.3  # 20 % set

    # the online test: Welch on per-request latency, recomputed from the ledger
    (result,) = d["results"]
    assert result["metric"] == "latency_ms" and result["test"]["test"] == "welch"
    expected = ttest_ind([i["latency_ms"] for i in arm], [i["latency_ms"] for i in champ], equal_var=False)
    assert result["test"]["p_value"] == pytest.approx(expected.pvalue, rel=1e-6)
    assert result["outcome"] == ("no_significant_difference" if expected.pvalue >= 0.05 else result["outcome"])

    # then the committee's sign-off, citing the trial
    approval = next(m for m in small_year["promotions"]
                    if m["challenger_version"] == version and m["decision"] in ("approve", "decline"))
    assert approval["seq"] > online["seq"] and approval["decision"] == "approve"
    assert f"online trial at seq {online['seq']}" in approval["reason"]


def test_serving_incident_rolls_production_back_with_its_trigger_and_the_manifest_swap(small_year):


    from gates.policy import load_policy
    from mrm.demo.scenario import POLICY_FILE

    r, inf = small_year["result"], small_year["tables"]["model_inference"].to_pylist()
    policy = load_policy(POLICY_FILE)
    assert r.rolled_back_version == "reco-2025w28"
    alert = next(o for o in small_year["ops"] if o["seq"] == r.rollback_alert_seq)
    assert alert["event_type"] == "monitor_alert" and alert["component"] == "gates.online.rollback"
    m = alert["details"]["measurements"]
    assert alert["details"]["action"] == "rollback"
    assert m["latency_p99_ratio"] > policy.rollback.max_latency_p99_ratio
    # the p99 the trigger saw is the live version's, on its served requests since the swap
    approve_swap = next(o for o in _ops(small_year, "manifest_swap") if o["details"]["to_version"] == r.rolled_back_version)
    live = [i["latency_ms"] for i in inf if i["model_version"] == r.rolled_back_version and i["route"] == "champion"
            and approve_swap["ts"] <= i["ts"] < alert["ts"]]
    assert m["requests"] == len(live) and m["latency_p99_ms"] == pytest.approx(float(np.quantile(live, 0.99)))

    rollback = next(p for p in small_year["promotions"] if p["seq"] == r.rollback_seq)
    assert rollback["decision"] == "rollback" and rollback["trigger"] == "auto" and rollback["operator"] is None
    assert (rollback["champion_version"], rollback["challenger_version"]) == (r.rolled_back_version, "reco-2025w09")
    assert rollback["details"]["replay"]["alert"]["seq"] == alert["seq"]
    assert rollback["actor"] == "serving-monitor"

    swap = next(o for o in _ops(small_year, "manifest_swap") if o["seq"] > rollback["seq"])
    assert swap["details"] == {"slot": "retail_invest_reco", "from_version": r.rolled_back_version,
                               "to_version": "reco-2025w09", "promotion_seq": rollback["seq"]}
    after = [i for i in inf if i["ts"] > swap["ts"] and i["route"] == "champion"]
    assert after and all(i["model_version"] != r.rolled_back_version for i in after)
