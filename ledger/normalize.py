"""Validation and normalisation of entries before they are encoded and MACed.

Accepted and normalised: numpy scalars and arrays, Decimal, tz-aware datetimes (and
ISO 8601 strings with an offset), pandas Timestamps, UTF-8 bytes for text, -0.0 (to 0.0).
Refused, with the field named: NaN and infinities, naive datetimes, unknown tables or
fields, missing required fields, wrong types, values outside an enum, non-UTF-8 text,
integers outside int64 (or outside +-2^53 inside the JSON `details`).

A normalised row holds only None, bool, int, float, str, lists, (key, value) lists for maps
and dicts for structs; timestamps are integer microseconds since the epoch (UTC).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
import math
import re
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import rfc8785

from .errors import EntryError
from .identifiers import IDENTIFIER_PATTERN, identifier_problem
from .jsontext import JSONTextError, loads_strict
from .schema import TableSpec

# Set by the ledger itself, never by a caller.
ASSIGNED_FIELDS = frozenset({"seq", "table_name", "key_id", "mac"})
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
JSON_SAFE_INT = 2**53 - 1  # RFC 8785 / I-JSON: integers beyond this are not exact in JSON
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
ONE_MICROSECOND = dt.timedelta(microseconds=1)
_HEX64 = re.compile(r"[0-9a-f]{64}")


class _Bad(Exception):
    """Internal: a value is refused; carries the message and the sub-path."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.message, self.path = message, path


def _kind(v: Any) -> str:
    return type(v).__name__


# ----------------------------------------------------------------------------- scalars


def to_int(v: Any) -> int:
    if type(v) is int and INT64_MIN <= v <= INT64_MAX:  # the common case, first
        return v
    if isinstance(v, bool) or isinstance(v, np.bool_):
        raise _Bad(f"expected an integer, got {_kind(v)}")
    if isinstance(v, (int, np.integer)):
        i = int(v)
    elif isinstance(v, Decimal) and v.is_finite() and v == v.to_integral_value():
        i = int(v)
    else:
        raise _Bad(f"expected an integer, got {_kind(v)} {v!r}")
    if not INT64_MIN <= i <= INT64_MAX:
        raise _Bad(f"integer {i} is outside int64")
    return i


def to_float(v: Any) -> float:
    if type(v) is float and math.isfinite(v):  # the common case, first
        return v + 0.0
    if isinstance(v, (bool, np.bool_)):
        raise _Bad(f"expected a number, got {_kind(v)}")
    if isinstance(v, (int, float, np.integer, np.floating, Decimal)):
        try:
            f = float(v)
        except OverflowError:  # an int such as 10**400: float() raises instead of giving inf
            raise _Bad("integer beyond the range of a 64-bit float (about +-1.8e308)") from None
    else:
        raise _Bad(f"expected a number, got {_kind(v)} {v!r}")
    if not math.isfinite(f):
        raise _Bad(f"{f} is not allowed: numbers must be finite")
    return f + 0.0  # -0.0 -> 0.0


