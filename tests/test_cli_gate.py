"""The gate, registry and monitor commands: exit codes 0 / 1 / 2, --json outputs, help."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from click.testing import CliRunner

from gates.observations import record_inference_error
from ledger import Keyring, Ledger
from mrm.cli import main

from .helpers import edit_rows, fingerprint, segment_files
from .test_gates_decision import POLICY_TOML, challenger_dict, champion_dict


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args],
                              env=env or {"MRM_KEYRING": "", "MRM_HMAC_KEY": "", "MRM_ACTOR": "cli-test"})


def ok_json(*args):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A ledger with a key beside it, evaluation files whose artifacts exist, two policies."""
    ledger = tmp_path / "audit"
    assert run("init", ledger, "--key-id", "cli-k1").exit_code == 0
    files = {}
    for name, d in (("v011", champion_dict()), ("v012", challenger_dict())):
        weights = f"weights of {name}".encode()
        artifact = tmp_path / "models" / name / "model.bin"
        artifact.parent.mkdir(parents=True)
        artifact.write_bytes(weights)
        d["lineage"]["artifacts"][0]["sha256"] = hashlib.sha256(weights).hexdigest()
        files[name] = tmp_path / f"eval-{name}.json"
        files[name].write_text(json.dumps(d))
    for auto in (True, False):
        (tmp_path / f"policy-{'auto' if auto else 'manual'}.toml").write_text(POLICY_TOML.format(auto=str(auto).lower()))
    monkeypatch.chdir(tmp_path)  # --artifacts-root defaults to the current directory
    return ledger, files


def evaluate(ledger, *files, policy="policy-manual.toml", extra=()):
    return ok_json("gate", "evaluate", ledger, *files, "--policy", policy, *extra)


def bootstrap(ledger, file):
    """The slot's first version, live at once (under auto_promote = false it would wait for a sign-off)."""
    return evaluate(ledger, file, policy="policy-auto.toml")


def test_gate_evaluate_bootstrap_pending_approve_and_the_manifest(setup):
    ledger, files = setup
    boot = bootstrap(ledger, files["v011"])
    assert (boot["decision"], boot["seq"], boot["registered_seq"], boot["failing_checks"]) == ("bootstrap", 2, 1, [])
    pending = evaluate(ledger, files["v012"], extra=("--manifest", "serving.json"))
    assert (pending["decision"], pending["champion_version"], pending["manifest"]) == (
        "pending_approval", "v011", "serving.json")
    manifest = json.loads(open("serving.json").read())
    assert manifest["slots"]["credit_pd"]["production"] == "v011"
    text = run("gate", "evaluate", ledger, files["v012"], "--policy", "policy-manual.toml")
    assert text.exit_code == 2 and "v012 is pending_approval in slot credit_pd" in text.output
    approved = ok_json("approve", ledger, "--slot", "credit_pd", "--version", "v012", "--operator", "mrm-chair",
                       "--reason", "committee 2026-04-24", "--manifest", "serving.json")
    assert (approved["decision"], approved["trigger"], approved["operator"]) == ("approve", "manual", "mrm-chair")
    manifest = json.loads(open("serving.json").read())
    assert manifest["slots"]["credit_pd"]["production"] == "v012"
    assert manifest["slots"]["credit_pd"]["seq"] == approved["seq"]
    assert json.loads(run("registry", "manifest", ledger).stdout) == manifest  # the same from stdout


def test_an_unwritable_manifest_is_refused_before_anything_is_recorded(setup, tmp_path):
    ledger, files = setup
    bootstrap(ledger, files["v011"])
    evaluate(ledger, files["v012"])
    before = fingerprint(ledger)
    result = run("approve", ledger, "--slot", "credit_pd", "--version", "v012", "--operator", "mrm-chair",
                 "--reason", "ok", "--manifest", tmp_path / "no-such-dir" / "serving.json")
    assert result.exit_code == 2 and "no-such-dir does not exist or is not writable" in result.output
    assert fingerprint(ledger) == before


def test_a_reject_is_a_decision_exit_0_with_every_failing_check(setup, tmp_path):
    ledger, files = setup
    bootstrap(ledger, files["v011"])
    d = json.loads(files["v012"].read_text())
    d["fidelity"] = {"task_churn": {"kl": 0.31}, "task_next_best": {"kl": 0.25}}
    bad = tmp_path / "eval-v012-bad.json"
    bad.write_text(json.dumps(d))
    out = evaluate(ledger, bad, files["v011"])  # the champion given explicitly this time
    assert out["decision"] == "reject" and out["stage"] == "fidelity"
    assert [c["name"] for c in out["failing_checks"]] == ["fidelity:task_churn", "fidelity:task_next_best"]
    text = run("gate", "replay", ledger, "--seq", out["seq"])
    assert text.exit_code == 0 and "MATCH" in text.output


