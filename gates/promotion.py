"""Registry changes through the ledger: registration, the gate, approvals, overrides, rollbacks.

Every function here follows one protocol, under the registry writers' lock:

1. read the registry as the ledger records it (:func:`gates.ledger_io.load_registry`);
2. decide with the pure core (:mod:`gates.decision`), from those inputs only;
3. check the entry is a valid transition of that registry (nothing is written otherwise);
4. append the entry with ``durable=True``: the call returns once it is fsynced.

Nothing else changes state: the registry is derived from the ledger, so the change *is* the
entry, and it takes effect exactly when the entry is durable. If the write fails the ledger
rolls the write back and raises, and the registry is as it was — no promotion without its
audit entry, and no audit entry for a promotion that did not happen.

A serving system learns what to serve from :func:`gates.manifest.serving_manifest`, derived
from the same entries.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Mapping

from gates.decision import (
    AUTO,
    Decision,
    GateInputError,
    GateInputs,
    decide,
    decide_approval,
    decide_force_promote,
    decide_rollback,
    ladder_checks,
)
from gates.evaluation import Evaluation, evaluation_to_dict
from gates.ledger_io import (
    MODEL_REGISTERED,
    TRAFFIC_SPLIT,
    RegistryView,
    TransitionRefused,
    load_registry,
    parse_details,
    recorded_evaluation,
    registry_lock,
)
from gates.links import monitor_alert, review_entry, reviewed_override
from gates.online import TrafficMode
from gates.policy import Policy, PolicyError, policy_from_mapping
from gates.registry import CANDIDATE, PENDING, RegistryError
from ledger import Ledger
from ledger.identifiers import check_identifier

TRAFFIC_OFF = "off"


def _check_names(**names: str | None) -> None:
    """Slot and version names reach file names, URLs and registry keys: each follows the one
    identifier rule (ledger.identifiers), or IdentifierError (exit 2) before anything is read."""
    for field, value in names.items():
        if value is not None:
            check_identifier(value, field)


class _Recorded:
    """Marker: use the champion's evaluation as the ledger recorded it (see :func:`run_gate`)."""

    def __repr__(self) -> str:
        return "RECORDED_CHAMPION"


RECORDED_CHAMPION: Any = _Recorded()


@dataclass(frozen=True)
class Recorded:
    """A decision and the model_promotion entry that carries it, as written."""

    seq: int
    ts: dt.datetime
    decision: Decision
    entry: Mapping[str, Any]  # the keyword arguments given to log_model_promotion
    registered_seq: int | None = None  # the model_registered entry written just before, if any

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "seq": self.seq,
            "ts": self.ts.isoformat(),
            "registered_seq": self.registered_seq,
            "slot": d.slot,
            "decision": d.outcome,
            "challenger_version": d.challenger_version,
            "champion_version": d.champion_version,
            "trigger": d.trigger,
            "operator": d.operator,
            "reason": d.reason,
            "stage": d.stage,
            "failing_checks": [{"name": c.name, "detail": c.detail} for c in d.failing_checks],
        }


# --- the protocol -----------------------------------------------------------------------------


def _next_ts(ledger: Ledger, view: RegistryView) -> dt.datetime:
    """Now by the ledger's clock, but never before the last registry event: the registry
    refuses time running backwards, and two writers' clocks may disagree by a little."""
    now = ledger.now()
    last = view.registry.last_ts()
    return max(now, last) if last is not None else now


def _validate(view: RegistryView, event: Mapping[str, Any]) -> None:
    """Apply ``event`` to the view's registry, or raise TransitionRefused (nothing written)."""
    try:
        view.registry.apply(event)
    except RegistryError as e:
        # The registry names events by position; the refused one is not in the ledger at all.
        raise TransitionRefused(re.sub(r"^event \d+", "the new entry", str(e))) from None


def _open_view(ledger: Ledger) -> RegistryView:
    ledger.flush()  # entries this process wrote but has not synced are part of the history
    return load_registry(ledger.path)


