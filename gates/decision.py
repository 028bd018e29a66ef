"""The champion/challenger promotion gate: inputs in, one :class:`Decision` out, no I/O.

The ladder runs in a fixed order and the first step that resolves settles the verdict:

1. force-promote (an operator and a reason are required)           -> ``force_promote``
   (also :func:`decide_force_promote`, for a version whose evaluation is not at hand)
2. no champion in the slot                                          -> ``bootstrap``, or
   ``pending_approval`` when ``auto_promote = false``
3. fidelity floor, per task; any failure                            -> ``reject``
   (before competition, so performance cannot bargain with safety)
4. functional checks (tasks, horizons, artifact digests, thresholds,
   training-data age, feature schema); any failure                  -> ``reject``
5. competition and guardrails                                       -> ``promote``, or
   ``pending_approval`` when ``auto_promote = false``, else ``reject``

Every failing check is named in the reason. Inputs that make a comparison meaningless — a
missing metric, a holdout that differs between champion and challenger, metrics that the
per-sample predictions do not reproduce — raise :class:`GateInputError`; they never count as 0.

Competition, for a primary metric ``M`` over the champion's tasks:

- ``primary_improvement``: mean ``M`` over tasks improves by at least ``min_relative_improvement``
  (relative, in the metric's better direction);
- ``primary_significance``: the pre-declared paired test per task, Holm-adjusted across tasks,
  finds at least one task where the challenger is better at ``alpha``. Holm controls the
  family-wise error of "better on task t" claims, so one adjusted win is a valid claim;
- ``degradation:<task>/<metric>``: no task's metric (primary included) drops by more than
  ``max_secondary_degradation``, relative;
- ``guardrail:<name>``: every guardrail value of the challenger within its bounds;
- ``sample_size``: every compared task has at least ``min_sample_size`` holdout samples.

``delta_rel`` in comparison rows is the relative change in the metric's *better* direction
(positive means the challenger is better), ``(chal - champ) / |champ|`` for higher-is-better and
``(champ - chal) / |champ|`` for lower-is-better; when the champion's value is 0 the absolute
change is used (a relative change is undefined) and the check's detail says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from gates.canonical import utc_text
from gates.evaluation import Evaluation, evaluation_from_mapping, evaluation_to_dict
from gates.metrics import HIGHER, KNOWN_METRICS, correct
from gates.policy import MetricRule, Policy, policy_digest, policy_from_mapping, policy_to_dict
from gates.stats import DELONG, MCNEMAR, InsufficientSample, TestResult, delong_test, holm, mcnemar_exact, paired_bootstrap

# The shape of a model_promotion entry's details. 2 added evaluated, skipped_checks,
# skipped_checks_from_seq and responds_to_seq (gates/details.py lists every field); replay
# writes an entry in the format it was recorded in, so format-1 entries still match.
GATE_FORMAT = 2
# Reported metrics must equal what the holdout predictions give, to this absolute tolerance.
METRIC_TOLERANCE = 1e-6

FORCE_PROMOTE, BOOTSTRAP, REJECT, PROMOTE, PENDING = "force_promote", "bootstrap", "reject", "promote", "pending_approval"
APPROVE, DECLINE, ROLLBACK = "approve", "decline", "rollback"
AUTO, MANUAL = "auto", "manual"


class GateInputError(ValueError):
    """Inputs the gate cannot decide on; raised, never turned into a verdict."""


class MissingMetric(GateInputError):
    pass


class HoldoutMismatch(GateInputError):
    pass


class ReplayError(GateInputError):
    """Recorded inputs whose digests no longer match: the record was altered."""


class MissingEvaluation(ReplayError):
    """An evaluation recorded by digest only was not supplied: the entry cannot be replayed
    without it (nothing is known to be wrong with it)."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class ComparisonRow:
    metric: str
    champion: float
    challenger: float
    delta_rel: float
    threshold: float
    passed: bool


@dataclass(frozen=True)
class SignificanceRow:
    metric: str
    test: str
    statistic: float | None
    p_value: float
    p_adjusted: float
    alpha: float
    significant: bool


@dataclass(frozen=True)
class GateInputs:
    challenger: Evaluation
    champion: Evaluation | None
    policy: Policy
    # path -> SHA-256 observed on disk (None: file missing); see evaluation.observe_artifacts.
    observed_artifacts: Mapping[str, str | None] | None = None
    force_promote: bool = False
    operator: str | None = None
    reason: str | None = None  # the operator's reason, required with force_promote
    trigger: str = AUTO


