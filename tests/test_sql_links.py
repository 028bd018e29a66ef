"""Typed links written by the gate and the committee (responds_to_seq, reviews_seq), refused
when they name the wrong entry, and the SQL views that join on them: model_versions,
evaluations, override_reviews, alert_responses, and manual_overrides() with skipped checks."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from forensics.session import LedgerSQL
from gates.alerts import PROPOSE_ROLLBACK, Alert
from gates.decision import decide_force_promote, decide_rollback
from gates.ledger_io import promotion_entry
from gates.replay_check import check_replay
from ledger import Keyring, Ledger
from mrm.cli import main

from .helpers import fingerprint
from .test_gates_decision import POLICY_TOML, challenger_dict, champion_dict

SLOT = "credit_pd"
ENV = {"MRM_KEYRING": "", "MRM_HMAC_KEY": "", "MRM_ACTOR": "cli-test"}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], env=ENV)


def ok_json(*args):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def eval_file(tmp_path, name: str, d: dict) -> str:
    weights = f"weights of {name}".encode()
    artifact = tmp_path / "models" / name / "model.bin"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(weights)
    d["lineage"]["artifacts"][0]["sha256"] = hashlib.sha256(weights).hexdigest()
    path = tmp_path / f"eval-{name}.json"
    path.write_text(json.dumps(d))
    return str(path)


def write_alert(ledger_path, slot: str) -> int:
    alert = Alert("fairness.disparate_impact", slot, "v011", "breach", PROPOSE_ROLLBACK,
                  "DI 0.71 for age 60+ in Jeju", {"value": 0.71, "min": 0.8})
    keyring = Keyring.load(ledger_path.with_name("audit.keyring.json"))
    with Ledger.open(ledger_path, keyring, actor="monitor") as ledger:
        return ledger.log_operation(**alert.to_operation_entry(correlation_id="fairness/w27"), durable=True)


@pytest.fixture
def story(tmp_path, monkeypatch):
    """bootstrap v011; v012 rejected (a guardrail); an alert; v013 force-promoted in answer to
    it; the committee's review of that override."""
    monkeypatch.chdir(tmp_path)
    ledger = tmp_path / "audit"
    assert run("init", ledger, "--key-id", "cli-k1").exit_code == 0
    (tmp_path / "policy.toml").write_text(POLICY_TOML.format(auto="true"))
    boot = ok_json("gate", "evaluate", ledger, eval_file(tmp_path, "v011", champion_dict()), "--policy", "policy.toml")
    rejected = ok_json("gate", "evaluate", ledger,
                       eval_file(tmp_path, "v012", challenger_dict(guardrails={"p99_latency_ms": 240.0,
                                                                              "disparate_impact": 0.95})),
                       "--policy", "policy.toml")
    assert rejected["decision"] == "reject"
    other_slot_alert = write_alert(ledger, "other_slot")
    alert = write_alert(ledger, SLOT)
    registered = ok_json("registry", "register", ledger, "--slot", SLOT, "--version", "v013")
    forced = ok_json("promote", ledger, "--force", "--version", "v013", "--slot", SLOT, "--operator", "eng-42",
                     "--reason", "DI breach emergency", "--responds-to", alert)
    review = ok_json("review-override", ledger, forced["seq"], "--outcome", "upheld", "--reviewer", "mrm-chair",
                     "--note", "MRM committee 2026-04-24, minute 3")
    return {"ledger": ledger, "boot": boot, "rejected": rejected, "alert": alert, "other_slot_alert": other_slot_alert,
            "registered": registered, "forced": forced, "review": review}


def query(ledger, sql: str) -> list[dict]:
    with LedgerSQL.open(ledger) as s:
        return s.query(sql).to_pylist()


# --- links refused when they name the wrong entry -------------------------------------------


