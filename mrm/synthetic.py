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
REQUEST_INTERVAL = dt.timedelta(seconds=30)  # between two requests of stream()


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
        ts = START + REQUEST_INTERVAL * i
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


# ------------------------------------------------------------------ columnar request flows

_SORTED_PRODUCTS = tuple(sorted(PRODUCTS))  # map keys are stored sorted
_TOP_FEATURE = pa.struct([("feature", pa.string()), ("value", pa.float64()), ("contribution", pa.float64())])


def _request_ids(rng: np.random.Generator, n: int) -> list[str]:
    hi, lo = rng.integers(0, 1 << 62, size=n), rng.integers(0, 1 << 62, size=n)
    return [f"req-{a:016x}{b:016x}" for a, b in zip(hi.tolist(), lo.tolist())]


def _hex_digests(rng: np.random.Generator, n: int) -> list[str]:
    text = rng.bytes(32 * n).hex()
    return [text[i : i + 64] for i in range(0, 64 * n, 64)]


def request_batches(
    n_requests: int, seed: int = 7, chunk: int = 62_500, subjects: int = 2_000_000, promote_every: int = 1_000_000
) -> Iterator[tuple[str, pa.Table | list[dict]]]:
    """The same four-table request flow as :func:`request_flow`, as Arrow batches of `chunk`
    requests (for building ledgers of millions of requests quickly). Request ids are random
    (no order for Parquet statistics to exploit); one request per second of ledger time.
    Every `promote_every` requests the slot gets a new champion; early on, a challenger is
    rejected and a manual force-promote happens, so the forensic views have something to show.
    Yields (table, batch): Arrow tables for the request tables, lists of rows otherwise."""
    rng = np.random.default_rng(seed)
    start_us = int(START.timestamp() * 1_000_000)
    version, generation = "reco-2025.08.1", 1
    yield "model_promotion", [dict(
        ts=START, slot="product_reco", challenger_version=version, decision="bootstrap", trigger="auto",
        reason="no champion in slot product_reco", thresholds={"min_relative_improvement": 0.005},
    )]
    done, next_promotion = 0, promote_every
    while done < n_requests:
        n = min(chunk, n_requests - done)
        first_ts = START + dt.timedelta(seconds=done)
        if done == chunk or done >= next_promotion:
            if done >= next_promotion:
                next_promotion += promote_every
            generation += 1
            new = f"reco-2025.{8 + generation}.1"
            if done == chunk:  # one rejection and one manual override, early
                yield "model_promotion", [dict(
                    ts=first_ts, slot="product_reco", champion_version=version, challenger_version=f"{new}-rc1", decision="reject",
                    trigger="auto", reason="rejected by the fidelity floor, before competition: 1 failing check: fidelity:suitability",
                    comparison=[{"metric": "auc", "champion": 0.781, "challenger": 0.779, "delta_rel": -0.0026, "threshold": 0.005, "passed": False}],
                    details={"stage": "fidelity", "checks": [{"name": "fidelity:suitability", "passed": False, "detail": "js 0.09 > max 0.05"}]},
                ), dict(
                    ts=first_ts, slot="product_reco", champion_version=version, challenger_version=new, decision="force_promote",
                    trigger="manual", operator="mrm-officer-7", reason="regulator-mandated fix of the suitability mapping (ticket MRM-118)",
                )]
            else:
                yield "model_promotion", [dict(
                    ts=first_ts, slot="product_reco", champion_version=version, challenger_version=new, decision="promote", trigger="auto",
                    reason="primary metric auc improved 1.2% (DeLong p=0.003)",
                    comparison=[{"metric": "auc", "champion": 0.781, "challenger": 0.790, "delta_rel": 0.0115, "threshold": 0.005, "passed": True}],
                )]
            version = new
        idx = np.arange(done, done + n, dtype=np.int64)
        ts = start_us + idx * 1_000_000
        request_id = pa.array(_request_ids(rng, n))
        subject_id = pa.array([f"cust-{x:07d}" for x in rng.integers(0, subjects, size=n).tolist()])
        scores = rng.dirichlet(np.ones(len(PRODUCTS)), size=n)
        proposed_idx = np.argmax(scores, axis=1)
        products = np.array(_SORTED_PRODUCTS, dtype=object)
        proposed = products[proposed_idx]
        risk = rng.normal(size=n)
        blocked = (proposed == "els_note") & (risk < 0)
        final = np.where(blocked, "balanced_fund", proposed)
        features = np.array(FEATURES, dtype=object)
        top = np.stack([rng.choice(len(FEATURES), size=3, replace=False) for _ in range(16)])[rng.integers(0, 16, size=n)]
        values = rng.normal(size=(n, 3))
        contributions = np.sort(np.abs(values * rng.normal(0.5, 0.2, size=(n, 3))), axis=1)[:, ::-1] * np.sign(values)

        def stamp(offset_us: int) -> pa.Array:
            return pa.array(ts + offset_us, pa.timestamp("us", tz="UTC"))

        def const(value: str) -> pa.Array:
            return pa.array(np.full(n, value, dtype=object), pa.string())

        yield "data_access", pa.table({
            "ts": stamp(0), "actor": const("reco-api"),
            "operator": pa.array([f"teller-{x:03d}" for x in rng.integers(0, 400, size=n).tolist()]),
            "subject_id": subject_id, "dataset": const("crm.customer_profile"),
            "columns": pa.array([["age_band", "income_tier", "assets", "experience_years", "risk_tolerance"]] * n, pa.list_(pa.string())),
            "purpose": const("suitability_assessment"), "access_type": const("read"),
            "row_count": pa.array(np.ones(n, dtype=np.int64)), "request_id": request_id,
        })
        offsets = pa.array(np.arange(0, len(PRODUCTS) * n + 1, len(PRODUCTS), dtype=np.int32))
        yield "model_inference", pa.table({
            "ts": stamp(40), "actor": const("reco-api"), "request_id": request_id, "subject_id": subject_id,
            "model_slot": const("product_reco"), "model_version": const(version),
            "input_digest": pa.array(_hex_digests(rng, n)),
            "scores": pa.MapArray.from_arrays(offsets, pa.array(np.tile(products, n), pa.string()), pa.array(scores.ravel())),
            "decision": pa.array(proposed, pa.string()), "latency_ms": pa.array(rng.gamma(4.0, 2.5, size=n)),
            "route": const("champion"),
        })
        top_offsets = pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32))
        top_struct = pa.StructArray.from_arrays(
            [pa.array(features[top].ravel(), pa.string()), pa.array(values.ravel()), pa.array(contributions.ravel())],
            fields=list(_TOP_FEATURE),
        )
        yield "attribution", pa.table({
            "ts": stamp(80), "actor": const("reco-api"), "request_id": request_id, "model_version": const(version),
            "method": const("linear_coef_x_value"), "top_features": pa.ListArray.from_arrays(top_offsets, top_struct),
        })
        crit_offsets = pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32))
        crit_values = np.column_stack([np.ones(n), np.maximum(0.0, -risk)]).ravel()
        yield "guardrail", pa.table({
            "ts": stamp(120), "actor": const("reco-api"), "request_id": request_id, "gate": const("kfcpa_art17_suitability"),
            "verdict": pa.array(np.where(blocked, "modify", "pass"), pa.string()),
            "criteria": pa.MapArray.from_arrays(crit_offsets, pa.array(np.tile(np.array(["profile_confirmed", "risk_grade_gap"], dtype=object), n), pa.string()), pa.array(crit_values)),
            "reason": pa.array(np.where(blocked, "product risk grade above the customer's risk profile", None), pa.string()),
            "original_output": pa.array(proposed, pa.string()), "final_output": pa.array(final, pa.string()),
        })
        done += n
