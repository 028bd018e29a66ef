"""One model version's evaluation on a frozen holdout: what the gate compares.

Pure parsing and serialisation, plus two clearly separated I/O functions at the end:
:meth:`EvaluationFile.load` (read a JSON file) and :func:`observe_artifacts` (hash the
artifact files on disk, for the functional check that they exist with the declared digests).

JSON file format ``mrm-gate-evaluation/1`` (RFC 8259 JSON; NaN, Infinity and duplicate keys are
rejected)::

    {
      "format": "mrm-gate-evaluation/1",
      "slot": "credit_pd",                       # deployment slot   } names: README "Names"
      "version": "v012",                         # this model version } (ledger.identifiers)
      "metrics":    {"<task>": {"<metric>": number, ...}, ...},
      "fidelity":   {"<task>": {"kl": number, ...}, ...},      # optional (distilled students)
      "guardrails": {"p99_latency_ms": number, "disparate_impact": number, ...},  # optional
      "horizons":   [5, 15, 60],                                 # optional
      "holdout": {
        "digest": "<sha256>",   # of the canonical JSON {task: {"sample_ids": [...], "labels": [...]}}
        "tasks": {"<task>": {"sample_ids": ["s1", ...], "labels": [0, 1, ...],
                             "scores": [0.12, 0.87, ...]}}
      },
      "lineage": {
        "artifacts": [{"path": "models/v012/model.bin", "sha256": "<hex>"}],
        "data_snapshot_digest": "<hex>", "code_commit": "<git sha>", "config_digest": "<hex>",
        "seed": 7, "trained_end": "2026-04-20T03:00:00Z", "feature_schema_digest": "<hex>",
        "thresholds": {"<task>": 0.5}            # decision threshold per task, score >= t -> 1
      }
    }

Every number must be finite, and a metric inside its range (``gates.metrics.METRIC_RANGES``:
an AUC of -0.3 is refused, not judged); slot, version and task names follow the one identifier
rule; artifact paths are relative to the artifacts root and stay inside it.

Labels are 0/1 for classification tasks or real targets for regression; scores are the model's
per-sample outputs in holdout order. The holdout digest covers sample ids and labels, not the
scores, so champion and challenger evaluated on the same holdout carry the same digest.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from gates.canonical import sha256_hex, utc_text
from gates.metrics import metric_value
from ledger.errors import InputError
from ledger.identifiers import check_identifier
from ledger.jsontext import JSONTextError, loads_strict
from ledger.numbers import bounded_int, finite_float

FORMAT = "mrm-gate-evaluation/1"


class EvaluationError(InputError):
    """An evaluation that cannot be used; the message names the source and the field."""


@dataclass(frozen=True)
class TaskSamples:
    sample_ids: tuple[str, ...]
    labels: tuple[float, ...]
    scores: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.sample_ids)


@dataclass(frozen=True)
class Artifact:
    path: str
    sha256: str


@dataclass(frozen=True)
class Lineage:
    artifacts: tuple[Artifact, ...]
    data_snapshot_digest: str
    code_commit: str
    config_digest: str
    seed: int
    trained_end: datetime  # timezone-aware UTC
    feature_schema_digest: str
    thresholds: Mapping[str, float]


@dataclass(frozen=True)
class Evaluation:
    slot: str
    version: str
    metrics: Mapping[str, Mapping[str, float]]
    holdout: Mapping[str, TaskSamples]
    holdout_digest: str
    lineage: Lineage
    fidelity: Mapping[str, Mapping[str, float]]
    guardrails: Mapping[str, float]
    horizons: tuple[str, ...]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(sorted(self.metrics))

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the whole evaluation (what a replayer checks).

        Computed once per object: canonicalising a large holdout's per-sample scores takes a
        noticeable fraction of a second, and one gate run asks for it several times. The
        evaluation is frozen, so the value cannot go stale."""
        return sha256_hex(evaluation_to_dict(self))


def holdout_digest(tasks: Mapping[str, TaskSamples]) -> str:
    return sha256_hex(
        {t: {"sample_ids": list(s.sample_ids), "labels": list(s.labels)} for t, s in tasks.items()}
    )


# --- parsing ------------------------------------------------------------------------------