@pytest.mark.parametrize("target, message", [
    ("boot", "is not a operation entry"),  # a model_promotion entry
    ("registered", "is a model_registered operation, not a monitor_alert"),
    ("other_slot_alert", "the alert is about slot 'other_slot', not 'credit_pd'"),
    (99999, "the ledger's entries run from 0 to"),
])
@pytest.mark.parametrize("command", ["promote", "rollback"])
def test_a_response_to_anything_but_an_alert_of_the_slot_is_refused_and_nothing_is_written(story, target, message,
                                                                                            command):
    ledger = story["ledger"]
    seq = story[target]["seq"] if target in ("boot", "registered") else story.get(target, target)
    before = fingerprint(ledger)
    if command == "promote":
        args = ("promote", ledger, "--force", "--version", "v011", "--slot", SLOT)
    else:
        args = ("rollback", ledger, "--slot", SLOT, "--to-version", "v011")
    result = run(*args, "--operator", "eng-7", "--reason", "x", "--responds-to", seq)
    assert result.exit_code == 2, result.output
    assert f"responds_to_seq {seq}" in result.output and message in result.output
    assert "Traceback" not in result.output
    assert fingerprint(ledger) == before


@pytest.mark.parametrize("target, message", [
    ("boot", "is a bootstrap by the gate (trigger auto), not a person's decision"),
    ("rejected", "is a reject by the gate (trigger auto)"),
    ("alert", "is not a model_promotion entry"),
    (99999, "the ledger's entries run from 0 to"),
])
def test_a_review_of_anything_but_a_persons_decision_is_refused_and_nothing_is_written(story, target, message):
    ledger = story["ledger"]
    seq = story[target]["seq"] if isinstance(story.get(target), dict) else story.get(target, target)
    before = fingerprint(ledger)
    result = run("review-override", ledger, seq, "--outcome", "upheld", "--reviewer", "mrm-chair", "--note", "x")
    assert result.exit_code == 2, result.output
    assert f"reviews_seq {seq}" in result.output and message in result.output
    assert fingerprint(ledger) == before


def test_an_unknown_review_outcome_is_a_usage_error(story):
    before = fingerprint(story["ledger"])
    result = run("review-override", story["ledger"], story["forced"]["seq"], "--outcome", "fine",
                 "--reviewer", "mrm-chair", "--note", "x")
    assert result.exit_code == 2 and fingerprint(story["ledger"]) == before


# --- what the entries carry, and the views over them ----------------------------------------


def test_the_force_promote_records_its_alert_and_the_checks_it_skipped_as_data(story):
    details = promotion_entry(story["ledger"], story["forced"]["seq"])["details"]
    assert details["gate_format"] == 2
    assert details["responds_to_seq"] == story["alert"]
    # the checks of the rejected gate run are the ladder's checks under the recorded policy
    gate_run = promotion_entry(story["ledger"], story["rejected"]["seq"])["details"]["checks"]
    assert details["skipped_checks"] == [c["name"] for c in gate_run]
    assert details["skipped_checks_from_seq"] == story["rejected"]["seq"]


def test_manual_overrides_lists_the_skipped_checks_the_alert_and_the_review(story):
    [row] = query(story["ledger"], "SELECT seq, decision, skipped_checks, responds_to_seq, review_seqs FROM manual_overrides()")
    assert row["seq"] == story["forced"]["seq"] and row["decision"] == "force_promote"
    assert row["skipped_checks"][:3] == ["fidelity:task_churn", "fidelity:task_next_best", "tasks_present"]
    assert row["skipped_checks"][-2:] == ["guardrail:disparate_impact", "guardrail:p99_latency_ms"]
    assert row["responds_to_seq"] == story["alert"]
    assert row["review_seqs"] == [story["review"]["seq"]]


