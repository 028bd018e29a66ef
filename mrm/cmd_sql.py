"""Forensic commands: `mrm sql` (read-only SQL over the ledger) and `mrm reconstruct`."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

# Only light modules at import time: every `mrm` command imports this one to register it.
from forensics.attestation import HmacChainVerifier, IntegrityFailure, LedgerChanged, SignedCheckpointVerifier, Verifier
from forensics.errors import ForensicsError, UnreadableEvidence

from .cli import (
    EXIT_INTEGRITY,
    UsageFailure,
    command_retention,
    emit_json,
    entries_ledger,
    handle_errors,
    json_option,
    keyring_option,
    resolve_keyring,
    whole_ledger,
)
from .sql_output import FORMATS

verify_option = click.option(
    "--verify",
    is_flag=True,
    help="Verify the ledger first and answer only from what the check vouches for: the HMAC chain "
    "(with the keyring), or with --public-key the signed checkpoints.",
)
public_key_option = click.option(
    "--public-key",
    "public_key",
    type=click.Path(exists=True, dir_okay=False),
    help="With --verify: check the signed checkpoints with these trusted public keys (vkey lines); no HMAC key needed.",
)


def forensic_errors(fn: Callable) -> Callable:
    """Refusals and bad input exit 2; a failed verification or damaged evidence exits 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except IntegrityFailure as e:
            v = e.verification
            click.echo(f"verification ({v.method}) FAILED: {v.summary}", err=True)
            for p in v.problems:
                click.echo(f"  {p}", err=True)
            click.echo("nothing was answered from this ledger", err=True)
            sys.exit(EXIT_INTEGRITY)
        except UnreadableEvidence as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(EXIT_INTEGRITY)
        except (ForensicsError, LedgerChanged) as e:
            raise UsageFailure(str(e)) from None
        except Exception as e:
            duckdb = sys.modules.get("duckdb")  # loaded if it raised
            if duckdb is not None and isinstance(e, duckdb.Error):
                raise UsageFailure(f"SQL: {e}") from None
            raise

    return wrapper


def _verifier(path: str, verify: bool, keyring_file: str | None, public_key: str | None) -> Verifier | None:
    if not verify:
        if keyring_file or public_key:
            raise UsageFailure("--keyring and --public-key are only used with --verify")
        return None
    if keyring_file and public_key:
        raise UsageFailure("give --keyring (HMAC chain) or --public-key (signed checkpoints), not both")
    click.echo("verifying the ledger first...", err=True)
    whole_ledger(path)
    if public_key:
        try:
            return SignedCheckpointVerifier.from_file(public_key)
        except ValueError as e:
            raise UsageFailure(f"--public-key {public_key}: {e}") from None
    return HmacChainVerifier(resolve_keyring(path, keyring_file))


def _inside(path: Path, root: Path) -> bool:
    real = Path(os.path.realpath(path))
    return real == root or root in real.parents


# ---------------------------------------------------------------------- mrm sql


@click.command()
@entries_ledger
@click.argument("query", required=False)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the result to this file (outside the ledger) instead of stdout.")
@click.option("--export-dir", type=click.Path(exists=True, file_okay=False),
              help="A directory outside the ledger where COPY ... TO may write (and DuckDB spills); without it no COPY runs.")
@click.option("--max-rows", type=click.IntRange(1), default=1000, show_default=True, help="Rows shown in table format.")
@verify_option
@keyring_option
@public_key_option
@handle_errors
@forensic_errors
def sql(
    path: str, query: str | None, fmt: str, output: str | None, export_dir: str | None, max_rows: int, verify: bool,
    keyring_file: str | None, public_key: str | None,
) -> None:
    """Query the ledger with SQL, read-only: QUERY runs once, or an interactive shell opens.

    The seven tables are views (seq, key_id and mac included), with `decisions` (one row per
    request), `registry_history`, `production_periods`, `model_versions`, `evaluations`,
    `override_reviews`, `alert_responses`, `entries`, `ledger_files`, `ledger_info`,
    `ledger_retention` (what the store keeps under a retention lock), and macros:
    champion_at(slot, ts), decision_of(request_id), subject_decisions(subject),
    subject_timeline(subject, since := ..., until := ...), manual_overrides(), rejections(),
    guardrail_interventions(), entry(seq). `.tables` in the shell lists them.

    Only reads run: SELECT (DESCRIBE, SHOW, SUMMARIZE), EXPLAIN, and COPY ... TO a file under
    --export-dir; without --export-dir no COPY runs and no file is written, in the shell too
    (with it, DuckDB also spills into a private subdirectory of it, removed on exit). The
    ledger's files cannot be changed from here. Without --verify the output says the data was
    not verified in this run. QUERY "-" reads the SQL from stdin.

    \b
    Examples:
      mrm sql ./audit "SELECT * FROM decision_of('req-0001')"
      mrm sql ./audit "SELECT * FROM manual_overrides()" --format csv -o overrides.csv
      mrm sql ./audit "SELECT * FROM subject_timeline('cust-42', since := '2025-09-01T00:00:00Z')" --verify
      mrm sql ./audit                       # interactive shell
    """
    from forensics.session import LedgerSQL

    from .sql_shell import Shell, is_terminal

    if query == "-":
        query = sys.stdin.read()
    root = Path(os.path.realpath(path))
    if output and _inside(Path(output), root):
        raise UsageFailure(f"--output {output} is inside the ledger; write results outside it")
    if fmt == "parquet" and not output and is_terminal(sys.stdout):
        raise UsageFailure("--format parquet is binary: give --output FILE, or pipe stdout")
    session = LedgerSQL.open(path, verifier=_verifier(path, verify, keyring_file, public_key), export_dir=export_dir,
                             retention=command_retention(path))
    try:
        if query is None:
            shell = Shell(session, sys.stdout, sys.stderr, max_rows=max_rows)
            if is_terminal(sys.stdin):
                sys.exit(shell.interactive())
            click.echo(session.attestation.line(), err=True)
            code = shell.script(sys.stdin.read())
            if code:
                sys.exit(code)
            return
        _run_query(session, query, fmt, output, max_rows)
    finally:
        session.close()


