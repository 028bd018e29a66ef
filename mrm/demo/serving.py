"""The serving loop's evidence: what one batch of recommendation requests writes to the ledger.

Each request writes four entries, in this order (REFERENCE.md section 1):

1. ``data_access``: who read the customer's suitability profile and why. A branch teller, a
   contact-centre advisor, or the mobile / internet banking channel, asking on the customer's
   behalf; the columns read are the model's inputs plus what the suitability rule needs.
2. ``model_inference``: the model version, the SHA-256 input digest, the acceptance
   probability of every product and the recommended one.
3. ``attribution``: the top-5 feature contributions to the recommended product's logit.
4. ``guardrail``: the KFCPA Art. 17 suitability verdict (pass, modify or block) with every
   criterion, the reason, the model's proposal and what was actually served.

Ordering with batch appends. A batch of requests is written as four Arrow batches, one per
table, appended in the order above (:func:`append_requests`). Each batch takes a contiguous
range of sequence numbers, so for every request ``seq(data_access) < seq(model_inference) <
seq(attribution) < seq(guardrail)``: the per-request order holds, while the tables' entries
are grouped per batch rather than interleaved request by request. Appending Arrow batches is
what lets the demo write millions of requests; a per-request ``log_*`` loop would be the same
evidence, interleaved, and two orders of magnitude slower.

Time stamps: the data access happens at the request's time; inference, attribution and the
guardrail follow it by the profile read (3 ms), the model's latency and a millisecond each.

Everything here is pure (the ledger is only touched in :func:`append_requests`) and
deterministic: serving randomness (channel, teller, latency) is drawn once per day from a keyed
generator, so splitting a day at an event (a promotion at 14:20) serves exactly the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa

from ledger import Ledger
from ledger.schema import table_spec

from .models import RecommenderModel, ScoredBatch
from .suitability import CRITERIA, GATE, SuitabilityBatch, check_suitability_batch
from .world import PRODUCT_IDS, PROFILE_DATASET, REGIONS, RequestBatch, keyed_rng

SERVING_ACTOR = "reco-api"
# gates.online routes: the production version serves on "champion"; during an online trial a
# canary share is served by the challenger on "challenger", and in shadow the challenger
# scores every request on "shadow" without serving it.
ROUTE, CHALLENGER_ROUTE, SHADOW_ROUTE = "champion", "challenger", "shadow"

# What the suitability rule reads from the profile, whichever model serves.
SUITABILITY_COLUMNS = ("age", "assets_krw", "debt_ratio", "invest_experience_years", "knowledge_level",
                       "profile_confirmed", "risk_tolerance")

CHANNELS = ("branch", "contact_centre", "mobile_app", "internet_banking")
BRANCH, CONTACT_CENTRE, MOBILE_APP, INTERNET_BANKING = range(len(CHANNELS))
PURPOSE = {
    BRANCH: "investment product recommendation requested at the branch counter; KFCPA Art. 17 suitability assessment",
    CONTACT_CENTRE: "investment product recommendation requested by phone; KFCPA Art. 17 suitability assessment",
    MOBILE_APP: "investment product recommendation requested in the mobile app; KFCPA Art. 17 suitability assessment",
    INTERNET_BANKING: "investment product recommendation requested in internet banking; KFCPA Art. 17 suitability assessment",
}
# Branch codes by region (a customer's home branch is one of BRANCHES_PER_REGION there).
REGION_CODES = ("SEL", "GGI", "GWN", "CCG", "HNM", "DGB", "BUG", "JJU")
BRANCHES_PER_REGION = 24
TELLERS_PER_BRANCH = 6
CONTACT_CENTRE_ADVISORS = 40

PROFILE_READ_US = 3_000
STEP_US = 1_000
TOP_K = 5

_SCORE_KEYS = tuple(sorted(PRODUCT_IDS))  # map keys are stored in ascending order
_SCORE_ORDER = np.array([PRODUCT_IDS.index(p) for p in _SCORE_KEYS])
_CRITERIA_KEYS = tuple(sorted(CRITERIA))
_CRITERIA_ORDER = np.array([CRITERIA.index(c) for c in _CRITERIA_KEYS])
_VERDICTS = np.array(["pass", "modify", "block"], dtype=object)
assert len(REGION_CODES) == len(REGIONS)


@dataclass(frozen=True, eq=False)
class ServingDraws:
    """The serving randomness of one day's requests (same order as its RequestBatch)."""

    channel: np.ndarray  # index into CHANNELS
    staff: np.ndarray  # teller number in the branch, or contact-centre advisor number
    latency_ms: np.ndarray
    shadow_latency_ms: np.ndarray  # a shadow challenger's latency on the same request

    def take(self, idx) -> "ServingDraws":
        return ServingDraws(self.channel[idx], self.staff[idx], self.latency_ms[idx], self.shadow_latency_ms[idx])

    def slowed(self, factor: float) -> "ServingDraws":
        """The same requests with the served model's latency multiplied by ``factor``."""
        return self if factor == 1.0 else ServingDraws(self.channel, self.staff, np.round(self.latency_ms * factor, 3),
                                                       self.shadow_latency_ms)


