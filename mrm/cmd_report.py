"""Report commands: `mrm report decision`, `mrm report validation` and `mrm report evidence`
build a signed PDF from the ledger; `mrm report verify` checks one. The document builders (WeasyPrint, DuckDB) load
only when a document is built, so `mrm report verify` and every other command start quickly."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import sys
from typing import Any, Callable

import click

from reports.errors import ReportError
from reports.verify import load_verifier_keys, verify_report

from .cli import EXIT_INTEGRITY, UsageFailure, command_retention, existing_ledger, emit_json, handle_errors, json_option, keyring_option, resolve_keyring



@click.group()
def report() -> None:
    """Build signed report PDFs from the ledger, and verify them.

    \b
    Documents:
      decision     the dossier of one disputed decision (KFCPA Art. 17/28, EU AI Act Art. 86, PIPA Art. 37-2)
      validation   the validation history of one model slot (SR 11-7)
      evidence     the examiner evidence pack: one regulation pack over a period
    Each rests on one signed checkpoint, is checked before it is built, and carries its
    evidence, the checkpoint and inclusion proofs inside the PDF. Anyone with the ledger's
    public key can check it with `mrm report verify`.
    """


# ---------------------------------------------------------------------- options shared by the builders


def document_options(fn: Callable) -> Callable:
    """Output, trust and cover options of every document command."""
    options = [
        click.option("--out", "-o", "out", type=click.Path(dir_okay=False), help="PDF to write (default: <report id>.pdf here)."),
        keyring_option,
        click.option("--public-key", "public_key", type=click.Path(exists=True, dir_okay=False),
                     help="Verify the ledger with these trusted public keys (signed checkpoints) instead of the HMAC key: "
                     "no secret of the ledger's is needed. Sign the document with --signing-key (or the --keyring's key), or pass --unsigned."),
        click.option("--signing-key", "signing_key", type=click.Path(exists=True, dir_okay=False),
                     help="Sign the document with this Ed25519 key of the author's own (a PRIVATE+KEY file from "
                     "`mrm keys generate-signing`, or a keyring). Default: the keyring's signing key."),
        click.option("--unsigned", is_flag=True,
                     help="Write the document without a signature, labelled UNSIGNED on its cover: its checkpoint and "
                     "inclusion proofs are still checkable with the ledger's public key."),
        click.option("--verification", type=click.Choice(["full", "proofs"]), default="full", show_default=True,
                     help="full: verify the whole ledger first. proofs: only prove the entries shown against the signed "
                     "checkpoint (fast at any size; the cover says the rest was not checked)."),
        click.option("--allow-failed", is_flag=True,
                     help="Build the document even if the ledger fails verification: it then carries a FAILED banner, "
                     "and the command still exits 1. Without it such a ledger is refused."),
        click.option("--institution", envvar="MRM_INSTITUTION", help="Institution named on the cover (default: $MRM_INSTITUTION)."),
        click.option("--prepared-by", default="", help="Team or person named on the cover as preparing the document."),
        click.option("--report-id", help="Report id (default: derived from the ledger id, the subject of the report and the checkpoint)."),
        click.option("--created", help="The PDF's creation date, ISO 8601 with a time zone (default: now)."),
        click.option("--workers", type=click.IntRange(1), help="Processes for the whole-ledger check (default: every core)."),
        json_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def report_errors(fn: Callable) -> Callable:
    """A ledger that fails verification (without --allow-failed) or damaged evidence exits 1;
    a decision that is not there, a bad option or a missing checkpoint exits 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from forensics.errors import ForensicsError, UnreadableEvidence
        from reports.documents import LedgerVerificationFailed

        try:
            return fn(*args, **kwargs)
        except LedgerVerificationFailed as e:
            check = e.check
            click.echo(f"verification ({check.method.value}): {check.summary}", err=True)
            for problem in check.problems[:20]:
                click.echo(f"  {problem}", err=True)
            if len(check.problems) > 20:
                click.echo(f"  ... and {len(check.problems) - 20} more", err=True)
            click.echo("no document was written (pass --allow-failed to build one marked FAILED)", err=True)
            sys.exit(EXIT_INTEGRITY)
        except UnreadableEvidence as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(EXIT_INTEGRITY)
        except (ForensicsError, ReportError) as e:
            raise UsageFailure(str(e)) from None

    return wrapper


