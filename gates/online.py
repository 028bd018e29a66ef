"""Online champion/challenger: deterministic routing, online evaluation, rollback triggers.

Routing hashes the request id with SHA-256, so the same request always lands on the same model
(no random numbers, reproducible from the ledger's request ids) and an experiment name salts
the hash so two experiments do not split traffic along the same line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

import numpy as np

from gates.alerts import PROPOSE_ROLLBACK, ROLLBACK, Alert
from gates.metrics import HIGHER
from gates.policy import Policy
from gates.stats import InsufficientSample, TestResult, welch_test

# 10,000 buckets: basis points, so a 5 % canary is exactly 500 buckets.
BUCKETS = 10_000


class TrafficMode(Enum):
    SHADOW = "shadow"  # champion serves everything; challenger scores every request unseen
    CANARY_5 = "canary_5"
    CANARY_10 = "canary_10"
    CANARY_20 = "canary_20"
    AB_50 = "ab_50"

    @property
    def challenger_share(self) -> float:
        return {"shadow": 0.0, "canary_5": 0.05, "canary_10": 0.10, "canary_20": 0.20, "ab_50": 0.50}[self.value]


@dataclass(frozen=True)
class Routing:
    served: str  # "champion" or "challenger"
    shadow: bool  # the challenger also scores the request without serving it
    bucket: int

    def routes(self) -> tuple[tuple[str, str], ...]:
        """(model, route) pairs for model_inference entries: route is champion/challenger/shadow."""
        pairs = ((self.served, self.served),)
        return pairs + ((("challenger", "shadow"),) if self.shadow else ())


def bucket(request_id: str, experiment: str = "") -> int:
    digest = hashlib.sha256(f"{experiment}\x00{request_id}".encode("utf-8")).digest()
    # 64 bits mod 10,000: the modulo bias is below 1e-15, far under any split tolerance.
    return int.from_bytes(digest[:8], "big") % BUCKETS


def route(request_id: str, mode: TrafficMode, experiment: str = "") -> Routing:
    b = bucket(request_id, experiment)
    if mode is TrafficMode.SHADOW:
        return Routing("champion", True, b)
    served = "challenger" if b < round(mode.challenger_share * BUCKETS) else "champion"
    return Routing(served, False, b)


# --- online evaluation --------------------------------------------------------------------

INSUFFICIENT, BETTER, WORSE, NO_DIFFERENCE = (
    "insufficient_data", "challenger_better", "challenger_worse", "no_significant_difference")


@dataclass(frozen=True)
class OnlineEvaluation:
    metric: str
    outcome: str
    detail: str
    test: TestResult | None


def evaluate_online(champion_values: Sequence[float], challenger_values: Sequence[float], *, metric: str,
                    policy: Policy) -> OnlineEvaluation:
    """Welch's t-test on per-request values of a metric the policy declares with test = welch."""
    rule = policy.metric(metric)
    if rule.test != "welch":
        raise ValueError(f"metric {metric!r} is declared with test {rule.test}, not welch, in the policy")
    try:
        t = welch_test(champion_values, challenger_values, metric=metric, min_samples=policy.online.min_samples)
    except InsufficientSample as e:
        return OnlineEvaluation(metric, INSUFFICIENT, str(e), None)
    better = t.difference > 0 if rule.direction == HIGHER else t.difference < 0
    if t.p_value >= policy.online.alpha or t.difference == 0:
        outcome = NO_DIFFERENCE
    else:
        outcome = BETTER if better else WORSE
    detail = (f"{metric}: champion mean {t.champion:.6g} (n={t.extra['n_champion']}), challenger mean "
              f"{t.challenger:.6g} (n={t.extra['n_challenger']}), Welch p {t.p_value:.3g} at alpha {policy.online.alpha:g}")
    return OnlineEvaluation(metric, outcome, detail, t)


# --- rollback triggers --------------------------------------------------------------------


def sustained_breach(values: Sequence[float], *, floor: float, window: int, consecutive: int,
                     direction: str = HIGHER) -> int | None:
    """Index into ``values`` at which a sustained SLO breach first fires, or None.

    The rolling mean over ``window`` observations must be on the wrong side of ``floor`` for
    ``consecutive`` rolling points in a row: one noisy point is not an incident.
    """
    v = np.asarray(values, dtype=float)
    if len(v) < window:
        return None
    rolling = np.convolve(v, np.ones(window) / window, mode="valid")
    bad = rolling < floor if direction == HIGHER else rolling > floor
    run = 0
    for i, b in enumerate(bad):
        run = run + 1 if b else 0
        if run >= consecutive:
            return i + window - 1
    return None


@dataclass(frozen=True)
class ServingWindow:
    """What the serving side observed for the live version since it took traffic."""

    requests: int
    errors: int
    latency_p99_ms: float
    baseline_latency_p99_ms: float  # the previous version's p99 on the same traffic
    slo_values: Sequence[float] = ()  # the SLO metric per period, oldest first


def check_rollback(slot: str, version: str, window: ServingWindow, policy: Policy) -> Alert | None:
    """An alert proposing (or, with ``rollback.action = "rollback"``, ordering) a rollback, or None.

    Triggers: error rate above ``max_error_rate`` (once at least ``online.min_samples`` requests
    were seen), p99 latency above ``max_latency_p99_ratio`` times the baseline, and a sustained
    SLO breach over a rolling window.
    """
    rules, fired = policy.rollback, []
    measurements: dict[str, float | int | None] = {"requests": window.requests, "errors": window.errors,
                                                   "latency_p99_ms": window.latency_p99_ms,
                                                   "baseline_latency_p99_ms": window.baseline_latency_p99_ms}
    if window.requests >= policy.online.min_samples:
        rate = window.errors / window.requests
        measurements["error_rate"] = rate
        if rate > rules.max_error_rate:
            fired.append(f"error rate {rate:.2%} > {rules.max_error_rate:.2%}")
    if window.baseline_latency_p99_ms > 0:
        ratio = window.latency_p99_ms / window.baseline_latency_p99_ms
        measurements["latency_p99_ratio"] = ratio
        if ratio > rules.max_latency_p99_ratio:
            fired.append(f"p99 latency {window.latency_p99_ms:g} ms is {ratio:.2f}x the baseline "
                         f"(max {rules.max_latency_p99_ratio:g}x)")
    if rules.slo_metric is not None and rules.slo_floor is not None:
        at = sustained_breach(window.slo_values, floor=rules.slo_floor, window=rules.slo_window,
                              consecutive=rules.slo_consecutive, direction=rules.slo_direction)
        measurements["slo_breach_at"] = at
        if at is not None:
            side = "below" if rules.slo_direction == HIGHER else "above"
            fired.append(f"{rules.slo_metric} rolling mean over {rules.slo_window} {side} {rules.slo_floor:g} "
                         f"for {rules.slo_consecutive} periods in a row (period {at})")
    if not fired:
        return None
    action = ROLLBACK if rules.action == "rollback" else PROPOSE_ROLLBACK
    verb = "rolling back" if action == ROLLBACK else "rollback proposed"
    return Alert("online.rollback", slot, version, "breach", action,
                 f"{slot} {version}: {verb}: " + "; ".join(fired), measurements)

