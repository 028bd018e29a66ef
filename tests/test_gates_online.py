from __future__ import annotations

import math

import numpy as np
import pytest

from gates.online import (
    BUCKETS,
    ServingWindow,
    TrafficMode,
    bucket,
    check_rollback,
    evaluate_online,
    route,
    sustained_breach,
)
from gates.policy import parse_policy

POLICY = parse_policy("""
[gate]
primary_metric = "auc"
[metrics.auc]
[metrics.latency_ms]
direction = "lower"
test = "welch"
[metrics.revenue]
direction = "higher"
test = "welch"
[online]
min_samples = 30
alpha = 0.05
[rollback]
max_error_rate = 0.02
max_latency_p99_ratio = 2.0
slo_metric = "accuracy"
slo_floor = 0.88
slo_window = 5
slo_consecutive = 3
""")


def test_routing_is_stable_and_depends_on_the_experiment():
    first = [route(f"req_{i}", TrafficMode.CANARY_10, "exp-a") for i in range(2000)]
    again = [route(f"req_{i}", TrafficMode.CANARY_10, "exp-a") for i in range(2000)]
    assert first == again
    other = [route(f"req_{i}", TrafficMode.CANARY_10, "exp-b").served for i in range(2000)]
    assert other != [r.served for r in first]
    # A known value pins the hash construction (SHA-256 of "exp-a\0req_0", first 8 bytes).
    import hashlib
    expected = int.from_bytes(hashlib.sha256(b"exp-a\x00req_0").digest()[:8], "big") % BUCKETS
    assert bucket("req_0", "exp-a") == expected == first[0].bucket


@pytest.mark.parametrize("mode", [TrafficMode.CANARY_5, TrafficMode.CANARY_10, TrafficMode.CANARY_20, TrafficMode.AB_50])
def test_split_is_close_to_the_configured_share(mode):
    n = 20_000
    share = sum(route(f"req_{i}", mode).served == "challenger" for i in range(n)) / n
    p = mode.challenger_share
    # Four binomial standard deviations: a split this far off would be a routing bug.
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_canary_ramp_only_adds_challenger_traffic():
    # A request on the challenger at 5 % stays on it at 10 %, 20 % and 50 %.
    ids = [f"u{i}" for i in range(5000)]
    sets = [{i for i in ids if route(i, m).served == "challenger"} for m in
            (TrafficMode.CANARY_5, TrafficMode.CANARY_10, TrafficMode.CANARY_20, TrafficMode.AB_50)]
    assert sets[0] <= sets[1] <= sets[2] <= sets[3]


def test_shadow_serves_champion_and_logs_the_challenger_as_shadow():
    r = route("req_1", TrafficMode.SHADOW)
    assert (r.served, r.shadow) == ("champion", True)
    assert r.routes() == (("champion", "champion"), ("challenger", "shadow"))
    assert all(route(f"r{i}", TrafficMode.SHADOW).served == "champion" for i in range(500))


def test_online_evaluation_with_welch_and_minimum_sample():
    rng = np.random.default_rng(1)
    champ, chal = rng.normal(120, 20, 400), rng.normal(100, 25, 400)
    e = evaluate_online(champ, chal, metric="latency_ms", policy=POLICY)
    assert e.outcome == "challenger_better" and e.test is not None and e.test.test == "welch"
    worse = evaluate_online(chal, champ, metric="latency_ms", policy=POLICY)
    assert worse.outcome == "challenger_worse"
    same = evaluate_online(champ, champ + rng.normal(0, 0.01, 400), metric="latency_ms", policy=POLICY)
    assert same.outcome == "no_significant_difference"
    few = evaluate_online(champ, chal[:29], metric="latency_ms", policy=POLICY)
    assert few.outcome == "insufficient_data" and few.test is None
    assert "29 samples, the policy requires at least 30" in few.detail
    with pytest.raises(ValueError, match="declared with test delong, not welch"):
        evaluate_online(champ, chal, metric="auc", policy=POLICY)


def test_sustained_breach_needs_a_run_of_rolling_points():
    steady = [0.91] * 30
    assert sustained_breach(steady, floor=0.88, window=5, consecutive=3) is None
    one_bad_day = [0.91] * 10 + [0.70] + [0.91] * 10  # rolling mean dips for 5 points... but only to 0.872
    assert sustained_breach(one_bad_day, floor=0.85, window=5, consecutive=3) is None
    slide = [0.91] * 18 + [0.91 - 0.006 * k for k in range(1, 13)]
    fire = sustained_breach(slide, floor=0.88, window=5, consecutive=3)
    rolling = np.convolve(slide, np.ones(5) / 5, mode="valid")
    first_bad = int(np.argmax(rolling < 0.88))
    assert fire == first_bad + 2 + 4  # third consecutive bad rolling point, mapped back to a period
    assert sustained_breach([0.5] * 4, floor=0.88, window=5, consecutive=1) is None  # not a full window


def test_rollback_triggers_propose_by_default_and_act_when_told():
    calm = ServingWindow(requests=1000, errors=5, latency_p99_ms=150, baseline_latency_p99_ms=120,
                         slo_values=[0.91] * 10)
    assert check_rollback("credit_pd", "v012", calm, POLICY) is None
    bad = ServingWindow(requests=1000, errors=31, latency_p99_ms=300, baseline_latency_p99_ms=120,
                        slo_values=[0.91] * 5 + [0.80] * 8)
    alert = check_rollback("credit_pd", "v012", bad, POLICY)
    assert alert is not None and alert.action == "propose_rollback"
    assert alert.summary == ("credit_pd v012: rollback proposed: error rate 3.10% > 2.00%; "
                             "p99 latency 300 ms is 2.50x the baseline (max 2x); "
                             "accuracy rolling mean over 5 below 0.88 for 3 periods in a row (period 8)")
    entry = alert.to_operation_entry()
    assert (entry["event_type"], entry["component"], entry["status"]) == ("monitor_alert", "gates.online.rollback", "breach")
    acting = parse_policy(POLICY_TEXT_WITH_ACTION)
    assert check_rollback("credit_pd", "v012", bad, acting).action == "rollback"


def test_error_rate_waits_for_enough_requests():
    few = ServingWindow(requests=10, errors=5, latency_p99_ms=100, baseline_latency_p99_ms=100)
    assert check_rollback("credit_pd", "v012", few, POLICY) is None


POLICY_TEXT_WITH_ACTION = """
[gate]
primary_metric = "auc"
[metrics.auc]
[rollback]
action = "rollback"
"""
