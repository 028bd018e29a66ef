"""Real recommender models for the demo world: training, batch scoring, attributions, holdout
evaluation, and the deterministic plan that produces each story event.

Model: ``Pipeline([ColumnTransformer(StandardScaler on numeric features, one-hot indicators
passed through as 0/1), LogisticRegression])`` (multinomial, newton-cg, L2 with C = 0.03) over
the products; the recommendation is the product with the highest predicted acceptance
probability. Each product is also a one-vs-rest *task* (``task_<product>``) for per-task AUC
and fidelity.

Attribution method ``linear_coef_x_transformed_value``: for the recommended product ``k``
and feature ``j``, ``contribution_j = coef[k, j] * t_j`` where ``t_j`` is the value the
coefficient multiplies (``(x_j - mean_j) / scale_j`` for numeric features, the raw 0/1 for
one-hot indicators); the contributions plus ``intercept[k]`` sum exactly to
``decision_function(x)[k]`` (the class logit). The value
reported beside each contribution is the raw, unscaled feature value. Top-k by absolute
contribution, ties broken by feature order.

Fidelity: the reference teacher is the world's own choice distribution on the holdout (the
best possible teacher: in production it would be the large model the student was distilled
from). Per task ``k``: mean over holdout customers of the Bernoulli KL divergence
``KL(teacher_k || model_k)`` in nats. The documented floor is ``FIDELITY_FLOOR`` per task.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np
from scipy.special import ndtr
from scipy.stats import rankdata
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .world import (
    AGE_BANDS,
    N_PRODUCTS,
    PRODUCT_IDS,
    REGIONS,
    TASKS,
    YEAR_DAYS,
    Customers,
    CustomerProfile,
    OUTCOMES_DATASET,
    FeatureSchema,
    Holdout,
    LabelledBatch,
    World,
    WorldConfig,
    favourable,
    get_schema,
    input_digest,
    input_digests,
    keyed_rng,
    schema_change,
)

ATTRIBUTION_METHOD = "linear_coef_x_transformed_value"
FIDELITY_FLOOR = 0.035  # max mean Bernoulli KL(teacher || model) per task, nats
PRIMARY_METRIC = "avg_auc"  # macro mean of the per-task one-vs-rest AUCs
DEFAULT_TOP_K = 5
_EPS = 1e-12


@dataclass(frozen=True)
class LabelDefect:
    """A data defect in the training labels. ``misjoin``: a fraction of the outcome rows were
    joined to the wrong customer (labels rotated among those rows), as a broken join key in
    the outcomes ETL would do."""

    kind: str = "misjoin"
    fraction: float = 0.3


@dataclass(frozen=True)
class TrainSpec:
    version: str
    as_of_day: int
    schema: str = "fs-v2"
    window_days: int = 7
    lag_days: int = 14  # wait this long so late outcomes (<= 14 days) have all arrived
    C: float = 0.03
    # None, "balanced", or ((product_id, weight), ...): re-weighting products moves the
    # predicted distribution away from the teacher (the fidelity-failing knob)
    class_weight: str | tuple[tuple[str, float], ...] | None = None
    label_defect: LabelDefect | None = None
    max_rows: int | None = None
    note: str = ""


class RecommenderModel:
    """A trained recommender. ``pipeline`` is the real scikit-learn object."""

    def __init__(self, spec: TrainSpec, schema: FeatureSchema, pipeline: Pipeline, n_train: int,
                 label_counts: np.ndarray):
        self.spec = spec
        self.version = spec.version
        self.schema = schema
        self.pipeline = pipeline
        self.n_train = n_train
        self.label_counts = label_counts
        prep: ColumnTransformer = pipeline.named_steps["prep"]
        clf: LogisticRegression = pipeline.named_steps["clf"]
        if list(clf.classes_) != list(range(N_PRODUCTS)):
            raise ValueError("every product must appear in the training labels")
        num, ind = list(schema.numeric_index), list(schema.indicator_index)
        scaler: StandardScaler = prep.named_transformers_["num"]
        d = schema.dimension
        # everything below is in schema (feature-name) order
        self.mean_ = np.zeros(d)
        self.scale_ = np.ones(d)
        self.mean_[num] = scaler.mean_
        self.scale_[num] = scaler.scale_
        order = np.concatenate([num, ind]).astype(np.int64)  # transformed column i = feature order[i]
        self.coef_ = np.empty_like(clf.coef_)  # K x d
        self.coef_[:, order] = clf.coef_
        self.intercept_ = clf.intercept_.copy()  # K

    # ---- scoring ------------------------------------------------------------------------
    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.schema.names

    def features(self, customers: Customers) -> np.ndarray:
        return self.schema.featurize(customers)

    def predict_proba(self, x: Customers | np.ndarray) -> np.ndarray:
        X = self.features(x) if isinstance(x, Customers) else x
        return self.pipeline.predict_proba(X)

    def decision_function(self, x: Customers | np.ndarray) -> np.ndarray:
        X = self.features(x) if isinstance(x, Customers) else x
        return self.pipeline.decision_function(X)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The model-input values the coefficients multiply, in schema order: numeric
        features standardised, 0/1 indicators as they are."""
        return (X - self.mean_) / self.scale_

    def contributions(self, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """n x d per-feature contributions to the logit of ``classes[i]`` for row ``i``."""
        return self.coef_[np.asarray(classes)] * self.transform(X)

    def score(self, customers: Customers, top_k: int = DEFAULT_TOP_K) -> "ScoredBatch":
        """Score a batch in one sklearn call: probabilities, the recommended product, and
        the top-k attributions for it."""
        X = self.features(customers)
        proba = self.pipeline.predict_proba(X)
        top = np.argmax(proba, axis=1)
        contrib = self.contributions(X, top)
        k = min(top_k, X.shape[1])
        # stable ordering: by |contribution| desc, then feature index asc
        order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        rows = np.arange(len(X))[:, None]
        return ScoredBatch(
            model_version=self.version,
            feature_names=self.schema.names,
            X=X,
            proba=proba,
            top=top,
            attr_index=order,
            attr_value=X[rows, order],
            attr_contribution=contrib[rows, order],
            intercept=self.intercept_[top],
        )

    def recommend(self, customer: CustomerProfile | Customers, top_k: int = DEFAULT_TOP_K) -> "Recommendation":
        """One customer -> scores per product, the top product, its input digest and
        attributions. (Serving paths should use ``score`` per day/week batch.)"""
        batch = Customers.from_profiles([customer]) if isinstance(customer, CustomerProfile) else customer
        if len(batch) != 1:
            raise ValueError("recommend takes one customer; use score() for batches")
        s = self.score(batch, top_k)
        return s.recommendation(0)

    # ---- facts for the registry / ledger ------------------------------------------------
    def card(self) -> dict:
        """Facts about this version for a registry entry or a training data_access entry."""
        sp = self.spec
        lo = sp.as_of_day - sp.lag_days - sp.window_days
        return {
            "model_version": self.version,
            "algorithm": "sklearn Pipeline(ColumnTransformer(StandardScaler | one-hot passthrough), LogisticRegression multinomial newton-cg)",
            "feature_schema": self.schema.version,
            "feature_schema_digest": self.schema.digest,
            "n_features": self.schema.dimension,
            "trained_as_of_day": sp.as_of_day,
            "training_window_days": sp.window_days,
            "label_lag_days": sp.lag_days,
            "training_dataset": OUTCOMES_DATASET,
            "training_columns": list(self.schema.source_columns) + ["accepted_product", "outcome_day"],
            "training_event_days": [lo, sp.as_of_day - sp.lag_days],  # half-open
            "n_train": self.n_train,
            "label_counts": dict(zip(PRODUCT_IDS, self.label_counts.tolist())),
            "C": sp.C,
            "class_weight": sp.class_weight,
            "label_defect": None if sp.label_defect is None else sp.label_defect.kind,
            "note": sp.note,
        }


@dataclass(frozen=True, eq=False)
class Recommendation:
    model_version: str
    scores: dict[str, float]  # product id -> acceptance probability
    product: str  # recommended (top) product id
    input_digest: str
    feature_names: tuple[str, ...]
    feature_values: tuple[float, ...]
    top_features: list[tuple[str, float, float]]  # (feature, raw value, contribution)
    intercept: float
    method: str = ATTRIBUTION_METHOD


@dataclass(frozen=True, eq=False)
class ScoredBatch:
    model_version: str
    feature_names: tuple[str, ...]
    X: np.ndarray  # raw model inputs, float64
    proba: np.ndarray  # n x K
    top: np.ndarray  # recommended product index
    attr_index: np.ndarray  # n x k feature indices
    attr_value: np.ndarray  # n x k raw feature values
    attr_contribution: np.ndarray  # n x k contributions to the recommended product's logit
    intercept: np.ndarray  # n, intercept of the recommended product's logit
    method: str = ATTRIBUTION_METHOD

    def __len__(self) -> int:
        return len(self.top)

    def decisions(self) -> list[str]:
        return [PRODUCT_IDS[k] for k in self.top.tolist()]

    def scores_map(self, i: int) -> dict[str, float]:
        return dict(zip(PRODUCT_IDS, self.proba[i].tolist()))

    def top_features(self, i: int) -> list[tuple[str, float, float]]:
        names = self.feature_names
        return [(names[j], v, c) for j, v, c in zip(
            self.attr_index[i].tolist(), self.attr_value[i].tolist(), self.attr_contribution[i].tolist())]

    def input_digests(self) -> list[str]:
        return input_digests(self.X, self.feature_names)

    def recommendation(self, i: int) -> Recommendation:
        return Recommendation(
            model_version=self.model_version,
            scores=self.scores_map(i),
            product=PRODUCT_IDS[int(self.top[i])],
            input_digest=input_digest(self.X[i], self.feature_names),
            feature_names=self.feature_names,
            feature_values=tuple(self.X[i].tolist()),
            top_features=self.top_features(i),
            intercept=float(self.intercept[i]),
        )


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def apply_label_defect(batch: LabelledBatch, defect: LabelDefect, seed: int, key: int) -> LabelledBatch:
    if defect.kind != "misjoin":
        raise ValueError(f"unknown label defect {defect.kind!r}")
    rng = keyed_rng(seed, "label-defect", key)
    n = len(batch)
    hit = np.flatnonzero(rng.random(n) < defect.fraction)
    label = batch.label.copy()
    label[hit] = np.roll(label[hit], 1 + int(rng.integers(0, max(len(hit) - 1, 1))))
    return replace(batch, label=label)


def training_data(world: World, spec: TrainSpec) -> LabelledBatch:
    data = world.training_set(spec.as_of_day, spec.window_days, spec.lag_days)
    if spec.label_defect is not None:
        data = apply_label_defect(data, spec.label_defect, world.seed, spec.as_of_day)
    if spec.max_rows is not None and len(data) > spec.max_rows:
        data = data.take(slice(0, spec.max_rows))
    return data


def _class_weight(cw):
    if cw is None or isinstance(cw, str):
        return cw
    w = {k: 1.0 for k in range(N_PRODUCTS)}
    for pid, weight in cw:
        w[PRODUCT_IDS.index(pid)] = float(weight)
    return w


def train_model(world: World, spec: TrainSpec) -> RecommenderModel:
    """Train one model. Deterministic: same world seed and spec give the same coefficients."""
    schema = get_schema(spec.schema)
    data = training_data(world, spec)
    X = schema.featurize(data.customers)
    y = data.label.astype(np.int64)
    pipe = Pipeline([
        ("prep", ColumnTransformer(
            [("num", StandardScaler(), list(schema.numeric_index)),
             ("ind", "passthrough", list(schema.indicator_index))],
            sparse_threshold=0.0,
        )),
        ("clf", LogisticRegression(C=spec.C, class_weight=_class_weight(spec.class_weight), solver="newton-cg", max_iter=100, tol=1e-6)),
    ])
    with threadpool_limits(1):  # faster on small problems, and bit-reproducible
        pipe.fit(X, y)
    return RecommenderModel(spec, schema, pipe, len(y), np.bincount(y, minlength=N_PRODUCTS))


# --------------------------------------------------------------------------------------------
# Evaluation on the frozen holdout
# --------------------------------------------------------------------------------------------


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted one half; equal to
    ``sklearn.metrics.roc_auc_score`` but without its per-call overhead."""
    positive = np.asarray(positive, dtype=bool)
    m = int(positive.sum())
    n = positive.size - m
    if m == 0 or n == 0:
        return float("nan")
    r = rankdata(scores)
    return float((r[positive].sum() - m * (m + 1) / 2.0) / (m * n))


def bernoulli_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Elementwise KL(Bernoulli(p) || Bernoulli(q)) in nats. Never below 0: where p and q
    (almost) agree, rounding can leave -1e-17, which an evaluation file must not carry (a
    KL divergence below 0 is refused as input)."""
    p = np.clip(p, _EPS, 1 - _EPS)
    q = np.clip(q, _EPS, 1 - _EPS)
    return np.maximum(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)), 0.0)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """A model on a frozen holdout. Rows are in holdout order, identical across models, so
    two Evaluations of one holdout can be paired (DeLong on a task's AUC, McNemar on
    ``correct``)."""

    model_version: str
    holdout_epoch: int
    labels: np.ndarray  # n, accepted product index
    proba: np.ndarray  # n x K
    pred: np.ndarray  # n, argmax product index
    correct: np.ndarray  # n, bool: pred == label (McNemar input)
    task_auc: dict[str, float]
    avg_auc: float
    accuracy: float
    log_loss: float
    fidelity_kl: dict[str, float]  # per task, mean Bernoulli KL(teacher || model), nats
    categorical_kl: float  # mean KL(teacher || model) over the full product distribution

    def task_data(self, task: str) -> tuple[np.ndarray, np.ndarray]:
        """(scores, binary labels) of one one-vs-rest task, for DeLong."""
        k = TASKS.index(task)
        return self.proba[:, k], (self.labels == k)

    @property
    def metrics(self) -> dict[str, float]:
        """Primary metric first, then the secondaries."""
        return {"avg_auc": self.avg_auc, **self.task_auc, "accuracy": self.accuracy}

    def fidelity_failures(self, floor: float | Mapping[str, float] = FIDELITY_FLOOR) -> list[str]:
        lim = (lambda t: floor[t]) if isinstance(floor, Mapping) else (lambda t: floor)
        return [t for t in TASKS if self.fidelity_kl[t] > lim(t)]