def _trust(path: str, options: dict[str, Any]) -> tuple[Any, Any]:
    """How the ledger is checked (the trust plan) and who signs the document (a Signer, or
    None for an unsigned one), from the document options. With --public-key no secret of
    the ledger's is read: the document is signed with the author's own key or not at all."""
    from ledger.keys import load_signer, load_verifiers
    from reports.documents import TrustPlan

    public_key, signing_key, unsigned = options["public_key"], options["signing_key"], options["unsigned"]
    verification, allow_failed, workers = options["verification"], options["allow_failed"], options["workers"]
    if signing_key and unsigned:
        raise UsageFailure("--signing-key and --unsigned contradict each other: give one")
    if public_key:
        keys = load_verifiers(public_key)
        if signing_key or unsigned:
            signer = load_signer(signing_key) if signing_key else None
        elif options["keyring_file"]:  # the operator: verify as an examiner would, sign with the ledger's key
            signer = load_signer(options["keyring_file"])
        else:
            raise UsageFailure("with --public-key no secret is looked for: sign the document with your own key "
                               "(--signing-key FILE; `mrm keys generate-signing` makes one), with the ledger's "
                               "(--keyring FILE), or pass --unsigned")
        if verification == "proofs":
            return TrustPlan.inclusion_proofs(keys, allow_failed=allow_failed), signer
        return TrustPlan.signed_checkpoints(keys, allow_failed=allow_failed, workers=workers), signer
    keyring = resolve_keyring(path, options["keyring_file"])
    if not keyring.signers:
        raise UsageFailure(f"{keyring.source} holds no Ed25519 key: checkpoints cannot be trusted without one (or pass --public-key)")
    signer = load_signer(signing_key) if signing_key else (None if unsigned else keyring.signer)
    if signer is None and not unsigned:
        raise UsageFailure(f"{keyring.source} has no active Ed25519 signing key: pass --signing-key FILE or --unsigned")
    if verification == "proofs":
        return TrustPlan.inclusion_proofs(keyring.verifiers(), allow_failed=allow_failed), signer
    return TrustPlan.hmac_chain(keyring, allow_failed=allow_failed, workers=workers), signer


def _info(institution: str | None, prepared_by: str, report_id: str | None, *, time_zone: str = "") -> Any:
    from reports.documents import DocumentInfo

    named = {"institution": institution} if institution else {}
    return DocumentInfo(**named, prepared_by=prepared_by, report_id=report_id, time_zone=time_zone)


def _created(created: str | None) -> dt.datetime | None:
    if created is None:
        return None
    from forensics.reconstruct import parse_instant

    return parse_instant(created, "--created")


def _announce(trust: dict[str, Any]) -> None:
    if trust["verification"] == "proofs":
        click.echo("proving the entries shown against the signed checkpoint...", err=True)
    elif trust["public_key"]:
        click.echo("verifying the ledger against its signed checkpoints first...", err=True)
    else:
        click.echo("verifying the ledger's HMAC chain first...", err=True)


def _finish(written: Any, as_json: bool) -> None:
    meta = written.report.meta
    if as_json:
        emit_json({
            "path": str(written.path), "report_id": written.report_id, "kind": meta.kind.value, "pages": written.pages,
            "status": written.status.value, "verification": meta.verification.headline,
            "checkpoint": {"size": meta.checkpoint.size, "root": meta.checkpoint.root.hex()},
            "render_seconds": round(written.render_seconds, 3),
            "signed_by": written.signature.label if written.signature else None,
        })
    else:
        click.echo(f"wrote {meta.kind.value} report {written.report_id} to {written.path} ({written.pages} pages)")
        click.echo(f"verification: {written.status.label}: {meta.verification.headline}")
        signed = written.signature
        if signed is None:
            click.echo(f"UNSIGNED; check it: mrm report verify {written.path} --public-key LEDGER.pub --allow-unsigned")
        elif signed.signs_checkpoints:
            click.echo(f"check it: mrm report verify {written.path} --public-key LEDGER.pub")
        else:
            click.echo(f"signed by {signed.label}; check it: mrm report verify {written.path} --public-key LEDGER.pub "
                       "--public-key AUTHOR.pub")
    if written.failed:
        click.echo("the ledger did NOT verify: the document is marked FAILED", err=True)
        sys.exit(EXIT_INTEGRITY)


# ---------------------------------------------------------------------- mrm report decision


@report.command("decision")
@existing_ledger
@click.option("--request-id", help="The request whose decision to report on.")
@click.option("--subject", "subject_id", help="The subject whose decision to report on (with --at, or their latest).")
@click.option("--at", help="With --subject: the decision in force at this instant (ISO 8601 with a time zone).")
@click.option("--seq", "inference_seq", type=int, help="Pick one of several inferences sharing a request id.")
@click.option("--time-zone", "time_zone", envvar="MRM_TIME_ZONE",
              help="The institution's time zone (an IANA name such as Asia/Seoul): every time in the dossier shows "
              "its local time next to UTC, for the customer and the dispute handler (default: $MRM_TIME_ZONE; "
              "without it, UTC only).")
