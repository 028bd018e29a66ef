"""Strict JSON text: what Python's json module reads too generously is an error here.

Python's json module keeps the last of two equal keys, reads NaN and Infinity, turns 1e400
into infinity, reads an integer of any length (and raises a bare ValueError past 4300
digits) and recurses until the interpreter's stack limit. Evidence parsed that way could
say one thing and mean another, or crash its reader. `loads_strict` refuses each of these
with a JSONTextError naming the JSON path of the value (``entries[3].leaf_hash``).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any, Sequence

MAX_DEPTH = 64  # nesting of arrays and objects; no document this project reads comes close
MAX_INT = 2**64  # integers must lie strictly within +-2^64: every integer field is int64 or uint64
_MAX_INT_DIGITS = len(str(MAX_INT))
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class JSONTextError(ValueError):
    """JSON text that is not strict JSON; the message says what and where (`path`)."""

    def __init__(self, message: str, path: str | None = None):
        self.path, self.reason = path, message
        super().__init__(f"{path}: {message}" if path else message)


def json_path(parts: Sequence[str | int]) -> str:
    """``entries[3].leaf_hash`` for ("entries", 3, "leaf_hash"); keys that are not
    identifiers are quoted (``criteria["a b"]``); the root is ``(top level)``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(top level)"


class _Refused:
    """A value the parser read but this module refuses; found (with its path) after parsing."""

    __slots__ = ("message", "key")

    def __init__(self, message: str, key: str | None = None):
        self.message, self.key = message, key


# Only text with a run of 20 digits can hold an integer beyond 2^64, and only one with a
# positive exponent of 3 digits or such a run can hold a float that overflows: the slower
# Python number hooks run only then.
_LONG_DIGITS = re.compile(r"(?<![0-9])[0-9]{%d}" % _MAX_INT_DIGITS)
_BIG_EXPONENT = re.compile(r"[eE]\+?0*[1-9]\d\d")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _max_depth(text: str) -> int:
    """Deepest nesting of arrays and objects, strings skipped (text already parsed or about to be)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _hooks(text: str, refused: list[_Refused]) -> dict[str, Any]:
    def refuse(message: str, key: str | None = None) -> _Refused:
        refused.append(_Refused(message, key))
        return refused[-1]

    def object_pairs(pairs: list[tuple[str, Any]]) -> Any:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen: set[str] = set()
            key = next(k for k, _ in pairs if k in seen or seen.add(k))
            return refuse(f"duplicate key {key!r}", key)
        return out

    def parse_float(number: str) -> Any:
        value = float(number)
        return refuse(f"number {number[:40]} overflows a 64-bit float") if math.isinf(value) else value

    def parse_int(number: str) -> Any:
        digits = len(number) - (number[0] == "-")
        if digits > _MAX_INT_DIGITS:  # refused before int() reads it: its cost, and the 4300-digit limit
            return refuse(f"integer of {digits} digits is beyond +-2^64")
        value = int(number)
        return value if -MAX_INT < value < MAX_INT else refuse(f"integer {value} is beyond +-2^64")

    hooks: dict[str, Any] = {"object_pairs_hook": object_pairs, "parse_constant": lambda name: refuse(f"{name} is not allowed in JSON")}
    if _LONG_DIGITS.search(text):
        hooks["parse_int"] = parse_int
        hooks["parse_float"] = parse_float
    elif _BIG_EXPONENT.search(text):
        hooks["parse_float"] = parse_float
    return hooks


def _first_refusal(value: Any, parts: list[str | int]) -> JSONTextError | None:
    """The first refused value (in document order) or too deep a nesting, with its path."""
    if type(value) is _Refused:
        return JSONTextError(value.message, json_path(parts if value.key is None else [*parts, value.key]))
    if type(value) is dict:
        items: Any = value.items()
    elif type(value) is list:
        items = enumerate(value)
    else:
        return None
    if len(parts) >= MAX_DEPTH:
        return JSONTextError(f"nested more than {MAX_DEPTH} levels deep", json_path(parts))
    for key, item in items:
        if type(item) in (dict, list, _Refused):
            parts.append(key)
            found = _first_refusal(item, parts)
            parts.pop()
            if found is not None:
                return found
    return None


def loads_strict(text: str | bytes) -> Any:
    """json.loads, refusing duplicate keys, NaN/Infinity, numbers that overflow a float,
    integers beyond +-2^64 and nesting deeper than MAX_DEPTH (JSONTextError, with the JSON
    path); a syntax error is a JSONTextError too, with its line and column."""
    if not isinstance(text, str):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise JSONTextError(f"not valid JSON: not UTF-8 (byte {e.start})") from None
    depth = _max_depth(text)
    if depth > 16 * MAX_DEPTH:  # the walk that names the path would itself recurse that deep
        raise JSONTextError(f"nested {depth} levels deep, more than {MAX_DEPTH}")
    refused: list[_Refused] = []
    try:
        value = json.loads(text, **_hooks(text, refused))
    except json.JSONDecodeError as e:
        raise JSONTextError(f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise JSONTextError(f"nested more than {MAX_DEPTH} levels deep") from None
    if refused or depth > MAX_DEPTH:
        found = _first_refusal(value, [])
        if found is not None:
            raise found
    return value
