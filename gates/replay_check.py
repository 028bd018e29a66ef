"""Replaying recorded decisions against the ledger: does the entry say what its inputs give?

For a model_promotion entry, :func:`check_entry`

1. checks the recorded inputs against their recorded SHA-256 digests (policy, evaluations):
   an edited input is reported as altered, never silently replayed;
2. recomputes the decision from those inputs with the pure core (:func:`gates.decision.replay`)
   and compares the entry it would write, column by column and ``details`` key by key, with the
   entry the ledger holds; every difference is listed;
3. checks the decision against the registry as it stood just before the entry: the champion it
   names was production then, the rollback's list of former production versions was right, and
   the entry is a valid transition at that point.

What replay does not do is check the entry's MAC: an attacker who rewrites an entry *and* its
inputs consistently is caught by ``mrm verify`` (the HMAC chain), not here. The two answer
different questions: verify — "is this what was written?"; replay — "was what was written
right, given what it records?".
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import rfc8785

from gates.canonical import utc_text
from gates.decision import GateInputError, MissingEvaluation, ReplayError, replay
from gates.evaluation import Evaluation, EvaluationError
from gates.ledger_io import EntryNotFound, LedgerSource, parse_details, promotion_row, registry_events
from gates.policy import PolicyError
from gates.registry import Registry, RegistryError
from ledger.read import as_snapshot, read_table

# The model_promotion columns a decision determines (all but seq, table_name, ts, actor, key_id, mac).
DECIDED_COLUMNS = ("slot", "champion_version", "challenger_version", "decision", "trigger", "operator", "reason",
                   "comparison", "significance", "thresholds")


@dataclass(frozen=True)
class Difference:
    field: str
    recorded: Any
    replayed: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "recorded": self.recorded, "replayed": self.replayed}


@dataclass(frozen=True)
class ReplayReport:
    seq: int
    slot: str
    challenger_version: str
    recorded_decision: str
    kind: str | None  # gate, approval, force_promote, rollback; None when nothing was recorded
    replayed_decision: str | None
    differences: tuple[Difference, ...] = ()
    problems: tuple[str, ...] = ()
    context_checks: tuple[str, ...] = field(default=())
    missing_input: str | None = None  # why it could not be replayed (an input not supplied)

    @property
    def matches(self) -> bool:
        return self.replayed_decision is not None and not self.differences and not self.problems

    @property
    def mismatch(self) -> bool:
        """Something is wrong with the entry: not merely unreplayed for want of an input."""
        return not self.matches and not (self.missing_input and not self.differences and not self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "slot": self.slot, "challenger_version": self.challenger_version,
                "recorded_decision": self.recorded_decision, "replayed_decision": self.replayed_decision,
                "kind": self.kind, "matches": self.matches, "missing_input": self.missing_input,
                "differences": [d.to_dict() for d in self.differences],
                "problems": list(self.problems), "context_checks": list(self.context_checks)}

    def to_text(self) -> str:
        head = f"seq {self.seq}: {self.recorded_decision} of {self.challenger_version} in slot {self.slot}"
        lines = [head + (f" ({self.kind})" if self.kind else "")]
        if self.replayed_decision is not None:
            lines.append(f"  replayed: {self.replayed_decision}")
        lines += [f"  ok: {c}" for c in self.context_checks]
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        for d in self.differences:
            lines.append(f"  DIFFERS: {d.field}: recorded {_short(d.recorded)}, replayed {_short(d.replayed)}")
        if self.matches:
            lines.append("  MATCH: the recorded inputs reproduce the recorded decision")
        elif not self.mismatch:
            lines.append(f"  NOT REPLAYED: {self.missing_input}")
        else:
            lines.append("  MISMATCH: the entry does not reproduce from what it records")
        return "\n".join(lines)


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json(value: Any) -> Any:
    """The value as the ledger gives it back: RFC 8785 JSON, parsed again (1.0 and 1 are one value)."""
    return json.loads(rfc8785.dumps(value))


def _recorded_columns(entry: Mapping[str, Any]) -> dict[str, Any]:
    out = {c: entry.get(c) for c in DECIDED_COLUMNS}
    for c in ("comparison", "significance"):
        out[c] = out[c] or []  # a null list column and an empty one are the same decision
    out["thresholds"] = dict(out["thresholds"] or {})
    return _json(out)


def _diff(recorded: Mapping[str, Any], replayed: Mapping[str, Any], prefix: str = "") -> list[Difference]:
    out = []
    for key in sorted(set(recorded) | set(replayed)):
        a, b = recorded.get(key, "<absent>"), replayed.get(key, "<absent>")
        if a != b:
            out.append(Difference(f"{prefix}{key}", a, b))
    return out


def _context(registry: Registry, entry: Mapping[str, Any], rec: Mapping[str, Any] | None) -> tuple[list[str], list[str]]:
    """Checks of the entry against the registry just before it: (passed, problems)."""
    passed, problems = [], []
    slot = entry["slot"]
    production = registry.production(slot)
    if entry["champion_version"] == production:
        passed.append(f"champion_version {production} was production in slot {slot} just before this entry"
                      if production else f"slot {slot} had no production version just before this entry")
    else:
        problems.append(f"the entry names champion {entry['champion_version']!r}, but production in slot {slot} "
                        f"was {production!r} just before it")
    if rec is not None and rec.get("kind") == "approval" and "decided_at" in rec:
        written = entry.get("ts")
        written_text = utc_text(written) if isinstance(written, dt.datetime) else str(written)
        if rec["decided_at"] == written_text:
            passed.append(f"the approval window was measured to the entry's own time {written_text}")
        else:
            problems.append(f"the approval records decided_at {rec['decided_at']}, but the entry was written at {written_text}")
    if rec is not None and rec.get("kind") == "rollback":
        before = list(registry.previous_production(slot))
        if list(rec.get("previous_production") or []) == before:
            passed.append("the recorded former production versions match the registry's")
        else:
            problems.append(f"the rollback recorded former production versions {rec.get('previous_production')}, "
                            f"the registry had {before}")
    return passed, problems


def check_entry(entry: Mapping[str, Any], registry_before: Registry | None = None,
                evaluations: Sequence[Evaluation] = ()) -> ReplayReport:
    """Replay one model_promotion entry (as :func:`gates.ledger_io.promotion_row` gives it)."""
    details = entry["details"] if isinstance(entry["details"], Mapping) else parse_details(entry["details"])
    base = dict(seq=entry["seq"], slot=entry["slot"], challenger_version=entry["challenger_version"],
                recorded_decision=entry["decision"])
    rec = details.get("replay")
    if not isinstance(rec, Mapping):
        return ReplayReport(**base, kind=None, replayed_decision=None,
                            problems=("no replay inputs are recorded in the entry's details",))
    kind = rec.get("kind") if isinstance(rec.get("kind"), str) else None
    passed, problems = _context(registry_before, entry, rec) if registry_before is not None else ([], [])
    try:
        decision = replay(details, evaluations)
    except MissingEvaluation as e:
        return ReplayReport(**base, kind=kind, replayed_decision=None, problems=tuple(problems),
                            context_checks=tuple(passed), missing_input=str(e))
    except ReplayError as e:
        return ReplayReport(**base, kind=kind, replayed_decision=None,
                            problems=(f"recorded inputs were altered: {e}", *problems), context_checks=tuple(passed))
    except (GateInputError, PolicyError, EvaluationError, KeyError, TypeError, ValueError) as e:
        what = f"{type(e).__name__}: {e}" if isinstance(e, (KeyError, TypeError)) else str(e)
        return ReplayReport(**base, kind=kind, replayed_decision=None,
                            problems=(f"the recorded inputs do not yield a decision: {what}", *problems),
                            context_checks=tuple(passed))
    inline = not (kind == "gate" and rec.get("challenger") is None)
    again = _json(decision.to_promotion_entry(inline_evaluations=inline))
    recorded_details = _json(dict(details))
    differences = _diff(_recorded_columns(entry), {c: again[c] for c in DECIDED_COLUMNS})
    differences += _diff(recorded_details, again["details"], "details.")
    return ReplayReport(**base, kind=kind, replayed_decision=decision.outcome, differences=tuple(differences),
                        problems=tuple(problems), context_checks=tuple(passed))


def check_replay(source: LedgerSource, seq: int | None = None, evaluations: Sequence[Evaluation] = ()) -> list[ReplayReport]:
    """Replay the model_promotion entry ``seq``, or every one when ``seq`` is None, each against
    the registry as the ledger stood just before it. Raises EntryNotFound for an unknown seq."""
    snap = as_snapshot(source)
    if seq is not None and not 0 <= seq <= snap.last_seq:
        raise EntryNotFound(f"seq {seq}: the ledger's entries run from 0 to {snap.last_seq}")
    full = {r["seq"]: promotion_row(r) for r in read_table(snap, "model_promotion").to_pylist()}
    if seq is not None and seq not in full:
        raise EntryNotFound(f"seq {seq} is not a model_promotion entry")
    registry = Registry()
    reports = []
    for event in registry_events(snap):
        if seq is not None and event["seq"] > seq:
            break
        if event["table_name"] == "model_promotion" and (seq is None or event["seq"] == seq):
            reports.append(check_entry(full[event["seq"]], registry, evaluations))
        try:
            registry.apply(event)
        except RegistryError as e:
            if event["table_name"] == "model_promotion" and (seq is None or event["seq"] == seq):
                r = reports[-1]
                reports[-1] = ReplayReport(r.seq, r.slot, r.challenger_version, r.recorded_decision, r.kind,
                                           r.replayed_decision, r.differences,
                                           (*r.problems, f"not a valid registry transition at this point: {e}"),
                                           r.context_checks)
            # An invalid event changes nothing; later entries are checked against the registry without it.
    return reports