@document_options
@handle_errors
@report_errors
def report_decision(path: str, request_id: str | None, subject_id: str | None, at: str | None, inference_seq: int | None,
                    time_zone: str | None, out: str | None, institution: str | None, prepared_by: str, report_id: str | None, created: str | None,
                    as_json: bool, **trust: Any) -> None:
    """The decision dossier for one disputed decision: who accessed the data and why, the
    model version, input digest and output, the main factors in plain language, the
    suitability verdict, the promotion that made the model version live (approver and
    reason), and an inclusion proof of every entry shown.

    Exit code 0 when written, 1 when the ledger does not verify (refused, or written marked
    FAILED with --allow-failed), 2 when the decision is not found or the input is bad.

    \b
    Examples:
      mrm report decision ./audit --request-id req-0001 --institution "Example Bank" -o dispute-0001.pdf
      mrm report decision ./audit --request-id req-0001 --time-zone Asia/Seoul   # KST next to UTC
      mrm report decision ./audit --subject cust-42 --at 2025-09-03T10:15:00+09:00
      mrm report decision ./audit --request-id req-0001 --verification proofs     # fast at any ledger size
      mrm report decision ./audit --request-id req-0001 --public-key ledger.pub  # verify with public keys
    """
    from reports.documents import DecisionQuery, write_decision_report

    if (request_id is None) == (subject_id is None):
        raise UsageFailure("give --request-id or --subject (exactly one)")
    if time_zone:
        from reports.values import time_zone as known_zone

        try:
            known_zone(time_zone)
        except ValueError as e:
            raise UsageFailure(f"--time-zone: {e}") from None
    plan, signer = _trust(path, trust)
    _announce(trust)
    query = DecisionQuery(request_id=request_id, subject_id=subject_id, at=at, inference_seq=inference_seq)
    written = write_decision_report(path, query, plan, signer, out,
                                    info=_info(institution, prepared_by, report_id, time_zone=time_zone or ""),
                                    created=_created(created))
    _finish(written, as_json)


# ---------------------------------------------------------------------- mrm report validation


@report.command("validation")
@existing_ledger
@click.option("--slot", required=True, help="The model slot whose validation history to report.")
@click.option("--from", "since", help="Start of the period, inclusive (ISO 8601 with a time zone; default: the beginning).")
@click.option("--to", "until", help="End of the period, exclusive (ISO 8601 with a time zone; default: the checkpoint).")
@document_options
@handle_errors
@report_errors
def report_validation(path: str, slot: str, since: str | None, until: str | None, out: str | None, institution: str | None,
                      prepared_by: str, report_id: str | None, created: str | None, as_json: bool, **trust: Any) -> None:
    """The model validation history of one slot (SR 11-7): every gate decision with its
    metrics, tests and p-values, every decision a person made with its rationale and what
    the gate had said, rollbacks, monitoring over time (fairness, drift, alerts) with charts,
    and the production timeline.

    Exit code 0 when written, 1 when the ledger does not verify, 2 on bad input.

    \b
    Examples:
      mrm report validation ./audit --slot product_reco --institution "Example Bank" -o validation.pdf
      mrm report validation ./audit --slot product_reco --from 2025-01-01T00:00:00Z --to 2025-07-01T00:00:00Z
    """
    from reports.documents import ValidationScope, write_validation_report

    plan, signer = _trust(path, trust)
    _announce(trust)
    written = write_validation_report(path, ValidationScope(slot, since, until), plan, signer, out,
                                      info=_info(institution, prepared_by, report_id), created=_created(created))
    _finish(written, as_json)


# ---------------------------------------------------------------------- mrm report evidence


@report.command("evidence")
@existing_ledger
@click.option("--pack", "pack_name", required=True, help="The regulation pack: its id (see `mrm packs`) or the path of a .toml file.")
@click.option("--from", "since", help="Start of the period, included: ISO 8601 with a zone, or a date (midnight UTC). "
              "Default: the ledger's first entry.")
@click.option("--to", "until", help="End of the period, excluded. Default: just after the newest entry of the checkpoint.")
@click.option("--as-if-in-force", is_flag=True,
              help="Judge the whole period even where the pack was not (yet, or any longer) in force: a readiness "
              "assessment, labelled as such on the cover and in the summary.")
@click.option("--packs-dir", "packs_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A directory of your own packs (repeatable); they shadow built-in packs of the same id. Also $MRM_PACKS_DIR.")
@click.option("--max-rows", type=click.IntRange(1), default=1000, show_default=True,
              help="Rows of each query result kept and embedded as Parquet (counts are exact regardless).")
