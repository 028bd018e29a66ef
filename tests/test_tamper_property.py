"""Random edits to random rows of a ledger: every one is detected at the row it touched."""

import datetime as dt
import shutil

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import verify_ledger
from ledger.schema import TABLES

from .helpers import read_rows, segment_files, write_rows


def _mutate(value, draw):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + draw(st.sampled_from([1, -1, 1 << 20]))
    if isinstance(value, float):
        return draw(st.sampled_from([value + 1.0, -value if value else 1.0, value * 1.000001 if value else 2.0]))
    if isinstance(value, dt.datetime):
        return value + dt.timedelta(microseconds=draw(st.integers(1, 10**9)))
    if isinstance(value, str):
        i = draw(st.integers(0, len(value)))
        return value[:i] + draw(st.sampled_from(["x", "é", "\u0000", " "])) + value[i:]
    if isinstance(value, bytes):
        i = draw(st.integers(0, len(value) - 1))
        return value[:i] + bytes([value[i] ^ (1 << draw(st.integers(0, 7)))]) + value[i + 1 :]
    if isinstance(value, list):
        if value and draw(st.booleans()):
            return value[:-1]
        return value + [value[0]] if value else None
    raise AssertionError(type(value))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_random_edit_is_detected(segmented_template, tmp_path_factory, keyring, data):
    path = tmp_path_factory.mktemp("prop") / "ledger"
    shutil.copytree(segmented_template, path)
    table = data.draw(st.sampled_from(sorted(TABLES)))
    f = data.draw(st.sampled_from(segment_files(path, table)))
    rows = read_rows(f)
    i = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.sampled_from([c.name for c in TABLES[table].columns]))
    old = rows[i][column]
    if old is None:
        new = {"details": '{"forged":true}'}.get(column, "forged" if column not in ("old_dimension",) else 7)
        if column in ("scores",):
            new = [("forged", 1.0)]
    else:
        new = _mutate(old, data.draw)
    if new == old or (column in ("scores", "criteria", "thresholds") and new is not None and len({k for k, _ in new}) != len(new)):
        return
    target = rows[i]["seq"]
    rows[i][column] = new
    try:
        write_rows(f, table, rows)
    except Exception:
        return  # the edit is not representable in the column type
    report = verify_ledger(path, keyring, workers=1)
    assert not report.ok, f"edit of {table}.{column} at seq {target} went unnoticed"
    if read_rows(f)[i][column] == old:
        assert report.kinds() == {"FILE"}  # the column type could not hold the edit: only the bytes changed
        return
    expected = min(target, new) if column == "seq" else target
    assert report.first_bad_seq == expected, report.to_text()
