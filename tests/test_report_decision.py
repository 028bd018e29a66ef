"""`mrm report decision`: the decision dossier of one disputed decision, checked as an examiner
would check it. The ledger is tests/report_ledger.py; the dossier is rendered once per module."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import shutil
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ledger.proofs import verify_proof
from mrm.cli import main
from reports.documents import (
    DecisionQuery,
    DocumentInfo,
    LedgerVerificationFailed,
    TrustPlan,
    build_decision_report,
)
from reports.documents.decision import criterion_meaning, factors_account, method_meaning
from reports.model import Status
from reports.render import render_pdf
from reports.verify import AttachmentStatus, verify_report

from . import report_ledger as world
from .helpers import edit_rows, segment_files
from .report_support import embedded_bytes, page_texts, replace_attachment, squash

CREATED = dt.datetime(2026, 4, 2, 9, 30, tzinfo=dt.timezone.utc)
GENERATED = dt.datetime(2026, 4, 2, 9, 29, tzinfo=dt.timezone.utc)
INFO = DocumentInfo(institution="Example Bank N.A.", prepared_by="Customer disputes desk", generated_at=GENERATED,
                    time_zone="Asia/Seoul")


@pytest.fixture(scope="module")
def dossier(tmp_path_factory):
    root = tmp_path_factory.mktemp("decision-report")
    keyring = world.signing_keyring()
    known = world.build(root / "ledger", keyring)
    report = build_decision_report(root / "ledger", DecisionQuery(request_id=world.REQUEST), TrustPlan.hmac_chain(keyring), INFO)
    rendered = render_pdf(report, keyring.signer, created=CREATED)
    texts = page_texts(rendered.pdf)
    return SimpleNamespace(root=root, ledger=root / "ledger", keyring=keyring, known=known, report=report, rendered=rendered,
                           pdf=rendered.pdf, text="\n".join(texts), flat=squash("\n".join(texts)))


def has(d, phrase: str) -> bool:
    """The phrase is on the pages (whitespace ignored: long values wrap over lines)."""
    return squash(phrase) in d.flat


# --------------------------------------------------------------------------- content


def test_the_dossier_shows_the_reconstructed_decision(dossier):
    d = dossier
    for phrase in (
        f"Decision dossier: request {world.REQUEST}", "Example Bank N.A.", "Customer disputes desk",
        world.REQUEST, world.SUBJECT, "credit_pd / v012", "ab" * 32,  # input digest
        "els_note", "balanced_fund", "7.25",  # model output, served output, latency
        "teller-17", "crm.customer_profile", "age_band, assets, risk_tolerance", "suitability_assessment",
        "kfcpa_art17_suitability", "MODIFIED", "risk_grade_gap", "profile_confirmed",
        "0.61", "0.27", "0.12",  # scores
    ):
        assert has(d, phrase), phrase
    summary = ("On 2025-03-12 09:00:00.000010Z (2025-03-12 18:00:00 KST) the credit_pd model, version v012, recommended "
               f"els_note for subject {world.SUBJECT} (request {world.REQUEST}).")
    assert has(d, summary)
    assert has(d, "The suitability check kfcpa_art17_suitability changed the recommendation from els_note to balanced_fund")


def test_the_main_factors_are_told_in_plain_language_and_honestly(dossier):
    """Each factor in words (which way, how strongly compared with the others), no raw
    contribution in the prose; the exact numbers stay in the table."""
    d = dossier
    assert has(d, "What the model weighed in recommending els_note, the most important first:")
    assert has(d, "\u2022 Risk tolerance (recorded value \u22121.5) weighed strongly against recommending els_note.")
    assert has(d, "\u2022 Assets (recorded value 2) weighed strongly for recommending els_note.")  # 0.31 is over half of 0.42
    assert has(d, "\u2022 Age (recorded value 41) weighed slightly for recommending els_note.")  # 0.05 is under a fifth
    assert has(d, "Taken together, the recorded factors for and against it roughly balance.")  # +0.36 against -0.42
    prose = d.flat[d.flat.index(squash("What the model weighed")):d.flat.index(squash("Table 3."))]
    assert "0.42" not in prose and "0.31" not in prose and "raisedthescore" not in prose
    assert has(d, "risk_tolerance -1.5 -0.42 against it, strongly") and has(d, "age 41.0 0.05 for it, slightly")
    assert has(d, "linear_coef_x_transformed_value")
    assert has(d, "they are not causes in the world")
    assert has(d, "The ledger keeps the 3 largest contributions only")
    assert has(d, "These factors explain the model's proposal (els_note)")
    assert len(d.report.figures()) == 1  # the contributions chart


def test_plain_language_account_orders_by_size_and_names_direction():
    from forensics.reconstruct import AttributionRecord, FeatureContribution

    record = AttributionRecord(None, "shap", "v9", (  # type: ignore[arg-type]
        FeatureContribution("income", 50000.0, 0.02), FeatureContribution("debt_ratio", 0.61, 0.9),
        FeatureContribution("tenure", None, -0.05)))
    text = " ".join(factors_account(record, "bond_fund"))
    assert text.startswith("What the model weighed in recommending bond_fund, the most important first:\n"
                           "\u2022 Debt ratio (recorded value 0.61) weighed strongly for recommending bond_fund.\n"
                           "\u2022 Tenure weighed slightly against recommending bond_fund.\n"
                           "\u2022 Income (recorded value 50,000) weighed slightly for recommending bond_fund.")
    assert "Taken together, the recorded factors weighed more for recommending bond_fund than against it." in text
    assert "SHAP" in method_meaning("shap", 3) and "background sample" in method_meaning("shap", 3)
    assert "exact meaning depends on it" in method_meaning("gradient_x_input", 3)


def test_the_promotion_that_made_the_version_live_names_approver_and_reason(dossier):
    d = dossier
    seq = d.known["approve"]
    assert has(d, f"Version v012 was in production at that moment because of the approve decision recorded at sequence "
                  f"number {seq} on 2025-03-11 09:00:00Z (2025-03-11 18:00:00 KST) by {world.APPROVER}, for the reason:")
    assert has(d, f"v012 approved by {world.APPROVER}: {world.APPROVAL_REASON}")
    assert has(d, "manual: a person decided") and has(d, "Version it replaced") and has(d, "v011")


def test_every_time_shows_the_institutions_local_time_next_to_utc(dossier):
    d = dossier
    assert d.report.meta.time_zone == "Asia/Seoul"
    assert has(d, "Times UTC (Z), each followed by the local time in Asia/Seoul")
    assert has(d, "Decided at 2025-03-12 09:00:00.000010Z (2025-03-12 18:00:00 KST)")
    assert has(d, "Time (UTC, local)")  # table headings say both
    assert has(d, "Document created 2026-04-02 09:30:00Z (2026-04-02 18:30:00 KST)")
    assert has(d, "Live from 2025-03-11 09:00:00Z (2025-03-11 18:00:00 KST)")
    prose = " ".join(p.text for s in d.report.sections for p in _paragraphs(s))
    assert "UTC" not in prose.replace("timestamps are UTC", "")  # the old "09:00:00 UTC" sentences
    assert re.findall(r"\d\d:\d\d:\d\d(?:\.\d+)?Z", prose)
    assert not re.findall(r"\d\d:\d\d:\d\d(?:\.\d+)?Z(?! \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d KST\))", prose)


def _paragraphs(section):
    from reports.model import Paragraph

    for b in section.blocks:
        if isinstance(b, Paragraph):
            yield b
    for sub in section.subsections:
        yield from _paragraphs(sub)


def test_each_suitability_criterion_is_explained(dossier):
    d = dossier
    assert has(d, "Criteria recorded by kfcpa_art17_suitability, and what each means")
    assert has(d, "risk_grade_gap 3.0 How many risk grades the proposed product was riskier than the customer's profile "
                  "allows: zero or less means it was suitable.")
    assert has(d, "profile_confirmed 1.0 Whether the customer confirmed the profile the seller recorded")
    assert has(d, "Modified: it was not, and a suitable product was offered instead.")
    assert criterion_meaning("no_such_criterion").startswith("not described")


def test_the_late_outcome_is_shown_with_when_it_was_observed_and_recorded(dossier):
    d = dossier
    told = ("Its outcome was recorded later, on 2025-03-24 09:00:00Z (2025-03-24 18:00:00 KST) from core-banking: "
            "balanced_fund, observed on 2025-03-13 15:30:00Z (2025-03-14 00:30:00 KST).")
    assert d.flat.count(squash(told)) == 2  # in the summary and in its own section
    assert has(d, "Outcome recorded later balanced_fund")  # at a glance
    assert has(d, f"balanced_fund core-banking {d.known['outcome']}")
    record = json.loads(embedded_bytes(d.pdf, "decision-record.json"))
    (outcome,) = record["outcomes"]
    assert outcome["label"] == world.OUTCOME_LABEL and outcome["source"] == "core-banking"
    assert outcome["observed_at"] == "2025-03-13T15:30:00.000000Z" and outcome["entry"]["seq"] == d.known["outcome"]


def test_a_decision_without_a_recorded_outcome_says_so(dossier, tmp_path):
    from ledger import Ledger

    path = tmp_path / "ledger"
    shutil.copytree(dossier.ledger, path)
    with Ledger.open(path, dossier.keyring, actor="reco-api") as ledger:
        ledger.log_model_inference(ts=world.T0 + 31 * world.D, request_id="req-no-outcome", subject_id="cust-7",
                                   model_slot=world.SLOT, model_version="v012", input_digest="cd" * 32,
                                   scores={"bond_fund": 0.7}, decision="bond_fund", latency_ms=5.0, route="champion")
        ledger.seal()
    report = build_decision_report(path, DecisionQuery(request_id="req-no-outcome"), TrustPlan.hmac_chain(dossier.keyring), INFO)
    text = squash("\n".join(page_texts(render_pdf(report, dossier.keyring.signer, created=CREATED).pdf)))
    assert squash("No later outcome of this request is recorded in the ledger up to the checkpoint.") in text
    assert squash("Outcome recorded later none recorded") in text


def test_status_words_and_regulatory_citations(dossier):
    d = dossier
    assert d.report.meta.verification.status is Status.PASS
    assert has(d, "Ledger verified (HMAC chain)")
    for citation in ("KFCPA Art. 17", "KFCPA Art. 28", "EU AI Act Art. 86", "EU AI Act Art. 12", "PIPA Art. 37-2",
                     "Credit Information Act Art. 36-2"):
        assert has(d, citation), citation
    for word in ("PASS", "MODIFIED", "APPROVE", "PROVEN"):
        assert word in d.text, word


# --------------------------------------------------------------------------- integrity


def test_every_attachment_matches_the_signed_manifest(dossier):
    d = dossier
    result = verify_report(d.pdf, d.keyring.verifiers())
    assert result.ok, result.problems
    names = sorted(a.name for a in d.report.attachments)
    assert names == sorted(["verification.json", "checkpoint.note", "inclusion-proofs.json", "decision-record.json",
                            "decision-entries.parquet"])
    listed = {e.name: e for e in result.manifest.attachments}
    for a in d.report.attachments:
        data = embedded_bytes(d.pdf, a.name)
        assert data == a.data
        assert hashlib.sha256(data).hexdigest() == listed[a.name].sha256
        assert hashlib.sha256(data).hexdigest() in d.flat  # printed in the attachment appendix too
    record = json.loads(embedded_bytes(d.pdf, "decision-record.json"))
    assert record["request_id"] == world.REQUEST and "path" not in record["attestation"]
    entries = pq.read_table(__import__("io").BytesIO(embedded_bytes(d.pdf, "decision-entries.parquet"))).to_pylist()
    assert [e["seq"] for e in entries] == sorted(d.known[k] for k in ("access", "inference", "attribution", "guardrail", "approve", "outcome"))
    assert all(e["proven"] for e in entries)


def test_the_embedded_proofs_verify_offline_with_the_public_key(dossier):
    d = dossier
    proofs = json.loads(embedded_bytes(d.pdf, "inclusion-proofs.json"))
    report = verify_proof(proofs, d.keyring.verifiers())
    assert report.ok, report.problems
    wanted = {d.known[k] for k in ("access", "inference", "attribution", "guardrail", "approve", "outcome")}
    assert {e["seq"] for e in report.entries} == wanted
    cp = d.report.meta.checkpoint
    assert report.checkpoint["size"] == cp.size and base64.b64decode(report.checkpoint["root"]) == cp.root
    for entry in proofs["entries"]:  # the seq and leaf hash (shortened; whole in the proof) of each entry are printed
        assert has(d, base64.b64decode(entry["leaf_hash"]).hex()[:12] + "\u2026")
    assert has(d, cp.root.hex()) and has(d, f"checkpoint of size {cp.size}")
    # The proofs are about the values shown: a reason edited in the proof document no longer verifies.
    guardrail = next(e for e in proofs["entries"] if e["table"] == "guardrail")
    guardrail["entry"]["reason"] = "nothing to see"
    assert not verify_proof(proofs, d.keyring.verifiers()).ok


def test_an_altered_attachment_is_reported(dossier):
    d = dossier
    forged = replace_attachment(d.pdf, "decision-record.json", b'{"request_id": "someone-else"}\n')
    result = verify_report(forged, d.keyring.verifiers())
    assert not result.ok
    statuses = {a.name: a.status for a in result.attachments}
    assert statuses["decision-record.json"] is AttachmentStatus.ALTERED
    assert {s for n, s in statuses.items() if n != "decision-record.json"} == {AttachmentStatus.OK}


def test_hostile_ledger_values_are_text_and_never_fetched(dossier):
    d = dossier
    assert has(d, world.HOSTILE_REASON)  # markup, {{ 7*7 }} and the URLs printed as they are
    assert d.rendered.requested_urls and all(u.startswith("mrm-asset:") for u in d.rendered.requested_urls)
    assert not any("passwd" in u or "evil" in u for u in d.rendered.requested_urls)


# --------------------------------------------------------------------------- selection and verification modes


def test_a_subject_and_an_instant_select_the_same_decision(dossier):
    d = dossier
    by_subject = build_decision_report(d.ledger, DecisionQuery(subject_id=world.SUBJECT, at="2025-03-13T00:00:00+09:00"),
                                       TrustPlan.inclusion_proofs(d.keyring.verifiers()), INFO)
    assert by_subject.meta.report_id == d.report.meta.report_id
    assert by_subject.meta.report_id == f"DEC-{d.report.meta.ledger_id[:12]}-{d.known['inference']}-c{d.report.meta.checkpoint.size}"


def test_proofs_only_is_a_warning_and_public_keys_are_a_full_check(dossier):
    d = dossier
    proofs_only = build_decision_report(d.ledger, DecisionQuery(request_id=world.REQUEST),
                                        TrustPlan.inclusion_proofs(d.keyring.verifiers()), INFO)
    v = proofs_only.meta.verification
    assert v.status is Status.WARN and "the rest of the ledger was not checked" in v.headline
    public = build_decision_report(d.ledger, DecisionQuery(request_id=world.REQUEST),
                                   TrustPlan.signed_checkpoints(d.keyring.verifiers()), INFO)
    assert public.meta.verification.status is Status.PASS
    assert "signed checkpoints, public keys only" in public.meta.verification.headline


@pytest.fixture(scope="module")
def tampered(dossier, tmp_path_factory):
    """A copy of the ledger whose guardrail entry says something else than was MACed."""
    path = tmp_path_factory.mktemp("tampered") / "ledger"
    shutil.copytree(dossier.ledger, path)
    [file] = [f for f in segment_files(path, "guardrail")]
    edit_rows(file, "guardrail", lambda rows: [{**r, "reason": "profile confirmed, no risk gap"} for r in rows])
    return path


def test_a_ledger_that_fails_verification_is_refused(dossier, tampered):
    with pytest.raises(LedgerVerificationFailed, match="does not verify"):
        build_decision_report(tampered, DecisionQuery(request_id=world.REQUEST), TrustPlan.hmac_chain(dossier.keyring), INFO)
    with pytest.raises(LedgerVerificationFailed):
        build_decision_report(tampered, DecisionQuery(request_id=world.REQUEST),
                              TrustPlan.signed_checkpoints(dossier.keyring.verifiers()), INFO)
    # Proving only the entries shown catches the edit too: the edited entry is not in the signed tree.
    proofs_only = build_decision_report(tampered, DecisionQuery(request_id=world.REQUEST),
                                        TrustPlan.inclusion_proofs(dossier.keyring.verifiers(), allow_failed=True), INFO)
    assert proofs_only.meta.verification.status is Status.FAIL
    assert proofs_only.sections[0].title == "Verification FAILED"


# --------------------------------------------------------------------------- command line


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_writes_a_dossier_that_verifies(dossier, tmp_path):
    d = dossier
    keyring_file = d.keyring.save(tmp_path / "keyring.json")
    pub = tmp_path / "ledger.pub"
    pub.write_text("".join(v.to_vkey() + "\n" for v in d.keyring.verifiers()))
    out = tmp_path / "dispute.pdf"
    result = run("report", "decision", d.ledger, "--request-id", world.REQUEST, "--keyring", keyring_file, "-o", out,
                 "--institution", "Example Bank N.A.", "--verification", "proofs", "--created", "2026-04-02T09:30:00Z",
                 "--time-zone", "Asia/Seoul", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["path"] == str(out) and doc["status"] == "warn" and doc["kind"] == "decision"
    checked = run("report", "verify", out, "--public-key", pub)
    assert checked.exit_code == 0 and "VERIFIED" in checked.output
    assert squash("Document created 2026-04-02 09:30:00Z (2026-04-02 18:30:00 KST)") in squash("\n".join(page_texts(out.read_bytes())))


def test_cli_exit_codes(dossier, tampered, tmp_path):
    d = dossier
    keyring_file = d.keyring.save(tmp_path / "keyring.json")
    assert run("report", "decision", d.ledger, "--keyring", keyring_file).exit_code == 2  # neither --request-id nor --subject
    missing = run("report", "decision", d.ledger, "--request-id", "no-such-request", "--keyring", keyring_file,
                  "-o", tmp_path / "x.pdf")
    assert missing.exit_code == 2 and "no model_inference entry" in missing.output and not (tmp_path / "x.pdf").exists()
    zone = run("report", "decision", d.ledger, "--request-id", world.REQUEST, "--keyring", keyring_file,
               "--time-zone", "Mars/Olympus_Mons", "-o", tmp_path / "z.pdf")
    assert zone.exit_code == 2 and "unknown time zone 'Mars/Olympus_Mons'" in zone.output and "Traceback" not in zone.output
    assert not (tmp_path / "z.pdf").exists()
    refused = run("report", "decision", tampered, "--request-id", world.REQUEST, "--keyring", keyring_file, "-o", tmp_path / "r.pdf")
    assert refused.exit_code == 1 and "FAILED" in refused.output and not (tmp_path / "r.pdf").exists()
    allowed = run("report", "decision", tampered, "--request-id", world.REQUEST, "--keyring", keyring_file,
                  "-o", tmp_path / "failed.pdf", "--allow-failed")
    assert allowed.exit_code == 1, allowed.output
    text = squash("\n".join(page_texts((tmp_path / "failed.pdf").read_bytes())))
    assert squash("VERIFICATION FAILED") in text and squash("LEDGER VERIFICATION FAILED (hmac-chain)") in text
