"""`mrm demo`: build a demo ledger from the synthetic stream, verify it, say where it is."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import click

from ledger import Keyring, Ledger

from .cli import emit_json, handle_errors, json_option
from .demo_reports import DEMO_PACK, write_demo_reports
from .synthetic import REQUEST_INTERVAL, START, stream

SLOT = "product_reco"  # the model slot the synthetic stream serves


def demo_days(requests: int) -> tuple[dt.datetime, dt.datetime]:
    """The whole UTC days the demo's decisions fall on: what its evidence pack judges."""
    last = START + REQUEST_INTERVAL * (requests - 1)
    return START, dt.datetime.combine(last.date() + dt.timedelta(days=1), dt.time(), dt.timezone.utc)


@click.command()
@click.option("--out", default="demo-out", show_default=True, type=click.Path(file_okay=False), help="Directory to (re)create.")
@click.option("--requests", default=5000, show_default=True, type=click.IntRange(1), help="Recommendation requests to simulate.")
@click.option("--seed", default=7, show_default=True, help="Seed of the synthetic stream.")
@json_option
@handle_errors
def demo(out: str, requests: int, seed: int, as_json: bool) -> None:
    """Write a realistic stream of entries into all seven tables, verify it, produce the
    decision dossier of a disputed recommendation, the slot's validation history and the
    examiner evidence pack for SR 11-7 over the demo's period, and print a summary and the
    paths.

    \b
    Example:
      mrm demo --out demo-out --requests 20000
    """
    out_dir = Path(out)
    ledger_dir, keyring_path = out_dir / "ledger", out_dir / "ledger.keyring.json"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    keyring = Keyring.generate("demo-k1")
    keyring.save(keyring_path)
    started = time.perf_counter()
    disputed = None  # the first recommendation the suitability guardrail had to change
    with Ledger.create(ledger_dir, keyring, actor="reco-api") as ledger:
        for table, row in stream(requests, seed):
            ledger.log(table, row)
            if disputed is None and table == "guardrail" and row["verdict"] != "pass":
                disputed = row["request_id"]
    written = time.perf_counter() - started
    report = Ledger.open(ledger_dir, keyring).verify()
    documents = None
    if report.ok and disputed is not None:
        documents = write_demo_reports(ledger_dir, keyring, out_dir / "reports", request_id=disputed, slot=SLOT,
                                       period=demo_days(requests))
    summary = {"ledger": str(ledger_dir), "keyring": str(keyring_path), "entries": report.entries, "tables": report.tables,
               "verified": report.ok, "write_seconds": round(written, 2), "disputed_request_id": disputed,
               "reports": None if documents is None else {"decision": str(documents.decision), "validation": str(documents.validation),
                                                          "evidence": str(documents.evidence),
                                                          "public_key": str(documents.public_key)}}
    if as_json:
        emit_json(summary)
        return
    click.echo(f"wrote {report.entries:,} entries in {written:.1f}s to {ledger_dir}")
    for table, n in sorted(report.tables.items()):
        click.echo(f"  {table:<17} {n:>9,}")
    click.echo(("verified: every MAC, link and file checks out" if report.ok else "VERIFICATION FAILED:\n" + report.to_text()))
    click.echo(f"keyring: {keyring_path}")
    if documents is not None:
        click.echo(f"decision dossier:   {documents.decision}  (disputed request {disputed})")
        click.echo(f"validation history: {documents.validation}  (slot {SLOT})")
        click.echo(f"evidence pack:      {documents.evidence}  (regulation pack {DEMO_PACK})")
    click.echo("next:")
    click.echo(f"  mrm status {ledger_dir}")
    click.echo(f"  mrm verify {ledger_dir} --keyring {keyring_path}")
    if documents is not None:
        click.echo(f"  mrm report verify {documents.decision} --public-key {documents.public_key}")
        click.echo(f"  mrm report verify {documents.evidence} --public-key {documents.public_key}")


COMMANDS = [demo]
