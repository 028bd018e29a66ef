"""Canonical bytes and digests: RFC 8785 JSON, so one value has one byte string and one hash.

``json.dumps(sort_keys=True)`` is not canonical (1.0 vs 1, 5e-07 vs 5e-7, NaN accepted); the
ledger stores ``details`` as RFC 8785 text, so digests taken here match what it stores.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes; NaN, infinities and non-JSON types are refused."""
    return rfc8785.dumps(value)


def sha256_hex(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()
