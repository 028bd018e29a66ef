"""A seeded stream of realistic, unique audit entries for all seven tables.

Used by tests and benchmarks as a workload: every request writes data_access ->
model_inference -> attribution -> guardrail, as the source documents describe, with
distinct ids, digests, scores and timestamps (repeated values would let Parquet and
DuckDB hash a dictionary once and make benchmarks lie).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Iterator

import numpy as np
import pyarrow as pa

PRODUCTS = ("deposit_12m", "bond_fund", "balanced_fund", "equity_fund", "els_note")
FEATURES = ("age", "income", "assets", "experience_years", "risk_tolerance", "debt_ratio", "tenure_months")
START = dt.datetime(2025, 8, 1, tzinfo=dt.timezone.utc)


def request_flow(rng: np.random.Generator, i: int, ts: dt.datetime, model_version: str) -> list[tuple[str, dict]]:
    """The four entries one recommendation request writes, in order."""
    request_id = f"req-{i:09d}-{rng.integers(1 << 32):08x}"
    subject_id = f"cust-{rng.integers(1_000_000):07d}"
    scores = rng.dirichlet(np.ones(len(PRODUCTS)))
    proposed = PRODUCTS[int(np.argmax(scores))]
    features = rng.normal(size=len(FEATURES))
    digest = hashlib.sha256(features.tobytes() + request_id.encode()).hexdigest()
    contributions = features * rng.normal(0.5, 0.2, size=len(FEATURES))
    top = np.argsort(-np.abs(contributions))[:3]
    blocked = proposed == "els_note" and features[4] < 0
    final = "balanced_fund" if blocked else proposed
    us = dt.timedelta(microseconds=1)
    return [
        ("data_access", dict(
            ts=ts, operator=f"teller-{rng.integers(400):03d}", subject_id=subject_id, dataset="crm.customer_profile",
            columns=["age_band", "income_tier", "assets", "experience_years", "risk_tolerance"],
            purpose="suitability_assessment", access_type="read", row_count=1, request_id=request_id,
        )),
        ("model_inference", dict(
            ts=ts + 40 * us, request_id=request_id, subject_id=subject_id, model_slot="product_reco",
            model_version=model_version, input_digest=digest,
            scores={p: float(s) for p, s in zip(PRODUCTS, scores)}, decision=proposed,
            latency_ms=float(rng.gamma(4.0, 2.5)), route="champion",
        )),
        ("attribution", dict(
            ts=ts + 80 * us, request_id=request_id, model_version=model_version, method="linear_coef_x_value",
            top_features=[{"feature": FEATURES[j], "value": float(features[j]), "contribution": float(contributions[j])} for j in top],
        )),
        ("guardrail", dict(
            ts=ts + 120 * us, request_id=request_id, gate="kfcpa_art17_suitability",
            verdict="modify" if blocked else "pass",
            criteria={"risk_grade_gap": float(max(0.0, -features[4])), "profile_confirmed": 1.0},
            reason="product risk grade above the customer's risk profile" if blocked else None,
            original_output=proposed, final_output=final,
        )),
    ]


def stream(n_requests: int, seed: int = 7) -> Iterator[tuple[str, dict]]:
    """Entries for `n_requests` requests with a promotion, a schema change and operations
    mixed in, one (table, row) at a time."""
    rng = np.random.default_rng(seed)
    version = "reco-2025.08.1"
    yield "operation", dict(ts=START, event_type="serving_start", component="reco-api", status="ok", correlation_id="boot-1", details={"replicas": 3})
    yield "dimension_change", dict(
        ts=START, component="feature_pipeline", new_schema_digest=hashlib.sha256(",".join(FEATURES).encode()).hexdigest(),
        new_dimension=len(FEATURES), features_added=list(FEATURES), features_removed=[], reason="initial feature schema",
    )
    yield "model_promotion", dict(
        ts=START, slot="product_reco", challenger_version=version, decision="bootstrap", trigger="auto",
        reason="no champion in slot product_reco", thresholds={"min_relative_improvement": 0.005},
    )
    for i in range(n_requests):
        ts = START + dt.timedelta(seconds=30 * i)
        if i and i % 5000 == 0:
            new = f"reco-2025.{8 + i // 5000}.1"
            yield "model_promotion", dict(
                ts=ts, slot="product_reco", champion_version=version, challenger_version=new, decision="promote", trigger="auto",
                reason="primary metric auc improved 1.2% (DeLong p=0.003)",
                comparison=[{"metric": "auc", "champion": 0.781, "challenger": 0.790, "delta_rel": 0.0115, "threshold": 0.005, "passed": True}],
                significance=[{"metric": "auc", "test": "delong", "statistic": 2.96, "p_value": 0.003, "p_adjusted": 0.003, "alpha": 0.05, "significant": True}],
                thresholds={"min_relative_improvement": 0.005, "max_secondary_degradation": 0.02, "alpha": 0.05},
            )
            yield "operation", dict(ts=ts, event_type="manifest_swap", component="reco-api", status="ok", correlation_id=f"swap-{i}", details={"from": version, "to": new})
            version = new
        yield from request_flow(rng, i, ts, version)


def inference_batch(n: int, seed: int, offset: int = 0) -> pa.Table:
    """`n` unique model_inference rows as an Arrow table (for batch benchmarks)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 1 << 62, size=n)
    digests = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    scores = rng.dirichlet(np.ones(3), size=n)
    ts0 = int(START.timestamp() * 1_000_000) + offset * 1_000
    labels = np.array(["approve", "decline", "refer"], dtype=object)  # map keys are stored sorted
    keys = pa.array(np.tile(labels, n))
    offsets = pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32))
    return pa.table({
        "ts": pa.array(ts0 + np.arange(n, dtype=np.int64) * 1_000, pa.timestamp("us", tz="UTC")),
        "actor": pa.array(np.char.add("scorer-", (ids % 7).astype(str)).astype(object)),
        "request_id": pa.array([f"req-{x:016x}" for x in ids.tolist()]),
        "subject_id": pa.array([f"cust-{x % 2_000_000:07d}" for x in ids.tolist()]),
        "model_slot": pa.array(np.full(n, "credit_limit", dtype=object)),
        "model_version": pa.array(np.full(n, "cl-2026.11.2", dtype=object)),
        "input_digest": pa.array([bytes(d).hex() for d in digests]),
        "scores": pa.MapArray.from_arrays(offsets, keys, pa.array(scores.ravel())),
        "decision": pa.array(labels[np.argmax(scores, axis=1)]),
        "latency_ms": pa.array(rng.gamma(4.0, 2.5, size=n)),
    })
