"""`mrm report verify`: exit 0 verified, 1 integrity failure, 2 usage or input error."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mrm.cli import main

from .report_support import FOREIGN, SIGNER, remove_attachment, rendered_sample, replace_attachment, reseal


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def files(tmp_path):
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(rendered_sample().pdf)
    key = tmp_path / "ledger.vkey"
    key.write_text(f"# checkpoint and report key\n{SIGNER.verifier().to_vkey()}\n")
    return pdf, key, tmp_path


def test_a_good_report_verifies(files):
    pdf, key, _ = files
    result = run("report", "verify", pdf, "--public-key", key)
    assert result.exit_code == 0, result.output
    assert "VERIFIED" in result.output and "EVR-2026Q1-0001" in result.output
    doc = json.loads(run("report", "verify", pdf, "--public-key", key, "--json").output)
    assert doc["ok"] is True and {a["status"] for a in doc["attachments"]} == {"ok"}


def test_an_altered_attachment_exits_1_and_names_it(files):
    pdf, key, tmp = files
    bad = tmp / "altered.pdf"
    bad.write_bytes(replace_attachment(pdf.read_bytes(), "verification.json", b'{"ok": true, "problems": []}\n'))
    result = run("report", "verify", bad, "--public-key", key)
    assert result.exit_code == 1
    assert "ALTERED" in result.output and "verification.json" in result.output and "FAILED: 1 problem" in result.output


def test_a_missing_manifest_or_a_foreign_signature_exits_1(files):
    pdf, key, tmp = files
    for name, data in (("stripped.pdf", remove_attachment(pdf.read_bytes(), "manifest.json")),
                       ("foreign.pdf", reseal(pdf.read_bytes(), FOREIGN, replace={"psi.parquet": b"x"}))):
        path = tmp / name
        path.write_bytes(data)
        result = run("report", "verify", path, "--public-key", key, "--json")
        assert result.exit_code == 1, name
        doc = json.loads(result.output)
        assert doc["ok"] is False and doc["refused"] and doc["attachments"] == []


def test_usage_and_input_errors_exit_2(files):
    pdf, key, tmp = files
    assert run("report", "verify", pdf).exit_code == 2  # no --public-key
    assert run("report", "verify", tmp / "missing.pdf", "--public-key", key).exit_code == 2
    not_pdf = tmp / "notes.txt"
    not_pdf.write_text("hello")
    result = run("report", "verify", not_pdf, "--public-key", key)
    assert result.exit_code == 2 and "not a PDF" in result.output
    bad_key = tmp / "bad.vkey"
    bad_key.write_text("not-a-key\n")
    result = run("report", "verify", pdf, "--public-key", bad_key)
    assert result.exit_code == 2 and "bad.vkey:1: not a public key" in result.output
