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


def piece_spec(piece: pa.Array) -> tuple:
    """(offsets or None, data, array offset, fixed width) buffers of a binary-like array."""
    buffers = piece.buffers()
    if pa.types.is_fixed_size_binary(piece.type):
        return (None, buffers[1], piece.offset, piece.type.byte_width)
    return (buffers[1], buffers[2] if buffers[2] is not None else b"", piece.offset, 0)