class _Reader:
    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, problem: str) -> None:
        raise EvaluationError(f"{self.source}: {where}: {problem}")

    def obj(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(where, f"must be an object, got {type(value).__name__}")
        return value

    def only(self, value: Mapping[str, Any], where: str, required: set[str], optional: set[str] = set()) -> None:
        missing = sorted(required - set(value))
        if missing:
            self.fail(f"{where}.{missing[0]}" if where else missing[0], "is required")
        unknown = sorted(set(value) - required - optional)
        if unknown:
            self.fail(f"{where}.{unknown[0]}" if where else unknown[0], "unknown field")

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(where, f"must be a non-empty string, got {value!r}")
        return value

    def number(self, value: Any, where: str) -> float:
        return finite_float(value, f"{self.source}: {where}", error=EvaluationError)

    def name(self, value: Any, where: str) -> str:
        """A slot, version or task name: the one identifier rule (ledger.identifiers)."""
        return check_identifier(value, f"{self.source}: {where}", error=EvaluationError)

    def metric(self, name: str, value: Any, where: str) -> float:
        """A metric's value: finite and inside the metric's range (gates.metrics.METRIC_RANGES)."""
        return metric_value(name, value, f"{self.source}: {where}", error=EvaluationError)

    def numbers(self, value: Any, where: str) -> tuple[float, ...]:
        if not isinstance(value, list):
            self.fail(where, "must be a list of numbers")
        return tuple(self.number(v, f"{where}[{i}]") for i, v in enumerate(value))

    def number_map(self, value: Any, where: str) -> dict[str, float]:
        return {k: self.number(v, f"{where}.{k}") for k, v in self.obj(value, where).items()}

    def metric_map(self, value: Any, where: str) -> dict[str, float]:
        """{metric name: value}, each value checked against its metric's range."""
        return {k: self.metric(k, v, f"{where}.{k}") for k, v in self.obj(value, where).items()}

    def task_metric_map(self, value: Any, where: str) -> dict[str, dict[str, float]]:
        """{task: {metric name: value}}; task names follow the identifier rule."""
        return {self.name(k, f"{where}.{k}"): self.metric_map(v, f"{where}.{k}") for k, v in self.obj(value, where).items()}


def _task_samples(r: _Reader, value: Any, where: str) -> TaskSamples:
    v = r.obj(value, where)
    r.only(v, where, {"sample_ids", "labels", "scores"})
    ids = v["sample_ids"]
    if not isinstance(ids, list) or not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids):
        r.fail(f"{where}.sample_ids", "must be a list of strings or integers")
    sample_ids = tuple(str(i) for i in ids)
    if len(set(sample_ids)) != len(sample_ids):
        r.fail(f"{where}.sample_ids", "has duplicate sample ids")
    labels = r.numbers(v["labels"], f"{where}.labels")
    scores = r.numbers(v["scores"], f"{where}.scores")
    if not (len(sample_ids) == len(labels) == len(scores)):
        r.fail(where, f"sample_ids, labels and scores differ in length ({len(sample_ids)}, {len(labels)}, {len(scores)})")
    return TaskSamples(sample_ids, labels, scores)


def _timestamp(r: _Reader, value: Any, where: str) -> datetime:
    text = r.text(value, where)
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        r.fail(where, f"must be an ISO 8601 timestamp, got {text!r}")
    if ts.tzinfo is None:
        r.fail(where, f"must carry a time zone (e.g. a trailing Z), got {text!r}")
    return ts.astimezone(timezone.utc)


def _artifact_path(r: _Reader, value: Any, where: str) -> str:
    """Relative to --artifacts-root and inside it: the gate hashes the file it names."""
    text = r.text(value, where)
    parts = PurePosixPath(text).parts
    if PurePosixPath(text).is_absolute() or "\\" in text or ".." in parts:
        r.fail(where, f"must be a relative path inside the artifacts root, without '..', got {text!r}")
    return text


def _lineage(r: _Reader, value: Any) -> Lineage:
    v = r.obj(value, "lineage")
    r.only(v, "lineage", {"artifacts", "data_snapshot_digest", "code_commit", "config_digest", "seed",
                          "trained_end", "feature_schema_digest", "thresholds"})
    arts = v["artifacts"]
    if not isinstance(arts, list):
        r.fail("lineage.artifacts", "must be a list of {path, sha256}")
    artifacts = []
    for i, a in enumerate(arts):
        where = f"lineage.artifacts[{i}]"
        a = r.obj(a, where)
        r.only(a, where, {"path", "sha256"})
        digest = r.text(a["sha256"], f"{where}.sha256").lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            r.fail(f"{where}.sha256", f"must be 64 hex digits, got {a['sha256']!r}")
        artifacts.append(Artifact(_artifact_path(r, a["path"], f"{where}.path"), digest))
    seed = bounded_int(v["seed"], f"{r.source}: lineage.seed", 0, error=EvaluationError)
    return Lineage(
        artifacts=tuple(artifacts),
        data_snapshot_digest=r.text(v["data_snapshot_digest"], "lineage.data_snapshot_digest"),
        code_commit=r.text(v["code_commit"], "lineage.code_commit"),
        config_digest=r.text(v["config_digest"], "lineage.config_digest"),
        seed=seed,
        trained_end=_timestamp(r, v["trained_end"], "lineage.trained_end"),
        feature_schema_digest=r.text(v["feature_schema_digest"], "lineage.feature_schema_digest"),
        thresholds=r.number_map(v["thresholds"], "lineage.thresholds"),
    )