@dataclass(frozen=True)
class Decision:
    outcome: str
    slot: str
    champion_version: str | None
    challenger_version: str
    trigger: str
    operator: str | None
    reason: str
    stage: str  # the ladder step that resolved
    checks: tuple[CheckResult, ...] = ()
    comparison: tuple[ComparisonRow, ...] = ()
    significance: tuple[SignificanceRow, ...] = ()
    tests: tuple[TestResult, ...] = ()
    thresholds: Mapping[str, float] = field(default_factory=dict)
    replay_inputs: Mapping[str, Any] = field(default_factory=dict)
    # details keys added by GATE_FORMAT 2 (evaluated, skipped_checks, responds_to_seq, ...)
    linked: Mapping[str, Any] = field(default_factory=dict)
    gate_format: int = GATE_FORMAT

    @property
    def failing_checks(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_promotion_entry(self, inline_evaluations: bool = True) -> dict[str, Any]:
        """Keyword arguments of a ``model_promotion`` ledger entry (ledger/schema.py columns).

        ``details.replay`` carries the evaluations inline, per-sample arrays included, with
        their SHA-256 digests. For a holdout too large to inline, ``inline_evaluations=False``
        keeps only the digests; :func:`replay` then needs the evaluation files passed back in.
        """
        replay_inputs = dict(self.replay_inputs)
        if not inline_evaluations and replay_inputs.get("kind") == "gate":
            # dropped before the deep copy: a large holdout's per-sample arrays are what
            # digest-only recording exists to avoid, copying them included
            replay_inputs["challenger"] = None
            replay_inputs["champion"] = None
        replay_inputs = _plain(replay_inputs)
        if self.gate_format < 2:  # format 1 recorded neither the links nor their replay inputs
            replay_inputs = {k: v for k, v in replay_inputs.items() if k not in FORMAT_2_REPLAY_KEYS}
        linked = _plain(dict(self.linked)) if self.gate_format >= 2 else {}
        return {
            "slot": self.slot,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "decision": self.outcome,
            "trigger": self.trigger,
            "operator": self.operator,
            "reason": self.reason,
            "comparison": [vars(r).copy() for r in self.comparison],
            "significance": [vars(r).copy() for r in self.significance],
            "thresholds": dict(self.thresholds),
            "details": {
                "gate_format": self.gate_format,
                "stage": self.stage,
                "checks": [vars(c).copy() for c in self.checks],
                "tests": [t.to_dict() for t in self.tests],
                "replay": replay_inputs,
                **linked,
            },
        }


# Replay inputs that GATE_FORMAT 2 added (absent from a format-1 entry's details.replay).
FORMAT_2_REPLAY_KEYS = ("responds_to_seq", "skipped_checks", "skipped_checks_from_seq")


def evaluated(challenger: Evaluation, champion: Evaluation | None) -> dict[str, Any]:
    """``details.evaluated``: what the gate compared, side by side, small enough to read in SQL
    (the evaluations themselves, per-sample arrays included, are under ``details.replay``)."""
    def side(e: Evaluation | None) -> dict[str, Any] | None:
        if e is None:
            return None
        return {"version": e.version, "holdout_digest": e.holdout_digest,
                "feature_schema_digest": e.lineage.feature_schema_digest,
                "metrics": {t: dict(m) for t, m in sorted(e.metrics.items())}}
    return {"challenger": side(challenger), "champion": side(champion),
            "same_holdout": champion is not None and champion.holdout_digest == challenger.holdout_digest}


# The ladder's steps after force-promote, named when no recorded policy says which checks they run.
LADDER_STEPS = ("fidelity", "functional", "competition")


def ladder_checks(policy: Policy | None, tasks: Sequence[str]) -> tuple[str, ...]:
    """The names of the checks the ladder runs under ``policy`` against a champion with
    ``tasks``, in the order it runs them (fidelity floor, functional, competition and
    guardrails): what a force-promote skips. Without a policy, the ladder's steps."""
    if policy is None:
        return LADDER_STEPS
    names = [f"fidelity:{t}" for t in tasks if policy.fidelity is not None and policy.fidelity.max_for(t) is not None]
    rules = policy.functional
    names.append("tasks_present")
    if rules.required_horizons:
        names.append("horizons_present")
    names.append("artifact_digests")
    if rules.thresholds_in_unit_interval:
        names.append("thresholds_in_unit_interval")
    if rules.training_data_not_older:
        names.append("training_data_not_older")
    names += ["feature_schema", "sample_size", "primary_improvement", "primary_significance"]
    names += [f"degradation:{t}/{r.name}" for t in tasks for r in policy.offline_metrics]
    names += [f"guardrail:{name}" for name, _ in policy.guardrails]
    return tuple(names)


def _plain(value: Any) -> Any:
    """Deep copy into plain dicts and lists, so callers cannot mutate the decision."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _pct(x: float) -> str:
    return f"{x * 100:+.2f}%"


# --- input validation ---------------------------------------------------------------------


def _require_operator(operator: str | None, reason: str | None, what: str) -> tuple[str, str]:
    if not operator or not operator.strip():
        raise GateInputError(f"{what} needs an operator id")
    if not reason or not reason.strip():
        raise GateInputError(f"{what} needs a reason")
    return operator, reason


def _check_same_holdout(champ: Evaluation, chal: Evaluation, tasks: Sequence[str]) -> None:
    for task in tasks:
        a, b = champ.holdout[task], chal.holdout[task]
        if a.n != b.n:
            raise HoldoutMismatch(
                f"task {task}: champion {champ.version} has {a.n} holdout samples, challenger {chal.version} has {b.n}; "
                "both must be scored on the same frozen holdout")
        if a.sample_ids != b.sample_ids:
            first = next(i for i, (x, y) in enumerate(zip(a.sample_ids, b.sample_ids)) if x != y)
            raise HoldoutMismatch(
                f"task {task}: sample ids differ from position {first} ({a.sample_ids[first]!r} vs {b.sample_ids[first]!r}); "
                "both models must be scored on the same holdout in the same order")
        if a.labels != b.labels:
            first = next(i for i, (x, y) in enumerate(zip(a.labels, b.labels)) if x != y)
            raise HoldoutMismatch(
                f"task {task}: labels differ at sample {a.sample_ids[first]!r} ({_fmt(a.labels[first])} vs "
                f"{_fmt(b.labels[first])}); the holdout label vectors must be identical")


def _threshold(e: Evaluation, task: str) -> float:
    try:
        return float(e.lineage.thresholds[task])
    except KeyError:
        raise GateInputError(f"{e.version}: task {task} has no decision threshold in lineage.thresholds") from None


def _threshold_for(e: Evaluation, task: str, metric: str) -> float:
    """The model's own decision threshold where the metric needs one (the value is unused otherwise)."""
    return _threshold(e, task) if KNOWN_METRICS[metric].uses_threshold else 0.5


def _metric_value(e: Evaluation, task: str, rule: MetricRule) -> float:
    """The reported value, checked against the per-sample predictions where the gate can recompute it."""
    try:
        reported = float(e.metrics[task][rule.name])
    except KeyError:
        raise MissingMetric(f"{e.version}: metric {rule.name!r} is missing for task {task}; "
                            "a missing metric is an error, never a zero") from None
    spec = KNOWN_METRICS.get(rule.name)
    if spec is not None:
        s = e.holdout[task]
        try:
            recomputed = spec.fn(np.asarray(s.labels), np.asarray(s.scores), _threshold_for(e, task, rule.name))
        except ValueError as err:
            raise GateInputError(f"{e.version}: cannot recompute {rule.name} for task {task}: {err}") from None
        if abs(recomputed - reported) > METRIC_TOLERANCE:
            raise GateInputError(
                f"{e.version}: task {task} reports {rule.name} {_fmt(reported)} but its holdout predictions give "
                f"{_fmt(recomputed)}; the reported metrics must come from the evaluated predictions")
    return reported


# --- the ladder ---------------------------------------------------------------------------


def decide(inputs: GateInputs) -> Decision:
    """Run the promotion ladder; pure and deterministic (the bootstrap seed is in the policy)."""
    chal, champ, policy = inputs.challenger, inputs.champion, inputs.policy
    if inputs.trigger not in (AUTO, MANUAL):
        raise GateInputError(f"trigger must be auto or manual, got {inputs.trigger!r}")
    if inputs.trigger == MANUAL and not inputs.operator:
        raise GateInputError("a manual trigger needs an operator id")
    if champ is not None and champ.slot != chal.slot:
        raise GateInputError(f"champion {champ.version} is for slot {champ.slot}, challenger {chal.version} for {chal.slot}")
    if champ is not None and champ.version == chal.version:
        raise GateInputError(f"challenger {chal.version} is the champion itself; a version cannot challenge itself")
    base = dict(
        slot=chal.slot,
        champion_version=champ.version if champ else None,
        challenger_version=chal.version,
        trigger=inputs.trigger,
        operator=inputs.operator,
        replay_inputs=_replay_inputs(inputs),
        linked={"evaluated": evaluated(chal, champ)},
    )

    if inputs.force_promote:
        operator, reason = _require_operator(inputs.operator, inputs.reason, "force-promote")
        check = CheckResult("force_promote", True, f"operator {operator}: {reason}")
        return Decision(FORCE_PROMOTE, reason=f"force-promote by {operator}: {reason}; every other check skipped",
                        stage="force_promote", checks=(check,), **{**base, "trigger": MANUAL})

    if champ is None:
        check = CheckResult("champion_exists", True, f"slot {chal.slot} has no production version")
        if not policy.auto_promote:
            # Human sign-off means no model goes live unapproved, the first one included.
            return Decision(PENDING, reason=f"no champion in slot {chal.slot}: {chal.version} would bootstrap the slot; "
                            "auto_promote is off, so it waits for a human sign-off", stage="bootstrap", checks=(check,), **base)
        return Decision(BOOTSTRAP, reason=f"no champion in slot {chal.slot}: {chal.version} bootstraps the slot",
                        stage="bootstrap", checks=(check,), **base)

    shared = [t for t in champ.tasks if t in chal.metrics]
    _check_same_holdout(champ, chal, shared)
    thresholds = _thresholds_used(policy, chal)

    fidelity = _fidelity_checks(policy, chal)
    if any(not c.passed for c in fidelity):
        return _reject("fidelity", "the fidelity floor, before competition", fidelity, base, thresholds)

    functional = _functional_checks(policy, champ, chal, inputs.observed_artifacts)
    if any(not c.passed for c in functional):
        return _reject("functional", "functional checks", fidelity + functional, base, thresholds)

    checks, rows, sig, tests = _competition(policy, champ, chal)
    all_checks = fidelity + functional + checks
    if any(not c.passed for c in checks):
        return _reject("competition", "competition and guardrails", all_checks, base, thresholds, rows, sig, tests)

    summary = _win_summary(policy, rows, sig)
    if policy.auto_promote:
        return Decision(PROMOTE, reason=f"challenger wins: {summary}", stage="competition", checks=all_checks,
                        comparison=rows, significance=sig, tests=tests, thresholds=thresholds, **base)
    return Decision(PENDING, reason=f"challenger passes every gate ({summary}); auto_promote is off, so it waits for a human sign-off",
                    stage="competition", checks=all_checks, comparison=rows, significance=sig, tests=tests,
                    thresholds=thresholds, **base)


def _reject(stage: str, where: str, checks: tuple[CheckResult, ...], base: dict[str, Any],
            thresholds: Mapping[str, float], rows: tuple[ComparisonRow, ...] = (),
            sig: tuple[SignificanceRow, ...] = (), tests: tuple[TestResult, ...] = ()) -> Decision:
    failing = [c for c in checks if not c.passed]
    listed = "; ".join(f"{c.name} ({c.detail})" for c in failing)
    noun = "check" if len(failing) == 1 else "checks"
    reason = f"rejected by {where}: {len(failing)} failing {noun}: {listed}"
    return Decision(REJECT, reason=reason, stage=stage, checks=checks, comparison=rows, significance=sig,
                    tests=tests, thresholds=thresholds, **base)


def _thresholds_used(policy: Policy, chal: Evaluation) -> dict[str, float]:
    t: dict[str, float] = {
        "min_relative_improvement": policy.min_relative_improvement,
        "max_secondary_degradation": policy.max_secondary_degradation,
        "alpha": policy.alpha,
        "min_sample_size": float(policy.min_sample_size),
    }
    if policy.fidelity is not None:
        for task in chal.tasks:
            floor = policy.fidelity.max_for(task)
            if floor is not None:
                t[f"fidelity.{task}.{policy.fidelity.measure}.max"] = floor
    for name, b in policy.guardrails:
        if b.min is not None:
            t[f"guardrail.{name}.min"] = b.min
        if b.max is not None:
            t[f"guardrail.{name}.max"] = b.max
    return t


def _fidelity_checks(policy: Policy, chal: Evaluation) -> tuple[CheckResult, ...]:
    if policy.fidelity is None:
        return ()
    measure, out = policy.fidelity.measure, []
    for task in chal.tasks:
        floor = policy.fidelity.max_for(task)
        if floor is None:
            continue
        try:
            value = float(chal.fidelity[task][measure])
        except KeyError:
            raise MissingMetric(f"{chal.version}: fidelity {measure!r} is missing for task {task}, "
                                "which has a fidelity floor; a missing value is an error, never a zero") from None
        ok = value <= floor
        out.append(CheckResult(f"fidelity:{task}", ok, f"{measure} {_fmt(value)} {'<=' if ok else '>'} max {_fmt(floor)}"))
    return tuple(out)


def _functional_checks(policy: Policy, champ: Evaluation, chal: Evaluation,
                       observed: Mapping[str, str | None] | None) -> tuple[CheckResult, ...]:
    rules = policy.functional
    out: list[CheckResult] = []

    required = sorted(set(rules.required_tasks) | set(champ.tasks))
    missing = [t for t in required if t not in chal.metrics]
    out.append(CheckResult("tasks_present", not missing,
                           f"missing: {', '.join(missing)}" if missing else f"all {len(required)} required tasks present"))

    if rules.required_horizons:
        gone = [h for h in rules.required_horizons if h not in chal.horizons]
        out.append(CheckResult("horizons_present", not gone,
                               f"missing: {', '.join(gone)}" if gone else f"horizons {', '.join(rules.required_horizons)} present"))

    if rules.verify_artifact_digests:
        problems: list[str] = []
        if not chal.lineage.artifacts:
            problems.append("no artifacts declared")
        elif observed is None:
            problems.append("artifact digests were not observed")
        else:
            for a in chal.lineage.artifacts:
                seen = observed.get(a.path)
                if seen is None:
                    problems.append(f"missing: {a.path}")
                elif seen.lower() != a.sha256:
                    problems.append(f"digest mismatch: {a.path}")
        out.append(CheckResult("artifact_digests", not problems,
                               "; ".join(problems) if problems else f"{len(chal.lineage.artifacts)} artifact(s) match their SHA-256"))
    else:
        out.append(CheckResult("artifact_digests", True, "disabled by policy"))

    if rules.thresholds_in_unit_interval:
        bad = [f"{t}={_fmt(v)}" for t, v in sorted(chal.lineage.thresholds.items()) if not 0.0 <= v <= 1.0]
        out.append(CheckResult("thresholds_in_unit_interval", not bad,
                               f"outside [0, 1]: {', '.join(bad)}" if bad else "all thresholds within [0, 1]"))

    if rules.training_data_not_older:
        a, b = champ.lineage.trained_end, chal.lineage.trained_end
        ok = b >= a
        out.append(CheckResult("training_data_not_older", ok,
                               f"challenger trained_end {b.isoformat()} {'>=' if ok else '<'} champion {a.isoformat()}"))

    same = champ.lineage.feature_schema_digest == chal.lineage.feature_schema_digest
    if same:
        out.append(CheckResult("feature_schema", True, "unchanged"))
    else:
        change = f"changed from {champ.lineage.feature_schema_digest[:12]} to {chal.lineage.feature_schema_digest[:12]}"
        allowed = rules.allow_feature_schema_change
        out.append(CheckResult("feature_schema", allowed,
                               f"{change} (allowed by policy)" if allowed else f"{change} and the policy blocks schema changes"))
    return tuple(out)


def _delta_rel(rule: MetricRule, champion: float, challenger: float) -> tuple[float, bool]:
    """Relative change in the better direction; (value, relative?)."""
    better = challenger - champion if rule.direction == HIGHER else champion - challenger
    if champion == 0.0:
        return better, False
    return better / abs(champion), True


def _run_test(policy: Policy, rule: MetricRule, champ: Evaluation, chal: Evaluation, task: str) -> TestResult:
    a, b = champ.holdout[task], chal.holdout[task]
    name = f"{task}/{rule.name}"
    if rule.test == DELONG:
        return delong_test(a.labels, a.scores, b.scores, metric=name, min_samples=policy.min_sample_size)
    if rule.test == MCNEMAR:
        y = np.asarray(a.labels)
        return mcnemar_exact(correct(y, np.asarray(a.scores), _threshold(champ, task)),
                             correct(y, np.asarray(b.scores), _threshold(chal, task)),
                             metric=name, min_samples=policy.min_sample_size)
    spec = KNOWN_METRICS[rule.name]
    return paired_bootstrap(a.labels, a.scores, b.scores, spec.fn, metric=name,
                            resamples=policy.bootstrap_resamples, seed=policy.bootstrap_seed,
                            champion_threshold=_threshold_for(champ, task, rule.name),
                            challenger_threshold=_threshold_for(chal, task, rule.name),
                            stratify=spec.binary_labels, min_samples=policy.min_sample_size)


def _competition(policy: Policy, champ: Evaluation, chal: Evaluation):
    tasks = champ.tasks
    primary = policy.primary
    checks: list[CheckResult] = []
    rows: list[ComparisonRow] = []

    values = {(t, r.name): (_metric_value(champ, t, r), _metric_value(chal, t, r))
              for t in tasks for r in policy.offline_metrics}

    small = [f"{t} ({champ.holdout[t].n})" for t in tasks if champ.holdout[t].n < policy.min_sample_size]
    checks.append(CheckResult("sample_size", not small,
                              f"below {policy.min_sample_size} samples: {', '.join(small)}" if small
                              else f"every task has at least {policy.min_sample_size} holdout samples"))

    champ_mean = float(np.mean([values[(t, primary.name)][0] for t in tasks]))
    chal_mean = float(np.mean([values[(t, primary.name)][1] for t in tasks]))
    delta, relative = _delta_rel(primary, champ_mean, chal_mean)
    ok = delta >= policy.min_relative_improvement
    rows.append(ComparisonRow(f"mean_{primary.name}", champ_mean, chal_mean, delta, policy.min_relative_improvement, ok))
    how = _pct(delta) if relative else f"{_fmt(delta)} absolute (champion is 0)"
    checks.append(CheckResult("primary_improvement", ok,
                              f"mean_{primary.name} {_fmt(champ_mean)} -> {_fmt(chal_mean)}, {how} "
                              f"{'>=' if ok else '<'} {_pct(policy.min_relative_improvement)}"))

    tests: list[TestResult] = []
    untestable = "holdout below the minimum sample size" if small else ""
    if not small:
        try:
            tests = [_run_test(policy, primary, champ, chal, t) for t in tasks]
        except InsufficientSample as e:  # e.g. a task with a single positive label
            tests, untestable = [], str(e)
    adjusted = holm([r.p_value for r in tests])
    sig = tuple(
        SignificanceRow(r.metric, r.test, r.statistic, r.p_value, p_adj, policy.alpha, p_adj < policy.alpha)
        for r, p_adj in zip(tests, adjusted)
    )
    wins = [s.metric for s, r in zip(sig, tests)
            if s.significant and _delta_rel(primary, r.champion, r.challenger)[0] > 0]
    if untestable:
        checks.append(CheckResult("primary_significance", False, f"not tested: {untestable}"))
    else:
        checks.append(CheckResult(
            "primary_significance", bool(wins),
            f"significant improvement after Holm at alpha {_fmt(policy.alpha)} on {len(wins)} of {len(tasks)} tasks"
            + (f": {', '.join(wins)}" if wins else f" (smallest adjusted p {_fmt(min(adjusted))})")))

    for t in tasks:
        for r in policy.offline_metrics:
            a, b = values[(t, r.name)]
            d, rel = _delta_rel(r, a, b)
            ok = d >= -policy.max_secondary_degradation
            rows.append(ComparisonRow(f"{t}/{r.name}", a, b, d, -policy.max_secondary_degradation, ok))
            how = _pct(d) if rel else f"{_fmt(d)} absolute (champion is 0)"
            checks.append(CheckResult(f"degradation:{t}/{r.name}", ok,
                                      f"{_fmt(a)} -> {_fmt(b)}, {how} "
                                      f"{'within' if ok else 'beyond'} -{policy.max_secondary_degradation * 100:.2f}%"))

    for name, bounds in policy.guardrails:
        if name not in chal.guardrails:
            raise MissingMetric(f"{chal.version}: guardrail {name!r} has no value; a missing value is an error, never a zero")
        v = float(chal.guardrails[name])
        ok = bounds.contains(v)
        checks.append(CheckResult(f"guardrail:{name}", ok,
                                  f"{_fmt(v)} {'within' if ok else 'outside'} the allowed range ({bounds.describe()})"))
    return tuple(checks), tuple(rows), sig, tuple(tests)


def _win_summary(policy: Policy, rows: tuple[ComparisonRow, ...], sig: tuple[SignificanceRow, ...]) -> str:
    mean = rows[0]
    n_sig = sum(1 for s in sig if s.significant)
    return (f"{mean.metric} {_pct(mean.delta_rel)} (>= {_pct(policy.min_relative_improvement)}), "
            f"significant on {n_sig} of {len(sig)} tasks after Holm at alpha {_fmt(policy.alpha)}, "
            f"no metric degrades more than {policy.max_secondary_degradation * 100:.2f}%, "
            f"all {len(policy.guardrails)} guardrail(s) within bounds")


# --- approvals and rollbacks --------------------------------------------------------------


def decide_approval(slot: str, version: str, champion_version: str | None, *, approve: bool,
                    operator: str, reason: str, requested_by: Sequence[str] = (),
                    requested_at: dt.datetime | None = None, decided_at: dt.datetime | None = None,
                    valid_days: int | None = None) -> Decision:
    """A human's sign-off on (or refusal of) a ``pending_approval`` challenger.

    ``requested_by`` names who put the version up for sign-off (the gate entry's actor and
    operator): none of them may approve it, so every approval is a second person's (a
    requester may still decline, i.e. withdraw, their own request). ``valid_days`` (the
    ``approval_valid_days`` of the policy the version was evaluated under) bounds how long
    after the verdict (``requested_at``) an approval at ``decided_at`` is accepted.
    """
    operator, reason = _require_operator(operator, reason, "an approval" if approve else "a decline")
    requesters = sorted({r for r in requested_by if r})
    if approve and operator in requesters:
        raise GateInputError(f"{operator} requested the sign-off of {version} and cannot approve it; "
                             "another operator must (separation of duties)")
    replay: dict[str, Any] = {"kind": "approval", "slot": slot, "version": version, "champion_version": champion_version,
                              "approve": approve, "operator": operator, "reason": reason}
    if requesters:
        replay["requested_by"] = requesters
    if valid_days is not None:
        if requested_at is None or decided_at is None:
            raise GateInputError("an approval window needs the time of the verdict and of the decision")
        waited = decided_at - requested_at
        if approve and waited > dt.timedelta(days=valid_days):
            raise GateInputError(f"{version} has waited {waited.days} days for a sign-off (since {utc_text(requested_at)}); "
                                 f"the policy it was evaluated under accepts an approval within {valid_days} days: "
                                 "decline it and evaluate it again")
        replay.update(requested_at=utc_text(requested_at), decided_at=utc_text(decided_at), valid_days=valid_days)
    outcome = APPROVE if approve else DECLINE
    verb = "approved" if approve else "declined"
    return Decision(outcome, slot, champion_version, version, MANUAL, operator,
                    f"{version} {verb} by {operator}: {reason}", stage="approval",
                    checks=(CheckResult("human_sign_off", approve, f"{verb} by {operator}"),), replay_inputs=replay)


def decide_force_promote(slot: str, version: str, champion_version: str | None, *, operator: str,
                         reason: str, skipped_checks: Sequence[str] = LADDER_STEPS,
                         skipped_checks_from_seq: int | None = None,
                         responds_to_seq: int | None = None) -> Decision:
    """An operator's explicit override: put ``version`` (any registered version, e.g. a known-good
    one in an emergency) into production, every gate check skipped.

    The same outcome as ``decide(GateInputs(..., force_promote=True))`` without needing the
    version's evaluation: an override does not look at evaluations, so it must not depend on
    having one at hand. The entry says who overrode and why; the committee reviews it later.

    ``skipped_checks`` names the checks the ladder would have run (:func:`ladder_checks` of the
    policy the gate entry at ``skipped_checks_from_seq`` recorded); ``responds_to_seq`` is the
    monitor_alert entry the override answers, if any (checked by :mod:`gates.links`).
    """
    operator, reason = _require_operator(operator, reason, "force-promote")
    if version == champion_version:
        raise GateInputError(f"{version} is already production in slot {slot}")
    skipped = [str(c) for c in skipped_checks]
    links = {"skipped_checks": skipped, "skipped_checks_from_seq": skipped_checks_from_seq,
             "responds_to_seq": responds_to_seq}
    replay = {"kind": "force_promote", "slot": slot, "version": version, "champion_version": champion_version,
              "operator": operator, "reason": reason, **links}
    check = CheckResult("force_promote", True, f"operator {operator}: {reason}")
    return Decision(FORCE_PROMOTE, slot, champion_version, version, MANUAL, operator,
                    f"force-promote by {operator}: {reason}; every other check skipped", stage="force_promote",
                    checks=(check,), replay_inputs=replay, linked=links)


def decide_rollback(slot: str, current_version: str, target_version: str, previous_production: Sequence[str], *,
                    reason: str, operator: str | None = None, trigger: str = MANUAL,
                    alert: Mapping[str, Any] | None = None, responds_to_seq: int | None = None) -> Decision:
    """Put a version that was production before back into production.

    ``previous_production`` lists the versions that held production in this slot before (from
    :mod:`gates.registry`); a rollback to any other version is refused. An automatic rollback
    (``trigger = "auto"``, from a monitor) carries the alert record that fired it;
    ``responds_to_seq`` is the monitor_alert entry the rollback answers, if any.
    """
    if trigger not in (AUTO, MANUAL):
        raise GateInputError(f"trigger must be auto or manual, got {trigger!r}")
    if not reason or not reason.strip():
        raise GateInputError("a rollback needs a reason")
    if trigger == MANUAL and not operator:
        raise GateInputError("a manual rollback needs an operator id")
    if trigger == AUTO and alert is None:
        raise GateInputError("an automatic rollback needs the monitor alert that triggered it")
    if target_version == current_version:
        raise GateInputError(f"{target_version} is already production in slot {slot}")
    if target_version not in previous_production:
        raise GateInputError(f"cannot roll back slot {slot} to {target_version}: it was never production there "
                             f"(previous production versions: {', '.join(previous_production) or 'none'})")
    replay = {"kind": "rollback", "slot": slot, "current_version": current_version, "target_version": target_version,
              "previous_production": list(previous_production), "reason": reason, "operator": operator,
              "trigger": trigger, "alert": _plain(alert) if alert is not None else None,
              "responds_to_seq": responds_to_seq}
    check = CheckResult("target_was_production", True, f"{target_version} was production in slot {slot} before")
    who = f" by {operator}" if operator else " by the monitor"
    return Decision(ROLLBACK, slot, current_version, target_version, trigger, operator,
                    f"rollback of slot {slot} from {current_version} to {target_version}{who}: {reason}",
                    stage="rollback", checks=(check,), replay_inputs=replay,
                    linked={"responds_to_seq": responds_to_seq})


# --- replay -------------------------------------------------------------------------------


def _replay_inputs(inputs: GateInputs) -> dict[str, Any]:
    champ = inputs.champion
    return {
        "kind": "gate",
        "policy": policy_to_dict(inputs.policy),
        "policy_digest": policy_digest(inputs.policy),
        "challenger": evaluation_to_dict(inputs.challenger),
        "challenger_digest": inputs.challenger.digest,
        "champion": evaluation_to_dict(champ) if champ else None,
        "champion_digest": champ.digest if champ else None,
        "observed_artifacts": dict(inputs.observed_artifacts) if inputs.observed_artifacts is not None else None,
        "force_promote": inputs.force_promote,
        "operator": inputs.operator,
        "reason": inputs.reason,
        "trigger": inputs.trigger,
    }


def _recorded_evaluation(rec: Mapping[str, Any], role: str, supplied: Sequence[Evaluation]) -> Evaluation | None:
    digest = rec[f"{role}_digest"]
    if digest is None:
        return None
    if rec[role] is not None:
        e = evaluation_from_mapping(rec[role], f"recorded {role}")
    else:  # recorded by digest only: the caller brings the evaluation back
        found = [s for s in supplied if s.digest == digest]
        if not found:
            raise MissingEvaluation(f"the {role} evaluation was recorded by digest only ({digest}); pass its file to replay")
        e = found[0]
    if e.digest != digest:
        raise ReplayError(f"the recorded {role} evaluation does not match its recorded digest")
    return e


def _recorded_instant(rec: Mapping[str, Any], key: str) -> dt.datetime:
    try:
        ts = dt.datetime.fromisoformat(str(rec[key]).replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(f"recorded {key} {rec[key]!r} is not an ISO 8601 instant") from None
    if ts.tzinfo is None:
        raise ReplayError(f"recorded {key} {rec[key]!r} has no time zone")
    return ts


def replay(details: Mapping[str, Any], evaluations: Sequence[Evaluation] = ()) -> Decision:
    """Recompute a decision from the ``details`` of its model_promotion entry.

    The recorded policy and evaluations are checked against their recorded SHA-256 digests
    first, so a replay of an edited record fails loudly instead of "confirming" it.
    ``evaluations`` supplies those recorded by digest only (``inline_evaluations=False``).
    """
    rec = details.get("replay") if "replay" in details else None
    if not isinstance(rec, Mapping):
        raise ReplayError("details carry no replay inputs")
    gate_format = details.get("gate_format", 1)
    if gate_format not in (1, GATE_FORMAT):
        raise ReplayError(f"unknown gate_format {gate_format!r}")
    return replace(_replay(rec, evaluations), gate_format=gate_format)


def _replay(rec: Mapping[str, Any], evaluations: Sequence[Evaluation]) -> Decision:
    kind = rec.get("kind")
    if kind == "approval":
        window = {}
        if rec.get("valid_days") is not None:
            window = dict(requested_at=_recorded_instant(rec, "requested_at"), decided_at=_recorded_instant(rec, "decided_at"),
                          valid_days=rec["valid_days"])
        return decide_approval(rec["slot"], rec["version"], rec["champion_version"], approve=rec["approve"],
                               operator=rec["operator"], reason=rec["reason"], requested_by=rec.get("requested_by", ()),
                               **window)
    if kind == "force_promote":
        skipped = {"skipped_checks": rec["skipped_checks"]} if "skipped_checks" in rec else {}
        return decide_force_promote(rec["slot"], rec["version"], rec["champion_version"], operator=rec["operator"],
                                    reason=rec["reason"], skipped_checks_from_seq=rec.get("skipped_checks_from_seq"),
                                    responds_to_seq=rec.get("responds_to_seq"), **skipped)
    if kind == "rollback":
        return decide_rollback(rec["slot"], rec["current_version"], rec["target_version"], rec["previous_production"],
                               reason=rec["reason"], operator=rec["operator"], trigger=rec["trigger"], alert=rec["alert"],
                               responds_to_seq=rec.get("responds_to_seq"))
    if kind != "gate":
        raise ReplayError(f"unknown replay kind {kind!r}")
    policy = policy_from_mapping(rec["policy"], "recorded policy")
    if policy_digest(policy) != rec["policy_digest"]:
        raise ReplayError("the recorded policy does not match its recorded digest")
    chal = _recorded_evaluation(rec, "challenger", evaluations)
    champ = _recorded_evaluation(rec, "champion", evaluations)
    if chal is None:
        raise ReplayError("the record names no challenger evaluation")
    return decide(GateInputs(chal, champ, policy, observed_artifacts=rec["observed_artifacts"],
                             force_promote=rec["force_promote"], operator=rec["operator"], reason=rec["reason"],
                             trigger=rec["trigger"]))
