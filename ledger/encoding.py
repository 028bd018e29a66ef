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

from .native import dict_spec, fixed_be_spec, native, piece_spec, raw_spec, tagged_spec
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
#
# A column encodes to "pieces": arrays of n values whose concatenation, row by row, is the
# column's encoding. Pieces are never joined on the hashing path (ledger/hashing.py streams
# them into SHA-256), which saves copying every entry once more.
# --------------------------------------------------------------------------------------

Piece = pa.Array  # binary, string or fixed_size_binary, length n


def _fixed_size(buf: np.ndarray) -> pa.Array:
    """(n, w) uint8 matrix -> fixed_size_binary(w) array (no copy)."""
    n, w = buf.shape
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(w), n, [None, pa.py_buffer(np.ascontiguousarray(buf))])


def _header(valid: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """tag || u32 big-endian length (or count), per row."""
    out = np.empty((len(valid), 5), dtype=np.uint8)
    out[:, 0] = valid
    if not valid.all():
        lengths = np.where(valid, lengths, 0)
    out[:, 1:] = lengths.astype(">u4").view(np.uint8).reshape(-1, 4)
    return _fixed_size(out)


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
    return _fixed_size(out)


def join_pieces(pieces: list[Piece], prefix: bytes | None = None) -> pa.Array:
    """Concatenate pieces row by row into one binary array."""
    if native is not None:
        return _concat_native([piece_spec(p) for p in pieces], len(pieces[0]), prefix)
    parts = [p if pa.types.is_binary(p.type) else p.cast(pa.binary()) for p in pieces]
    if prefix is not None:
        parts.insert(0, pa.scalar(prefix, pa.binary()))
    if len(parts) == 1:
        return parts[0].cast(pa.binary())
    return pc.binary_join_element_wise(*parts, b"")


def _concat_native(specs: list[tuple], n: int, prefix: bytes | None = None) -> pa.Array:
    """Rows of the C extension's pieces, concatenated, after `prefix`, into a binary array."""
    if prefix is not None:
        specs = [raw_spec(None, prefix * n, len(prefix)), *specs]
    offsets, data = native.concat_rows(specs, n)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def native_specs(arr: pa.Array) -> list[tuple]:
    """The C extension's pieces for one (unchunked) column: the same bytes as
    :func:`encode_pieces`, but strings and 8-byte numbers (also inside lists, maps and
    structs that have no null rows themselves) are tagged and byte-ordered in C straight
    from the Arrow buffers instead of through intermediate arrays. Only for the extension."""
    t = arr.type
    if pa.types.is_dictionary(t):
        d = arr.dictionary
        if (pa.types.is_string(t.value_type) or pa.types.is_binary(t.value_type)) and pa.types.is_int32(t.index_type) \
                and d.offset == 0 and d.null_count == 0:
            return [dict_spec(arr)]
        return native_specs(arr.cast(t.value_type))
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return [tagged_spec(arr)]
    if pa.types.is_int64(t) or pa.types.is_float64(t) or (pa.types.is_timestamp(t) and t.bit_width == 64):
        return [fixed_be_spec(arr, 8)]
    if pa.types.is_struct(t) and arr.null_count == 0:
        present = raw_spec(None, PRESENT * len(arr), 1)
        return [present, *(s for i in range(t.num_fields) for s in native_specs(arr.field(i)))]
    if (pa.types.is_map(t) or pa.types.is_list(t)) and arr.null_count == 0:
        # Row r is children offsets[r]..offsets[r+1], contiguous once the children are
        # joined (in C): slice the joined bytes per row, no copy.
        offsets = np.asarray(arr.offsets, dtype=np.int64)
        children = arr.values  # ignores the array's slice offset, exactly as `offsets` index into it
        child_offsets, data = native.concat_rows(native_specs(children), len(children))
        row_offsets = np.ascontiguousarray(np.frombuffer(child_offsets, dtype=np.int32)[offsets], dtype=np.int32)
        header = _header(np.ones(len(arr), dtype=np.uint8), np.diff(offsets))
        return [piece_spec(header), raw_spec(row_offsets, data)]
    return [piece_spec(p) for p in encode_pieces(arr)]


def table_native_specs(spec: TableSpec, table: pa.Table | pa.RecordBatch) -> list[tuple]:
    """:func:`native_specs` of every encoded column of `table`, in order. A record batch's
    columns are used as they are; a table's are combined (copied) into one chunk each."""
    columns = [table.column(c.name) for c in spec.encoded_columns]
    return [s for col in columns for s in native_specs(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)]


def encode_pieces(arr: pa.Array) -> list[Piece]:
    """Per-row canonical value encodings of one (unchunked) Arrow array, as pieces."""
    t = arr.type
    if pa.types.is_dictionary(t):  # as verification may read low-cardinality strings
        return encode_pieces(arr.cast(t.value_type))
    if pa.types.is_timestamp(t):
        return [_fixed(arr.cast(pa.int64()), ">i8", 8)]
    if pa.types.is_int64(t):
        return [_fixed(arr, ">i8", 8)]
    if pa.types.is_float64(t):
        return [_fixed(arr, ">f8", 8)]
    if pa.types.is_boolean(t):
        return [_fixed(arr.cast(pa.uint8()), "u1", 1)]
    if pa.types.is_string(t) or pa.types.is_binary(t):
        valid = _validity(arr)
        lengths = np.asarray(pc.binary_length(arr).fill_null(0), dtype=np.int64)
        values = arr.fill_null("" if pa.types.is_string(t) else b"") if arr.null_count else arr
        return [_header(valid, lengths), values]
    if pa.types.is_map(t) or pa.types.is_list(t):
        valid = _validity(arr)
        offsets = np.asarray(arr.offsets, dtype=np.int64)
        # `values` ignores the array's slice offset, exactly as `offsets` index into it;
        # for a map it is the struct{key, value} of all entries.
        children = join_pieces(encode_pieces(arr.values))
        if arr.null_count:
            lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), children, mask=pa.array(valid == 0))
            joined = pc.binary_join(lists, b"").fill_null(b"")
        else:
            # Row r is children r_start..r_end, contiguous in the children's data: no copy.
            child_offsets = np.frombuffer(children.buffers()[1], dtype=np.int32, count=len(children) + 1, offset=4 * children.offset)
            row_offsets = np.ascontiguousarray(child_offsets[offsets], dtype=np.int32)
            joined = pa.Array.from_buffers(pa.binary(), len(arr), [None, pa.py_buffer(row_offsets), children.buffers()[2]])
        return [_header(valid, np.diff(offsets)), joined]
    if pa.types.is_struct(t):
        valid = _validity(arr)
        pieces = [_fixed_size(valid.reshape(-1, 1))]
        for i in range(t.num_fields):
            child = arr.field(i)
            if arr.null_count:
                child = pc.if_else(pa.array(valid.astype(bool)), child, pa.nulls(len(child), child.type))
            pieces.extend(encode_pieces(child))
        return pieces
    raise TypeError(f"no canonical encoding for {t}")


def table_pieces(spec: TableSpec, table: pa.Table) -> list[Piece]:
    """Pieces of every encoded column of `table` (in `spec`'s schema), in order."""
    pieces: list[Piece] = []
    for c in spec.encoded_columns:
        pieces.extend(encode_pieces(table.column(c.name).combine_chunks()))
    return pieces


def encode_table(spec: TableSpec, ledger_id: bytes, table: pa.Table) -> pa.Array:
    """Canonical bytes of every row of `table` (already in `spec`'s schema)."""
    if len(table) == 0:
        return pa.array([], pa.binary())
    if native is not None:
        return _concat_native(table_native_specs(spec, table), len(table), entry_prefix(ledger_id))
    return join_pieces(table_pieces(spec, table), prefix=entry_prefix(ledger_id))