def _write_decision(ledger: Ledger, view: RegistryView, decision: Decision, *, inline_evaluations: bool = True,
                    registration: Mapping[str, Any] | None = None, at: dt.datetime | None = None) -> Recorded:
    ts = at or _next_ts(ledger, view)
    if registration is not None:
        _validate(view, {**registration, "table_name": "operation", "ts": ts})
    entry = decision.to_promotion_entry(inline_evaluations)
    _validate(view, {**entry, "table_name": "model_promotion", "ts": ts})
    registered_seq = None
    if registration is not None:
        registered_seq = ledger.log_operation(**registration, ts=ts, durable=True)
    seq = ledger.log_model_promotion(**entry, ts=ts, durable=True)
    return Recorded(seq, ts, decision, entry, registered_seq)


def _registration(slot: str, version: str, evaluation: Evaluation | None,
                  lineage: Mapping[str, Any] | None) -> dict[str, Any]:
    details: dict[str, Any] = {"slot": slot, "version": version}
    if evaluation is not None:
        details.update(evaluation_digest=evaluation.digest, holdout_digest=evaluation.holdout_digest,
                       lineage=evaluation_to_dict(evaluation)["lineage"])
    if lineage is not None:
        details["lineage"] = {**details.get("lineage", {}), **dict(lineage)}
    # top level, typed: the feature schema this version was trained on (null when not given)
    schema = details.get("lineage", {}).get("feature_schema_digest")
    details["feature_schema_digest"] = schema if isinstance(schema, str) else None
    return {"event_type": MODEL_REGISTERED, "component": "registry", "status": CANDIDATE,
            "correlation_id": f"{slot}/{version}", "details": details}


# --- registration -----------------------------------------------------------------------------


def register_candidate(ledger: Ledger, *, slot: str | None = None, version: str | None = None,
                       evaluation: Evaluation | None = None, lineage: Mapping[str, Any] | None = None) -> int:
    """Register a model version as a ``candidate`` in its slot; returns the entry's seq.

    The entry (operation, event_type ``model_registered``) records the slot, the version and,
    from ``evaluation``, its digest, holdout digest and lineage (artifacts with their SHA-256,
    data snapshot, code commit, config, seed, training end, feature schema, thresholds).
    """
    if evaluation is not None:
        if (slot is not None and slot != evaluation.slot) or (version is not None and version != evaluation.version):
            raise GateInputError(f"the evaluation is for {evaluation.slot}/{evaluation.version}, not {slot}/{version}")
        slot, version = evaluation.slot, evaluation.version
    if not slot or not version:
        raise GateInputError("registration needs a slot and a version (or an evaluation naming them)")
    _check_names(slot=slot, version=version)
    registration = _registration(slot, version, evaluation, lineage)
    with registry_lock(ledger.path):
        view = _open_view(ledger)
        ts = _next_ts(ledger, view)
        _validate(view, {**registration, "table_name": "operation", "ts": ts})
        return ledger.log_operation(**registration, ts=ts, durable=True)


# --- the gate ---------------------------------------------------------------------------------


def run_gate(ledger: Ledger, challenger: Evaluation, policy: Policy, *, champion: Any = RECORDED_CHAMPION,
             observed_artifacts: Mapping[str, str | None] | None = None, operator: str | None = None,
             register: bool = True, inline_evaluations: bool = True) -> Recorded:
    """Run the promotion ladder on ``challenger`` and record the verdict.

    ``champion`` is the production version's evaluation on the same holdout. By default it is
    the evaluation the ledger recorded for the production version (inline in an earlier gate
    entry); pass one explicitly when the holdout changed or none was recorded. When the slot has
    no production version, the challenger bootstraps it.

    An unregistered challenger is registered first (``register=False`` refuses it instead).
    Whatever the verdict — promote, pending_approval, reject, bootstrap — exactly one
    model_promotion entry is written, durable, before anything changes.
    """
    slot, version = challenger.slot, challenger.version
    _check_names(slot=slot, version=version)
    with registry_lock(ledger.path):
        view = _open_view(ledger)
        production = view.registry.production(slot)
        state = view.registry.states(slot).get(version)
        if state not in (None, CANDIDATE):
            raise TransitionRefused(f"{version} is {state} in slot {slot}; the gate decides on a version once "
                                    "(evaluate a new version instead)")
        if state is None and not register:
            raise TransitionRefused(f"{version} is not registered in slot {slot}")
        champ = _champion(view, slot, production, champion)
        decision = decide(GateInputs(challenger, champ, policy, observed_artifacts=observed_artifacts,
                                     operator=operator, trigger=AUTO))
        registration = _registration(slot, version, challenger, None) if state is None else None
        return _write_decision(ledger, view, decision, inline_evaluations=inline_evaluations,
                               registration=registration)


