"""`mrm map` and `mrm packs` on the command line: the evidence bundle, the coverage matrix,
verification, exit codes, and the ledger left untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mrm.cli import main

from . import mapping_ledgers as ml
from .helpers import edit_rows, fingerprint, segment_files
from .test_mappings_pack_format import VALID, line_of

FROM, TO = "2025-10-01", "2026-05-20"


def run(*args, env=None):
    base = {"MRM_KEYRING": "", "MRM_HMAC_KEY": "", "MRM_PACKS_DIR": ""}
    return CliRunner().invoke(main, [str(a) for a in args], env={**base, **(env or {})})


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    path = ml.build(tmp_path_factory.mktemp("cli") / "compliant")
    ml.inject(path, "thin_override")
    return path


@pytest.fixture
def ledger(tmp_path, template) -> Path:
    path = tmp_path / "ledger"
    shutil.copytree(template, path)
    return path


@pytest.fixture
def keyring_file(tmp_path) -> Path:
    path = tmp_path / "keyring.json"
    ml.keyring().save(path)
    return path


@pytest.fixture
def public_key(tmp_path) -> Path:
    path = tmp_path / "ledger.pub"
    path.write_text(ml.SIGNER.verifier().to_vkey() + "\n")
    return path


def test_map_writes_the_evidence_bundle_and_leaves_the_ledger_untouched(ledger, tmp_path, keyring_file):
    before = fingerprint(ledger)
    out = tmp_path / "bundle"
    result = run("map", ledger, "--pack", "sr-11-7", "--from", FROM, "--to", TO, "--out", out,
                 "--verify", "--keyring", keyring_file)
    assert result.exit_code == 0, result.output
    assert fingerprint(ledger) == before
    assert "GAP" in result.stdout and "sec5-2-override-analysis" in result.stdout
    assert "findings about the ledger, not errors (exit code 0; --fail-on-gap makes it 3)" in result.stdout
    assert f"evidence bundle (sr-11-7): {out}" in result.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["applicability"]["state"] == "partly_in_force"
    assert summary["applicability"]["evaluated_period"] == {"from": "2025-10-01T00:00:00Z", "to": "2026-04-17T00:00:00Z"}
    assert summary["rests_on"]["verified"] and summary["rests_on"]["method"] == "hmac-chain"
    assert summary["rests_on"]["checkpoint"]["bundled_as"] == "checkpoint.note"
    assert (out / "checkpoint.note").read_bytes().startswith(b"mrm-ledger/")
    assert hashlib.sha256((out / "pack.toml").read_bytes()).hexdigest() == summary["pack"]["sha256"]
    by_id = {r["id"]: r for r in summary["requirements"]}
    override = by_id["sec5-2-override-analysis"]
    assert override["status"] == "gap" and override["citation"].startswith("SR 11-7, Section V.2")
    (item,) = override["evidence"]
    assert item["offending_count"] == 1 and "string_split_regex" in item["sql"]
    files = {k: out / v for k, v in item["files"].items()}
    offending = pq.read_table(files["offending"]).to_pylist()
    assert [(r["operator"], r["reason"], r["documented"]) for r in offending] == [("eng-1", "hotfix", False)]
    assert pq.read_table(files["rows"]).num_rows == item["row_count"] == 3  # approve, force-promote, the hotfix
    query = files["query"].read_text()
    assert "-- parameters: $from = '2025-10-01T00:00:00Z', $to = '2026-04-17T00:00:00Z'" in query
    assert json.loads(files["result"].read_text())["status"] == "gap"
    assert by_id["sec6-inventory"]["status"] == "out_of_scope" and by_id["sec6-inventory"]["evidence"] == []


def test_fail_on_gap_exits_3_and_json_carries_the_result(ledger):
    result = run("map", ledger, "--pack", "sr-26-2", "--from", FROM, "--to", TO, "--no-bundle", "--fail-on-gap", "--json")
    assert result.exit_code == 3, result.output
    doc = json.loads(result.stdout)
    assert doc["bundle"] is None and doc["counts"]["gap"] == 1
    assert doc["rests_on"]["verified"] is False
    compliant = run("map", ledger, "--pack", "pipa-37-2", "--from", FROM, "--to", TO, "--no-bundle", "--fail-on-gap")
    assert compliant.exit_code == 0 and "evaluated: no requirement has a gap" in compliant.stdout


def test_all_prints_the_coverage_matrix(ledger, tmp_path):
    result = run("map", ledger, "--all", "--from", FROM, "--to", TO, "--as-if-in-force", "--json", "--out", tmp_path / "all")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    packs = {p["id"]: p for p in doc["packs"]}
    assert set(packs) == {"sr-11-7", "sr-26-2", "eu-ai-act", "kfcpa", "pipa-37-2", "credit-info-act-36-2", "ai-basic-act-34"}
    assert packs["eu-ai-act"]["applicability"]["as_if_in_force"] is True
    assert doc["totals"]["gap"] == 4  # the thin override, in SR 11-7, SR 26-2, AI Act 14(4)(d), AI Basic Act 34 item 4
    assert set(doc["bundles"]) == set(packs) and all(Path(b, "summary.json").is_file() for b in doc["bundles"].values())
    text = run("map", ledger, "--all", "--from", FROM, "--to", TO)
    assert text.exit_code == 0
    assert "eu-ai-act              not yet in force" in text.stdout
    assert "not yet in force in the period: it applies from 2027-12-02" in text.stdout


def test_verification_with_public_keys_rests_on_the_signed_checkpoint(ledger, public_key):
    result = run("map", ledger, "--pack", "kfcpa", "--from", FROM, "--to", TO, "--no-bundle", "--json",
                 "--verify", "--public-key", public_key)
    assert result.exit_code == 0, result.output
    rests = json.loads(result.stdout)["rests_on"]
    assert rests["method"] == "signed-checkpoint" and rests["checkpoint"]["signature_checked"] is True
    assert rests["through_seq"] == rests["checkpoint"]["size"] - 1


def test_a_ledger_that_fails_verification_is_not_evaluated(ledger, keyring_file, tmp_path):
    edit_rows(segment_files(ledger, "guardrail")[0], "guardrail",
              lambda rows: [{**r, "verdict": "pass"} if r["verdict"] == "modify" else r for r in rows])
    result = run("map", ledger, "--pack", "kfcpa", "--verify", "--keyring", keyring_file, "--out", tmp_path / "b")
    assert result.exit_code == 1
    assert "nothing was answered from this ledger" in result.output
    assert not (tmp_path / "b").exists()


def test_usage_errors_exit_2_with_the_reason(ledger, tmp_path):
    cases = [
        (["--pack", "kfcpa", "--all"], "give --pack NAME or --all"),
        (["--pack", "nope"], "no pack named 'nope'"),
        (["--pack", "kfcpa", "--from", "2026-01-01T00:00:00"], "has no time zone"),
        (["--pack", "kfcpa", "--from", "2026-05-01", "--to", "2026-01-01"], "is before its start"),
        (["--pack", "kfcpa", "--out", ledger / "tables"], "already exists"),
        (["--pack", "kfcpa", "--out", ledger / "evidence"], "inside the ledger"),
        (["--pack", "kfcpa", "--requirement", "art99"], "has no requirement 'art99'"),
    ]
    for args, message in cases:
        result = run("map", ledger, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)


def test_a_malformed_pack_is_refused_with_file_line_and_field(ledger, tmp_path):
    text = VALID.replace('kind = "all_rows_true"', 'kind = "all_true"')
    pack = tmp_path / "bad.toml"
    pack.write_text(text)
    result = run("map", ledger, "--pack", pack, "--no-bundle")
    assert result.exit_code == 2
    assert f"{pack}:{line_of(text, 'expect =')}: requirement[0].evidence[0].expect.kind: unknown expectation kind 'all_true'" in result.output


def test_packs_lists_and_checks_packs_including_the_users(tmp_path):
    result = run("packs", "--check")
    assert result.exit_code == 0, result.output
    assert "sr-11-7                2011-04-04 to 2026-04-16" in result.stdout
    assert "checked: every query of 7 pack(s) binds" in result.stdout
    mine = tmp_path / "packs"
    mine.mkdir()
    (mine / "test-pack.toml").write_text(VALID.replace("FROM decisions", "FROM decision"))
    bad = run("packs", "--packs-dir", mine, "--check")
    assert bad.exit_code == 2 and "test-pack.toml:" in bad.output and "decision" in bad.output
    (mine / "test-pack.toml").write_text(VALID)
    listed = run("packs", "--json", env={"MRM_PACKS_DIR": str(mine)})
    assert listed.exit_code == 0
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert rows["test-pack"]["builtin"] is False and rows["test-pack"]["evidenced"] == 1 and rows["test-pack"]["outside_ledger"] == 1
    assert rows["kfcpa"]["builtin"] is True
