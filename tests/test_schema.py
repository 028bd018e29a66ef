import pyarrow as pa
import pytest

from ledger.errors import EntryError
from ledger.schema import COMMON_HEAD, TABLE_NAMES, TABLES, table_spec


def test_seven_tables_share_the_common_columns():
    assert set(TABLE_NAMES) == {
        "operation", "model_inference", "data_access", "dimension_change",
        "attribution", "guardrail", "model_promotion",
    }
    for spec in TABLES.values():
        names = [c.name for c in spec.columns]
        assert names[: len(COMMON_HEAD)] == ["seq", "table_name", "ts", "actor", "key_id"]
        assert names[-2:] == ["details", "mac"]
        assert len(names) == len(set(names)), spec.name
        for c in spec.columns:
            assert spec.arrow_schema.field(c.name).nullable is (not c.required)
        assert spec.arrow_schema.field("ts").type == pa.timestamp("us", tz="UTC")


def test_unknown_table_is_named_in_the_error():
    with pytest.raises(EntryError, match="unknown table 'inference'"):
        table_spec("inference")
