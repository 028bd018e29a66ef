"""The promotion policy: what the gate demands, read from TOML into a frozen dataclass.

Everything here is pure except :func:`load_policy`, the one function that reads a file.
Validation errors name the file, the key and what is wrong; unknown keys are errors (a typo
such as ``min_relative_improvment`` must not silently fall back to a default). Numbers are
finite and in range (``ledger.numbers``; guardrail bounds and the SLO floor inside their
metric's range, ``gates.metrics.METRIC_RANGES``; integers at most 2^53 - 1, resamples at most
1,000,000); metric, guardrail and task names follow the identifier rule (``ledger.identifiers``).

TOML layout (every key but ``gate.primary_metric`` and its ``[metrics.*]`` entry is optional)::

    [gate]        primary_metric, min_relative_improvement (0.005), max_secondary_degradation (0.02),
                  alpha (0.05), min_sample_size (100), auto_promote (false),
                  approval_valid_days (none: a pending_approval version can be approved at any
                  later time; N: only within N days of the gate's verdict)
    [bootstrap]   resamples (2000), seed (0)
    [metrics.NAME]     direction ("higher" | "lower"), test ("delong" | "mcnemar" |
                       "paired_bootstrap" | "welch")
    [fidelity]    measure ("kl"), default_max, per_task_max = { task = max, ... }
    [guardrails.NAME]  min, max (at least one)
    [functional]  required_tasks, required_horizons, verify_artifact_digests (true),
                  thresholds_in_unit_interval (true), training_data_not_older (true),
                  allow_feature_schema_change (false)
    [online]      min_samples (30), alpha (0.05)
    [rollback]    max_error_rate (0.02), max_latency_p99_ratio (2.0), slo_metric, slo_floor,
                  slo_direction ("higher"), slo_window (5), slo_consecutive (3),
                  action ("propose" | "rollback", default "propose")
    [monitors]    min_group_size (30), confidence (0.95), disparate_impact ([0.8, 1.25]),
                  statistical_parity_difference ([-0.1, 0.1]),
                  equal_opportunity_difference ([-0.1, 0.1]), psi_bins (10),
                  psi_epsilon (1e-4), psi_investigate (0.1), psi_act (0.25)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gates.canonical import sha256_hex
from gates.metrics import HIGHER, KNOWN_METRICS, LOWER, metric_value
from gates.stats import DELONG, MCNEMAR, OFFLINE_TESTS, PAIRED_BOOTSTRAP, TESTS
from ledger.errors import InputError
from ledger.identifiers import check_identifier
from ledger.numbers import bounded_int, finite_float

# More resamples than this is a typo, not a policy: the gate would run for hours.
MAX_BOOTSTRAP_RESAMPLES = 1_000_000


class PolicyError(InputError):
    """A policy that cannot be used; the message names the source, the key and the problem."""


@dataclass(frozen=True)
class Bounds:
    min: float | None = None
    max: float | None = None

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"[{self.min:g}, {self.max:g}]"
        return f"at least {self.min:g}" if self.min is not None else f"at most {self.max:g}"


@dataclass(frozen=True)
class MetricRule:
    name: str
    direction: str  # "higher" or "lower" is better
    test: str  # the pre-declared significance test

    @property
    def offline(self) -> bool:
        return self.test in OFFLINE_TESTS


@dataclass(frozen=True)
class FidelityFloor:
    measure: str = "kl"
    default_max: float | None = None
    per_task_max: tuple[tuple[str, float], ...] = ()

    def max_for(self, task: str) -> float | None:
        return dict(self.per_task_max).get(task, self.default_max)


@dataclass(frozen=True)
class FunctionalRules:
    required_tasks: tuple[str, ...] = ()
    required_horizons: tuple[str, ...] = ()
    verify_artifact_digests: bool = True
    thresholds_in_unit_interval: bool = True
    training_data_not_older: bool = True
    allow_feature_schema_change: bool = False


@dataclass(frozen=True)
class OnlineRules:
    min_samples: int = 30
    alpha: float = 0.05


@dataclass(frozen=True)
class RollbackRules:
    max_error_rate: float = 0.02
    max_latency_p99_ratio: float = 2.0
    slo_metric: str | None = None
    slo_floor: float | None = None
    slo_direction: str = HIGHER
    slo_window: int = 5
    slo_consecutive: int = 3
    action: str = "propose"  # "propose": tell a human; "rollback": act at once


@dataclass(frozen=True)
class MonitorRules:
    min_group_size: int = 30
    confidence: float = 0.95
    disparate_impact: Bounds = Bounds(0.8, 1.25)
    statistical_parity_difference: Bounds = Bounds(-0.1, 0.1)
    equal_opportunity_difference: Bounds = Bounds(-0.1, 0.1)
    psi_bins: int = 10
    psi_epsilon: float = 1e-4
    psi_investigate: float = 0.1
    psi_act: float = 0.25


@dataclass(frozen=True)
class Policy:
    primary_metric: str
    metrics: tuple[MetricRule, ...]
    min_relative_improvement: float = 0.005
    max_secondary_degradation: float = 0.02
    alpha: float = 0.05
    min_sample_size: int = 100
    auto_promote: bool = False  # regulated production: a human signs off
    approval_valid_days: int | None = None  # a verdict older than this cannot be approved
    bootstrap_resamples: int = 2000
    bootstrap_seed: int = 0
    fidelity: FidelityFloor | None = None
    guardrails: tuple[tuple[str, Bounds], ...] = ()
    functional: FunctionalRules = field(default_factory=FunctionalRules)
    online: OnlineRules = field(default_factory=OnlineRules)
    rollback: RollbackRules = field(default_factory=RollbackRules)
    monitors: MonitorRules = field(default_factory=MonitorRules)

    def metric(self, name: str) -> MetricRule:
        for rule in self.metrics:
            if rule.name == name:
                return rule
        raise KeyError(f"metric {name!r} is not declared in the policy")

    @property
    def primary(self) -> MetricRule:
        return self.metric(self.primary_metric)

    @property
    def offline_metrics(self) -> tuple[MetricRule, ...]:
        """Metrics compared on the holdout: primary first, then the rest by name."""
        rest = sorted((m for m in self.metrics if m.offline and m.name != self.primary_metric), key=lambda m: m.name)
        return (self.primary, *rest)


# --- reading ------------------------------------------------------------------------------


class _Section:
    """One TOML table being read: typed takes, then ``finish`` rejects whatever was not taken."""

    def __init__(self, data: Any, path: str, source: str):
        self.source, self.path = source, path
        if not isinstance(data, Mapping):
            self.fail(path, f"must be a table, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.taken: set[str] = set()

    def fail(self, key: str, problem: str) -> None:
        raise PolicyError(f"{self.source}: {key}: {problem}")

    def where(self, name: str) -> str:
        return f"{self.source}: {self.key(name)}"

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str) -> Any:
        self.taken.add(name)
        return self.data.get(name)

    def number(self, name: str, default: float | None, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, hi_open: bool = False) -> float | None:
        v = self.raw(name)
        if v is None:
            return default
        v = finite_float(v, self.where(name), error=PolicyError)
        if lo is not None and (v < lo or (lo_open and v == lo)):
            self.fail(self.key(name), f"must be {'>' if lo_open else '>='} {lo:g}, got {v:g}")
        if hi is not None and (v > hi or (hi_open and v == hi)):
            self.fail(self.key(name), f"must be {'<' if hi_open else '<='} {hi:g}, got {v:g}")
        return v

    def integer(self, name: str, default: int | None, lo: int, hi: int | None = None) -> int | None:
        v = self.raw(name)
        if v is None:
            return default
        return bounded_int(v, self.where(name), lo, *(() if hi is None else (hi,)), error=PolicyError)

    def metric(self, metric_name: str, name: str) -> float | None:
        """An optional bound on the metric ``metric_name``: finite and inside its range."""
        v = self.raw(name)
        return None if v is None else metric_value(metric_name, v, self.where(name), error=PolicyError)

    def name_key(self, name: str) -> str:
        """A key of this table that names a metric, task or guardrail: the identifier rule."""
        return check_identifier(name, self.where(name), error=PolicyError)

    def boolean(self, name: str, default: bool) -> bool:
        v = self.raw(name)
        if v is None:
            return default
        if not isinstance(v, bool):
            self.fail(self.key(name), f"must be true or false, got {v!r}")
        return v

    def string(self, name: str, default: str | None, choices: tuple[str, ...] | None = None) -> str | None:
        v = self.raw(name)
        if v is None:
            return default
        if not isinstance(v, str) or not v:
            self.fail(self.key(name), f"must be a non-empty string, got {v!r}")
        if choices and v not in choices:
            self.fail(self.key(name), f"must be one of {', '.join(choices)}; got {v!r}")
        return v

    def names(self, name: str) -> tuple[str, ...]:
        v = self.raw(name)
        if v is None:
            return ()
        if not isinstance(v, list) or not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in v):
            self.fail(self.key(name), f"must be a list of names, got {v!r}")
        out = tuple(str(x) for x in v)
        for i, x in enumerate(out):
            check_identifier(x, f"{self.where(name)}[{i}]", error=PolicyError)
        if len(set(out)) != len(out):
            self.fail(self.key(name), f"has duplicates: {v!r}")
        return out

    def bounds_pair(self, name: str, default: Bounds, must_contain: float) -> Bounds:
        v = self.raw(name)
        if v is None:
            return default
        if not isinstance(v, list) or len(v) != 2:
            self.fail(self.key(name), f"must be [low, high] with low <= {must_contain:g} <= high, got {v!r}")
        low, high = (finite_float(x, f"{self.where(name)}[{i}]", error=PolicyError) for i, x in enumerate(v))
        if not low <= must_contain <= high:
            self.fail(self.key(name), f"must be [low, high] with low <= {must_contain:g} <= high, got {v!r}")
        return Bounds(low, high)

    def table(self, name: str) -> "_Section":
        v = self.raw(name)
        return _Section({} if v is None else v, self.key(name), self.source)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.taken)
        if unknown:
            where = self.key(unknown[0])
            self.fail(where, f"unknown key (known here: {', '.join(sorted(self.taken))})")


def _metric_rule(name: str, sec: _Section) -> MetricRule:
    known = KNOWN_METRICS.get(name)
    direction = sec.string("direction", known.direction if known else None, (HIGHER, LOWER))
    if direction is None:
        sec.fail(sec.key("direction"), "is required for a metric the gate does not know")
    if known and direction != known.direction:
        sec.fail(sec.key("direction"), f"{name} is better when {known.direction}, not {direction}")
    default_test = {"auc": DELONG, "accuracy": MCNEMAR}.get(name, PAIRED_BOOTSTRAP if known else None)
    test = sec.string("test", default_test, TESTS)
    if test is None:
        sec.fail(sec.key("test"), "is required for a metric the gate cannot recompute (use welch for online metrics)")
    if test == DELONG and name != "auc":
        sec.fail(sec.key("test"), "delong compares ROC AUCs; use it for the metric named auc")
    if test == MCNEMAR and name != "accuracy":
        sec.fail(sec.key("test"), "mcnemar compares paired correctness; use it for the metric named accuracy")
    if test == PAIRED_BOOTSTRAP and not known:
        sec.fail(sec.key("test"), f"paired_bootstrap needs a per-sample function; known: {', '.join(KNOWN_METRICS)}")
    sec.finish()
    return MetricRule(name, direction, test)


def policy_from_mapping(data: Mapping[str, Any], source: str = "<policy>") -> Policy:
    """Build and validate a policy from parsed TOML (or from :func:`policy_to_dict`)."""
    top = _Section(data, "", source)
    gate = top.table("gate")
    primary = gate.string("primary_metric", None)
    if primary is None:
        gate.fail("gate.primary_metric", "is required")
    check_identifier(primary, gate.where("primary_metric"), error=PolicyError)
    min_rel = gate.number("min_relative_improvement", 0.005, 0.0, 1.0, hi_open=True)
    max_deg = gate.number("max_secondary_degradation", 0.02, 0.0, 1.0, hi_open=True)
    alpha = gate.number("alpha", 0.05, 0.0, 1.0, lo_open=True, hi_open=True)
    min_n = gate.integer("min_sample_size", 100, 1)
    auto = gate.boolean("auto_promote", False)
    approval_days = gate.integer("approval_valid_days", None, 1)
    gate.finish()

    boot = top.table("bootstrap")
    resamples = boot.integer("resamples", 2000, 1, MAX_BOOTSTRAP_RESAMPLES)
    seed = boot.integer("seed", 0, 0)
    boot.finish()

    metrics_sec = top.table("metrics")
    rules = tuple(_metric_rule(metrics_sec.name_key(n), metrics_sec.table(n)) for n in sorted(metrics_sec.data))
    metrics_sec.finish()
    names = {r.name for r in rules}
    if primary not in names:
        top.fail(f"metrics.{primary}", f"the primary metric {primary!r} needs a [metrics.{primary}] entry")
    primary_rule = next(r for r in rules if r.name == primary)
    if not primary_rule.offline:
        top.fail(f"metrics.{primary}.test", "the primary metric is tested on the holdout; welch is for online metrics")

    fidelity = None
    if "fidelity" in data:
        fsec = top.table("fidelity")
        measure = fsec.string("measure", "kl")
        default_max = fsec.number("default_max", None, 0.0)
        per = fsec.table("per_task_max")
        per_task = tuple((per.name_key(t), per.number(t, None, 0.0)) for t in sorted(per.data))
        per.finish()
        fsec.finish()
        if default_max is None and not per_task:
            fsec.fail("fidelity", "needs default_max or per_task_max")
        fidelity = FidelityFloor(measure or "kl", default_max, per_task)  # type: ignore[arg-type]
    else:
        top.raw("fidelity")

    gsec = top.table("guardrails")
    guardrails = []
    for gname in sorted(gsec.data):
        g = gsec.table(gsec.name_key(gname))
        lo, hi = g.metric(gname, "min"), g.metric(gname, "max")
        g.finish()
        if lo is None and hi is None:
            g.fail(g.path, "needs min, max or both")
        if lo is not None and hi is not None and lo > hi:
            g.fail(g.path, f"min {lo:g} is above max {hi:g}")
        guardrails.append((gname, Bounds(lo, hi)))
    gsec.finish()

    fn = top.table("functional")
    functional = FunctionalRules(
        required_tasks=fn.names("required_tasks"),
        required_horizons=fn.names("required_horizons"),
        verify_artifact_digests=fn.boolean("verify_artifact_digests", True),
        thresholds_in_unit_interval=fn.boolean("thresholds_in_unit_interval", True),
        training_data_not_older=fn.boolean("training_data_not_older", True),
        allow_feature_schema_change=fn.boolean("allow_feature_schema_change", False),
    )
    fn.finish()

    on = top.table("online")
    online = OnlineRules(on.integer("min_samples", 30, 2), on.number("alpha", 0.05, 0.0, 1.0, True, True))  # type: ignore[arg-type]
    on.finish()

    rb = top.table("rollback")
    slo_metric = rb.string("slo_metric", None)
    rollback = RollbackRules(
        max_error_rate=rb.number("max_error_rate", 0.02, 0.0, 1.0),  # type: ignore[arg-type]
        max_latency_p99_ratio=rb.number("max_latency_p99_ratio", 2.0, 1.0),  # type: ignore[arg-type]
        slo_metric=slo_metric,
        slo_floor=rb.metric(slo_metric, "slo_floor") if slo_metric else rb.number("slo_floor", None),
        slo_direction=rb.string("slo_direction", HIGHER, (HIGHER, LOWER)),  # type: ignore[arg-type]
        slo_window=rb.integer("slo_window", 5, 1),
        slo_consecutive=rb.integer("slo_consecutive", 3, 1),
        action=rb.string("action", "propose", ("propose", "rollback")),  # type: ignore[arg-type]
    )
    rb.finish()
    if (rollback.slo_metric is None) != (rollback.slo_floor is None):
        rb.fail("rollback.slo_floor", "slo_metric and slo_floor go together")

    mo = top.table("monitors")
    monitors = MonitorRules(
        min_group_size=mo.integer("min_group_size", 30, 1),
        confidence=mo.number("confidence", 0.95, 0.0, 1.0, True, True),  # type: ignore[arg-type]
        disparate_impact=mo.bounds_pair("disparate_impact", Bounds(0.8, 1.25), 1.0),
        statistical_parity_difference=mo.bounds_pair("statistical_parity_difference", Bounds(-0.1, 0.1), 0.0),
        equal_opportunity_difference=mo.bounds_pair("equal_opportunity_difference", Bounds(-0.1, 0.1), 0.0),
        psi_bins=mo.integer("psi_bins", 10, 2, 10_000),
        psi_epsilon=mo.number("psi_epsilon", 1e-4, 0.0, 0.01, lo_open=True),  # type: ignore[arg-type]
        psi_investigate=mo.number("psi_investigate", 0.1, 0.0),  # type: ignore[arg-type]
        psi_act=mo.number("psi_act", 0.25, 0.0),  # type: ignore[arg-type]
    )
    mo.finish()
    if monitors.psi_act < monitors.psi_investigate:
        mo.fail("monitors.psi_act", "must not be below psi_investigate")

    top.finish()
    return Policy(
        primary_metric=primary,  # type: ignore[arg-type]
        metrics=rules,
        min_relative_improvement=min_rel,  # type: ignore[arg-type]
        max_secondary_degradation=max_deg,  # type: ignore[arg-type]
        alpha=alpha,  # type: ignore[arg-type]
        min_sample_size=min_n,
        auto_promote=auto,
        approval_valid_days=approval_days,
        bootstrap_resamples=resamples,
        bootstrap_seed=seed,
        fidelity=fidelity,
        guardrails=tuple(guardrails),
        functional=functional,
        online=online,
        rollback=rollback,
        monitors=monitors,
    )


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    try:
        data = tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, or an integer of more digits than Python converts
        raise PolicyError(f"{source}: not valid TOML: {str(e).split('; use sys.')[0]}") from None
    return policy_from_mapping(data, source)


def load_policy(path: str | Path) -> Policy:
    """The one function here that does I/O: read a policy TOML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError(f"{p}: cannot read the policy file: {e.strerror or e}") from None
    return parse_policy(text, str(p))


