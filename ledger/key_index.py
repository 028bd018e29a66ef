"""A side index that says which segments may hold a request id or a subject id.

Finding one request among ten million means, without help, reading the ``request_id``
column of every segment file. Rows must stay in sequence order inside a file (verification
checks it), so the files cannot be sorted by request id; instead each sealed segment gets a
small companion file listing 32-bit fingerprints of every ``request_id`` and ``subject_id``
value it holds:

    <ledger>/index/<first>-<last>.keys

A lookup fingerprints the key, asks every segment's index (two small reads each, the second
usually served from the page cache), and reads only the segments that answer "maybe".

The index is a hint, never evidence:

* it can only *narrow* where to look; rows are always read from the files the manifest lists
  and compared with the key itself, so a wrong index cannot make up a match;
* each index file names the segment range and the SHA-256 of every data file it was built
  from, and is ignored (the segment is scanned instead) when those differ from the manifest;
* a missing, torn or unreadable index file only makes the lookup slower.

What it cannot rule out on its own is an *omission* by an index file someone edited; readers
that need that guarantee scan without it (``mrm reconstruct --verify`` does).

File format (little-endian)::

    8 bytes   magic "MRMKIDX1"
    u32       length H of the header
    H bytes   header, JSON: format, first_seq, last_seq, hash, bucket_bits, count,
              columns, files (table -> SHA-256 of the data file indexed)
    pad       to a multiple of 4
    u32[2^b+1]  start of each bucket in the fingerprint array (b = bucket_bits)
    u32[count]  sorted distinct fingerprints; bucket = fingerprint >> (32 - b)
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from .storage import SEQ_DIGITS, Layout, SegmentFile, SegmentRecord
from .store import ObjectExists

MAGIC = b"MRMKIDX1"
FORMAT = 1
HASH_NAME = "fnv1a64-fmix64-hi32"
INDEXED_COLUMNS: tuple[str, ...] = ("request_id", "subject_id")
INDEX_DIR = "index"
_TARGET_BUCKET_SIZE = 32
_MAX_BUCKET_BITS = 16
_FIRST_READ = 64 * 1024  # header and, for segments up to ~2M keys, the bucket directory

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1
_VECTOR_MAX_LEN = 256  # longer values are hashed one by one (identical result)


# ----------------------------------------------------------------------------- hashing


def _fmix64(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK64
    h ^= h >> 33
    return h


def _fnv1a(data: bytes, h: int = _FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK64
    return h


def _column_seed(column: str) -> int:
    # The column name is hashed in, so a request id and an equal subject id differ.
    return _fnv1a(column.encode("utf-8") + b"\x00")


def key_fingerprint(column: str, value: str) -> int:
    """The 32-bit fingerprint of one key (the reference definition)."""
    return _fmix64(_fnv1a(value.encode("utf-8"), _column_seed(column))) >> 32


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: ~100x faster here than numpy 2's hash-based np.unique."""
    if not len(values):
        return values
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def fingerprints(column: str, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Fingerprints of every non-null value, as uint32 (vectorised; equal to key_fingerprint)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    values = values.cast(pa.large_string()).drop_null()
    n = len(values)
    if n == 0:
        return np.empty(0, dtype=np.uint32)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset : values.offset + n + 1]
    data_buffer = values.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, dtype=np.uint8)
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    h = np.full(n, _column_seed(column), dtype=np.uint64)
    prime = np.uint64(_FNV_PRIME)
    # Ids usually come in a few lengths: hash each length group byte column by byte column.
    for length in _sorted_unique(lengths):
        rows = np.flatnonzero(lengths == length)
        if length > _VECTOR_MAX_LEN:
            for i in rows:
                h[i] = _fnv1a(bytes(data[starts[i] : starts[i] + length]), _column_seed(column))
            continue
        group, at = h[rows], starts[rows]
        for j in range(int(length)):
            group ^= data[at + j]
            group *= prime
        h[rows] = group
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return (h >> np.uint64(32)).astype(np.uint32)


# ----------------------------------------------------------------------------- writing


def index_path(layout: Layout, first_seq: int, last_seq: int) -> Path:
    return layout.root / INDEX_DIR / f"{first_seq:0{SEQ_DIGITS}d}-{last_seq:0{SEQ_DIGITS}d}.keys"


def _bucket_bits(count: int) -> int:
    if count <= _TARGET_BUCKET_SIZE:
        return 0
    return min(_MAX_BUCKET_BITS, math.ceil(math.log2(count / _TARGET_BUCKET_SIZE)))


def encode_index(first_seq: int, last_seq: int, files: Sequence[SegmentFile], tables: Mapping[str, pa.Table]) -> bytes:
    """The bytes of the index file of one segment, built from the tables it seals."""
    parts = [
        fingerprints(column, table.column(column))
        for table in tables.values()
        for column in INDEXED_COLUMNS
        if column in table.column_names
    ]
    fps = _sorted_unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint32)
    bits = _bucket_bits(len(fps))
    buckets = (fps >> np.uint32(32 - bits)) if bits else np.zeros(len(fps), dtype=np.uint32)
    directory = np.searchsorted(buckets, np.arange((1 << bits) + 1, dtype=np.uint64)).astype("<u4")
    header = json.dumps(
        {
            "format": FORMAT,
            "first_seq": first_seq,
            "last_seq": last_seq,
            "hash": HASH_NAME,
            "bucket_bits": bits,
            "count": int(len(fps)),
            "columns": list(INDEXED_COLUMNS),
            "files": {f.table: f.sha256 for f in files},
        },
        sort_keys=True,
    ).encode("utf-8")
    head = MAGIC + struct.pack("<I", len(header)) + header
    head += b"\x00" * (-len(head) % 4)
    return head + directory.tobytes() + fps.astype("<u4").tobytes()