def _champion(view: RegistryView, slot: str, production: str | None, champion: Any) -> Evaluation | None:
    if champion is RECORDED_CHAMPION:
        if production is None:
            return None
        found = recorded_evaluation(view, slot, production)
        if found is None:
            raise GateInputError(f"no evaluation of production version {production} is recorded in the ledger "
                                 f"(slot {slot}); pass the champion's evaluation explicitly")
        return found
    if champion is None:
        if production is not None:
            raise GateInputError(f"slot {slot} has production version {production}; a challenger must be compared "
                                 "against it (pass its evaluation, or leave the champion to the recorded one)")
        return None
    if not isinstance(champion, Evaluation):
        raise TypeError("champion must be an Evaluation, None or RECORDED_CHAMPION")
    if production is None:
        raise GateInputError(f"slot {slot} has no production version, so {champion.version} is not its champion; "
                             "leave the champion out to bootstrap the slot")
    if champion.version != production:
        raise GateInputError(f"the champion evaluation is of {champion.version}, but production in slot {slot} "
                             f"is {production}")
    _check_registered_artifacts(view, champion)
    return champion


def _check_registered_artifacts(view: RegistryView, champion: Evaluation) -> None:
    """A champion evaluation passed in by hand must be of the model the ledger registered:
    scoring some other (weaker) model as "the champion" would let any challenger win."""
    registration = view.registration(champion.slot, champion.version)
    registered = ((registration or {}).get("details", {}).get("lineage") or {}).get("artifacts")
    if not registered:
        return  # registered without lineage (e.g. a version only ever force-promoted): nothing to compare
    expected = sorted((a["path"], a["sha256"]) for a in registered)
    given = sorted((a.path, a.sha256) for a in champion.lineage.artifacts)
    if given != expected:
        raise GateInputError(f"the champion evaluation's artifacts differ from those registered for {champion.version} "
                             f"at seq {registration['seq']}; it must evaluate the production model itself")


# --- human decisions --------------------------------------------------------------------------


def approve(ledger: Ledger, *, slot: str, version: str, operator: str, reason: str) -> Recorded:
    """A human's sign-off on a ``pending_approval`` version: it becomes production."""
    return _sign_off(ledger, slot, version, operator, reason, approve=True)


def decline(ledger: Ledger, *, slot: str, version: str, operator: str, reason: str) -> Recorded:
    """A human's refusal of a ``pending_approval`` version: it becomes rejected."""
    return _sign_off(ledger, slot, version, operator, reason, approve=False)


def _sign_off(ledger: Ledger, slot: str, version: str, operator: str, reason: str, *, approve: bool) -> Recorded:
    _check_names(slot=slot, version=version)
    with registry_lock(ledger.path):
        view = _open_view(ledger)
        state = view.registry.states(slot).get(version)
        if state != PENDING:
            raise TransitionRefused(f"{version} is {state or 'not registered'} in slot {slot}; only a "
                                    "pending_approval version can be approved or declined")
        pending = view.pending_entry(slot, version)
        compared_with = pending["champion_version"] if pending else None
        production = view.registry.production(slot)
        if approve and compared_with != production:
            # The gate compared the challenger with a champion that is no longer live: its
            # verdict says nothing about the version serving now.
            raise TransitionRefused(f"{version} was compared against {compared_with}, but production in slot {slot} "
                                    f"is now {production}; decline it and evaluate a new version against {production}")
        requested_by = (pending["actor"], pending["operator"]) if pending else ()
        valid_days = _approval_valid_days(pending)
        window = {} if valid_days is None else dict(requested_at=pending["ts"], decided_at=_next_ts(ledger, view),
                                                    valid_days=valid_days)
        decision = decide_approval(slot, version, production, approve=approve, operator=operator, reason=reason,
                                   requested_by=requested_by, **window)
        return _write_decision(ledger, view, decision, at=window.get("decided_at"))


