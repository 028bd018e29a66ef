"""The demo scenario: a Korean retail bank's product-recommendation model.

The world (pure and deterministic given ``WorldConfig.seed``; nothing in them writes to the ledger):

``world``           customers, products, label process, request stream, feature schemas, input digest
``suitability``     the KFCPA Art. 17 suitability rule (the guardrail's verdicts and criteria)
``models``          real scikit-learn recommenders, attributions, holdout evaluation, the story plan

The year through the ledger (``mrm demo``):

``scenario``        ``run_demo``: the simulated calendar, the bank's people and jobs, ``DemoResult``
``serving``         one batch of requests as its four entries per request (Arrow batches)
``gate_evaluation`` a model's artifacts and its evaluation in the promotion gate's format
``fairness``        the weekly segment fairness monitor and the committee's holdout review
``forensics``       the examiner's questions in SQL, and the disputed recommendation reconstructed
``clock``           simulated time (the ledger's clock while the year is replayed)
"""

from .models import (
    ATTRIBUTION_METHOD,
    DI_ALPHA,
    DI_THRESHOLD,
    EXPECTED_DECISION,
    FIDELITY_FLOOR,
    STORY_WEEKS,
    Evaluation,
    LabelDefect,
    PlanItem,
    Recommendation,
    RecommenderModel,
    ScoredBatch,
    SegmentDI,
    TrainSpec,
    disparate_impact,
    evaluate,
    fairness_eligible,
    story_specs,
    train_model,
    version_name,
    weekly_plan,
)
from .suitability import GATE, SuitabilityBatch, SuitabilityResult, check_suitability, check_suitability_batch
from .world import (
    AGE_BANDS,
    PRODUCTS,
    PRODUCT_IDS,
    REGIONS,
    SCHEMA_V1,
    SCHEMA_V2,
    TASKS,
    CustomerProfile,
    Customers,
    FeatureSchema,
    Holdout,
    Product,
    RequestBatch,
    SegmentEvent,
    World,
    WorldConfig,
    favourable,
    input_digest,
    input_digests,
    schema_change,
    schema_digest,
)

__all__ = [n for n in dir() if not n.startswith("_")]
