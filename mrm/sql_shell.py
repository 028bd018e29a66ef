"""The interactive `mrm sql PATH` shell: history, multi-line statements, dot commands, timing.

A statement runs when a line ends it with `;`. Dot commands work at the start of a statement:

    .tables            the views and macros, with what they hold
    .schema [NAME]     columns and types of a view (all views without NAME), or a macro's SQL
    .timing on|off     print how long each statement took
    .help              this list
    .quit / .exit      leave (so does Ctrl-D)

Ctrl-C abandons the statement being typed, or interrupts the one running. Read from a pipe
instead of a terminal, the shell runs the script and stops at the first error (exit code 2).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO, Callable

import duckdb

from forensics.errors import ForensicsError
from forensics.session import LedgerSQL
from forensics.views import OBJECTS, describe

from .sql_output import write_table

PROMPT, CONTINUE = "mrm> ", " ...> "
HISTORY_ENV = "MRM_SQL_HISTORY"
DEFAULT_HISTORY = Path("~/.mrm_sql_history")


class ShellError(Exception):
    pass


class Shell:
    def __init__(self, session: LedgerSQL, out: IO[str], err: IO[str], *, max_rows: int = 1000):
        self.session = session
        self.out, self.err = out, err
        self.max_rows = max_rows
        self.timing = False

    # ------------------------------------------------------------------ running text
    def execute(self, sql: str) -> None:
        """Run every statement in `sql`, printing each result."""
        for statement in self.session.statements(sql):
            started = time.perf_counter()
            result = self.session.run(statement)
            if result.copied is not None:
                self.out.write(f"wrote {result.copied:,} rows\n")
            elif statement.kind == "explain":
                for batch in result.batches:
                    for row in batch.to_pylist():
                        self.out.write(str(row.get("explain_value", "")) + "\n")
            else:
                shown, more = write_table(result.columns, result.batches, self.out, max_rows=self.max_rows)
                self.out.write(f"({shown:,} row{'s' if shown != 1 else ''}{'; more not shown, use --format csv for all' if more else ''})\n")
            if self.timing:
                self.out.write(f"time: {time.perf_counter() - started:.3f} s\n")

    def dot(self, line: str) -> bool:
        """Run a dot command; False means quit."""
        parts = line.split()
        command, args = parts[0].lower(), parts[1:]
        if command in (".quit", ".exit", ".q"):
            return False
        if command == ".help":
            self.out.write((__doc__ or "").split("\n\n")[1] + "\n")
        elif command == ".tables":
            width = max(len(o.signature) for o in OBJECTS)
            for obj in OBJECTS:
                self.out.write(f"{obj.signature:<{width}}  {obj.kind:<5}  {obj.summary}\n")
        elif command == ".schema":
            self._schema(args)
        elif command == ".timing":
            if args not in (["on"], ["off"]):
                raise ShellError(".timing takes on or off")
            self.timing = args == ["on"]
        else:
            raise ShellError(f"unknown command {command}; .help lists them")
        return True

    def _schema(self, names: list[str]) -> None:
        for name in names or list(self.session.views()):
            obj = describe(name)
            if obj is None:
                raise ShellError(f"no view or macro named {name!r}; .tables lists them")
            self.out.write(f"-- {obj.doc}\n")
            if obj.kind == "macro":
                self.out.write(obj.sql + ";\n\n")
                continue
            columns = self.session.columns(name)
            self.out.write(f"{name} (\n" + ",\n".join(f"    {c} {t}" for c, t in columns) + "\n);\n\n")

    # ------------------------------------------------------------------ loops
    def script(self, text: str) -> int:
        """Non-interactive: run a whole script, dot commands included; stop at the first error."""
        buffer: list[str] = []
        for line in text.splitlines():
            if not buffer and line.strip().startswith("."):
                try:
                    if not self.dot(line.strip()):
                        return 0
                except ShellError as e:
                    self.err.write(f"error: {e}\n")
                    return 2
                continue
            buffer.append(line)
            if statement_complete("\n".join(buffer)):
                if not self._run_reporting("\n".join(buffer)):
                    return 2
                buffer = []
        rest = "\n".join(buffer).strip()
        if rest and not self._run_reporting(rest):
            return 2
        return 0

    def interactive(self, read: Callable[[str], str] = input) -> int:
        _load_history()
        self.err.write(self.session.attestation.line() + "\n")
        self.err.write("Type .tables for the views and macros, .help for commands; end statements with ;\n")
        buffer: list[str] = []
        while True:
            try:
                line = read(CONTINUE if buffer else PROMPT)
            except EOFError:
                self.out.write("\n")
                break
            except KeyboardInterrupt:
                self.out.write("^C\n")
                buffer = []
                continue
            if not buffer and line.strip().startswith("."):
                try:
                    if not self.dot(line.strip()):
                        break
                except (ShellError, ForensicsError) as e:
                    self.err.write(f"error: {e}\n")
                continue
            if not buffer and not line.strip():
                continue
            buffer.append(line)
            if statement_complete("\n".join(buffer)):
                try:
                    self._run_reporting("\n".join(buffer))
                except KeyboardInterrupt:
                    self.session.interrupt()
                    self.err.write("interrupted\n")
                buffer = []
        _save_history(self.session.source.root)
        return 0

    def _run_reporting(self, sql: str) -> bool:
        try:
            self.execute(sql)
            return True
        except ForensicsError as e:
            self.err.write(f"error: {e}\n")
        except duckdb.Error as e:  # anything the session did not classify
            self.err.write(f"error: {e}\n")
        return False


def statement_complete(text: str) -> bool:
    """True when `text` ends with a `;` that is not inside a string, identifier or comment."""
    stripped = text.rstrip()
    if not stripped.endswith(";"):
        return False
    try:
        tokens = duckdb.tokenize(stripped)
    except duckdb.Error:
        return True  # let the parser report it
    return bool(tokens) and tokens[-1][0] == len(stripped) - 1


# ---------------------------------------------------------------------- history


def history_path() -> Path | None:
    configured = os.environ.get(HISTORY_ENV)
    if configured == "":
        return None
    return Path(configured or DEFAULT_HISTORY).expanduser()


def _load_history() -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - not every platform has it
        return
    path = history_path()
    if path is not None and path.exists():
        try:
            readline.read_history_file(path)
        except OSError:
            pass


def _save_history(ledger_root: Path) -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover
        return
    path = history_path()
    if path is None or ledger_root in Path(os.path.realpath(path)).parents:
        return  # never write inside the ledger, even when told to
    try:
        readline.set_history_length(5000)
        readline.write_history_file(path)
    except OSError:
        pass


def is_terminal(stream: IO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