def _approval_valid_days(pending: Mapping[str, Any] | None) -> int | None:
    """The approval window of the policy the pending version was evaluated under, as its
    gate entry recorded it (None: no window, or no recorded policy)."""
    if pending is None:
        return None
    policy = (parse_details(pending["details"]).get("replay") or {}).get("policy")
    return policy_from_mapping(policy, "the recorded policy").approval_valid_days if isinstance(policy, Mapping) else None


def force_promote(ledger: Ledger, *, slot: str, version: str, operator: str, reason: str,
                  responds_to_seq: int | None = None) -> Recorded:
    """The explicit override: any registered version of ``slot`` (e.g. a known-good one in an
    emergency) becomes production, every gate check skipped. Operator and reason required.

    The entry lists, as data, the checks the ladder would have run (``details.skipped_checks``,
    from the policy of the slot's latest gate entry), and ``responds_to_seq`` links it to the
    monitor_alert entry it answers (refused unless that entry is an alert of this slot)."""
    _check_names(slot=slot, version=version)
    with registry_lock(ledger.path):
        view = _open_view(ledger)
        state = view.registry.states(slot).get(version)
        if state is None:
            raise TransitionRefused(f"{version} is not registered in slot {slot}; only a registered version can be "
                                    "force-promoted (register it first, with its lineage)")
        if responds_to_seq is not None:
            monitor_alert(ledger.path, responds_to_seq, slot=slot)
        production = view.registry.production(slot)
        skipped, from_seq = _skipped_checks(view, slot, production)
        decision = decide_force_promote(slot, version, production, operator=operator, reason=reason,
                                        skipped_checks=skipped, skipped_checks_from_seq=from_seq,
                                        responds_to_seq=responds_to_seq)
        return _write_decision(ledger, view, decision)


def _skipped_checks(view: RegistryView, slot: str, production: str | None) -> tuple[tuple[str, ...], int | None]:
    """The checks the ladder would run in ``slot`` now: under the policy its latest gate entry
    recorded, against the production version's tasks (as recorded); with the seq of that
    entry. No recorded policy: the ladder's steps, and None."""
    for e in reversed(view.promotions(slot)):
        rec = parse_details(e["details"]).get("replay") or {}
        if rec.get("kind") != "gate" or not isinstance(rec.get("policy"), Mapping):
            continue
        try:
            policy = policy_from_mapping(rec["policy"], f"seq {e['seq']} recorded policy")
        except PolicyError:
            continue  # an unreadable record must not block an emergency override; replay reports it
        champion = recorded_evaluation(view, slot, production) if production else None
        tasks = champion.tasks if champion is not None else _recorded_tasks(rec, parse_details(e["details"]))
        return ladder_checks(policy, tasks), e["seq"]
    return ladder_checks(None, ()), None


def _recorded_tasks(rec: Mapping[str, Any], details: Mapping[str, Any]) -> tuple[str, ...]:
    """The tasks of the gate entry's evaluations: inline, or (recorded by digest only) from
    details.evaluated."""
    evaluated = details.get("evaluated") if isinstance(details.get("evaluated"), Mapping) else {}
    for data in (rec.get("champion"), rec.get("challenger"), evaluated.get("champion"), evaluated.get("challenger")):
        if isinstance(data, Mapping) and isinstance(data.get("metrics"), Mapping):
            return tuple(sorted(data["metrics"]))
    return ()


