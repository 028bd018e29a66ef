"""What makes a change of production attributed: one definition, in SQL, that every
regulation pack reads (the ``production_changes`` view, listed in views.OBJECTS).

A change of production is a registry transition into ``production`` (bootstrap, promote,
approve, force-promote, rollback), with the model_promotion entry that caused it. It is
attributed when the entry says who or what decided it:

- a manual change (trigger = 'manual'): the operator who made or signed it;
- an automatic change: the gate thresholds it applied, or the gate policy it ran under (its
  SHA-256 digest, recorded with the replay inputs; a bootstrap compares nothing, so it records
  no thresholds and its policy is what attributes it), or the monitoring alert behind an
  automatic rollback.

Packs used to carry their own copies of this rule, and they disagreed (one pack called the
bootstrap unattributed, another accepted it). Change the rule here, once.
"""

from __future__ import annotations

PRODUCTION_CHANGES_DOC = (
    "every change of production (a registry transition into production) with what attributes it: seq, ts, slot, "
    "version, replaced_version, cause (the decision), trigger, operator, actor, reason, thresholds_recorded, "
    "policy_digest, alert_recorded, attributed (the one rule every pack applies: a manual change names its operator; "
    "an automatic one records its thresholds, its gate policy digest or its alert), attribution (what attributes it, "
    "or why nothing does)"
)

_THRESHOLDS = "coalesce(cardinality(p.thresholds), 0)"
_POLICY = "json_extract_string(p.details, '$.replay.policy_digest')"
_POLICY_OK = f"coalesce(regexp_full_match({_POLICY}, '[0-9a-f]{{64}}'), false)"
_ALERT_OK = "coalesce(json_type(p.details, '$.replay.alert') = 'OBJECT', false)"
_OPERATOR_OK = "coalesce(length(trim(h.operator)), 0) > 0"

PRODUCTION_CHANGES_SQL = f"""
CREATE VIEW production_changes AS
SELECT h.seq, h.ts, h.slot, h.version, p.champion_version AS replaced_version, h.cause, h.trigger, h.operator, h.actor,
       h.reason,
       {_THRESHOLDS} AS thresholds_recorded,
       {_POLICY} AS policy_digest,
       {_ALERT_OK} AS alert_recorded,
       CASE WHEN h.trigger = 'manual' THEN {_OPERATOR_OK}
            ELSE {_THRESHOLDS} > 0 OR {_POLICY_OK} OR {_ALERT_OK}
       END AS attributed,
       CASE WHEN h.trigger = 'manual' THEN
                 CASE WHEN {_OPERATOR_OK} THEN 'operator ' || trim(h.operator)
                      ELSE 'none: a manual change that names no operator' END
            WHEN {_ALERT_OK} THEN 'monitoring alert ' || coalesce(json_extract_string(p.details, '$.replay.alert.monitor'),
                                                              json_extract_string(p.details, '$.replay.alert.summary'), '(recorded)')
            WHEN {_THRESHOLDS} > 0 THEN 'gate thresholds (' || {_THRESHOLDS} || ' recorded)'
            WHEN {_POLICY_OK} THEN 'gate policy ' || left({_POLICY}, 16)
            ELSE 'none: an automatic change that records no thresholds, gate policy digest or alert'
       END AS attribution
FROM registry_history h JOIN model_promotion p ON p.seq = h.seq
WHERE h.to_state = 'production'
""".strip()
