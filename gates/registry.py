"""Registry state derived from the ledger: a pure state machine over ordered events.

MLflow keeps no history of which version held an alias; here the registry *is* its history.
Feed :func:`derive_registry` the ``model_promotion`` and ``operation`` entries (as dicts, in
ledger order) and ask which version was production at any instant.

Events read:

- ``operation`` with ``event_type = "model_registered"`` and ``details = {"slot", "version"}``
  (a dict or its JSON text): the version becomes a ``candidate``. Other operations are ignored.
- ``model_promotion`` entries, by ``decision``:

  ================  ===========================================  ================================
  decision          the version (challenger_version) must be      effect
  ================  ===========================================  ================================
  bootstrap         new or candidate; the slot has no production  -> production
  promote           new or candidate                              -> production, old -> archived
  pending_approval  new or candidate                              -> pending_approval
  reject            new or candidate                              -> rejected
  approve           pending_approval                              -> production, old -> archived
  decline           pending_approval                              -> rejected
  force_promote     anything but production                       -> production, old -> archived
  rollback          production at some earlier instant            -> production, old -> rolled_back
  ================  ===========================================  ================================

  For every decision that replaces production, ``champion_version`` must name the current
  production version (a stale decision is refused). Timestamps must not go backwards.

Invariant kept by construction and checked by a property test: at most one production version
per slot at every instant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

CANDIDATE, PENDING, PRODUCTION = "candidate", "pending_approval", "production"
ARCHIVED, REJECTED, ROLLED_BACK = "archived", "rejected", "rolled_back"
STATES = (CANDIDATE, PENDING, PRODUCTION, ARCHIVED, REJECTED, ROLLED_BACK)

_REPLACES_PRODUCTION = {"promote", "approve", "force_promote", "rollback"}
_FROM_NEW_OR_CANDIDATE = {"bootstrap", "promote", "pending_approval", "reject"}


class RegistryError(ValueError):
    """An event that is not a valid transition; the message says which rule it breaks."""


@dataclass(frozen=True)
class Transition:
    index: int  # position of the causing event in the input
    ts: datetime
    slot: str
    version: str
    from_state: str | None  # None: first time the registry sees the version
    to_state: str
    cause: str  # the decision, or "model_registered"
    operator: str | None
    reason: str | None
    seq: int | None = None  # the ledger sequence number of the causing entry, when it came from a ledger


def _timestamp(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise RegistryError(f"{where}: ts {value!r} is not an ISO 8601 timestamp") from None
    else:
        raise RegistryError(f"{where}: ts must be a datetime or ISO 8601 text, got {value!r}")
    if ts.tzinfo is None:
        raise RegistryError(f"{where}: ts {value!r} has no time zone")
    return ts.astimezone(timezone.utc)


def _details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    d = event.get("details") or {}
    return json.loads(d) if isinstance(d, str) else d


class Registry:
    """Registry state built event by event; each :meth:`apply` validates before it changes anything."""

    def __init__(self) -> None:
        self._transitions: list[Transition] = []
        self._state: dict[str, dict[str, str]] = {}  # slot -> version -> state
        self._ever_production: dict[str, list[str]] = {}
        self._last_ts: datetime | None = None
        self._count = 0

    # -- building --------------------------------------------------------------------------

    def apply(self, event: Mapping[str, Any]) -> tuple[Transition, ...]:
        index = self._count
        seq = event.get("seq")
        where = f"seq {seq}" if isinstance(seq, int) else f"event {index}"
        ts = _timestamp(event.get("ts"), where)
        if self._last_ts is not None and ts < self._last_ts:
            raise RegistryError(f"{where}: ts {ts.isoformat()} is before the previous event ({self._last_ts.isoformat()})")
        table = event.get("table_name") or ("model_promotion" if "decision" in event else "operation")
        if table == "operation":
            planned = self._plan_operation(event, where)
        elif table == "model_promotion":
            planned = self._plan_promotion(event, where)
        else:
            planned = []
        done = tuple(Transition(index, ts, *p, seq=seq if isinstance(seq, int) else None) for p in planned)
        for t in done:  # commit only after the whole event validated
            self._state.setdefault(t.slot, {})[t.version] = t.to_state
            if t.to_state == PRODUCTION:
                self._ever_production.setdefault(t.slot, []).append(t.version)
        self._transitions.extend(done)
        self._last_ts, self._count = ts, index + 1
        return done

    def _plan_operation(self, event: Mapping[str, Any], where: str) -> list[tuple]:
        if event.get("event_type") != "model_registered":
            return []
        d = _details(event)
        slot, version = d.get("slot"), d.get("version")
        if not isinstance(slot, str) or not isinstance(version, str):
            raise RegistryError(f"{where}: model_registered needs details.slot and details.version")
        if version in self._state.get(slot, {}):
            raise RegistryError(f"{where}: {version} is already registered in slot {slot}")
        return [(slot, version, None, CANDIDATE, "model_registered", event.get("actor"), None)]

    def _plan_promotion(self, event: Mapping[str, Any], where: str) -> list[tuple]:
        decision, slot, version = event.get("decision"), event.get("slot"), event.get("challenger_version")
        if not isinstance(slot, str) or not isinstance(version, str):
            raise RegistryError(f"{where}: a model_promotion entry needs slot and challenger_version")
        operator, reason = event.get("operator"), event.get("reason")
        versions = self._state.get(slot, {})
        current = versions.get(version)
        production = self.production(slot)
        what = f"{where} ({decision} of {version} in slot {slot})"
        if decision not in _FROM_NEW_OR_CANDIDATE | _REPLACES_PRODUCTION | {"decline"}:
            raise RegistryError(f"{what}: unknown decision")

        if decision in _FROM_NEW_OR_CANDIDATE and current not in (None, CANDIDATE):
            raise RegistryError(f"{what}: the version is {current}; only a new or candidate version can be decided on")
        if decision == "bootstrap" and production is not None:
            raise RegistryError(f"{what}: the slot already has production version {production}")
        if decision in ("approve", "decline") and current != PENDING:
            raise RegistryError(f"{what}: only a pending_approval version can be approved or declined; it is {current or 'unknown'}")
        if decision == "force_promote" and current == PRODUCTION:
            raise RegistryError(f"{what}: the version is already production")
        if decision == "rollback":
            if version not in self._ever_production.get(slot, []) or current == PRODUCTION:
                raise RegistryError(f"{what}: a rollback must go to a version that was production before, "
                                    f"not the current one (previous: {', '.join(self.previous_production(slot)) or 'none'})")
            if production is None:
                raise RegistryError(f"{what}: the slot has no production version to roll back from")
        if decision in _REPLACES_PRODUCTION | {"pending_approval"} and decision != "force_promote":
            if event.get("champion_version") != production:
                raise RegistryError(f"{what}: the entry's champion_version is {event.get('champion_version')!r} "
                                    f"but production is {production!r}; the decision is stale")
        to_state = {"pending_approval": PENDING, "reject": REJECTED, "decline": REJECTED}.get(decision, PRODUCTION)
        planned = [(slot, version, current, to_state, decision, operator, reason)]
        if to_state == PRODUCTION and production is not None:
            old_to = ROLLED_BACK if decision == "rollback" else ARCHIVED
            planned.insert(0, (slot, production, PRODUCTION, old_to, decision, operator, reason))
        return planned

    # -- reading ---------------------------------------------------------------------------

    @property
    def transitions(self) -> tuple[Transition, ...]:
        return tuple(self._transitions)

    def slots(self) -> tuple[str, ...]:
        return tuple(sorted(self._state))

    def states(self, slot: str, at: datetime | None = None) -> dict[str, str]:
        """Each version's state in ``slot`` after every event up to and including ``at``."""
        if at is None:
            return dict(self._state.get(slot, {}))
        at = _timestamp(at, "query")
        out: dict[str, str] = {}
        for t in self._transitions:
            if t.ts > at:
                break
            if t.slot == slot:
                out[t.version] = t.to_state
        return out

    def production(self, slot: str, at: datetime | None = None) -> str | None:
        live = [v for v, s in self.states(slot, at).items() if s == PRODUCTION]
        assert len(live) <= 1, f"invariant broken: {live} all production in {slot}"
        return live[0] if live else None

    def champion_at(self, slot: str, ts: datetime | str) -> str | None:
        """The production version of ``slot`` at instant ``ts`` (events at ``ts`` included)."""
        return self.production(slot, _timestamp(ts, "query"))

    def previous_production(self, slot: str) -> tuple[str, ...]:
        """Versions that were production in ``slot`` before and are not now: rollback targets."""
        now = self.production(slot)
        seen: list[str] = []
        for v in self._ever_production.get(slot, []):
            if v != now and v not in seen:
                seen.append(v)
        return tuple(seen)

    def rollback_target(self, slot: str) -> str | None:
        """The version a rollback without an explicit target returns to: the most recent one
        that held production in ``slot`` before the current one and was archived, not rolled
        back (a rolled-back version was withdrawn for cause; going back to it takes a human
        naming it). None when there is no such version."""
        now = self.production(slot)
        states = self._state.get(slot, {})
        for v in reversed(self._ever_production.get(slot, [])):
            if v != now and states.get(v) == ARCHIVED:
                return v
        return None

    def last_ts(self) -> datetime | None:
        """Timestamp of the last event applied (the next one must not be earlier)."""
        return self._last_ts

    def history(self, slot: str) -> tuple[Transition, ...]:
        return tuple(t for t in self._transitions if t.slot == slot)


