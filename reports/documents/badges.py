"""Ledger outcomes as status badges: one word and a symbol each, so they read in greyscale.

Shared by every document, so a guardrail verdict or a promotion decision looks the same in
a decision dossier, a validation history and an evidence pack."""

from __future__ import annotations

from typing import Any

from gates.monitors import ALERTED, NOT_JUDGED, OUTSIDE_NOT_ALERTED, WITHIN

from ..model import Status, StatusBadge

__all__ = ["drift_status", "fairness_finding", "passed", "promotion_status", "requirement_status", "verdict_status"]


def verdict_status(verdict: str) -> StatusBadge:
    """A guardrail verdict: pass, modify (the output was changed) or block (nothing served)."""
    return {
        "pass": StatusBadge(Status.PASS, "PASS"),
        "modify": StatusBadge(Status.WARN, "MODIFIED"),
        "block": StatusBadge(Status.FAIL, "BLOCKED"),
    }.get(verdict, StatusBadge(Status.INFO, verdict.upper() or "UNKNOWN"))


def promotion_status(decision: str) -> StatusBadge:
    """A model_promotion decision: what it did to production, in one word."""
    return {
        "promote": StatusBadge(Status.PASS, "PROMOTE"),
        "approve": StatusBadge(Status.PASS, "APPROVE"),
        "bootstrap": StatusBadge(Status.PASS, "BOOTSTRAP"),
        "pending_approval": StatusBadge(Status.INFO, "PENDING APPROVAL"),
        "reject": StatusBadge(Status.FAIL, "REJECT"),
        "decline": StatusBadge(Status.FAIL, "DECLINE"),
        "force_promote": StatusBadge(Status.WARN, "FORCE-PROMOTE"),
        "rollback": StatusBadge(Status.WARN, "ROLLBACK"),
    }.get(decision, StatusBadge(Status.INFO, decision.upper() or "UNKNOWN"))


def passed(value: Any, yes: str = "PASS", no: str = "FAIL") -> StatusBadge:
    """A recorded boolean outcome; anything but true or false is shown as unknown, never as a pass."""
    if value is True:
        return StatusBadge(Status.PASS, yes)
    if value is False:
        return StatusBadge(Status.FAIL, no)
    return StatusBadge(Status.NOT_RUN, "UNKNOWN")


def fairness_finding(finding: str | None) -> StatusBadge:
    """A fairness result under its monitor's breach rule (gates.monitors.FINDINGS)."""
    return {ALERTED: StatusBadge(Status.FAIL, "BREACH, ALERTED"),
            OUTSIDE_NOT_ALERTED: StatusBadge(Status.WARN, "OUTSIDE, NOT ALERTED"),
            WITHIN: StatusBadge(Status.PASS, "FAIR"),
            NOT_JUDGED: StatusBadge(Status.WARN, "TOO FEW")}.get(finding or "", StatusBadge(Status.NOT_RUN, "NOT RECORDED"))


def drift_status(status: Any) -> StatusBadge:
    return {"stable": StatusBadge(Status.PASS, "STABLE"), "moderate_drift": StatusBadge(Status.WARN, "MODERATE"),
            "significant_drift": StatusBadge(Status.FAIL, "SIGNIFICANT")}.get(status, StatusBadge(Status.NOT_RUN, "NOT RECORDED"))


def requirement_status(status: str) -> StatusBadge:
    """A regulation pack's verdict on a requirement or evidence item (mappings.Status values).
    Only a found violation is a failure; what could not be judged is a warning, never a pass."""
    return {
        "met": StatusBadge(Status.PASS, "MET"),
        "gap": StatusBadge(Status.FAIL, "GAP"),
        "insufficient_evidence": StatusBadge(Status.WARN, "INSUFFICIENT EVIDENCE"),
        "not_applicable": StatusBadge(Status.INFO, "NOT APPLICABLE"),
        "out_of_scope": StatusBadge(Status.NOT_RUN, "OUTSIDE THE LEDGER"),
    }.get(status, StatusBadge(Status.INFO, status.upper() or "UNKNOWN"))