def test_promote_needs_force_operator_and_reason(setup):
    ledger, files = setup
    bootstrap(ledger, files["v011"])
    ok_json("registry", "register", ledger, "--slot", "credit_pd", "--version", "v009")
    before = fingerprint(ledger)
    no_force = run("promote", ledger, "--version", "v009", "--slot", "credit_pd", "--operator", "eng", "--reason", "x")
    assert no_force.exit_code == 2 and "needs --force" in no_force.output
    no_reason = run("promote", ledger, "--force", "--version", "v009", "--slot", "credit_pd", "--operator", "eng")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    blank = run("promote", ledger, "--force", "--version", "v009", "--slot", "credit_pd", "--operator", "eng",
                "--reason", " ")
    assert blank.exit_code == 2 and "force-promote needs a reason" in blank.output
    unknown = run("promote", ledger, "--force", "--version", "v404", "--slot", "credit_pd", "--operator", "eng",
                  "--reason", "x")
    assert unknown.exit_code == 2 and "v404 is not registered in slot credit_pd" in unknown.output
    assert fingerprint(ledger) == before
    done = ok_json("promote", ledger, "--force", "--version", "v009", "--slot", "credit_pd", "--operator", "eng-42",
                   "--reason", "DI breach, back to known-good")
    assert (done["decision"], done["challenger_version"], done["champion_version"]) == ("force_promote", "v009", "v011")


def test_rollback_status_and_history(setup):
    ledger, files = setup
    bootstrap(ledger, files["v011"])
    evaluate(ledger, files["v012"], policy="policy-auto.toml")
    rb = ok_json("rollback", ledger, "--slot", "credit_pd", "--operator", "eng-7", "--reason", "p99 2.4x baseline")
    assert (rb["decision"], rb["challenger_version"], rb["champion_version"]) == ("rollback", "v011", "v012")
    again = run("rollback", ledger, "--slot", "credit_pd", "--operator", "eng-7", "--reason", "x")
    assert again.exit_code == 2 and "no archived former production version" in again.output
    status = ok_json("registry", "status", ledger)
    s = status["slots"]["credit_pd"]
    assert (s["production"], s["seq"], s["by"], s["operator"]) == ("v011", rb["seq"], "rollback", "eng-7")
    assert s["versions"] == {"production": ["v011"], "rolled_back": ["v012"]}
    history = ok_json("registry", "history", ledger, "--slot", "credit_pd")
    assert [(h["version"], h["from"], h["to"], h["cause"]) for h in history] == [
        ("v011", None, "candidate", "model_registered"), ("v011", "candidate", "production", "bootstrap"),
        ("v012", None, "candidate", "model_registered"), ("v011", "production", "archived", "promote"),
        ("v012", "candidate", "production", "promote"), ("v012", "production", "rolled_back", "rollback"),
        ("v011", "archived", "production", "rollback")]
    # As it stood at an instant: just after the bootstrap.
    at = ok_json("registry", "status", ledger, "--at", history[1]["ts"])
    assert at["slots"]["credit_pd"]["production"] == "v011" and at["slots"]["credit_pd"]["versions"] == {
        "production": ["v011"]}
    naive = run("registry", "status", ledger, "--at", "2026-04-21T14:00:00")
    assert naive.exit_code == 2 and "has no time zone" in naive.output
    unknown = run("registry", "history", ledger, "--slot", "nope")
    assert unknown.exit_code == 2 and "slots: credit_pd" in unknown.output
    text = run("registry", "status", ledger)
    assert text.exit_code == 0 and "credit_pd: production v011" in text.output


def test_decline_and_traffic(setup):
    ledger, files = setup
    bootstrap(ledger, files["v011"])
    evaluate(ledger, files["v012"])
    t = ok_json("registry", "traffic", ledger, "--slot", "credit_pd", "--challenger", "v012", "--mode", "canary_5",
                "--operator", "eng-7", "--reason", "canary")
    assert t["mode"] == "canary_5"
    split = json.loads(run("registry", "manifest", ledger).stdout)["slots"]["credit_pd"]["challenger"]
    assert (split["challenger_version"], split["challenger_share"], split["experiment"]) == ("v012", 0.05, "credit_pd/v012")
    d = ok_json("decline", ledger, "--slot", "credit_pd", "--version", "v012", "--operator", "mrm-chair",
                "--reason", "needs a stress back-test")
    assert d["decision"] == "decline"
    assert json.loads(run("registry", "manifest", ledger).stdout)["slots"]["credit_pd"]["challenger"] is None


