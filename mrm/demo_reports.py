"""The demo's closing step: the decision dossier of its disputed request, the validation
history of its model slot, and the examiner evidence pack of the regulation pack that fits
the demo's period, written beside the ledger. Kept apart from the scenario so any
demo (the interim synthetic stream, or the scenario that replaces it) ends the same way."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from ledger import Keyring

DEMO_INSTITUTION = "Example Bank (demo)"
DEMO_PREPARED_BY = "mrm demo"
DEMO_TIME_ZONE = "Asia/Seoul"  # the demo bank's: the dossier shows KST next to UTC for the customer
# The demo's decisions are dated August 2025: SR 11-7 is the model-risk guidance in force then
# (SR 26-2 replaces it from 17 April 2026), so its pack is judged without --as-if-in-force.
DEMO_PACK = "sr-11-7"


@dataclass(frozen=True)
class DemoReports:
    decision: Path
    validation: Path
    evidence: Path
    public_key: Path  # what an examiner checks the PDFs with


def write_demo_reports(ledger_dir: str | os.PathLike[str], keyring: Keyring, out_dir: str | os.PathLike[str], *,
                       request_id: str, slot: str, pack: str = DEMO_PACK,
                       period: tuple[dt.datetime, dt.datetime] | None = None, institution: str = DEMO_INSTITUTION,
                       created: dt.datetime | None = None) -> DemoReports:
    """Verify the ledger with its HMAC key and write the three documents, and the public key
    that checks them, into ``out_dir``. ``period`` is what the evidence pack judges (default:
    the ledger's whole history, which runs to the ledger's creation, today, when the demo's
    entries are dated in the past)."""
    from reports.documents import (
        DecisionQuery,
        DocumentInfo,
        EvidenceScope,
        TrustPlan,
        ValidationScope,
        write_decision_report,
        write_evidence_report,
        write_validation_report,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if keyring.signer is None:
        raise ValueError("the demo keyring has no signing key; reports are signed with the checkpoint key")
    public_key = out / "ledger.pub"
    public_key.write_text("".join(v.to_vkey() + "\n" for v in keyring.verifiers()))
    plan = TrustPlan.hmac_chain(keyring)
    info = DocumentInfo(institution=institution, prepared_by=DEMO_PREPARED_BY)
    decision = write_decision_report(ledger_dir, DecisionQuery(request_id=request_id), plan, keyring.signer,
                                     out / "decision-dossier.pdf", info=dataclasses.replace(info, time_zone=DEMO_TIME_ZONE),
                                     created=created)
    validation = write_validation_report(ledger_dir, ValidationScope(slot), plan, keyring.signer,
                                         out / "validation-history.pdf", info=info, created=created)
    since, until = period if period is not None else (None, None)
    evidence = write_evidence_report(ledger_dir, EvidenceScope(pack, since, until), plan, keyring.signer,
                                     out / f"evidence-pack-{pack}.pdf", info=info, created=created)
    return DemoReports(decision.path, validation.path, evidence.path, public_key)