def serving_draws(seed: int, day: int, requests: RequestBatch) -> ServingDraws:
    """Channel, staff member and model latency for each of a whole day's requests. Seniors
    mostly come to the branch; younger customers mostly use the app."""
    rng = keyed_rng(seed, "serving", day)
    n = len(requests)
    age = requests.customers.age
    p_branch = np.select([age >= 70, age >= 60, age >= 40], [0.8, 0.55, 0.3], 0.15)
    u = rng.random(n)
    remote = (u - p_branch - 0.05) / np.maximum(1.0 - p_branch - 0.05, 1e-9)  # uniform on what is left
    channel = np.where(u < p_branch, BRANCH, np.where(u < p_branch + 0.05, CONTACT_CENTRE,
                                                      np.where(remote < 0.7, MOBILE_APP, INTERNET_BANKING)))
    staff = np.where(channel == CONTACT_CENTRE, rng.integers(1, CONTACT_CENTRE_ADVISORS + 1, n),
                     rng.integers(1, TELLERS_PER_BRANCH + 1, n))
    latency = np.round(1.0 + np.exp(np.log(7.0) + 0.35 * rng.standard_normal(n)), 3)
    # its own generator: the served draws are the same whether or not a shadow runs
    shadow = np.round(1.0 + np.exp(np.log(7.0) + 0.35 * keyed_rng(seed, "serving/shadow", day).standard_normal(n)), 3)
    return ServingDraws(channel.astype(np.int8), staff.astype(np.int16), latency, shadow)


@dataclass(frozen=True, eq=False)
class ServedBatch:
    """Requests served by one model version: its scores and attributions, and the verdicts."""

    requests: RequestBatch
    draws: ServingDraws
    model: RecommenderModel
    scored: ScoredBatch
    guard: SuitabilityBatch

    def __len__(self) -> int:
        return len(self.requests)

    @property
    def served_product(self) -> np.ndarray:
        """Product index served to each customer; -1 where the guardrail blocked."""
        return self.guard.final


def serve(model: RecommenderModel, requests: RequestBatch, draws: ServingDraws) -> ServedBatch:
    """Score the batch in one call, then put every proposal through the suitability rule."""
    scored = model.score(requests.customers, top_k=TOP_K)
    guard = check_suitability_batch(requests.customers, scored.top, scored.proba)
    return ServedBatch(requests, draws, model, scored, guard)


# --- the four tables ----------------------------------------------------------------------------


def _operators(served: ServedBatch) -> list[str]:
    region = served.requests.customers.region.astype(np.int64)
    branch = (served.requests.customers.subject_key % np.uint64(BRANCHES_PER_REGION)).astype(np.int64) + 1
    out = []
    for ch, staff, r, b in zip(served.draws.channel.tolist(), served.draws.staff.tolist(), region.tolist(),
                               branch.tolist()):
        if ch == BRANCH:
            out.append(f"teller:{REGION_CODES[r]}-{b:03d}-{staff:02d}")
        elif ch == CONTACT_CENTRE:
            out.append(f"advisor:CC-{staff:02d}")
        else:
            out.append(f"channel:{CHANNELS[ch].replace('_', '-')}")
    return out


def _timestamps(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype(np.int64), pa.timestamp("us", tz="UTC"))


def _float_map(keys: Sequence[str], values: np.ndarray) -> pa.MapArray:
    """One map per row with the same ascending keys; ``values`` is rows x keys."""
    n, k = values.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.MapArray.from_arrays(offsets, pa.array(np.tile(np.array(keys, dtype=object), n), pa.string()),
                                   pa.array(values.reshape(-1), pa.float64()))


def _table(name: str, columns: dict[str, pa.Array]) -> pa.Table:
    spec = table_spec(name)
    fields = [spec.arrow_schema.field(c) for c in columns]
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))


