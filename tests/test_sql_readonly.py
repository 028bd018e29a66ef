"""`mrm sql` cannot change the ledger: every way of writing we know of is refused, and the
ledger's files stay the same byte for byte.

Each attack runs twice: through the session's statement check (what users get) and straight
on the DuckDB connection behind it, to show the lower layer (no file access to the ledger,
locked configuration) holds on its own.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import duckdb
import pytest

from forensics.errors import ExportDirError, QueryError, QueryRefused, UnreadableEvidence
from forensics.evidence import EvidenceReader
from forensics.session import LedgerSQL
from forensics.source import open_source

from .helpers import fingerprint
from .test_sql_views import known, known_template  # noqa: F401  (fixtures)


def attacks(ledger: Path, listed: Path, export: Path) -> list[str]:
    return [
        # writing files into the ledger
        f"COPY (SELECT 1 AS a) TO '{ledger}/tables/model_inference/999999999990-999999999999.parquet' (FORMAT parquet)",
        f"COPY (SELECT 1 AS a) TO '{listed}' (FORMAT parquet, USE_TMP_FILE false)",
        f"COPY (SELECT 1 AS a) TO '{listed}' (FORMAT parquet, OVERWRITE true)",
        f"COPY (SELECT 'x' AS a) TO '{ledger}/manifest/000000000000.json' (FORMAT csv, HEADER false)",
        f"COPY (SELECT 'x' AS a) TO '{ledger}/HEAD' (FORMAT csv)",
        f"COPY model_inference TO '{ledger}/tables' (FORMAT parquet, PARTITION_BY (model_slot), OVERWRITE_OR_IGNORE)",
        f"COPY (SELECT 1 AS a) TO '{export}/../{ledger.name}/x.csv'",
        f"EXPORT DATABASE '{ledger}/dump'",
        # databases
        f"ATTACH '{ledger}/evil.duckdb' AS evil",
        f"ATTACH '{listed}' AS p",
        "ATTACH ':memory:' AS scratch",
        f"ATTACH '{ledger}/evil.db' AS evil (TYPE sqlite)",
        "DETACH memory",
        "USE system",
        # changing data or definitions
        "CREATE TABLE t AS SELECT 1",
        "CREATE TEMP TABLE t AS SELECT 1",
        "CREATE OR REPLACE VIEW decisions AS SELECT 'forged' AS request_id",
        "CREATE MACRO champion_at(a, b) AS TABLE SELECT 'forged'",
        "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "INSERT INTO model_inference (seq) VALUES (1)",
        "UPDATE model_inference SET decision = 'forged'",
        "DELETE FROM guardrail",
        "DROP VIEW decisions",
        "ALTER VIEW decisions RENAME TO d2",
        "TRUNCATE guardrail",
        f"COPY model_inference FROM '{listed}'",
        # extensions and the network
        "INSTALL httpfs",
        "LOAD httpfs",
        f"LOAD '{ledger}/evil.duckdb_extension'",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        # undoing the restrictions
        "SET enable_external_access = true",
        "RESET enable_external_access",
        "SET lock_configuration = false",
        f"SET allowed_directories = ['{ledger}']",
        f"SET temp_directory = '{ledger}'",
        f"SET profiling_output = '{ledger}/profile.json'",
        "PRAGMA enable_profiling",
        f"PRAGMA enable_checkpoint_on_shutdown",
        "CALL enable_profiling()",
        "CHECKPOINT",
        "VACUUM",
        "BEGIN TRANSACTION",
        "PREPARE p AS SELECT 1",
        # reading outside the listed files
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM sniff_csv('/etc/passwd')",
        f"SELECT * FROM glob('{ledger}/*')",
        f"SELECT * FROM read_parquet('{ledger}/tables/*/*.parquet')",
        f"SELECT * FROM read_parquet('{listed}')",
        f"SELECT * FROM read_blob('{ledger}/HEAD')",
        "SELECT * FROM query('ATTACH '':memory:'' AS q')",
        # a refused statement hidden behind a harmless one: nothing runs
        f"SELECT 1; COPY (SELECT 1) TO '{ledger}/late.csv'",
    ]


@pytest.fixture
def setup(known, tmp_path):  # noqa: F811
    ledger = known[0]
    export = tmp_path / "exports"
    export.mkdir()
    listed = sorted((ledger / "tables" / "model_inference").glob("*.parquet"))[0]
    return ledger, listed, export


def test_every_attack_is_refused_and_the_ledger_is_unchanged(setup):
    ledger, listed, export = setup
    before = fingerprint(ledger)
    with LedgerSQL.open(ledger, export_dir=export) as s:
        for sql in attacks(ledger, listed, export):
            with pytest.raises((QueryRefused, QueryError)) as caught:
                for statement in s.statements(sql):
                    s.run(statement).table()
            assert str(caught.value), sql
        # the session still answers, from the record as it was
        assert s.query("SELECT count(*) AS n FROM decisions").to_pylist() == [{"n": 5}]
        assert s.query("SELECT request_id FROM decision_of('r1')").to_pylist() == [{"request_id": "r1"}]
    assert fingerprint(ledger) == before
    assert not any(p.name.startswith("evil") for p in ledger.parent.rglob("*"))
    assert [p.name for p in export.iterdir()] == []  # nothing was written even to the export dir


@pytest.mark.parametrize("sql_index", range(len(attacks(Path("/l"), Path("/l/f"), Path("/e")))))
def test_duckdb_itself_refuses_writes_into_the_ledger(setup, sql_index):
    """Below the statement check: the raw connection. Statements that are harmless inside the
    private in-memory database (CREATE TEMP TABLE...) may run there; nothing may reach a file
    of the ledger, and no setting may be changed."""
    ledger, listed, export = setup
    sql = attacks(ledger, listed, export)[sql_index]
    before = fingerprint(ledger)
    with LedgerSQL.open(ledger, export_dir=export) as s:
        try:
            s.con.execute(sql).fetchall()
        except duckdb.Error:
            pass
        settings = dict(s.con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', 'lock_configuration', 'allowed_directories', 'allowed_paths')"
        ).fetchall())
        private_tmp = s._tmp
    assert fingerprint(ledger) == before, sql
    assert settings["enable_external_access"] == "false" and settings["lock_configuration"] == "true"
    # DuckDB adds its own spill directory: a private part of the export dir, removed on close
    allowed = sorted(d.strip() for d in settings["allowed_directories"].strip("[]").split(","))
    assert allowed == sorted([f"{private_tmp}/", f"{export.resolve()}/"]) and settings["allowed_paths"] == "[]"
    assert Path(private_tmp).parent == export.resolve()
    assert sorted(p.name for p in ledger.iterdir()) == sorted(before_names(before))


def before_names(fp: dict[str, str]) -> set[str]:
    return {k.split("/")[0] for k in fp} | {"LOCK", ".store-lock"}  # lock files: only ever flocked


def test_without_an_export_dir_no_file_can_be_written_at_all(known, tmp_path):  # noqa: F811
    with LedgerSQL.open(known[0]) as s:
        with pytest.raises(QueryRefused, match="--export-dir"):
            s.run(s.statements(f"COPY (SELECT 1) TO '{tmp_path}/x.csv'")[0])
    assert not (tmp_path / "x.csv").exists()


def spill_attacks(spill: Path, export: Path | None = None) -> list[str]:
    """Writes aimed at DuckDB's own spill directory, which DuckDB always allows."""
    out = [f"COPY (SELECT 1 AS a) TO '{spill}/x.csv'",
           f"COPY (SELECT 1 AS a, 2 AS b) TO '{spill}/p' (FORMAT csv, PARTITION_BY (a))"]
    if export is not None:  # through an option, from inside the export directory
        up = os.path.relpath(spill, export / "p")
        out.append(f"COPY (SELECT 1 AS a, 2 AS b) TO '{export}/p' (FORMAT csv, PARTITION_BY (a), "
                   f"FILE_EXTENSION 'csv/../../{up}/y')")
    return out