def test_alert_responses_links_each_alert_to_the_decision_that_answered_it(story):
    got = query(story["ledger"], "SELECT alert_seq, slot, monitor, response_seq, response, version, operator, "
                                 "delay_seconds FROM alert_responses ORDER BY alert_seq")
    assert [(r["alert_seq"], r["slot"], r["response_seq"]) for r in got] == [
        (story["other_slot_alert"], "other_slot", None), (story["alert"], SLOT, story["forced"]["seq"])]
    answered = got[1]
    assert (answered["monitor"], answered["response"], answered["version"], answered["operator"]) == (
        "gates.fairness.disparate_impact", "force_promote", "v013", "eng-42")
    assert answered["delay_seconds"] >= 0


def test_override_reviews_names_the_override_reviewed(story):
    [row] = query(story["ledger"], "SELECT * FROM override_reviews")
    assert (row["review_seq"], row["override_seq"], row["decision"], row["version"], row["operator"]) == (
        story["review"]["seq"], story["forced"]["seq"], "force_promote", "v013", "eng-42")
    assert (row["reviewer"], row["outcome"], row["note"]) == ("mrm-chair", "upheld", "MRM committee 2026-04-24, minute 3")
    assert row["reviewed_at"] >= row["override_at"]


def test_model_versions_gives_each_version_its_feature_schema(story):
    got = query(story["ledger"], "SELECT slot, version, feature_schema_digest, registered_seq, registered_by, state "
                                 "FROM model_versions ORDER BY registered_seq")
    assert [(r["version"], r["feature_schema_digest"], r["state"]) for r in got] == [
        ("v011", "schema-1", "archived"), ("v012", "schema-1", "rejected"), ("v013", None, "production")]
    assert got[0]["registered_seq"] == story["boot"]["registered_seq"] and got[0]["registered_by"] == "cli-test"


def test_evaluations_put_a_rejected_challengers_metrics_next_to_the_champions(story):
    got = query(story["ledger"], "SELECT seq, decision, challenger_version, champion_version, challenger_metrics, "
                                 "champion_metrics, same_holdout, failing_checks FROM evaluations ORDER BY seq")
    assert [(r["decision"], r["challenger_version"], r["champion_version"]) for r in got] == [
        ("bootstrap", "v011", None), ("reject", "v012", "v011")]
    reject = got[1]
    chal, champ = json.loads(reject["challenger_metrics"]), json.loads(reject["champion_metrics"])
    assert chal == challenger_dict()["metrics"] and champ == champion_dict()["metrics"]
    assert reject["same_holdout"] is True
    assert reject["failing_checks"] == ["guardrail:p99_latency_ms"]


# --- format 1 entries still replay ----------------------------------------------------------


def test_entries_of_gate_format_1_replay_as_recorded(tmp_path, keyring):
    """An entry written before format 2 (no links, no skipped_checks) still matches on replay."""
    with Ledger.create(tmp_path / "l", keyring, actor="old-gate") as ledger:
        ledger.log_operation(event_type="model_registered", component="registry", status="candidate",
                             correlation_id="s/v1", details={"slot": "s", "version": "v1"})
        ledger.log_operation(event_type="model_registered", component="registry", status="candidate",
                             correlation_id="s/v2", details={"slot": "s", "version": "v2"})
        for d in (decide_force_promote("s", "v1", None, operator="eng", reason="first"),
                  decide_force_promote("s", "v2", "v1", operator="eng", reason="second"),
                  decide_rollback("s", "v2", "v1", ["v1"], reason="back", operator="eng")):
            entry = d.to_promotion_entry()
            entry["details"]["gate_format"] = 1
            for key in ("skipped_checks", "skipped_checks_from_seq", "responds_to_seq"):
                entry["details"].pop(key, None)
                entry["details"]["replay"].pop(key, None)
            ledger.log_model_promotion(**entry, durable=True)
    reports = check_replay(tmp_path / "l")
    assert [r.recorded_decision for r in reports] == ["force_promote", "force_promote", "rollback"]
    assert all(r.matches for r in reports), [r.to_text() for r in reports]