@click.option("--rows-shown", type=click.IntRange(1), default=25, show_default=True,
              help="Rows each table of findings or judged rows shows (the rest are in its attachment).")
@document_options
@handle_errors
@report_errors
def report_evidence(path: str, pack_name: str, since: str | None, until: str | None, as_if_in_force: bool,
                    packs_dirs: tuple[str, ...], max_rows: int, rows_shown: int, out: str | None, institution: str | None,
                    prepared_by: str, report_id: str | None, created: str | None, as_json: bool, **trust: Any) -> None:
    """The examiner evidence pack for one regulation pack and period: cover (what it rests
    on and how it was verified), an executive summary with the coverage matrix and every
    gap, charts of what the models did, one section per requirement (citation, paraphrase,
    what an examiner asks, status and why, the offending rows, a sample of what was judged
    with the exact count, and the SQL, runnable in `mrm sql`), the requirements outside the
    ledger with what to ask for instead, and the method. It embeds each query's rows as
    Parquet, the evaluation (summary.json), the pack text, the verification report, the
    checkpoint and inclusion proofs of every entry its tables name.

    A gap is a finding, not an error: the exit code is 0 when the document is written, 1
    when the ledger does not verify, 2 on bad input or a malformed pack.

    \b
    Examples:
      mrm report evidence ./audit --pack kfcpa --from 2026-01-01 --to 2026-07-01 --institution "Example Bank" -o kfcpa-h1.pdf
      mrm report evidence ./audit --pack sr-26-2 --public-key ledger.pub --verification proofs
      mrm report evidence ./audit --pack eu-ai-act --as-if-in-force          # readiness, before the Act applies
    """
    from mappings.catalog import pack_dirs
    from mappings.errors import MappingError
    from reports.documents import EvidenceScope, Limits, write_evidence_report

    plan, signer = _trust(path, trust)
    try:
        limits = Limits(kept=max_rows, shown=min(rows_shown, max_rows), sample=min(10, max_rows))
        scope = EvidenceScope(pack_name, since, until, as_if_in_force, tuple(pack_dirs(packs_dirs)), limits)
        _announce(trust)
        written = write_evidence_report(path, scope, plan, signer, out, info=_info(institution, prepared_by, report_id),
                                        created=_created(created), retention=command_retention(path))
    except MappingError as e:
        raise UsageFailure(str(e)) from None
    _finish(written, as_json)


# ---------------------------------------------------------------------- mrm report verify


@report.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--public-key",
    "public_key",
    required=True,
    multiple=True,
    type=click.Path(dir_okay=False),
    help="File of trusted verifier keys, one <name>+<key id>+<base64> per line: the ledger's checkpoint key, and the "
    "author's key when the author signed with their own. Repeatable.",
)
@click.option("--allow-unsigned", is_flag=True,
              help="Check an unsigned report (written with --unsigned) against its own manifest and its checkpoint; "
              "the result says UNSIGNED, since nobody vouches for the document as a whole.")
@json_option
@handle_errors
def report_verify(file: str, public_key: tuple[str, ...], allow_unsigned: bool, as_json: bool) -> None:
    """Check a report PDF: the manifest's signature, every embedded attachment against the
    manifest (altered, removed, added, duplicated), the drawn page content, and the
    attached checkpoint.

    Nothing is compared unless manifest.json is signed by a trusted key: a missing, foreign
    or broken signature is reported and the command fails. An unsigned report is checked
    only with --allow-unsigned, and reported as unsigned.

    Exit code 0 when everything verifies, 1 on any integrity failure, 2 on a usage error
    (unreadable PDF, bad key file).

    \b
    Example:
      mrm report verify evidence-2026Q1.pdf --public-key ledger.vkey
      mrm report verify evidence-2026Q1.pdf --public-key ledger.vkey --json | jq '.attachments'
      mrm report verify examiner-pack.pdf --public-key ledger.vkey --public-key examiner.vkey
    """
    # pypdf logs recoverable oddities of hostile or re-saved files as warnings; the
    # verification result already says what matters, so keep the output to that.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        verifiers = [key for path in public_key for key in load_verifier_keys(path)]
        result = verify_report(file, verifiers, allow_unsigned=allow_unsigned)
    except ReportError as e:
        raise UsageFailure(str(e)) from None
    if as_json:
        emit_json(result.to_json())
    else:
        click.echo(result.to_text())
    if not result.ok:
        sys.exit(EXIT_INTEGRITY)


COMMANDS = [report]
