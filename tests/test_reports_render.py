"""The rendered sample report: what a reader sees, what a PDF/A validator looks for, and
what an examiner extracts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import re

import pytest
from pypdf import PdfReader

from ledger.note import Signer, open_note
from reports import RenderError, render_pdf, render_report, verify_report
from reports.manifest import ReportManifest, open_manifest_signature
from reports.pdffiles import read_embedded_files
from reports.sample import SAMPLE_CREATED, PROMOTIONS_SQL, sample_report

from .report_support import FOREIGN, SIGNER, TRUSTED, page_texts, rendered_sample, squash

EVIDENCE = ["promotions.parquet", "decisions.parquet", "psi.parquet", "verification.json", "checkpoint.note", "proofs.json"]


@pytest.fixture(scope="module")
def rendered():
    return rendered_sample()


@pytest.fixture(scope="module")
def texts(rendered):
    return page_texts(rendered.pdf)


def test_pages_show_headings_statuses_figures_and_sql(texts):
    body = "\n".join(texts[2:])
    for heading in ("1  Summary", "2  Ledger integrity", "2.1  Verification", "2.2  Checkpoint",
                    "3  Model promotions", "4  Monitoring", "5  Decisions", "A  Evidence attachments"):
        assert heading in body, heading
    for status in ("\u2713 VERIFIED", "! WARNING", "\u2717 REJECTED", "\u2713 PROMOTE", "\u2717 REJECT", "\u2717 FAIL", "\u2713 PASS"):
        assert status in body, status
    assert "Figure 1. Holdout metrics of the champion and the promoted challenger" in body
    assert "Figure 2. Weekly PSI for two input features" in body
    assert "Table 2. Promotion decisions in the period" in body
    # the SQL block, verbatim (line by line: extraction keeps its line breaks)
    for line in PROMOTIONS_SQL.splitlines():
        assert line.strip() in body, line
    # typed values: NULL shown as such, numbers with their precision, UTC timestamps
    assert "NULL" in body and "0.0124" in body and "2026-01-2009:00:00Z" in squash(body)


def test_cover_carries_identity_checkpoint_and_verification(texts, rendered):
    cover = texts[0]
    meta = sample_report(SIGNER).meta
    assert meta.title.split(":")[0] in cover and "EVR-2026Q1-0001" in cover
    assert "Example Bank N.A." in cover and "2026-01-01 00:00:00Z to 2026-04-01 00:00:00Z" in cover
    assert meta.checkpoint.root.hex() in squash(cover)
    assert "48,213 entries" in cover and "Ledger verified: 48,213 entries, no problems" in cover
    assert f"{SIGNER.name}+{SIGNER.key_id:08x}" in squash(cover)
    assert "mrm report verify FILE.pdf --public-key KEYFILE" in cover


def test_page_numbers_and_running_header(texts):
    total = len(texts)
    assert total >= 6
    for number, text in enumerate(texts, 1):
        assert f"Page {number} of {total}" in text
        if number > 1:  # the cover has no running header
            assert "EVR-2026Q1-0001" in text
            assert "Evidence report: product recommendation, Q1 2026" in text
    assert "EVR-2026Q1-0001 Evidence report" not in texts[0]


def test_table_of_contents_has_the_page_of_each_section(texts):
    toc = texts[1]
    assert toc.startswith("Contents")
    entries = dict(re.findall(r"^(\d(?:\.\d)?|A)\s+[^\n.]+?[ .]+(\d+)$", toc, re.M))
    assert set(entries) == {"1", "2", "2.1", "2.2", "3", "4", "5", "A"}
    for number, page in entries.items():
        heading = "A  Evidence attachments" if number == "A" else f"{number}  "
        assert heading in texts[int(page) - 1], (number, page)


def test_bookmarks_follow_the_sections(rendered):
    outline = PdfReader(io.BytesIO(rendered.pdf)).outline
    titles = [item["/Title"] for item in outline if not isinstance(item, list)]
    assert titles == ["Contents", "1 Summary", "2 Ledger integrity", "3 Model promotions", "4 Monitoring", "5 Decisions",
                      "A Evidence attachments"]
    nested = next(item for item in outline if isinstance(item, list))
    assert [i["/Title"] for i in nested] == ["2.1 Verification", "2.2 Checkpoint"]


def test_long_table_repeats_its_header_on_the_next_page(texts):
    header = squash("Seq Time (UTC) Subject Model version Input digest (SHA-256) Decision Guardrail")
    pages_with_header = [i for i, t in enumerate(texts) if header in squash(t)]
    assert len(pages_with_header) >= 2, "the decisions table spans pages and repeats its header"


def test_pdfa_3b_identification_and_output_intent(rendered):
    reader = PdfReader(io.BytesIO(rendered.pdf))
    root = reader.trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode()
    assert 'pdfaid:part="3"' in xmp and 'pdfaid:conformance="B"' in xmp
    assert "<xmp:CreateDate>2026-04-02T09:30:00Z</xmp:CreateDate>" in xmp
    (intent,) = root["/OutputIntents"]
    intent = intent.get_object()
    assert intent["/S"] == "/GTS_PDFA1" and "sRGB" in intent["/OutputConditionIdentifier"]
    assert intent["/DestOutputProfile"].get_object().get_data()[36:40] == b"acsp"  # an ICC profile
    assert rendered.pdf.startswith(b"%PDF-1.7")
    assert reader.metadata["/CreationDate"] == "D:20260402093000Z"
    assert reader.trailer["/ID"][0] == reader.trailer["/ID"][1]


def test_attachments_are_associated_files_with_media_types_and_dates(rendered):
    reader = PdfReader(io.BytesIO(rendered.pdf))
    af = [ref.get_object() for ref in reader.trailer["/Root"]["/AF"]]
    specs = {spec["/UF"]: spec for spec in af}
    assert len(af) == len(specs)  # each file associated once
    assert sorted(specs) == sorted(EVIDENCE + ["manifest.json", "manifest.json.sig"])
    expected_relationship = {"proofs.json": "/Supplement", "manifest.json": "/Supplement", "manifest.json.sig": "/Supplement"}
    for name, spec in specs.items():
        assert spec["/AFRelationship"] == expected_relationship.get(name, "/Data"), name
        stream = spec["/EF"]["/F"].get_object()
        data = stream.get_data()
        assert stream["/Params"]["/Size"] == len(data)
        checksum = stream["/Params"]["/CheckSum"]
        assert getattr(checksum, "original_bytes", checksum) == hashlib.md5(data).digest()  # ISO 32000: MD5 of the file
        assert stream["/Params"]["/ModDate"] == "D:20260402093000Z"
    media = {f.name: f.media_type for f in read_embedded_files(rendered.pdf).files}
    assert media["promotions.parquet"] == "application/vnd.apache.parquet"
    assert media["manifest.json"] == "application/json" and media["checkpoint.note"] == "text/plain"


def test_attachments_extract_with_the_hashes_the_signed_manifest_lists(rendered):
    files = {f.name: f.data for f in read_embedded_files(rendered.pdf).files}
    report = sample_report(SIGNER)
    signed = open_manifest_signature(files["manifest.json.sig"], TRUSTED)
    assert signed.report_id == "EVR-2026Q1-0001"
    assert signed.manifest_sha256 == hashlib.sha256(files["manifest.json"]).hexdigest()
    manifest = ReportManifest.from_bytes(files["manifest.json"])
    assert [e.name for e in manifest.attachments] == EVIDENCE
    for entry in manifest.attachments:
        original = report.attachment(entry.name).data
        assert files[entry.name] == original
        assert entry.sha256 == hashlib.sha256(original).hexdigest() and entry.size == len(original)
    doc = json.loads(files["manifest.json"])
    assert doc["report"] == {"id": "EVR-2026Q1-0001", "kind": "evidence", "title": report.meta.title,
                             "generated_at": "2026-04-02T09:14:03Z", "created": "2026-04-02T09:30:00Z"}
    assert doc["ledger"]["checkpoint"]["size"] == 48_213 and doc["ledger"]["ledger_id"] == "ldg-7f3a9c2e51b04d8e"
    assert doc["pages"]["count"] == len(PdfReader(io.BytesIO(rendered.pdf)).pages)
    # the same public key verifies the ledger's checkpoint and the report
    open_note(files["checkpoint.note"], TRUSTED)
    assert verify_report(rendered.pdf, TRUSTED).ok


def test_two_renders_are_byte_identical(rendered):
    again = render_pdf(sample_report(SIGNER), SIGNER, created=SAMPLE_CREATED)
    assert again.pdf == rendered.pdf


def test_render_report_writes_the_file_atomically(tmp_path, rendered):
    out = render_report(sample_report(SIGNER), SIGNER, tmp_path / "deep" / "report.pdf", created=SAMPLE_CREATED)
    assert out.read_bytes() == rendered.pdf
    assert [p.name for p in out.parent.iterdir()] == ["report.pdf"]


def test_created_must_be_a_fixed_aware_datetime():
    with pytest.raises(RenderError, match="timezone-aware"):
        render_pdf(sample_report(SIGNER), SIGNER, created=dt.datetime(2026, 4, 2, 9, 30))


def test_refuses_to_sign_a_report_whose_checkpoint_another_key_signed():
    other = Signer("other-ledger", FOREIGN._key)  # noqa: SLF001 - a second, unrelated key
    with pytest.raises(RenderError, match="not signed by a trusted ledger key"):
        render_pdf(sample_report(other), SIGNER, created=SAMPLE_CREATED)


def _fonts_drawing(pdf: bytes) -> dict[str, bool]:
    """BaseFont name -> embedded, for every font the pages draw with."""
    fonts = {}
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendant = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            descriptor = descendant["/FontDescriptor"].get_object()
            fonts[str(font["/BaseFont"])] = any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3"))
    return fonts


def test_hangul_is_drawn_with_an_embedded_korean_font_not_empty_boxes():
    # The Korean packs and the demo's products carry Hangul, which DejaVu has no glyphs for.
    report = sample_report(SIGNER)
    korean = dataclasses.replace(report, meta=dataclasses.replace(report.meta, institution="예시은행 (Example Bank)"))
    english_fonts = _fonts_drawing(rendered_sample().pdf)
    korean_pdf = render_pdf(korean, SIGNER, created=SAMPLE_CREATED).pdf
    fonts = _fonts_drawing(korean_pdf)
    assert not any("MRM-Hangul" in name for name in english_fonts), "the Hangul font is embedded only when used"
    assert any(name.endswith("+MRM-Hangul") for name in fonts), sorted(fonts)
    assert all(fonts.values()), f"fonts not embedded: {[n for n, e in fonts.items() if not e]}"
    assert "예시은행" in page_texts(korean_pdf)[0]
