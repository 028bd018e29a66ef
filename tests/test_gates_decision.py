"""The promotion ladder: every branch, the exact model_promotion entry it yields, replay.

The holdout is pROC's aSAH data (see test_gates_stats.py): the champion scores patients by
s100b (task_churn) or ndka (task_next_best), the challenger by the WFNS grade. pROC's roc.test
gives for these pairs Z = 2.20898359144091, p = 0.0271757822291882 (wfns vs s100b) and
Z = 2.79777591868904, p = 0.00514557970691098 (wfns vs ndka), which the significance rows of the
entries below must carry.
"""

from __future__ import annotations

import csv
import copy
import gzip
import hashlib
import io
import json
from typing import Any

import pytest
import rfc8785

from gates.decision import (
    Decision,
    GateInputError,
    GateInputs,
    HoldoutMismatch,
    MissingMetric,
    ReplayError,
    decide,
    decide_approval,
    decide_rollback,
    replay,
)
from gates.evaluation import (
    EvaluationError,
    EvaluationFile,
    evaluation_from_mapping,
    evaluation_to_dict,
    holdout_digest,
    observe_artifacts,
)
from gates.metrics import accuracy, auc
from gates.policy import parse_policy, policy_digest
from .test_gates_stats import ASAH_CSV  # pytest puts tests/ on sys.path (prepend mode)

import numpy as np

ROWS = list(csv.DictReader(io.StringIO(ASAH_CSV)))
IDS = [f"p{i:03d}" for i in range(1, len(ROWS) + 1)]
LABELS = [1.0 if r["outcome"] == "Poor" else 0.0 for r in ROWS]
CHAMPION_SCORES = {"task_churn": [float(r["s100b"]) for r in ROWS],
                   "task_next_best": [float(r["ndka"]) / 100 for r in ROWS]}
CHALLENGER_SCORES = {t: [float(r["wfns"]) / 5 for r in ROWS] for t in CHAMPION_SCORES}
CHAMPION_THRESHOLD, CHALLENGER_THRESHOLD = 0.25, 0.6

POLICY_TOML = """
[gate]
primary_metric = "auc"
min_relative_improvement = 0.005
max_secondary_degradation = 0.02
alpha = 0.05
min_sample_size = 100
auto_promote = {auto}

[bootstrap]
resamples = 200
seed = 7

[metrics.auc]
test = "delong"

[metrics.accuracy]
test = "mcnemar"

[fidelity]
default_max = 0.20
per_task_max = {{ task_churn = 0.15 }}

[guardrails.p99_latency_ms]
max = 200.0

[guardrails.disparate_impact]
min = 0.8
max = 1.25

[functional]
required_tasks = ["task_churn", "task_next_best"]
required_horizons = [5, 15, 60]
"""

ART = "a" * 64


def policy(auto: bool = True, **replace: str):
    text = POLICY_TOML.format(auto="true" if auto else "false")
    for old, new in replace.items():
        text = text.replace(old, new)
    return parse_policy(text, "test-policy.toml")


def evaluation(version: str, scores: dict[str, list[float]], threshold: float, *, trained_end: str,
               schema: str = "schema-1", fidelity=None, guardrails=None, tasks=None, **overrides) -> dict[str, Any]:
    tasks = tasks or sorted(scores)
    holdout = {t: {"sample_ids": list(IDS), "labels": list(LABELS), "scores": list(scores[t])} for t in tasks}
    y = np.asarray(LABELS)
    metrics = {t: {"auc": auc(y, np.asarray(scores[t])), "accuracy": accuracy(y, np.asarray(scores[t]), threshold)}
               for t in tasks}
    d = {
        "format": "mrm-gate-evaluation/1",
        "slot": "credit_pd",
        "version": version,
        "metrics": metrics,
        "fidelity": fidelity if fidelity is not None else {t: {"kl": 0.05} for t in tasks},
        "guardrails": guardrails if guardrails is not None else {"p99_latency_ms": 150.0, "disparate_impact": 0.95},
        "horizons": [5, 15, 60],
        "holdout": {"digest": "", "tasks": holdout},
        "lineage": {
            "artifacts": [{"path": f"models/{version}/model.bin", "sha256": ART}],
            "data_snapshot_digest": "snap-" + version,
            "code_commit": "c0ffee",
            "config_digest": "cfg-1",
            "seed": 7,
            "trained_end": trained_end,
            "feature_schema_digest": schema,
            "thresholds": {t: threshold for t in tasks},
        },
    }
    d.update(overrides)
    d["holdout"]["digest"] = _digest(d)
    return d


def _digest(d: dict[str, Any]) -> str:
    from gates.evaluation import _task_samples, _Reader  # the same parser the gate uses

    r = _Reader("fixture")
    return holdout_digest({t: _task_samples(r, v, t) for t, v in d["holdout"]["tasks"].items()})


