"""The coverage matrix: every requirement of every pack against its status, on one ledger."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any, Sequence

from .result import PackResult
from .status import Status

COLUMNS = (Status.MET, Status.GAP, Status.INSUFFICIENT_EVIDENCE, Status.NOT_APPLICABLE, Status.OUT_OF_SCOPE)
_SHORT = {Status.MET: "met", Status.GAP: "gap", Status.INSUFFICIENT_EVIDENCE: "insuff.",
          Status.NOT_APPLICABLE: "n/a", Status.OUT_OF_SCOPE: "outside"}


@dataclass(frozen=True)
class CoverageMatrix:
    results: tuple[PackResult, ...]

    def counts(self) -> dict[str, dict[Status, int]]:
        return {r.pack.id: r.counts() for r in self.results}

    def totals(self) -> dict[Status, int]:
        out = {s: 0 for s in Status}
        for r in self.results:
            for s, n in r.counts().items():
                out[s] += n
        return out

    @property
    def has_gaps(self) -> bool:
        return any(r.gaps for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        first = self.results[0] if self.results else None
        return {
            "format": "mrm-coverage-matrix/1",
            "requested_period": first.requested.to_dict() if first else None,
            "rests_on": first.rests_on.to_dict() if first else None,
            "totals": {s.value: n for s, n in self.totals().items()},
            "packs": [
                {
                    "id": r.pack.id, "title": r.pack.title, "pack_version": r.pack.pack_version,
                    "applicability": r.applicability.to_dict(),
                    "counts": {s.value: n for s, n in r.counts().items()},
                    "requirements": [
                        {"id": q.id, "citation": q.requirement.citation, "title": q.requirement.title,
                         "status": q.status.value, "explanation": q.explanation}
                        for q in r.requirements
                    ],
                }
                for r in self.results
            ],
        }

    def to_text(self, width: int = 100) -> str:
        if not self.results:
            return "no packs evaluated"
        first = self.results[0]
        lines = [f"period {first.requested}", first.rests_on.line, ""]
        head = f"{'pack':<22} {'in force':<19}" + "".join(f"{_SHORT[s]:>9}" for s in COLUMNS)
        lines += [head, "-" * len(head)]
        for r in self.results:
            c = r.counts()
            state = r.applicability.state.value.replace("_", " ") + (" *" if r.applicability.as_if_in_force else "")
            lines.append(f"{r.pack.id:<22} {state:<19}" + "".join(f"{c[s]:>9}" for s in COLUMNS))
        t = self.totals()
        lines.append(f"{'all packs':<42}" + "".join(f"{t[s]:>9}" for s in COLUMNS))
        if any(r.applicability.as_if_in_force for r in self.results):
            lines.append("* judged as if in force (readiness assessment)")
        for r in self.results:
            lines += ["", f"{r.pack.id}: {r.pack.title}", *_wrap(r.applicability.note, width, "  ")]
            for q in r.requirements:
                label = q.status.label
                lines.append(f"  {label:<22} {q.id:<28} {q.requirement.citation}")
                if q.status in (Status.GAP, Status.INSUFFICIENT_EVIDENCE):
                    lines += _wrap(q.explanation, width, " " * 25)
        return "\n".join(lines)


def coverage_matrix(results: Sequence[PackResult]) -> CoverageMatrix:
    return CoverageMatrix(tuple(results))


def _wrap(text: str, width: int, indent: str) -> list[str]:
    short = text if len(text) <= 400 else text[:397] + "..."
    return textwrap.wrap(short, width=width, initial_indent=indent, subsequent_indent=indent) or [indent]
