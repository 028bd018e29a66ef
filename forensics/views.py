"""The SQL vocabulary of `mrm sql`: views over the seven tables, the derived views and the
macros for common forensic questions. Every object is documented here, once; `.tables` in
the shell and the README's "SQL forensics" section describe the same list.

Raw inputs, registered by the session before these are created:

    mrm_raw_<table>       each audit table as an Arrow dataset (listed files + unsealed log)
    mrm_production        forensics.registry PRODUCTION_SCHEMA (periods a version was production)
    mrm_registry_history  forensics.registry HISTORY_SCHEMA
    mrm_registry_problems forensics.registry PROBLEM_SCHEMA
    mrm_ledger_files      one row per listed file
    mrm_ledger_info       one row: what the answers rest on
    mrm_ledger_retention  one row: what the store keeps under a retention lock (forensics.retention)
    mrm_ledger_retention_objects  one row per evidence object the store lists, with its lock
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.schema import TABLE_NAMES, TABLES

from .change_views import PRODUCTION_CHANGES_DOC, PRODUCTION_CHANGES_SQL


@dataclass(frozen=True)
class SqlObject:
    name: str
    kind: str  # "view" or "macro"
    signature: str  # how to call it
    doc: str  # what it holds, columns included
    sql: str

    @property
    def summary(self) -> str:
        """The doc up to its column list."""
        return self.doc.split(": ", 1)[0] if self.kind == "view" else self.doc


# Timestamps given to macros as text ('2025-09-01T00:00:00Z') or TIMESTAMPTZ; NULL = open.
_SINCE = "ts >= coalesce(CAST(since AS TIMESTAMPTZ), '-infinity'::TIMESTAMPTZ)"
_UNTIL = "ts <= coalesce(CAST(until AS TIMESTAMPTZ), 'infinity'::TIMESTAMPTZ)"


def _window(alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return f"{prefix}{_SINCE} AND {prefix}{_UNTIL}"


def _table_view(table: str) -> SqlObject:
    spec = TABLES[table]
    columns = []
    for c in spec.columns:
        if c.name == "details":
            columns.append("CAST(details AS JSON) AS details")
        elif c.name == "mac":
            columns.append("lower(hex(mac)) AS mac")
        else:
            columns.append(f'"{c.name}"')
    body = ", ".join(c.name for c in spec.columns[5:-2])
    return SqlObject(
        table,
        "view",
        table,
        f"every {table} entry: seq, table_name, ts, actor, key_id, {body}, details (JSON), mac (hex)",
        f"CREATE VIEW {table} AS SELECT {', '.join(columns)} FROM mrm_raw_{table}",
    )


def _body_json(table: str) -> str:
    names = [c.name for c in TABLES[table].columns[5:-2]]
    return "to_json({" + ", ".join(f"'{n}': \"{n}\"" for n in names) + "})"


_ENTRIES = "\nUNION ALL\n".join(
    f"SELECT seq, table_name, ts, actor, key_id, {_body_json(t)} AS body, details, mac FROM {t}" for t in TABLE_NAMES
)

# How the view is written matters at ten million requests (measured on two cores):
# - each per-request list is sorted after aggregating (list_sort; seq is every struct's first
#   field and unique, so the order is by seq): DuckDB's ordered aggregate, list(... ORDER BY
#   seq), took 40 s per table against 17 s;
# - served_output is its own aggregate (the last verdict's final_output), so reading it never
#   builds the guardrail lists;
# - the production period is matched with one range predicate, coalesce(live_until,
#   infinity): with "live_until IS NULL OR ..." DuckDB filtered every candidate pair after the
#   hash join (6.4 s against 1.9 s).
# DuckDB drops the one unused LEFT JOIN at the top of a plan but not the others, so a query
# over this view pays for the three per-request aggregations whatever columns it reads
# (about 15 s at ten million requests). Checks over every decision of a period are written
# against the base tables instead (see the built-in packs): an anti-join costs a few seconds.
#
# Lookups: DuckDB carries "WHERE request_id = ..." on the view through the joins into every
# table's scan, so decision_of is the view filtered. A subject's requests are not known to
# the other tables, so subject_decisions restricts each of them to those requests (a
# semi-join) *before* the per-request lists are built; filtering the view by subject built
# them for every request first (SELECT * at ten million requests: 82 s, now 21 s). Either
# way the scans remain: the tables reach DuckDB as Arrow datasets (it holds no path into the
# ledger), pruned by row-group statistics but not Bloom filters, so a lookup reads each
# table's columns in full. `mrm reconstruct` uses the side key index instead (tens of ms).
def _decisions_query(requests: str = "TRUE", inferences: str = "TRUE") -> str:
    """The decisions rows of the requests whose request_id satisfies ``requests`` (a
    condition on a table's own columns) and whose model_inference satisfies ``inferences``."""
    return f"""
WITH access AS (
    SELECT request_id,
           list_sort(list({{'seq': seq, 'ts': ts, 'operator': operator, 'dataset': dataset, 'columns': columns,
                           'purpose': purpose, 'access_type': access_type, 'row_count': row_count}})) AS data_access
    FROM data_access WHERE request_id IS NOT NULL AND {requests} GROUP BY request_id
), attr AS (
    SELECT request_id,
           list_sort(list({{'seq': seq, 'ts': ts, 'method': method, 'model_version': model_version,
                           'top_features': top_features}})) AS attributions
    FROM attribution WHERE {requests} GROUP BY request_id
), guard AS (
    SELECT request_id,
           list_sort(list({{'seq': seq, 'ts': ts, 'gate': gate, 'verdict': verdict, 'criteria': criteria, 'reason': reason,
                           'original_output': original_output, 'final_output': final_output}})) AS guardrails,
           arg_max_null(final_output, seq) AS served_output,
           max(CASE verdict WHEN 'block' THEN 2 WHEN 'modify' THEN 1 ELSE 0 END) AS severity
    FROM guardrail WHERE {requests} GROUP BY request_id
)
SELECT
    i.request_id, i.subject_id, i.ts, i.seq AS inference_seq, i.key_id AS inference_key_id,
    i.model_slot, i.model_version, i.route, i.input_digest, i.decision AS model_output, i.scores, i.latency_ms,
    g.served_output,
    CASE g.severity WHEN 2 THEN 'block' WHEN 1 THEN 'modify' WHEN 0 THEN 'pass' END AS guardrail_verdict,
    list_distinct([x.operator FOR x IN a.data_access]) AS accessed_by,
    a.data_access,
    list_filter(t.attributions, lambda x: x.model_version = i.model_version)[1].top_features AS top_features,
    t.attributions,
    g.guardrails,
    c.version AS champion_version,
    CASE WHEN c.version = i.model_version THEN c.promotion_seq END AS promotion_seq
FROM (SELECT * FROM model_inference WHERE {requests} AND {inferences}) i
LEFT JOIN access a ON a.request_id = i.request_id
LEFT JOIN attr t ON t.request_id = i.request_id
LEFT JOIN guard g ON g.request_id = i.request_id
LEFT JOIN production_periods c
       ON c.slot = i.model_slot AND c.live_from <= i.ts AND i.ts < coalesce(c.live_until, 'infinity'::TIMESTAMPTZ)
""".strip()


_DECISIONS = "CREATE VIEW decisions AS\n" + _decisions_query()
_SUBJECT_REQUESTS = f"(SELECT request_id FROM model_inference WHERE subject_id = subject AND {_window()})"
_SUBJECT_DECISIONS = (
    "CREATE MACRO subject_decisions(subject, since := NULL, until := NULL) AS TABLE\n"
    f"SELECT * FROM ({_decisions_query(requests=f'request_id IN {_SUBJECT_REQUESTS}', inferences=f'subject_id = subject AND {_window()}')}) "
    "ORDER BY ts, inference_seq"
)

_SUBJECT_TIMELINE = f"""
CREATE MACRO subject_timeline(subject, since := NULL, until := NULL) AS TABLE
WITH requests AS MATERIALIZED (
    SELECT request_id FROM model_inference WHERE subject_id = subject AND {_window()}
    UNION
    SELECT request_id FROM data_access WHERE subject_id = subject AND request_id IS NOT NULL AND {_window()}
)
SELECT * FROM (
    SELECT ts, seq, table_name, request_id, actor, key_id,
           format('{{}} {{}} {{}} [{{}}] for {{}}', operator, access_type, dataset, array_to_string(columns, ', '), purpose) AS summary,
           {_body_json('data_access')} AS entry
    FROM data_access WHERE subject_id = subject AND {_window()}
    UNION ALL
    SELECT ts, seq, table_name, request_id, actor, key_id,
           format('{{}} {{}} -> {{}}{{}}', model_slot, model_version, decision, coalesce(' (' || route || ')', '')) AS summary,
           {_body_json('model_inference')} AS entry
    FROM model_inference WHERE subject_id = subject AND {_window()}
    UNION ALL
    SELECT ts, seq, table_name, request_id, actor, key_id,
           method || ': ' || array_to_string([f.feature || ' ' || printf('%+.4g', f.contribution) FOR f IN top_features], ', ') AS summary,
           {_body_json('attribution')} AS entry
    FROM attribution WHERE request_id IN (SELECT request_id FROM requests)
    UNION ALL
    SELECT ts, seq, table_name, request_id, actor, key_id,
           format('{{}} {{}}: {{}} -> {{}}{{}}', gate, verdict, coalesce(original_output, '-'), coalesce(final_output, '(nothing served)'),
                  coalesce(' (' || reason || ')', '')) AS summary,
           {_body_json('guardrail')} AS entry
    FROM guardrail WHERE request_id IN (SELECT request_id FROM requests)
) ORDER BY seq
"""

_CHECKS = """[{"name": "VARCHAR", "passed": "BOOLEAN", "detail": "VARCHAR"}]"""

OBJECTS: tuple[SqlObject, ...] = (
    *(_table_view(t) for t in TABLE_NAMES),
    SqlObject(
        "entries",
        "view",
        "entries",
        "every entry of every table: seq, table_name, ts, actor, key_id, body (JSON of the table's own columns), details, mac",
        f"CREATE VIEW entries AS\n{_ENTRIES}",
    ),
    SqlObject(
        "production_periods",
        "view",
        "production_periods",
        "each period a model version was production in its slot (derived by gates.registry): slot, version, live_from, live_until (NULL: still live), "
        "promotion_seq, promotion_decision, promotion_trigger, promotion_operator, promotion_actor, promotion_reason, "
        "ended_by_seq, ended_by_decision",
        "CREATE VIEW production_periods AS SELECT * FROM mrm_production",
    ),
    SqlObject(
        "registry_history",
        "view",
        "registry_history",
        "every registry state transition (derived by gates.registry): seq (of the causing entry), ts, slot, version, "
        "from_state, to_state, cause, trigger, operator, actor, reason",
        "CREATE VIEW registry_history AS SELECT * FROM mrm_registry_history",
    ),
    SqlObject("production_changes", "view", "production_changes", PRODUCTION_CHANGES_DOC, PRODUCTION_CHANGES_SQL),
    SqlObject(
        "registry_problems",
        "view",
        "registry_problems",
        "entries the registry refused (stale or out-of-order decisions): seq, ts, table_name, message",
        "CREATE VIEW registry_problems AS SELECT * FROM mrm_registry_problems",
    ),
    SqlObject(
        "decisions",
        "view",
        "decisions",
        "one row per model_inference request, joined with its data access, attributions and guardrail verdicts: request_id, subject_id, ts, inference_seq, inference_key_id, model_slot, "
        "model_version, route, input_digest, model_output, scores, latency_ms, served_output (the last guardrail's "
        "final_output; NULL when blocked or when no guardrail was recorded), guardrail_verdict (worst of block/modify/pass), "
        "accessed_by, data_access, top_features, attributions, guardrails, champion_version (the slot's production "
        "version at ts), promotion_seq (the entry that made model_version production; NULL if it was not production)",
        _DECISIONS.strip(),
    ),
    SqlObject(
        "model_versions",
        "view",
        "model_versions",
        "every registered model version (model_registered entries): slot, version, feature_schema_digest (the "
        "feature schema it was trained on), evaluation_digest, registered_at, registered_seq, registered_by "
        "(the entry's actor), state (its registry state now)",
        "CREATE VIEW model_versions AS\n"
        "SELECT r.details ->> '$.slot' AS slot, r.details ->> '$.version' AS version,\n"
        # entries before the top-level field carry the digest in their lineage only
        "       coalesce(r.details ->> '$.feature_schema_digest', r.details ->> '$.lineage.feature_schema_digest') "
        "AS feature_schema_digest,\n"
        "       r.details ->> '$.evaluation_digest' AS evaluation_digest, r.ts AS registered_at, r.seq AS registered_seq,\n"
        "       r.actor AS registered_by, h.state\n"
        "FROM operation r\n"
        "LEFT JOIN (SELECT slot, version, arg_max(to_state, seq) AS state FROM registry_history GROUP BY slot, version) h\n"
        "       ON h.slot = r.details ->> '$.slot' AND h.version = r.details ->> '$.version'\n"
        "WHERE r.event_type = 'model_registered'",
    ),
    SqlObject(
        "evaluations",
        "view",
        "evaluations",
        "every verdict of the promotion ladder (promote, reject, pending_approval, bootstrap), the challenger's "
        "metrics next to the champion's on the same holdout: seq, ts, slot, decision, stage, challenger_version, "
        "champion_version, challenger_metrics, champion_metrics (JSON: {task: {metric: value}}), holdout_digest, "
        "same_holdout, challenger_schema_digest, champion_schema_digest, reason, failing_checks (names), "
        "comparison, significance",
        "CREATE VIEW evaluations AS\n"
        "SELECT seq, ts, slot, decision, details ->> '$.stage' AS stage, challenger_version, champion_version,\n"
        # gate_format 1 entries have no details.evaluated: read the inline evaluations instead
        "       coalesce(details -> '$.evaluated.challenger.metrics', details -> '$.replay.challenger.metrics') "
        "AS challenger_metrics,\n"
        "       coalesce(details -> '$.evaluated.champion.metrics', details -> '$.replay.champion.metrics') "
        "AS champion_metrics,\n"
        "       coalesce(details ->> '$.evaluated.challenger.holdout_digest', details ->> '$.replay.challenger.holdout.digest') "
        "AS holdout_digest,\n"
        "       CAST(details ->> '$.evaluated.same_holdout' AS BOOLEAN) AS same_holdout,\n"
        "       coalesce(details ->> '$.evaluated.challenger.feature_schema_digest', "
        "details ->> '$.replay.challenger.lineage.feature_schema_digest') AS challenger_schema_digest,\n"
        "       coalesce(details ->> '$.evaluated.champion.feature_schema_digest', "
        "details ->> '$.replay.champion.lineage.feature_schema_digest') AS champion_schema_digest,\n"
        "       reason,\n"
        f"       [c.name FOR c IN coalesce(try(from_json(details -> '$.checks', '{_CHECKS}')), []) IF c.passed IS NOT TRUE] "
        "AS failing_checks,\n"
        "       comparison, significance\n"
        "FROM model_promotion WHERE details ->> '$.replay.kind' = 'gate'",
    ),
    SqlObject(
        "override_reviews",
        "view",
        "override_reviews",
        "every committee review of a person's decision (override_review entries, linked by details.reviews_seq): "
        "review_seq, reviewed_at, override_seq, override_at, slot, decision, version, operator, reviewer, outcome, note",
        "CREATE VIEW override_reviews AS\n"
        "SELECT r.seq AS review_seq, r.ts AS reviewed_at, CAST(r.details ->> '$.reviews_seq' AS BIGINT) AS override_seq,\n"
        "       m.ts AS override_at, m.slot, m.decision, m.challenger_version AS version, m.operator,\n"
        "       r.details ->> '$.reviewer' AS reviewer, r.details ->> '$.outcome' AS outcome, r.details ->> '$.note' AS note\n"
        "FROM operation r LEFT JOIN model_promotion m ON m.seq = CAST(r.details ->> '$.reviews_seq' AS BIGINT)\n"
        "WHERE r.event_type = 'override_review'",
    ),
    SqlObject(
        "alert_responses",
        "view",
        "alert_responses",
        "every monitor alert with each entry that responded to it, one row per response: a decision (linked by "
        "details.responds_to_seq; an automatic rollback's recorded alert) or a retrain proposal (details.alert_seqs): "
        "alert_seq, alert_at, slot, monitor, alert_status, action, response_seq, responded_at, response (force_promote, "
        "rollback, retrain_proposal), version, operator, trigger, decided_by (the operator, or for an automatic "
        "response the monitor: 'monitor online.rollback (automatic)'), delay_seconds; the response columns are NULL "
        "when nothing responded",
        "CREATE VIEW alert_responses AS\n"
        "WITH responses AS (\n"
        "  SELECT coalesce(CAST(details ->> '$.responds_to_seq' AS BIGINT), CAST(details ->> '$.replay.alert.seq' AS BIGINT))\n"
        "         AS alert_seq, seq, ts, decision AS response, challenger_version AS version, operator, trigger,\n"
        "         coalesce(operator, 'monitor ' || (details ->> '$.replay.alert.monitor') || ' (automatic)') AS decided_by\n"
        "  FROM model_promotion\n"
        "  UNION ALL\n"
        "  SELECT CAST(a.alert_seq AS BIGINT), r.seq, r.ts, r.event_type, r.details ->> '$.version', NULL, 'auto',\n"
        "         replace(r.component, 'gates.monitor.', 'monitor ') || ' (automatic)'\n"
        "  FROM operation r, unnest(CAST(r.details -> '$.alert_seqs' AS BIGINT[])) AS a(alert_seq)\n"
        "  WHERE r.event_type = 'retrain_proposal'\n"
        ")\n"
        "SELECT a.seq AS alert_seq, a.ts AS alert_at, a.details ->> '$.slot' AS slot, a.component AS monitor,\n"
        "       a.status AS alert_status, a.details ->> '$.action' AS action,\n"
        "       p.seq AS response_seq, p.ts AS responded_at, p.response, p.version, p.operator, p.trigger, p.decided_by,\n"
        "       epoch(p.ts) - epoch(a.ts) AS delay_seconds\n"
        "FROM operation a\n"
        "LEFT JOIN responses p ON p.alert_seq = a.seq\n"
        "WHERE a.event_type = 'monitor_alert'",
    ),
    SqlObject(
        "ledger_files",
        "view",
        "ledger_files",
        "the files the answers are read from, as the manifest lists them: first_seq, last_seq, table_name, path, rows, "
        "bytes, sha256, key_id (the write-ahead log's unsealed entries have path NULL)",
        "CREATE VIEW ledger_files AS SELECT * FROM mrm_ledger_files",
    ),
    SqlObject(
        "ledger_info",
        "view",
        "ledger_info",
        "what the answers rest on, one row: ledger_id, path, through_seq, head_mac, verified, method, summary",
        "CREATE VIEW ledger_info AS SELECT * FROM mrm_ledger_info",
    ),
    SqlObject(
        "ledger_retention",
        "view",
        "ledger_retention",
        "what the ledger's store keeps under a retention lock, read from the store itself when the session opened, one row: "
        "store_kind ('directory': no lock, the other columns NULL but retain_days; 'object storage'), retain_days "
        "(the policy in LEDGER.json; NULL: none), evidence_objects (what a retention policy must keep: LEDGER.json, "
        "segment files, manifest records, checkpoints), retained (locked until a future date), not_retained, "
        "earliest_retain_until, latest_retain_until, mode (the lock modes, e.g. COMPLIANCE), summary",
        "CREATE VIEW ledger_retention AS SELECT * FROM mrm_ledger_retention",
    ),
    SqlObject(
        "ledger_retention_objects",
        "view",
        "ledger_retention_objects",
        "each evidence object the store lists (none on a directory): key, kind (ledger metadata, segment file, "
        "manifest record, checkpoint), first_seq, last_seq (the sealed segment whose entries it holds or vouches "
        "for; NULL for LEDGER.json), retain_until (NULL: no lock), retained (locked until a future date), mode",
        "CREATE VIEW ledger_retention_objects AS SELECT * FROM mrm_ledger_retention_objects",
    ),
    SqlObject(
        "champion_at",
        "macro",
        "champion_at(slot, ts)",
        "the production version of a slot at an instant (events at that instant included), with the promotion that made it live",
        "CREATE MACRO champion_at(slot_name, at_ts) AS TABLE SELECT * FROM production_periods "
        "WHERE slot = slot_name AND live_from <= CAST(at_ts AS TIMESTAMPTZ) "
        "AND (live_until IS NULL OR CAST(at_ts AS TIMESTAMPTZ) < live_until)",
    ),
    SqlObject(
        "decision_of",
        "macro",
        "decision_of(request_id)",
        "the decisions row of one request",
        "CREATE MACRO decision_of(rid) AS TABLE SELECT * FROM decisions WHERE request_id = rid",
    ),
    SqlObject(
        "subject_decisions",
        "macro",
        "subject_decisions(subject_id, since := NULL, until := NULL)",
        "the decisions rows of one subject in a time window, oldest first",
        _SUBJECT_DECISIONS,
    ),
    SqlObject(
        "subject_timeline",
        "macro",
        "subject_timeline(subject_id, since := NULL, until := NULL)",
        "everything about one subject in a time window, in sequence order: data access, inferences, and the "
        "attributions and guardrail verdicts of those requests; columns ts, seq, table_name, request_id, actor, "
        "key_id, summary, entry (JSON)",
        _SUBJECT_TIMELINE.strip(),
    ),
    SqlObject(
        "manual_overrides",
        "macro",
        "manual_overrides(since := NULL, until := NULL)",
        "every promotion decision a person made or forced (trigger = 'manual': force_promote, approve, decline, "
        "manual rollback...), with operator and reason; skipped_checks (a force-promote's: the checks the ladder "
        "would have run), responds_to_seq (the alert it answers), review_seqs (the override_review entries of it)",
        f"CREATE MACRO manual_overrides(since := NULL, until := NULL) AS TABLE "
        f"SELECT ts, seq, slot, decision, challenger_version, champion_version, operator, actor, reason, key_id, mac, "
        f"CAST(details -> '$.skipped_checks' AS VARCHAR[]) AS skipped_checks, "
        f"CAST(details ->> '$.responds_to_seq' AS BIGINT) AS responds_to_seq, "
        f"coalesce((SELECT list_sort(list(r.seq)) FROM operation r WHERE r.event_type = 'override_review' "
        f"AND CAST(r.details ->> '$.reviews_seq' AS BIGINT) = model_promotion.seq), []) AS review_seqs "
        f"FROM model_promotion WHERE trigger = 'manual' AND {_window()} ORDER BY seq",
    ),
    SqlObject(
        "rejections",
        "macro",
        "rejections(since := NULL, until := NULL)",
        "every reject or decline with its failing checks (details.checks that did not pass), failing metric "
        "comparisons and tests that were not significant",
        f"CREATE MACRO rejections(since := NULL, until := NULL) AS TABLE "
        f"SELECT ts, seq, slot, decision, challenger_version, champion_version, trigger, operator, reason, "
        # a check whose outcome cannot be read counts as failing: surface it, never hide it
        f"list_filter(coalesce(try(from_json(details -> '$.checks', '{_CHECKS}')), []), lambda c: c.passed IS NOT TRUE) AS failing_checks, "
        f"list_filter(coalesce(comparison, []), lambda c: c.passed IS NOT TRUE) AS failing_comparisons, "
        f"list_filter(coalesce(significance, []), lambda s: s.significant IS NOT TRUE) AS not_significant "
        f"FROM model_promotion WHERE decision IN ('reject', 'decline') AND {_window()} ORDER BY seq",
    ),
    SqlObject(
        "guardrail_interventions",
        "macro",
        "guardrail_interventions(since := NULL, until := NULL)",
        "every guardrail verdict other than pass (what was proposed, what was served, why), with the request's subject",
        f"CREATE MACRO guardrail_interventions(since := NULL, until := NULL) AS TABLE "
        f"SELECT g.ts, g.seq, g.request_id, i.subject_id, g.gate, g.verdict, g.reason, g.original_output, g.final_output, "
        f"g.criteria, g.key_id, g.mac FROM guardrail g LEFT JOIN model_inference i ON i.request_id = g.request_id "
        f"WHERE g.verdict <> 'pass' AND {_window('g')} ORDER BY g.seq",
    ),
    SqlObject(
        "entry",
        "macro",
        "entry(seq)",
        "the entry with one sequence number, from whichever table holds it",
        "CREATE MACRO entry(wanted_seq) AS TABLE SELECT * FROM entries WHERE seq = wanted_seq",
    ),
)

VIEW_NAMES = tuple(o.name for o in OBJECTS if o.kind == "view")
MACRO_NAMES = tuple(o.name for o in OBJECTS if o.kind == "macro")


def describe(name: str) -> SqlObject | None:
    return next((o for o in OBJECTS if o.name == name), None)