def champion_dict(**kw):
    return evaluation("v011", CHAMPION_SCORES, CHAMPION_THRESHOLD, trained_end="2026-04-13T03:00:00Z", **kw)


def challenger_dict(**kw):
    return evaluation("v012", CHALLENGER_SCORES, CHALLENGER_THRESHOLD, trained_end="2026-04-20T03:00:00Z", **kw)


def inputs(chal=None, champ="default", *, auto=True, observed=None, **kw) -> GateInputs:
    chal_e = evaluation_from_mapping(chal or challenger_dict())
    champ_e = None if champ is None else evaluation_from_mapping(champion_dict() if champ == "default" else champ)
    if observed is None:
        observed = {a.path: a.sha256 for a in chal_e.lineage.artifacts}
    return GateInputs(chal_e, champ_e, policy(auto), observed_artifacts=observed, **kw)


def assert_entry(actual: Any, expected: Any, path: str = "entry") -> None:
    """Equality, with floats compared to 1e-9 relative (they come from independent computations)."""
    if isinstance(expected, float) and not isinstance(expected, bool):
        assert isinstance(actual, float), f"{path}: {actual!r} is not a float"
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12), f"{path}: {actual!r} != {expected!r}"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for k in expected:
            assert_entry(actual[k], expected[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_entry(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def roundtrip(entry: dict[str, Any]) -> dict[str, Any]:
    """What the ledger stores and gives back: RFC 8785 text, parsed again."""
    return json.loads(rfc8785.dumps(entry))


# --- expected values, computed independently of the gate ------------------------------------

from sklearn.metrics import roc_auc_score  # noqa: E402

Y = np.asarray(LABELS)
AUC = {
    ("champion", "task_churn"): roc_auc_score(Y, CHAMPION_SCORES["task_churn"]),
    ("champion", "task_next_best"): roc_auc_score(Y, CHAMPION_SCORES["task_next_best"]),
    ("challenger", "task_churn"): roc_auc_score(Y, CHALLENGER_SCORES["task_churn"]),
}
ACC = {
    "champion_churn": float(np.mean((np.asarray(CHAMPION_SCORES["task_churn"]) >= 0.25) == (Y == 1))),
    "champion_next": float(np.mean((np.asarray(CHAMPION_SCORES["task_next_best"]) >= 0.25) == (Y == 1))),
    "challenger": float(np.mean((np.asarray(CHALLENGER_SCORES["task_churn"]) >= 0.6) == (Y == 1))),
}
# pROC roc.test on aSAH (wfns vs s100b, wfns vs ndka); Holm doubles the smaller p here.
Z_CHURN, P_CHURN = 2.20898359144091, 0.0271757822291882
Z_NEXT, P_NEXT = 2.79777591868904, 0.00514557970691098

THRESHOLDS = {
    "min_relative_improvement": 0.005,
    "max_secondary_degradation": 0.02,
    "alpha": 0.05,
    "min_sample_size": 100.0,
    "fidelity.task_churn.kl.max": 0.15,
    "fidelity.task_next_best.kl.max": 0.2,
    "guardrail.disparate_impact.min": 0.8,
    "guardrail.disparate_impact.max": 1.25,
    "guardrail.p99_latency_ms.max": 200.0,
}
FIDELITY_OK = [
    {"name": "fidelity:task_churn", "passed": True, "detail": "kl 0.05 <= max 0.15"},
    {"name": "fidelity:task_next_best", "passed": True, "detail": "kl 0.05 <= max 0.2"},
]
FUNCTIONAL_OK = [
    {"name": "tasks_present", "passed": True, "detail": "all 2 required tasks present"},
    {"name": "horizons_present", "passed": True, "detail": "horizons 5, 15, 60 present"},
    {"name": "artifact_digests", "passed": True, "detail": "1 artifact(s) match their SHA-256"},
    {"name": "thresholds_in_unit_interval", "passed": True, "detail": "all thresholds within [0, 1]"},
    {"name": "training_data_not_older", "passed": True,
     "detail": "challenger trained_end 2026-04-20T03:00:00+00:00 >= champion 2026-04-13T03:00:00+00:00"},
    {"name": "feature_schema", "passed": True, "detail": "unchanged"},
]


def _rel(a: float, b: float) -> float:
    return (b - a) / abs(a)


def winning_entry(decision: str, reason: str) -> dict[str, Any]:
    a_churn, a_next = AUC[("champion", "task_churn")], AUC[("champion", "task_next_best")]
    a_chal = AUC[("challenger", "task_churn")]
    mean_champ, mean_chal = (a_churn + a_next) / 2, a_chal
    return {
        "slot": "credit_pd",
        "champion_version": "v011",
        "challenger_version": "v012",
        "decision": decision,
        "trigger": "auto",
        "operator": None,
        "reason": reason,
        "comparison": [
            {"metric": "mean_auc", "champion": mean_champ, "challenger": mean_chal,
             "delta_rel": _rel(mean_champ, mean_chal), "threshold": 0.005, "passed": True},
            {"metric": "task_churn/auc", "champion": a_churn, "challenger": a_chal,
             "delta_rel": _rel(a_churn, a_chal), "threshold": -0.02, "passed": True},
            {"metric": "task_churn/accuracy", "champion": ACC["champion_churn"], "challenger": ACC["challenger"],
             "delta_rel": _rel(ACC["champion_churn"], ACC["challenger"]), "threshold": -0.02, "passed": True},
            {"metric": "task_next_best/auc", "champion": a_next, "challenger": a_chal,
             "delta_rel": _rel(a_next, a_chal), "threshold": -0.02, "passed": True},
            {"metric": "task_next_best/accuracy", "champion": ACC["champion_next"], "challenger": ACC["challenger"],
             "delta_rel": _rel(ACC["champion_next"], ACC["challenger"]), "threshold": -0.02, "passed": True},
        ],
        "significance": [
            {"metric": "task_churn/auc", "test": "delong", "statistic": Z_CHURN, "p_value": P_CHURN,
             "p_adjusted": P_CHURN, "alpha": 0.05, "significant": True},
            {"metric": "task_next_best/auc", "test": "delong", "statistic": Z_NEXT, "p_value": P_NEXT,
             "p_adjusted": 2 * P_NEXT, "alpha": 0.05, "significant": True},
        ],
        "thresholds": THRESHOLDS,
        "details": {
            "gate_format": 2,
            "stage": "competition",
            "checks": FIDELITY_OK + FUNCTIONAL_OK + [
                {"name": "sample_size", "passed": True, "detail": "every task has at least 100 holdout samples"},
                {"name": "primary_improvement", "passed": True, "detail": "mean_auc 0.671663 -> 0.823679, +22.63% >= +0.50%"},
                {"name": "primary_significance", "passed": True, "detail":
                 "significant improvement after Holm at alpha 0.05 on 2 of 2 tasks: task_churn/auc, task_next_best/auc"},
                {"name": "degradation:task_churn/auc", "passed": True, "detail": "0.731369 -> 0.823679, +12.62% within -2.00%"},
                {"name": "degradation:task_churn/accuracy", "passed": True, "detail": "0.734513 -> 0.743363, +1.20% within -2.00%"},
                {"name": "degradation:task_next_best/auc", "passed": True, "detail": "0.611958 -> 0.823679, +34.60% within -2.00%"},
                {"name": "degradation:task_next_best/accuracy", "passed": True,
                 "detail": "0.646018 -> 0.743363, +15.07% within -2.00%"},
                {"name": "guardrail:disparate_impact", "passed": True, "detail": "0.95 within the allowed range ([0.8, 1.25])"},
                {"name": "guardrail:p99_latency_ms", "passed": True, "detail": "150 within the allowed range (at most 200)"},
            ],
        },
    }


WIN = ("mean_auc +22.63% (>= +0.50%), significant on 2 of 2 tasks after Holm at alpha 0.05, "
       "no metric degrades more than 2.00%, all 2 guardrail(s) within bounds")


# details keys of GATE_FORMAT 2 that tests of their own compare (test_sql_links.py and below)
LINK_KEYS = ("evaluated", "skipped_checks", "skipped_checks_from_seq", "responds_to_seq")


def entry_without_replay_and_tests(d: Decision) -> dict[str, Any]:
    e = d.to_promotion_entry()
    replay_inputs = e["details"].pop("replay")
    tests = e["details"].pop("tests")
    for key in LINK_KEYS:
        e["details"].pop(key, None)
    assert replay_inputs["kind"] in ("gate", "approval", "rollback")
    assert all(set(t) >= {"metric", "test", "statistic", "p_value", "n"} for t in tests)
    return e


# --- the ladder ---------------------------------------------------------------------------


def test_promote_entry_is_exact():
    d = decide(inputs(auto=True))
    assert d.outcome == "promote"
    assert_entry(entry_without_replay_and_tests(d), winning_entry("promote", f"challenger wins: {WIN}"))


def test_auto_promote_false_gives_pending_approval_not_reject():
    d = decide(inputs(auto=False))
    assert d.outcome == "pending_approval"
    assert_entry(entry_without_replay_and_tests(d), winning_entry(
        "pending_approval",
        f"challenger passes every gate ({WIN}); auto_promote is off, so it waits for a human sign-off"))


def test_force_promote_entry_is_exact_and_skips_every_check():
    # Even a challenger that would fail fidelity is promoted when an operator forces it.
    bad = challenger_dict(fidelity={"task_churn": {"kl": 0.9}, "task_next_best": {"kl": 0.9}})
    d = decide(inputs(bad, force_promote=True, operator="eng-42", reason="DI breach emergency rollback"))
    assert_entry(entry_without_replay_and_tests(d), {
        "slot": "credit_pd", "champion_version": "v011", "challenger_version": "v012",
        "decision": "force_promote", "trigger": "manual", "operator": "eng-42",
        "reason": "force-promote by eng-42: DI breach emergency rollback; every other check skipped",
        "comparison": [], "significance": [], "thresholds": {},
        "details": {"gate_format": 2, "stage": "force_promote", "checks": [
            {"name": "force_promote", "passed": True, "detail": "operator eng-42: DI breach emergency rollback"}]},
    })


@pytest.mark.parametrize("operator, reason", [(None, "x"), ("eng-42", None), ("  ", "x"), ("eng-42", " ")])
def test_force_promote_needs_operator_and_reason(operator, reason):
    with pytest.raises(GateInputError, match="force-promote needs"):
        decide(inputs(force_promote=True, operator=operator, reason=reason))


def test_bootstrap_entry_is_exact():
    d = decide(inputs(champ=None))
    assert_entry(entry_without_replay_and_tests(d), {
        "slot": "credit_pd", "champion_version": None, "challenger_version": "v012",
        "decision": "bootstrap", "trigger": "auto", "operator": None,
        "reason": "no champion in slot credit_pd: v012 bootstraps the slot",
        "comparison": [], "significance": [], "thresholds": {},
        "details": {"gate_format": 2, "stage": "bootstrap", "checks": [
            {"name": "champion_exists", "passed": True, "detail": "slot credit_pd has no production version"}]},
    })


def test_without_auto_promote_bootstrap_waits_for_a_sign_off():
    d = decide(inputs(champ=None, auto=False))
    assert (d.outcome, d.stage, d.champion_version) == ("pending_approval", "bootstrap", None)
    assert d.reason == ("no champion in slot credit_pd: v012 would bootstrap the slot; auto_promote is off, "
                        "so it waits for a human sign-off")


def test_an_approval_must_come_from_someone_other_than_the_requester():
    with pytest.raises(GateInputError, match="separation of duties"):
        decide_approval("credit_pd", "v012", "v011", approve=True, operator="dev-3", reason="ok",
                        requested_by=("svc-gate", "dev-3"))
    ok = decide_approval("credit_pd", "v012", "v011", approve=True, operator="chair", reason="ok",
                         requested_by=("svc-gate", None, "dev-3"))
    assert (ok.outcome, ok.replay_inputs["requested_by"]) == ("approve", ["dev-3", "svc-gate"])
    withdrawn = decide_approval("credit_pd", "v012", "v011", approve=False, operator="dev-3", reason="withdrawn",
                                requested_by=("dev-3",))
    assert withdrawn.outcome == "decline"


def test_fidelity_failure_rejects_before_competition_naming_every_failing_task():
    # The challenger is far better on AUC; fidelity still decides first.
    chal = challenger_dict(fidelity={"task_churn": {"kl": 0.31}, "task_next_best": {"kl": 0.25}})
    d = decide(inputs(chal))
    assert_entry(entry_without_replay_and_tests(d), {
        "slot": "credit_pd", "champion_version": "v011", "challenger_version": "v012",
        "decision": "reject", "trigger": "auto", "operator": None,
        "reason": "rejected by the fidelity floor, before competition: 2 failing checks: "
                  "fidelity:task_churn (kl 0.31 > max 0.15); fidelity:task_next_best (kl 0.25 > max 0.2)",
        "comparison": [], "significance": [], "thresholds": THRESHOLDS,
        "details": {"gate_format": 2, "stage": "fidelity", "checks": [
            {"name": "fidelity:task_churn", "passed": False, "detail": "kl 0.31 > max 0.15"},
            {"name": "fidelity:task_next_best", "passed": False, "detail": "kl 0.25 > max 0.2"}]},
    })


def test_functional_failures_reject_naming_every_failing_check():
    chal = challenger_dict(schema="schema-2", horizons=[5, 15])
    chal["lineage"]["trained_end"] = "2026-04-01T00:00:00Z"
    chal["lineage"]["thresholds"]["task_churn"] = 1.5
    observed = {"models/v012/model.bin": "b" * 64}
    d = decide(inputs(chal, observed=observed))
    fail = {
        "horizons_present": "missing: 60",
        "artifact_digests": "digest mismatch: models/v012/model.bin",
        "thresholds_in_unit_interval": "outside [0, 1]: task_churn=1.5",
        "training_data_not_older":
            "challenger trained_end 2026-04-01T00:00:00+00:00 < champion 2026-04-13T03:00:00+00:00",
        "feature_schema": "changed from schema-1 to schema-2 and the policy blocks schema changes",
    }
    checks = FIDELITY_OK + [
        {"name": c["name"], "passed": c["name"] not in fail, "detail": fail.get(c["name"], c["detail"])}
        for c in FUNCTIONAL_OK
    ]
    listed = "; ".join(f"{k} ({v})" for k, v in fail.items())
    assert_entry(entry_without_replay_and_tests(d), {
        "slot": "credit_pd", "champion_version": "v011", "challenger_version": "v012",
        "decision": "reject", "trigger": "auto", "operator": None,
        "reason": f"rejected by functional checks: 5 failing checks: {listed}",
        "comparison": [], "significance": [], "thresholds": THRESHOLDS,
        "details": {"gate_format": 2, "stage": "functional", "checks": checks},
    })


def test_functional_missing_task_and_unobserved_artifacts():
    chal = challenger_dict(tasks=["task_churn"], fidelity={"task_churn": {"kl": 0.05}})
    d = decide(GateInputs(evaluation_from_mapping(chal), evaluation_from_mapping(champion_dict()), policy()))
    assert d.outcome == "reject" and d.stage == "functional"
    assert [(c.name, c.detail) for c in d.failing_checks] == [
        ("tasks_present", "missing: task_next_best"),
        ("artifact_digests", "artifact digests were not observed"),
    ]


def test_schema_change_passes_when_the_policy_allows_it():
    d = decide(GateInputs(evaluation_from_mapping(challenger_dict(schema="schema-2")),
                          evaluation_from_mapping(champion_dict()),
                          policy(**{'required_horizons = [5, 15, 60]':
                                    'required_horizons = [5, 15, 60]\nallow_feature_schema_change = true'}),
                          observed_artifacts={"models/v012/model.bin": ART}))
    assert d.outcome == "promote"
    assert ("feature_schema", True, "changed from schema-1 to schema-2 (allowed by policy)") in [
        (c.name, c.passed, c.detail) for c in d.checks]


def test_competition_rejects_on_guardrails_including_the_disparate_impact_upper_bound():
    chal = challenger_dict(guardrails={"p99_latency_ms": 240.0, "disparate_impact": 1.3})
    d = decide(inputs(chal))
    expected = winning_entry("reject",
                             "rejected by competition and guardrails: 2 failing checks: "
                             "guardrail:disparate_impact (1.3 outside the allowed range ([0.8, 1.25])); "
                             "guardrail:p99_latency_ms (240 outside the allowed range (at most 200))")
    expected["details"]["checks"][-2:] = [
        {"name": "guardrail:disparate_impact", "passed": False, "detail": "1.3 outside the allowed range ([0.8, 1.25])"},
        {"name": "guardrail:p99_latency_ms", "passed": False, "detail": "240 outside the allowed range (at most 200)"},
    ]
    assert_entry(entry_without_replay_and_tests(d), expected)


def test_competition_rejects_a_worse_challenger_naming_every_failing_check():
    # Swap roles: the WFNS model is champion, s100b/ndka the challenger.
    champ = evaluation("v011", CHALLENGER_SCORES, CHALLENGER_THRESHOLD, trained_end="2026-04-13T03:00:00Z")
    chal = evaluation("v012", CHAMPION_SCORES, CHAMPION_THRESHOLD, trained_end="2026-04-20T03:00:00Z")
    d = decide(inputs(chal, champ))
    assert d.outcome == "reject" and d.stage == "competition"
    names = [c.name for c in d.failing_checks]
    # task_churn accuracy drops 1.2 %: inside the 2 % tolerance, so not named.
    assert names == ["primary_improvement", "primary_significance", "degradation:task_churn/auc",
                     "degradation:task_next_best/auc", "degradation:task_next_best/accuracy"]
    # Significant, but in the wrong direction: not a win.
    assert all(s.significant and s.statistic < 0 for s in d.significance)
    assert d.reason.startswith("rejected by competition and guardrails: 5 failing checks: primary_improvement (")
    assert "primary_significance (significant improvement after Holm at alpha 0.05 on 0 of 2 tasks" in d.reason


def test_small_improvement_that_is_not_significant_is_rejected():
    # Challenger = champion scores plus tiny noise on a few samples: a hair better at most.
    rng = np.random.default_rng(3)
    near = {t: list(np.asarray(s) + rng.normal(0, 1e-3, len(s)) * (rng.random(len(s)) < 0.1))
            for t, s in CHAMPION_SCORES.items()}
    chal = evaluation("v012", near, CHAMPION_THRESHOLD, trained_end="2026-04-20T03:00:00Z")
    d = decide(inputs(chal))
    assert d.outcome == "reject"
    assert "primary_improvement" in [c.name for c in d.failing_checks]
    assert "primary_significance" in [c.name for c in d.failing_checks]


def test_too_small_holdout_is_a_named_failure_not_a_test_on_noise():
    d = decide(GateInputs(evaluation_from_mapping(challenger_dict()), evaluation_from_mapping(champion_dict()),
                          policy(**{"min_sample_size = 100": "min_sample_size = 500"}),
                          observed_artifacts={"models/v012/model.bin": ART}))
    assert d.outcome == "reject" and d.significance == ()
    assert [(c.name, c.detail) for c in d.failing_checks] == [
        ("sample_size", "below 500 samples: task_churn (113), task_next_best (113)"),
        ("primary_significance", "not tested: holdout below the minimum sample size"),
    ]


def test_paired_bootstrap_primary_records_its_seed():
    p = policy(**{'primary_metric = "auc"': 'primary_metric = "accuracy"'})
    d = decide(GateInputs(evaluation_from_mapping(challenger_dict()), evaluation_from_mapping(champion_dict()), p,
                          observed_artifacts={"models/v012/model.bin": ART}))
    assert [s.test for s in d.significance] == ["mcnemar", "mcnemar"]
    p2 = policy(**{'[metrics.accuracy]\ntest = "mcnemar"': '[metrics.brier]\ntest = "paired_bootstrap"',
                   'primary_metric = "auc"': 'primary_metric = "brier"'})
    chal, champ = challenger_dict(), champion_dict()
    for e, scores in ((chal, CHALLENGER_SCORES), (champ, CHAMPION_SCORES)):
        for t in e["metrics"]:
            s = np.clip(np.asarray(scores[t]), 0, 1)
            e["holdout"]["tasks"][t]["scores"] = list(s)
            e["metrics"][t] = {"auc": auc(Y, s), "brier": float(np.mean((s - Y) ** 2))}
        e["holdout"]["digest"] = _digest(e)
    d = decide(GateInputs(evaluation_from_mapping(chal), evaluation_from_mapping(champ), p2,
                          observed_artifacts={"models/v012/model.bin": ART}))
    assert [s.test for s in d.significance] == ["paired_bootstrap", "paired_bootstrap"]
    assert all(t.seed == 7 and t.resamples == 200 and t.extra["stratified"] for t in d.tests)


# --- inputs that must raise ---------------------------------------------------------------


def test_missing_metric_raises_and_is_never_zero():
    champ = champion_dict()
    del champ["metrics"]["task_next_best"]["accuracy"]
    with pytest.raises(MissingMetric, match="v011: metric 'accuracy' is missing for task task_next_best"):
        decide(inputs(champ=champ))


def test_missing_fidelity_and_guardrail_values_raise():
    with pytest.raises(MissingMetric, match="fidelity 'kl' is missing for task task_next_best"):
        decide(inputs(challenger_dict(fidelity={"task_churn": {"kl": 0.01}})))
    with pytest.raises(MissingMetric, match="guardrail 'disparate_impact' has no value"):
        decide(inputs(challenger_dict(guardrails={"p99_latency_ms": 100.0})))


def _mutate_holdout(field: str):
    champ = champion_dict()
    for t in champ["holdout"]["tasks"].values():
        if field == "ids":
            t["sample_ids"][5], t["sample_ids"][6] = t["sample_ids"][6], t["sample_ids"][5]
        elif field == "labels":
            t["labels"][0] = 1.0 - t["labels"][0]
        else:
            for k in ("sample_ids", "labels", "scores"):
                t[k] = t[k][:-1]
    # keep the champion self-consistent so only the pairing is wrong
    y = {t: np.asarray(v["labels"]) for t, v in champ["holdout"]["tasks"].items()}
    for t, v in champ["holdout"]["tasks"].items():
        s = np.asarray(v["scores"])
        champ["metrics"][t] = {"auc": auc(y[t], s), "accuracy": accuracy(y[t], s, CHAMPION_THRESHOLD)}
    champ["holdout"]["digest"] = _digest(champ)
    return champ


@pytest.mark.parametrize("field, message", [
    ("ids", r"task task_churn: sample ids differ from position 5 \('p007' vs 'p006'\)"),
    ("labels", r"task task_churn: labels differ at sample 'p001' \(1 vs 0\)"),
    ("length", r"task task_churn: champion v011 has 112 holdout samples, challenger v012 has 113"),
])
def test_mismatched_holdout_raises(field, message):
    with pytest.raises(HoldoutMismatch, match=message):
        decide(inputs(champ=_mutate_holdout(field)))


def test_reported_metric_that_the_predictions_do_not_give_raises():
    chal = challenger_dict()
    chal["metrics"]["task_churn"]["auc"] = 0.99
    with pytest.raises(GateInputError, match="reports auc 0.99 but its holdout predictions give 0.823679"):
        decide(inputs(chal))


def test_slots_must_match():
    champ = champion_dict(slot="other_slot")
    with pytest.raises(GateInputError, match="champion v011 is for slot other_slot"):
        decide(inputs(champ=champ))


# --- approvals, rollbacks -----------------------------------------------------------------


def test_approval_and_decline_entries():
    a = decide_approval("credit_pd", "v012", "v011", approve=True, operator="mrm-chair", reason="committee 2026-04-24")
    assert_entry(entry_without_replay_and_tests(a), {
        "slot": "credit_pd", "champion_version": "v011", "challenger_version": "v012", "decision": "approve",
        "trigger": "manual", "operator": "mrm-chair", "reason": "v012 approved by mrm-chair: committee 2026-04-24",
        "comparison": [], "significance": [], "thresholds": {},
        "details": {"gate_format": 2, "stage": "approval",
                    "checks": [{"name": "human_sign_off", "passed": True, "detail": "approved by mrm-chair"}]},
    })
    d = decide_approval("credit_pd", "v012", "v011", approve=False, operator="mrm-chair", reason="needs backtest")
    assert (d.outcome, d.reason) == ("decline", "v012 declined by mrm-chair: needs backtest")
    with pytest.raises(GateInputError, match="needs an operator"):
        decide_approval("credit_pd", "v012", "v011", approve=True, operator="", reason="x")


def test_rollback_entry_and_its_preconditions():
    d = decide_rollback("credit_pd", "v012", "v010", ["v009", "v010", "v011"], reason="p99 latency breach",
                        operator="eng-7")
    assert_entry(entry_without_replay_and_tests(d), {
        "slot": "credit_pd", "champion_version": "v012", "challenger_version": "v010", "decision": "rollback",
        "trigger": "manual", "operator": "eng-7",
        "reason": "rollback of slot credit_pd from v012 to v010 by eng-7: p99 latency breach",
        "comparison": [], "significance": [], "thresholds": {},
        "details": {"gate_format": 2, "stage": "rollback", "checks": [
            {"name": "target_was_production", "passed": True, "detail": "v010 was production in slot credit_pd before"}]},
    })
    with pytest.raises(GateInputError, match="cannot roll back slot credit_pd to v013: it was never production"):
        decide_rollback("credit_pd", "v012", "v013", ["v010"], reason="x", operator="eng-7")
    with pytest.raises(GateInputError, match="needs an operator"):
        decide_rollback("credit_pd", "v012", "v010", ["v010"], reason="x")
    with pytest.raises(GateInputError, match="needs the monitor alert"):
        decide_rollback("credit_pd", "v012", "v010", ["v010"], reason="x", trigger="auto")
    auto = decide_rollback("credit_pd", "v012", "v010", ["v010"], reason="error rate 3.1% > 2%", trigger="auto",
                           alert={"monitor": "online.rollback", "status": "breach"})
    assert (auto.trigger, auto.operator) == ("auto", None)
    assert auto.reason == "rollback of slot credit_pd from v012 to v010 by the monitor: error rate 3.1% > 2%"


# --- replay -------------------------------------------------------------------------------


def _every_outcome() -> list[Decision]:
    worse = inputs(evaluation("v012", CHAMPION_SCORES, CHAMPION_THRESHOLD, trained_end="2026-04-20T03:00:00Z"),
                   evaluation("v011", CHALLENGER_SCORES, CHALLENGER_THRESHOLD, trained_end="2026-04-13T03:00:00Z"))
    return [
        decide(inputs(force_promote=True, operator="eng-42", reason="DI breach")),
        decide(inputs(champ=None)),
        decide(inputs(challenger_dict(fidelity={"task_churn": {"kl": 0.31}, "task_next_best": {"kl": 0.01}}))),
        decide(inputs(challenger_dict(schema="schema-9"))),
        decide(worse),
        decide(inputs(auto=True)),
        decide(inputs(auto=False)),
        decide_approval("credit_pd", "v012", "v011", approve=True, operator="mrm-chair", reason="ok"),
        decide_approval("credit_pd", "v012", "v011", approve=False, operator="mrm-chair", reason="no"),
        decide_rollback("credit_pd", "v012", "v011", ["v011"], reason="SLO breach", operator="eng-7"),
    ]


def test_replay_of_every_outcome_reproduces_it_exactly():
    decisions = _every_outcome()
    assert {d.outcome for d in decisions} == {"force_promote", "bootstrap", "reject", "promote", "pending_approval",
                                              "approve", "decline", "rollback"}
    for d in decisions:
        entry = roundtrip(d.to_promotion_entry())
        again = replay(entry["details"])
        assert again == d, d.outcome
        assert roundtrip(again.to_promotion_entry()) == entry
        assert [s.p_value for s in again.significance] == [s.p_value for s in d.significance]


def test_replay_refuses_an_edited_record():
    entry = roundtrip(decide(inputs(auto=True)).to_promotion_entry())
    edited = copy.deepcopy(entry["details"])
    edited["replay"]["challenger"]["holdout"]["tasks"]["task_churn"]["scores"][0] = 0.99
    with pytest.raises(ReplayError, match="challenger evaluation does not match its recorded digest"):
        replay(edited)
    edited = copy.deepcopy(entry["details"])
    edited["replay"]["policy"]["gate"]["alpha"] = 0.5
    with pytest.raises(ReplayError, match="recorded policy does not match"):
        replay(edited)
    assert entry["details"]["replay"]["policy_digest"] == policy_digest(policy(auto=True))


def test_entries_are_rfc8785_clean_and_match_the_schema_columns():
    from ledger.schema import table_spec

    spec = table_spec("model_promotion")
    body = {c.name for c in spec.columns} - {"seq", "table_name", "ts", "actor", "key_id", "mac"}
    decisions_allowed = spec.column("decision").enum
    for d in _every_outcome():
        e = d.to_promotion_entry()
        assert set(e) == body
        assert e["decision"] in decisions_allowed and e["trigger"] in spec.column("trigger").enum
        assert e["trigger"] == "auto" or e["operator"]
        rfc8785.dumps(e)  # no numpy types, NaN or infinity anywhere
        for row in e["comparison"]:
            assert set(row) == {"metric", "champion", "challenger", "delta_rel", "threshold", "passed"}
        for row in e["significance"]:
            assert set(row) == {"metric", "test", "statistic", "p_value", "p_adjusted", "alpha", "significant"}


# --- the evaluation file ------------------------------------------------------------------


def test_evaluation_file_roundtrip_and_artifact_observation(tmp_path):
    d = challenger_dict()
    path = tmp_path / "challenger.json"
    path.write_text(json.dumps(d))
    e = EvaluationFile.load(path)
    assert e == evaluation_from_mapping(evaluation_to_dict(e))
    packed = tmp_path / "challenger.json.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert EvaluationFile.load(packed) == e
    packed.write_bytes(path.read_bytes())  # named .gz but not compressed
    with pytest.raises(EvaluationError, match="not a readable evaluation file"):
        EvaluationFile.load(packed)
    assert e.horizons == ("5", "15", "60") and e.lineage.trained_end.isoformat() == "2026-04-20T03:00:00+00:00"

    model = tmp_path / "models" / "v012" / "model.bin"
    assert observe_artifacts(e, tmp_path) == {"models/v012/model.bin": None}
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights")
    assert observe_artifacts(e, tmp_path) == {"models/v012/model.bin": hashlib.sha256(b"weights").hexdigest()}


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["holdout"].update(digest="0" * 64), "holdout.digest: declares 000"),
    (lambda d: d.update(extra=1), "extra: unknown field"),
    (lambda d: d["lineage"].pop("seed"), "lineage.seed: is required"),
    (lambda d: d["lineage"].update(trained_end="2026-04-20T03:00:00"), "must carry a time zone"),
    (lambda d: d["holdout"]["tasks"]["task_churn"]["scores"].pop(), "differ in length"),
    (lambda d: d["metrics"]["task_churn"].update(auc=True), "metrics.task_churn.auc: must be a finite number"),
])
def test_bad_evaluation_files_are_named(mutate, message):
    d = challenger_dict()
    mutate(d)
    with pytest.raises(EvaluationError, match=message):
        EvaluationFile.parse(json.dumps(d), "chal.json")


def test_evaluation_json_rejects_nan_and_duplicate_keys():
    with pytest.raises(EvaluationError, match="NaN is not allowed in JSON"):
        EvaluationFile.parse('{"a": NaN}', "x.json")
    with pytest.raises(EvaluationError, match="duplicate key 'a'"):
        EvaluationFile.parse('{"a": 1, "a": 2}', "x.json")


def test_replay_with_evaluations_recorded_by_digest_only():
    inp = inputs(auto=False)
    d = decide(inp)
    entry = roundtrip(d.to_promotion_entry(inline_evaluations=False))
    rec = entry["details"]["replay"]
    assert rec["challenger"] is None and rec["champion"] is None
    assert rec["challenger_digest"] == inp.challenger.digest
    with pytest.raises(ReplayError, match="challenger evaluation was recorded by digest only"):
        replay(entry["details"])
    assert replay(entry["details"], [inp.champion, inp.challenger]) == d
    other = evaluation_from_mapping(challenger_dict(guardrails={"p99_latency_ms": 1.0, "disparate_impact": 1.0}))
    with pytest.raises(ReplayError, match="challenger evaluation was recorded by digest only"):
        replay(entry["details"], [inp.champion, other])
