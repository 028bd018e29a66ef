"""How typed values read on the page: one function from (value, kind) to display text.

Display text is still *text*: the template escapes it. What this module adds is that
characters which would make the page lie are made visible instead of being obeyed:

* C0/C1 control characters (NUL, ESC, ...) cannot be shown at all and some HTML parsers
  drop them silently, so two different ledger values would print the same;
* bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069) reorder what follows
  them ("Trojan Source", CVE-2021-42574), so a value could print as another value;
* zero-width characters and the BOM hide differences between two identifiers.

Each is replaced by a visible ``⟨U+XXXX⟩`` marker, so what an examiner reads is exactly
which code points the ledger holds. Newlines and tabs are kept.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal

from .model import CellValue, Column, Status, StatusBadge, ValueKind

__all__ = ["NULL_TEXT", "visible_text", "format_value", "format_timestamp", "status_of", "time_zone"]

NULL_TEXT = "NULL"

_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 except \t \n, DEL, C1
    "\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"  # bidi, zero-width, BOM
    "\ufff9-\ufffb]"  # interlinear annotation
)


def visible_text(text: str) -> str:
    """``text`` with every invisible or reordering character shown as ``⟨U+XXXX⟩``."""
    return _INVISIBLE.sub(lambda m: f"\u27e8U+{ord(m.group()):04X}\u27e9", text)


def format_timestamp(value: dt.datetime | dt.date, *, sep: str = " ", zone: dt.tzinfo | None = None) -> str:
    """RFC 3339 in UTC with a Z; microseconds only when there are some. Pages use a space
    between date and time (RFC 3339 allows it) so a narrow column wraps there; machine
    -readable files use ``sep="T"``. With ``zone`` (the institution's time zone, for readers
    who live by it) the local time follows in parentheses, to the second, with the zone's
    abbreviation: ``2025-03-12 09:00:00Z (2025-03-12 18:00:00 KST)``; UTC stays the record."""
    if isinstance(value, dt.datetime):
        utc = value.astimezone(dt.timezone.utc)
        spec = f"%Y-%m-%d{sep}%H:%M:%S.%fZ" if utc.microsecond else f"%Y-%m-%d{sep}%H:%M:%SZ"
        text = utc.strftime(spec)
        if zone is not None:
            local = utc.astimezone(zone)
            text += f" ({local.strftime(f'%Y-%m-%d{sep}%H:%M:%S')} {_zone_label(local)})"
        return text
    return value.isoformat()


def _zone_label(local: dt.datetime) -> str:
    """The zone's abbreviation (KST, CET), or its offset where the database has none (+04)."""
    name = local.tzname() or ""
    if name and name[0] not in "+-":
        return name
    offset = local.utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "\u2212"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def time_zone(name: str) -> dt.tzinfo:
    """The IANA time zone ``name`` (Asia/Seoul, Europe/Berlin); ValueError names it if unknown."""
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: give an IANA name such as Asia/Seoul or Europe/Berlin") from None


def _format_number(value: int | float | Decimal, precision: int | None) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+\u221e" if value > 0 else "\u2212\u221e")
    if isinstance(value, Decimal) and not value.is_finite():
        return str(value)
    if precision is not None:
        return f"{value:,.{precision}f}"
    # No precision given: the shortest text that round-trips (repr), because evidence
    # must not be silently rounded. Grouping only for plain positional notation.
    text = repr(value) if isinstance(value, float) else str(value)
    if "e" in text.lower():
        return text
    whole, dot, frac = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-') or '0'):,}{dot}{frac}"


def format_value(value: CellValue, kind: ValueKind, column: Column | None = None, zone: dt.tzinfo | None = None) -> str:
    """The text a value shows as (a timestamp with its local time in ``zone`` too). The
    caller has already checked it fits ``kind``."""
    if value is None:
        return NULL_TEXT
    precision = column.precision if column is not None else None
    if kind is ValueKind.STATUS:
        assert isinstance(value, (Status, StatusBadge))
        badge = value if isinstance(value, StatusBadge) else StatusBadge(value)
        return visible_text(badge.text)
    if kind is ValueKind.BOOLEAN:
        return "yes" if value else "no"
    if kind is ValueKind.NUMBER:
        assert isinstance(value, (int, float, Decimal))
        return _format_number(value, precision)
    if kind is ValueKind.TIMESTAMP:
        assert isinstance(value, (dt.datetime, dt.date))
        return format_timestamp(value, zone=zone)
    if kind is ValueKind.DIGEST and isinstance(value, bytes):
        return value.hex()
    return visible_text(str(value))


def status_of(value: CellValue) -> StatusBadge | None:
    """The badge a status value shows as, or None for other values."""
    if isinstance(value, StatusBadge):
        return value
    if isinstance(value, Status):
        return StatusBadge(value)
    return None