# -- production periods ------------------------------------------------------------------
# The periods a version was production (forensics.registry lays them out from the transitions above:
# slot, version, live_from, live_until, promotion_seq, promotion_decision, ...). Every reader
# that asks "what was production then?" of them asks here, so the documents cannot disagree.


def production_at(periods: Iterable[Mapping[str, Any]], slot: str, at: datetime) -> Mapping[str, Any] | None:
    """The production period of ``slot`` in force at instant ``at`` (events at ``at``
    included, as :meth:`Registry.champion_at`), or None when the slot had no production."""
    at = _timestamp(at, "query")
    for p in periods:
        if p["slot"] == slot and p["live_from"] <= at and (p["live_until"] is None or at < p["live_until"]):
            return p
    return None


@dataclass(frozen=True)
class StartingProduction:
    """What production a slot started a period with: the period in force at its start, or,
    when there was none, the first version to become production inside the period."""

    slot: str
    at_start: Mapping[str, Any] | None
    first_in_period: Mapping[str, Any] | None  # only when at_start is None

    @property
    def version(self) -> str | None:
        return self.at_start["version"] if self.at_start else None


def starting_production(periods: Iterable[Mapping[str, Any]], slot: str, start: datetime, end: datetime) -> StartingProduction:
    """The production of ``slot`` at the start of [start, end), and when it had none, the
    first production period that began before ``end``."""
    periods = [p for p in periods if p["slot"] == slot]
    current = production_at(periods, slot, start)
    first = None
    if current is None:
        start, end = _timestamp(start, "query"), _timestamp(end, "query")
        later = [p for p in periods if start <= p["live_from"] < end]
        first = min(later, key=lambda p: (p["live_from"], p["promotion_seq"] or 0)) if later else None
    return StartingProduction(slot, current, first)


def derive_registry(events: Iterable[Mapping[str, Any]]) -> Registry:
    """Fold ordered ledger entries into a :class:`Registry`; the first invalid event raises."""
    registry = Registry()
    for event in events:
        registry.apply(event)
    return registry
