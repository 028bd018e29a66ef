from __future__ import annotations

from pathlib import Path

import pytest

from gates.policy import (
    Bounds,
    PolicyError,
    load_policy,
    parse_policy,
    policy_digest,
    policy_from_mapping,
    policy_to_dict,
)

DEFAULT = Path(__file__).resolve().parents[1] / "gates" / "policies" / "default.toml"
MINIMAL = '[gate]\nprimary_metric = "auc"\n[metrics.auc]\n'


def test_default_policy_loads_with_its_declared_tests():
    p = load_policy(DEFAULT)
    assert p.primary_metric == "auc" and p.auto_promote is False
    assert {m.name: m.test for m in p.metrics} == {
        "auc": "delong", "accuracy": "mcnemar", "log_loss": "paired_bootstrap", "latency_ms": "welch"}
    assert [m.name for m in p.offline_metrics] == ["auc", "accuracy", "log_loss"]
    assert dict(p.guardrails)["disparate_impact"] == Bounds(0.8, 1.25)
    assert p.fidelity is not None and p.fidelity.max_for("task_churn") == 0.15 and p.fidelity.max_for("other") == 0.20
    assert p.functional.required_horizons == ("5", "15", "60")
    assert p.rollback.action == "propose" and p.monitors.disparate_impact == Bounds(0.8, 1.25)


def test_an_approval_window_is_recorded_only_when_set():
    # Policies recorded before the option existed keep their digests (replay checks them).
    assert "approval_valid_days" not in policy_to_dict(parse_policy(MINIMAL))["gate"]
    windowed = parse_policy(MINIMAL.replace("[gate]\n", "[gate]\napproval_valid_days = 30\n"))
    assert policy_to_dict(windowed)["gate"]["approval_valid_days"] == 30
    assert policy_from_mapping(policy_to_dict(windowed)) == windowed
    assert policy_digest(windowed) != policy_digest(parse_policy(MINIMAL))


def test_minimal_policy_gets_the_documented_defaults():
    p = parse_policy(MINIMAL)
    assert (p.min_relative_improvement, p.max_secondary_degradation, p.alpha) == (0.005, 0.02, 0.05)
    assert (p.auto_promote, p.bootstrap_resamples, p.fidelity, p.guardrails) == (False, 2000, None, ())
    assert p.primary.test == "delong" and p.primary.direction == "higher"


def test_roundtrip_and_digest():
    p = load_policy(DEFAULT)
    assert policy_from_mapping(policy_to_dict(p)) == p
    digest = policy_digest(p)
    assert len(digest) == 64 and digest == policy_digest(load_policy(DEFAULT))
    changed = parse_policy(DEFAULT.read_text().replace("alpha = 0.05                       #", "alpha = 0.01 #"))
    assert changed.alpha == 0.01 and policy_digest(changed) != digest
    # Writing 200 or 200.0 in TOML is the same policy and the same digest.
    a = parse_policy(MINIMAL + "[guardrails.p99]\nmax = 200\n")
    b = parse_policy(MINIMAL + "[guardrails.p99]\nmax = 200.0\n")
    assert a == b and policy_digest(a) == policy_digest(b)


@pytest.mark.parametrize("extra, message", [
    ("[gate]\nmin_relative_improvment = 0.01\n", "p.toml: gate.min_relative_improvment: unknown key"),
    ("[surprise]\n", "p.toml: surprise: unknown key"),
    ('[metrics.auc]\ntset = "delong"\n', "p.toml: metrics.auc.tset: unknown key"),
])
def test_unknown_keys_are_errors_naming_file_and_key(extra, message, tmp_path):
    text = MINIMAL.replace("[metrics.auc]\n", "") if "[metrics.auc]" in extra else MINIMAL
    if extra.startswith("[gate]"):
        text = text.replace("[gate]\n", extra)
    else:
        text += extra
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message.replace(".", r"\.")):
        load_policy(path)


@pytest.mark.parametrize("text, message", [
    ("[gate]\n", "gate.primary_metric: is required"),
    ('[gate]\nprimary_metric = "auc"\n', r"metrics\.auc: the primary metric 'auc' needs a \[metrics.auc\] entry"),
    (MINIMAL.replace("[gate]\n", "[gate]\nalpha = 1.5\n"), r"gate\.alpha: must be < 1, got 1.5"),
    (MINIMAL.replace("[gate]\n", "[gate]\nalpha = 0\n"), r"gate\.alpha: must be > 0"),
    (MINIMAL.replace("[gate]\n", '[gate]\nauto_promote = "no"\n'), "gate.auto_promote: must be true or false"),
    (MINIMAL.replace("[gate]\n", "[gate]\nmin_sample_size = 10.5\n"), "gate.min_sample_size: must be an integer"),
    (MINIMAL.replace("[gate]\n", "[gate]\napproval_valid_days = 0\n"), "gate.approval_valid_days: must be >= 1, got 0"),
    (MINIMAL + 'direction = "lower"\n', "metrics.auc.direction: auc is better when higher, not lower"),
    (MINIMAL + 'test = "mcnemar"\n', "metrics.auc.test: mcnemar compares paired correctness"),
    (MINIMAL + 'test = "welch"\n', "metrics.auc.test: the primary metric is tested on the holdout"),
    (MINIMAL + '[metrics.revenue]\ntest = "paired_bootstrap"\ndirection = "higher"\n',
     "metrics.revenue.test: paired_bootstrap needs a per-sample function"),
    (MINIMAL + '[metrics.revenue]\ntest = "welch"\n', "metrics.revenue.direction: is required"),
    (MINIMAL + "[guardrails.di]\n", "guardrails.di: needs min, max or both"),
    (MINIMAL + "[guardrails.di]\nmin = 1.3\nmax = 0.8\n", "guardrails.di: min 1.3 is above max 0.8"),
    (MINIMAL + "[fidelity]\n", "fidelity: needs default_max or per_task_max"),
    (MINIMAL + "[monitors]\ndisparate_impact = [1.1, 1.25]\n", r"monitors\.disparate_impact: must be \[low, high\]"),
    (MINIMAL + '[rollback]\naction = "deploy"\n', "rollback.action: must be one of propose, rollback"),
    (MINIMAL + '[rollback]\nslo_metric = "accuracy"\n', "rollback.slo_floor: slo_metric and slo_floor go together"),
    ("[gate\n", "not valid TOML"),
])
def test_bad_values_name_key_and_problem(text, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy(text, "p.toml")


def test_missing_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "nope.toml")
