"""The full record of one decision: "on what basis was this recommended to me?"

Given a request id, or a subject and an instant, :class:`Reconstructor` gathers who accessed
the data and why, which model version decided on which input digest, the output and scores,
the top attributions, each guardrail verdict, and the promotion decision that had made the
model version live, with its approver and reason. Every part carries the sequence number,
key id and MAC of its entry so it can be checked against the chain.

    with Reconstructor.open("audit-ledger") as r:
        record = r.reconstruct(subject_id="cust-0012345", at="2025-09-03T10:15:00+09:00")
        print(record.to_text())

Without a verifier the record says it was not verified in this run. With one, the ledger is
verified first, the answers rest only on what it vouched for, and lookups scan the listed
files instead of trusting the side index.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Mapping

from gates.ledger_io import parse_details
from gates.observations import OUTCOME
from gates.registry import production_at

from .attestation import Attestation, Verifier
from .errors import Ambiguous, ForensicsError, NotFound
from .evidence import EvidenceReader
from .registry import RegistryTables, registry_entries, registry_tables
from .source import Source, open_source


# ---------------------------------------------------------------------- the record


@dataclass(frozen=True)
class EntryRef:
    """Where a fact comes from: the entry, and what its MAC covers."""

    seq: int
    table: str
    ts: dt.datetime
    actor: str
    key_id: str
    mac: str  # hex


@dataclass(frozen=True)
class DataAccessRecord:
    entry: EntryRef
    operator: str
    subject_id: str
    dataset: str
    columns: tuple[str, ...]
    purpose: str
    access_type: str
    row_count: int


@dataclass(frozen=True)
class InferenceRecord:
    entry: EntryRef
    request_id: str
    subject_id: str
    model_slot: str
    model_version: str
    input_digest: str
    decision: str
    scores: tuple[tuple[str, float], ...]  # highest first
    latency_ms: float
    route: str | None


@dataclass(frozen=True)
class FeatureContribution:
    feature: str
    value: float | None
    contribution: float | None


@dataclass(frozen=True)
class AttributionRecord:
    entry: EntryRef
    method: str
    model_version: str
    top_features: tuple[FeatureContribution, ...]  # as recorded (top-k, most important first)


@dataclass(frozen=True)
class GuardrailRecord:
    entry: EntryRef
    gate: str
    verdict: str
    criteria: tuple[tuple[str, float], ...]
    reason: str | None
    original_output: str | None
    final_output: str | None


@dataclass(frozen=True)
class PromotionRecord:
    """The model_promotion entry that made the model version production."""

    entry: EntryRef
    slot: str
    decision: str
    trigger: str
    operator: str | None
    reason: str
    champion_version: str | None  # the version it replaced
    challenger_version: str
    live_from: dt.datetime
    live_until: dt.datetime | None  # None: still production
    comparison: tuple[Mapping[str, Any], ...] = ()
    significance: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class OutcomeRecord:
    """A late outcome recorded for the request (an ``operation`` entry, event_type outcome,
    correlation_id = the request id: gates.observations.outcome_entry)."""

    entry: EntryRef
    observed_at: dt.datetime | None  # when the outcome happened, as recorded; the entry's ts is when it was written
    label: Any
    values: tuple[tuple[str, float], ...]
    source: str | None


@dataclass(frozen=True)
class OtherDecision:
    request_id: str
    ts: dt.datetime
    seq: int


@dataclass(frozen=True)
class DecisionRecord:
    ledger_id: str
    request_id: str
    subject_id: str
    inference: InferenceRecord
    data_access: tuple[DataAccessRecord, ...]
    attributions: tuple[AttributionRecord, ...]
    guardrails: tuple[GuardrailRecord, ...]
    served_output: str | None  # the last guardrail's final output; None if blocked or unrecorded
    promotion: PromotionRecord | None  # what made inference.model_version live (None: it was not)
    version_state: str | None  # the model version's registry state at the decision
    champion_version: str | None  # the slot's production version at the decision
    other_decisions: tuple[OtherDecision, ...]  # the subject's other served decisions (subject lookups)
    notes: tuple[str, ...]
    lookup: str  # how the entries were found
    attestation: Attestation = field(repr=False)
    outcomes: tuple[OutcomeRecord, ...] = ()  # late outcomes recorded for the request, oldest first

    @property
    def top_attributions(self) -> tuple[FeatureContribution, ...]:
        """The recorded top features of the attribution for the deciding model version."""
        for a in self.attributions:
            if a.model_version == self.inference.model_version:
                return a.top_features
        return self.attributions[0].top_features if self.attributions else ()

    def to_dict(self) -> dict[str, Any]:
        doc = _plain(self)
        doc["attestation"] = self.attestation.to_dict()
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_text(self, top: int = 5) -> str:
        from .render import decision_text

        return decision_text(self, top=top)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value) if f.name != "attestation"}
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in value):
            return {k: _plain(v) for k, v in value}  # (key, value) pairs: scores, criteria
        return [_plain(v) for v in value]
    return value


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_instant(value: str | dt.datetime, what: str = "--at") -> dt.datetime:
    """An instant with a time zone; a naive one is refused rather than guessed."""
    if isinstance(value, dt.datetime):
        ts = value
    else:
        try:
            ts = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ForensicsError(f"{what} {value!r} is not an ISO 8601 timestamp (e.g. 2025-09-03T10:15:00+09:00)") from None
    if ts.tzinfo is None or ts.tzinfo.utcoffset(ts) is None:
        raise ForensicsError(f"{what} {value!s} has no time zone; give one, e.g. {ts.isoformat()}Z or {ts.isoformat()}+09:00")
    return ts.astimezone(dt.timezone.utc)


# ---------------------------------------------------------------------- finding it


class Reconstructor:
    """Open once, reconstruct many decisions."""

    def __init__(self, source: Source, *, threads: int | None = None, use_index: bool | None = None):
        self.source = source
        self.reader = EvidenceReader(source, threads=threads)
        self._use_index = use_index
        self._registry: RegistryTables | None = None
        self._promotions: dict[int, dict[str, Any]] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, verifier: Verifier | None = None, **options: Any) -> "Reconstructor":
        return cls(open_source(path, verifier), **options)

    @property
    def attestation(self) -> Attestation:
        return self.source.attestation

    @property
    def use_index(self) -> bool:
        # A verified answer must not rest on the (unverified) side index: scan instead.
        if self.attestation.verified:
            return False
        return True if self._use_index is None else self._use_index

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> "Reconstructor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ entry points
    def reconstruct(
        self,
        *,
        request_id: str | None = None,
        subject_id: str | None = None,
        at: str | dt.datetime | None = None,
        inference_seq: int | None = None,
    ) -> DecisionRecord:
        """By request id, or by subject (the subject's latest served decision at or before
        `at`, or their latest overall). `inference_seq` picks one of several inferences that
        share a request id."""
        if (request_id is None) == (subject_id is None):
            raise ForensicsError("give a request id or a subject id (exactly one)")
        if at is not None and subject_id is None:
            raise ForensicsError("--at selects among a subject's decisions; use it with --subject")
        others: tuple[OtherDecision, ...] = ()
        notes: list[str] = []
        searched = []
        if subject_id is not None:
            request_id, inference_seq, others, subject_notes = self._pick_for_subject(subject_id, at)
            notes += subject_notes
            searched.append(self.reader.last_stats)
        inferences = self._rows("model_inference", "request_id", request_id)
        searched.append(self.reader.last_stats)
        if inference_seq is not None:
            inferences = [r for r in inferences if r["seq"] == inference_seq]
        if not inferences:
            raise NotFound(f"no model_inference entry for request {request_id!r} in entries 0-{self.attestation.through_seq}")
        if len(inferences) > 1:
            listed = ", ".join(f"seq {r['seq']} ({iso(r['ts'])}, {r['model_version']})" for r in inferences)
            raise Ambiguous(f"{len(inferences)} model_inference entries share request id {request_id!r}: {listed}; pick one with --seq")
        inference = inferences[0]
        accesses = self._rows("data_access", "request_id", request_id)
        searched.append(self.reader.last_stats)
        attributions = self._rows("attribution", "request_id", request_id)
        searched.append(self.reader.last_stats)
        guardrails = self._rows("guardrail", "request_id", request_id)
        searched.append(self.reader.last_stats)
        outcomes = self._outcomes(request_id, after_seq=inference["seq"])
        return self._record(inference, accesses, attributions, guardrails, others, notes, searched, outcomes)

    # ------------------------------------------------------------------ steps
    def _rows(self, table: str, column: str, value: str) -> list[dict[str, Any]]:
        return self.reader.rows(table, column, value, use_index=self.use_index).to_pylist()

    def _outcomes(self, request_id: str, *, after_seq: int) -> list[dict[str, Any]]:
        """The request's late outcomes. Outcomes are not in the key index (they carry the
        request id as correlation_id), so the operation files written after the decision are
        scanned for it: nothing older can hold an outcome of it."""
        rows = self.reader.rows("operation", "correlation_id", request_id, use_index=False, after_seq=after_seq).to_pylist()
        return [r for r in rows if r["event_type"] == OUTCOME]

    def _pick_for_subject(self, subject_id: str, at: str | dt.datetime | None) -> tuple[str, int, tuple[OtherDecision, ...], list[str]]:
        rows = self._rows("model_inference", "subject_id", subject_id)
        if not rows:
            raise NotFound(f"no model_inference entry for subject {subject_id!r} in entries 0-{self.attestation.through_seq}")
        served = [r for r in rows if r["route"] != "shadow"]
        notes = []
        if len(served) < len(rows):
            notes.append(f"{len(rows) - len(served)} shadow inference(s) of this subject were not served and are not candidates")
        if not served:
            raise NotFound(f"subject {subject_id!r} has only shadow inferences (never served): seq {', '.join(str(r['seq']) for r in rows)}")
        candidates = served
        if at is not None:
            instant = parse_instant(at)
            candidates = [r for r in served if r["ts"] <= instant]
            if not candidates:
                first = min(served, key=lambda r: (r["ts"], r["seq"]))
                raise NotFound(
                    f"subject {subject_id!r} has no served decision at or before {iso(instant)}; "
                    f"their first is request {first['request_id']} at {iso(first['ts'])}"
                )
        chosen = max(candidates, key=lambda r: (r["ts"], r["seq"]))
        ties = [r for r in candidates if r["ts"] == chosen["ts"] and r["seq"] != chosen["seq"]]
        if ties:
            notes.append(f"{len(ties)} other decision(s) of this subject share the instant {iso(chosen['ts'])}; the latest in sequence order is shown")
        others = tuple(OtherDecision(r["request_id"], r["ts"], r["seq"]) for r in sorted(served, key=lambda r: r["seq"]) if r["seq"] != chosen["seq"])
        what = f"latest served decision at or before {iso(parse_instant(at))}" if at is not None else "latest served decision"
        notes.insert(0, f"chosen as the subject's {what} ({len(served)} in the ledger)")
        return chosen["request_id"], chosen["seq"], others, notes

    def _registry_tables(self) -> RegistryTables:
        if self._registry is None:
            entries = registry_entries(self.source)
            self._promotions = {e["seq"]: e for e in entries if e["table_name"] == "model_promotion"}
            self._registry = registry_tables(entries)
        return self._registry

    def _record(self, inference, accesses, attributions, guardrails, others, notes, searched, outcomes=()) -> DecisionRecord:
        notes = list(notes)
        request_id, subject_id = inference["request_id"], inference["subject_id"]
        ts, slot, version = inference["ts"], inference["model_slot"], inference["model_version"]
        registry = self._registry_tables()
        periods = [p for p in registry.production.to_pylist() if p["slot"] == slot]
        live = production_at(periods, slot, ts)
        champion = live["version"] if live else None
        version_state = registry.registry.states(slot, ts).get(version)
        promotion = None
        if live is not None and champion == version:
            promotion = self._promotion(live)
        else:
            earlier = [p for p in periods if p["version"] == version and p["live_from"] <= ts]
            route = inference["route"] or "unknown route"
            if earlier:
                last = max(earlier, key=lambda p: p["live_from"])
                notes.append(f"model version {version} was not production at the decision ({route}); it had been until {iso(last['live_until'])}")
            else:
                notes.append(f"model version {version} had never been production in slot {slot} at the decision ({route}; registry state: {version_state or 'unregistered'})")
        if inference["route"] == "shadow":
            notes.append("shadow inference: its output was not served")
        if not accesses:
            notes.append("no data_access entry names this request")
        for a in accesses:
            if a["subject_id"] != subject_id:
                notes.append(f"data_access seq {a['seq']} names subject {a['subject_id']!r}, not the inference's {subject_id!r}")
        if not attributions:
            notes.append("no attribution entry for this request")
        elif not any(a["model_version"] == version for a in attributions):
            notes.append(f"no attribution was recorded for the deciding model version {version}")
        served = guardrails[-1]["final_output"] if guardrails else None
        if not guardrails:
            notes.append("no guardrail verdict recorded: what was served is not in the ledger")
        elif served is None:
            notes.append("the guardrail served nothing (blocked)")
        segments = len(self.source.records)
        if self.use_index:
            read = max((s.segments_searched for s in searched), default=0)
            unindexed = max((s.unindexed_segments for s in searched), default=0)
            lookup = f"key index: at most {read} of {segments} segments read per table" + (f" ({unindexed} without an index, scanned)" if unindexed else "")
        else:
            lookup = f"full scan of all {segments} segments (a verified run does not rely on the side index)"
        return DecisionRecord(
            ledger_id=self.source.ledger_id,
            request_id=request_id,
            subject_id=subject_id,
            inference=_inference(inference),
            data_access=tuple(_access(a) for a in accesses),
            attributions=tuple(_attribution(a) for a in attributions),
            guardrails=tuple(_guardrail(g) for g in guardrails),
            served_output=served,
            promotion=promotion,
            version_state=version_state,
            champion_version=champion,
            other_decisions=others,
            notes=tuple(notes),
            lookup=lookup,
            attestation=self.attestation,
            outcomes=tuple(_outcome(o) for o in outcomes),
        )

    def _promotion(self, period: Mapping[str, Any]) -> PromotionRecord | None:
        entry = self._promotions.get(period["promotion_seq"])
        if entry is None:
            return None
        return PromotionRecord(
            entry=_ref(entry),
            slot=entry["slot"],
            decision=entry["decision"],
            trigger=entry["trigger"],
            operator=entry["operator"],
            reason=entry["reason"],
            champion_version=entry["champion_version"],
            challenger_version=entry["challenger_version"],
            live_from=period["live_from"],
            live_until=period["live_until"],
            comparison=tuple(entry["comparison"] or ()),
            significance=tuple(entry["significance"] or ()),
        )


def reconstruct(
    path: str | os.PathLike[str],
    *,
    request_id: str | None = None,
    subject_id: str | None = None,
    at: str | dt.datetime | None = None,
    inference_seq: int | None = None,
    verifier: Verifier | None = None,
) -> DecisionRecord:
    """One decision's full record (see :class:`Reconstructor` to look up many)."""
    with Reconstructor.open(path, verifier=verifier) as r:
        return r.reconstruct(request_id=request_id, subject_id=subject_id, at=at, inference_seq=inference_seq)


