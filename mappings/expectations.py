"""The closed set of expectations that decide an evidence item from its query's rows.

Two families, because "something wrong was found" and "something required is missing" are
different findings:

* **row checks** judge every row the query returns; a row that fails is an *offending row*,
  shown with the gap. A NULL never passes (an unknown is not a yes).

  ``no_rows``                      every row is a finding; met when the query returns none
  ``all_rows_true``  column        met when the column is TRUE in every row
  ``min_value``      column value  met when the column is >= value in every row
  ``max_value``      column value  met when the column is <= value in every row

* **sufficiency checks** ask whether enough evidence exists; falling short is ``otherwise``
  (``gap`` unless the pack says ``insufficient_evidence``), with no offending row to show.

  ``at_least_rows``  rows          met when the query returns at least that many rows
  ``span_at_least``  column days   met when the column's values (NULL ignored) span at least
                                   that many days, max - min

What an empty population gives: ``all_rows_true``, ``min_value``, ``max_value`` and
``span_at_least`` (no non-NULL value) cannot claim anything about zero rows, so zero rows give
the item's ``when_empty`` status (``insufficient_evidence`` unless the pack says ``met`` or
``not_applicable`` and why). ``no_rows`` and ``at_least_rows`` have no population of their own;
an item may give any kind a ``scope`` query whose rows are the population (served decisions in
the period, say), and then an empty scope gives ``when_empty`` too. Offending rows always win:
a finding is reported as a gap even when the scope is empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .status import Status

NO_ROWS, AT_LEAST_ROWS, ALL_ROWS_TRUE = "no_rows", "at_least_rows", "all_rows_true"
MIN_VALUE, MAX_VALUE, SPAN_AT_LEAST = "min_value", "max_value", "span_at_least"
KINDS = (NO_ROWS, AT_LEAST_ROWS, ALL_ROWS_TRUE, MIN_VALUE, MAX_VALUE, SPAN_AT_LEAST)

ROW_CHECKS = (NO_ROWS, ALL_ROWS_TRUE, MIN_VALUE, MAX_VALUE)
# Kinds whose own rows are a population: zero rows means nothing to judge.
PER_ROW_POPULATION = (ALL_ROWS_TRUE, MIN_VALUE, MAX_VALUE, SPAN_AT_LEAST)

# The parameters each kind takes (besides "kind"); all are required except "otherwise".
PARAMETERS: Mapping[str, tuple[str, ...]] = {
    NO_ROWS: (),
    AT_LEAST_ROWS: ("rows", "otherwise"),
    ALL_ROWS_TRUE: ("column",),
    MIN_VALUE: ("column", "value"),
    MAX_VALUE: ("column", "value"),
    SPAN_AT_LEAST: ("column", "days", "otherwise"),
}
OPTIONAL = {"otherwise"}
SHORTFALL_STATUSES = (Status.GAP, Status.INSUFFICIENT_EVIDENCE)

# DuckDB result types each column check accepts (type names as DuckDB prints them).
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")
_TEMPORAL = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")


class ExpectationSpecError(ValueError):
    """A malformed ``expect`` table; ``field`` names the offending key inside it."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Expectation:
    kind: str
    column: str | None = None
    value: float | None = None  # min_value / max_value threshold
    rows: int | None = None  # at_least_rows
    days: float | None = None  # span_at_least
    otherwise: Status = Status.GAP  # sufficiency checks: the status when short

    # ------------------------------------------------------------------ reading
    @classmethod
    def parse(cls, spec: Any) -> "Expectation":
        if not isinstance(spec, Mapping):
            raise ExpectationSpecError("", "must be a table, e.g. { kind = \"no_rows\" }")
        kind = spec.get("kind")
        if kind is None:
            raise ExpectationSpecError("kind", f"missing; the kinds are {', '.join(KINDS)}")
        if kind not in KINDS:
            raise ExpectationSpecError("kind", f"unknown expectation kind {kind!r}; the kinds are {', '.join(KINDS)}")
        allowed = PARAMETERS[kind]
        for key in spec:
            if key != "kind" and key not in allowed:
                takes = f"takes {', '.join(allowed)}" if allowed else "takes no parameter"
                raise ExpectationSpecError(key, f"unknown key for {kind} ({kind} {takes})")
        for key in allowed:
            if key not in OPTIONAL and key not in spec:
                raise ExpectationSpecError(key, f"{kind} needs {key}")
        out: dict[str, Any] = {"kind": kind}
        if "column" in spec:
            column = spec["column"]
            if not isinstance(column, str) or not column.strip():
                raise ExpectationSpecError("column", "must be the name of a column of the query's result")
            out["column"] = column
        if "value" in spec:
            out["value"] = _number(spec["value"], "value")
        if "days" in spec:
            days = _number(spec["days"], "days")
            if days <= 0:
                raise ExpectationSpecError("days", f"must be positive, got {days:g}")
            out["days"] = days
        if "rows" in spec:
            rows = spec["rows"]
            if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
                raise ExpectationSpecError("rows", f"must be a whole number >= 1, got {rows!r}")
            out["rows"] = rows
        if "otherwise" in spec:
            try:
                otherwise = Status(spec["otherwise"])
            except ValueError:
                otherwise = None
            if otherwise not in SHORTFALL_STATUSES:
                choices = " or ".join(s.value for s in SHORTFALL_STATUSES)
                raise ExpectationSpecError("otherwise", f"must be {choices}, got {spec['otherwise']!r}")
            out["otherwise"] = otherwise
        return cls(**out)

    # ------------------------------------------------------------------ meaning
    @property
    def is_row_check(self) -> bool:
        return self.kind in ROW_CHECKS

    @property
    def rows_are_population(self) -> bool:
        return self.kind in PER_ROW_POPULATION

    def describe(self) -> str:
        """The rule in words, for people reading a result."""
        c = self.column
        return {
            NO_ROWS: "no row: every row the query returns is a finding",
            AT_LEAST_ROWS: f"at least {self.rows or 0:,} row(s)",
            ALL_ROWS_TRUE: f"{c} is true in every row",
            MIN_VALUE: f"{c} >= {_fmt(self.value)} in every row",
            MAX_VALUE: f"{c} <= {_fmt(self.value)} in every row",
            SPAN_AT_LEAST: f"the values of {c} span at least {_fmt(self.days)} days",
        }[self.kind]

    def offending_predicate(self) -> str | None:
        """SQL predicate over the query's rows selecting the offending ones (row checks)."""
        col = quote_identifier(self.column) if self.column else None
        if self.kind == NO_ROWS:
            return "TRUE"
        if self.kind == ALL_ROWS_TRUE:
            return f"{col} IS NOT TRUE"
        if self.kind == MIN_VALUE:
            return f"{col} IS NULL OR {col} < {_sql_number(self.value)}"
        if self.kind == MAX_VALUE:
            return f"{col} IS NULL OR {col} > {_sql_number(self.value)}"
        return None

    def fails(self, value: Any) -> bool:
        """Whether one row fails a row check, given its value in ``column``: the same rule as
        :meth:`offending_predicate`, for results small enough to judge in Python."""
        if self.kind == NO_ROWS:
            return True
        if self.kind == ALL_ROWS_TRUE:
            return value is not True
        if self.kind == MIN_VALUE:
            return value is None or value < self.value
        if self.kind == MAX_VALUE:
            return value is None or value > self.value
        return False

    def column_type_problem(self, duckdb_type: str) -> str | None:
        """Why a result column of this DuckDB type cannot be checked, or None."""
        t = duckdb_type.upper()
        if self.kind == ALL_ROWS_TRUE and t != "BOOLEAN":
            return f"all_rows_true needs a BOOLEAN column; {self.column} is {duckdb_type}"
        if self.kind in (MIN_VALUE, MAX_VALUE) and not t.startswith(_NUMERIC):
            return f"{self.kind} needs a numeric column; {self.column} is {duckdb_type}"
        if self.kind == SPAN_AT_LEAST and t not in _TEMPORAL:
            return f"span_at_least needs a DATE or TIMESTAMP column; {self.column} is {duckdb_type}"
        return None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        for key in PARAMETERS[self.kind]:
            value = getattr(self, key)
            d[key] = value.value if isinstance(value, Status) else value
        return d


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ExpectationSpecError(field, f"must be a finite number, got {value!r}")
    return float(value)


def _sql_number(value: float | None) -> str:
    assert value is not None
    return repr(float(value))


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"
