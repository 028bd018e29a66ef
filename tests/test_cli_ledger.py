"""The ledger commands: init, ingest, status, keys, verify; exit codes 0 / 1 / 2."""

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mrm.cli import main
from mrm.synthetic import inference_batch

from .helpers import fingerprint, read_rows, segment_files, write_rows


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env or {"MRM_KEYRING": "", "MRM_HMAC_KEY": ""})


@pytest.fixture
def cli_ledger(tmp_path):
    path = tmp_path / "audit"
    result = run("init", path, "--key-id", "cli-k1")
    assert result.exit_code == 0, result.output
    return path


def test_init_keeps_the_key_beside_the_ledger(cli_ledger):
    keyring = cli_ledger.with_name("audit.keyring.json")
    assert keyring.exists() and oct(keyring.stat().st_mode & 0o777) == "0o600"
    assert not any("keyring" in p.name for p in cli_ledger.rglob("*"))
    doc = json.loads(run("status", cli_ledger, "--json").output)
    assert doc["entries"] == 1 and doc["key_ids"] == ["cli-k1"]


def test_ingest_formats_and_verify(cli_ledger, tmp_path):
    table = inference_batch(20, seed=1)
    pq.write_table(table, tmp_path / "in.parquet")
    rows = table.to_pylist()
    with open(tmp_path / "in.jsonl", "w") as f:
        for r in rows[:5]:
            f.write(json.dumps({**r, "ts": r["ts"].isoformat(), "scores": dict(r["scores"])}) + "\n")
    (tmp_path / "in.csv").write_text(
        "request_id,subject_id,model_slot,model_version,input_digest,decision,latency_ms,scores,ts\n"
        f'r-csv,c1,reco,v1,{"ab" * 32},refer,2.5,"{{""refer"": 0.7}}",2026-02-01T10:00:00+09:00\n'
    )
    for name, n in (("in.parquet", 20), ("in.jsonl", 5), ("in.csv", 1)):
        result = run("ingest", cli_ledger, "model_inference", tmp_path / name, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["entries"] == n
    result = run("verify", cli_ledger, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["entries"] == 27


def test_refused_line_is_named_and_nothing_is_written(cli_ledger, tmp_path):
    good = {"request_id": "a", "subject_id": "s", "model_slot": "m", "model_version": "v", "input_digest": "0" * 64, "decision": "x", "latency_ms": 1.0}
    (tmp_path / "bad.jsonl").write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "latency_ms": -3}) + "\n")
    before = fingerprint(cli_ledger)
    result = run("ingest", cli_ledger, "model_inference", tmp_path / "bad.jsonl")
    assert result.exit_code == 2
    assert "bad.jsonl:3" in result.output and "latency_ms" in result.output and "nothing was written" in result.output
    assert fingerprint(cli_ledger) == before


def test_verify_exit_codes(cli_ledger, tmp_path):
    run("ingest", cli_ledger, "model_inference", _parquet(tmp_path))
    assert run("verify", cli_ledger).exit_code == 0
    f = segment_files(cli_ledger, "model_inference")[0]
    rows = read_rows(f)
    rows[3]["decision"] = "approve!"
    write_rows(f, "model_inference", rows)
    result = run("verify", cli_ledger, "--json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["ok"] is False and doc["first_bad_seq"] == rows[3]["seq"]
    assert {p["kind"] for p in doc["problems"]} >= {"INVALID", "FILE"}
    # no key at all is a usage error, and says how to give one
    cli_ledger.with_name("audit.keyring.json").unlink()
    result = run("verify", cli_ledger)
    assert result.exit_code == 2 and "--keyring" in result.output


def test_keys_rotate_then_verify(cli_ledger, tmp_path):
    result = run("keys", "rotate", cli_ledger, "--key-id", "cli-k2", "--json")
    assert result.exit_code == 0, result.output
    run("ingest", cli_ledger, "model_inference", _parquet(tmp_path))
    listed = run("keys", "list", "--keyring", cli_ledger.with_name("audit.keyring.json"), "--json")
    assert [k["key_id"] for k in json.loads(listed.output)] == ["cli-k1", "cli-k2"]
    assert "cli-k2" in run("status", cli_ledger).output
    assert run("verify", cli_ledger).exit_code == 0


def test_secrets_never_printed(cli_ledger):
    keyring = json.loads(cli_ledger.with_name("audit.keyring.json").read_text())
    secret = keyring["keys"]["cli-k1"]
    outputs = [run(*a).output for a in (("status", cli_ledger), ("keys", "list", "--ledger", cli_ledger,
               "--keyring", cli_ledger.with_name("audit.keyring.json")), ("verify", cli_ledger, "--json"))]
    assert all(secret not in o for o in outputs)


def test_every_command_has_help_with_an_example():
    for command in ("init", "ingest", "status", "verify", "keys generate", "keys rotate", "keys list"):
        result = run(*command.split(), "--help")
        assert result.exit_code == 0 and "Example" in result.output, command


def _parquet(tmp_path):
    path = tmp_path / "batch.parquet"
    pq.write_table(inference_batch(10, seed=9), path)
    return path


def test_public_verification_proofs_and_checkpoint_commands(cli_ledger, tmp_path):
    run("ingest", cli_ledger, "model_inference", _parquet(tmp_path))
    pub = tmp_path / "ledger.pub"
    assert run("keys", "export-public", "--ledger", cli_ledger, "--out", pub).exit_code == 0
    assert run("checkpoint", cli_ledger, "--json").exit_code == 0
    state = tmp_path / "state.json"
    result = run("verify", cli_ledger, "--public-key", pub, "--state", state, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["mode"] == "public" and state.exists()
    proof = tmp_path / "p.json"
    assert run("prove", cli_ledger, "--seq", 3, "--out", proof).exit_code == 0
    assert run("verify-proof", proof, "--public-key", pub).exit_code == 0
    doc = json.loads(proof.read_text())
    doc["entries"][0]["entry"]["decision"] = "approve!"
    proof.write_text(json.dumps(doc))
    result = run("verify-proof", proof, "--public-key", pub, "--json")
    assert result.exit_code == 1 and json.loads(result.output)["ok"] is False
    assert run("prove", cli_ledger, "--seq", 10_000).exit_code == 2
    assert run("verify", cli_ledger, "--state", state).exit_code == 0  # the HMAC verification checks the same anchors
