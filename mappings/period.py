"""The evaluated period, and which pack applies to which part of it.

A period is half-open, ``[start, end)``, in UTC: a query selects ``ts >= $from AND ts < $to``.
A pack applies from its ``effective_from`` day to the day before its ``effective_until``
(days in UTC). Evaluating a pack over a period clips the period to the days the pack was in
force: SR 11-7 over 2026 covers 1 January to 16 April, SR 26-2 the rest. A pack not in force
at all in the period makes every requirement ``not_applicable`` -- unless the caller asks for
a readiness assessment (``as_if_in_force``), which judges the whole period and says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum

from gates.canonical import utc_text

from .errors import PeriodError

UTC = dt.timezone.utc


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in UTC."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, dt.datetime) or value.tzinfo is None:
                raise PeriodError(f"period {name} {value!r} must be a datetime with a time zone")
            object.__setattr__(self, name, value.astimezone(UTC))
        if self.end < self.start:
            raise PeriodError(f"period end {utc_text(self.end)} is before its start {utc_text(self.start)}")

    @classmethod
    def parse(cls, start: str | dt.datetime, end: str | dt.datetime) -> "Period":
        return cls(parse_instant(start, "from"), parse_instant(end, "to"))

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def clip(self, start: dt.datetime | None, end: dt.datetime | None) -> "Period | None":
        """The part of this period inside ``[start, end)`` (None: unbounded), or None if nothing."""
        s = max(self.start, start) if start is not None else self.start
        e = min(self.end, end) if end is not None else self.end
        return Period(s, e) if s < e else None

    def parameters(self) -> dict[str, dt.datetime]:
        return {"from": self.start, "to": self.end}

    def to_dict(self) -> dict[str, str]:
        return {"from": utc_text(self.start), "to": utc_text(self.end)}

    def __str__(self) -> str:
        return f"[{utc_text(self.start)}, {utc_text(self.end)})"


def parse_instant(value: str | dt.datetime, name: str) -> dt.datetime:
    """An ISO 8601 instant with a zone, or a date (midnight UTC that day). A time without a
    zone is refused rather than guessed."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise PeriodError(f"--{name} {value.isoformat()} has no time zone; add one (Z, +09:00...)")
        return value.astimezone(UTC)
    text = value.strip()
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), UTC)
        instant = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise PeriodError(f"--{name} {value!r} is not an ISO 8601 date or instant (2026-04-01, 2026-04-01T09:00:00+09:00)") from None
    if instant.tzinfo is None:
        raise PeriodError(f"--{name} {value!r} has no time zone; add one (Z, +09:00...) or give a date (midnight UTC)")
    return instant.astimezone(UTC)


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), UTC)


class InForce(str, Enum):
    IN_FORCE = "in_force"  # for the whole period
    PARTLY = "partly_in_force"  # for part of it: evaluated over that part
    NOT_YET = "not_yet_in_force"  # the period ends before the pack took effect
    NO_LONGER = "no_longer_in_force"  # the period starts after the pack stopped applying


@dataclass(frozen=True)
class Applicability:
    state: InForce
    evaluated: Period | None  # the part of the requested period the requirements were judged on
    note: str  # one sentence for people
    as_if_in_force: bool = False  # judged anyway (readiness)

    @property
    def judged(self) -> bool:
        return self.evaluated is not None

    def to_dict(self) -> dict[str, object]:
        return {"state": self.state.value, "evaluated_period": self.evaluated.to_dict() if self.evaluated else None,
                "note": self.note, "as_if_in_force": self.as_if_in_force}


def applicability(requested: Period, effective_from: dt.date, effective_until: dt.date | None,
                  superseded_by: str | None = None, *, as_if_in_force: bool = False,
                  title: str = "the pack") -> Applicability:
    start, until = day_start(effective_from), day_start(effective_until) if effective_until else None
    window = f"from {effective_from}" + (f" to {effective_until - dt.timedelta(days=1)}" if effective_until else "")
    successor = f", then {superseded_by}" if superseded_by else ""
    clipped = requested.clip(start, until)
    if requested.start == requested.end and start <= requested.start and (until is None or requested.start < until):
        clipped = requested  # an empty period at an instant the pack was in force
    if clipped == requested:
        return Applicability(InForce.IN_FORCE, requested, f"{title} applies to the whole period ({window})")
    if until is not None and requested.start >= until:
        state = InForce.NO_LONGER
        note = f"{title} no longer applied in the period: it applied {window}{successor}"
    elif requested.end <= start or clipped is None:
        state = InForce.NOT_YET
        note = f"{title} was not yet in force in the period: it applies {window}"
    else:
        state = InForce.PARTLY
        note = f"{title} applied to part of the period ({window}{successor})"
        if as_if_in_force:
            return Applicability(state, requested, note + "; judged on the whole period anyway, as asked (readiness)", True)
        return Applicability(state, clipped, f"{note}; requirements were judged on {clipped} only")
    if as_if_in_force:
        return Applicability(state, requested, note + "; judged on the whole period anyway, as a readiness assessment", True)
    return Applicability(state, None, note + "; nothing was judged (--as-if-in-force judges it anyway, as a readiness assessment)")
