"""The entries a forensic reader may use: one snapshot of the ledger, bounded by what was
verified, with every listed file checked to lie inside the ledger.

Only files the manifest lists are data (ledger/read.py); the table directories are never
globbed. A manifest that names a path outside ``tables/`` (``../../etc/passwd``) or a listed
file that is gone is refused with the path named, before any query runs (UnreadableEvidence:
the ledger is damaged, `mrm` exits 1).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ledger.read import snapshot
from ledger.schema import TABLE_NAMES, TABLES
from ledger.storage import SegmentRecord

from .attestation import Attestation, IntegrityFailure, LedgerChanged, Verifier, resolve
from .errors import ForensicsError, UnreadableEvidence


@dataclass(frozen=True)
class Source:
    root: Path  # real path of the ledger directory
    ledger_id: str
    records: tuple[SegmentRecord, ...]  # manifest lines whose files are read
    files: dict[str, list[Path]]  # table -> listed files (real paths), in sequence order
    segment_files: dict[tuple[int, str], Path]  # (segment first_seq, table) -> listed file
    unsealed: dict[str, pa.Table]  # table -> write-ahead-log entries with seq <= through_seq
    attestation: Attestation

    @property
    def through_seq(self) -> int:
        return self.attestation.through_seq

    def all_files(self) -> list[Path]:
        return [f for table in TABLE_NAMES for f in self.files[table]]

    def dataset(self, table: str) -> ds.Dataset:
        """Every entry of `table` as one Arrow dataset: listed files, then unsealed entries."""
        schema = TABLES[table].arrow_schema
        parts: list[ds.Dataset] = []
        if self.files[table]:
            parts.append(ds.dataset([str(f) for f in self.files[table]], schema=schema, format="parquet"))
        if table in self.unsealed and len(self.unsealed[table]):
            parts.append(ds.dataset(self.unsealed[table].cast(schema)))
        if not parts:
            return ds.dataset(schema.empty_table())
        return parts[0] if len(parts) == 1 else ds.dataset(parts)

    def read(self, table: str, filter: Any = None, columns: list[str] | None = None) -> pa.Table:
        return self.dataset(table).to_table(filter=filter, columns=columns)


def open_source(path: str | os.PathLike[str], verifier: Verifier | None = None) -> Source:
    """Snapshot the ledger at `path`; with a verifier, verify first and keep only what the
    verification vouches for. Raises IntegrityFailure when verification finds problems."""
    root = resolve(path)
    verification = None
    if verifier is not None:
        verification = verifier(root)
        if not verification.ok:
            raise IntegrityFailure(verification)
    snap = snapshot(root)
    through = snap.last_seq
    records = snap.records
    if verification is not None:
        # The verifier looked at the ledger a moment ago. The manifest only grows, so its first
        # `segments` lines are the ones it checked; entries it checked in the write-ahead log
        # and that were sealed since are in files it did not see, so they are left out.
        if len(records) < verification.segments:
            raise LedgerChanged(
                f"{root}: the manifest now lists {len(records)} segments, fewer than the {verification.segments} just verified"
            )
        if len(records) == verification.segments:
            through = min(through, verification.through_seq)
        else:
            through = records[verification.segments - 1].last_seq if verification.segments else -1
            through = min(through, verification.through_seq)
        records = tuple(r for r in records if r.first_seq <= through)
    segment_files = _checked_files(root, records)
    files: dict[str, list[Path]] = {t: [] for t in TABLE_NAMES}
    for (_, table), real in segment_files.items():
        files[table].append(real)
    unsealed = {}
    for table, rows in snap.unsealed.items():
        kept = rows.filter(pc.less_equal(rows.column("seq"), through))
        if len(kept):
            unsealed[table] = kept
    attestation = Attestation(snap.ledger_id, str(root), through, _head_mac(records, unsealed, through), verification)
    return Source(root, snap.ledger_id, records, files, segment_files, unsealed, attestation)


def _checked_files(root: Path, records: tuple[SegmentRecord, ...]) -> dict[tuple[int, str], Path]:
    tables_dir = Path(os.path.realpath(root / "tables"))
    files: dict[tuple[int, str], Path] = {}
    for r in records:
        for f in r.files:
            where = f"the manifest record of segment {r.first_seq}-{r.last_seq}"
            if f.table not in TABLES:
                raise UnreadableEvidence(f"{where} lists a file of unknown table {f.table!r}; run `mrm verify`")
            real = Path(os.path.realpath(root / f.path))
            if tables_dir not in real.parents:
                raise UnreadableEvidence(f"{where} lists {f.path!r}, which is outside the ledger's tables/ directory; run `mrm verify`")
            if not real.is_file():
                raise UnreadableEvidence(f"{where} lists {f.path}, which is missing; run `mrm verify`")
            files[(r.first_seq, f.table)] = real
    return files


def _head_mac(records: tuple[SegmentRecord, ...], unsealed: dict[str, pa.Table], through: int) -> str | None:
    for table in unsealed.values():
        hit = table.filter(pc.equal(table.column("seq"), through))
        if len(hit):
            return hit.column("mac")[0].as_py().hex()
    for r in reversed(records):
        if r.last_seq == through:
            return r.last_mac
    return None


def private_temp_dir(ledger_root: Path, prefix: str, inside: Path | None = None) -> str:
    """A fresh directory for DuckDB to spill to, under ``inside`` or else TMPDIR. DuckDB lets
    SQL write there too (it is added to allowed_directories), so it must not be inside the
    ledger, whatever TMPDIR says; that is checked before anything is created."""
    base = Path(os.path.realpath(inside if inside is not None else tempfile.gettempdir()))
    if base == ledger_root or ledger_root in base.parents:
        raise ForensicsError(f"the temporary directory {base} (TMPDIR) is inside the ledger; point TMPDIR elsewhere")
    return str(Path(tempfile.mkdtemp(prefix=prefix, dir=base)))
