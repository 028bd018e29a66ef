"""Simulated time for the demo: the instants of the bank's calendar and the clock the ledger
stamps entries with while the year is replayed.

Times are microseconds since the Unix epoch, UTC (the ledger's ``Clock``); the bank's
schedule is in Korea Standard Time (UTC+9), as ``world.day_start_us`` defines day ``d``.
"""

from __future__ import annotations

import datetime as dt

from .world import KST, day_start_us

MICROS_PER_SECOND = 1_000_000


def kst(day: int, hour: int, minute: int = 0, second: int = 0) -> int:
    """The instant ``hour:minute:second`` KST on simulated day ``day``."""
    return day_start_us(day) + ((hour * 60 + minute) * 60 + second) * MICROS_PER_SECOND


def to_datetime(us: int) -> dt.datetime:
    """An aware UTC datetime (what the ledger's readers return for ``ts``)."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=int(us))


def kst_text(us: int) -> str:
    """``2025-07-15 14:00 KST``: how the bank's people write an instant."""
    return to_datetime(us).astimezone(KST).strftime("%Y-%m-%d %H:%M KST")


class SimulatedClock:
    """The instant the simulation has reached. The ledger calls it for every default time
    stamp; the scenario moves it forward as events happen, never backwards (a clock running
    backwards would be a bug in the scenario, and the registry would refuse it anyway)."""

    def __init__(self, start_us: int):
        self._now = int(start_us)

    def __call__(self) -> int:
        return self._now

    def set(self, us: int) -> None:
        if us < self._now:
            raise ValueError(f"the simulated clock cannot go back from {to_datetime(self._now).isoformat()} "
                             f"to {to_datetime(us).isoformat()}")
        self._now = int(us)
