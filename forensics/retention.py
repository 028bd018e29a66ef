"""What the ledger's store keeps under a retention lock, as the two tables behind the views
``ledger_retention`` (one row) and ``ledger_retention_objects`` (one row per evidence object).

The state is the store's own (ledger.transfer.retention_state), read when the session opens:
for a ledger on object storage the command line reads it from the store, not from the local
mirror the entries are read through (a mirror is a directory and keeps no lock). A directory
keeps no retention lock, so its row says so and lists no object. A mirror opened without the
store's state is named as such, with the counts unknown (NULL), never as retained.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ledger.checkpoints import checkpoint_key
from ledger.storage import META_KEY, MIRROR_STATE, SegmentRecord, manifest_key
from ledger.transfer import RetentionState

DIRECTORY, OBJECT_STORAGE = "directory", "object storage"
_WHEN = pa.timestamp("us", tz="UTC")

RETENTION_SCHEMA = pa.schema([
    ("store_kind", pa.string()), ("retain_days", pa.int64()), ("evidence_objects", pa.int64()), ("retained", pa.int64()),
    ("not_retained", pa.int64()), ("earliest_retain_until", _WHEN), ("latest_retain_until", _WHEN), ("mode", pa.string()),
    ("summary", pa.string()),
])
OBJECT_SCHEMA = pa.schema([
    ("key", pa.string()), ("kind", pa.string()), ("first_seq", pa.int64()), ("last_seq", pa.int64()),
    ("retain_until", _WHEN), ("retained", pa.bool_()), ("mode", pa.string()),
])


def retention_tables(root: Path, retain_days: int | None, records: tuple[SegmentRecord, ...],
                     state: RetentionState | None) -> tuple[pa.Table, pa.Table]:
    """(ledger_retention, ledger_retention_objects) for the ledger read at `root`, whose
    LEDGER.json names `retain_days` and whose manifest lists `records`; `state` is the
    store's retention state, None when the caller did not read it."""
    if state is None and (root / MIRROR_STATE).exists():
        summary = ("not read: the ledger was opened through a local mirror of its object store; "
                   "open the store location (s3://...) to read the retention of its objects")
        row = {"store_kind": OBJECT_STORAGE, "retain_days": retain_days, "summary": summary}
        return pa.Table.from_pylist([row], schema=RETENTION_SCHEMA), OBJECT_SCHEMA.empty_table()
    if state is None or not state.supported:
        row = {"store_kind": DIRECTORY, "retain_days": retain_days, "summary": RetentionState(supported=False).summary()}
        return pa.Table.from_pylist([row], schema=RETENTION_SCHEMA), OBJECT_SCHEMA.empty_table()
    row = {
        "store_kind": OBJECT_STORAGE, "retain_days": retain_days, "evidence_objects": len(state.evidence),
        "retained": state.retained, "not_retained": len(state.not_retained), "earliest_retain_until": state.earliest,
        "latest_retain_until": state.latest, "mode": ",".join(state.modes) or None, "summary": state.summary(),
    }
    return pa.Table.from_pylist([row], schema=RETENTION_SCHEMA), _objects_table(records, state)


def _objects_table(records: tuple[SegmentRecord, ...], state: RetentionState) -> pa.Table:
    """Each evidence object with the segment whose entries it holds or vouches for: the
    segment's files, its manifest record and the checkpoint written when it was sealed."""
    segment_of: dict[str, SegmentRecord] = {}
    for r in records:
        for key in (*(f.path for f in r.files), manifest_key(r.first_seq), checkpoint_key(r.last_seq + 1)):
            segment_of[key] = r
    unprotected = set(state.not_retained)
    rows = []
    for obj in state.evidence:
        segment = segment_of.get(obj.key)
        rows.append({
            "key": obj.key, "kind": _kind(obj.key),
            "first_seq": segment.first_seq if segment else None, "last_seq": segment.last_seq if segment else None,
            "retain_until": obj.retain_until, "retained": obj.key not in unprotected,
            "mode": obj.retain_mode if obj.retain_until is not None else None,
        })
    return pa.Table.from_pylist(rows, schema=OBJECT_SCHEMA)


def _kind(key: str) -> str:
    if key == META_KEY:
        return "ledger metadata"
    if key.startswith("tables/"):
        return "segment file"
    if key.startswith("manifest/"):
        return "manifest record"
    return "checkpoint"
