"""Promotion gate and registry commands: gate evaluate/replay, approve, decline, promote,
rollback, registry status/history/manifest/register/traffic.

Every state change is one durable ledger entry written before the change takes effect; the
registry and the serving manifest are derived from the ledger. Exit codes: 0 ok (a reject is a
decision, not a failure), 1 a replay mismatch or a ledger whose registry history contradicts
itself, 2 a usage or input error (nothing written).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from gates.decision import GateInputError
from gates.evaluation import EvaluationError, EvaluationFile, observe_artifacts
from gates.ledger_io import EntryNotFound, InconsistentHistory, TransitionRefused, load_registry
from gates.manifest import manifest_json, serving_manifest, write_manifest
from gates.online import TrafficMode
from gates.policy import PolicyError, load_policy
from gates.promotion import (
    RECORDED_CHAMPION,
    TRAFFIC_OFF,
    Recorded,
    approve as approve_version,
    decline as decline_version,
    REVIEW_OUTCOMES,
    force_promote,
    register_candidate,
    review_override,
    rollback as rollback_slot,
    run_gate,
    set_traffic,
)
from gates.replay_check import check_replay
from ledger import Ledger
from ledger.identifiers import identifier_problem

from .cli import EXIT_INTEGRITY, EXIT_USAGE, UsageFailure, existing_ledger, writable_ledger, emit_json, handle_errors, json_option, keyring_option, resolve_keyring, usage_errors

actor_option = click.option("--actor", help="Who writes the entry (default: $MRM_ACTOR or user@host).")
operator_option = click.option("--operator", required=True, help="Id of the accountable person (recorded).")
reason_option = click.option("--reason", required=True, help="Why (recorded verbatim in the entry).")
NAME_RULE = 'a name: see README "Names"'


def name_option(*decls: str, **attrs: Any) -> Callable:
    """An option naming a slot or a model version: refused at parsing (exit 2) unless it
    follows the one identifier rule (ledger.identifiers, README "Names")."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        problem = None if value is None else identifier_problem(value)
        if problem:
            raise click.BadParameter(problem)
        return value

    return click.option(*decls, callback=check, **attrs)


slot_option = name_option("--slot", required=True, help=f"Deployment slot, e.g. credit_pd ({NAME_RULE}).")
responds_to_option = click.option(
    "--responds-to", "responds_to_seq", type=click.IntRange(0), metavar="SEQ",
    help="The monitor_alert entry (its seq) this answers; recorded as details.responds_to_seq, refused unless "
         "SEQ is an alert of the slot.")
manifest_option = click.option(
    "--manifest", "manifest_out", type=click.Path(dir_okay=False),
    help="After the entry is durable, rewrite this serving manifest (JSON) from the ledger.")


class IntegrityFailure(click.ClickException):
    """The ledger holds something that does not hold together: exit code 1."""

    exit_code = EXIT_INTEGRITY

    def show(self, file: Any = None) -> None:
        click.echo(f"integrity failure: {self.message}", err=True)


