"""Typed links between entries, checked when the entry that carries them is written.

An examiner should not need free text to find which alert a force-promote answered or which
override a committee review is about. Two links carry that, each a sequence number in the
writing entry's ``details`` (gates/details.py documents both):

``responds_to_seq``  on a force-promote or rollback (model_promotion): the monitor_alert
                     entry of the same slot it responds to;
``reviews_seq``      on an override_review (operation): the manual model_promotion entry
                     (force-promote, sign-off, manual rollback) the committee reviewed.

A link that names no such entry is refused with :class:`BadLink` (an input error: nothing
is written). The SQL views ``alert_responses`` and ``override_reviews`` (forensics)
join on these links.
"""

from __future__ import annotations

from typing import Any, Mapping

import pyarrow.compute as pc

from gates.decision import GateInputError
from gates.ledger_io import LedgerSource, as_snapshot, parse_details
from ledger.read import read_table

MONITOR_ALERT = "monitor_alert"
OVERRIDE_REVIEW = "override_review"


class BadLink(GateInputError):
    """A link names no entry of the kind it must name; nothing was written."""


def _entry(source: LedgerSource, table: str, seq: int, field: str) -> dict[str, Any]:
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise BadLink(f"{field}: {seq!r} is not a sequence number")
    snap = as_snapshot(source)
    if not 0 <= seq <= snap.last_seq:
        raise BadLink(f"{field} {seq}: the ledger's entries run from 0 to {snap.last_seq}")
    rows = read_table(snap, table)
    found = rows.filter(pc.equal(rows.column("seq"), seq)).drop_columns(["mac"]).to_pylist()
    if not found:
        raise BadLink(f"{field} {seq}: entry {seq} is not a {table} entry")
    row = found[0]
    row["details"] = parse_details(row.get("details"))
    return row


def monitor_alert(source: LedgerSource, seq: int, *, slot: str) -> dict[str, Any]:
    """The monitor_alert entry ``seq`` of ``slot`` that a force-promote or rollback responds
    to, or BadLink."""
    row = _entry(source, "operation", seq, "responds_to_seq")
    if row["event_type"] != MONITOR_ALERT:
        raise BadLink(f"responds_to_seq {seq}: entry {seq} is a {row['event_type']} operation, not a {MONITOR_ALERT}")
    alert_slot = row["details"].get("slot")
    if alert_slot != slot:
        raise BadLink(f"responds_to_seq {seq}: the alert is about slot {alert_slot!r}, not {slot!r}")
    return row


def reviewed_override(source: LedgerSource, seq: int) -> dict[str, Any]:
    """The manual model_promotion entry ``seq`` a committee review is about, or BadLink."""
    row = _entry(source, "model_promotion", seq, "reviews_seq")
    if row["trigger"] != "manual":
        raise BadLink(f"reviews_seq {seq}: entry {seq} is a {row['decision']} by the gate (trigger "
                      f"{row['trigger']}), not a person's decision; only a manual decision is reviewed as an override")
    return row


def review_entry(override: Mapping[str, Any], *, outcome: str, reviewer: str, note: str) -> dict[str, Any]:
    """Keyword arguments of the override_review operation entry reviewing ``override``."""
    return {
        "event_type": OVERRIDE_REVIEW, "component": "committee", "status": outcome,
        "correlation_id": f"{override['slot']}/{override['challenger_version']}",
        "details": {"slot": override["slot"], "reviews_seq": override["seq"], "decision": override["decision"],
                    "version": override["challenger_version"], "operator": override["operator"],
                    "outcome": outcome, "reviewer": reviewer, "note": note},
    }
