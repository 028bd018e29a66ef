"""Monitoring commands: record late outcomes, and run the fairness, drift, serving-health and
online champion/challenger monitors over a window of the ledger.

A monitor only reads unless it is given `--record`, so a reviewer can run any of them on a
production ledger and change nothing (no key needed). The scheduled runs pass `--record`:
then the run and its alerts are written (monitor_run and monitor_alert entries, or an
online_evaluation entry), and `monitor serving` may roll back when the policy says so.

A monitor that finds a breach exits 0 like one that does not: the finding is in the output
(`--json` `.status`) and, recorded, in the ledger. Exit 2 is a usage or input error.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any, Callable

import click

from gates.metrics import metric_value
from gates.monitoring import (
    BASES,
    SERVED,
    MonitorReport,
    act_on_serving,
    compute_drift,
    compute_fairness,
    compute_online,
    compute_serving,
    load_subjects,
    record_monitor_report,
    record_online,
)
from gates.observations import MonitorInputError, Window, record_outcomes
from gates.policy import load_policy
from ledger import Ledger
from ledger.errors import InputError
from ledger.jsontext import JSONTextError, loads_strict
from ledger.numbers import parse_float_text

from .cli import UsageFailure, existing_ledger, writable, writable_ledger, emit_json, json_option, keyring_option, resolve_keyring, usage_errors
from .cmd_gate import (
    actor_option,
    check_manifest_destination,
    handle_gate_errors,
    manifest_option,
    name_option,
    parse_utc,
    rewrite_manifest,
    slot_option,
)

policy_option = click.option("--policy", "policy_file", required=True, type=click.Path(exists=True, dir_okay=False),
                             help="Policy TOML: its [monitors], [online] and [rollback] sections apply.")
since_option = click.option("--since", help="Window start, inclusive (ISO 8601 with a zone).")
until_option = click.option("--until", help="Window end, exclusive (ISO 8601 with a zone).")
version_option = name_option("--version", help="Model version (default: production at the end of the window).")
record_option = click.option("--record", is_flag=True,
                             help="Write the run and its alerts into the ledger (needs the key). Without it the "
                                  "monitor only reads and prints.")
NOT_RECORDED = "not recorded: run with --record to write it"
MAX_PERIOD_HOURS = 24 * 366 * 10  # an SLO period longer than ten years is a typo


class FiniteFloat(click.ParamType):
    """A float option checked where it is parsed: finite (click's FloatRange lets nan, inf
    and 1e400 through) and inside [low, high], the low end open when ``low_open``."""

    name = "float"

    def __init__(self, low: float, high: float, *, low_open: bool = False):
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            number = parse_float_text(value, "value", self.low, self.high)
        except InputError as e:
            self.fail(str(e).removeprefix("value: "), param, ctx)
        if self.low_open and number == self.low:
            self.fail(f"must be > {self.low:g}, got {value!r}", param, ctx)
        return number


def handle_monitor_errors(fn: Callable) -> Callable:
    """A monitor's input errors as exit code 2, on top of the gate's error handling."""
    return handle_gate_errors(usage_errors(MonitorInputError)(fn))


def _window(since: str | None, until: str | None, what: str = "") -> Window:
    return Window(parse_utc(since, f"--{what}since"), parse_utc(until, f"--{what}until"))


def _record_and_print(path: str, report: MonitorReport, record: bool, keyring_file: str | None, actor: str | None,
                      as_json: bool) -> None:
    doc = report.to_dict()
    doc["recorded"] = record
    if record:
        with Ledger.open(writable(path), resolve_keyring(path, keyring_file), actor=actor) as ledger:
            run = record_monitor_report(ledger, report)
        doc.update(run_id=run.run_id, run_seq=run.run_seq, alert_seqs=list(run.alert_seqs))
    if as_json:
        emit_json(doc)
        return
    basis = report.inputs.get("basis")
    click.echo(f"{report.kind} monitor on {report.slot} {report.version}"
               + (f" ({basis} decisions)" if basis else "") + f": {report.status}"
               + (f" (run seq {doc['run_seq']})" if record else f" ({NOT_RECORDED})"))
    for r in report.results:
        name = r.get("metric") or r.get("feature")
        line = r.get("detail") or f"PSI {r['psi']:.4g}, KL {r['kl']:.4g} (n {r['n_baseline']} -> {r['n_current']})"
        click.echo(f"  {name}: {r['status']}: {line}")
    for i, a in enumerate(report.alerts):
        where = f" (seq {doc['alert_seqs'][i]})" if record else ""
        click.echo(f"  ALERT{where}: {a.summary} -> {a.action}")


# --- outcomes ---------------------------------------------------------------------------------


def _read_outcome_file(file: str) -> list[dict[str, Any]]:
    p = Path(file)
    rows: list[dict[str, Any]] = []
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = loads_strict(line)  # NaN, Infinity and duplicate keys refused
            except JSONTextError as e:
                raise UsageFailure(f"{p}:{n}: {e}") from None
            if not isinstance(obj, dict):
                raise UsageFailure(f"{p}:{n}: each line must be a JSON object")
            values = obj.get("values")
            if isinstance(values, dict):
                obj["values"] = {k: metric_value(k, v, f"{p}:{n}: values.{k}") for k, v in values.items()}
            rows.append(obj)
    elif p.suffix.lower() == ".csv":
        with p.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if "request_id" not in (reader.fieldnames or []):
                raise UsageFailure(f"{p}: no request_id column (columns: {', '.join(reader.fieldnames or [])})")
            for n, r in enumerate(reader, 2):
                values = {}
                for k, v in r.items():
                    if k and k.startswith("value:") and v not in (None, ""):
                        metric = k[len("value:"):]
                        number = parse_float_text(v, f"{p}:{n}: column {k}")
                        values[metric] = metric_value(metric, number, f"{p}:{n}: column {k}")
                rows.append({"request_id": r["request_id"], "label": r.get("label") or None,
                             "observed_at": r.get("observed_at") or None, "values": values})
    else:
        raise UsageFailure(f"{p}: outcomes are read from .csv or .jsonl files")
    return rows


@click.command()
@writable_ledger
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--source", help="Where the outcomes come from (recorded), e.g. collections-system.")
@keyring_option
@actor_option
@json_option
@handle_monitor_errors
def outcomes(path: str, file: str, source: str | None, keyring_file: str | None, actor: str | None, as_json: bool) -> None:
    """Record late-arriving outcomes (labels) against the request ids they belong to, all or nothing.

    One operation entry per outcome: event_type outcome, correlation_id the request id,
    details {label, observed_at, values}. A correction is a new entry; the latest counts.
    FILE is CSV (request_id, label, observed_at, value:<metric>...) or JSON Lines
    ({"request_id", "label", "observed_at", "values": {...}}).

    \b
    Example:
      mrm outcomes ./audit-ledger labels-2026-05.csv --source loan-servicing
    """
    rows = _read_outcome_file(file)
    with Ledger.open(path, resolve_keyring(path, keyring_file), actor=actor) as ledger:
        seqs = record_outcomes(ledger, rows, source=source)
    doc = {"entries": len(seqs), "first_seq": seqs.start if seqs else None, "last_seq": seqs.stop - 1 if seqs else None}
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"recorded {len(seqs)} outcomes" + (f" (seq {seqs.start}-{seqs.stop - 1})" if seqs else ""))


# --- monitors ---------------------------------------------------------------------------------


@click.group()
def monitor() -> None:
    """Run a monitor over a window of the ledger; with --record, write the run and its alerts."""


@monitor.command("fairness")
@existing_ledger
@slot_option
@policy_option
@click.option("--subjects", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Parquet or CSV mapping subject_id to group attributes (held by you, not the ledger).")
@click.option("--attribute", required=True, help="The subjects column that defines the groups.")
@click.option("--privileged", required=True, help="Attribute value of the privileged (reference) group.")
@click.option("--unprivileged", required=True, help="Attribute value of the group compared with it.")
@click.option("--favorable", required=True, multiple=True, help="A decision that is favorable; repeatable.")
@click.option("--positive-label", "positive_labels", multiple=True,
              help="Outcome label meaning truly positive, for equal opportunity (default: the favorable values).")
@click.option("--basis", type=click.Choice(BASES), default=SERVED, show_default=True,
              help="served: what the customer received (the last guardrail verdict's output); proposed: the "
                   "model's own decision, before any guardrail.")
@version_option
@since_option
@until_option
@record_option
@keyring_option
@actor_option
@json_option
@handle_monitor_errors
def monitor_fairness(path: str, slot: str, policy_file: str, subjects: str, attribute: str, privileged: str,
                     unprivileged: str, favorable: tuple[str, ...], positive_labels: tuple[str, ...], basis: str,
                     version: str | None, since: str | None, until: str | None, record: bool,
                     keyring_file: str | None, actor: str | None, as_json: bool) -> None:
    """Disparate impact (both bounds), statistical parity and equal opportunity differences of
    the served decisions (or, with --basis proposed, the model's proposals), each with a
    confidence interval; a group below the minimum size is insufficient_data, never fair.

    \b
    Example:
      mrm monitor fairness ./audit-ledger --slot credit_pd --policy policy.toml \\
          --subjects subjects.parquet --attribute age_band --privileged 25-54 --unprivileged 65+ \\
          --favorable approve --since 2026-05-01T00:00:00Z --until 2026-06-01T00:00:00Z --record
    """
    report = compute_fairness(path, slot, load_policy(policy_file), load_subjects(subjects, attribute),
                              attribute=attribute, privileged=privileged, unprivileged=unprivileged,
                              favorable=favorable, positive_labels=positive_labels or None, version=version,
                              window=_window(since, until), basis=basis)
    _record_and_print(path, report, record, keyring_file, actor, as_json)


@monitor.command("drift")
@existing_ledger
@slot_option
@policy_option
@click.option("--baseline-since", required=True, help="Baseline window start (ISO 8601 with a zone).")
@click.option("--baseline-until", required=True, help="Baseline window end, exclusive.")
@since_option
@until_option
@click.option("--feature", "features", multiple=True,
              help="score:<label> or latency_ms; repeatable (default: every score label).")
@version_option
@record_option
@keyring_option
@actor_option
@json_option
@handle_monitor_errors
def monitor_drift(path: str, slot: str, policy_file: str, baseline_since: str, baseline_until: str,
                  since: str | None, until: str | None, features: tuple[str, ...], version: str | None,
                  record: bool, keyring_file: str | None, actor: str | None, as_json: bool) -> None:
    """PSI (bins from the baseline window's quantiles) and KL of the served predictions'
    distributions. Moderate drift asks for a look; significant drift proposes a retrain —
    never a deploy: the retrained challenger still goes through the gate.

    \b
    Example:
      mrm monitor drift ./audit-ledger --slot credit_pd --policy policy.toml \\
          --baseline-since 2026-04-01T00:00:00Z --baseline-until 2026-05-01T00:00:00Z \\
          --since 2026-05-01T00:00:00Z --record
    """
    report = compute_drift(path, slot, load_policy(policy_file), baseline=_window(baseline_since, baseline_until, "baseline-"),
                           current=_window(since, until), features=features or None, version=version)
    _record_and_print(path, report, record, keyring_file, actor, as_json)


@monitor.command("serving")
@existing_ledger
@slot_option
@policy_option
@since_option
@until_option
@click.option("--period-hours", default=24.0, show_default=True,
              type=FiniteFloat(0.0, MAX_PERIOD_HOURS, low_open=True),
              help=f"Length of one SLO period, in hours (more than 0, at most {MAX_PERIOD_HOURS:,}).")
@record_option
@manifest_option
@keyring_option
@actor_option
@json_option
@handle_monitor_errors
def monitor_serving(path: str, slot: str, policy_file: str, since: str | None, until: str | None, period_hours: float,
                    record: bool, manifest_out: str | None, keyring_file: str | None, actor: str | None,
                    as_json: bool) -> None:
    """The policy's rollback triggers on the live version: error rate, p99 latency against
    the version it replaced, sustained SLO breach over a rolling window. With --record a
    breach writes an alert, and with [rollback] action = "rollback" the slot is also rolled
    back (a model_promotion entry); otherwise the alert proposes it to a human.

    \b
    Example:
      mrm monitor serving ./audit-ledger --slot credit_pd --policy policy.toml --manifest serving.json --record
    """
    check_manifest_destination(manifest_out)
    window = _window(since, until) if since or until else None
    report = compute_serving(path, slot, load_policy(policy_file), window=window,
                             period=dt.timedelta(hours=period_hours))
    doc = {**report.to_dict(), "recorded": record}
    if record and report.alert is not None:
        with Ledger.open(path, resolve_keyring(path, keyring_file), actor=actor) as ledger:
            action = act_on_serving(ledger, report)
        doc = {**action.to_dict(), "recorded": True}
        if action.rollback is not None:
            rewrite_manifest(path, manifest_out)
    if as_json:
        emit_json(doc)
        return
    s = doc
    click.echo(f"serving {slot} {s['version']}: {s['requests']} requests, {s['errors']} errors, "
               f"p99 {s['latency_p99_ms']:.4g} ms (baseline {s['baseline_latency_p99_ms']:.4g} ms), "
               f"{len(s['slo_values'])} SLO period(s)")
    if s["alert"] is None:
        click.echo("  no trigger fired")
        return
    click.echo(f"  ALERT{' (seq ' + str(s['alert_seq']) + ')' if s.get('alert_seq') is not None else ''}: "
               f"{s['alert']['summary']}")
    if s.get("rollback"):
        r = s["rollback"]
        click.echo(f"  rolled back: seq {r['seq']}, {r['champion_version']} -> {r['challenger_version']}")
    if s.get("note"):
        click.echo(f"  {s['note']}")
    if not record:
        click.echo(f"  ({NOT_RECORDED})")


@monitor.command("online")
@existing_ledger
@slot_option
@policy_option
@name_option("--challenger", "challenger_version", help="Default: the challenger taking traffic in the slot.")
@name_option("--champion", "champion_version", help="Default: the production version.")
@click.option("--metric", "metrics", multiple=True, help="An online (welch) metric of the policy; repeatable.")
@since_option
@until_option
@record_option
@keyring_option
@actor_option
@json_option
@handle_monitor_errors
def monitor_online(path: str, slot: str, policy_file: str, challenger_version: str | None,
                   champion_version: str | None, metrics: tuple[str, ...], since: str | None, until: str | None,
                   record: bool, keyring_file: str | None, actor: str | None, as_json: bool) -> None:
    """Online champion/challenger evaluation from the ledger: Welch's t-test per online metric
    between the champion arm and the challenger (canary, A/B or shadow) arm, with the policy's
    minimum sample size per arm. With --record, written as an online_evaluation entry.

    \b
    Example:
      mrm monitor online ./audit-ledger --slot credit_pd --policy policy.toml --metric latency_ms --record
    """
    report = compute_online(path, slot, load_policy(policy_file), challenger_version=challenger_version,
                            champion_version=champion_version, metrics=metrics or None, window=_window(since, until))
    doc = {**report.to_dict(), "recorded": record}
    if record:
        with Ledger.open(writable(path), resolve_keyring(path, keyring_file), actor=actor) as ledger:
            doc["seq"] = record_online(ledger, report)
    if as_json:
        emit_json(doc)
        return
    click.echo(f"online {slot}: champion {report.champion_version} ({report.n_champion} requests) vs challenger "
               f"{report.challenger_version} ({report.n_challenger} requests)"
               + (f", recorded at seq {doc['seq']}" if record else f" ({NOT_RECORDED})"))
    for r in doc["results"]:
        click.echo(f"  {r['metric']}: {r['outcome']}: {r['detail']}")


COMMANDS = [outcomes, monitor]
