"""What the answers rest on: which entries were read, and whether they were verified first.

Verification is a pluggable callable (:class:`Verifier`) that reports a
:class:`Verification`: how far the check vouches for the ledger, and what failed. Two exist:

- :class:`HmacChainVerifier`: every MAC and link with the HMAC keyring (``verify_ledger``);
- :class:`SignedCheckpointVerifier`: the signed Merkle checkpoints, with public keys only
  (``verify_public``), what an examiner without the HMAC key runs. It vouches for the
  entries up to the newest checkpoint; newer ones are left out of the answers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

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


class SignedCheckpointVerifier:
    """Checkpoints, signatures, Merkle roots and files, checked with trusted public keys."""

    method = "signed-checkpoint"

    def __init__(self, verifiers: Sequence[Any], *, state_path: str | os.PathLike[str] | None = None, workers: int | None = None):
        self.verifiers = list(verifiers)
        self.state_path = state_path
        self.workers = workers

    @classmethod
    def from_file(cls, public_key_file: str | os.PathLike[str], **options: Any) -> "SignedCheckpointVerifier":
        from ledger.keys import load_verifiers

        return cls(load_verifiers(public_key_file), **options)

    def __call__(self, path: Path) -> Verification:
        from ledger.public import verify_public
        from ledger.storage import Layout, read_manifest

        report = verify_public(path, self.verifiers, state_path=self.state_path, workers=self.workers)
        checkpoint = report.checkpoint
        problems = tuple(str(p) for p in report.problems) + tuple(f"... and {n} more {kind} problem(s)" for kind, n in report.suppressed.items())
        if not report.ok or not checkpoint:
            summary = f"FAILED: {len(report.problems)} problem(s); first bad sequence number {report.first_bad_seq}"
            return Verification(False, self.method, 0, -1, summary, problems, report)
        size = int(checkpoint["size"])
        records, _ = read_manifest(Layout(Path(path)))
        segments = sum(1 for r in records if r.last_seq < size)  # checkpoints are cut at segment ends
        summary = (
            f"checkpoint of {size:,} entries signed {checkpoint['time']} by {', '.join(checkpoint['signed_by'])}, "
            f"root {checkpoint['root']}; every signature, root and file checked with public keys"
        )
        return Verification(True, self.method, segments, size - 1, summary, problems, report)


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
