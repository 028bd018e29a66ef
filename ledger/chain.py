"""The HMAC chain and the per-entry hash it shares with the Merkle tree.

    leaf_i = SHA-256(0x00 || canonical_i)                      (an RFC 6962 leaf hash)
    mac_i  = HMAC-SHA256(key[key_id_i], mac_{i-1} || leaf_i),  mac_{-1} = 32 zero bytes

`canonical_i` (ledger/encoding.py) starts with the ledger id and holds the table name,
sequence number, timestamp, actor and key id, so a leaf can be neither moved nor
reinterpreted, and a Merkle tree over the same leaf hashes needs no second hash per entry.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

GENESIS_PREV = bytes(32)
_BLOCK = 64
_sha256 = hashlib.sha256


class ChainMac:
    """HMAC-SHA256 with the key schedule done once (RFC 2104), for millions of short
    messages; equal to hmac.new(key, prev + leaf, sha256).digest()."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes):
        if len(key) > _BLOCK:
            key = _sha256(key).digest()
        key = key.ljust(_BLOCK, b"\x00")
        self._inner = _sha256(bytes(b ^ 0x36 for b in key))
        self._outer = _sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, prev: bytes, leaf: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(prev)
        inner.update(leaf)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def chain(self, prev: bytes, leaves: Sequence[bytes]) -> list[bytes]:
        """MACs of consecutive entries starting after `prev`."""
        out = []
        for leaf in leaves:
            prev = self(prev, leaf)
            out.append(prev)
        return out