def evaluate(model: RecommenderModel, holdout: Holdout) -> Evaluation:
    proba = model.predict_proba(holdout.customers)
    y = holdout.labels.astype(np.int64)
    pred = np.argmax(proba, axis=1)
    task_auc = {t: auc(proba[:, k], y == k) for k, t in enumerate(TASKS)}
    teacher = holdout.teacher_proba
    fid = {t: float(bernoulli_kl(teacher[:, k], proba[:, k]).mean()) for k, t in enumerate(TASKS)}
    pc = np.clip(proba, _EPS, 1)
    cat_kl = float(np.sum(teacher * (np.log(np.clip(teacher, _EPS, 1)) - np.log(pc)), axis=1).mean())
    return Evaluation(
        model_version=model.version,
        holdout_epoch=holdout.epoch,
        labels=y,
        proba=proba,
        pred=pred,
        correct=pred == y,
        task_auc=task_auc,
        avg_auc=float(np.mean(list(task_auc.values()))),
        accuracy=float(np.mean(pred == y)),
        log_loss=float(-np.mean(np.log(pc[np.arange(len(y)), y]))),
        fidelity_kl=fid,
        categorical_kl=cat_kl,
    )


# --------------------------------------------------------------------------------------------
# Fairness: reference computations (the monitor may use its own)
# --------------------------------------------------------------------------------------------

