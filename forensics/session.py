"""A read-only SQL session over one ledger snapshot (what `mrm sql` runs).

Why nothing run here can change the ledger, in three independent layers:

1. DuckDB never gets a path into the ledger. The audit tables reach it as Arrow datasets
   that Python opens read-only (``mrm_raw_<table>``); DuckDB's own file system is closed
   with ``enable_external_access = false``, so ``COPY ... TO``, ``ATTACH``, ``EXPORT``,
   ``read_csv`` and friends can reach no file at all, except under ``--export-dir`` (checked
   to lie outside the ledger and to hold no link into it). DuckDB's ``allowed_paths`` is not
   used for the ledger's files: it allows *writing* them too (``COPY ... TO`` an allowed path
   with ``USE_TMP_FILE false`` overwrites it). DuckDB always lets SQL write its own spill
   directory as well (it adds ``temp_directory`` to ``allowed_directories``, and a path in a
   COPY option or in the data of a ``PARTITION_BY`` column can lead there), so with
   ``--export-dir`` the session spills into a private subdirectory of it (removed on close),
   and without one no ``COPY`` runs at all (layer 3).
2. The configuration is locked (``lock_configuration = true``) after the session is set up:
   ``SET``, ``RESET`` and ``PRAGMA`` cannot undo the above; extension installing and loading,
   autoloading, community extensions, persistent secrets and Python replacement scans are off,
   and DuckDB spills to a private temporary directory, never the working directory.
3. Each statement is classified by DuckDB's own parser before it runs; only SELECT (including
   DESCRIBE, SHOW, SUMMARIZE), EXPLAIN and, with an export directory, COPY ... TO are
   accepted. ATTACH, CREATE, INSERT, SET, PRAGMA, LOAD, INSTALL, EXPORT, CALL and every other
   kind are refused with a message.

The database itself is in memory and private to the session; the only state is the views.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb
import pyarrow as pa

from ledger.schema import TABLE_NAMES
from ledger.storage import Layout, read_meta
from ledger.transfer import RetentionState

from .attestation import Attestation, Verifier
from .errors import ExportDirError, QueryError, QueryRefused
from .registry import read_registry_tables
from .retention import retention_tables
from .source import Source, open_source, private_temp_dir
from .views import MACRO_NAMES, OBJECTS, VIEW_NAMES

ST = duckdb.StatementType
ALLOWED_STATEMENTS = {ST.SELECT: "SELECT", ST.EXPLAIN: "EXPLAIN", ST.COPY: "COPY ... TO"}
_REFUSED_HINT = "mrm sql is read-only: it runs SELECT (also DESCRIBE, SHOW, SUMMARIZE), EXPLAIN and COPY (...) TO a file under --export-dir"
_MAX_EXPORT_DIR_ENTRIES = 10_000
_WORD = re.compile(r"[A-Za-z_]*")


@dataclass(frozen=True)
class Statement:
    text: str
    kind: str  # "query" (rows), "explain" or "copy"


class LedgerSQL:
    """Use :meth:`open`; run one statement at a time with :meth:`query` or :meth:`run`."""

    def __init__(
        self,
        source: Source,
        *,
        export_dir: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        memory_limit: str | None = None,
        retention: RetentionState | None = None,
    ):
        self.source = source
        self.retention = retention
        self.export_dir = checked_export_dir(export_dir, source) if export_dir is not None else None
        # SQL can write wherever DuckDB spills (layer 1): inside the export directory, or,
        # without one, a private directory that no statement reaches (no COPY runs then).
        self._tmp = private_temp_dir(source.root, ".mrm-spill-" if self.export_dir else "mrm-sql-", self.export_dir)
        self.con = duckdb.connect(":memory:", config={"threads": threads or max(1, min(os.cpu_count() or 1, 4))})
        try:
            self._load()
            self._lock_down(memory_limit)
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        verifier: Verifier | None = None,
        export_dir: str | os.PathLike[str] | None = None,
        retention: RetentionState | None = None,
        **options: Any,
    ) -> "LedgerSQL":
        """`retention`: the retention state of the store the ledger lives in
        (ledger.transfer.retention_state, as `mrm status` reads it), for the views
        ledger_retention and ledger_retention_objects. Without it a directory is shown as
        keeping no lock, and a mirror of an object store as not read (forensics.retention)."""
        return cls(open_source(path, verifier), export_dir=export_dir, retention=retention, **options)

    @property
    def attestation(self) -> Attestation:
        return self.source.attestation

    # ------------------------------------------------------------------ setup
    def _load(self) -> None:
        con, source = self.con, self.source
        con.execute("SET TimeZone = 'UTC'")
        for table in TABLE_NAMES:
            con.register(f"mrm_raw_{table}", source.dataset(table))
        registry = read_registry_tables(source)
        con.register("mrm_production", registry.production)
        con.register("mrm_registry_history", registry.history)
        con.register("mrm_registry_problems", registry.problems)
        con.register("mrm_ledger_files", _files_table(source))
        con.register("mrm_ledger_info", pa.Table.from_pylist([self.attestation.to_dict()], schema=_INFO_SCHEMA))
        summary, objects = retention_tables(source.root, read_meta(Layout(source.root)).retain_days, source.records,
                                            self.retention)
        con.register("mrm_ledger_retention", summary)
        con.register("mrm_ledger_retention_objects", objects)
        for obj in OBJECTS:
            con.execute(obj.sql)

    def _lock_down(self, memory_limit: str | None) -> None:
        settings: list[tuple[str, Any]] = [
            ("temp_directory", self._tmp),
            ("autoinstall_known_extensions", False),
            ("autoload_known_extensions", False),
            ("allow_community_extensions", False),
            ("allow_persistent_secrets", False),
            ("python_enable_replacements", False),
            ("allowed_directories", [_dir_prefix(self.export_dir)] if self.export_dir else []),
            ("enable_external_access", False),
        ]
        if memory_limit:
            settings.append(("memory_limit", memory_limit))
        for name, value in settings:
            self.con.execute(f"SET {name} = ?", [value])
        self.con.execute("SET lock_configuration = true")

    # ------------------------------------------------------------------ statements
    def statements(self, sql: str) -> list[Statement]:
        """Split `sql` into statements, refusing any that is not a read or an export."""
        try:
            parsed = self.con.extract_statements(sql)
        except duckdb.Error as e:
            raise QueryError(_message(e)) from None
        out = []
        for st in parsed:
            if st.type not in ALLOWED_STATEMENTS:
                kind = st.type.name.replace("_", " ")
                raise QueryRefused(f"{kind} statements are refused: {_REFUSED_HINT}. Refused: {_excerpt(st.query)}")
            kind = {ST.SELECT: "query", ST.EXPLAIN: "explain", ST.COPY: "copy"}[st.type]
            if kind == "copy" and _is_copy_from(st.query):
                raise QueryRefused(f"COPY ... FROM is refused: {_REFUSED_HINT}. Refused: {_excerpt(st.query)}")
            if kind == "copy" and self.export_dir is None:
                raise QueryRefused("COPY ... TO writes a file, and mrm sql writes none without --export-dir DIR "
                                   f"(a directory outside the ledger). Refused: {_excerpt(st.query)}")
            out.append(Statement(st.query.strip().rstrip(";").strip(), kind))
        return out

    def run(self, statement: Statement, params: Sequence[Any] | None = None, *, batch_size: int = 10_000) -> "Result":
        """Run one checked statement. Read the result before running the next one."""
        try:
            if statement.kind == "copy":
                rows = self.con.execute(statement.text, params or None).fetchall()
                return Result(statement, [], [], iter(()), copied=int(rows[0][0]) if rows and rows[0] else 0)
            relation = self.con.sql(statement.text, params=params or None)
            types = [str(t) for t in relation.types]
            reader = relation.to_arrow_reader(batch_size)
        except duckdb.Error as e:
            raise QueryError(_message(e)) from None
        return Result(statement, list(reader.schema.names), types, _batches(reader), schema=reader.schema)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run exactly one read statement and return all its rows."""
        statements = self.statements(sql)
        if len(statements) != 1:
            raise QueryError(f"expected one statement, got {len(statements)}")
        return self.run(statements[0], params).table()

    def interrupt(self) -> None:
        self.con.interrupt()

    # ------------------------------------------------------------------ catalogue
    def views(self) -> tuple[str, ...]:
        return VIEW_NAMES

    def macros(self) -> tuple[str, ...]:
        return MACRO_NAMES

    def columns(self, name: str) -> list[tuple[str, str]]:
        """(column, type) of a view."""
        if name not in VIEW_NAMES:
            raise QueryError(f"no view named {name!r}; the views are {', '.join(VIEW_NAMES)}")
        rows = self.con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? AND NOT internal ORDER BY column_index", [name]
        ).fetchall()
        return [(str(c), str(t)) for c, t in rows]

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        try:
            self.con.close()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "LedgerSQL":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Result:
    statement: Statement
    columns: list[str]
    types: list[str]  # DuckDB's type names (JSON columns arrive in Arrow as text)
    batches: Iterator[pa.RecordBatch]
    copied: int | None = None  # rows written by a COPY
    schema: pa.Schema | None = None

    def table(self) -> pa.Table:
        schema = self.schema or pa.schema([])
        return pa.Table.from_batches(list(self.batches), schema=schema)


