"""What a ledger holds, read without a key (for `mrm status`)."""

from __future__ import annotations

import io
from pathlib import Path

from . import wal
from .schema import TABLE_NAMES
from .storage import Layout, read_head, read_manifest, read_meta


def ledger_status(path: str | Path) -> dict:
    layout = Layout(Path(path))
    meta = read_meta(layout)
    records, problems = read_manifest(layout)
    head = read_head(layout)
    tables = {t: 0 for t in TABLE_NAMES}
    key_ids = []
    for r in records:
        for f in r.files:
            tables[f.table] = tables.get(f.table, 0) + f.rows
        if r.key_id not in key_ids:
            key_ids.append(r.key_id)
    sealed_to = records[-1].last_seq if records else -1
    wal_entries = 0
    if layout.wal.exists():
        frames = wal.scan(io.BytesIO(layout.wal.read_bytes()), keep_payload=True).frames
        for frame in frames:
            if frame.last_seq <= sealed_to:
                continue
            for name, t in frame.tables().items():
                tables[name] = tables.get(name, 0) + len(t)
                wal_entries += len(t)
    if head and head.key_id not in key_ids:
        key_ids.append(head.key_id)
    size = sum(p.stat().st_size for p in layout.root.rglob("*") if p.is_file())
    return {
        "path": str(layout.root),
        "ledger_id": meta.ledger_id,
        "format_version": meta.format_version,
        "created_at": meta.created_at,
        "entries": sum(tables.values()),
        "tables": tables,
        "head": None if head is None else {"seq": head.seq, "mac": head.mac, "key_id": head.key_id},
        "segments": len(records),
        "sealed_through": sealed_to,
        "unsealed_entries": wal_entries,
        "key_ids": key_ids,
        "bytes_on_disk": size,
        "manifest_problems": problems,
    }