DI_THRESHOLD = 0.8  # the four-fifths rule
DI_ALPHA = 1e-6  # one-sided significance a breach must also reach (48 cells x every day)
DI_MIN_COUNT = 10


def fairness_eligible(customers: Customers) -> np.ndarray:
    """Customers to whom the suitability rule allows at least one investment product
    (profile confirmed and allowed risk grade <= 5). Only they can receive a favourable
    outcome, so only they enter the ratio."""
    from .suitability import check_suitability_batch

    b = check_suitability_batch(customers, np.zeros(len(customers), dtype=np.int64))
    return b.allowed_grade <= 5


@dataclass(frozen=True)
class SegmentDI:
    age_band: str
    region: str
    n: int  # eligible requests in the cell
    rate: float  # favourable rate in the cell
    n_ref: int  # eligible requests in the same age band, other regions
    rate_ref: float
    di: float  # rate / rate_ref
    p_value: float  # one-sided two-proportion z-test that the cell's rate is lower

    @property
    def breach(self) -> bool:
        return self.di < DI_THRESHOLD and self.p_value < DI_ALPHA


def disparate_impact(customers: Customers, final_product: np.ndarray, *, min_count: int = DI_MIN_COUNT,
                     eligible_only: bool = True) -> list[SegmentDI]:
    """Disparate impact per (age band, region) cell with at least ``min_count`` eligible
    requests: the cell's favourable rate (``world.favourable``: an investment product was
    served) over the rate of the same age band in all other regions. Comparing within an age
    band and among ``fairness_eligible`` customers keeps the legitimate suitability limits
    (age caps, unconfirmed profiles, stable-type investors) out of the ratio. With ~20
    requests a cell a week, a ratio alone is noise: ``SegmentDI.breach`` also asks for a
    one-sided two-proportion z-test below ``DI_ALPHA``. Feed it the decisions one model
    served over a trailing window (the tests use 7 days)."""
    fav = favourable(final_product).astype(np.float64)
    ok = fairness_eligible(customers) if eligible_only else np.ones(len(customers), dtype=bool)
    nb, nr = len(AGE_BANDS), len(REGIONS)
    cell = customers.age_band.astype(np.int64) * nr + customers.region.astype(np.int64)
    cnt = np.bincount(cell[ok], minlength=nb * nr).reshape(nb, nr)
    hit = np.bincount(cell[ok], weights=fav[ok], minlength=nb * nr).reshape(nb, nr)
    out = []
    for b in range(nb):
        for r in range(nr):
            n1, x1 = int(cnt[b, r]), float(hit[b, r])
            n2, x2 = int(cnt[b].sum()) - n1, float(hit[b].sum()) - x1
            if n1 < min_count or n2 == 0 or x2 == 0:
                continue
            p1, p2 = x1 / n1, x2 / n2
            pool = (x1 + x2) / (n1 + n2)
            se = np.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
            pv = float(ndtr((p1 - p2) / se)) if se > 0 else (0.0 if p1 < p2 else 1.0)
            out.append(SegmentDI(AGE_BANDS[b], REGIONS[r], n1, p1, n2, p2, p1 / p2, pv))
    return out


