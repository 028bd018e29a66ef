"""`mrm report evidence`: the examiner evidence pack, checked as an examiner would check it.

The ledgers are the regulation-pack test ledgers (tests/mapping_ledgers.py): the compliant
story, and a copy where a blocked recommendation was served twice, so the KFCPA pack finds
exactly one gap whose offending rows name the injected requests. Each document is rendered
once per module."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import shutil
import textwrap
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from ledger import Ledger
from mappings import load_pack
from mrm.cli import main
from reports.documents import (
    DocumentInfo,
    EvidenceScope,
    LedgerVerificationFailed,
    Limits,
    TrustPlan,
    build_evidence_report,
)
from reports.model import Status, StatusBadge
from reports.render import render_pdf
from reports.verify import AttachmentStatus, verify_report

from . import mapping_ledgers as ml
from .helpers import edit_rows, segment_files
from .report_support import embedded_bytes, page_texts, replace_attachment, squash

CREATED = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.timezone.utc)
INFO = DocumentInfo(institution="Example Bank N.A.", prepared_by="Model risk office",
                    generated_at=dt.datetime(2026, 6, 1, 8, 55, tzinfo=dt.timezone.utc))
OFFENDING = "art17-3-no-unsuitable-recommendation.unsuitable-never-served.offending.parquet"
HOSTILE_OPERATOR = 'ops-<img src="file:///etc/passwd">'
HOSTILE_REASON = 'see http://evil.example/steal?x=1 <link href="http://evil.example/a.css"> {{ 7*7 }}'


def document(path, pack: str = "kfcpa", limits: Limits = Limits(), **scope):
    keyring = ml.keyring()
    report = build_evidence_report(path, EvidenceScope(pack, ml.START, ml.END, limits=limits, **scope),
                                   TrustPlan.hmac_chain(keyring), INFO)
    rendered = render_pdf(report, keyring.signer, created=CREATED)
    # The KFCPA pack names the Act in Hangul, which the bundled fonts lack (a fallback font draws
    # it where one is installed): pypdf then extracts the document's text with NULs between letters.
    text = "\n".join(page_texts(rendered.pdf)).replace("\x00", "")
    return SimpleNamespace(path=path, keyring=keyring, report=report, rendered=rendered, pdf=rendered.pdf, text=text,
                           flat=squash(text))


def has(d, phrase: str) -> bool:
    """The phrase is on the pages (whitespace ignored: the PDF's text spaces letters, and long values wrap)."""
    return squash(phrase) in d.flat


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory):
    root = tmp_path_factory.mktemp("evidence-report")
    compliant = ml.build(root / "compliant")
    violated = root / "violated"
    shutil.copytree(compliant, violated)
    keys = ml.inject(violated, "blocked_served")
    return SimpleNamespace(root=root, compliant=compliant, violated=violated, keys=[k for _, k in keys])


@pytest.fixture(scope="module")
def compliant(ledgers):
    return document(ledgers.compliant)


@pytest.fixture(scope="module")
def violated(ledgers):
    return document(ledgers.violated)


# --------------------------------------------------------------------------- content


def test_the_compliant_ledger_reads_as_met_with_citations_and_counts(compliant):
    d = compliant
    assert d.report.meta.verification.status is Status.PASS
    for phrase in ("Examiner evidence pack: Financial Consumer Protection Act (Korea)", "Example Bank N.A.",
                   "KFCPA Art. 17(1)", "KFCPA Art. 17(2)", "KFCPA Art. 17(3)", "KFCPA Art. 19(1)", "KFCPA Art. 19(2)",
                   "KFCPA Art. 28(1)", "KFCPA Art. 28(3)-(4)", "Coverage matrix", "Requirements by status",
                   "NO GAP", "No requirement has a gap.", "INSUFFICIENT EVIDENCE", "OUTSIDE THE LEDGER"):
        assert has(d, phrase), phrase
    # Met 4, gap 0, insufficient 1 (ten years cannot be shown by 231 days), n/a 0, outside 2: the matrix's last row
    assert has(d, "All requirements 7 in the pack 4 0 1 0 2")
    assert has(d, "no row found among 462 in scope")  # every decision served in the period, counted exactly
    assert has(d, "less than the 3653 days required")
    assert not has(d, "1 GAP")