def rollback(ledger: Ledger, *, slot: str, reason: str, operator: str | None = None, to_version: str | None = None,
             trigger: str = "manual", alert: Mapping[str, Any] | None = None,
             responds_to_seq: int | None = None) -> Recorded:
    """Put a version that was production before back into production.

    Without ``to_version`` the target is the most recent archived former production version
    (:meth:`gates.registry.Registry.rollback_target`). A manual rollback needs an operator; an
    automatic one (``trigger="auto"``) carries the monitor alert that fired it.
    ``responds_to_seq`` links the rollback to the monitor_alert entry of this slot it answers.
    """
    _check_names(slot=slot, to_version=to_version)
    with registry_lock(ledger.path):
        view = _open_view(ledger)
        if responds_to_seq is not None:
            monitor_alert(ledger.path, responds_to_seq, slot=slot)
        current = view.registry.production(slot)
        if current is None:
            raise TransitionRefused(f"slot {slot} has no production version to roll back from")
        previous = view.registry.previous_production(slot)
        target = to_version or view.registry.rollback_target(slot)
        if target is None:
            raise TransitionRefused(f"slot {slot} has no archived former production version to return to "
                                    f"(former production versions: {', '.join(previous) or 'none'}); "
                                    "name one explicitly")
        decision = decide_rollback(slot, current, target, previous, reason=reason, operator=operator,
                                   trigger=trigger, alert=alert, responds_to_seq=responds_to_seq)
        return _write_decision(ledger, view, decision)


# --- committee review -----------------------------------------------------------------------

REVIEW_OUTCOMES = ("upheld", "overturned")


def review_override(ledger: Ledger, *, reviews_seq: int, outcome: str, reviewer: str, note: str) -> int:
    """Record a committee's review of a person's decision (an override_review operation entry
    whose ``details.reviews_seq`` names the manual model_promotion entry reviewed); returns
    its seq. The review changes nothing in the registry: what the committee decides to do
    about it is its own entry (a rollback, a policy change)."""
    if outcome not in REVIEW_OUTCOMES:
        raise GateInputError(f"outcome: {outcome!r} is not one of {', '.join(REVIEW_OUTCOMES)}")
    if not reviewer or not reviewer.strip() or not note or not note.strip():
        raise GateInputError("a review needs a reviewer id and a note")
    ledger.flush()
    override = reviewed_override(ledger.path, reviews_seq)
    return ledger.log_operation(**review_entry(override, outcome=outcome, reviewer=reviewer, note=note), durable=True)


# --- live traffic -----------------------------------------------------------------------------


def set_traffic(ledger: Ledger, *, slot: str, challenger_version: str, mode: str, operator: str, reason: str,
                experiment: str | None = None) -> int:
    """Record which challenger takes live traffic in ``slot`` and how much (a ``traffic_split``
    operation entry); ``mode="off"`` ends it. Serving routes with
    :func:`gates.online.route` using the mode and experiment the manifest gives.

    The challenger must be a candidate or pending approval, and the slot must have a champion.
    Traffic to a challenger is not a promotion: only a model_promotion entry changes production.
    """
    _check_names(slot=slot, challenger_version=challenger_version)
    if not operator or not operator.strip() or not reason or not reason.strip():
        raise GateInputError("a traffic change needs an operator id and a reason")
    share = 0.0
    if mode != TRAFFIC_OFF:
        try:
            share = TrafficMode(mode).challenger_share
        except ValueError:
            modes = ", ".join([m.value for m in TrafficMode] + [TRAFFIC_OFF])
            raise GateInputError(f"unknown traffic mode {mode!r}; the modes are {modes}") from None
    with registry_lock(ledger.path):
        view = _open_view(ledger)
        production = view.registry.production(slot)
        state = view.registry.states(slot).get(challenger_version)
        if mode != TRAFFIC_OFF:
            if production is None:
                raise TransitionRefused(f"slot {slot} has no production version to share traffic with")
            if state not in (CANDIDATE, PENDING):
                raise TransitionRefused(f"{challenger_version} is {state or 'not registered'} in slot {slot}; only a "
                                        "candidate or pending_approval version can take challenger traffic")
        else:
            live = view.traffic(slot)
            if live is None or live.challenger_version != challenger_version:
                raise TransitionRefused(f"{challenger_version} takes no traffic in slot {slot}")
        details = {"slot": slot, "challenger_version": challenger_version, "champion_version": production,
                   "mode": mode, "challenger_share": share,
                   "experiment": experiment or f"{slot}/{challenger_version}", "operator": operator, "reason": reason}
        entry = {"event_type": TRAFFIC_SPLIT, "component": "registry", "status": mode,
                 "correlation_id": f"{slot}/{challenger_version}", "details": details}
        ts = _next_ts(ledger, view)
        _validate(view, {**entry, "table_name": "operation", "ts": ts})
        return ledger.log_operation(**entry, ts=ts, durable=True)
