"""`mrm sql` and `mrm reconstruct` on the command line: outputs, the shell, exit codes."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mrm.cli import main
from mrm.sql_shell import statement_complete

from .conftest import KEY
from .helpers import edit_rows, fingerprint, segment_files
from .test_sql_views import known, known_template  # noqa: F401  (fixtures)


def run(*args, input=None, env=None):
    base = {"MRM_KEYRING": "", "MRM_HMAC_KEY": "", "MRM_SQL_HISTORY": ""}
    return CliRunner().invoke(main, [str(a) for a in args], input=input, env={**base, **(env or {})})


@pytest.fixture
def keyfile(tmp_path):
    import base64

    path = tmp_path / "key.txt"
    path.write_text(f"test-k1:{base64.b64encode(KEY).decode()}\n")
    return path


def test_query_prints_a_table_and_says_it_was_not_verified(known):  # noqa: F811
    result = run("sql", known[0], "SELECT request_id, served_output FROM decisions ORDER BY request_id")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("-- NOT VERIFIED in this run")
    assert lines[1].split() == ["request_id", "served_output"]
    assert lines[3].split() == ["r1", "balanced_fund"] and "(5 rows)" in lines[-1]


def test_csv_json_parquet_to_stdout_and_files(known, tmp_path):  # noqa: F811
    query = "SELECT request_id, ts, scores, top_features FROM decisions ORDER BY request_id"
    result = run("sql", known[0], query, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["request_id"] for r in rows] == ["r1", "r2", "r3", "r4", "r5"]
    assert rows[0]["ts"] == "2025-09-01T01:00:00.000010Z"
    assert json.loads(rows[0]["scores"]) == {"els_note": 0.7, "deposit_12m": 0.2, "bond_fund": 0.1}
    assert "NOT VERIFIED" in result.stderr and "NOT VERIFIED" not in result.stdout

    result = run("sql", known[0], "SELECT * FROM subject_timeline('s1') LIMIT 1", "--format", "json")
    doc = json.loads(result.stdout)
    assert doc[0]["entry"]["subject_id"] == "s1"  # JSON columns are embedded, not quoted

    out = tmp_path / "d.parquet"
    result = run("sql", known[0], query, "--format", "parquet", "-o", out)
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).column("request_id").to_pylist() == ["r1", "r2", "r3", "r4", "r5"]
    out = tmp_path / "d.json"
    assert run("sql", known[0], query, "--format", "json", "-o", out).exit_code == 0
    assert len(json.loads(out.read_text())) == 5


def test_refusals_and_errors_exit_2_and_change_nothing(known, tmp_path):  # noqa: F811
    before = fingerprint(known[0])
    for sql in (f"COPY (SELECT 1) TO '{known[0]}/x.csv'", "ATTACH ':memory:' AS m", "SET enable_external_access = true",
                "DROP VIEW decisions", "SELEC 1", "SELECT nope FROM decisions", "INSTALL httpfs"):
        result = run("sql", known[0], sql)
        assert result.exit_code == 2, (sql, result.output)
        assert result.stderr.startswith("error: ") and "Traceback" not in result.output
    result = run("sql", known[0], "SELECT 1", "-o", known[0] / "out.csv", "--format", "csv")
    assert result.exit_code == 2 and "inside the ledger" in result.stderr
    result = run("sql", known[0], "SELECT 1", "--export-dir", known[0] / "tables")
    assert result.exit_code == 2 and "overlaps the ledger" in result.stderr
    result = run("sql", known[0], "SELECT 1; SELECT 2", "--format", "csv")
    assert result.exit_code == 2 and "2 statements" in result.stderr
    result = run("sql", tmp_path, "SELECT 1")
    assert result.exit_code == 2 and "not a ledger" in result.stderr
    assert fingerprint(known[0]) == before


def test_copy_to_the_export_dir(known, tmp_path):  # noqa: F811
    export = tmp_path / "out"
    export.mkdir()
    result = run("sql", known[0], f"COPY (SELECT * FROM manual_overrides()) TO '{export}/overrides.csv'", "--export-dir", export)
    assert result.exit_code == 0, result.output
    assert "wrote 2 rows" in result.output
    assert len(list(csv.DictReader(open(export / "overrides.csv")))) == 2


def test_verify_flag(known, keyfile):  # noqa: F811
    result = run("sql", known[0], "SELECT verified, through_seq FROM ledger_info", "--verify", "--keyring", keyfile)
    assert result.exit_code == 0, result.output
    assert "-- verified (hmac-chain): answers rest on entries 0-25" in result.stdout
    assert run("sql", known[0], "SELECT 1", "--verify").exit_code == 2  # no key anywhere
    assert run("sql", known[0], "SELECT 1", "--keyring", keyfile).exit_code == 2  # a key without --verify is a mistake


def test_a_tampered_ledger_exits_1_with_verify(known, keyfile):  # noqa: F811
    [f] = [f for f in segment_files(known[0], "guardrail") if "000000000015" in f.name]
    edit_rows(f, "guardrail", lambda rows: [{**r, "verdict": "pass"} for r in rows])
    result = run("sql", known[0], "SELECT * FROM decisions", "--verify", "--keyring", keyfile)
    assert result.exit_code == 1
    assert "FAILED" in result.stderr and "nothing was answered" in result.stderr and "r1" not in result.stdout
    result = run("reconstruct", known[0], "--request-id", "r3", "--verify", "--keyring", keyfile)
    assert result.exit_code == 1 and "INVALID" in result.stderr
    assert run("reconstruct", known[0], "--request-id", "r3").exit_code == 0  # unverified: reads, and says so


def test_shell_script_from_stdin(known):  # noqa: F811
    script = ".tables\n.schema champion_at\nSELECT count(*) AS n\n  FROM decisions;\n.timing on\nSELECT 'a;b' AS s;\n"
    result = run("sql", known[0], input=script)
    assert result.exit_code == 0, result.output
    assert "champion_at(slot, ts)" in result.stdout and "CREATE MACRO champion_at" in result.stdout
    assert "5" in result.stdout and "a;b" in result.stdout and "time: " in result.stdout
    result = run("sql", known[0], input="SELECT 1;\nATTACH ':memory:' AS m;\nSELECT 2;\n")
    assert result.exit_code == 2 and "ATTACH statements are refused" in result.stderr
    assert run("sql", known[0], input=".bogus\n").exit_code == 2


def test_statement_completion():
    assert statement_complete("SELECT 1;")
    assert not statement_complete("SELECT ';")
    assert not statement_complete("SELECT 'a;'")
    assert statement_complete("SELECT 'a;';  ")
    assert not statement_complete("SELECT 1 -- done;")


def test_reconstruct_text_and_json(known):  # noqa: F811
    result = run("reconstruct", known[0], "--request-id", "r2")
    assert result.exit_code == 0, result.output
    assert "force_promote of reco-v2" in result.stdout and "operator officer-7" in result.stdout and "NOT VERIFIED" in result.stdout
    result = run("reconstruct", known[0], "--subject", "s1", "--at", "2025-09-01T03:00:00Z", "--json")
    doc = json.loads(result.stdout)
    assert doc["request_id"] == "r1" and doc["promotion"]["decision"] == "bootstrap"
    assert doc["data_access"][0]["operator"] == "teller-1" and doc["attestation"]["verified"] is False


@pytest.mark.parametrize(
    "args, message",
    [
        (["--request-id", "nope"], "no model_inference entry for request 'nope'"),
        (["--subject", "s1", "--at", "2025-09-01"], "has no time zone"),
        (["--subject", "s1", "--at", "2020-01-01T00:00:00Z"], "no served decision at or before"),
        ([], "exactly one"),
        (["--request-id", "r1", "--subject", "s1"], "exactly one"),
    ],
)
def test_reconstruct_input_errors_exit_2(known, args, message):  # noqa: F811
    result = run("reconstruct", known[0], *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_interactive_shell_multiline_interrupts_and_history(known, tmp_path, monkeypatch):  # noqa: F811
    from forensics.session import LedgerSQL
    from mrm.sql_shell import CONTINUE, PROMPT, Shell

    lines = iter(["SELECT request_id", "FROM decisions", "ORDER BY request_id LIMIT 2;", "SELECT 'abandoned'", KeyboardInterrupt,
                  ".timing maybe", "ATTACH ':memory:' AS m;", "", ".schema decisions", ".quit"])
    prompts = []

    def read(prompt):
        prompts.append(prompt)
        item = next(lines)
        if item is KeyboardInterrupt:
            raise KeyboardInterrupt
        return item

    history = tmp_path / "history"
    monkeypatch.setenv("MRM_SQL_HISTORY", str(history))
    out, err = io.StringIO(), io.StringIO()
    with LedgerSQL.open(known[0]) as session:
        assert Shell(session, out, err).interactive(read) == 0
    assert prompts[:4] == [PROMPT, CONTINUE, CONTINUE, PROMPT]
    assert "r1" in out.getvalue() and "r2" in out.getvalue() and "(2 rows)" in out.getvalue()
    assert "abandoned" not in out.getvalue() and "^C" in out.getvalue()
    assert ".timing takes on or off" in err.getvalue() and "ATTACH statements are refused" in err.getvalue()
    assert "served_output VARCHAR" in out.getvalue()
    assert err.getvalue().startswith("NOT VERIFIED in this run")


def test_history_is_never_written_inside_the_ledger(known, monkeypatch):  # noqa: F811
    from forensics.session import LedgerSQL
    from mrm.sql_shell import Shell

    monkeypatch.setenv("MRM_SQL_HISTORY", str(known[0] / "history"))
    before = fingerprint(known[0])
    with LedgerSQL.open(known[0]) as session:
        Shell(session, io.StringIO(), io.StringIO()).interactive(lambda prompt: (_ for _ in ()).throw(EOFError))
    assert fingerprint(known[0]) == before


def test_a_missing_listed_file_exits_1(known):  # noqa: F811
    victim = sorted((known[0] / "tables" / "guardrail").glob("*.parquet"))[0]
    victim.unlink()
    for args in (["sql", known[0], "SELECT 1"], ["reconstruct", known[0], "--request-id", "r1"]):
        result = run(*args)
        assert result.exit_code == 1 and "which is missing" in result.stderr