def to_bool(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise _Bad(f"expected true or false, got {_kind(v)} {v!r}")


def to_str(v: Any) -> str:
    if type(v) is str and v.isascii():  # the common case, first: ASCII is valid UTF-8
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError as e:
            raise _Bad(f"text is not valid UTF-8 (byte {e.start})") from None
    if not isinstance(v, str):
        raise _Bad(f"expected text, got {_kind(v)} {v!r}")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _Bad(f"text is not valid UTF-8 (lone surrogate at character {e.start})") from None
    return v


def to_micros(v: Any) -> int:
    """A tz-aware instant as integer microseconds since the epoch, UTC."""
    if isinstance(v, str):
        try:
            v = dt.datetime.fromisoformat(v)
        except ValueError:
            raise _Bad(f"{v!r} is not an ISO 8601 timestamp") from None
    if isinstance(v, np.datetime64):
        raise _Bad("naive numpy datetime64: give a timezone-aware datetime")
    if not isinstance(v, dt.datetime):
        raise _Bad(f"expected a timezone-aware datetime, got {_kind(v)} {v!r}")
    if v.tzinfo is None or v.tzinfo.utcoffset(v) is None:
        raise _Bad(f"naive datetime {v.isoformat()}: give a timezone (UTC is stored)")
    if getattr(v, "nanosecond", 0):
        raise _Bad("timestamp has sub-microsecond precision; microseconds are stored")
    return (v - EPOCH) // ONE_MICROSECOND


def micros_to_datetime(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


# ----------------------------------------------------------------------------- details


def _json_value(v: Any, path: str) -> Any:
    if v is None or isinstance(v, (bool, np.bool_)):
        return None if v is None else bool(v)
    if isinstance(v, (int, np.integer)) or (isinstance(v, Decimal) and v.is_finite() and v == v.to_integral_value()):
        i = int(v)
        if abs(i) > JSON_SAFE_INT:
            raise _Bad(f"integer {i} is beyond 2^53 and cannot be represented exactly in JSON", path)
        return i
    if isinstance(v, (float, np.floating, Decimal)):
        try:
            return to_float(v)
        except _Bad as e:
            raise _Bad(e.message, path) from None
    if isinstance(v, (str, bytes)):
        try:
            return to_str(v)
        except _Bad as e:
            raise _Bad(e.message, path) from None
    if isinstance(v, dt.datetime):
        try:
            return micros_to_datetime(to_micros(v)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        except _Bad as e:
            raise _Bad(e.message, path) from None
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, Mapping):
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise _Bad(f"object keys must be text, got {_kind(k)} {k!r}", path)
            out[to_str(k)] = _json_value(x, f"{path}.{k}")
        return out
    if isinstance(v, (list, tuple)):
        return [_json_value(x, f"{path}[{i}]") for i, x in enumerate(v)]
    raise _Bad(f"{_kind(v)} is not a JSON value", path)


def canonical_json(value: Any, path: str = "details") -> str:
    """RFC 8785 text of a JSON object (a mapping, or JSON text of one)."""
    if isinstance(value, (str, bytes)):
        try:
            value = loads_strict(value)
        except JSONTextError as e:
            raise _Bad(str(e), path) from None
    if not isinstance(value, Mapping):
        raise _Bad(f"must be a JSON object, got {_kind(value)}", path)
    return rfc8785.dumps(_json_value(value, path)).decode("utf-8")


# ----------------------------------------------------------------------------- columns


def _normalizer(type_: pa.DataType) -> Callable[[Any], Any]:
    """Normaliser of one non-null value of an Arrow type."""
    if pa.types.is_int64(type_):
        return to_int
    if pa.types.is_float64(type_):
        return to_float
    if pa.types.is_boolean(type_):
        return to_bool
    if pa.types.is_string(type_):
        return to_str
    if pa.types.is_timestamp(type_):
        return to_micros
    if pa.types.is_map(type_):
        key, item = _normalizer(type_.key_type), _normalizer(type_.item_type)

        def norm_map(v: Any) -> list[tuple[str, Any]]:
            pairs = v.items() if type(v) is dict or isinstance(v, Mapping) else v
            if isinstance(pairs, (str, bytes)) or not hasattr(pairs, "__iter__"):
                raise _Bad(f"expected a mapping, got {_kind(v)}")
            out: dict[Any, Any] = {}
            for pair in pairs:
                try:
                    k, x = pair
                except (TypeError, ValueError):
                    raise _Bad(f"expected a mapping or (key, value) pairs, got {_kind(v)}") from None
                k = key(k)
                if k in out:
                    raise _Bad(f"duplicate key {k!r}")
                if x is None:
                    raise _Bad(f"missing value for key {k!r}")
                try:
                    out[k] = item(x)
                except _Bad as e:
                    raise _Bad(e.message, f"[{k!r}]") from None
            return sorted(out.items())  # one order per map, whatever order it came in

        return norm_map
    if pa.types.is_list(type_):
        item = _normalizer(type_.value_type)

        def norm_list(v: Any) -> list[Any]:
            if isinstance(v, np.ndarray):
                v = list(v)
            if not isinstance(v, (list, tuple)):
                raise _Bad(f"expected a list, got {_kind(v)}")
            out = []
            for i, x in enumerate(v):
                if x is None:
                    raise _Bad("list elements may not be null", f"[{i}]")
                try:
                    out.append(item(x))
                except _Bad as e:
                    raise _Bad(e.message, f"[{i}]{e.path}") from None
            return out

        return norm_list
    if pa.types.is_struct(type_):
        fields = [(type_.field(i).name, _normalizer(type_.field(i).type)) for i in range(type_.num_fields)]
        names = {n for n, _ in fields}

        def norm_struct(v: Any) -> dict[str, Any]:
            if not isinstance(v, Mapping):
                raise _Bad(f"expected an object with fields {sorted(names)}, got {_kind(v)}")
            unknown = set(v) - names
            if unknown:
                raise _Bad(f"unknown field(s) {sorted(unknown)}; expected {sorted(names)}")
            out = {}
            for name, norm in fields:
                x = v.get(name)
                try:
                    out[name] = None if x is None else norm(x)
                except _Bad as e:
                    raise _Bad(e.message, f".{name}{e.path}") from None
            return out

        return norm_struct
    raise TypeError(f"unsupported column type {type_}")


# Rules that involve a value's meaning or several fields; checked on every path.
@dataclass(frozen=True)
class Rule:
    """A check on a value's meaning or on several fields, run on every path. `check` is the
    definition (a message, or None when the row is fine); `suspects`, where given, finds
    in bulk every row of a batch the check could refuse, so a large batch is checked in
    Arrow and `check` only runs on those rows."""

    columns: tuple[str, ...]
    check: Callable[..., str | None]
    field: str
    suspects: Callable[[pa.Array], pa.Array] | None = None

    def first_problem(self, columns: Sequence[pa.Array]) -> tuple[int, str] | None:
        """(row, message) of the first row of a batch the check refuses."""
        if self.suspects is None:
            candidates: Iterable[int] = range(len(columns[0]))
        else:
            candidates = np.flatnonzero(np.asarray(self.suspects(columns[0]).fill_null(False), dtype=bool)).tolist()
        for i in candidates:
            values = [c[i].as_py() for c in columns]
            if values[0] is not None and (problem := self.check(*values)):
                return i, problem
        return None


def _hex64(v: str) -> str | None:
    return None if _HEX64.fullmatch(v) else "must be 64 lowercase hex digits (a SHA-256)"


def _non_negative(v: float | int) -> str | None:
    return None if v >= 0 else f"must not be negative, got {v}"


def _reason_unless_pass(verdict: str, reason: str | None) -> str | None:
    return None if verdict == "pass" or (reason and reason.strip()) else f"a reason is required when the verdict is {verdict}"


def _operator_if_manual(trigger: str, operator: str | None) -> str | None:
    return None if trigger != "manual" or (operator and operator.strip()) else "an operator is required when the trigger is manual"


def _not_hex64(column: pa.Array) -> pa.Array:
    return pc.invert(pc.match_substring_regex(column, "^[0-9a-f]{64}$"))


def _negative(column: pa.Array) -> pa.Array:
    return pc.less(column, 0)


def _not_identifier(column: pa.Array) -> pa.Array:
    return pc.or_(pc.invert(pc.match_substring_regex(column, f"^{IDENTIFIER_PATTERN}$")), pc.match_substring(column, ".."))


def _identifier_rule(column: str) -> Rule:
    """Slot and version names reach file names, URLs and registry keys: the one rule of
    ledger.identifiers, so the ledger itself refuses ``../../x`` (and stays as it was)."""
    return Rule((column,), identifier_problem, column, _not_identifier)


RULES: dict[str, list[Rule]] = {
    "model_inference": [Rule(("input_digest",), _hex64, "input_digest", _not_hex64), Rule(("latency_ms",), _non_negative, "latency_ms", _negative),
                        _identifier_rule("model_slot"), _identifier_rule("model_version")],
    "data_access": [Rule(("row_count",), _non_negative, "row_count", _negative)],
    "dimension_change": [Rule(("new_dimension",), _non_negative, "new_dimension", _negative)],
    "guardrail": [Rule(("verdict", "reason"), _reason_unless_pass, "reason")],
    "model_promotion": [Rule(("trigger", "operator"), _operator_if_manual, "operator"), _identifier_rule("slot"),
                        _identifier_rule("challenger_version"), _identifier_rule("champion_version")],
}


class RowNormalizer:
    """Validates and normalises single rows of one table; built once per table."""

    def __init__(self, spec: TableSpec):
        self.spec = spec
        self.columns = [
            (c.name, c.required, c.enum, _normalizer(c.type))
            for c in spec.columns
            if c.name not in ASSIGNED_FIELDS and c.name != "details"
        ]
        self.known = {c.name for c in spec.columns} - ASSIGNED_FIELDS
        self.rules = RULES.get(spec.name, [])

    def __call__(self, row: Mapping[str, Any], *, index: int | None = None, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """`defaults` are already-normalised values for missing fields (the ledger's clock
        and actor); everything else comes from `row` and is checked."""
        table = self.spec.name
        if not isinstance(row, Mapping):
            raise EntryError(f"expected a mapping of field names to values, got {_kind(row)}", table=table, row=index)
        extra = row.keys() - self.known
        if extra:
            assigned = sorted(extra & ASSIGNED_FIELDS)
            if assigned:
                raise EntryError(f"{', '.join(assigned)} is assigned by the ledger", table=table, field=assigned[0], row=index)
            raise EntryError(f"unknown field; the fields are {', '.join(sorted(self.known))}", table=table, field=sorted(extra)[0], row=index)
        out: dict[str, Any] = {}
        for name, required, enum, norm in self.columns:
            v = row.get(name)
            if v is None:
                if defaults is not None and name in defaults:
                    out[name] = defaults[name]
                    continue
                if required:
                    raise EntryError("missing required field", table=table, field=name, row=index)
                out[name] = None
                continue
            try:
                v = norm(v)
            except _Bad as e:
                raise EntryError(e.message, table=table, field=name + e.path, row=index) from None
            if required and v.__class__ is str and (not v or v.isspace()):
                raise EntryError("required field is empty", table=table, field=name, row=index)
            if enum is not None and v not in enum:
                raise EntryError(f"{v!r} is not one of {', '.join(enum)}", table=table, field=name, row=index)
            out[name] = v
        details = row.get("details")
        try:
            out["details"] = None if details is None else canonical_json(details)
        except _Bad as e:
            raise EntryError(e.message, table=table, field=e.path or "details", row=index) from None
        for rule in self.rules:
            values = [out[c] for c in rule.columns]
            if values[0] is not None and (problem := rule.check(*values)):
                raise EntryError(problem, table=table, field=rule.field, row=index)
        return out


# ----------------------------------------------------------------------------- batches


def _first_true(mask: pa.Array | np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])


def _check_nested_floats(arr: pa.Array, path: str) -> tuple[str, int] | None:
    """(path, index into the flattened child) of the first non-finite float, if any."""
    t = arr.type
    if pa.types.is_float64(t):
        bad = pc.invert(pc.is_finite(arr).fill_null(True))
        if pc.any(bad).as_py():
            return path, _first_true(bad)
    elif pa.types.is_list(t) or pa.types.is_map(t):
        return _check_nested_floats(arr.values, path)
    elif pa.types.is_struct(t):
        for i in range(t.num_fields):
            found = _check_nested_floats(arr.field(i), f"{path}.{t.field(i).name}")
            if found:
                return found
    return None


def normalize_arrow(spec: TableSpec, table: pa.Table, row_normalizer: RowNormalizer) -> pa.Table:
    """Validate a columnar batch without leaving Arrow; returns it in `spec`'s schema
    minus the ledger-assigned columns. Falls back to the row path for a precise error."""
    name = spec.name
    assigned = sorted(set(table.column_names) & ASSIGNED_FIELDS)
    if assigned:
        raise EntryError(f"{', '.join(assigned)} is assigned by the ledger", table=name, field=assigned[0])
    unknown = sorted(set(table.column_names) - row_normalizer.known)
    if unknown:
        raise EntryError(f"unknown field; the fields are {', '.join(sorted(row_normalizer.known))}", table=name, field=unknown[0])
    n = len(table)
    out: dict[str, pa.Array] = {}
    for c in spec.columns:
        if c.name in ASSIGNED_FIELDS:
            continue
        if c.name not in table.column_names:
            if c.required and c.name not in ("ts", "actor"):
                raise EntryError("missing required field", table=name, field=c.name, row=0 if n else None)
            out[c.name] = pa.nulls(n, c.type)
            continue
        col = table.column(c.name).combine_chunks()
        if c.name == "details":
            if col.null_count < n:
                texts = [None if v is None else canonical_json_or_error(v, name, i) for i, v in enumerate(col.to_pylist())]
                col = pa.array(texts, pa.string())
            else:
                col = pa.nulls(n, pa.string())
            out[c.name] = col
            continue
        if pa.types.is_timestamp(c.type) and not (pa.types.is_timestamp(col.type) and col.type.tz):
            return _row_path(table, row_normalizer)
        try:
            col = col.cast(c.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return _row_path(table, row_normalizer)
        if col.null_count and c.required and c.name not in ("ts", "actor"):
            raise EntryError("missing required field", table=name, field=c.name, row=_first_true(col.is_null()))
        found = _check_nested_floats(col, c.name)
        if found:
            # Locate the row through the row path, which also names the exact element.
            return _row_path(table, row_normalizer)
        if pa.types.is_float64(c.type):
            col = pc.add(col, 0.0)  # -0.0 -> 0.0, as on the row path
        if pa.types.is_string(c.type) and c.required:
            empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0).fill_null(False)
            if pc.any(empty).as_py():
                raise EntryError("required field is empty", table=name, field=c.name, row=_first_true(empty))
        if c.enum is not None:
            outside = pc.and_(pc.is_valid(col), pc.invert(pc.is_in(col, value_set=pa.array(c.enum))))
            if pc.any(outside).as_py():
                i = _first_true(outside)
                raise EntryError(f"{col[i].as_py()!r} is not one of {', '.join(c.enum)}", table=name, field=c.name, row=i)
        if pa.types.is_list(c.type) and col.values.null_count:
            return _row_path(table, row_normalizer)
        if pa.types.is_map(c.type) and _map_needs_row_path(col):
            return _row_path(table, row_normalizer)
        out[c.name] = col
    for rule in row_normalizer.rules:
        found = rule.first_problem([out[c] for c in rule.columns])
        if found:
            raise EntryError(found[1], table=name, field=rule.field, row=found[0])
    return pa.table(out)


def _map_needs_row_path(col: pa.Array) -> bool:
    """Maps are stored with strictly ascending keys and no null values; the row path sorts
    them, or names the offending entry."""
    entries = col.values
    if entries.field(1).null_count:
        return True
    keys = entries.field(0)
    if len(keys) < 2:
        return False
    ascending = np.asarray(pc.less(keys.slice(0, len(keys) - 1), keys.slice(1)), dtype=bool)
    same_map = np.ones(len(keys) - 1, dtype=bool)
    boundaries = np.asarray(col.offsets, dtype=np.int64)
    boundaries = boundaries[(boundaries > 0) & (boundaries < len(keys))]
    same_map[boundaries - 1] = False
    return bool(np.any(~ascending & same_map))


def canonical_json_or_error(value: Any, table: str, row: int) -> str:
    try:
        return canonical_json(value)
    except _Bad as e:
        raise EntryError(e.message, table=table, field=e.path or "details", row=row) from None


def _row_path(table: pa.Table, row_normalizer: RowNormalizer) -> pa.Table:
    rows = [row_normalizer(r, index=i) for i, r in enumerate(table.to_pylist())]
    return rows_to_arrow(row_normalizer.spec, rows, include_assigned=False)


def rows_to_arrow(spec: TableSpec, rows: Sequence[Mapping[str, Any]], *, include_assigned: bool, include_mac: bool = True) -> pa.Table:
    """Normalised rows -> an Arrow table in `spec`'s schema, with or without the columns
    the ledger assigns (seq, table_name, key_id and, unless include_mac is False, mac)."""
    fields = [
        f for f in spec.arrow_schema
        if (include_assigned or f.name not in ASSIGNED_FIELDS) and (include_mac or f.name != "mac")
    ]
    schema = pa.schema(fields, metadata=spec.arrow_schema.metadata)
    return pa.Table.from_pylist(list(rows), schema=schema)