def _batches(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    try:
        for batch in reader:
            yield batch
    except duckdb.Error as e:
        raise QueryError(_message(e)) from None
    except pa.ArrowException as e:
        raise QueryError(str(e)) from None
    finally:
        reader.close()


# ---------------------------------------------------------------------- export directory


def checked_export_dir(export_dir: str | os.PathLike[str], source: Source) -> Path:
    """The real path of --export-dir, refused if it overlaps the ledger or holds a link into it."""
    real = Path(os.path.realpath(export_dir))
    if not real.is_dir():
        raise ExportDirError(f"--export-dir {export_dir}: not an existing directory")
    root = source.root
    if real == root or root in real.parents or real in root.parents:
        raise ExportDirError(f"--export-dir {export_dir} overlaps the ledger at {root}; exports must go outside it")
    ledger_inodes = _inodes(source.root)
    seen = 0
    for dirpath, dirnames, filenames in os.walk(real):
        for name in dirnames + filenames:
            seen += 1
            if seen > _MAX_EXPORT_DIR_ENTRIES:
                raise ExportDirError(f"--export-dir {export_dir} holds more than {_MAX_EXPORT_DIR_ENTRIES:,} entries; use an empty directory")
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.islink(p):
                target = Path(os.path.realpath(p))
                if target == root or root in target.parents or target in root.parents:
                    raise ExportDirError(f"--export-dir {export_dir}: {p} links into the ledger; refusing to export there")
            elif st.st_nlink > 1 and (st.st_dev, st.st_ino) in ledger_inodes:
                raise ExportDirError(f"--export-dir {export_dir}: {p} is a hard link to a ledger file; refusing to export there")
    return real


def _inodes(root: Path) -> set[tuple[int, int]]:
    out = set()
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            out.add((st.st_dev, st.st_ino))
    return out


def _dir_prefix(path: Path | None) -> str:
    return str(path).rstrip("/") + "/"


# ---------------------------------------------------------------------- helpers


def _files_table(source: Source) -> pa.Table:
    rows = [
        {
            "first_seq": r.first_seq,
            "last_seq": r.last_seq,
            "table_name": f.table,
            "path": f.path,
            "rows": f.rows,
            "bytes": f.bytes,
            "sha256": f.sha256,
            "key_id": r.key_id,
        }
        for r in source.records
        for f in r.files
    ]
    for table, t in source.unsealed.items():
        seqs = t.column("seq")
        rows.append(
            {"first_seq": seqs[0].as_py(), "last_seq": seqs[-1].as_py(), "table_name": table, "path": None, "rows": len(t),
             "bytes": None, "sha256": None, "key_id": None}
        )
    schema = pa.schema(
        [("first_seq", pa.int64()), ("last_seq", pa.int64()), ("table_name", pa.string()), ("path", pa.string()), ("rows", pa.int64()),
         ("bytes", pa.int64()), ("sha256", pa.string()), ("key_id", pa.string())]
    )
    return pa.Table.from_pylist(rows, schema=schema)


_INFO_SCHEMA = pa.schema(
    [("ledger_id", pa.string()), ("path", pa.string()), ("through_seq", pa.int64()), ("head_mac", pa.string()),
     ("verified", pa.bool_()), ("method", pa.string()), ("summary", pa.string())]
)


def _is_copy_from(text: str) -> bool:
    """COPY <table> FROM ... (an import); COPY (query) TO / COPY <table> TO are exports."""
    try:
        tokens = duckdb.tokenize(text)
    except duckdb.Error:
        return True
    words = [_WORD.match(text, start).group(0).upper() for start, kind in tokens if kind == duckdb.token_type.keyword]
    return "FROM" in words and "TO" not in words


def _message(e: BaseException) -> str:
    text = str(e).strip()
    if isinstance(e, duckdb.PermissionException) or "disabled by configuration" in text:
        return (
            f"{text.splitlines()[0]}. mrm sql reads only the ledger's listed files; "
            "to write (or read back) files, pass --export-dir DIR, a directory outside the ledger"
        )
    return text


def _excerpt(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
