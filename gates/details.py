"""What the ``details`` JSON of each entry the gate, the registry, the monitors and the
committee write carries: every field, its type and what it means. The one description;
``docs/details.md`` is generated from it (``python -m gates.details > docs/details.md``) and a
test keeps the two in sync, and checks that every key those writers put in ``details`` is here.

A model_promotion entry's details depend on the kind of decision (``details.replay.kind``):
the gate's verdict, a force-promote, a sign-off, a rollback. Operation entries are keyed by
``event_type``. Types are JSON types; ``| null`` means the key is always present and may be
null; "optional" means the key may be absent.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str  # a dotted path below details for a nested field, e.g. "evaluated.champion"
    type: str
    meaning: str


@dataclass(frozen=True)
class EventDetails:
    table: str
    event: str  # operation: event_type; model_promotion: details.replay.kind
    written_by: str
    summary: str
    fields: tuple[Field, ...]

    @property
    def title(self) -> str:
        what = "kind" if self.table == "model_promotion" else "event_type"
        return f"{self.table}, {what} `{self.event}`"

    def top_level(self) -> set[str]:
        return {f.name for f in self.fields if "." not in f.name}

    def under(self, parent: str) -> set[str]:
        """The documented keys directly below ``parent`` (e.g. "replay")."""
        prefix = parent + "."
        return {f.name[len(prefix):] for f in self.fields
                if f.name.startswith(prefix) and "." not in f.name[len(prefix):]}


_FORMAT = Field("gate_format", "integer",
                "The shape of these details: 2 since evaluated, skipped_checks, skipped_checks_from_seq and "
                "responds_to_seq were added; 1 before (entries without them). `mrm gate replay` writes an entry "
                "again in the format it was recorded in.")
_STAGE = Field("stage", "string",
               "The step that resolved: force_promote, bootstrap, fidelity, functional, competition, approval, rollback.")
_CHECKS = Field("checks", "array of {name, passed, detail}",
                "Every check that ran, in the order it ran; `rejections()` lists those that did not pass.")
_TESTS = Field("tests", "array of objects",
               "Per task, the paired test of the primary metric: metric, test (delong, mcnemar, bootstrap), "
               "statistic, p_value, n, champion, challenger and the test's own estimates. Empty when none ran.")
_REPLAY = Field("replay", "object",
                "The inputs `mrm gate replay` recomputes the decision from; `replay.kind` says which kind of "
                "decision this is.")
_RESPONDS = Field("responds_to_seq", "integer | null",
                  "The monitor_alert entry (its seq) this decision answers; checked when written: it must be an "
                  "alert of the same slot (gates/links.py). View: `alert_responses`.")
_REPLAY_RESPONDS = Field("replay.responds_to_seq", "integer | null (format 2)", "As `responds_to_seq`.")
_SLOT = Field("slot", "string", "The deployment slot.")

EVENTS: tuple[EventDetails, ...] = (
    EventDetails(
        "model_promotion", "gate", "gates.promotion.run_gate (`mrm gate evaluate`)",
        "The promotion ladder's verdict: decision promote, reject, pending_approval or bootstrap.",
        (
            _FORMAT, _STAGE, _CHECKS, _TESTS,
            Field("evaluated", "object (format 2)",
                  "What the gate compared, side by side: `evaluated.challenger` and `evaluated.champion`, and "
                  "`evaluated.same_holdout`. View: `evaluations`."),
            Field("evaluated.challenger", "object",
                  "version, holdout_digest, feature_schema_digest and metrics ({task: {metric: value}}) of the "
                  "challenger's evaluation."),
            Field("evaluated.champion", "object | null",
                  "The same for the champion it was compared with, on the same holdout; null on bootstrap."),
            Field("evaluated.same_holdout", "boolean",
                  "The two evaluations' holdout digests are equal (false on bootstrap)."),
            _REPLAY,
            Field("replay.kind", "string", "`gate`."),
            Field("replay.policy", "object", "The promotion policy in force, in full (gates.policy.policy_to_dict)."),
            Field("replay.policy_digest", "string", "SHA-256 of the policy's canonical JSON."),
            Field("replay.challenger", "object | null",
                  "The challenger's evaluation in full, per-sample scores included; null when recorded by digest "
                  "only (`--digest-only`)."),
            Field("replay.challenger_digest", "string", "SHA-256 of the challenger's evaluation."),
            Field("replay.champion", "object | null", "The champion's evaluation (null: bootstrap, or digest only)."),
            Field("replay.champion_digest", "string | null", "SHA-256 of the champion's evaluation."),
            Field("replay.observed_artifacts", "object | null",
                  "Path to SHA-256 of each artifact as found on disk (null: file missing)."),
            Field("replay.force_promote", "boolean", "Always false for a gate run."),
            Field("replay.operator", "string | null", "Who ran the gate, if given."),
            Field("replay.reason", "string | null", "Unused by a gate run (null)."),
            Field("replay.trigger", "string", "auto or manual."),
        ),
    ),
    EventDetails(
        "model_promotion", "force_promote", "gates.promotion.force_promote (`mrm promote --force`)",
        "An operator's override: a registered version put into production with every gate check skipped.",
        (
            _FORMAT, _STAGE, _CHECKS, _TESTS,
            Field("skipped_checks", "array of strings (format 2)",
                  "The checks the ladder would have run, in its order (gates.decision.ladder_checks of the policy "
                  "the slot's latest gate entry recorded, against the production version's tasks); the ladder's "
                  "steps (fidelity, functional, competition) when no gate entry recorded a policy. Shown by "
                  "`manual_overrides()`."),
            Field("skipped_checks_from_seq", "integer | null (format 2)",
                  "The gate entry whose recorded policy named those checks; null when there was none."),
            _RESPONDS,
            _REPLAY,
            Field("replay.kind", "string", "`force_promote`."),
            Field("replay.slot", "string", "The slot."),
            Field("replay.version", "string", "The version put into production."),
            Field("replay.champion_version", "string | null", "The production version it replaced."),
            Field("replay.operator", "string", "The accountable person."),
            Field("replay.reason", "string", "Why, verbatim."),
            Field("replay.skipped_checks", "array of strings (format 2)", "As `skipped_checks`."),
            Field("replay.skipped_checks_from_seq", "integer | null (format 2)", "As `skipped_checks_from_seq`."),
            _REPLAY_RESPONDS,
        ),
    ),
    EventDetails(
        "model_promotion", "approval", "gates.promotion.approve / decline (`mrm approve`, `mrm decline`)",
        "A person's sign-off on, or refusal of, a pending_approval version.",
        (
            _FORMAT, _STAGE, _CHECKS, _TESTS, _REPLAY,
            Field("replay.kind", "string", "`approval`."),
            Field("replay.slot", "string", "The slot."),
            Field("replay.version", "string", "The version signed off."),
            Field("replay.champion_version", "string | null", "Production when the sign-off was given."),
            Field("replay.approve", "boolean", "true: approved; false: declined."),
            Field("replay.operator", "string", "Who signed off."),
            Field("replay.reason", "string", "Why, verbatim."),
            Field("replay.requested_by", "array of strings (optional)",
                  "Who put the version up for sign-off (the gate entry's actor and operator); none may approve it."),
            Field("replay.requested_at", "string (optional)", "When the gate's pending verdict was written (UTC)."),
            Field("replay.decided_at", "string (optional)", "When the sign-off was written (UTC)."),
            Field("replay.valid_days", "integer (optional)", "The policy's approval_valid_days the window was checked against."),
        ),
    ),
    EventDetails(
        "model_promotion", "rollback", "gates.promotion.rollback (`mrm rollback`; automatic: gates.monitoring.act_on_serving)",
        "A former production version put back into production.",
        (
            _FORMAT, _STAGE, _CHECKS, _TESTS, _RESPONDS, _REPLAY,
            Field("replay.kind", "string", "`rollback`."),
            Field("replay.slot", "string", "The slot."),
            Field("replay.current_version", "string", "The version rolled back."),
            Field("replay.target_version", "string", "The version put back."),
            Field("replay.previous_production", "array of strings", "The slot's former production versions then."),
            Field("replay.reason", "string", "Why, verbatim."),
            Field("replay.operator", "string | null", "Who (null for an automatic rollback)."),
            Field("replay.trigger", "string", "manual, or auto (a monitor)."),
            Field("replay.alert", "object | null",
                  "The alert that fired an automatic rollback: seq, monitor, status, summary, measurements."),
            _REPLAY_RESPONDS,
        ),
    ),
    EventDetails(
        "operation", "model_registered", "gates.promotion.register_candidate (`mrm registry register`; the gate "
        "registers an unregistered challenger)",
        "A model version registered as a candidate of its slot. View: `model_versions`.",
        (
            _SLOT,
            Field("version", "string", "The version."),
            Field("feature_schema_digest", "string | null",
                  "The feature schema the version was trained on (its lineage's); null when registered without lineage."),
            Field("evaluation_digest", "string (optional)", "SHA-256 of the evaluation registered with it."),
            Field("holdout_digest", "string (optional)", "Digest of that evaluation's holdout."),
            Field("lineage", "object (optional)",
                  "artifacts (path, sha256), data_snapshot_digest, code_commit, config_digest, seed, trained_end, "
                  "feature_schema_digest, thresholds."),
        ),
    ),
    EventDetails(
        "operation", "traffic_split", "gates.promotion.set_traffic (`mrm registry traffic`)",
        "Which challenger takes live traffic, and how much; mode off ends it.",
        (
            _SLOT,
            Field("challenger_version", "string", "The challenger."),
            Field("champion_version", "string | null", "Production when the split was set."),
            Field("mode", "string", "shadow, canary_5, canary_10, canary_20, ab_50 or off."),
            Field("challenger_share", "number", "Share of requests the challenger serves (0 in shadow and off)."),
            Field("experiment", "string", "Salt of the routing hash."),
            Field("operator", "string", "Who set it."),
            Field("reason", "string", "Why, verbatim."),
        ),
    ),
    EventDetails(
        "operation", "monitor_run", "gates.monitoring.record_monitor_report (`mrm monitor fairness|drift`)",
        "One run of a fairness or drift monitor, every result included.",
        (
            Field("kind", "string", "fairness or drift."),
            _SLOT,
            Field("version", "string", "The version watched."),
            Field("window", "{since, until}", "The period of entries the run read (UTC text, null: open)."),
            Field("status", "string", "alert or ok."),
            Field("inputs", "object", "What the run was asked (basis, attributes, thresholds...)."),
            Field("results", "array of objects",
                  "One per metric and segment: metric, status, value, ci_low, ci_high, confident, min, max, "
                  "n_unprivileged, n_privileged, detail (fairness); the PSI per feature (drift)."),
            Field("alerts", "array of {monitor, status, action, summary}",
                  "The alerts the run raised; each is also a monitor_alert entry with the same correlation_id."),
        ),
    ),
    EventDetails(
        "operation", "monitor_alert", "gates.alerts.Alert.to_operation_entry (monitors, serving health)",
        "A monitor's alert. Decisions that answer it link to it with responds_to_seq, retrain proposals with "
        "alert_seqs (view `alert_responses` lists both).",
        (
            _SLOT,
            Field("version", "string", "The version the alert is about."),
            Field("action", "string", "What it asks for: none, investigate, propose_retrain, propose_rollback, rollback."),
            Field("summary", "string", "One human sentence."),
            Field("measurements", "object", "The measured values behind it (e.g. value, min, ci_low, ci_high)."),
        ),
    ),
    EventDetails(
        "operation", "retrain_proposal", "gates.monitoring.propose_retrain (`mrm monitor drift --record`)",
        "A drift run's answer to its alerts that ask for a retrain: a proposal, never a deployment (the retrained "
        "challenger goes through the gate). View: `alert_responses`.",
        (
            _SLOT,
            Field("version", "string", "The version whose inputs drifted."),
            Field("run_id", "string", "The monitor run that alerted."),
            Field("run_seq", "integer", "That run's monitor_run entry."),
            Field("alert_seqs", "array of integers", "The monitor_alert entries this proposal answers."),
            Field("features", "array of strings", "The features past the act line, one per alert."),
            Field("summary", "string", "The alerts' sentences, joined."),
            Field("deploys", "null", "Always null: a proposal deploys nothing."),
            Field("next_step", "string", "What happens next, in words."),
        ),
    ),
    EventDetails(
        "operation", "online_evaluation", "gates.monitoring.record_online (`mrm monitor online`)",
        "Welch's test of the policy's online metrics, champion arm against challenger arm.",
        (
            _SLOT,
            Field("champion_version", "string", "The champion arm."),
            Field("challenger_version", "string", "The challenger arm."),
            Field("window", "{since, until}", "The period read."),
            Field("n_champion", "integer", "Requests in the champion arm."),
            Field("n_challenger", "integer", "Requests in the challenger arm."),
            Field("results", "array of objects",
                  "Per metric: metric, outcome, detail, test (or null), missing_champion, missing_challenger."),
        ),
    ),
    EventDetails(
        "operation", "override_review", "gates.promotion.review_override (`mrm review-override`)",
        "A committee's review of a person's decision. View: `override_reviews`.",
        (
            _SLOT,
            Field("reviews_seq", "integer",
                  "The manual model_promotion entry reviewed (force-promote, sign-off, manual rollback); checked "
                  "when written (gates/links.py)."),
            Field("decision", "string", "That entry's decision (e.g. force_promote)."),
            Field("version", "string", "That entry's challenger_version (the version it put live or signed off)."),
            Field("operator", "string | null", "Who made the decision reviewed."),
            Field("outcome", "string", "upheld or overturned (also the entry's status)."),
            Field("reviewer", "string", "Who reviewed it."),
            Field("note", "string", "The finding and minutes reference, verbatim."),
        ),
    ),
)


def find(table: str, event: str) -> EventDetails | None:
    return next((e for e in EVENTS if e.table == table and e.event == event), None)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """docs/details.md."""
    lines = [
        "# The `details` of each entry",
        "",
        "<!-- Generated from gates/details.py by `python -m gates.details > docs/details.md`; edit that file. -->",
        "",
        "Every ledger entry has a `details` column: RFC 8785 JSON, read in `mrm sql` as JSON",
        "(`details ->> '$.slot'`). This page lists what the gate, the registry, the monitors and the",
        "committee put there. A model_promotion entry's details depend on the kind of decision",
        "(`details.replay.kind`); an operation entry's on its `event_type`. `| null`: always present,",
        "may be null; optional: may be absent. The views `model_versions`, `evaluations`,",
        "`override_reviews` and `alert_responses` read the linked fields so that a query needs none of",
        "this; the README's \"SQL forensics\" section lists them.",
        "",
    ]
    for e in EVENTS:
        lines += [f"## {e.title}", "", e.summary, "", f"Written by {e.written_by}.", "",
                  "| Field | Type | Meaning |", "|---|---|---|"]
        lines += [f"| `{f.name}` | {_cell(f.type)} | {_cell(f.meaning)} |" for f in e.fields]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(markdown())
