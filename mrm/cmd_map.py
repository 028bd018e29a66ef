"""Regulation packs on the command line: `mrm map` (evaluate packs against a ledger, write the
evidence bundle) and `mrm packs` (list and check the packs themselves).

Exit codes: 0 evaluated (gaps included: they are findings, not failures), 1 verification
failed or the evidence is damaged, 2 usage or a malformed pack, 3 with --fail-on-gap when a
requirement has a gap.
"""

from __future__ import annotations

import datetime as dt
import sys
import textwrap
from pathlib import Path
from typing import Any

import click

from gates.canonical import utc_text
from mappings.errors import MappingError

from .cli import UsageFailure, emit_json, handle_errors, json_option, keyring_option, usage_errors
from .cli import command_retention, existing_ledger
from .cmd_sql import _verifier, forensic_errors, public_key_option, verify_option

EXIT_GAP = 3
_WIDTH = 100

packs_dir_option = click.option(
    "--packs-dir",
    "packs_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="A directory of your own packs (repeatable); they shadow built-in packs of the same id. Also $MRM_PACKS_DIR.",
)


# A malformed pack, an unknown pack or a bad period exits 2 with the message.
mapping_errors = usage_errors(MappingError)


def _dirs(packs_dirs: tuple[str, ...]) -> list[Path]:
    from mappings.catalog import pack_dirs

    return pack_dirs(packs_dirs)


# ---------------------------------------------------------------------- mrm map


@click.command("map")
@existing_ledger
@click.option("--pack", "pack_name", help="The pack to evaluate: its id (see `mrm packs`) or the path of a .toml file.")
@click.option("--all", "all_packs", is_flag=True, help="Evaluate every pack and print the coverage matrix.")
@click.option("--from", "start", help="Start of the period, included: ISO 8601 with a zone, or a date (midnight UTC). Default: the ledger's first entry.")
@click.option("--to", "end", help="End of the period, excluded. Default: just after the ledger's last entry.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Evidence bundle directory (new). Default with --pack: evidence-PACK-TIMESTAMP here; with --all: none unless given (one bundle per pack inside).")
@click.option("--no-bundle", is_flag=True, help="With --pack: print the result only, write no bundle.")
@click.option("--as-if-in-force", is_flag=True,
              help="Judge the whole period even where the pack was not (yet, or any longer) in force: a readiness assessment, labelled as such.")
