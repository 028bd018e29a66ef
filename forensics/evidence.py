"""Point lookups of entries by request id or subject id, fast at tens of millions of entries.

The key index (ledger/key_index.py) narrows a lookup to the few segments that may hold the
key; DuckDB's Parquet reader then reads only those files, filtered by the key itself, so every
row returned comes from a listed file and really holds the key. Segments without a usable
index are scanned; unsealed entries are filtered in memory.

This connection runs only the fixed, parameterised queries below, never user SQL (that is
`session.LedgerSQL`, which has no path into the ledger at all). It still gets the least it
needs: read access to exactly the listed files (``allowed_paths``), external access otherwise
off, no extensions, configuration locked.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ledger.key_index import KeyIndex
from ledger.schema import TABLES

from .errors import UnreadableEvidence
from .source import Source, private_temp_dir


@dataclass(frozen=True)
class LookupStats:
    segments_searched: int  # segments whose files were read
    unindexed_segments: int  # of which had no usable index
    files_read: int


class EvidenceReader:
    """Rows of one table holding a key value, read from the listed files. Keep it open for
    many lookups: file metadata and index headers are cached."""

    def __init__(self, source: Source, *, threads: int | None = None):
        self.source = source
        self.index = KeyIndex(source.root, source.records)
        self._tmp = private_temp_dir(source.root, "mrm-evidence-")
        self.con = duckdb.connect(":memory:", config={"threads": threads or max(1, min(os.cpu_count() or 1, 4))})
        self._paths = source.segment_files
        for name, value in (
            ("TimeZone", "UTC"),
            ("temp_directory", self._tmp),
            ("parquet_metadata_cache", True),
            ("autoinstall_known_extensions", False),
            ("autoload_known_extensions", False),
            ("python_enable_replacements", False),
            ("allowed_paths", [str(p) for p in source.all_files()]),
            ("enable_external_access", False),
            ("lock_configuration", True),
        ):
            self.con.execute(f"SET {name} = ?", [value])
        self.last_stats = LookupStats(0, 0, 0)

    def rows(self, table: str, column: str, value: str, *, use_index: bool = True, after_seq: int | None = None) -> pa.Table:
        """Every entry of `table` whose `column` equals `value`, in sequence order; with
        ``after_seq``, only segments holding entries after it are read (older ones may still
        appear, from a segment that straddles it)."""
        spec = TABLES[table]
        if column not in spec.arrow_schema.names:
            raise ValueError(f"table {table} has no column {column!r}")
        if use_index:
            maybe, unindexed = self.index.segments_for(column, value)
            segments = sorted(maybe + unindexed, key=lambda r: r.first_seq)
        else:
            segments, unindexed = list(self.source.records), list(self.source.records)
        if after_seq is not None:
            segments = [r for r in segments if r.last_seq > after_seq]
        files = [str(self._paths[(r.first_seq, table)]) for r in segments if (r.first_seq, table) in self._paths]
        self.last_stats = LookupStats(len(segments), len(unindexed), len(files))
        parts = []
        if files:
            sql = f'SELECT * FROM read_parquet(?) WHERE "{column}" = ? ORDER BY seq'
            try:
                parts.append(self.con.sql(sql, params=[files, value]).to_arrow_table().cast(spec.arrow_schema))
            except (duckdb.Error, pa.ArrowException) as e:
                raise UnreadableEvidence(f"reading {table} entries failed: {str(e).splitlines()[0]}; run `mrm verify`") from None
        pending = self.source.unsealed.get(table)
        if pending is not None:
            parts.append(pending.filter(pc.equal(pending.column(column), value)).cast(spec.arrow_schema))
        return pa.concat_tables(parts) if parts else spec.arrow_schema.empty_table()

    def close(self) -> None:
        self.index.close()
        try:
            self.con.close()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "EvidenceReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