def test_duckdbs_spill_directory_is_no_way_around_the_export_dir(known, tmp_path):  # noqa: F811
    """DuckDB adds its temp_directory to allowed_directories; without --export-dir no COPY
    runs, so SQL cannot write there either (once it could, contrary to the documentation)."""
    before = fingerprint(known[0])
    with LedgerSQL.open(known[0]) as s:
        spill = Path(s._tmp)
        for sql in spill_attacks(spill):
            with pytest.raises(QueryRefused, match="writes none without --export-dir"):
                for statement in s.statements(sql):
                    s.run(statement)
        assert list(spill.iterdir()) == []
    assert fingerprint(known[0]) == before


def test_with_an_export_dir_duckdb_spills_inside_it_and_writes_nowhere_else(known, tmp_path):  # noqa: F811
    export = tmp_path / "exports"
    export.mkdir()
    outside = Path(tempfile.mkdtemp(prefix="mrm-outside-", dir=tmp_path))
    before = fingerprint(known[0])
    with LedgerSQL.open(known[0], export_dir=export) as s:
        allowed = s.con.execute("SELECT value FROM duckdb_settings() WHERE name = 'allowed_directories'").fetchall()[0][0]
        assert all(Path(d.strip()).is_relative_to(export.resolve()) for d in allowed.strip("[]").split(","))
        assert Path(s._tmp).parent == export.resolve()  # the spill directory is a private part of it
        for sql in spill_attacks(outside, export):
            with pytest.raises(QueryError):
                for statement in s.statements(sql):
                    s.run(statement)
        s.run(s.statements(f"COPY (SELECT 1 AS a) TO '{export}/ok.csv'")[0])  # exports still work
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in export.iterdir()) == ["ok.csv"]  # the spill directory is gone
    assert fingerprint(known[0]) == before