# ---------------------------------------------------------------------- rows -> records


def _ref(row: Mapping[str, Any]) -> EntryRef:
    return EntryRef(row["seq"], row["table_name"], row["ts"], row["actor"], row["key_id"], row["mac"].hex())


def _inference(r: Mapping[str, Any]) -> InferenceRecord:
    scores = tuple(sorted(((k, float(v)) for k, v in (r["scores"] or [])), key=lambda kv: -kv[1]))
    return InferenceRecord(
        _ref(r), r["request_id"], r["subject_id"], r["model_slot"], r["model_version"], r["input_digest"], r["decision"],
        scores, r["latency_ms"], r["route"],
    )


def _access(r: Mapping[str, Any]) -> DataAccessRecord:
    return DataAccessRecord(
        _ref(r), r["operator"], r["subject_id"], r["dataset"], tuple(r["columns"]), r["purpose"], r["access_type"], r["row_count"]
    )


def _attribution(r: Mapping[str, Any]) -> AttributionRecord:
    top = tuple(FeatureContribution(f["feature"], f["value"], f["contribution"]) for f in r["top_features"])
    return AttributionRecord(_ref(r), r["method"], r["model_version"], top)


def _outcome(r: Mapping[str, Any]) -> OutcomeRecord:
    d = parse_details(r["details"])
    observed = d.get("observed_at")
    try:
        observed_at = parse_instant(observed, "observed_at") if isinstance(observed, str) else None
    except ForensicsError:
        observed_at = None
    values = d.get("values") if isinstance(d.get("values"), Mapping) else {}
    return OutcomeRecord(_ref(r), observed_at, d.get("label"),
                         tuple((str(k), float(v)) for k, v in values.items() if isinstance(v, (int, float))),
                         d.get("source") if isinstance(d.get("source"), str) else None)


def _guardrail(r: Mapping[str, Any]) -> GuardrailRecord:
    return GuardrailRecord(
        _ref(r), r["gate"], r["verdict"], tuple((k, float(v)) for k, v in r["criteria"]), r["reason"], r["original_output"], r["final_output"]
    )


__all__ = [
    "AttributionRecord",
    "DataAccessRecord",
    "DecisionRecord",
    "EntryRef",
    "FeatureContribution",
    "GuardrailRecord",
    "InferenceRecord",
    "OtherDecision",
    "OutcomeRecord",
    "PromotionRecord",
    "Reconstructor",
    "parse_instant",
    "reconstruct",
]
