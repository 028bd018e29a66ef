"""Canonical bytes and digests: RFC 8785 JSON, so one value has one byte string and one hash.

``json.dumps(sort_keys=True)`` is not canonical (1.0 vs 1, 5e-07 vs 5e-7, NaN accepted); the
ledger stores ``details`` as RFC 8785 text, so digests taken here match what it stores.

Evaluations carry per-sample arrays (a 6,000-sample holdout over eight tasks is ~150,000
values), and the reference ``rfc8785`` package spends most of a gate run on them. So plain
builtin values (``dict`` with ``str`` keys, ``list``, ``tuple``, ``str``, ``float``, ``int``,
``bool``, ``None``) are encoded here, with C-speed ``repr`` and ``json`` for the leaves;
anything else (subclasses, non-finite floats, out-of-range integers, non-text keys, strings
that are not valid Unicode) is handed to ``rfc8785`` itself, which gives the output or the error.
The bytes are identical to ``rfc8785.dumps`` (a property test checks it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import rfc8785

_INT_LIMIT = 2**53 - 1  # RFC 8785 / I-JSON: integers beyond this cannot be exact in a double
# Strings are escaped exactly as RFC 8785 3.2.2.2 asks (quote, backslash, and control characters
# as \b \f \n \r \t or lower-case \u00xx; nothing else), so the json module's C encoder writes them.
_string = json.JSONEncoder(ensure_ascii=False).encode
_strings = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _es_number(text: str) -> str:
    """A positive float's ``repr`` in ECMAScript Number-to-String form (RFC 8785 3.2.2.3):
    both are the shortest round-trip digits; only the layout differs."""
    mantissa, _, exponent = text.partition("e")
    if mantissa.endswith(".0"):
        mantissa = mantissa[:-2]
    if not exponent:
        return mantissa
    e = int(exponent)
    digits = mantissa.replace(".", "")
    if 0 < e < 21:  # an integer up to 21 digits is written out
        return digits + "0" * (e + 1 - len(digits))
    if -7 < e < 0:  # down to 1e-6 as 0.000...
        return "0." + "0" * (-e - 1) + digits
    return f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


def _float(f: float) -> str:
    if f != f or f in (float("inf"), float("-inf")):
        return rfc8785.dumps(f).decode()  # raises FloatDomainError
    if f == 0.0:
        return "0"
    text = repr(f)
    if "e" not in text and not text.endswith(".0"):
        return text
    return "-" + _es_number(text[1:]) if f < 0 else _es_number(text)


def _floats(values: list[float] | tuple[float, ...]) -> str:
    """A list of plain floats (a holdout's labels or scores), with ``repr`` mapped in C and
    only the few texts whose layout differs (exponents, integral values) rewritten."""
    texts = list(map(repr, values))
    for i, text in enumerate(texts):
        if text[-1] == "0" and text[-2] == "." and "e" not in text:  # integral, below 1e16
            texts[i] = "0" if text in ("0.0", "-0.0") else text[:-2]
        elif "e" in text or text[-1] in "nf":  # an exponent, or nan / inf (refused by _float)
            texts[i] = _float(values[i])
    return "[" + ",".join(texts) + "]"


def _encode(value: Any, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append(_string(value))
    elif kind is float:
        out.append(_float(value))
    elif kind is list or kind is tuple:
        if not value:
            out.append("[]")
            return
        first = type(value[0])
        if first is float and all(type(v) is float for v in value):
            out.append(_floats(value))
            return
        if first is str and all(type(v) is str for v in value):
            out.append(_strings(value))
            return
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif kind is dict and all(type(k) is str for k in value):
        if not value:
            out.append("{}")
            return
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16be", "surrogatepass"))):
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif value is None:
        out.append("null")
    elif kind is bool:
        out.append("true" if value else "false")
    elif kind is int and -_INT_LIMIT <= value <= _INT_LIMIT:
        out.append(str(value))
    else:
        out.append(rfc8785.dumps(value).decode("utf-8"))


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes; NaN, infinities and non-JSON types are refused."""
    out: list[str] = []
    _encode(value, out)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: let the reference raise its error
        return rfc8785.dumps(value)


def sha256_hex(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def utc_text(ts: dt.datetime) -> str:
    """An instant as the ledger's JSON writes it: ISO 8601 in UTC with a Z."""
    return ts.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