def test_the_violation_is_a_gap_and_its_offending_rows_are_shown(violated, ledgers):
    d = violated
    assert has(d, "1 GAP") and has(d, "All requirements 7 in the pack 3 1 1 0 2")
    assert has(d, "Every gap (1)") and has(d, "2 row(s) found, each a finding")
    for request_id in ledgers.keys:  # bad-blockserved-0302, bad-blockserved-0512
        assert has(d, request_id), request_id
    assert has(d, "kfcpa17_suitability: block -> els_note")  # the verdict trail of the offending row
    assert has(d, f"All rows: attachment {OFFENDING} (2 rows).")


def test_each_requirement_has_its_paraphrase_examiner_asks_and_runnable_sql(violated):
    d = violated
    pack = load_pack("kfcpa")
    for r in pack.requirements:
        assert has(d, r.citation) and has(d, r.title), r.id
        assert has(d, " ".join(r.examiner_asks[0].split())), r.id
        if not r.evidenced:
            assert has(d, " ".join(r.ask_for[0].split())), r.id  # what else to ask for
    assert has(d, "WHERE i.ts >= TIMESTAMPTZ '2025-10-01 00:00:00.000000+00' AND i.ts < TIMESTAMPTZ '2026-05-20 00:00:00.000000+00'")
    assert not has(d, "i.ts >= $from")  # every query is printed with its parameters written in
    assert has(d, pack.sha256)  # the pack's SHA-256 in the method appendix


def test_the_models_in_the_period_are_charted(violated):
    captions = [f.caption for f in violated.report.figures()]
    assert any(c.startswith("Slot product_reco. Decisions served per day") for c in captions)
    assert any(c.startswith("Slot product_reco. Cumulative number of promotion decisions") for c in captions)
    assert any(c.startswith("Slot product_reco. Primary metric of the champion and the challenger") for c in captions)


def test_a_pack_not_in_force_is_said_so_or_judged_as_readiness(ledgers):
    keyring = ml.keyring()
    plan = TrustPlan.inclusion_proofs(keyring.verifiers())
    eu = build_evidence_report(ledgers.compliant, EvidenceScope("eu-ai-act", ml.START, ml.END), plan, INFO)
    (not_in_force,) = [b for b in eu.sections[0].blocks if isinstance(b, StatusBadge) and b.label == "NOT IN FORCE"]
    assert "was not yet in force in the period" in not_in_force.detail
    readiness = build_evidence_report(ledgers.compliant, EvidenceScope("eu-ai-act", ml.START, ml.END, as_if_in_force=True), plan, INFO)
    assert "Readiness assessment" in readiness.meta.subtitle
    assert "READINESS ASSESSMENT" in [b.label for b in readiness.sections[0].blocks if isinstance(b, StatusBadge)]
    # with inclusion proofs only, the cover says the rest of the ledger was not checked
    assert readiness.meta.verification.status is Status.WARN


# --------------------------------------------------------------------------- integrity


def test_attachments_extract_with_matching_hashes_and_the_signature_verifies(violated):
    d = violated
    result = verify_report(d.pdf, d.keyring.verifiers())
    assert result.ok, result.problems
    listed = {e.name: e.sha256 for e in result.manifest.attachments}
    names = {a.name for a in d.report.attachments}
    assert {"verification.json", "checkpoint.note", "inclusion-proofs.json", "summary.json", "pack.toml", OFFENDING} <= names
    for a in d.report.attachments:
        data = embedded_bytes(d.pdf, a.name)
        assert data == a.data and hashlib.sha256(data).hexdigest() == listed[a.name]
        assert has(d, hashlib.sha256(data).hexdigest())  # printed in the attachment appendix too
    pack = load_pack("kfcpa")
    assert hashlib.sha256(embedded_bytes(d.pdf, "pack.toml")).hexdigest() == pack.sha256
    summary = json.loads(embedded_bytes(d.pdf, "summary.json"))
    assert summary["format"] == "mrm-pack-result/1" and summary["pack"]["bundled_as"] == "pack.toml"
    assert "/" not in summary["rests_on"]["path"] and "/" not in summary["pack"]["file"]
    by_id = {e["id"]: e for r in summary["requirements"] for e in r["evidence"]}
    assert by_id["unsuitable-never-served"]["files"]["offending"] == OFFENDING
    assert all(name in names for e in by_id.values() for name in e["files"].values())
    rows = pq.read_table(io.BytesIO(embedded_bytes(d.pdf, OFFENDING))).to_pylist()
    assert [r["request_id"] for r in rows] == ["bad-blockserved-0302", "bad-blockserved-0512"]