@pytest.mark.parametrize("how", ["shell", "one-shot query"])
def test_mrm_sql_refuses_copy_into_the_spill_directory_without_an_export_dir(known, tmp_path, monkeypatch, how):  # noqa: F811
    from click.testing import CliRunner

    from mrm.cli import main

    spill = tmp_path / "duckdb-spill"

    def fixed_mkdtemp(prefix=None, dir=None, suffix=None):
        spill.mkdir()
        return str(spill)

    monkeypatch.setattr(tempfile, "mkdtemp", fixed_mkdtemp)  # so the attack knows where DuckDB spills
    before = fingerprint(known[0])
    sql = f"COPY (SELECT 42 AS answer) TO '{spill}/x.csv'"
    args = ["sql", str(known[0])] + ([sql] if how == "one-shot query" else [])
    result = CliRunner().invoke(main, args, input=sql + ";\n" if how == "shell" else None,
                                env={"MRM_KEYRING": "", "MRM_HMAC_KEY": "", "MRM_SQL_HISTORY": ""})
    assert result.exit_code == 2, result.output
    assert "writes none without --export-dir DIR" in result.output
    assert not (spill / "x.csv").exists()
    assert fingerprint(known[0]) == before


def test_python_variables_are_not_reachable(known):  # noqa: F811
    secret_rows = [{"x": 1}]  # noqa: F841  (DuckDB's replacement scan would find this by name)
    with LedgerSQL.open(known[0]) as s:
        with pytest.raises(QueryError, match="secret_rows"):
            s.query("SELECT * FROM secret_rows")


@pytest.mark.parametrize("where", ["inside", "ledger itself", "parent of ledger"])
def test_export_dir_must_not_overlap_the_ledger(known, where):  # noqa: F811
    ledger = known[0]
    target = {"inside": ledger / "tables", "ledger itself": ledger, "parent of ledger": ledger.parent}[where]
    with pytest.raises(ExportDirError, match="overlaps the ledger"):
        LedgerSQL.open(ledger, export_dir=target)


