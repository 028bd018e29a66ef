"""Forensic reading of a ledger: read-only SQL, and the full record of one decision.

- ``session``      :class:`LedgerSQL`, the read-only DuckDB session behind `mrm sql`
- ``views``        the views and macros it defines, documented once
- ``reconstruct``  :class:`Reconstructor` / :func:`reconstruct` -> :class:`DecisionRecord`
- ``attestation``  what answers rest on; :class:`Verifier`: HMAC chain or signed checkpoints
- ``source``       the snapshot the answers are read from, bounded by what was verified
- ``evidence``     fast point lookups (side index + Parquet row groups and Bloom filters)
- ``registry``     the model registry as tables, derived by :mod:`gates.registry`
- ``retention``    what the ledger's store keeps under a retention lock, as tables
"""

from __future__ import annotations

import importlib
from typing import Any

# Attributes load their module on first use, so importing a light submodule (errors,
# attestation) does not pull in DuckDB: the `mrm` command line stays quick to start.
_EXPORTS = {
    "Attestation": "attestation",
    "HmacChainVerifier": "attestation",
    "IntegrityFailure": "attestation",
    "SignedCheckpointVerifier": "attestation",
    "Verification": "attestation",
    "Verifier": "attestation",
    "Ambiguous": "errors",
    "ForensicsError": "errors",
    "NotFound": "errors",
    "QueryError": "errors",
    "QueryRefused": "errors",
    "DecisionRecord": "reconstruct",
    "Reconstructor": "reconstruct",
    "reconstruct": "reconstruct",
    "LedgerSQL": "session",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