def test_every_entry_a_table_names_is_proven(violated):
    proofs = json.loads(embedded_bytes(violated.pdf, "inclusion-proofs.json"))
    seqs = {e["seq"] for e in proofs["entries"]}
    shown = {r["inference_seq"] for r in pq.read_table(io.BytesIO(embedded_bytes(violated.pdf, OFFENDING))).to_pylist()}
    assert shown <= seqs and len(seqs) > 10
    assert has(violated, "PROVEN")


def test_an_altered_attachment_is_reported(violated):
    d = violated
    forged = replace_attachment(d.pdf, OFFENDING, embedded_bytes(d.pdf, "summary.json"))
    result = verify_report(forged, d.keyring.verifiers())
    assert not result.ok
    assert {a.name: a.status for a in result.attachments}[OFFENDING] is AttachmentStatus.ALTERED


def test_pdfa_identification(violated):
    root = PdfReader(io.BytesIO(violated.pdf)).trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode()
    assert 'pdfaid:part="3"' in xmp and 'pdfaid:conformance="B"' in xmp
    (intent,) = root["/OutputIntents"]
    assert intent.get_object()["/S"] == "/GTS_PDFA1"


def test_hostile_ledger_values_are_text_and_never_fetched(ledgers, tmp_path):
    """An override whose operator and reason carry markup and file:// / http:// references:
    SR 11-7's override analysis shows them as a finding, literally, and nothing is fetched."""
    path = tmp_path / "ledger"
    shutil.copytree(ledgers.compliant, path)
    with Ledger.open(path, ml.keyring(), actor="reco-api") as ledger:
        ml.register(ledger, ml.IDLE, "nbo-hostile", ml.A)
        ledger.log_model_promotion(ts=ml.A + ml.US, slot=ml.IDLE, champion_version="nbo-v1", challenger_version="nbo-hostile",
                                   decision="force_promote", trigger="manual", operator=HOSTILE_OPERATOR, reason=HOSTILE_REASON)
        ledger.seal()
    d = document(path, "sr-11-7")
    assert has(d, HOSTILE_OPERATOR) and has(d, HOSTILE_REASON)
    assert all(u.startswith("mrm-asset:") for u in d.rendered.requested_urls)
    assert verify_report(d.pdf, d.keyring.verifiers()).ok


def test_a_tampered_ledger_is_refused_or_reported_failed(ledgers, tmp_path):
    path = tmp_path / "ledger"
    shutil.copytree(ledgers.violated, path)
    for file in segment_files(path, "guardrail"):  # the served-after-block finding, erased after the fact
        edit_rows(file, "guardrail", lambda rows: [{**r, "verdict": "pass"} if r["verdict"] == "block" else r for r in rows])
    keyring = ml.keyring()
    with pytest.raises(LedgerVerificationFailed):
        build_evidence_report(path, EvidenceScope("kfcpa", ml.START, ml.END), TrustPlan.hmac_chain(keyring), INFO)
    report = build_evidence_report(path, EvidenceScope("kfcpa", ml.START, ml.END),
                                   TrustPlan.hmac_chain(keyring, allow_failed=True), INFO)
    assert report.meta.verification.status is Status.FAIL
    assert report.sections[0].title == "Verification FAILED" and report.sections[1].title == "Executive summary"


# --------------------------------------------------------------------------- long evidence


