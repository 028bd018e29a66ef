"""Forensic reading of a ledger: read-only SQL, and the full record of one decision.

- ``session``      :class:`LedgerSQL`, the read-only DuckDB session behind `mrm sql`
- ``views``        the views and macros it defines, documented once
- ``reconstruct``  :class:`Reconstructor` / :func:`reconstruct` -> :class:`DecisionRecord`
- ``attestation``  what answers rest on; :class:`Verifier`: HMAC chain or signed checkpoints
- ``source``       the snapshot the answers are read from, bounded by what was verified
- ``evidence``     fast point lookups (side index + Parquet row groups and Bloom filters)
"""

from .attestation import Attestation, HmacChainVerifier, IntegrityFailure, SignedCheckpointVerifier, Verification, Verifier
from .errors import Ambiguous, ForensicsError, NotFound, QueryError, QueryRefused
from .reconstruct import DecisionRecord, Reconstructor, reconstruct
from .session import LedgerSQL

__all__ = [
    "Ambiguous",
    "Attestation",
    "DecisionRecord",
    "ForensicsError",
    "HmacChainVerifier",
    "IntegrityFailure",
    "LedgerSQL",
    "NotFound",
    "QueryError",
    "QueryRefused",
    "Reconstructor",
    "SignedCheckpointVerifier",
    "Verification",
    "Verifier",
    "reconstruct",
]
