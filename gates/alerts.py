"""Alert records from monitors and rollback triggers, shaped to become ``operation`` entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# What an alert asks for. Drift never deploys anything: the most it does is propose a retrain,
# whose challenger still has to pass the gate.
NONE, INVESTIGATE, PROPOSE_RETRAIN, PROPOSE_ROLLBACK, ROLLBACK = (
    "none", "investigate", "propose_retrain", "propose_rollback", "rollback")


@dataclass(frozen=True)
class Alert:
    monitor: str  # e.g. "fairness.disparate_impact", "drift.psi", "online.rollback"
    slot: str
    version: str
    status: str  # e.g. "breach", "insufficient_data", "moderate_drift", "significant_drift"
    action: str
    summary: str  # one human sentence
    measurements: Mapping[str, Any] = field(default_factory=dict)

    def to_operation_entry(self, correlation_id: str | None = None) -> dict[str, Any]:
        """Keyword arguments of an ``operation`` ledger entry (event_type monitor_alert)."""
        return {
            "event_type": "monitor_alert",
            "component": f"gates.{self.monitor}",
            "status": self.status,
            "correlation_id": correlation_id,
            "details": {
                "slot": self.slot,
                "version": self.version,
                "action": self.action,
                "summary": self.summary,
                "measurements": dict(self.measurements),
            },
        }