LONG_PACK = textwrap.dedent('''\
    format = "mrm-pack/1"
    id = "long-evidence"
    title = "A pack whose one check finds thousands of rows"
    instrument = "Test instrument"
    authority = "Tests"
    jurisdiction = "XX"
    pack_version = "1"
    effective_from = 2020-01-01
    summary = "One requirement, one query that returns every guardrail verdict of the period many times over."
    sources = ["https://example.invalid/"]

    [[requirement]]
    id = "every-verdict-reviewed"
    citation = "Test Art. 1"
    title = "Every verdict was reviewed by a person"
    paraphrase = "Each guardrail verdict is reviewed; the ledger records no review, so each one is a finding."
    examiner_asks = ["The review of each verdict."]

    [[requirement.evidence]]
    id = "unreviewed-verdicts"
    shows = "Guardrail verdicts of the period, each repeated for every review round it missed."
    sql = """
    SELECT g.request_id, r.round,
           'verdict ' || g.verdict || ' of ' || g.gate || ' at ' || strftime(g.ts, '%Y-%m-%d %H:%M:%S') || ' on '
             || g.request_id || ' missed review round ' || r.round || '; the proposal ' || g.original_output
             || ' was served as ' || coalesce(g.final_output, 'nothing') AS note
    FROM guardrail g CROSS JOIN range({rounds}) AS r(round)
    WHERE g.ts >= $from AND g.ts < $to
    ORDER BY g.ts, r.round
    """
    expect = {{ kind = "no_rows" }}
''')


@pytest.fixture(scope="module")
def long_pack(ledgers):
    path = ledgers.root / "long-evidence.toml"
    path.write_text(LONG_PACK.format(rounds=13))  # 464 verdicts (2 of them injected) x 13 rounds: 6,032 rows
    return path


def test_long_evidence_is_bounded_with_its_attachment_named(ledgers, long_pack):
    d = document(ledgers.violated, str(long_pack))
    name = "every-verdict-reviewed.unreviewed-verdicts.offending.parquet"
    assert has(d, f"25 of 6,032 rows shown; the first 1,000 are in attachment {name}, and the query returns them all.")
    assert d.rendered.page_count < 30
    assert pq.read_table(io.BytesIO(embedded_bytes(d.pdf, name))).num_rows == 1000


def test_a_300_page_evidence_pack_renders_with_repeated_headers(ledgers, long_pack):
    """Every finding of a long result shown: the table breaks across some 300 pages, each
    repeating the header row with only whole rows, and the document still verifies."""
    d = document(ledgers.violated, str(long_pack), Limits(kept=7000, shown=7000, sample=10))
    reader = PdfReader(io.BytesIO(d.pdf))
    total = len(reader.pages)
    assert total >= 300 and d.rendered.page_count == total
    header = squash("request_id round note")
    late = [reader.pages[i].extract_text() for i in (total // 2, total // 2 + 1)]
    for text in late:
        assert header in squash(text), "a page in the middle of the table repeats its header"
        rounds = re.findall(r"missedreviewround(\d+);", squash(text))
        assert rounds, "rows on the page"
    assert has(d, "All rows: attachment every-verdict-reviewed.unreviewed-verdicts.offending.parquet (6,032 rows).")
    assert verify_report(d.pdf, d.keyring.verifiers()).ok


# --------------------------------------------------------------------------- command line


def test_cli_writes_a_verifiable_document_and_refuses_a_bad_pack(ledgers, tmp_path):
    keyring_file = ml.keyring().save(tmp_path / "keyring.json")
    pub = tmp_path / "ledger.pub"
    pub.write_text("".join(v.to_vkey() + "\n" for v in ml.keyring().verifiers()))
    out = tmp_path / "kfcpa.pdf"
    result = CliRunner().invoke(main, [
        "report", "evidence", str(ledgers.violated), "--pack", "kfcpa", "--from", "2025-10-01", "--to", "2026-05-20",
        "--keyring", str(keyring_file), "--verification", "proofs", "--institution", "Example Bank", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output  # a gap is a finding, not an error
    doc = json.loads(result.stdout)
    assert doc["kind"] == "evidence" and doc["status"] == "warn" and doc["report_id"].startswith("EVP-")
    assert "kfcpa-20251001-20260520" in doc["report_id"]
    checked = CliRunner().invoke(main, ["report", "verify", str(out), "--public-key", str(pub)])
    assert checked.exit_code == 0, checked.output
    bad = CliRunner().invoke(main, ["report", "evidence", str(ledgers.violated), "--pack", "no-such-pack",
                                    "--keyring", str(keyring_file), "-o", str(tmp_path / "x.pdf")])
    assert bad.exit_code == 2 and "no pack named 'no-such-pack'" in bad.output and not (tmp_path / "x.pdf").exists()