def evaluation_from_mapping(data: Any, source: str = "<evaluation>") -> Evaluation:
    """Validate and build an :class:`Evaluation` from parsed JSON (or :func:`evaluation_to_dict`)."""
    r = _Reader(source)
    d = r.obj(data, "(top level)")
    r.only(d, "", {"format", "slot", "version", "metrics", "holdout", "lineage"}, {"fidelity", "guardrails", "horizons"})
    if d["format"] != FORMAT:
        r.fail("format", f"must be {FORMAT!r}, got {d['format']!r}")
    metrics = r.task_metric_map(d["metrics"], "metrics")
    if not metrics:
        r.fail("metrics", "must name at least one task")
    h = r.obj(d["holdout"], "holdout")
    r.only(h, "holdout", {"digest", "tasks"})
    tasks = {r.name(t, f"holdout.tasks.{t}"): _task_samples(r, v, f"holdout.tasks.{t}")
             for t, v in r.obj(h["tasks"], "holdout.tasks").items()}
    declared = r.text(h["digest"], "holdout.digest").lower()
    actual = holdout_digest(tasks)
    if declared != actual:
        r.fail("holdout.digest", f"declares {declared} but the sample ids and labels hash to {actual}")
    if set(tasks) != set(metrics):
        r.fail("holdout.tasks", f"tasks {sorted(tasks)} differ from the tasks in metrics {sorted(metrics)}")
    horizons = d.get("horizons", [])
    if not isinstance(horizons, list) or not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in horizons):
        r.fail("horizons", f"must be a list of names or integers, got {horizons!r}")
    return Evaluation(
        slot=r.name(d["slot"], "slot"),
        version=r.name(d["version"], "version"),
        metrics=metrics,
        holdout=tasks,
        holdout_digest=actual,
        lineage=_lineage(r, d["lineage"]),
        fidelity=r.task_metric_map(d.get("fidelity", {}), "fidelity"),
        guardrails=r.metric_map(d.get("guardrails", {}), "guardrails"),
        horizons=tuple(str(x) for x in horizons),
    )



def evaluation_to_dict(e: Evaluation) -> dict[str, Any]:
    """The file format again; ``evaluation_from_mapping(evaluation_to_dict(e)) == e``."""
    return {
        "format": FORMAT,
        "slot": e.slot,
        "version": e.version,
        "metrics": {t: dict(m) for t, m in e.metrics.items()},
        "fidelity": {t: dict(m) for t, m in e.fidelity.items()},
        "guardrails": dict(e.guardrails),
        "horizons": list(e.horizons),
        "holdout": {
            "digest": e.holdout_digest,
            "tasks": {
                t: {"sample_ids": list(s.sample_ids), "labels": list(s.labels), "scores": list(s.scores)}
                for t, s in e.holdout.items()
            },
        },
        "lineage": {
            "artifacts": [{"path": a.path, "sha256": a.sha256} for a in e.lineage.artifacts],
            "data_snapshot_digest": e.lineage.data_snapshot_digest,
            "code_commit": e.lineage.code_commit,
            "config_digest": e.lineage.config_digest,
            "seed": e.lineage.seed,
            "trained_end": utc_text(e.lineage.trained_end),
            "feature_schema_digest": e.lineage.feature_schema_digest,
            "thresholds": dict(e.lineage.thresholds),
        },
    }


class EvaluationFile:
    """Reading ``mrm-gate-evaluation/1`` JSON: :meth:`parse` is pure, :meth:`load` reads a file."""

    FORMAT = FORMAT

    @staticmethod
    def parse(text: str, source: str = "<evaluation>") -> Evaluation:
        try:
            data = loads_strict(text)
        except JSONTextError as e:
            raise EvaluationError(f"{source}: {e}") from None
        return evaluation_from_mapping(data, source)

    @staticmethod
    def load(path: str | Path) -> Evaluation:
        """I/O: read and parse one evaluation file; a name ending in ``.gz`` is gzip-compressed
        (per-sample scores of a large holdout compress well)."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as e:
            raise EvaluationError(f"{p}: cannot read the evaluation file: {e.strerror or e}") from None
        try:
            text = (gzip.decompress(data) if p.suffix == ".gz" else data).decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError) as e:  # gzip.BadGzipFile is an OSError
            raise EvaluationError(f"{p}: not a readable evaluation file ({e})") from None
        return EvaluationFile.parse(text, str(p))


def observe_artifacts(evaluation: Evaluation, root: str | Path) -> dict[str, str | None]:
    """I/O: SHA-256 of each declared artifact under ``root``; None for a file that is missing."""
    observed: dict[str, str | None] = {}
    for artifact in evaluation.lineage.artifacts:
        path = Path(root) / artifact.path
        try:
            h = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            observed[artifact.path] = h.hexdigest()
        except FileNotFoundError:
            observed[artifact.path] = None
    return observed