def request_tables(served: ServedBatch, slot: str, route: str = ROUTE) -> list[tuple[str, pa.Table]]:
    """The batch's entries as (table, Arrow batch) pairs, in the order they must be appended;
    ``route`` is the model_inference route of the version that served them."""
    rb, scored, guard, model = served.requests, served.scored, served.guard, served.model
    n = len(rb)
    request_ids = pa.array(rb.request_ids(), pa.string())
    subject_ids = pa.array(rb.subject_ids(), pa.string())
    actor = pa.array([SERVING_ACTOR] * n, pa.string())
    t_access = rb.ts_us.astype(np.int64)
    t_inference = t_access + PROFILE_READ_US + np.round(served.draws.latency_ms * 1000).astype(np.int64)

    columns_read = sorted(set(model.schema.source_columns) | set(SUITABILITY_COLUMNS))
    data_access = _table("data_access", {
        "ts": _timestamps(t_access),
        "actor": actor,
        "operator": pa.array(_operators(served), pa.string()),
        "subject_id": subject_ids,
        "dataset": pa.array([PROFILE_DATASET] * n, pa.string()),
        "columns": pa.array([columns_read] * n, pa.list_(pa.string())),
        "purpose": pa.array([PURPOSE[c] for c in served.draws.channel.tolist()], pa.string()),
        "access_type": pa.array(["read"] * n, pa.string()),
        "row_count": pa.array(np.ones(n, dtype=np.int64)),
        "request_id": request_ids,
    })

    inference = _table("model_inference", {
        "ts": _timestamps(t_inference),
        "actor": actor,
        "request_id": request_ids,
        "subject_id": subject_ids,
        "model_slot": pa.array([slot] * n, pa.string()),
        "model_version": pa.array([model.version] * n, pa.string()),
        "input_digest": pa.array(scored.input_digests(), pa.string()),
        "scores": _float_map(_SCORE_KEYS, scored.proba[:, _SCORE_ORDER]),
        "decision": pa.array(np.array(PRODUCT_IDS, dtype=object)[scored.top], pa.string()),
        "latency_ms": pa.array(served.draws.latency_ms, pa.float64()),
        "route": pa.array([route] * n, pa.string()),
    })

    names = np.array(model.feature_names, dtype=object)
    k = scored.attr_index.shape[1]
    features = pa.StructArray.from_arrays(
        [pa.array(names[scored.attr_index].reshape(-1), pa.string()),
         pa.array(scored.attr_value.reshape(-1), pa.float64()),
         pa.array(scored.attr_contribution.reshape(-1), pa.float64())],
        names=["feature", "value", "contribution"],
    )
    attribution = _table("attribution", {
        "ts": _timestamps(t_inference + STEP_US),
        "actor": actor,
        "request_id": request_ids,
        "model_version": pa.array([model.version] * n, pa.string()),
        "method": pa.array([scored.method] * n, pa.string()),
        "top_features": pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), features),
    })

    verdict = guard.verdict
    reasons: list[str | None] = [None] * n
    for i in np.flatnonzero(verdict != 0).tolist():  # the rule's own wording, for the few it stops
        reasons[i] = guard.result(i).reason
    final = guard.final
    product_names = np.array(PRODUCT_IDS, dtype=object)
    guardrail = _table("guardrail", {
        "ts": _timestamps(t_inference + 2 * STEP_US),
        "actor": actor,
        "request_id": request_ids,
        "gate": pa.array([GATE] * n, pa.string()),
        "verdict": pa.array(_VERDICTS[verdict], pa.string()),
        "criteria": _float_map(_CRITERIA_KEYS, guard.criteria_matrix[:, _CRITERIA_ORDER]),
        "reason": pa.array(reasons, pa.string()),
        "original_output": pa.array(product_names[scored.top], pa.string()),
        "final_output": pa.array(np.where(final >= 0, product_names[np.maximum(final, 0)], None), pa.string()),
    })
    return [("data_access", data_access), ("model_inference", inference), ("attribution", attribution),
            ("guardrail", guardrail)]


def append_requests(ledger: Ledger, served: ServedBatch, slot: str, route: str = ROUTE) -> dict[str, range]:
    """Append the batch's four tables in request order; returns each table's seq range."""
    return {table: ledger.append(table, batch) for table, batch in request_tables(served, slot, route)}


def shadow_inferences(model: RecommenderModel, requests: RequestBatch, draws: ServingDraws, slot: str) -> pa.Table:
    """The model_inference entries of a challenger scoring ``requests`` in shadow: its scores
    and proposal on route "shadow", never served (no attribution, no guardrail verdict)."""
    scored = model.score(requests.customers, top_k=TOP_K)
    n = len(requests)
    t = requests.ts_us.astype(np.int64) + PROFILE_READ_US + np.round(draws.shadow_latency_ms * 1000).astype(np.int64)
    return _table("model_inference", {
        "ts": _timestamps(t),
        "actor": pa.array([SERVING_ACTOR] * n, pa.string()),
        "request_id": pa.array(requests.request_ids(), pa.string()),
        "subject_id": pa.array(requests.subject_ids(), pa.string()),
        "model_slot": pa.array([slot] * n, pa.string()),
        "model_version": pa.array([model.version] * n, pa.string()),
        "input_digest": pa.array(scored.input_digests(), pa.string()),
        "scores": _float_map(_SCORE_KEYS, scored.proba[:, _SCORE_ORDER]),
        "decision": pa.array(np.array(PRODUCT_IDS, dtype=object)[scored.top], pa.string()),
        "latency_ms": pa.array(draws.shadow_latency_ms, pa.float64()),
        "route": pa.array([SHADOW_ROUTE] * n, pa.string()),
    })