def handle_gate_errors(fn: Callable) -> Callable:
    """The gate's refusals as exit code 2 with their message; an inconsistent history as 1."""

    refusals = usage_errors(GateInputError, EvaluationError, PolicyError, TransitionRefused, EntryNotFound)(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return refusals(*args, **kwargs)
        except InconsistentHistory as e:
            raise IntegrityFailure(str(e)) from None

    return handle_errors(wrapper)


def _open(path: str, keyring_file: str | None, actor: str | None) -> Ledger:
    return Ledger.open(path, resolve_keyring(path, keyring_file), actor=actor)


def check_manifest_destination(manifest_out: str | None) -> None:
    """Refuse an unwritable --manifest before anything is recorded: exit 2 means nothing was written."""
    if not manifest_out:
        return
    out = Path(manifest_out)
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise UsageFailure(f"--manifest {out}: is a directory")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageFailure(f"--manifest {out}: directory {parent} does not exist or is not writable")


def rewrite_manifest(path: str, manifest_out: str | None) -> None:
    """After a recorded change: regenerate the serving manifest from the ledger. The change is
    already durable, so a failure here says so instead of looking like a refused command."""
    if not manifest_out:
        return
    try:
        write_manifest(serving_manifest(path), manifest_out)
    except OSError as e:
        raise UsageFailure(f"the change is recorded in the ledger, but the serving manifest {manifest_out} could not "
                           f"be written ({e.strerror or e}); regenerate it with `mrm registry manifest {path} "
                           f"--out {manifest_out}`") from None


T = TypeVar("T")


def _write_entry(path: str, keyring_file: str | None, actor: str | None, manifest_out: str | None,
                 write: Callable[[Ledger], T]) -> T:
    """Check the manifest destination first (nothing is recorded when it is unusable), write
    the entry, then rewrite the serving manifest from the ledger."""
    check_manifest_destination(manifest_out)
    with _open(path, keyring_file, actor) as ledger:
        written = write(ledger)
    rewrite_manifest(path, manifest_out)
    return written


def _report(recorded: Recorded, as_json: bool, manifest_out: str | None, next_step: str | None = None) -> None:
    doc = recorded.to_dict()
    if manifest_out:
        doc["manifest"] = str(manifest_out)
    if as_json:
        emit_json(doc)
        return
    against = f" (champion {doc['champion_version']})" if doc["champion_version"] else ""
    click.echo(f"seq {doc['seq']}: {doc['decision']} of {doc['challenger_version']} in slot {doc['slot']}{against}")
    click.echo(f"  {doc['reason']}")
    for c in doc["failing_checks"]:
        click.echo(f"  failing: {c['name']}: {c['detail']}")
    if manifest_out:
        click.echo(f"  serving manifest rewritten: {manifest_out}")
    if next_step:
        click.echo(f"next: {next_step}")


def parse_utc(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        ts = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageFailure(f"{option}: {text!r} is not an ISO 8601 timestamp") from None
    if ts.tzinfo is None:
        raise UsageFailure(f"{option}: {text!r} has no time zone; add one, e.g. {text}Z or {text}+09:00")
    return ts.astimezone(dt.timezone.utc)


# --- gate -------------------------------------------------------------------------------------


@click.group()
def gate() -> None:
    """The champion/challenger promotion gate: decide, and replay decisions."""


@gate.command("evaluate")
@writable_ledger
@click.argument("challenger", type=click.Path(exists=True, dir_okay=False))
@click.argument("champion", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--policy", "policy_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Promotion policy (TOML; see gates/policies/default.toml).")
@click.option("--artifacts-root", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Directory the evaluation's artifact paths are relative to; their SHA-256 is checked.")
@click.option("--operator", help="Who ran the gate (optional: the gate's verdict is automatic).")
@click.option("--digest-only", is_flag=True,
              help="Record the evaluations by SHA-256 only (huge holdouts); replay then needs the files back.")
@manifest_option
@keyring_option
@actor_option
@json_option
@handle_gate_errors
def gate_evaluate(path: str, challenger: str, champion: str | None, policy_file: str, artifacts_root: str,
                  operator: str | None, digest_only: bool, manifest_out: str | None, keyring_file: str | None,
                  actor: str | None, as_json: bool) -> None:
    """Run the promotion ladder on CHALLENGER and record the verdict as one model_promotion entry.

    Force-promote, bootstrap, fidelity floor, functional checks, competition and guardrails,
    in that order. CHAMPION defaults to the production version's evaluation recorded in the
    ledger by an earlier gate run; a CHAMPION file must evaluate the production version's
    registered artifacts. An unregistered challenger is registered first. Outcomes:
    bootstrap, promote, pending_approval (auto_promote = false), reject (every failing check
    named). A reject exits 0: it is a decision, read it with --json.

    \b
    Example:
      mrm gate evaluate ./audit-ledger eval-v012.json --policy gates/policies/default.toml
      mrm gate evaluate ./audit-ledger eval-v012.json eval-v011.json --policy policy.toml --json
    """
    policy = load_policy(policy_file)
    chal = EvaluationFile.load(challenger)
    champ = EvaluationFile.load(champion) if champion else RECORDED_CHAMPION
    observed = observe_artifacts(chal, artifacts_root)
    recorded = _write_entry(path, keyring_file, actor, manifest_out, lambda ledger: run_gate(
        ledger, chal, policy, champion=champ, observed_artifacts=observed, operator=operator,
        inline_evaluations=not digest_only))
    d = recorded.decision
    next_step = (f"mrm approve {path} --slot {d.slot} --version {d.challenger_version} --operator ID --reason TEXT"
                 if d.outcome == "pending_approval" else None)
    _report(recorded, as_json, manifest_out, next_step)


@gate.command("replay")
@existing_ledger
@click.option("--seq", type=click.IntRange(0), help="Sequence number of the model_promotion entry.")
@click.option("--all", "replay_all", is_flag=True, help="Replay every model_promotion entry.")
@click.option("--evaluation", "evaluation_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An evaluation recorded by digest only (--digest-only); repeatable.")
@json_option
@handle_gate_errors
def gate_replay(path: str, seq: int | None, replay_all: bool, evaluation_files: tuple[str, ...], as_json: bool) -> None:
    """Recompute a recorded decision from the inputs its entry records, and compare.

    Checks the recorded policy and evaluations against their recorded SHA-256 (an edited
    input is reported, never replayed), recomputes the decision, compares every column and
    detail with the entry, and checks the champion it names was production just before it.
    An entry whose evaluations were recorded by digest only is NOT REPLAYED until their files
    are given with --evaluation. Exit code 0 when everything matches, 1 when anything does
    not, 2 when nothing disagrees but some entries could not be replayed for want of their
    evaluation files. (The entry's MAC is what `mrm verify` checks.)

    \b
    Example:
      mrm gate replay ./audit-ledger --seq 57
      mrm gate replay ./audit-ledger --all --json | jq '.[] | select(.matches | not)'
    """
    if (seq is None) == (not replay_all):
        raise UsageFailure("give --seq N or --all")
    evaluations = [EvaluationFile.load(f) for f in evaluation_files]
    reports = check_replay(path, seq, evaluations)
    if as_json:
        emit_json([r.to_dict() for r in reports] if replay_all else reports[0].to_dict())
    else:
        for r in reports:
            click.echo(r.to_text())
        if replay_all:
            bad = sum(r.mismatch for r in reports)
            unreplayed = sum(not r.matches and not r.mismatch for r in reports)
            click.echo(f"{len(reports)} decisions: {len(reports) - bad - unreplayed} match, {bad} do not"
                       + (f", {unreplayed} not replayed (pass their evaluation files with --evaluation)" if unreplayed else ""))
    if any(r.mismatch for r in reports):
        sys.exit(EXIT_INTEGRITY)
    if not all(r.matches for r in reports):
        sys.exit(EXIT_USAGE)


# --- human decisions --------------------------------------------------------------------------


def _sign_off_command(name: str, approve: bool) -> click.Command:
    verb = "Approve" if approve else "Decline"
    example = ("mrm approve ./audit-ledger --slot credit_pd --version v012 --operator mrm-chair "
               "--reason 'MRM committee 2026-04-24, minute 7'") if approve else (
               "mrm decline ./audit-ledger --slot credit_pd --version v012 --operator mrm-chair "
               "--reason 'needs a back-test on the 2020 stress window'")
    effect = "it becomes production, the current one archived" if approve else "it becomes rejected"

    @click.command(name, help=f"""{verb} a pending_approval version: {effect}.

    The human sign-off that auto_promote = false requires; the operator and the reason are
    recorded in the model_promotion entry. An approval is refused when production changed
    since the gate compared the version (its verdict would be about another champion), and
    when the operator requested the sign-off (the gate entry's actor or operator): an
    approval is a second person's; a requester may still decline (withdraw). Under a policy
    with approval_valid_days, a verdict older than that cannot be approved.

    \b
    Example:
      {example}
    """)
    @existing_ledger
    @slot_option
    @name_option("--version", required=True, help=f"The pending_approval version ({NAME_RULE}).")
    @operator_option
    @reason_option
    @manifest_option
    @keyring_option
    @actor_option
    @json_option
    @handle_gate_errors
    def command(path: str, slot: str, version: str, operator: str, reason: str, manifest_out: str | None,
                keyring_file: str | None, actor: str | None, as_json: bool) -> None:
        fn = approve_version if approve else decline_version
        recorded = _write_entry(path, keyring_file, actor, manifest_out,
                                lambda ledger: fn(ledger, slot=slot, version=version, operator=operator, reason=reason))
        _report(recorded, as_json, manifest_out)

    return command


approve = _sign_off_command("approve", True)
decline = _sign_off_command("decline", False)


@click.command()
@writable_ledger
@click.option("--force", is_flag=True, help="Required: this is the operator override, not the gate.")
@name_option("--version", required=True, help=f"Any registered version of the slot, e.g. a known-good one ({NAME_RULE}).")
@slot_option
@operator_option
@reason_option
@responds_to_option
@manifest_option
@keyring_option
@actor_option
@json_option
@handle_gate_errors
def promote(path: str, force: bool, version: str, slot: str, operator: str, reason: str, responds_to_seq: int | None,
            manifest_out: str | None, keyring_file: str | None, actor: str | None, as_json: bool) -> None:
    """Force-promote VERSION into production, skipping every gate check (emergency override).

    There is no quiet path to production: the gate (`mrm gate evaluate`) or a sign-off
    (`mrm approve`) promote; this command is the explicit override, and its entry names the
    operator and the reason for the committee to review (`mrm review-override`), the checks
    the ladder would have run (details.skipped_checks) and, with --responds-to, the alert it
    answers.

    \b
    Example:
      mrm promote ./audit-ledger --force --version v009 --slot credit_pd --responds-to 4711 \\
          --operator eng-42 --reason "DI breach on age x region, back to known-good v009"
    """
    if not force:
        raise UsageFailure("promote is the operator override and needs --force; a normal promotion goes through "
                           "`mrm gate evaluate` (and `mrm approve` when auto_promote is off)")
    recorded = _write_entry(path, keyring_file, actor, manifest_out,
                            lambda ledger: force_promote(ledger, slot=slot, version=version, operator=operator, reason=reason,
                                                         responds_to_seq=responds_to_seq))
    _report(recorded, as_json, manifest_out)


@click.command()
@writable_ledger
@slot_option
@name_option("--to-version", help="Target (default: the most recent archived former production version).")
@operator_option
@reason_option
@responds_to_option
@manifest_option
@keyring_option
@actor_option
@json_option
@handle_gate_errors
def rollback(path: str, slot: str, to_version: str | None, operator: str, reason: str, responds_to_seq: int | None,
             manifest_out: str | None, keyring_file: str | None, actor: str | None, as_json: bool) -> None:
    """Put a former production version back into production; the current one becomes rolled_back.

    \b
    Example:
      mrm rollback ./audit-ledger --slot credit_pd --operator eng-7 --reason "p99 latency 2.4x baseline"
      mrm rollback ./audit-ledger --slot credit_pd --to-version v009 --responds-to 4711 --operator eng-7 --reason "..."
    """
    recorded = _write_entry(path, keyring_file, actor, manifest_out, lambda ledger: rollback_slot(
        ledger, slot=slot, reason=reason, operator=operator, to_version=to_version, responds_to_seq=responds_to_seq))
    _report(recorded, as_json, manifest_out)


@click.command("review-override")
@writable_ledger
@click.argument("override_seq", metavar="SEQ", type=click.IntRange(0))
@click.option("--outcome", required=True, type=click.Choice(REVIEW_OUTCOMES), help="The committee's finding.")
@click.option("--reviewer", required=True, help="Id of the reviewer or committee chair (recorded).")
@click.option("--note", required=True, help="The review's finding and minutes reference (recorded verbatim).")
@keyring_option
@actor_option
@json_option
@handle_gate_errors
def review_override_command(path: str, override_seq: int, outcome: str, reviewer: str, note: str,
                            keyring_file: str | None, actor: str | None, as_json: bool) -> None:
    """Record the committee's review of the person's decision at SEQ (a force-promote, sign-off
    or manual rollback): an override_review entry whose details.reviews_seq is SEQ. Refused
    (exit 2, nothing written) unless SEQ is a manual model_promotion entry. What the committee
    does about it (a rollback, a policy change) is an entry of its own.

    \b
    Example:
      mrm review-override ./audit-ledger 4712 --outcome upheld --reviewer mrm-chair \\
          --note "MRM committee 2026-04-24, minute 3: breach confirmed on served decisions"
    """
    with _open(path, keyring_file, actor) as ledger:
        seq = review_override(ledger, reviews_seq=override_seq, outcome=outcome, reviewer=reviewer, note=note)
    doc = {"seq": seq, "reviews_seq": override_seq, "outcome": outcome, "reviewer": reviewer}
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"seq {seq}: review of seq {override_seq}: {outcome} by {reviewer}")


# --- registry ---------------------------------------------------------------------------------


@click.group()
def registry() -> None:
    """The model registry, derived from the ledger: status, history, serving manifest."""


@registry.command("status")
@existing_ledger
@click.option("--at", "at_text", help="Show the registry as it stood at this instant (ISO 8601 with a zone).")
@json_option
@handle_gate_errors
def registry_status(path: str, at_text: str | None, as_json: bool) -> None:
    """What each slot serves, and which versions wait (no key needed).

    \b
    Example:
      mrm registry status ./audit-ledger
      mrm registry status ./audit-ledger --at 2026-04-21T14:00:00Z --json
    """
    at = parse_utc(at_text, "--at")
    view = load_registry(path)
    reg = view.registry
    slots = {}
    for slot in reg.slots():
        states = reg.states(slot, at)
        if not states:
            continue
        production = reg.production(slot, at)
        made_live = [t for t in reg.history(slot) if t.version == production and t.to_state == "production"
                     and (at is None or t.ts <= at)]
        live = made_live[-1] if made_live else None
        by_state: dict[str, list[str]] = {}
        for version, state in states.items():
            by_state.setdefault(state, []).append(version)
        traffic = view.traffic(slot) if at is None else None
        slots[slot] = {
            "production": production,
            "since": live.ts.isoformat() if live else None,
            "seq": live.seq if live else None,
            "by": live.cause if live else None,
            "operator": live.operator if live else None,
            "versions": {s: sorted(v) for s, v in sorted(by_state.items())},
            "challenger_traffic": traffic.to_dict() if traffic else None,
        }
    doc = {"ledger": str(Path(path)), "as_of_seq": view.last_seq, "at": at.isoformat() if at else None, "slots": slots}
    if as_json:
        emit_json(doc)
        return
    if not slots:
        click.echo("no model versions registered" + (f" at {at.isoformat()}" if at else ""))
    for slot, s in slots.items():
        live = (f"{s['production']} (since {s['since']}, seq {s['seq']}, {s['by']}"
                + (f" by {s['operator']})" if s["operator"] else ")")) if s["production"] else "none"
        click.echo(f"{slot}: production {live}")
        for state, versions in s["versions"].items():
            if state != "production":
                click.echo(f"  {state:<17} {', '.join(versions)}")
        if s["challenger_traffic"]:
            t = s["challenger_traffic"]
            click.echo(f"  challenger traffic {t['challenger_version']} {t['mode']} ({t['challenger_share']:.0%}), "
                       f"experiment {t['experiment']}")


@registry.command("history")
@existing_ledger
@slot_option
@json_option
@handle_gate_errors
def registry_history(path: str, slot: str, as_json: bool) -> None:
    """Every state change of every version in SLOT, with the entry that caused it.

    \b
    Example:
      mrm registry history ./audit-ledger --slot credit_pd
    """
    reg = load_registry(path).registry
    history = reg.history(slot)
    if not history:
        raise UsageFailure(f"slot {slot!r} has no registry history" + (f"; slots: {', '.join(reg.slots())}" if reg.slots() else ""))
    rows = [{"seq": t.seq, "ts": t.ts.isoformat(), "version": t.version, "from": t.from_state, "to": t.to_state,
             "cause": t.cause, "operator": t.operator, "reason": t.reason} for t in history]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        who = f" by {r['operator']}" if r["operator"] else ""
        click.echo(f"seq {r['seq']:>6}  {r['ts']}  {r['version']:<12} {r['from'] or '-':>16} -> {r['to']:<16} "
                   f"{r['cause']}{who}")


@registry.command("manifest")
@existing_ledger
@click.option("--out", type=click.Path(dir_okay=False), help="Write the manifest here (atomically) instead of stdout.")
@json_option
@handle_gate_errors
def registry_manifest(path: str, out: str | None, as_json: bool) -> None:
    """The serving manifest: per slot, the production version and the seq, leaf hash and MAC
    of the entry that made it live, plus any challenger taking traffic. Derived from the
    ledger alone; serving systems read it instead of a mutable registry.

    \b
    Example:
      mrm registry manifest ./audit-ledger --out /srv/models/manifest.json
    """
    manifest = serving_manifest(path)
    if out is None:
        click.echo(manifest_json(manifest), nl=False)
        return
    write_manifest(manifest, out)
    summary = {"out": out, "as_of_seq": manifest["as_of_seq"],
               "slots": {s: v["production"] for s, v in manifest["slots"].items()}}
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"wrote {out}: {len(summary['slots'])} slot(s) as of seq {summary['as_of_seq']}")


@registry.command("register")
@writable_ledger
@click.argument("evaluation", required=False, type=click.Path(exists=True, dir_okay=False))
@name_option("--slot", help=f"Slot (when no EVALUATION file names it; {NAME_RULE}).")
@name_option("--version", help=f"Version (when no EVALUATION file names it; {NAME_RULE}).")
@keyring_option
@actor_option
@json_option
@handle_gate_errors
def registry_register(path: str, evaluation: str | None, slot: str | None, version: str | None,
                      keyring_file: str | None, actor: str | None, as_json: bool) -> None:
    """Register a model version as a candidate (an operation entry with its lineage).

    `mrm gate evaluate` registers an unregistered challenger itself; register explicitly to
    record a version before it is evaluated, or one that is only ever force-promoted.

    \b
    Example:
      mrm registry register ./audit-ledger eval-v012.json
      mrm registry register ./audit-ledger --slot credit_pd --version v012
    """
    e = EvaluationFile.load(evaluation) if evaluation else None
    with _open(path, keyring_file, actor) as ledger:
        seq = register_candidate(ledger, slot=slot, version=version, evaluation=e)
    doc = {"seq": seq, "slot": e.slot if e else slot, "version": e.version if e else version, "state": "candidate"}
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"seq {seq}: registered {doc['version']} in slot {doc['slot']} as a candidate")


@registry.command("traffic")
@writable_ledger
@slot_option
@name_option("--challenger", "challenger_version", required=True, help="Candidate or pending version.")
@click.option("--mode", required=True, type=click.Choice([m.value for m in TrafficMode] + [TRAFFIC_OFF]),
              help="shadow (scores unseen), canary_5/10/20, ab_50, or off.")
@click.option("--experiment", help="Salt of the routing hash (default: SLOT/VERSION).")
@operator_option
@reason_option
@manifest_option
@keyring_option
@actor_option
@json_option
@handle_gate_errors
def registry_traffic(path: str, slot: str, challenger_version: str, mode: str, experiment: str | None, operator: str,
                     reason: str, manifest_out: str | None, keyring_file: str | None, actor: str | None,
                     as_json: bool) -> None:
    """Give a challenger live traffic (or end it); recorded as a traffic_split entry.

    Serving routes each request by SHA-256 of its request id (gates.online.route) with the
    mode and experiment the serving manifest gives. Traffic is not promotion.

    \b
    Example:
      mrm registry traffic ./audit-ledger --slot credit_pd --challenger v012 --mode canary_5 \\
          --operator eng-7 --reason "canary after offline pass"
    """
    seq = _write_entry(path, keyring_file, actor, manifest_out, lambda ledger: set_traffic(
        ledger, slot=slot, challenger_version=challenger_version, mode=mode, operator=operator, reason=reason,
        experiment=experiment))
    doc = {"seq": seq, "slot": slot, "challenger_version": challenger_version, "mode": mode}
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"seq {seq}: {challenger_version} in slot {slot}: traffic {mode}")


COMMANDS = [gate, approve, decline, promote, rollback, review_override_command, registry]