def _run_query(session: Any, query: str, fmt: str, output: str | None, max_rows: int) -> None:
    from .sql_output import write_csv, write_json, write_parquet, write_table
    from .sql_shell import Shell

    statements = session.statements(query)
    if not statements:
        raise UsageFailure("QUERY holds no statement")
    if fmt != "table" and len(statements) > 1:
        raise UsageFailure(f"--format {fmt} writes one result; QUERY holds {len(statements)} statements")
    attestation = session.attestation.line()
    if fmt == "table" and not output:
        click.echo(f"-- {attestation}")
        Shell(session, sys.stdout, sys.stderr, max_rows=max_rows).execute(query)
        return
    click.echo(attestation, err=True)
    result = session.run(statements[0])
    if result.copied is not None:
        click.echo(f"wrote {result.copied:,} rows", err=True)
        return
    if fmt == "parquet":
        if output:
            with open(output, "wb") as f:
                n = write_parquet(result.schema, result.batches, f)
        else:
            n = write_parquet(result.schema, result.batches, sys.stdout.buffer)
    else:
        with (open(output, "w", encoding="utf-8", newline="") if output else _stdout()) as out:
            if fmt == "csv":
                n = write_csv(result.columns, result.batches, out)
            elif fmt == "json":
                n = write_json(result.columns, result.types, result.batches, out)
            else:
                n, more = write_table(result.columns, result.batches, out, max_rows=max_rows)
    if output:
        click.echo(f"wrote {n:,} rows to {output}", err=True)


class _stdout:
    """stdout as a context manager that is not closed on exit."""

    def __enter__(self):
        return sys.stdout

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()


# ---------------------------------------------------------------------- mrm reconstruct


@click.command()
@entries_ledger
@click.option("--request-id", help="The request to reconstruct.")
@click.option("--subject", "subject_id", help="The subject whose decision to reconstruct (with --at, or their latest).")
@click.option("--at", help="With --subject: the decision in force at this instant (ISO 8601 with a time zone).")
@click.option("--seq", "inference_seq", type=int, help="Pick one of several inferences sharing a request id.")
@click.option("--top", type=click.IntRange(1), default=5, show_default=True, help="Attributions and scores shown.")
@verify_option
@keyring_option
@public_key_option
@json_option
@handle_errors
@forensic_errors
def reconstruct(
    path: str, request_id: str | None, subject_id: str | None, at: str | None, inference_seq: int | None, top: int,
    verify: bool, keyring_file: str | None, public_key: str | None, as_json: bool,
) -> None:
    """The full record of one decision: who accessed the data and why, which model version
    decided on which input digest, the output, the top attributions, each guardrail verdict,
    and the promotion that had made that model version live, with approver and reason.

    Exit code 0 when found, 2 when nothing matches (or the input is bad), 1 when --verify
    finds the ledger does not verify.

    \b
    Examples:
      mrm reconstruct ./audit --request-id req-0001
      mrm reconstruct ./audit --subject cust-42 --at 2025-09-03T10:15:00+09:00 --verify
      mrm reconstruct ./audit --request-id req-0001 --verify --public-key ledger.pub
    """
    from forensics.reconstruct import Reconstructor

    if (request_id is None) == (subject_id is None):
        raise UsageFailure("give --request-id or --subject (exactly one)")
    with Reconstructor.open(path, verifier=_verifier(path, verify, keyring_file, public_key)) as r:
        record = r.reconstruct(request_id=request_id, subject_id=subject_id, at=at, inference_seq=inference_seq)
    if as_json:
        emit_json(record.to_dict())
    else:
        click.echo(record.to_text(top=top))


COMMANDS = [sql, reconstruct]
