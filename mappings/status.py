"""The five answers a requirement can get. There is no "pass by default": every status is
computed from the ledger's rows or stated by the pack with its reason."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    MET = "met"  # the evidence the pack asks for is there and shows no violation
    GAP = "gap"  # rows that violate the requirement, or required evidence that is missing
    INSUFFICIENT_EVIDENCE = "insufficient_evidence"  # nothing in scope to judge (no inference in the period...)
    NOT_APPLICABLE = "not_applicable"  # the pack says why (not in force in the period, wrong kind of system)
    OUT_OF_SCOPE = "out_of_scope"  # the ledger cannot evidence it; the pack says what to ask for instead

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def evidenced(self) -> bool:
        """Whether this status was decided by the ledger's rows."""
        return self in (Status.MET, Status.GAP, Status.INSUFFICIENT_EVIDENCE)


_LABELS = {
    Status.MET: "met",
    Status.GAP: "GAP",
    Status.INSUFFICIENT_EVIDENCE: "insufficient evidence",
    Status.NOT_APPLICABLE: "not applicable",
    Status.OUT_OF_SCOPE: "outside the ledger",
}

# How statuses of several evidence items combine into one: the first present wins. A found
# violation is the headline; then what could not be judged; "met" only when every item that
# applies is met.
PRECEDENCE = (Status.GAP, Status.INSUFFICIENT_EVIDENCE, Status.MET, Status.NOT_APPLICABLE)


def combine(statuses: list[Status]) -> Status:
    for status in PRECEDENCE:
        if status in statuses:
            return status
    return Status.NOT_APPLICABLE
