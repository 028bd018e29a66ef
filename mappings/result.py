"""What evaluating a pack gives: per requirement its status and why, per evidence item the
query, its rows and the offending rows (Arrow tables), and what the answers rest on.

This is the structure the examiner document renders: citation, paraphrase, status and
explanation, evidence tables and their SQL, and the checkpoint or chain head behind them.
``to_dict`` gives the same without the tables (the bundle writes those as Parquet).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping

import pyarrow as pa

from gates.canonical import utc_text

from .pack import EvidenceItem, Pack, Requirement
from .period import Applicability, Period
from .status import Status


@dataclass(frozen=True)
class CheckpointInfo:
    """The newest signed checkpoint inside what the answers rest on."""

    size: int  # entries 0..size-1
    origin: str
    root: bytes
    time: str | None
    note: bytes  # the signed note as stored, for the bundle
    signature_checked: bool  # True when this run verified it with trusted public keys

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "origin": self.origin, "root": self.root.hex(), "time": self.time,
                "signature_checked": self.signature_checked}


@dataclass(frozen=True)
class RestsOn:
    """The entries the answers were computed from, and how (or whether) they were checked."""

    ledger_id: str
    path: str
    through_seq: int  # answers use entries 0..through_seq
    head_mac: str | None  # MAC of entry through_seq (the HMAC chain head of what was read)
    verified: bool
    method: str | None  # "hmac-chain", "signed-checkpoint"; None: not verified in this run
    summary: str
    checkpoint: CheckpointInfo | None

    @property
    def line(self) -> str:
        mac = f", chain head mac {self.head_mac[:16]}..." if self.head_mac else ""
        if self.verified:
            head = f"verified in this run ({self.method}): entries 0-{self.through_seq}{mac}"
        else:
            head = f"NOT VERIFIED in this run: entries 0-{self.through_seq}{mac} as read (pass --verify)"
        if self.checkpoint is None:
            return head + "; no signed checkpoint covers them yet"
        cp = self.checkpoint
        beyond = self.through_seq + 1 - cp.size
        tail = f"; {beyond:,} newer entries rest on the HMAC chain only" if beyond > 0 else ""
        return f"{head}; signed checkpoint of {cp.size:,} entries, root {cp.root.hex()[:16]}...{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {"ledger_id": self.ledger_id, "path": self.path, "through_seq": self.through_seq,
                "head_mac": self.head_mac, "verified": self.verified, "method": self.method, "summary": self.summary,
                "checkpoint": self.checkpoint.to_dict() if self.checkpoint else None}


@dataclass(frozen=True)
class EvidenceResult:
    item: EvidenceItem
    status: Status
    explanation: str  # why this status, with the numbers
    parameters: Mapping[str, dt.datetime]  # the values of $from / $to the query ran with
    row_count: int  # rows the query returned
    rows: pa.Table  # the first rows of the result, in query order (at most the evaluation's max_rows)
    offending_count: int  # rows failing a row check; 0 for sufficiency checks
    offending: pa.Table  # the first offending rows
    scope_count: int | None = None  # rows of the scope query, when the item has one
    scope_rows: pa.Table | None = None  # the first rows of the scope (the population), in its order
    observed: Mapping[str, Any] = field(default_factory=dict)  # e.g. span_days, min, max
    seconds: float = 0.0

    @property
    def id(self) -> str:
        return self.item.id

    @property
    def sql(self) -> str:
        return self.item.query.sql

    @property
    def rows_truncated(self) -> bool:
        return len(self.rows) < self.row_count

    @property
    def offending_truncated(self) -> bool:
        return len(self.offending) < self.offending_count

    def to_dict(self) -> dict[str, Any]:
        item = self.item
        return {
            "id": item.id, "shows": item.shows, "status": self.status.value, "explanation": self.explanation,
            "rule": item.expect.describe(), "expect": item.expect.to_dict(), "when_empty": item.when_empty.value,
            "empty_note": item.empty_note, "short_note": item.short_note, "sql": item.query.sql, "scope_sql": item.scope.sql if item.scope else None,
            "parameters": {k: utc_text(v) for k, v in self.parameters.items()},
            "row_count": self.row_count, "rows_shown": len(self.rows), "offending_count": self.offending_count,
            "offending_shown": len(self.offending), "scope_count": self.scope_count,
            "scope_rows_shown": None if self.scope_rows is None else len(self.scope_rows),
            "columns": [{"name": f.name, "type": str(f.type)} for f in self.rows.schema],
            "observed": {k: (utc_text(v) if isinstance(v, dt.datetime) else v) for k, v in self.observed.items()},
            "seconds": round(self.seconds, 3), "pack_location": f"{item.query.location.file}:{item.query.location.line}",
        }


@dataclass(frozen=True)
class RequirementResult:
    requirement: Requirement
    status: Status
    explanation: str
    evidence: tuple[EvidenceResult, ...] = ()

    @property
    def id(self) -> str:
        return self.requirement.id

    def to_dict(self) -> dict[str, Any]:
        r = self.requirement
        return {
            "id": r.id, "citation": r.citation, "title": r.title, "paraphrase": r.paraphrase,
            "examiner_asks": list(r.examiner_asks), "coverage": r.coverage, "ask_for": list(r.ask_for),
            "status": self.status.value, "explanation": self.explanation,
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass(frozen=True)
class PackResult:
    pack: Pack
    requested: Period
    applicability: Applicability
    rests_on: RestsOn
    requirements: tuple[RequirementResult, ...]
    evaluated_at: dt.datetime
    seconds: float = 0.0

    @property
    def period(self) -> Period | None:
        """The period the requirements were judged on (None: the pack was not in force)."""
        return self.applicability.evaluated

    def requirement(self, requirement_id: str) -> RequirementResult:
        for r in self.requirements:
            if r.id == requirement_id:
                return r
        raise KeyError(f"pack {self.pack.id} has no requirement {requirement_id!r}")

    def counts(self) -> dict[Status, int]:
        counts = {s: 0 for s in Status}
        for r in self.requirements:
            counts[r.status] += 1
        return counts

    @property
    def gaps(self) -> tuple[RequirementResult, ...]:
        return tuple(r for r in self.requirements if r.status == Status.GAP)

    def headline(self) -> str:
        """One line: how many requirements got which status, gaps first."""
        c = self.counts()
        parts = [f"{c[s]} {s.label}" for s in (Status.GAP, Status.INSUFFICIENT_EVIDENCE, Status.MET,
                                                 Status.NOT_APPLICABLE, Status.OUT_OF_SCOPE) if c[s]]
        return f"{self.pack.id}: {len(self.requirements)} requirements: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "mrm-pack-result/1",
            "pack": self.pack.to_dict(),
            "requested_period": self.requested.to_dict(),
            "applicability": self.applicability.to_dict(),
            "rests_on": self.rests_on.to_dict(),
            "evaluated_at": utc_text(self.evaluated_at),
            "seconds": round(self.seconds, 3),
            "counts": {s.value: n for s, n in self.counts().items()},
            "requirements": [r.to_dict() for r in self.requirements],
        }
