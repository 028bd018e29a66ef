"""The canonical encoding: a published vector, and the row and column encoders agreeing."""

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.encoding import encode_row, encode_table
from ledger.normalize import rows_to_arrow
from ledger.schema import TABLES

LEDGER_ID = bytes(range(16))

# docs/encoding.md walks through this vector field by field.
VECTOR_ROW = {
    "seq": 1, "table_name": "guardrail", "ts": 1_700_000_000_000_000, "actor": "é", "key_id": "k1",
    "request_id": "r", "gate": "g", "verdict": "modify", "criteria": [("a", 1.0)], "reason": None,
    "original_output": "x", "final_output": "", "details": '{"n":1}',
}
VECTOR_HEX = (
    "4d524d01" "000102030405060708090a0b0c0d0e0f"
    "01" "0000000000000001"
    "01" "00000009" "67756172647261696c"
    "01" "00060a24181e4000"
    "01" "00000002" "c3a9"
    "01" "00000002" "6b31"
    "01" "00000001" "72"
    "01" "00000001" "67"
    "01" "00000006" "6d6f64696679"
    "01" "00000001" "01" "01" "00000001" "61" "01" "3ff0000000000000"
    "00" "00000000"
    "01" "00000001" "78"
    "01" "00000000"
    "01" "00000007" "7b226e223a317d"
)


def test_published_vector():
    assert encode_row(TABLES["guardrail"], LEDGER_ID, VECTOR_ROW).hex() == VECTOR_HEX


def test_vector_through_arrow_gives_the_same_bytes():
    table = rows_to_arrow(TABLES["guardrail"], [{**VECTOR_ROW, "mac": bytes(32)}], include_assigned=True)
    assert encode_table(TABLES["guardrail"], LEDGER_ID, table).to_pylist() == [bytes.fromhex(VECTOR_HEX)]


@pytest.mark.parametrize("a, b", [
    ({"reason": None}, {"reason": ""}),            # NULL vs empty string
    ({"final_output": "é"}, {"final_output": "e\u0301"}),  # Unicode normalisation
    ({"details": '{"n":1}'}, {"details": '{"n":1.0}'}),   # 1 vs 1.0 in the JSON text
    ({"criteria": [("a", 0.0)]}, {"criteria": [("a", -0.0)]}),
    ({"criteria": [("a", 1.0), ("b", 2.0)]}, {"criteria": [("ab", 1.0)]}),
])
def test_distinct_values_encode_differently(a, b):
    spec = TABLES["guardrail"]
    assert encode_row(spec, LEDGER_ID, {**VECTOR_ROW, **a}) != encode_row(spec, LEDGER_ID, {**VECTOR_ROW, **b})


def _value(type_: pa.DataType, nullable: bool):
    if pa.types.is_int64(type_):
        base = st.integers(-(2**63), 2**63 - 1)
    elif pa.types.is_timestamp(type_):
        base = st.integers(-(2**62), 2**62)
    elif pa.types.is_float64(type_):
        base = st.floats(allow_nan=False, allow_infinity=False)
    elif pa.types.is_boolean(type_):
        base = st.booleans()
    elif pa.types.is_string(type_):
        base = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
    elif pa.types.is_map(type_):
        base = st.dictionaries(st.text(max_size=4), _value(type_.item_type, type_.item_field.nullable), max_size=4).map(lambda d: sorted(d.items()))
    elif pa.types.is_list(type_):
        base = st.lists(_value(type_.value_type, False), max_size=4)
    elif pa.types.is_struct(type_):
        base = st.fixed_dictionaries({type_.field(i).name: _value(type_.field(i).type, True) for i in range(type_.num_fields)})
    else:
        raise AssertionError(type_)
    return st.one_of(st.none(), base) if nullable else base


def _rows(table: str):
    spec = TABLES[table]
    row = st.fixed_dictionaries({c.name: _value(c.type, not c.required) for c in spec.encoded_columns})
    return st.lists(row, min_size=1, max_size=20)


def dictionary_encoded(table: pa.Table) -> pa.Table:
    """Every string column dictionary-encoded (nulls become null indices)."""
    columns = [c.dictionary_encode() if pa.types.is_string(c.type) else c for c in table.columns]
    return pa.table(columns, names=table.column_names)


@pytest.mark.parametrize("table", sorted(TABLES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_row_and_column_encoders_agree(table, data):
    spec = TABLES[table]
    rows = data.draw(_rows(table))
    arrow = rows_to_arrow(spec, [{**r, "mac": bytes(32)} for r in rows], include_assigned=True)
    assert encode_table(spec, LEDGER_ID, arrow).to_pylist() == [encode_row(spec, LEDGER_ID, r) for r in rows]
    # strings read as dictionaries (as verification reads low-cardinality columns): the same bytes
    assert encode_table(spec, LEDGER_ID, dictionary_encoded(arrow)).to_pylist() == [encode_row(spec, LEDGER_ID, r) for r in rows]
    # and on a slice, as verification reads row groups: validity bits then start mid-byte
    if len(rows) > 2:
        start = data.draw(st.integers(1, len(rows) - 1))
        assert encode_table(spec, LEDGER_ID, arrow.slice(start)).to_pylist() == [encode_row(spec, LEDGER_ID, r) for r in rows[start:]]
