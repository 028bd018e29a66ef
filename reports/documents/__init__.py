"""Documents built from a ledger: each rests on one signed checkpoint, is checked before it
is built, and carries its evidence and proofs inside the PDF.

- ``basis``       what a document rests on: :class:`TrustPlan` (how the ledger is checked),
                  :func:`establish_basis` (check, choose the checkpoint, bound the entries),
                  :func:`prove_shown_entries` (inclusion proofs, checked offline)
- ``parts``       what every document shares: cover verdict, evidence attachments, the
                  integrity section, the FAILED section, the method and how-to-verify appendix
- ``decision``    the decision dossier for one disputed decision
- ``validation``  the model validation history of one slot (SR 11-7)
- ``evidence``    the examiner evidence pack: one regulation pack over a period
- ``written``     render, sign and write one document

    plan = TrustPlan.hmac_chain(keyring)
    written = write_decision_report("audit", DecisionQuery(request_id="req-42"), plan, keyring.signer)
    written = write_validation_report("audit", ValidationScope("product_reco"), plan, keyring.signer)
    written = write_evidence_report("audit", EvidenceScope("kfcpa", "2026-01-01", "2026-07-01"), plan, keyring.signer)
"""

from __future__ import annotations

from .basis import (
    EvidenceBasis,
    LedgerVerificationFailed,
    NoUsableCheckpoint,
    TrustPlan,
    VerificationMethod,
    establish_basis,
    prove_shown_entries,
)
from .decision import DecisionQuery, build_decision_report, write_decision_report
from .evidence import EvidenceScope, Limits, build_evidence_report, write_evidence_report
from .parts import DocumentInfo
from .validation import ValidationScope, build_validation_report, write_validation_report
from .written import WrittenReport, write_report

__all__ = [
    "DecisionQuery",
    "DocumentInfo",
    "EvidenceBasis",
    "EvidenceScope",
    "LedgerVerificationFailed",
    "Limits",
    "NoUsableCheckpoint",
    "TrustPlan",
    "ValidationScope",
    "VerificationMethod",
    "WrittenReport",
    "build_decision_report",
    "build_evidence_report",
    "build_validation_report",
    "establish_basis",
    "prove_shown_entries",
    "write_decision_report",
    "write_evidence_report",
    "write_report",
    "write_validation_report",
]