# --------------------------------------------------------------------------------------------
# The story: a deterministic weekly plan
# --------------------------------------------------------------------------------------------

STORY_WEEKS: Mapping[str, int] = {
    "bootstrap": 0,  # first champion, schema fs-v1, on the pre-launch history
    "schema_change": 8,  # feature pipeline fs-v1 -> fs-v2 (dimension_change entry)
    "fidelity_fail": 8,  # first fs-v2 challenger, class_weight="balanced": higher AUC, KL above floor
    "promotable": 9,  # fs-v2 fixed: clears fidelity and competition -> promote
    "known_good": 9,  # ... serves weeks 9-25 and is what the emergency rolls back to
    "degraded": 16,  # outcomes ETL mis-joined 30 % of labels -> lower AUC -> reject (competition)
    "regime_change": 18,  # market regime starts to shift (drift), ramps over 3 weeks; from here
    #                       routine challengers fail fidelity against the stale epoch-0 teacher
    "promotion_start": 21,  # retiree special deposit for 60+ in Gyeonggi-Incheon, weeks 21-24
    "holdout_refresh": 26,  # holdout + teacher re-drawn after the regime change (epoch 1), from
    #                         the latest fully labelled outcomes, which are promotion weeks
    "unfair": 26,  # trained on promotion weeks only; beats the stale champion -> promote
    "fairness_breach": 27,  # Tuesday: DI of (60-69, Gyeonggi-Incheon) ~0.1 while 'unfair' serves
    "force_promote": 27,  # operator force-promotes 'known_good' (Monday's w27 challenger was a near-tie)
    "holdout_refresh_2": 28,  # root cause: promotion weeks in training and holdout; re-drawn (epoch 2)
    "recovery": 28,  # clean post-regime challenger beats the restored champion -> promote
}

