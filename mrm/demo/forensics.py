"""Forensic questions an examiner asks of the demo ledger, answered by the read-only SQL layer
(``forensics``: ``LedgerSQL`` views and macros, ``Reconstructor``).

The questions:

- what each table holds, and which HMAC key MACed which entries (the key rotation);
- every registry transition, and every decision a person made or forced, with the reason;
- the suitability verdicts, and whether any unsuitable recommendation was served (a modify or
  block verdict whose final output is still the model's proposal: must be none);
- the reconstruction of one disputed recommendation (KFCPA Art. 28 access for a dispute, EU AI
  Act Art. 86): who read the customer's data and why, the model version, the input digest, the
  scores and decision, the top attributions, the guardrail verdict, what was served, the
  promotion that made that version live and who approved it, and the outcome that arrived later.

The answers rest on what the public-key verification vouched for: the demo verifies once and
hands that verification to the reader (:class:`AlreadyVerified`), so every answer carries the
same attestation line an examiner would get from ``mrm sql --verify --public-key``.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensics.attestation import Verification
from forensics.reconstruct import Reconstructor
from forensics.session import LedgerSQL
from forensics.source import open_source
from gates.canonical import utc_text
from gates.ledger_io import parse_details
from ledger.schema import TABLE_NAMES


@dataclass(frozen=True)
class AlreadyVerified:
    """A :class:`forensics.Verifier` that reports a verification made moments before on
    the same, closed ledger, so it is not run twice."""

    verification: Verification

    @property
    def method(self) -> str:
        return self.verification.method

    def __call__(self, path: Path) -> Verification:
        return self.verification


@dataclass(frozen=True)
class Forensics:
    attestation: str  # what the answers rest on, one line
    entries_by_table: dict[str, int]
    entries_by_key: list[dict[str, Any]]  # key_id, entries, first_seq, last_seq
    registry_history: list[dict[str, Any]]  # every registry transition
    manual_decisions: list[dict[str, Any]]  # approvals, declines, force-promotes, with operator and reason
    verdicts: dict[str, int]  # guardrail verdict -> requests
    unsuitable_served: int  # modify/block verdicts whose final output is the unsuitable proposal
    served_by_version: dict[str, int]
    disputed_request_id: str
    reconstruction: dict[str, Any]  # the decision record (forensics) plus its late outcome
    reconstruction_text: str


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return utc_text(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def run_forensic_queries(ledger_dir: str | os.PathLike[str], verification: Verification | None = None,
                         disputed_request_id: str | None = None) -> Forensics:
    """Answer the questions in the module docstring. Without ``disputed_request_id`` the
    dispute is the first recommendation the guardrail had to change that was served by a
    version a human approved (else by any version)."""
    source = open_source(ledger_dir, AlreadyVerified(verification) if verification is not None else None)
    with LedgerSQL(source) as sql:
        def rows(text: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
            return _jsonable(sql.query(text, params).to_pylist())

        entries_by_table = {t: rows(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in TABLE_NAMES}
        union = " UNION ALL ".join(f"SELECT seq, key_id FROM {t}" for t in TABLE_NAMES)
        entries_by_key = rows(f"SELECT key_id, count(*) AS entries, min(seq) AS first_seq, max(seq) AS last_seq "
                              f"FROM ({union}) GROUP BY key_id ORDER BY first_seq")
        history = rows("SELECT seq, ts, slot, version, from_state, to_state, cause, trigger, operator, reason "
                       "FROM registry_history ORDER BY seq, version")
        manual = rows("SELECT seq, ts, decision, challenger_version, operator, reason FROM manual_overrides() "
                      "ORDER BY seq")
        verdicts = {r["verdict"]: r["n"] for r in rows("SELECT verdict, count(*) AS n FROM guardrail GROUP BY verdict")}
        unsuitable_served = rows("SELECT count(*) AS n FROM guardrail WHERE verdict <> 'pass' "
                                 "AND final_output IS NOT DISTINCT FROM original_output")[0]["n"]
        served_by_version = {r["model_version"]: r["n"] for r in rows(
            "SELECT model_version, count(*) AS n FROM model_inference GROUP BY model_version ORDER BY min(seq)")}
        if disputed_request_id is None:
            disputed_request_id = _pick_dispute(rows)
        outcome = rows("SELECT seq, ts, details FROM operation WHERE event_type = 'outcome' AND correlation_id = ? "
                       "ORDER BY seq DESC LIMIT 1", [disputed_request_id])
        attestation = sql.attestation.line()
    with Reconstructor(source) as reconstructor:
        record = reconstructor.reconstruct(request_id=disputed_request_id)
    late = outcome[0] if outcome else None
    if late is not None:
        late["details"] = parse_details(late["details"])
    reconstruction = {"decision": _jsonable(record.to_dict()), "outcome": late}
    return Forensics(attestation, entries_by_table, entries_by_key, history, manual, verdicts, unsuitable_served,
                     served_by_version, disputed_request_id, reconstruction, record.to_text())


def _pick_dispute(rows) -> str:
    """A customer complains about a recommendation the suitability rule changed: the first such
    one served by a human-approved version, else the first such one, else the first request."""
    found = rows("""
        SELECT g.request_id FROM guardrail g JOIN model_inference m USING (request_id)
        JOIN production_periods p ON p.slot = m.model_slot AND p.version = m.model_version
             AND m.ts >= p.live_from AND (p.live_until IS NULL OR m.ts < p.live_until)
        WHERE g.verdict = 'modify'
        ORDER BY p.promotion_decision = 'approve' DESC, g.seq LIMIT 1""")
    if not found:
        found = rows("SELECT request_id FROM model_inference ORDER BY seq LIMIT 1")
    return found[0]["request_id"]
