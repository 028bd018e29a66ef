"""Forensic questions an examiner asks of the demo ledger, answered with SQL.

Interim: DuckDB directly over the Arrow tables ``ledger.read.read_tables`` returns. A
read-only SQL layer with views (``decisions``, ``registry_history``) and ``mrm reconstruct``
is being built; when it lands, :func:`run_forensic_queries` is the one function to swap —
everything that touches SQL is inside it, and the rest of the demo only sees ``Forensics``.

The questions:

- what each table holds, and which HMAC key MACed which entries (the key rotation);
- every promotion decision, in order;
- the suitability verdicts, and whether any unsuitable recommendation was served (a modify or
  block verdict whose final output is still the model's proposal: must be none);
- the reconstruction of one disputed recommendation (KFCPA Art. 28 access for a dispute, EU AI
  Act Art. 86): who read the customer's data and why, the model version, the input digest, the
  scores and decision, the top attributions, the guardrail verdict, the outcome, and the
  promotion decision that made that version live, with who approved it.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any, Mapping

import duckdb
import pyarrow as pa

from gates.ledger_io import parse_details
from ledger.read import read_tables

# Decisions after which the challenger version serves.
MADE_LIVE = ("bootstrap", "promote", "approve", "force_promote", "rollback")


@dataclass(frozen=True)
class Forensics:
    entries_by_table: dict[str, int]
    entries_by_key: list[dict[str, Any]]  # key_id, entries, first_seq, last_seq
    decisions: list[dict[str, Any]]  # every model_promotion entry, in seq order
    verdicts: dict[str, int]  # guardrail verdict -> requests
    unsuitable_served: int  # modify/block verdicts whose final output is the unsuitable proposal
    served_by_version: dict[str, int]
    disputed_request_id: str
    reconstruction: dict[str, Any]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def run_forensic_queries(ledger_dir: str | os.PathLike[str], disputed_request_id: str | None = None) -> Forensics:
    """Answer the questions in the module docstring. Without ``disputed_request_id`` the
    dispute is the first recommendation the guardrail had to modify that was served by a
    version a human approved (else by any version)."""
    tables: Mapping[str, pa.Table] = read_tables(ledger_dir)
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table)

    def rows(sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        return con.sql(sql, params=params).to_arrow_table().to_pylist() if params else \
            con.sql(sql).to_arrow_table().to_pylist()

    entries_by_table = {name: len(t) for name, t in tables.items()}
    union = " UNION ALL ".join(f"SELECT seq, key_id FROM {name}" for name in tables)
    entries_by_key = rows(f"SELECT key_id, count(*) AS entries, min(seq) AS first_seq, max(seq) AS last_seq "
                          f"FROM ({union}) GROUP BY key_id ORDER BY first_seq")
    decisions = rows("SELECT seq, ts, slot, challenger_version, champion_version, decision, trigger, operator, reason "
                     "FROM model_promotion ORDER BY seq")
    verdicts = {r["verdict"]: r["n"] for r in rows("SELECT verdict, count(*) AS n FROM guardrail GROUP BY verdict")}
    unsuitable_served = rows("SELECT count(*) AS n FROM guardrail WHERE verdict <> 'pass' "
                             "AND final_output IS NOT DISTINCT FROM original_output")[0]["n"]
    served_by_version = {r["model_version"]: r["n"] for r in rows(
        "SELECT model_version, count(*) AS n FROM model_inference GROUP BY model_version ORDER BY min(seq)")}

    if disputed_request_id is None:
        made_live = ", ".join(f"'{d}'" for d in MADE_LIVE)
        candidates = rows(f"""
            WITH live AS (
                SELECT challenger_version AS version, decision, ts AS since,
                       lead(ts) OVER (PARTITION BY slot ORDER BY seq) AS until
                FROM model_promotion WHERE decision IN ({made_live}))
            SELECT g.request_id, live.decision = 'approve' AS approved
            FROM guardrail g JOIN model_inference m USING (request_id)
            JOIN live ON m.model_version = live.version AND m.ts >= live.since
                     AND (live.until IS NULL OR m.ts < live.until)
            WHERE g.verdict = 'modify'
            ORDER BY approved DESC, g.seq LIMIT 1""")
        if not candidates:
            candidates = rows("SELECT request_id FROM model_inference ORDER BY seq LIMIT 1")
        disputed_request_id = candidates[0]["request_id"]

    rid = [disputed_request_id]
    access = rows("SELECT seq, ts, actor, operator, subject_id, dataset, columns, purpose, access_type "
                  "FROM data_access WHERE request_id = ? ORDER BY seq", rid)
    inference = rows("SELECT seq, ts, actor, subject_id, model_slot, model_version, input_digest, scores, decision, "
                     "latency_ms, route FROM model_inference WHERE request_id = ? ORDER BY seq", rid)
    if not inference:
        raise LookupError(f"no model_inference entry for request {disputed_request_id!r}")
    served = inference[-1]
    attribution = rows("SELECT seq, ts, model_version, method, top_features FROM attribution "
                       "WHERE request_id = ? ORDER BY seq", rid)
    guardrail = rows("SELECT seq, ts, gate, verdict, criteria, reason, original_output, final_output FROM guardrail "
                     "WHERE request_id = ? ORDER BY seq", rid)
    outcome = rows("SELECT seq, ts, details FROM operation WHERE event_type = 'outcome' AND correlation_id = ? "
                   "ORDER BY seq DESC LIMIT 1", rid)
    made_live = ", ".join(f"'{d}'" for d in MADE_LIVE)
    live = rows(f"SELECT seq, ts, challenger_version, decision, trigger, operator, reason, champion_version "
                f"FROM model_promotion "
                f"WHERE slot = ? AND challenger_version = ? AND decision IN ({made_live}) AND ts <= ? "
                f"ORDER BY seq DESC LIMIT 1", [served["model_slot"], served["model_version"], served["ts"]])
    gate = rows("SELECT seq, ts, decision, reason FROM model_promotion WHERE slot = ? AND challenger_version = ? "
                "AND decision NOT IN ('approve', 'decline') ORDER BY seq LIMIT 1",
                [served["model_slot"], served["model_version"]])
    for r in inference:
        r["scores"] = dict(r["scores"])
    for r in guardrail:
        r["criteria"] = dict(r["criteria"])
    for r in outcome:
        r["details"] = parse_details(r["details"])
    reconstruction = {
        "request_id": disputed_request_id,
        "subject_id": served["subject_id"],
        "data_access": access,
        "model_inference": inference,
        "attribution": attribution,
        "guardrail": guardrail,
        "outcome": outcome[0] if outcome else None,
        "made_live_by": live[0] if live else None,
        "gate_decision": gate[0] if gate else None,
        "request_seqs": sorted(r["seq"] for part in (access, inference, attribution, guardrail) for r in part),
    }
    con.close()
    return Forensics(entries_by_table, _jsonable(entries_by_key), _jsonable(decisions), verdicts, unsuitable_served,
                     served_by_version, disputed_request_id, _jsonable(reconstruction))