def test_replay_exit_codes_and_a_tampered_entry(setup):
    ledger, files = setup
    bootstrap(ledger, files["v011"])
    seq = evaluate(ledger, files["v012"])["seq"]
    doc = ok_json("gate", "replay", ledger, "--seq", seq)
    assert doc["matches"] is True and doc["replayed_decision"] == "pending_approval" and doc["differences"] == []
    assert [r["matches"] for r in ok_json("gate", "replay", ledger, "--all")] == [True, True]
    assert run("gate", "replay", ledger, "--seq", 1).exit_code == 2  # a registration, not a decision
    assert "not a model_promotion entry" in run("gate", "replay", ledger, "--seq", 1).output
    assert "run from 0 to" in run("gate", "replay", ledger, "--seq", 999).output
    assert run("gate", "replay", ledger).exit_code == 2
    for f in segment_files(ledger, "model_promotion"):
        def edit(rows):
            for r in rows:
                if r["seq"] == seq:
                    r["reason"] = "approved by nobody"
            return rows
        edit_rows(f, "model_promotion", edit)
    result = run("gate", "replay", ledger, "--seq", seq, "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["matches"] is False and doc["differences"][0]["field"] == "reason"
    assert doc["differences"][0]["recorded"] == "approved by nobody"
    text = run("gate", "replay", ledger, "--all")
    assert text.exit_code == 1 and "1 match, 1 do not" in text.output


def test_replay_of_digest_only_entries_wants_their_files_and_is_no_mismatch(setup):
    ledger, files = setup
    bootstrap(ledger, files["v011"])
    seq = evaluate(ledger, files["v012"], extra=("--digest-only",))["seq"]
    text = run("gate", "replay", ledger, "--all")
    assert text.exit_code == 2, text.output  # an input to supply, not an integrity failure
    assert "NOT REPLAYED: the" in text.output and "evaluation was recorded by digest only" in text.output
    assert "MISMATCH" not in text.output and "1 match, 0 do not, 1 not replayed" in text.output
    doc = ok_json("gate", "replay", ledger, "--seq", seq, "--evaluation", files["v012"], "--evaluation", files["v011"])
    assert doc["matches"] is True and doc["missing_input"] is None


def test_input_errors_exit_2_and_name_the_problem(setup, tmp_path):
    ledger, files = setup
    (tmp_path / "typo.toml").write_text(POLICY_TOML.format(auto="true").replace("alpha =", "alhpa ="))
    result = run("gate", "evaluate", ledger, files["v011"], "--policy", tmp_path / "typo.toml")
    assert result.exit_code == 2 and "typo.toml: gate.alhpa: unknown key" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "mrm-gate-evaluation/1", "slot": NaN}')
    result = run("gate", "evaluate", ledger, bad, "--policy", "policy-auto.toml")
    assert result.exit_code == 2 and "NaN is not allowed in JSON" in result.output
    result = run("approve", ledger, "--slot", "credit_pd", "--version", "v012", "--operator", "x")
    assert result.exit_code == 2 and "--reason" in result.output
    ledger.with_name("audit.keyring.json").rename(tmp_path / "elsewhere.json")
    result = run("gate", "evaluate", ledger, files["v011"], "--policy", "policy-auto.toml")
    assert result.exit_code == 2 and "no HMAC key" in result.output
    ok_json("gate", "evaluate", ledger, files["v011"], "--policy", "policy-auto.toml", "--keyring",
            tmp_path / "elsewhere.json")


def test_an_inconsistent_registry_history_is_an_integrity_failure(setup):
    ledger, files = setup
    bootstrap(ledger, files["v011"])
    keyring = Keyring.load(ledger.with_name("audit.keyring.json"))
    with Ledger.open(ledger, keyring, actor="rogue") as l:  # a second bootstrap, written around the gate
        l.log_model_promotion(slot="credit_pd", challenger_version="v666", decision="bootstrap", trigger="auto",
                              reason="no champion", durable=True)
    result = run("registry", "status", ledger)
    assert result.exit_code == 1
    assert "integrity failure: the ledger's registry history is inconsistent at seq 3" in result.output
    assert "already has production version v011" in result.output