# what the reference gate decides for each role (routine weeks: near-ties, or fidelity
# failures against the stale teacher between the regime change and the refresh -> reject)
EXPECTED_DECISION: Mapping[str, str] = {
    "bootstrap": "bootstrap", "fidelity_fail": "reject", "promotable": "promote",
    "degraded": "reject", "unfair": "promote", "recovery": "promote", "routine": "reject",
}


# p99 latency at full traffic relative to the usual, by role (1 for every other model)
FULL_LOAD_LATENCY_FACTOR: Mapping[str, float] = {"recovery": 3.0}


def version_name(week: int) -> str:
    return f"reco-2025w{week:02d}"


@dataclass(frozen=True)
class PlanItem:
    week: int
    day: int  # Monday of the week; the retrain runs at 03:00 KST
    spec: TrainSpec
    role: str  # routine | bootstrap | fidelity_fail | promotable | degraded | unfair | recovery
    holdout_epoch: int  # the frozen holdout (and teacher) the gate compares on this week
    expected: str  # what the reference gate decides against the champion the story implies
    schema_change: dict | None = None  # dimension_change body when the pipeline changes this week
    # Serving latency multiplier once the version takes all traffic: the w28 model's wider
    # feature lookups saturate the online feature store at full load, which its 20 % canary
    # did not show (the serving incident of the story).
    full_load_latency_factor: float = 1.0


