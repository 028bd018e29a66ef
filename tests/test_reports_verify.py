"""verify_report against an attacker with a PDF editor: every change to the evidence, the
manifest, its signature or the pages is found and named; nothing is compared against a
manifest that a trusted key did not sign."""

from __future__ import annotations

import hashlib

import pytest

from ledger.note import Checkpoint, sign_checkpoint
from reports import AttachmentStatus, ReportInputError, SignatureStatus, verify_report
from ledger.errors import KeyringError
from ledger.keys import parse_verifiers

from .report_support import (
    FOREIGN,
    SIGNER,
    TRUSTED,
    add_annotation_attachment,
    add_attachment,
    draw_on_page,
    embedded_bytes,
    remove_attachment,
    replace_attachment,
    reseal,
    rendered_sample,
    rewrite,
)

EVIDENCE = ["promotions.parquet", "decisions.parquet", "psi.parquet", "verification.json", "checkpoint.note", "proofs.json"]


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return rendered_sample().pdf


def statuses(result) -> dict[str, str]:
    return {c.name: c.status.value for c in result.attachments}


def test_an_untouched_report_verifies(pdf, tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    result = verify_report(path, TRUSTED)
    assert result.ok and result.refused is None and result.problems == ()
    assert result.signature is SignatureStatus.VALID and result.signed_by == (f"{SIGNER.name}+{SIGNER.key_id:08x}",)
    assert statuses(result) == dict.fromkeys(EVIDENCE, "ok")
    assert result.pages.ok and result.checkpoint.status == "ok"
    assert "VERIFIED" in result.to_text()


def test_saving_the_file_again_unchanged_still_verifies(pdf):
    resaved = rewrite(pdf, lambda writer: None)  # new object numbers, new xref, same content
    assert resaved != pdf
    assert verify_report(resaved, TRUSTED).ok


def test_an_altered_attachment_is_named_with_both_digests(pdf):
    original = embedded_bytes(pdf, "decisions.parquet")
    forged = original[:100] + bytes([original[100] ^ 0x01]) + original[101:]
    result = verify_report(replace_attachment(pdf, "decisions.parquet", forged), TRUSTED)
    assert not result.ok and result.refused is None
    assert statuses(result) == {**dict.fromkeys(EVIDENCE, "ok"), "decisions.parquet": "altered"}
    check = result.attachment("decisions.parquet")
    assert check.expected_sha256 == hashlib.sha256(original).hexdigest()
    assert check.actual_sha256 == hashlib.sha256(forged).hexdigest()
    assert check.expected_size == check.actual_size == len(original)
    assert result.problems == (f"attachment decisions.parquet: altered: SHA-256 {check.actual_sha256} instead of {check.expected_sha256}",)
    assert result.pages.ok  # the pages were not touched, and we say so


def test_a_removed_attachment_is_named(pdf):
    result = verify_report(remove_attachment(pdf, "psi.parquet"), TRUSTED)
    assert not result.ok
    assert statuses(result) == {**dict.fromkeys(EVIDENCE, "ok"), "psi.parquet": "removed"}
    assert result.attachment("psi.parquet").actual_sha256 is None
    assert "psi.parquet" not in result.embedded


def test_an_added_attachment_is_named_wherever_it_hangs(pdf):
    result = verify_report(add_attachment(pdf, "extra.csv", b"seq,decision\n1,promote\n"), TRUSTED)
    assert not result.ok and statuses(result) == {**dict.fromkeys(EVIDENCE, "ok"), "extra.csv": "added"}
    assert result.attachment("extra.csv").actual_sha256 == hashlib.sha256(b"seq,decision\n1,promote\n").hexdigest()

    # hung on a page through an annotation instead of the name tree; pypdf's own
    # `attachments` does not look there, our reader does
    result = verify_report(add_annotation_attachment(pdf, "note.txt", b"see me", page=2), TRUSTED)
    assert not result.ok and result.attachment("note.txt").status is AttachmentStatus.ADDED
    assert "page 3 annotation" in result.attachment("note.txt").detail


def test_a_second_copy_under_an_existing_name_is_a_duplicate(pdf):
    result = verify_report(add_attachment(pdf, "proofs.json", b"{}"), TRUSTED)
    assert not result.ok and result.attachment("proofs.json").status is AttachmentStatus.DUPLICATED


def test_a_manifest_resigned_with_a_foreign_key_is_refused_and_the_key_named(pdf):
    forged_rows = b"PAR1 forged"
    tampered = reseal(pdf, FOREIGN, replace={"decisions.parquet": forged_rows})
    result = verify_report(tampered, TRUSTED)
    assert not result.ok and result.signature is SignatureStatus.UNTRUSTED
    assert result.attachments == () and result.manifest is None  # nothing compared against it
    assert f"{FOREIGN.name}+{FOREIGN.key_id:08x}" in result.refused
    assert f"{SIGNER.name}+{SIGNER.key_id:08x}" in result.refused  # and who we trust
    assert "REFUSED" in result.to_text()
    # the forger's key verifies their own forgery: the trust decision is the key list
    assert verify_report(tampered, [FOREIGN.verifier()]).signature is SignatureStatus.VALID


def test_a_trusted_signature_over_another_manifest_is_invalid(pdf):
    # keep the ledger key's signature line, but over a rewritten manifest
    original_note = embedded_bytes(pdf, "manifest.json.sig")
    tampered = reseal(pdf, FOREIGN, replace={"psi.parquet": b"x"}, keep_signatures_from=original_note)
    result = verify_report(tampered, TRUSTED)
    assert result.signature is SignatureStatus.INVALID and not result.ok
    assert f"invalid signature for key {SIGNER.name}+{SIGNER.key_id:08x}" in result.refused


def test_an_edited_manifest_no_longer_matches_its_signature(pdf):
    manifest = embedded_bytes(pdf, "manifest.json")
    edited = manifest.replace(b'"kind": "evidence"', b'"kind": "validation"')
    result = verify_report(replace_attachment(pdf, "manifest.json", edited), TRUSTED)
    assert result.signature is SignatureStatus.MISMATCH and not result.ok
    assert "changed after it was signed" in result.refused


@pytest.mark.parametrize("name", ["manifest.json", "manifest.json.sig"])
def test_a_missing_manifest_or_signature_is_refused(pdf, name):
    result = verify_report(remove_attachment(pdf, name), TRUSTED)
    assert result.signature is SignatureStatus.MISSING and not result.ok
    assert name in result.refused and result.attachments == ()


def test_a_malformed_signature_note_is_refused(pdf):
    result = verify_report(replace_attachment(pdf, "manifest.json.sig", b"not a note"), TRUSTED)
    assert result.signature is SignatureStatus.MALFORMED and not result.ok


def test_a_box_drawn_over_a_page_is_caught_by_the_page_digest(pdf):
    result = verify_report(draw_on_page(pdf, page=2), TRUSTED)
    assert not result.ok
    assert statuses(result) == dict.fromkeys(EVIDENCE, "ok")  # the evidence is intact...
    assert not result.pages.ok and "differs from what was signed" in result.pages.detail  # ...the pages are not


def test_a_removed_page_is_caught(pdf):
    result = verify_report(rewrite(pdf, lambda w: w.remove_page(3)), TRUSTED)
    assert not result.ok and not result.pages.ok
    assert result.pages.actual_count == result.pages.expected_count - 1


def test_an_insider_swapping_the_checkpoint_is_caught(pdf):
    # Someone with the ledger key re-signs everything, but attaches a checkpoint that is
    # not the one the manifest (and the cover) names.
    other = Checkpoint("bank.example/mrm-ledger/product-reco", 99, bytes(32))
    note = sign_checkpoint(other, [SIGNER])
    result = verify_report(reseal(pdf, SIGNER, replace={"checkpoint.note": note}), TRUSTED)
    assert result.signature is SignatureStatus.VALID and statuses(result)["checkpoint.note"] == "ok"
    assert not result.ok and result.checkpoint.status == "mismatch"


def test_inputs_that_are_not_reports_are_input_errors(tmp_path):
    bad = tmp_path / "x.pdf"
    bad.write_bytes(b"hello")
    with pytest.raises(ReportInputError, match="not a PDF"):
        verify_report(bad, TRUSTED)
    bad.write_bytes(b"%PDF-1.7\ngarbage")
    with pytest.raises(ReportInputError):
        verify_report(bad, TRUSTED)
    with pytest.raises(ReportInputError, match="no trusted verifier key"):
        verify_report(rendered_sample().pdf, [])


def test_verifier_key_files():
    text = f"# the ledger key\n\n{SIGNER.verifier().to_vkey()}\n{FOREIGN.verifier().to_vkey()}\n"
    assert [v.key_id for v in parse_verifiers(text)] == [SIGNER.key_id, FOREIGN.key_id]
    with pytest.raises(KeyringError, match=":2: not a public key"):
        parse_verifiers(f"{SIGNER.verifier().to_vkey()}\nname+00000000+AQ==\n")
    with pytest.raises(KeyringError, match="no public key"):
        parse_verifiers("# nothing\n")


def test_json_form_is_complete(pdf):
    doc = verify_report(replace_attachment(pdf, "proofs.json", b"[]"), TRUSTED).to_json()
    assert doc["ok"] is False and doc["signature"]["status"] == "valid"
    proofs = next(a for a in doc["attachments"] if a["name"] == "proofs.json")
    assert proofs["status"] == "altered" and proofs["actual"]["size"] == 2
    assert doc["report"]["id"] == "EVR-2026Q1-0001" and doc["pages"]["ok"] is True
