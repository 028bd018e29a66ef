"""Canonical entry encoding: the exact bytes a ledger entry's MAC and Merkle leaf cover.

One byte string per entry, in the spirit of RFC 6962's MerkleTreeLeaf (a length-prefixed
binary structure) rather than text, so that it can be rebuilt column-wise from the Parquet
data at verification speed. Layout (format version 1)::

    entry   = "MRM" 0x01 || ledger_id (16 bytes) || value(c) for every column c but `mac`,
              in the table's schema order (ledger/schema.py)
    value   = tag || payload          tag 0x00 = null, 0x01 = present
    int64, timestamp (microseconds since the Unix epoch, UTC)
            : 8 bytes, big-endian two's complement        (zeros when null)
    float64 : 8 bytes, IEEE 754 binary64 big-endian      (zeros when null)
    bool    : 1 byte, 0x00 or 0x01                        (zero when null)
    string  : u32 big-endian byte length || UTF-8 bytes   (length 0 when null)
    list, map
            : u32 big-endian element count || value(e) for each element (count 0 when null);
              a map is a list of struct{key, value} in stored order
    struct  : value(f) for each field in declared order (fields encoded as null when the
              struct is null)

The `details` column holds RFC 8785 (JCS) canonical JSON text and is encoded as a string,
so its exact text is covered: editing `1` to `1.0` or re-normalising Unicode changes the
bytes. Test vectors: tests/test_encoding.py and docs/encoding.md.

Two implementations of this one layout exist on purpose: `encode_row` for a single entry as
it is written (no Arrow round trip on the hot path) and `encode_table` for whole columns as
they are verified. Tests hold them equal on random entries.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .schema import FORMAT_VERSION, TableSpec

MAGIC = b"MRM" + bytes([FORMAT_VERSION])
NULL = b"\x00"
PRESENT = b"\x01"

_pack_q = struct.Struct(">q").pack
_pack_d = struct.Struct(">d").pack
_pack_I = struct.Struct(">I").pack

_NULL_FIXED8 = NULL + bytes(8)
_NULL_BOOL = NULL + bytes(1)
_NULL_VAR = NULL + bytes(4)


def entry_prefix(ledger_id: bytes) -> bytes:
    if len(ledger_id) != 16:
        raise ValueError("ledger id must be 16 bytes")
    return MAGIC + ledger_id


# --------------------------------------------------------------------------------------
# Scalar encoder: one normalised row (see ledger/normalize.py) at a time.
# --------------------------------------------------------------------------------------

Encoder = Callable[[Any], bytes]


def _scalar_encoder(type_: pa.DataType) -> Encoder:
    if pa.types.is_int64(type_) or pa.types.is_timestamp(type_):
        return lambda v: _NULL_FIXED8 if v is None else PRESENT + _pack_q(v)
    if pa.types.is_float64(type_):
        return lambda v: _NULL_FIXED8 if v is None else PRESENT + _pack_d(v)
    if pa.types.is_boolean(type_):
        return lambda v: _NULL_BOOL if v is None else (b"\x01\x01" if v else b"\x01\x00")
    if pa.types.is_string(type_):

        def enc_str(v: str | None) -> bytes:
            if v is None:
                return _NULL_VAR
            b = v.encode("utf-8")
            return PRESENT + _pack_I(len(b)) + b

        return enc_str
    if pa.types.is_map(type_):
        entry = _scalar_encoder(pa.struct([("key", type_.key_type), ("value", type_.item_type)]))

        def enc_map(v: Sequence[tuple[str, Any]] | None) -> bytes:
            if v is None:
                return _NULL_VAR
            return PRESENT + _pack_I(len(v)) + b"".join(entry({"key": k, "value": x}) for k, x in v)

        return enc_map
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        item = _scalar_encoder(type_.value_type)

        def enc_list(v: Sequence[Any] | None) -> bytes:
            if v is None:
                return _NULL_VAR
            return PRESENT + _pack_I(len(v)) + b"".join(item(x) for x in v)

        return enc_list
    if pa.types.is_struct(type_):
        fields = [(type_.field(i).name, _scalar_encoder(type_.field(i).type)) for i in range(type_.num_fields)]

        def enc_struct(v: Mapping[str, Any] | None) -> bytes:
            if v is None:
                return NULL + b"".join(enc(None) for _, enc in fields)
            return PRESENT + b"".join(enc(v.get(name)) for name, enc in fields)

        return enc_struct
    raise TypeError(f"no canonical encoding for {type_}")


class RowEncoder:
    """Encodes normalised rows of one table; built once per table."""

    def __init__(self, spec: TableSpec, ledger_id: bytes):
        self.prefix = entry_prefix(ledger_id)
        self._columns = [(c.name, _scalar_encoder(c.type)) for c in spec.encoded_columns]

    def __call__(self, row: Mapping[str, Any]) -> bytes:
        return self.prefix + b"".join(enc(row.get(name)) for name, enc in self._columns)


def encode_row(spec: TableSpec, ledger_id: bytes, row: Mapping[str, Any]) -> bytes:
    return RowEncoder(spec, ledger_id)(row)


# --------------------------------------------------------------------------------------
# Column-wise encoder: the same bytes for every row of an Arrow table, in C++ loops.
# --------------------------------------------------------------------------------------


def _binary(buf: np.ndarray) -> pa.Array:
    """(n, w) uint8 matrix -> binary array of n w-byte values."""
    n, w = buf.shape
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(w), n, [None, pa.py_buffer(np.ascontiguousarray(buf))])
    return fixed.cast(pa.binary())


def _header(valid: np.ndarray, lengths: np.ndarray) -> pa.Array:
    out = np.empty((len(valid), 5), dtype=np.uint8)
    out[:, 0] = valid
    out[:, 1:] = np.where(valid, lengths, 0).astype(">u4").view(np.uint8).reshape(-1, 4)
    return _binary(out)


def _join(*parts: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(*parts, b"")


def _validity(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=np.uint8)
    return np.asarray(arr.is_valid(), dtype=np.uint8)


def _fixed(arr: pa.Array, np_type: str, width: int) -> pa.Array:
    valid = _validity(arr)
    values = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False))
    out = np.empty((len(arr), width + 1), dtype=np.uint8)
    out[:, 0] = valid
    out[:, 1:] = values.astype(np_type).view(np.uint8).reshape(-1, width)
    return _binary(out)


def encode_array(arr: pa.Array) -> pa.Array:
    """Per-row canonical value encodings of one (unchunked) Arrow array."""
    t = arr.type
    if pa.types.is_timestamp(t):
        return _fixed(arr.cast(pa.int64()), ">i8", 8)
    if pa.types.is_int64(t):
        return _fixed(arr, ">i8", 8)
    if pa.types.is_float64(t):
        return _fixed(arr, ">f8", 8)
    if pa.types.is_boolean(t):
        return _fixed(arr.cast(pa.uint8()), "u1", 1)
    if pa.types.is_string(t) or pa.types.is_binary(t):
        valid = _validity(arr)
        lengths = np.asarray(pc.binary_length(arr).fill_null(0), dtype=np.int64)
        values = arr.cast(pa.binary()).fill_null(b"")
        return _join(_header(valid, lengths), values)
    if pa.types.is_map(t) or pa.types.is_list(t):
        valid = _validity(arr)
        offsets = np.asarray(arr.offsets, dtype=np.int64)
        counts = np.diff(offsets)
        # `values` ignores the array's slice offset, exactly as `offsets` index into it;
        # for a map it is the struct{key, value} of all entries.
        encoded_children = encode_array(arr.values)
        mask = pa.array(valid == 0) if arr.null_count else None
        lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), encoded_children, mask=mask)
        joined = pc.binary_join(lists, b"").fill_null(b"")
        return _join(_header(valid, counts), joined)
    if pa.types.is_struct(t):
        valid = _validity(arr)
        fields = []
        for i in range(t.num_fields):
            child = arr.field(i)
            if arr.null_count:
                child = pc.if_else(pa.array(valid.astype(bool)), child, pa.nulls(len(child), child.type))
            fields.append(encode_array(child))
        tags = _binary(valid.reshape(-1, 1))
        return _join(tags, *fields)
    raise TypeError(f"no canonical encoding for {t}")


def encode_table(spec: TableSpec, ledger_id: bytes, table: pa.Table) -> pa.Array:
    """Canonical bytes of every row of `table` (already in `spec`'s schema)."""
    prefix = pa.scalar(entry_prefix(ledger_id), pa.binary())
    columns = [encode_array(table.column(c.name).combine_chunks()) for c in spec.encoded_columns]
    if len(table) == 0:
        return pa.array([], pa.binary())
    return _join(prefix, *columns)