def story_specs(config: WorldConfig | None = None) -> dict[str, TrainSpec]:
    """The TrainSpec of each story model, keyed by role (``known_good`` is ``promotable``)."""
    w = STORY_WEEKS
    specs = {
        "bootstrap": TrainSpec(version_name(w["bootstrap"]), 7 * w["bootstrap"], schema="fs-v1",
                               note="bootstrap champion on the pre-launch history"),
        "fidelity_fail": TrainSpec(version_name(w["fidelity_fail"]), 7 * w["fidelity_fail"],
                                   class_weight="balanced",
                                   note="first fs-v2 model; class_weight='balanced' to lift rare-product recall"),
        "promotable": TrainSpec(version_name(w["promotable"]), 7 * w["promotable"], note="fs-v2, default weights"),
        "degraded": TrainSpec(version_name(w["degraded"]), 7 * w["degraded"], label_defect=LabelDefect(),
                              note="outcomes ETL joined 30% of labels on a stale key"),
        "unfair": TrainSpec(version_name(w["unfair"]), 7 * w["unfair"],
                            note="training window lies inside the retiree deposit promotion"),
        "recovery": TrainSpec(version_name(w["recovery"]), 7 * w["recovery"], note="clean post-regime window"),
    }
    specs["known_good"] = specs["promotable"]
    return specs


def holdout_epoch_for_week(week: int) -> int:
    w = STORY_WEEKS
    return 0 if week < w["holdout_refresh"] else 1 if week < w["holdout_refresh_2"] else 2


def weekly_plan(config: WorldConfig | None = None, weeks: int = YEAR_DAYS // 7) -> list[PlanItem]:
    """One retrain per week, Monday 03:00. Routine weeks retrain the current schema on the
    latest window; story weeks use ``story_specs``. ``expected`` is what the reference gate
    (fidelity floor per task, then >= 0.5 % relative avg_auc gain, no task AUC down > 2 %
    relative, DeLong p < 0.05) decides against the champion of the story, where the
    force-promote of week 27 (Tuesday) restores ``known_good``."""
    sp = story_specs(config)
    w = STORY_WEEKS
    by_week = {w[r]: r for r in sp if r != "known_good"}
    v1, v2 = get_schema("fs-v1"), get_schema("fs-v2")
    out = []
    for wk in range(weeks):
        role = by_week.get(wk, "routine")
        spec = sp[role] if role != "routine" else TrainSpec(
            version_name(wk), 7 * wk, schema="fs-v1" if wk < w["schema_change"] else "fs-v2")
        change = schema_change(v1, v2) if wk == w["schema_change"] else None
        out.append(PlanItem(wk, 7 * wk, spec, role, holdout_epoch_for_week(wk), EXPECTED_DECISION[role], change,
                            FULL_LOAD_LATENCY_FACTOR.get(role, 1.0)))
    return out
