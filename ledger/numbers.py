"""Numbers read from outside (JSON and TOML files, CSV cells, command-line options), checked
where they are parsed: finite, inside their range, and never an OverflowError.

JSON and TOML read ``10**400`` as a Python int, which ``float()`` and ``math.isfinite``
cannot take (OverflowError, a traceback); ``1e400`` reads as infinity. Both are input errors
here, with the place named, like a value outside its range.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import InputError

# Every integer we parse may end up in the JSON `details` of an entry, which refuses
# integers that JSON cannot carry exactly (RFC 8785 / I-JSON).
JSON_SAFE_INT = 2**53 - 1


def _bound(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _out_of_range(value: float, low: float | None, high: float | None, what: str | None) -> str | None:
    """What the value breaks, or None: "[low, high]" when both bounds are real limits of
    the quantity, else the one bound it is beyond (the JSON limit is no one's range)."""
    below, above = low is not None and value < low, high is not None and value > high
    if not (below or above):
        return None
    subject = f"{what} must be" if what else "must be"
    if low is not None and high is not None and high != JSON_SAFE_INT:
        return f"{subject} in [{_bound(low)}, {_bound(high)}]"
    if below:
        return f"{subject} >= {_bound(low)}"  # type: ignore[arg-type]
    if high == JSON_SAFE_INT:
        return f"{subject} at most 2^53 - 1 (the largest integer JSON evidence carries exactly)"
    return f"{subject} <= {_bound(high)}"  # type: ignore[arg-type]


def finite_float(value: Any, where: str, low: float | None = None, high: float | None = None, *,
                 what: str | None = None, error: type[Exception] = InputError) -> float:
    """``value`` as a finite float inside [low, high] (a bound of None is open).

    ``where`` names the place (``"eval.json: metrics.churn.auc"``, ``"--period-hours"``);
    ``what`` names the quantity in the message (``"AUC"``). Refused with ``error`` (an
    :class:`InputError` unless the caller's parser has its own subclass): booleans,
    non-numbers, NaN, infinities, integers too large for a float, values outside the range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{where}: must be a finite number, got {_short(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise error(f"{where}: {_short(value)} is too large for a number") from None
    if not math.isfinite(number):
        raise error(f"{where}: must be a finite number, got {value!r}")
    problem = _out_of_range(number, low, high, what)
    if problem:
        raise error(f"{where}: {problem}, got {value!r}")
    return number + 0.0  # -0.0 -> 0.0, as the ledger stores it


def bounded_int(value: Any, where: str, low: int | None = None, high: int | None = JSON_SAFE_INT, *,
                what: str | None = None, error: type[Exception] = InputError) -> int:
    """``value`` as an int inside [low, high]; ``high`` defaults to the largest integer JSON
    carries exactly, so a parsed integer can always be recorded. Booleans and floats (even
    3.0) are refused: a count or a seed is written as an integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{where}: must be an integer, got {_short(value)}")
    problem = _out_of_range(value, low, high, what)
    if problem:
        raise error(f"{where}: {problem}, got {_short(value)}")
    return int(value)


def parse_float_text(text: str, where: str, low: float | None = None, high: float | None = None, *,
                     what: str | None = None, error: type[Exception] = InputError) -> float:
    """A number written as text (a CSV cell, an option), then checked as :func:`finite_float`."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise error(f"{where}: {text!r} is not a number") from None
    return finite_float(value, where, low, high, what=what, error=error)


def _short(value: Any, limit: int = 40) -> str:
    """repr of a value, shortened: a 400-digit integer does not belong in a message whole."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**limit:
        # from the bit length: str() of a huge integer is itself refused by Python
        return f"an integer of about {int(abs(value).bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
