"""A demo model's evidence for the promotion gate: its artifacts on disk and its evaluation.

The gate (``gates.decision``) compares two ``gates.evaluation.Evaluation`` objects scored on
the same frozen holdout. Here a recommender and its holdout evaluation become one:

- one one-vs-rest *task* per product (``task_<product>``): labels 1 where the customer
  accepted that product, scores the model's acceptance probability for it;
- per task the metrics ``auc`` and ``log_loss``, computed with ``gates.metrics`` so the gate
  recomputes exactly what is reported;
- per task the fidelity ``kl``: mean Bernoulli KL(teacher || model) against the world's own
  choice distribution (``mrm.demo.models``);
- lineage: the artifact files with their SHA-256 (checked on disk by the gate), a digest of the
  training data, of the training code and of the training configuration, the world seed, the
  end of the training window and the feature schema digest. The recommendation is an argmax
  over products, not a threshold per task, so ``thresholds`` is empty.

Artifacts (under ``models/<version>/`` of the demo directory): ``model.joblib``, the fitted
scikit-learn pipeline as joblib writes it, and ``card.json``, the model card
(``RecommenderModel.card``) with the coefficients in schema order, readable without Python.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import joblib
import numpy as np

from gates.canonical import sha256_hex
from gates.evaluation import Artifact, Evaluation, Lineage, TaskSamples, holdout_digest
from gates.metrics import auc, log_loss

from . import models as _models_module
from . import world as _world_module
from .models import Evaluation as HoldoutEvaluation
from .models import RecommenderModel, training_data
from .world import TASKS, Holdout, World, day_start_us

ARTIFACT_DIR = "models"


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _utc(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1e6, dt.timezone.utc)


def training_code_digest() -> str:
    """SHA-256 over the source of the modules that generate the data and train the models:
    what a code commit would pin, computed from the code actually running."""
    h = hashlib.sha256()
    for module in (_world_module, _models_module):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


def training_config_digest(model: RecommenderModel) -> str:
    return sha256_hex(json.loads(json.dumps(asdict(model.spec))))


def training_data_digest(world: World, model: RecommenderModel) -> str:
    """SHA-256 of the exact training matrix and labels the model was fitted on."""
    data = training_data(world, model.spec)
    X = np.ascontiguousarray(model.schema.featurize(data.customers), dtype="<f8")
    y = np.ascontiguousarray(data.label, dtype="<i8")
    return hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()


def model_card(model: RecommenderModel) -> dict:
    """The model card plus what scoring needs: per-feature standardisation and coefficients."""
    names = list(model.feature_names)
    return {
        **model.card(),
        "feature_names": names,
        "standardisation": {"mean": model.mean_.tolist(), "scale": model.scale_.tolist()},
        "coefficients": {p: dict(zip(names, row)) for p, row in zip(_world_module.PRODUCT_IDS, model.coef_.tolist())},
        "intercepts": dict(zip(_world_module.PRODUCT_IDS, model.intercept_.tolist())),
    }


def write_model_artifacts(model: RecommenderModel, root: Path) -> tuple[Artifact, ...]:
    """Write the version's artifacts under ``root/models/<version>/``; paths are relative to
    ``root`` (what ``gates.evaluation.observe_artifacts`` resolves them against)."""
    directory = root / ARTIFACT_DIR / model.version
    directory.mkdir(parents=True, exist_ok=True)
    pipeline_path = directory / "model.joblib"
    joblib.dump(model.pipeline, pipeline_path)
    card_path = directory / "card.json"
    card_path.write_text(json.dumps(model_card(model), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return tuple(Artifact(str(p.relative_to(root)), _sha256_file(p)) for p in (pipeline_path, card_path))


@dataclass(frozen=True, eq=False)
class GateHoldout:
    """One frozen holdout epoch as the gate sees it: sample ids and per-task 0/1 labels, with
    their digest. The same for every model scored on the epoch, so it is built once."""

    epoch: int
    sample_ids: tuple[str, ...]
    labels: dict[str, np.ndarray]  # task -> float64 0/1, holdout order
    label_tuples: dict[str, tuple[float, ...]]
    digest: str

    @classmethod
    def of(cls, holdout: Holdout) -> "GateHoldout":
        ids = tuple(holdout.customers.subject_ids())
        labels = {t: (holdout.labels == k).astype(np.float64) for k, t in enumerate(TASKS)}
        tuples = {t: tuple(v.tolist()) for t, v in labels.items()}
        digest = holdout_digest({t: TaskSamples(ids, tuples[t], ()) for t in TASKS})
        return cls(holdout.epoch, ids, labels, tuples, digest)


def gate_evaluation(
    world: World,
    model: RecommenderModel,
    holdout: GateHoldout,
    evaluation: HoldoutEvaluation,
    *,
    slot: str,
    artifacts: Sequence[Artifact],
    code_digest: str,
) -> Evaluation:
    """The gate's view of ``model`` on ``holdout`` (``evaluation`` is ``models.evaluate`` of it)."""
    if evaluation.model_version != model.version or evaluation.holdout_epoch != holdout.epoch:
        raise ValueError(f"evaluation of {evaluation.model_version} on epoch {evaluation.holdout_epoch} "
                         f"is not of {model.version} on epoch {holdout.epoch}")
    samples: dict[str, TaskSamples] = {}
    metrics: dict[str, dict[str, float]] = {}
    for k, task in enumerate(TASKS):
        labels, scores = holdout.labels[task], evaluation.proba[:, k]
        samples[task] = TaskSamples(holdout.sample_ids, holdout.label_tuples[task], tuple(scores.tolist()))
        metrics[task] = {"auc": auc(labels, scores), "log_loss": log_loss(labels, scores)}
    spec = model.spec
    lineage = Lineage(
        artifacts=tuple(artifacts),
        data_snapshot_digest=training_data_digest(world, model),
        code_commit=f"sha256:{code_digest}",
        config_digest=training_config_digest(model),
        seed=world.seed,
        trained_end=_utc(day_start_us(spec.as_of_day - spec.lag_days)),
        feature_schema_digest=model.schema.digest,
        thresholds={},
    )
    return Evaluation(
        slot=slot,
        version=model.version,
        metrics=metrics,
        holdout=samples,
        holdout_digest=holdout.digest,
        lineage=lineage,
        fidelity={task: {"kl": evaluation.fidelity_kl[task]} for task in TASKS},
        guardrails={},
        horizons=(),
    )