@click.option("--requirement", "requirement_ids", multiple=True, help="With --pack: evaluate only this requirement id (repeatable).")
@click.option("--max-rows", type=click.IntRange(1), default=1000, show_default=True, help="Evidence and offending rows kept per evidence item (counts stay exact).")
@click.option("--fail-on-gap", is_flag=True, help=f"Exit {EXIT_GAP} when any requirement has a gap (for CI).")
@packs_dir_option
@verify_option
@keyring_option
@public_key_option
@json_option
@handle_errors
@forensic_errors
@mapping_errors
def map_command(
    path: str, pack_name: str | None, all_packs: bool, start: str | None, end: str | None, out: str | None, no_bundle: bool,
    as_if_in_force: bool, requirement_ids: tuple[str, ...], max_rows: int, fail_on_gap: bool, packs_dirs: tuple[str, ...],
    verify: bool, keyring_file: str | None, public_key: str | None, as_json: bool,
) -> None:
    """Evaluate regulation packs against the ledger, read-only: every requirement gets a
    status computed from the ledger's rows (met, gap with the offending rows, insufficient
    evidence, not applicable, or outside what a ledger can evidence).

    With --pack, writes an evidence bundle: summary.json, and per evidence item the query,
    its rows and offending rows (Parquet) and counts, plus the checkpoint the answers rest
    on. With --all, prints the coverage matrix (requirement x status) across packs.

    A pack applies only to the days it was in force: SR 11-7 until 16 April 2026, SR 26-2
    from 17 April 2026. Gaps are findings, not errors: the exit code is 0 unless
    --fail-on-gap.

    \b
    Examples:
      mrm map ./audit --pack kfcpa --from 2026-01-01 --to 2026-07-01 --out kfcpa-h1
      mrm map ./audit --pack sr-26-2 --verify --public-key ledger.pub
      mrm map ./audit --pack eu-ai-act --as-if-in-force --no-bundle
      mrm map ./audit --all --json
      mrm map ./audit --pack my-policy.toml --fail-on-gap
    """
    from forensics.session import LedgerSQL
    from mappings.bundle import write_bundle
    from mappings.catalog import load_pack, load_packs
    from mappings.evaluate import evaluate, ledger_period
    from mappings.matrix import coverage_matrix
    from mappings.period import Period, parse_instant

    if bool(pack_name) == all_packs:
        raise UsageFailure("give --pack NAME or --all (exactly one)")
    if all_packs and (requirement_ids or no_bundle):
        raise UsageFailure("--requirement and --no-bundle go with --pack")
    if out and no_bundle:
        raise UsageFailure("--out and --no-bundle contradict each other")
    dirs = _dirs(packs_dirs)
    packs = load_packs(dirs) if all_packs else [load_pack(pack_name, dirs)]  # type: ignore[arg-type]
    out_dir = Path(out) if out else None
    if out_dir is not None and out_dir.exists():
        raise UsageFailure(f"--out {out_dir} already exists; give a new directory")

    session = LedgerSQL.open(path, verifier=_verifier(path, verify, keyring_file, public_key), retention=command_retention(path))
    try:
        whole = ledger_period(session) if not (start and end) else None
        period = Period(parse_instant(start, "from") if start else whole.start,  # type: ignore[union-attr]
                        parse_instant(end, "to") if end else whole.end)  # type: ignore[union-attr]
        results = [
            evaluate(session, p, period, as_if_in_force=as_if_in_force, max_rows=max_rows,
                     requirements=requirement_ids or None)
            for p in packs
        ]
    finally:
        session.close()

    written: dict[str, str] = {}
    if all_packs and out_dir is not None:
        for r in results:
            written[r.pack.id] = str(write_bundle(r, out_dir / r.pack.id))
    elif not all_packs and not no_bundle:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = out_dir or Path(f"evidence-{results[0].pack.id}-{stamp}")
        written[results[0].pack.id] = str(write_bundle(results[0], target))

    gaps = sum(len(r.gaps) for r in results)
    if as_json:
        if all_packs:
            doc = coverage_matrix(results).to_dict()
            doc["bundles"] = written
        else:
            doc = results[0].to_dict()
            doc["bundle"] = written.get(results[0].pack.id)
        emit_json(doc)
    else:
        click.echo(coverage_matrix(results).to_text(_WIDTH) if all_packs else _result_text(results[0]))
        click.echo("")
        if gaps:
            click.echo(f"evaluated: {gaps} requirement(s) with a GAP: findings about the ledger, not errors "
                       f"(exit code {EXIT_GAP if fail_on_gap else 0}{'' if fail_on_gap else '; --fail-on-gap makes it ' + str(EXIT_GAP)})")
        else:
            click.echo("evaluated: no requirement has a gap")
        for pack_id, where in written.items():
            click.echo(f"evidence bundle ({pack_id}): {where}")
    if fail_on_gap and gaps:
        sys.exit(EXIT_GAP)