# --- writing and digest -------------------------------------------------------------------


def _bounds_dict(b: Bounds) -> dict[str, float]:
    return {k: v for k, v in (("min", b.min), ("max", b.max)) if v is not None}


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """Every setting, defaults filled in, in the TOML layout; absent options are left out
    (JSON has null, TOML has not). ``policy_from_mapping(policy_to_dict(p)) == p``."""
    p = policy
    out: dict[str, Any] = {
        "gate": {
            "primary_metric": p.primary_metric,
            "min_relative_improvement": p.min_relative_improvement,
            "max_secondary_degradation": p.max_secondary_degradation,
            "alpha": p.alpha,
            "min_sample_size": p.min_sample_size,
            "auto_promote": p.auto_promote,
            # only when set: policies without it keep the digest they were recorded with
            **({"approval_valid_days": p.approval_valid_days} if p.approval_valid_days is not None else {}),
        },
        "bootstrap": {"resamples": p.bootstrap_resamples, "seed": p.bootstrap_seed},
        "metrics": {m.name: {"direction": m.direction, "test": m.test} for m in p.metrics},
        "guardrails": {name: _bounds_dict(b) for name, b in p.guardrails},
        "functional": {
            "required_tasks": list(p.functional.required_tasks),
            "required_horizons": list(p.functional.required_horizons),
            "verify_artifact_digests": p.functional.verify_artifact_digests,
            "thresholds_in_unit_interval": p.functional.thresholds_in_unit_interval,
            "training_data_not_older": p.functional.training_data_not_older,
            "allow_feature_schema_change": p.functional.allow_feature_schema_change,
        },
        "online": {"min_samples": p.online.min_samples, "alpha": p.online.alpha},
        "rollback": {
            k: v
            for k, v in vars(p.rollback).items()
            if v is not None
        },
        "monitors": {
            "min_group_size": p.monitors.min_group_size,
            "confidence": p.monitors.confidence,
            "disparate_impact": [p.monitors.disparate_impact.min, p.monitors.disparate_impact.max],
            "statistical_parity_difference": [
                p.monitors.statistical_parity_difference.min, p.monitors.statistical_parity_difference.max],
            "equal_opportunity_difference": [
                p.monitors.equal_opportunity_difference.min, p.monitors.equal_opportunity_difference.max],
            "psi_bins": p.monitors.psi_bins,
            "psi_epsilon": p.monitors.psi_epsilon,
            "psi_investigate": p.monitors.psi_investigate,
            "psi_act": p.monitors.psi_act,
        },
    }
    if p.fidelity is not None:
        fid: dict[str, Any] = {"measure": p.fidelity.measure, "per_task_max": dict(p.fidelity.per_task_max)}
        if p.fidelity.default_max is not None:
            fid["default_max"] = p.fidelity.default_max
        out["fidelity"] = fid
    return out


def policy_digest(policy: Policy) -> str:
    """SHA-256 of the RFC 8785 canonical JSON of :func:`policy_to_dict`."""
    return sha256_hex(policy_to_dict(policy))
