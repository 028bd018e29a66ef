"""`mrm demo`: a year of a retail bank's recommender through the ledger, verified, and where it is."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .cli import UsageFailure, emit_json, handle_errors, json_option
from .demo.scenario import DEFAULT_REQUESTS, DEFAULT_SEED, SLOT, DemoResult, run_demo
from .demo_reports import DemoReports, write_demo_reports


def _rel(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


def _summary(r: DemoResult, documents: DemoReports | None) -> list[str]:
    p = r.paths
    ok = r.hmac_verified and r.public_verified and r.proof_verified and r.unsuitable_served == 0
    lines = [
        f"mrm demo: {r.weeks} weeks of a retail bank's investment-product recommender (seed {r.seed})",
        f"  {r.requests:,} requests, {r.entries:,} ledger entries, {sum(r.seconds.values()):.0f} s",
        f"  {'verified' if ok else 'VERIFICATION FAILED'}: HMAC chain {'ok' if r.hmac_verified else 'FAILED'}, "
        f"signed checkpoints with the public key {'ok' if r.public_verified else 'FAILED'}, "
        f"inclusion proof {'ok' if r.proof_verified else 'FAILED'}, "
        f"unsuitable recommendations served: {r.unsuitable_served}",
        "",
        "The year (week, event, seq):",
    ]
    for e in r.story:
        if e.headline:
            lines.append(f"  w{e.week:02d}  {e.event:<26} {e.seq:>9}  {e.detail[:90]}")
    if r.fairness_alert_seq is None and r.weeks == 52:
        lines.append(f"  (no fairness alert: at {r.requests:,} requests a year the weekly monitor sees too few customers "
                     f"per segment to be sure; the default {DEFAULT_REQUESTS:,} are enough)")
    lines += [
        "",
        f"Disputed recommendation {r.disputed_request_id}, reconstructed: {_rel(p.reconstruction.with_suffix('.txt'))}"
        f" (JSON: {_rel(p.reconstruction)})",
        "",
        "Files:",
        f"  ledger        {_rel(p.ledger)}",
        f"  HMAC keys     {_rel(p.keyring)}  (secret: whoever holds it can forge entries)",
        f"  public key    {_rel(p.public_key)}",
        f"  proof         {_rel(r.proof_path)}",
        f"  models        {_rel(p.models)}/<version>/, gate evaluations {_rel(p.evaluations)}/",
        f"  also          {_rel(p.manifest)}, {_rel(p.subjects)}, {_rel(p.policy)}, {_rel(p.result)}",
        "",
        *(["Examiner PDFs (PDF/A-3b, evidence and proofs attached, manifest signed with the ledger key):",
           f"  decision dossier    {_rel(documents.decision)}  (the disputed request)",
           f"  validation history  {_rel(documents.validation)}  (slot {SLOT}, SR 11-7)",
           f"  evidence pack       {_rel(documents.evidence)}  (SR 11-7 over the demo's year)",
           ""] if documents else []),
        "Try next:",
        f"  mrm status {_rel(p.ledger)}",
        f"  mrm verify {_rel(p.ledger)} --public-key {_rel(p.public_key)} --state {_rel(p.public_state)}",
        f"  mrm verify-proof {_rel(r.proof_path)} --public-key {_rel(p.public_key)}",
        f"  mrm reconstruct {_rel(p.ledger)} --request-id {r.disputed_request_id} --verify --public-key {_rel(p.public_key)}",
        f"  mrm sql {_rel(p.ledger)} \"SELECT ts, decision, challenger_version, operator, reason FROM manual_overrides()\"",
        f"  mrm registry history {_rel(p.ledger)} --slot {SLOT}",
        *([f"  mrm gate replay {_rel(p.ledger)} --seq {r.fidelity_reject_seq} "
           + " ".join(f"--evaluation {_rel(e)}" for e in r.fidelity_reject_evaluations)] if r.fidelity_reject_seq else []),
        f"  mrm registry status {_rel(p.ledger)} --at 2025-07-15T14:00:00+09:00",
        *([f"  mrm report verify {_rel(documents.decision)} --public-key {_rel(p.public_key)}"] if documents else []),
    ]
    return lines


@click.command()
@click.option("--out", default="demo-out", show_default=True, type=click.Path(file_okay=False),
              help="Directory to write (an earlier demo there is replaced; any other non-empty directory is refused).")
@click.option("--requests", default=DEFAULT_REQUESTS, show_default=True, type=click.IntRange(1),
              help="Recommendation requests over the year; millions are fine (benchmarks).")
@click.option("--seed", default=DEFAULT_SEED, show_default=True, type=int,
              help="Seed of the synthetic world: the same seed gives the same ledger content.")
@json_option
@handle_errors
def demo(out: str, requests: int, seed: int, as_json: bool) -> None:
    """Replay a year of a Korean retail bank's investment-product recommender into a new
    ledger: every request (data access, inference, attribution, KFCPA Art. 17 suitability
    guardrail), weekly retrained scikit-learn challengers through the promotion gate, late
    outcomes, a fairness monitor, an emergency force-promote, a human sign-off, a key
    rotation, a nightly drift monitor whose one breach proposes a retrain, an online trial
    (shadow, canary, Welch's test) before each sign-off, and a serving incident rolled back
    automatically. Then verify it with the HMAC key and with the public key alone, reconstruct one
    disputed recommendation and write its inclusion proof.

    \b
    Example:
      mrm demo --out demo-out
      mrm demo --out bench-demo --requests 1000000
    """
    try:
        result = run_demo(Path(out), requests, seed)
    except FileExistsError as e:
        raise UsageFailure(str(e)) from None
    verified = result.hmac_verified and result.public_verified and result.proof_verified
    documents = None
    if verified and result.disputed_request_id:
        from ledger import Keyring

        documents = write_demo_reports(result.paths.ledger, Keyring.load(result.paths.keyring), Path(out) / "reports",
                                       request_id=result.disputed_request_id, slot=SLOT)
    if as_json:
        doc = result.to_dict()
        doc["reports"] = None if documents is None else {k: str(v) for k, v in vars(documents).items()}
        emit_json(doc)
    else:
        click.echo("\n".join(_summary(result, documents)))
    if not verified:
        raise SystemExit(1)


COMMANDS = [demo]