def test_export_dir_with_links_into_the_ledger_is_refused(known, tmp_path):  # noqa: F811
    ledger = known[0]
    export = tmp_path / "exports"
    export.mkdir()
    (export / "sneaky").symlink_to(ledger / "tables")
    with pytest.raises(ExportDirError, match="links into the ledger"):
        LedgerSQL.open(ledger, export_dir=export)
    (export / "sneaky").unlink()
    listed = sorted((ledger / "tables" / "guardrail").glob("*.parquet"))[0]
    os.link(listed, export / "hard.parquet")
    with pytest.raises(ExportDirError, match="hard link"):
        LedgerSQL.open(ledger, export_dir=export)


def test_a_manifest_naming_files_outside_the_ledger_is_refused(known):  # noqa: F811
    ledger = known[0]
    record = sorted((ledger / "manifest").glob("*.json"))[1]
    doc = json.loads(record.read_text())
    doc["files"][0]["path"] = "../../../../etc/passwd"
    record.write_text(json.dumps(doc) + "\n")
    with pytest.raises(UnreadableEvidence, match="outside the ledger's tables/ directory"):
        LedgerSQL.open(ledger)


def test_a_missing_listed_file_is_named(known):  # noqa: F811
    ledger = known[0]
    victim = sorted((ledger / "tables" / "attribution").glob("*.parquet"))[0]
    victim.unlink()
    with pytest.raises(UnreadableEvidence, match=f"{victim.name}, which is missing"):
        LedgerSQL.open(ledger)


def test_the_evidence_readers_connection_is_locked_to_reading_the_listed_files(known):  # noqa: F811
    ledger = known[0]
    before = fingerprint(ledger)
    source = open_source(ledger)
    listed = source.files["model_inference"][0]
    with EvidenceReader(source) as reader:
        for sql in (f"COPY (SELECT 1 AS a) TO '{ledger}/x.parquet'", "SET enable_external_access = true", "SET lock_configuration = false",
                    "SELECT * FROM read_csv('/etc/passwd')", "INSTALL httpfs"):
            with pytest.raises(duckdb.Error):
                reader.con.execute(sql).fetchall()
        assert reader.con.execute(f"SELECT count(*) FROM read_parquet('{listed}')").fetchall()[0][0] > 0
    assert fingerprint(ledger) == before


def test_a_read_only_copy_of_the_ledger_can_be_queried(known, tmp_path, monkeypatch):  # noqa: F811
    """Examiners often work on a read-only copy: nothing needs write access, not even LOCK."""
    ledger = tmp_path / "readonly"
    shutil.copytree(known[0], ledger)
    (ledger / "LOCK").unlink(missing_ok=True)
    real_open = os.open

    def read_only_open(path, flags, *args):
        if str(path).startswith(str(ledger)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(13, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only_open)
    with LedgerSQL.open(ledger) as s:
        assert s.query("SELECT count(*) AS n FROM decisions").to_pylist() == [{"n": 5}]
    assert not (ledger / "LOCK").exists()


def test_a_temporary_directory_inside_the_ledger_is_refused_before_anything_is_created(known, monkeypatch):  # noqa: F811
    import tempfile

    from forensics.errors import ForensicsError

    ledger = known[0]
    before = fingerprint(ledger)
    monkeypatch.setattr(tempfile, "tempdir", str(ledger / "tables"))
    with pytest.raises(ForensicsError, match="TMPDIR"):
        LedgerSQL.open(ledger)
    assert fingerprint(ledger) == before and sorted(p.name for p in (ledger / "tables").iterdir()) == sorted(
        p.name for p in (ledger / "tables").iterdir() if not p.name.startswith("mrm-"))
