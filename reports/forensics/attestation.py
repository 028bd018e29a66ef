"""What the answers rest on: which entries were read, and whether they were verified first.

Verification is a pluggable callable (:class:`Verifier`): today the HMAC chain check of
``ledger.verify_ledger`` with the keyring; signed checkpoints verified with a public key can
replace it without touching the readers, as long as they report the same
:class:`Verification` (how far the check vouches for the ledger, and what failed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ledger import Keyring, verify_ledger


@dataclass(frozen=True)
class Verification:
    """A verifier's verdict on a ledger, as of the instant it looked."""

    ok: bool
    method: str  # e.g. "hmac-chain"; a checkpoint verifier would say "signed-checkpoint"
    segments: int  # sealed segments checked: the first `segments` lines of the manifest
    through_seq: int  # last sequence number vouched for (-1: none)
    summary: str  # one line for people
    problems: tuple[str, ...] = ()
    detail: Any = field(default=None, compare=False, repr=False)  # the verifier's own report


class Verifier(Protocol):
    method: str

    def __call__(self, path: Path) -> Verification: ...


class HmacChainVerifier:
    """Every MAC, link, file and sequence number, checked with the ledger's HMAC keys."""

    method = "hmac-chain"

    def __init__(self, keyring: Keyring, *, workers: int | None = None):
        self.keyring = keyring
        self.workers = workers

    def __call__(self, path: Path) -> Verification:
        report = verify_ledger(path, self.keyring, workers=self.workers)
        through = report.entries - 1  # with no problem, sequence numbers run 0..entries-1
        if report.ok:
            summary = f"{report.entries:,} entries in {report.segments} segments, every MAC, link and file (keys {', '.join(report.key_ids)})"
        else:
            summary = f"FAILED: {len(report.problems)} problem(s); first bad sequence number {report.first_bad_seq}"
        problems = tuple(str(p) for p in report.problems) + tuple(
            f"... and {n} more {kind} problem(s)" for kind, n in report.suppressed.items()
        )
        return Verification(report.ok, self.method, report.segments, through if report.ok else -1, summary, problems, report)


class IntegrityFailure(Exception):
    """Verification found problems: nothing is answered from this ledger."""

    def __init__(self, verification: Verification):
        self.verification = verification
        super().__init__(f"verification ({verification.method}) failed: {verification.summary}")


class LedgerChanged(Exception):
    """The ledger changed under verification in a way that leaves nothing verified to read."""


@dataclass(frozen=True)
class Attestation:
    """The entries the answers rest on, and how (or whether) they were checked in this run."""

    ledger_id: str
    path: str
    through_seq: int  # answers use entries with seq <= through_seq
    head_mac: str | None  # MAC of entry through_seq, hex
    verification: Verification | None  # None: not verified in this run

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.ok

    def line(self) -> str:
        mac = f", mac {self.head_mac[:16]}..." if self.head_mac else ""
        if self.verified:
            v = self.verification
            return f"verified ({v.method}): answers rest on entries 0-{self.through_seq}{mac}; {v.summary}"
        return (
            f"NOT VERIFIED in this run: answers rest on entries 0-{self.through_seq}{mac} as read; "
            "pass --verify (with the keyring) to check the chain first"
        )

    def to_dict(self) -> dict:
        v = self.verification
        return {
            "ledger_id": self.ledger_id,
            "path": self.path,
            "through_seq": self.through_seq,
            "head_mac": self.head_mac,
            "verified": self.verified,
            "method": v.method if v else None,
            "summary": v.summary if v else "not verified in this run",
        }


def resolve(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(path))
