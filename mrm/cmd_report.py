"""Report commands: `mrm report verify` (and, later, `mrm report evidence|decision|validation`,
which will build a Report from the ledger and call reports.render.render_report)."""

from __future__ import annotations

import logging
import sys

import click

from reports.errors import ReportError
from reports.verify import load_verifier_keys, verify_report

from .cli import EXIT_INTEGRITY, UsageFailure, emit_json, handle_errors, json_option


@click.group()
def report() -> None:
    """Verify (and, soon, produce) signed report PDFs."""


@report.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--public-key",
    "public_key",
    required=True,
    type=click.Path(dir_okay=False),
    help="File of trusted verifier keys, one <name>+<key id>+<base64> per line: the ledger's checkpoint key.",
)
@json_option
@handle_errors
def report_verify(file: str, public_key: str, as_json: bool) -> None:
    """Check a report PDF: the manifest's signature, every embedded attachment against the
    manifest (altered, removed, added, duplicated), the drawn page content, and the
    attached checkpoint.

    Nothing is compared unless manifest.json is signed by a trusted key: a missing, foreign
    or broken signature is reported and the command fails.

    Exit code 0 when everything verifies, 1 on any integrity failure, 2 on a usage error
    (unreadable PDF, bad key file).

    \b
    Example:
      mrm report verify evidence-2026Q1.pdf --public-key ledger.vkey
      mrm report verify evidence-2026Q1.pdf --public-key ledger.vkey --json | jq '.attachments'
    """
    # pypdf logs recoverable oddities of hostile or re-saved files as warnings; the
    # verification result already says what matters, so keep the output to that.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        verifiers = load_verifier_keys(public_key)
        result = verify_report(file, verifiers)
    except ReportError as e:
        raise UsageFailure(str(e)) from None
    if as_json:
        emit_json(result.to_json())
    else:
        click.echo(result.to_text())
    if not result.ok:
        sys.exit(EXIT_INTEGRITY)


COMMANDS = [report]