def write_index(layout: Layout, record: SegmentRecord, tables: Mapping[str, pa.Table]) -> Path:
    """Write the index of a sealed segment (atomically; not fsynced: it can be rebuilt, and a
    torn file is detected and ignored by readers)."""
    path = index_path(layout, record.first_seq, record.last_seq)
    key = path.relative_to(layout.root).as_posix()
    data = encode_index(record.first_seq, record.last_seq, record.files, tables)
    try:
        layout.store.put_if_absent(key, data)
    except ObjectExists:  # from a seal that stopped after its record: rebuilt from the same rows
        if layout.store.read(key) != data:
            layout.store.delete(key)
            layout.store.put_if_absent(key, data)
    return path


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _OpenIndex:
    record: SegmentRecord
    fd: int
    bits: int
    count: int
    directory: np.ndarray
    fps_offset: int


class KeyIndex:
    """The indexes of a snapshot's segments. ``segments_for`` returns, for a key, the segments
    that may hold it and the segments that have no usable index (which must be scanned).
    Keep one open for many lookups: headers are read once."""

    def __init__(self, root: str | os.PathLike[str], records: Iterable[SegmentRecord]):
        self.layout = Layout(Path(root))
        self._indexes: list[_OpenIndex] = []
        self.unindexed: list[SegmentRecord] = []
        self.problems: list[str] = []
        for record in records:
            opened = self._open(record)
            if opened is None:
                self.unindexed.append(record)
            else:
                self._indexes.append(opened)

    def _open(self, record: SegmentRecord) -> _OpenIndex | None:
        path = index_path(self.layout, record.first_seq, record.last_seq)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as e:
            self.problems.append(f"{path.name}: unreadable ({e.strerror})")
            return None
        try:
            opened = self._parse(fd, record, path.name)
        except (ValueError, KeyError, TypeError, struct.error, OSError) as e:
            self.problems.append(f"{path.name}: ignored ({e})")
            opened = None
        if opened is None:
            os.close(fd)
        return opened

    def _parse(self, fd: int, record: SegmentRecord, name: str) -> _OpenIndex | None:
        size = os.fstat(fd).st_size
        first = os.pread(fd, _FIRST_READ, 0)
        if first[:8] != MAGIC:
            raise ValueError("not a key index file")
        (header_len,) = struct.unpack_from("<I", first, 8)
        header = json.loads(first[12 : 12 + header_len])
        if header.get("format") != FORMAT or header.get("hash") != HASH_NAME or header.get("columns") != list(INDEXED_COLUMNS):
            raise ValueError("unsupported index format")
        expected_files = {f.table: f.sha256 for f in record.files}
        if (header["first_seq"], header["last_seq"]) != (record.first_seq, record.last_seq) or header["files"] != expected_files:
            self.problems.append(f"{name}: built from other files than the manifest lists; the segment is scanned instead")
            return None
        bits, count = int(header["bucket_bits"]), int(header["count"])
        if not 0 <= bits <= _MAX_BUCKET_BITS or count < 0:
            raise ValueError("bad header")
        dir_offset = 12 + header_len + (-(12 + header_len) % 4)
        dir_bytes = 4 * ((1 << bits) + 1)
        fps_offset = dir_offset + dir_bytes
        if size != fps_offset + 4 * count:
            raise ValueError(f"size {size} does not match its header (torn write?)")
        raw = first[dir_offset : dir_offset + dir_bytes]
        if len(raw) < dir_bytes:
            raw = os.pread(fd, dir_bytes, dir_offset)
        directory = np.frombuffer(raw, dtype="<u4")
        if directory[-1] != count or np.any(np.diff(directory.astype(np.int64)) < 0):
            raise ValueError("bucket directory is inconsistent")
        return _OpenIndex(record, fd, bits, count, directory, fps_offset)

    def segments_for(self, column: str, value: str) -> tuple[list[SegmentRecord], list[SegmentRecord]]:
        """(segments whose index says the key may be there, segments without a usable index)."""
        if column not in INDEXED_COLUMNS:
            raise ValueError(f"{column!r} is not indexed; the indexed columns are {', '.join(INDEXED_COLUMNS)}")
        fp = key_fingerprint(column, value)
        maybe = []
        for ix in self._indexes:
            bucket = fp >> (32 - ix.bits) if ix.bits else 0
            lo, hi = int(ix.directory[bucket]), int(ix.directory[bucket + 1])
            if hi <= lo:
                continue
            found = np.frombuffer(os.pread(ix.fd, 4 * (hi - lo), ix.fps_offset + 4 * lo), dtype="<u4")
            if len(found) == hi - lo and fp in found:
                maybe.append(ix.record)
        return maybe, list(self.unindexed)

    @property
    def indexed(self) -> int:
        return len(self._indexes)

    def close(self) -> None:
        for ix in self._indexes:
            os.close(ix.fd)
        self._indexes = []

    def __enter__(self) -> "KeyIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
