"""Leaf hashes, chain MACs and Merkle node hashes in bulk.

The C extension ledger/_native.c does these loops over Arrow buffers with OpenSSL and
without the GIL; when it is not built, the same results come from hashlib here (slower,
never different: tests/test_hashing.py holds both to the same outputs).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from .chain import ChainMac
from .encoding import entry_prefix, join_pieces, table_native_specs, table_pieces
from .schema import TableSpec

from .native import native as _native

NATIVE = _native is not None
DIGEST = 32


def table_leaf_hashes(spec: TableSpec, ledger_id: bytes, table: pa.Table, *, native: bool | None = None) -> bytes:
    """RFC 6962 leaf hashes of every row, concatenated (32 bytes each)."""
    if len(table) == 0:
        return b""
    if (NATIVE if native is None else native) and _native is not None:
        # Batch by batch (a Parquet file reads as one batch per row group): no copy to
        # combine a file's chunks into one.
        prefix = entry_prefix(ledger_id)
        return b"".join(_native.leaf_hashes(prefix, table_native_specs(spec, batch), batch.num_rows)
                        for batch in table.to_batches() if batch.num_rows)
    rows = join_pieces(table_pieces(spec, table), prefix=b"\x00" + entry_prefix(ledger_id)).to_pylist()
    sha256 = hashlib.sha256
    return b"".join([sha256(r).digest() for r in rows])


def mac_chain(key: bytes, prev: bytes, leaves: bytes, *, native: bool | None = None) -> bytes:
    """MACs of consecutive entries after the one whose MAC is `prev`."""
    if (NATIVE if native is None else native) and _native is not None:
        return _native.hmac_chain(key, prev, leaves)
    mac = ChainMac(key)
    return b"".join(mac.chain(prev, [leaves[i : i + DIGEST] for i in range(0, len(leaves), DIGEST)]))


def mac_links(key: bytes, prevs: bytes, leaves: bytes, *, native: bool | None = None) -> bytes:
    """HMAC(key, prevs[i] || leaves[i]) for each i, concatenated."""
    if (NATIVE if native is None else native) and _native is not None:
        return _native.hmac_links(key, prevs, leaves)
    mac = ChainMac(key)
    return b"".join(mac(prevs[i : i + DIGEST], leaves[i : i + DIGEST]) for i in range(0, len(leaves), DIGEST))


def node_hashes(level: bytes, *, native: bool | None = None) -> bytes:
    """SHA-256(0x01 || left || right) of each adjacent pair; an odd last hash is left out."""
    if (NATIVE if native is None else native) and _native is not None:
        return _native.node_hashes(level)
    sha256 = hashlib.sha256
    pairs = len(level) // (2 * DIGEST)
    return b"".join(sha256(b"\x01" + level[2 * i * DIGEST : (2 * i + 2) * DIGEST]).digest() for i in range(pairs))


def as_rows(digests: bytes) -> np.ndarray:
    """Concatenated 32-byte digests as an (n, 32) uint8 view."""
    return np.frombuffer(digests, dtype=np.uint8).reshape(-1, DIGEST)


def segment_leaves(tables: dict[str, pa.Table], ledger_id: bytes) -> tuple[np.ndarray, bytes]:
    """Sequence numbers (sorted) and the packed leaf hashes of rows from several tables,
    in sequence order: the Merkle tree's leaves for one segment."""
    from .schema import TABLES

    seqs, leaves = [], []
    for name, table in tables.items():
        if len(table):
            seqs.append(table.column("seq").to_numpy())
            leaves.append(as_rows(table_leaf_hashes(TABLES[name], ledger_id, table)))
    if not seqs:
        return np.empty(0, dtype=np.int64), b""
    all_seqs = np.concatenate(seqs)
    order = np.argsort(all_seqs, kind="stable")
    return all_seqs[order], np.concatenate(leaves)[order].tobytes()