def _result_text(result: Any) -> str:
    pack = result.pack
    lines = [f"{pack.id}: {pack.title} (pack {pack.pack_version})", f"period {result.requested}"]
    lines += textwrap.wrap(result.applicability.note, _WIDTH)
    lines += [result.rests_on.line, ""]
    for r in result.requirements:
        req = r.requirement
        lines.append(f"{r.status.label:<22} {req.id:<38} {req.citation}")
        lines += textwrap.wrap(req.title, _WIDTH, initial_indent=" " * 4, subsequent_indent=" " * 4)
        if r.status.evidenced or req.not_applicable_because:  # a pack not in force is said once, above
            explanation = r.explanation if len(r.explanation) <= 600 else r.explanation[:597] + "..."
            lines += textwrap.wrap(explanation, _WIDTH, initial_indent=" " * 4, subsequent_indent=" " * 6)
        for e in r.evidence:
            if e.offending_count:
                shown = f"first {len(e.offending)} of " if e.offending_truncated else ""
                lines.append(f"      offending rows of {e.id}: {shown}{e.offending_count:,}; e.g. {_first_row(e.offending)}")
    lines += ["", result.headline()]
    return "\n".join(lines)


def _first_row(table: Any) -> str:
    if not len(table):
        return "-"
    row = table.slice(0, 1).to_pylist()[0]
    parts = []
    for k, v in row.items():
        if isinstance(v, dt.datetime):
            v = utc_text(v)
        parts.append(f"{k}={v}")
        if len(", ".join(parts)) > 160:
            break
    text = ", ".join(parts)
    return text if len(text) <= 160 else text[:157] + "..."


# ---------------------------------------------------------------------- mrm packs


@click.command("packs")
@click.argument("names", nargs=-1)
@click.option("--check", is_flag=True, help="Also bind every query against the ledger views (of a new, empty ledger): what a pack author runs before shipping.")
@packs_dir_option
@json_option
@handle_errors
@mapping_errors
def packs_command(names: tuple[str, ...], check: bool, packs_dirs: tuple[str, ...], as_json: bool) -> None:
    """List the regulation packs (built in, and yours from --packs-dir or $MRM_PACKS_DIR),
    validating each; NAMES limits the list to these ids or .toml files. A malformed pack is
    refused with its file, line and field (exit code 2).

    \b
    Examples:
      mrm packs
      mrm packs --packs-dir ./our-packs --check
      mrm packs ./our-packs/kfcpa.toml --check
    """
    from mappings.catalog import BUILTIN_DIR, load_pack, load_packs
    from mappings.evaluate import check_pack, empty_ledger_session

    dirs = _dirs(packs_dirs)
    packs = [load_pack(n, dirs) for n in names] if names else load_packs(dirs)
    if check:
        with empty_ledger_session() as session:
            for p in packs:
                check_pack(p, session)
    rows = []
    for p in packs:
        evidenced = sum(1 for r in p.requirements if r.evidenced and not r.not_applicable_because)
        rows.append({
            "id": p.id, "title": p.title, "pack_version": p.pack_version,
            "effective_from": p.effective_from.isoformat(),
            "effective_until": p.effective_until.isoformat() if p.effective_until else None,
            "superseded_by": p.superseded_by, "requirements": len(p.requirements), "evidenced": evidenced,
            "outside_ledger": sum(1 for r in p.requirements if not r.evidenced),
            "not_applicable": sum(1 for r in p.requirements if r.not_applicable_because),
            "evidence_queries": sum(len(r.evidence) for r in p.requirements),
            "file": p.file, "builtin": Path(p.file).resolve().parent == BUILTIN_DIR, "checked": check,
        })
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'pack':<22} {'in force':<25} {'reqs':>4} {'ledger':>6} {'outside':>7} {'queries':>7}  file")
    for r in rows:
        last_day = dt.date.fromisoformat(r["effective_until"]) - dt.timedelta(days=1) if r["effective_until"] else None
        window = r["effective_from"] + (f" to {last_day}" if last_day else " on")
        where = "built in" if r["builtin"] else r["file"]
        click.echo(f"{r['id']:<22} {window:<25} {r['requirements']:>4} {r['evidenced']:>6} {r['outside_ledger']:>7} {r['evidence_queries']:>7}  {where}")
    if check:
        click.echo(f"checked: every query of {len(rows)} pack(s) binds against the ledger views")


COMMANDS = [map_command, packs_command]