def test_monitor_and_outcome_commands(setup, tmp_path):
    ledger, files = setup
    bootstrap(ledger, files["v011"])
    keyring = Keyring.load(ledger.with_name("audit.keyring.json"))
    now = dt.datetime.now(dt.timezone.utc)
    with Ledger.open(ledger, keyring, actor="serving") as l:
        l.append("model_inference", [
            {"ts": now, "request_id": f"r{i}", "subject_id": f"s{i}", "model_slot": "credit_pd", "model_version": "v011",
             "input_digest": "ab" * 32, "decision": "approve" if (i < 40 or i >= 100) and i < 180 else "decline",
             "latency_ms": 5.0, "route": "champion", "scores": {"approve": (i % 10) / 10}} for i in range(200)])
    (tmp_path / "subjects.csv").write_text("subject_id,age_band\n" + "".join(
        f"s{i},{'A' if i < 100 else 'B'}\n" for i in range(200)))
    (tmp_path / "labels.csv").write_text("request_id,label,observed_at,value:revenue\n"
                                         "r1,approve,2026-05-01T00:00:00Z,12.5\nr2,decline,,\n")
    out = ok_json("outcomes", ledger, tmp_path / "labels.csv", "--source", "servicing")
    assert out["entries"] == 2
    args = ("monitor", "fairness", ledger, "--slot", "credit_pd", "--policy", "policy-auto.toml", "--subjects",
            tmp_path / "subjects.csv", "--attribute", "age_band", "--privileged", "A", "--unprivileged", "B",
            "--favorable", "approve")
    before = fingerprint(ledger)
    read_only = ok_json(*args)  # a reviewer's run: reads, prints, writes nothing
    assert fingerprint(ledger) == before and "run_seq" not in read_only and read_only["recorded"] is False
    assert read_only["inputs"]["basis"] == "served"
    doc = ok_json(*args, "--record")
    assert doc["status"] == "alert" and doc["version"] == "v011" and doc["recorded"] is True
    assert ok_json(*args, "--basis", "proposed")["inputs"]["basis"] == "proposed"
    di = {r["metric"]: r for r in doc["results"]}["disparate_impact"]
    assert di["value"] == pytest.approx(0.8 / 0.4) and di["status"] == "breach"
    assert len(doc["alert_seqs"]) == 3 and doc["run_seq"] < doc["alert_seqs"][0]
    after_record = fingerprint(ledger)
    missing = run(*args[:-2])
    assert missing.exit_code == 2 and "--favorable" in missing.output
    wrong = run(*[a if a != "age_band" else "gender" for a in args])
    assert wrong.exit_code == 2 and "no column 'gender'" in wrong.output
    drift = ok_json("monitor", "drift", ledger, "--slot", "credit_pd", "--policy", "policy-auto.toml",
                    "--baseline-since", (now - dt.timedelta(days=1)).isoformat(),
                    "--baseline-until", (now + dt.timedelta(seconds=1)).isoformat())
    assert drift["results"][0]["feature"] == "score:approve" and drift["status"] == "ok"
    serving = ok_json("monitor", "serving", ledger, "--slot", "credit_pd", "--policy", "policy-auto.toml")
    assert (serving["requests"], serving["alert"], serving["recorded"]) == (200, None, False)
    assert fingerprint(ledger) == after_record  # neither drift nor serving wrote without --record
    assert run("monitor", "drift", ledger, "--dry-run").exit_code == 2  # one flag: --record
    with Ledger.open(ledger, keyring, actor="serving") as l:  # 10 failures in 210 requests: above the 2 % error rate
        for i in range(10):
            record_inference_error(l, request_id=f"e{i}", slot="credit_pd", version="v011", error="timeout")
    failing = fingerprint(ledger)
    serving = ok_json("monitor", "serving", ledger, "--slot", "credit_pd", "--policy", "policy-auto.toml")
    assert serving["alert"] is not None and "alert_seq" not in serving and fingerprint(ledger) == failing
    serving = ok_json("monitor", "serving", ledger, "--slot", "credit_pd", "--policy", "policy-auto.toml", "--record")
    assert serving["alert_seq"] is not None and fingerprint(ledger) != failing
    online = run("monitor", "online", ledger, "--slot", "credit_pd", "--policy", "policy-auto.toml")
    assert online.exit_code == 2 and "no challenger taking traffic" in online.output


@pytest.mark.parametrize("command", [
    "gate evaluate", "gate replay", "approve", "decline", "promote", "rollback", "registry status",
    "registry history", "registry manifest", "registry register", "registry traffic", "outcomes",
    "monitor fairness", "monitor drift", "monitor serving", "monitor online"])
def test_every_command_has_help_with_an_example(command):
    result = run(*command.split(), "--help")
    assert result.exit_code == 0 and "Example" in result.output, command


def test_secrets_never_printed(setup):
    ledger, files = setup
    secret = json.loads(ledger.with_name("audit.keyring.json").read_text())["keys"]["cli-k1"]
    outputs = [run("gate", "evaluate", ledger, files["v011"], "--policy", "policy-auto.toml", "--json").output,
               run("registry", "manifest", ledger).output, run("gate", "replay", ledger, "--all").output,
               run("registry", "status", ledger, "--json").output]
    assert all(secret not in o for o in outputs)
