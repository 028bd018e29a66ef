"""Every number read from outside is range-checked where it is parsed: an integer too large
for a float, NaN, an infinity or a value outside its metric's range is an input error (exit
2) that names the file and the field, and the ledger is left byte for byte as it was."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gates.evaluation import EvaluationError, evaluation_from_mapping
from gates.metrics import metric_range
from gates.policy import PolicyError, parse_policy
from ledger.errors import InputError
from ledger.numbers import JSON_SAFE_INT, bounded_int, finite_float
from mrm.demo.models import bernoulli_kl

from .helpers import fingerprint
from .test_cli_gate import bootstrap, run, setup  # noqa: F401  (fixture)
from .test_gates_decision import POLICY_TOML, challenger_dict

HUGE = 10**400


# --- the two parsers -------------------------------------------------------------------------


@pytest.mark.parametrize("value, problem", [
    (HUGE, "is too large for a number"),
    (-HUGE, "is too large for a number"),
    (float("nan"), "must be a finite number"),
    (float("inf"), "must be a finite number"),
    (True, "must be a finite number"),
    ("0.5", "must be a finite number"),
    (1.5, "must be in [0, 1], got 1.5"),
])
def test_finite_float_refuses_with_the_place(value, problem):
    with pytest.raises(InputError) as caught:
        finite_float(value, "f.json: a.b", 0.0, 1.0)
    assert str(caught.value).startswith("f.json: a.b") and problem in str(caught.value)


def test_finite_float_keeps_good_values_and_normalises_minus_zero():
    assert finite_float(1, "x") == 1.0 and type(finite_float(1, "x")) is float
    assert str(finite_float(-0.0, "x")) == "0.0"
    assert finite_float(0.25, "x", 0.0, 1.0, what="AUC") == 0.25


def test_bounded_int_refuses_what_json_evidence_cannot_carry():
    assert bounded_int(JSON_SAFE_INT, "seed") == JSON_SAFE_INT
    for value, problem in ((JSON_SAFE_INT + 1, "2^53 - 1"), (HUGE, "an integer of about 401 digits"),
                           (3.0, "must be an integer"), (False, "must be an integer"), (-1, "must be >= 0")):
        with pytest.raises(InputError, match=problem.replace("^", r"\^")):
            bounded_int(value, "seed", 0)


# --- evaluation files ------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, message", [
    (("metrics", "task_churn", "auc"), HUGE,
     "chal.json: metrics.task_churn.auc: an integer of about 401 digits is too large for a number"),
    (("metrics", "task_churn", "auc"), -0.3, "chal.json: metrics.task_churn.auc: AUC must be in [0, 1], got -0.3"),
    (("metrics", "task_churn", "accuracy"), 1.2, "metrics.task_churn.accuracy: accuracy must be in [0, 1], got 1.2"),
    (("fidelity", "task_churn", "kl"), -0.01, "fidelity.task_churn.kl: a KL divergence must be >= 0, got -0.01"),
    (("guardrails", "p99_latency_ms"), -5, "guardrails.p99_latency_ms: a latency must be >= 0, got -5"),
    (("guardrails", "error_rate"), 1.5, "guardrails.error_rate: a rate must be in [0, 1], got 1.5"),
    (("lineage", "seed"), HUGE, "chal.json: lineage.seed: must be at most 2^53 - 1"),
    (("lineage", "seed"), -1, "chal.json: lineage.seed: must be >= 0, got -1"),
    (("lineage", "thresholds", "task_churn"), HUGE, "lineage.thresholds.task_churn: an integer of about 401 digits"),
])
def test_an_evaluation_number_outside_its_range_names_file_and_field(field, value, message):
    d = challenger_dict()
    target = d
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    with pytest.raises(EvaluationError) as caught:
        evaluation_from_mapping(d, "chal.json")
    assert message in str(caught.value)


def test_metric_ranges_by_name_and_suffix():
    assert (metric_range("auc").low, metric_range("auc").high) == (0.0, 1.0)
    assert metric_range("timeout_rate").high == 1.0 and metric_range("queue_ms").low == 0.0
    assert metric_range("revenue") is None  # only finite


def test_gate_evaluate_refuses_a_huge_integer_metric_and_writes_nothing(setup, tmp_path):  # noqa: F811
    ledger, files = setup
    bootstrap(ledger, files["v011"])
    before = fingerprint(ledger)
    for value, problem in ((HUGE, "metrics.task_churn.auc: integer of 401 digits is beyond +-2^64"),  # strict JSON
                           (-0.3, "metrics.task_churn.auc: AUC must be in [0, 1], got -0.3")):
        d = json.loads(files["v012"].read_text())
        d["metrics"]["task_churn"]["auc"] = value
        bad = tmp_path / "eval-bad.json"
        bad.write_text(json.dumps(d))
        result = run("gate", "evaluate", ledger, bad, "--policy", "policy-manual.toml")
        assert result.exit_code == 2, result.output
        assert f"error: {bad}: {problem}" in result.output and "Traceback" not in result.output
        assert fingerprint(ledger) == before


def test_an_integer_beyond_what_python_converts_is_refused_with_its_path(setup, tmp_path):  # noqa: F811
    ledger, files = setup
    before = fingerprint(ledger)
    bad = tmp_path / "eval-digits.json"
    bad.write_text(files["v012"].read_text().replace('"seed": 7', '"seed": 1' + "0" * 5000))
    result = run("gate", "evaluate", ledger, bad, "--policy", "policy-manual.toml")
    assert result.exit_code == 2 and f"{bad}: lineage.seed: integer of 5001 digits is beyond +-2^64" in result.output
    assert fingerprint(ledger) == before


# --- policies --------------------------------------------------------------------------------


@pytest.mark.parametrize("old, new, message", [
    ("[guardrails.disparate_impact]\nmin = 0.8", f"[guardrails.disparate_impact]\nmin = {HUGE}",
     "p.toml: guardrails.disparate_impact.min: an integer of about 401 digits is too large for a number"),
    ("[guardrails.disparate_impact]\nmin = 0.8", "[guardrails.disparate_impact]\nmin = -0.8",
     "guardrails.disparate_impact.min: a disparate impact ratio must be >= 0, got -0.8"),
    ("[guardrails.p99_latency_ms]\nmax = 200.0", "[guardrails.p99_latency_ms]\nmax = inf",
     "guardrails.p99_latency_ms.max: must be a finite number, got inf"),
    ("resamples = 200", f"resamples = {HUGE}", "bootstrap.resamples: must be in [1, 1000000], got an integer of about 401 digits"),
    ("seed = 7", f"seed = {2**60}", "bootstrap.seed: must be at most 2^53 - 1"),
    ("alpha = 0.05", f"alpha = {HUGE}", "gate.alpha: an integer of about 401 digits is too large"),
    ("min_sample_size = 100", "min_sample_size = 1" + "0" * 5000, "p.toml: not valid TOML"),
    ("[functional]", "[rollback]\nslo_metric = \"accuracy\"\nslo_floor = 1.5\n\n[functional]",
     "rollback.slo_floor: accuracy must be in [0, 1], got 1.5"),
])
def test_a_policy_number_outside_its_range_names_file_and_key(old, new, message):
    text = POLICY_TOML.format(auto="true")
    assert old in text
    with pytest.raises(PolicyError) as caught:
        parse_policy(text.replace(old, new), "p.toml")
    assert message in str(caught.value)


def test_gate_evaluate_refuses_a_huge_policy_bound_with_exit_2(setup, tmp_path):  # noqa: F811
    ledger, files = setup
    before = fingerprint(ledger)
    policy = tmp_path / "huge.toml"
    policy.write_text(POLICY_TOML.format(auto="true").replace("max = 200.0", f"max = {HUGE}"))
    result = run("gate", "evaluate", ledger, files["v011"], "--policy", policy)
    assert result.exit_code == 2, result.output
    assert f"{policy}: guardrails.p99_latency_ms.max: an integer of about 401 digits" in result.output
    assert fingerprint(ledger) == before


# --- monitors and outcomes -------------------------------------------------------------------


@pytest.mark.parametrize("value, problem", [
    ("nan", "must be a finite number, got nan"),
    ("inf", "must be a finite number, got inf"),
    ("1e400", "must be a finite number, got inf"),
    ("0", "must be > 0"),
    ("1e9", "must be in [0, 87840]"),
])
def test_period_hours_is_checked_where_it_is_parsed(setup, value, problem):  # noqa: F811
    ledger, files = setup
    bootstrap(ledger, files["v011"])
    result = run("monitor", "serving", ledger, "--slot", "credit_pd", "--policy", "policy-auto.toml",
                 "--period-hours", value)
    assert result.exit_code == 2 and "'--period-hours'" in result.output and problem in result.output, result.output


@pytest.mark.parametrize("name, text, message", [
    ("labels.csv", "request_id,label,observed_at,value:accuracy\nr1,approve,,nan\n",
     "labels.csv:2: column value:accuracy: must be a finite number, got nan"),
    ("labels.csv", "request_id,label,observed_at,value:revenue\nr1,approve,,1e400\n",
     "labels.csv:2: column value:revenue: must be a finite number, got inf"),
    ("labels.csv", "request_id,label,observed_at,value:accuracy\nr1,approve,,1.5\n",
     "labels.csv:2: column value:accuracy: accuracy must be in [0, 1], got 1.5"),
    ("labels.jsonl", '{"request_id": "r1", "label": "approve"}\n{"request_id": "r2", "values": {"x": NaN}}\n',
     "labels.jsonl:2: values.x: NaN is not allowed in JSON"),
    ("labels.jsonl", '{"request_id": "r1", "values": {"latency_ms": -3}}\n',
     "labels.jsonl:1: values.latency_ms: a latency must be >= 0, got -3"),
    ("labels.jsonl", '{"request_id": "r1", "values": {"revenue": ' + str(HUGE) + '}}\n',
     "labels.jsonl:1: values.revenue: integer of 401 digits is beyond +-2^64"),
])
def test_outcome_values_are_checked_in_the_file_that_carries_them(setup, tmp_path, name, text, message):  # noqa: F811
    ledger, _ = setup
    before = fingerprint(ledger)
    (tmp_path / name).write_text(text)
    result = run("outcomes", ledger, tmp_path / name)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert fingerprint(ledger) == before


# --- the demo never writes what the parser refuses --------------------------------------------


def test_the_demo_fidelity_kl_is_never_below_zero():
    p = np.random.default_rng(0).uniform(0.01, 0.99, 100_000)
    assert bernoulli_kl(p, p * (1 + 1e-12)).min() >= 0.0  # rounding alone once gave -2e-16
