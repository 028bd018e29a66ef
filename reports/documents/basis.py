"""What a ledger document rests on: one signed checkpoint, and the check run before rendering.

Every document built from a ledger makes claims about entries ``0 .. size-1`` of one signed
checkpoint, and nothing newer: that is what an examiner can check with the public key alone
(the checkpoint note, and inclusion proofs against its root, travel inside the PDF). Before
anything is read, the ledger is checked by one of three methods, and the cover says which:

``hmac-chain``         every MAC, link, sequence number and file, with the institution's
                       secret HMAC key (:func:`ledger.verify_ledger`);
``signed-checkpoint``  every checkpoint signature, Merkle root and file, with public keys
                       only (:func:`ledger.public.verify_public`);
``inclusion-proofs``   no scan of the ledger: only the entries the document shows are
                       proven to be in the signed tree (O(log n) each). Fast at any size,
                       but it says nothing about the entries it does not show, so the cover
                       reports it as a WARNING, never as a pass of the whole ledger.

A ledger that fails its check is refused (:class:`LedgerVerificationFailed`) unless the
caller explicitly allows it, in which case the document is still built, from the ledger as
read, and carries a FAILED verdict on its cover and as its first section.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from forensics.attestation import (
    Attestation,
    HmacChainVerifier,
    IntegrityFailure,
    SignedCheckpointVerifier,
    Verification,
    resolve,
)
from forensics.source import Source, open_source
from ledger.checkpoints import parse as parse_ledger_checkpoint
from ledger.checkpoints import stored_notes
from ledger.errors import IntegrityError
from ledger.keys import Keyring
from ledger.note import Checkpoint, NoteError, Verifier, parse_note
from ledger.proofs import ProofRequestError, prove_entries, verify_proof
from ledger.public import open_ledger_checkpoint
from ledger.storage import Layout, read_meta

from ..errors import ReportError
from ..model import CheckpointRef

__all__ = [
    "AnchorCheckpoint",
    "EvidenceBasis",
    "LedgerCheck",
    "LedgerVerificationFailed",
    "NoUsableCheckpoint",
    "ProofCheck",
    "TrustPlan",
    "VerificationMethod",
    "establish_basis",
    "prove_shown_entries",
]


class VerificationMethod(str, enum.Enum):
    HMAC_CHAIN = "hmac-chain"
    SIGNED_CHECKPOINTS = "signed-checkpoint"
    INCLUSION_PROOFS = "inclusion-proofs"

    @property
    def title(self) -> str:
        return _METHOD_TITLES[self]

    @property
    def full(self) -> bool:
        """Whether the method checks the whole ledger (not only the entries shown)."""
        return self is not VerificationMethod.INCLUSION_PROOFS


_METHOD_TITLES = {
    VerificationMethod.HMAC_CHAIN: "HMAC chain, with the institution's secret key (verify_ledger)",
    VerificationMethod.SIGNED_CHECKPOINTS: "signed checkpoints, with public keys only (verify_public)",
    VerificationMethod.INCLUSION_PROOFS: "inclusion proofs of the entries shown, with public keys only",
}


class LedgerVerificationFailed(ReportError):
    """The ledger did not verify and the caller did not allow reporting on it anyway."""

    def __init__(self, check: "LedgerCheck") -> None:
        self.check = check
        super().__init__(f"the ledger does not verify ({check.method.value}): {check.summary}")


class NoUsableCheckpoint(ReportError):
    """No checkpoint signed by a trusted key covers the verified entries: a document would
    have nothing an examiner could check it against."""


@dataclass(frozen=True)
class TrustPlan:
    """How the ledger is checked before a document is built, and which public keys are
    trusted for its checkpoints (and, later, for the document's own signature)."""

    method: VerificationMethod
    public_keys: tuple[Verifier, ...]
    keyring: Keyring | None = field(default=None, repr=False)
    allow_failed: bool = False
    workers: int | None = None

    def __post_init__(self) -> None:
        if not self.public_keys:
            raise ReportError("no trusted public key: a document must rest on a checkpoint signed by a key the reader can check")
        if self.method is VerificationMethod.HMAC_CHAIN and self.keyring is None:
            raise ReportError("HMAC-chain verification needs the keyring")

    @classmethod
    def hmac_chain(cls, keyring: Keyring, *, allow_failed: bool = False, workers: int | None = None) -> "TrustPlan":
        """Verify with the secret HMAC key; trust the checkpoint keys the keyring has held."""
        return cls(VerificationMethod.HMAC_CHAIN, tuple(keyring.verifiers()), keyring, allow_failed, workers)

    @classmethod
    def signed_checkpoints(cls, public_keys: Sequence[Verifier], *, allow_failed: bool = False,
                           workers: int | None = None) -> "TrustPlan":
        return cls(VerificationMethod.SIGNED_CHECKPOINTS, tuple(public_keys), None, allow_failed, workers)

    @classmethod
    def inclusion_proofs(cls, public_keys: Sequence[Verifier], *, allow_failed: bool = False) -> "TrustPlan":
        return cls(VerificationMethod.INCLUSION_PROOFS, tuple(public_keys), None, allow_failed)


@dataclass(frozen=True)
class LedgerCheck:
    """The outcome of a whole-ledger verification, as the document reports it."""

    method: VerificationMethod
    ok: bool
    summary: str
    entries: int
    segments: int
    problems: tuple[str, ...]
    report: dict[str, Any]  # the verifier's own report (path reduced to the directory name)
    elapsed_s: float


@dataclass(frozen=True)
class AnchorCheckpoint:
    """The signed checkpoint a document rests on."""

    note: bytes
    size: int
    root: bytes
    origin: str
    time: str  # as signed, RFC 3339 UTC
    signed_by: tuple[str, ...]  # trusted keys whose signatures verified

    @property
    def ref(self) -> CheckpointRef:
        return CheckpointRef.from_checkpoint(Checkpoint.from_text(parse_note(self.note).text))

    @property
    def signed_at(self) -> dt.datetime:
        return dt.datetime.strptime(self.time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class ProofCheck:
    """Inclusion proofs of the entries a document shows, checked offline as a reader would."""

    ok: bool
    document: dict[str, Any] | None  # the mrm-ledger-proof/1 document (None: could not be made)
    results: tuple[dict[str, Any], ...]  # per entry: seq, table, ok, problem
    problems: tuple[str, ...]

    @property
    def proven(self) -> int:
        return sum(1 for r in self.results if r.get("ok"))

    def result_for(self, seq: int) -> dict[str, Any] | None:
        return next((r for r in self.results if r.get("seq") == seq), None)

    def entry_for(self, seq: int) -> dict[str, Any] | None:
        if self.document is None:
            return None
        return next((e for e in self.document["entries"] if e["seq"] == seq), None)


@dataclass(frozen=True)
class EvidenceBasis:
    """A ledger snapshot bounded to one signed checkpoint, with the check it passed (or not)."""

    path: Path
    ledger_id: str
    plan: TrustPlan
    checkpoint: AnchorCheckpoint
    check: LedgerCheck | None  # None: inclusion proofs only, no whole-ledger check
    source: Source  # entries 0 .. checkpoint.size - 1, read from the listed files
    newer_entries: int  # entries the ledger holds beyond the checkpoint: not covered
    checked_at: dt.datetime

    @property
    def method(self) -> VerificationMethod:
        return self.plan.method

    @property
    def ledger_ok(self) -> bool | None:
        """True/False from the whole-ledger check; None when none was run."""
        return None if self.check is None else self.check.ok


def establish_basis(path: str | os.PathLike[str], plan: TrustPlan, *, checked_at: dt.datetime | None = None) -> EvidenceBasis:
    """Check the ledger at ``path`` as ``plan`` says, choose the checkpoint the document will
    rest on, and open the entries it covers. Raises :class:`LedgerVerificationFailed` for a
    ledger that fails its check (unless ``plan.allow_failed``) and :class:`NoUsableCheckpoint`
    when no trusted checkpoint covers the verified entries."""
    root = resolve(path)
    checked_at = checked_at or dt.datetime.now(dt.timezone.utc)
    meta = read_meta(Layout(root))
    recorder = _RecordingVerifier(plan) if plan.method.full else None
    try:
        source = open_source(root, recorder)
    except IntegrityFailure as failure:
        check = _ledger_check(plan.method, failure.verification)
        if not plan.allow_failed:
            raise LedgerVerificationFailed(check) from None
        source = open_source(root, None)  # read as is: the document will say it FAILED
    else:
        check = _ledger_check(plan.method, recorder.verification) if recorder and recorder.verification else None
    limit = source.through_seq + 1 if check is not None and check.ok else None
    checkpoint = _anchor(root, meta.ledger_id, plan.public_keys, limit)
    bounded = bound_to_checkpoint(source, checkpoint.size)
    newer = max(0, _last_seq(source) + 1 - checkpoint.size)
    return EvidenceBasis(root, meta.ledger_id, plan, checkpoint, check, bounded, newer, checked_at)


def prove_shown_entries(basis: EvidenceBasis, seqs: Sequence[int]) -> ProofCheck:
    """Inclusion proofs of ``seqs`` at the basis checkpoint, checked offline with the
    trusted public keys exactly as ``mrm verify-proof`` checks them."""
    wanted = sorted(set(seqs))
    if not wanted:
        return ProofCheck(True, None, (), ())
    try:
        document = prove_entries(basis.path, wanted, checkpoint_size=basis.checkpoint.size)
    except (ProofRequestError, IntegrityError, OSError, ValueError) as e:  # IntegrityError: a tree that disagrees with its checkpoint
        return ProofCheck(False, None, tuple({"seq": s, "ok": False, "problem": "no proof could be made"} for s in wanted),
                          (f"inclusion proofs could not be made: {e}",))
    report = verify_proof(document, basis.plan.public_keys)
    return ProofCheck(report.ok, document, tuple(report.entries), tuple(report.problems))


def bound_to_checkpoint(source: Source, size: int) -> Source:
    """``source`` reduced to entries ``0 .. size-1``. Checkpoints are cut where a segment
    ends, so this keeps whole listed files and drops the write-ahead log."""
    records = tuple(r for r in source.records if r.last_seq < size)
    covered = records[-1].last_seq + 1 if records else 0
    if covered != size:
        raise NoUsableCheckpoint(f"the checkpoint for size {size} does not end where a listed segment ends (segments cover {covered})")
    firsts = {r.first_seq for r in records}
    segment_files = {k: p for k, p in source.segment_files.items() if k[0] in firsts}
    files = {table: [p for (first, t), p in sorted(segment_files.items()) if t == table] for table in source.files}
    head_mac = records[-1].last_mac if records else None
    old = source.attestation
    attestation = Attestation(old.ledger_id, old.path, size - 1, head_mac, old.verification)
    return dataclasses.replace(source, records=records, files=files, segment_files=segment_files, unsealed={},
                               attestation=attestation)


# --------------------------------------------------------------------------- internals


class _RecordingVerifier:
    """Runs the plan's whole-ledger check for :func:`open_source` and keeps its verdict."""

    def __init__(self, plan: TrustPlan) -> None:
        if plan.method is VerificationMethod.HMAC_CHAIN:
            assert plan.keyring is not None
            self._inner: Any = HmacChainVerifier(plan.keyring, workers=plan.workers)
        else:
            self._inner = SignedCheckpointVerifier(plan.public_keys, workers=plan.workers)
        self.method = self._inner.method
        self.verification: Verification | None = None
        self.elapsed_s = 0.0

    def __call__(self, path: Path) -> Verification:
        started = time.perf_counter()
        self.verification = self._inner(path)
        self.elapsed_s = time.perf_counter() - started
        return self.verification


def _ledger_check(method: VerificationMethod, v: Verification) -> LedgerCheck:
    report = v.detail.to_dict() if v.detail is not None and hasattr(v.detail, "to_dict") else {}
    if "path" in report:  # the institution's file system layout is not part of the evidence
        report["path"] = Path(str(report["path"])).name
    return LedgerCheck(method, v.ok, v.summary, int(report.get("entries", 0)), v.segments, tuple(v.problems), report,
                       float(report.get("elapsed_s", 0.0)))


def _anchor(root: Path, ledger_id: str, keys: Sequence[Verifier], limit: int | None) -> AnchorCheckpoint:
    """The newest checkpoint signed by a trusted key whose size is within ``limit`` (the
    entries a whole-ledger check vouched for; None: any)."""
    refused: list[str] = []
    for size, note_path in reversed(stored_notes(Layout(root))):
        if limit is not None and size > limit:
            continue
        note = note_path.read_bytes()
        try:
            signed = open_ledger_checkpoint(note, keys, ledger_id)
        except NoteError as e:
            refused.append(f"size {size}: {type(e).__name__}: {e}")
            continue
        parsed = parse_ledger_checkpoint(signed.info.checkpoint)
        return AnchorCheckpoint(note, signed.size, signed.info.root, signed.info.checkpoint.origin, parsed.time,
                                signed.signed_by)
    detail = "; ".join(refused[:3]) if refused else "the ledger has no checkpoint; run `mrm checkpoint PATH`"
    raise NoUsableCheckpoint(f"{root}: no checkpoint signed by a trusted key covers the verified entries ({detail})")


def _last_seq(source: Source) -> int:
    last = source.records[-1].last_seq if source.records else -1
    for table in source.unsealed.values():
        if len(table):
            last = max(last, int(table.column("seq")[-1].as_py()))
    return max(last, source.through_seq)
