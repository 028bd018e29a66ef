"""The optional C extension (ledger/_native.c), and how Arrow arrays are handed to it.

`native` is None when the extension is not built, or when MRM_LEDGER_PURE_PYTHON is set
(to test and compare the pure-Python paths, which give identical results)."""

from __future__ import annotations

import os

import pyarrow as pa

try:
    from . import _native as native
except ImportError:  # pragma: no cover - exercised where the extension is not built
    native = None
if os.environ.get("MRM_LEDGER_PURE_PYTHON"):
    native = None


# Piece kinds of ledger/_native.c (see the comment on piece_t there). A piece is
# (kind, validity or None, indices or None, offsets or None, data, array offset, width).
RAW, TAGGED, FIXED_BE, DICT = 0, 1, 2, 3


def piece_spec(piece: pa.Array) -> tuple:
    """A binary-like array as a RAW piece: row r is its bytes."""
    buffers = piece.buffers()
    if pa.types.is_fixed_size_binary(piece.type):
        return (RAW, None, None, None, buffers[1], piece.offset, piece.type.byte_width)
    return (RAW, None, None, buffers[1], buffers[2] if buffers[2] is not None else b"", piece.offset, 0)


def raw_spec(offsets: bytes | None, data: bytes, width: int = 0) -> tuple:
    """Bytes built in memory as a RAW piece: variable rows by int32 offsets, or fixed `width`."""
    return (RAW, None, None, offsets, data, 0, width)


def tagged_spec(arr: pa.Array) -> tuple:
    """A string or binary array as a TAGGED piece: the C code writes tag || u32 length || bytes."""
    validity, offsets, data = arr.buffers()
    return (TAGGED, validity if arr.null_count else None, None, offsets, data if data is not None else b"", arr.offset, 0)


def dict_spec(arr: pa.DictionaryArray) -> tuple:
    """A dictionary<int32, string> array (dictionary unsliced, without nulls) as a DICT piece."""
    dictionary = arr.dictionary
    validity, indices = arr.buffers()[:2]
    _, offsets, data = dictionary.buffers()
    return (DICT, validity if arr.null_count else None, indices, offsets, data if data is not None else b"",
            arr.offset, len(dictionary))


def fixed_be_spec(arr: pa.Array, width: int) -> tuple:
    """A little-endian fixed-width number array as a FIXED_BE piece: tag || big-endian bytes."""
    validity, data = arr.buffers()
    return (FIXED_BE, validity if arr.null_count else None, None, None, data, arr.offset, width)
