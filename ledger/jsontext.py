"""Strict JSON text: duplicate keys and NaN/Infinity are errors, not silently accepted.

Python's json module keeps the last of two equal keys and reads NaN and Infinity; evidence
parsed that way could say one thing and mean another."""

from __future__ import annotations

import json
from typing import Any


class JSONTextError(ValueError):
    """JSON text that is not strict JSON; the message says what and where."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JSONTextError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise JSONTextError(f"{name} is not allowed in JSON")


def loads_strict(text: str | bytes) -> Any:
    """json.loads, refusing duplicate keys and NaN/Infinity (JSONTextError); a syntax
    error is a JSONTextError too, with its line and column."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except json.JSONDecodeError as e:
        raise JSONTextError(f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except JSONTextError:
        raise
    except ValueError as e:  # an integer of more digits than Python converts (4,300)
        raise JSONTextError(f"not valid JSON here: {e}".split("; use sys.")[0]) from None
