"""One rule for names that reach file names, URLs and registry keys (ledger.identifiers),
applied at the command line, in evaluation files, in the promotion API and by the ledger
itself; a refused name is exit 2 naming the field, and the ledger stays byte for byte."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from gates.promotion import register_candidate, rollback
from ledger import EntryError, Ledger
from ledger.errors import IdentifierError
from ledger.identifiers import IDENTIFIER_RULE, check_identifier, identifier_problem
from mrm.demo.models import version_name
from mrm.demo.scenario import SLOT

from .helpers import fingerprint
from .test_cli_gate import bootstrap, run, setup  # noqa: F401  (fixture)

TS = dt.datetime(2026, 4, 21, 9, 0, tzinfo=dt.timezone.utc)
README = Path(__file__).resolve().parents[1] / "README.md"

BAD_NAMES = ["../../../x", "..", ".", "a/b", "a\\b", "", ".hidden", "a..b", "-v1", " v1", "v1\n", "x" * 129,
             "v1 beta", "caf\u00e9", "%2e%2e", "a:b"]


@pytest.mark.parametrize("name", ["credit_pd", "v012", "task_churn", "a.b-c_1", "x" * 128, SLOT, version_name(5),
                                  "reco-2025w05-rc1"])
def test_the_rule_accepts_the_names_the_project_uses(name):
    assert identifier_problem(name) is None and check_identifier(name, "slot") == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_the_rule_refuses_paths_dots_and_anything_needing_quoting(name):
    with pytest.raises(IdentifierError) as caught:
        check_identifier(name, "eval.json: slot")
    assert str(caught.value).startswith("eval.json: slot: ") and IDENTIFIER_RULE in str(caught.value)


def test_the_rule_is_documented_once_in_the_readme():
    text = README.read_text(encoding="utf-8")
    assert "### Names" in text and IDENTIFIER_RULE in text


# --- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize("args, option", [
    (("approve", "--slot", "../../../x", "--version", "v012", "--operator", "a", "--reason", "b"), "--slot"),
    (("decline", "--slot", "credit_pd", "--version", "../v012", "--operator", "a", "--reason", "b"), "--version"),
    (("promote", "--force", "--slot", "credit_pd", "--version", "a/b", "--operator", "a", "--reason", "b"), "--version"),
    (("rollback", "--slot", "credit_pd", "--to-version", "..", "--operator", "a", "--reason", "b"), "--to-version"),
    (("registry", "register", "--slot", "credit_pd", "--version", "v1 beta"), "--version"),
    (("registry", "traffic", "--slot", "credit_pd", "--challenger", "../x", "--mode", "shadow", "--operator", "a",
      "--reason", "b"), "--challenger"),
])
def test_a_bad_name_option_is_exit_2_naming_the_option(setup, args, option):  # noqa: F811
    ledger, files = setup
    bootstrap(ledger, files["v011"])
    before = fingerprint(ledger)
    result = run(args[0], *([args[1]] if args[0] == "registry" else []), ledger,
                 *(args[2:] if args[0] == "registry" else args[1:]))
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output and "is not a valid name" in result.output
    assert fingerprint(ledger) == before


def test_an_evaluation_file_naming_a_slot_outside_the_rule_is_refused(setup, tmp_path):  # noqa: F811
    ledger, files = setup
    before = fingerprint(ledger)
    for field, value in (("slot", "../../../x"), ("version", "v012/../../x")):
        d = json.loads(files["v012"].read_text())
        d[field] = value
        bad = tmp_path / f"eval-bad-{field}.json"
        bad.write_text(json.dumps(d))
        for command in (("gate", "evaluate", ledger, bad, "--policy", "policy-auto.toml"),
                        ("registry", "register", ledger, bad)):
            result = run(*command)
            assert result.exit_code == 2, result.output
            assert f"error: {bad}: {field}: {value!r} is not a valid name" in result.output
    assert fingerprint(ledger) == before


def test_the_help_texts_point_at_the_rule():
    assert 'README "Names"' in " ".join(run("approve", "--help").output.split())


# --- the promotion API and the ledger itself ------------------------------------------------


def test_the_promotion_api_refuses_a_bad_name_before_reading_anything(ledger_path, keyring):
    before = fingerprint(ledger_path)
    with Ledger.open(ledger_path, keyring, actor="api") as ledger:
        with pytest.raises(IdentifierError, match=r"^slot: '\.\./\.\./x' is not a valid name"):
            register_candidate(ledger, slot="../../x", version="v1")
        with pytest.raises(IdentifierError, match="^to_version: 'a/b'"):
            rollback(ledger, slot="credit_pd", to_version="a/b", reason="r", operator="o")
    assert fingerprint(ledger_path) == before


@pytest.mark.parametrize("field", ["slot", "challenger_version", "champion_version"])
def test_the_ledger_refuses_a_promotion_entry_with_a_bad_name(ledger_path, keyring, field):
    before = fingerprint(ledger_path)
    entry = dict(slot="credit_pd", challenger_version="v2", champion_version="v1", decision="promote",
                 trigger="auto", reason="gate passed", ts=TS)
    entry[field] = "../../../x"
    with Ledger.open(ledger_path, keyring, actor="api") as ledger:
        with pytest.raises(EntryError) as caught:
            ledger.log_model_promotion(**entry, durable=True)
    assert f"table model_promotion, field {field!r}: '../../../x' is not a valid name" in str(caught.value)
    assert fingerprint(ledger_path) == before


def test_the_ledger_refuses_a_bad_model_slot_in_a_columnar_batch_naming_the_row(ledger_path, keyring):
    import pyarrow as pa

    before = fingerprint(ledger_path)
    rows = [dict(ts=TS, request_id=f"r{i}", subject_id=f"s{i}", model_slot="reco" if i != 3 else "reco/../../x",
                 model_version="v1", input_digest="ab" * 32, decision="d", latency_ms=1.0) for i in range(5)]
    with Ledger.open(ledger_path, keyring, actor="api") as ledger:
        with pytest.raises(EntryError, match=r"table model_inference, row 3, field 'model_slot': 'reco/\.\./\.\./x'"):
            ledger.append("model_inference", pa.Table.from_pylist(rows), durable=True)
    assert fingerprint(ledger_path) == before


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "models/../../x", "models\\v1\\model.bin"])
def test_an_artifact_path_must_stay_inside_the_artifacts_root(path):
    from gates.evaluation import EvaluationError, evaluation_from_mapping

    from .test_gates_decision import challenger_dict

    d = challenger_dict()
    d["lineage"]["artifacts"][0]["path"] = path
    with pytest.raises(EvaluationError, match=r"chal.json: lineage.artifacts\[0\].path: must be a relative path inside"):
        evaluation_from_mapping(d, "chal.json")
