"""The seven audit tables: typed columns, which are required, and their allowed values.

The column order here is part of the canonical encoding (see ``ledger/encoding.py``):
changing it changes every MAC, so it is fixed per ledger format version.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import pyarrow as pa

from .errors import EntryError

FORMAT_VERSION = 1

TIMESTAMP = pa.timestamp("us", tz="UTC")
MAC_TYPE = pa.binary(32)


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    required: bool = False
    enum: tuple[str, ...] | None = None
    doc: str = ""


def _col(name: str, type_: pa.DataType, required: bool = False, enum=None, doc: str = "") -> Column:
    return Column(name, type_, required, tuple(enum) if enum else None, doc)


STR = pa.string()
INT = pa.int64()
FLOAT = pa.float64()
BOOL = pa.bool_()
STR_LIST = pa.list_(STR)
FLOAT_MAP = pa.map_(STR, FLOAT)

TOP_FEATURE = pa.struct([("feature", STR), ("value", FLOAT), ("contribution", FLOAT)])
METRIC_COMPARISON = pa.struct(
    [
        ("metric", STR),
        ("champion", FLOAT),
        ("challenger", FLOAT),
        ("delta_rel", FLOAT),
        ("threshold", FLOAT),
        ("passed", BOOL),
    ]
)
SIGNIFICANCE = pa.struct(
    [
        ("metric", STR),
        ("test", STR),
        ("statistic", FLOAT),
        ("p_value", FLOAT),
        ("p_adjusted", FLOAT),
        ("alpha", FLOAT),
        ("significant", BOOL),
    ]
)

# Every row of every table starts with these, in this order.
COMMON_HEAD = (
    _col("seq", INT, True, doc="global sequence number shared by all seven tables"),
    _col("table_name", STR, True, doc="the table this entry belongs to"),
    _col("ts", TIMESTAMP, True, doc="UTC time of the event, microseconds"),
    _col("actor", STR, True, doc="operator or service id that wrote the entry"),
    _col("key_id", STR, True, doc="id of the HMAC key the entry was MACed with"),
)
# ...and end with these. `details` is the typed JSON column (RFC 8785 text) for fields only
# some users need; `mac` is the chain MAC and is not part of the canonical bytes.
DETAILS = _col("details", STR, doc="optional JSON object, stored as RFC 8785 canonical text")
MAC = _col("mac", MAC_TYPE, True, doc="HMAC-SHA256 chain value of this entry")

VERDICTS = ("pass", "modify", "block")
DECISIONS = (
    "force_promote",
    "bootstrap",
    "reject",
    "promote",
    "pending_approval",
    "approve",
    "decline",
    "rollback",
)
TRIGGERS = ("auto", "manual")
ACCESS_TYPES = ("read", "write", "export", "delete")
ROUTES = ("champion", "challenger", "shadow")

_BODIES: dict[str, tuple[Column, ...]] = {
    "operation": (
        _col("event_type", STR, True, doc="e.g. retrain_start, manifest_swap, key_rotation, monitor_alert"),
        _col("component", STR, True),
        _col("status", STR, True),
        _col("correlation_id", STR),
    ),
    "model_inference": (
        _col("request_id", STR, True),
        _col("subject_id", STR, True, doc="pseudonymous subject id"),
        _col("model_slot", STR, True),
        _col("model_version", STR, True),
        _col("input_digest", STR, True, doc="SHA-256 hex over feature names, dtype, shape and values"),
        _col("scores", FLOAT_MAP, doc="output scores by label"),
        _col("decision", STR, True, doc="the output decision or recommendation"),
        _col("latency_ms", FLOAT, True),
        _col("route", STR, enum=ROUTES, doc="champion, challenger or shadow (not served)"),
    ),
    "data_access": (
        _col("operator", STR, True),
        _col("subject_id", STR, True),
        _col("dataset", STR, True),
        _col("columns", STR_LIST, True),
        _col("purpose", STR, True),
        _col("access_type", STR, True, ACCESS_TYPES),
        _col("row_count", INT, True),
        _col("request_id", STR),
    ),
    "dimension_change": (
        _col("component", STR, True),
        _col("old_schema_digest", STR),
        _col("new_schema_digest", STR, True),
        _col("old_dimension", INT),
        _col("new_dimension", INT, True),
        _col("features_added", STR_LIST, True),
        _col("features_removed", STR_LIST, True),
        _col("reason", STR, True),
    ),
    "attribution": (
        _col("request_id", STR, True),
        _col("model_version", STR, True),
        _col("method", STR, True),
        _col("top_features", pa.list_(TOP_FEATURE), True),
    ),
    "guardrail": (
        _col("request_id", STR, True),
        _col("gate", STR, True),
        _col("verdict", STR, True, VERDICTS),
        _col("criteria", FLOAT_MAP, True, doc="per-criterion scores"),
        _col("reason", STR, doc="required unless the verdict is pass"),
        _col("original_output", STR, doc="what the model proposed"),
        _col("final_output", STR, doc="what was served; null when nothing was"),
    ),
    "model_promotion": (
        _col("slot", STR, True),
        _col("champion_version", STR),
        _col("challenger_version", STR, True),
        _col("decision", STR, True, DECISIONS),
        _col("trigger", STR, True, TRIGGERS),
        _col("operator", STR, doc="required when the trigger is manual"),
        _col("reason", STR, True),
        _col("comparison", pa.list_(METRIC_COMPARISON)),
        _col("significance", pa.list_(SIGNIFICANCE)),
        _col("thresholds", FLOAT_MAP, doc="the policy thresholds used"),
    ),
}

TABLE_NAMES: tuple[str, ...] = tuple(_BODIES)


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]  # every column, mac last
    arrow_schema: pa.Schema

    @property
    def encoded_columns(self) -> tuple[Column, ...]:
        """Columns covered by the canonical encoding: all but the MAC."""
        return self.columns[:-1]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _spec(name: str, body: tuple[Column, ...]) -> TableSpec:
    columns = COMMON_HEAD + body + (DETAILS, MAC)
    fields = [pa.field(c.name, c.type, nullable=not c.required) for c in columns]
    return TableSpec(name, columns, pa.schema(fields, metadata={"mrm.table": name}))


TABLES: Mapping[str, TableSpec] = MappingProxyType({n: _spec(n, b) for n, b in _BODIES.items()})


def table_spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise EntryError(f"unknown table {name!r}; the tables are {', '.join(TABLE_NAMES)}") from None
