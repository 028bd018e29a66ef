"""An examiner holds no secret: documents built from a ledger copy with only its public
key, signed with the examiner's own key or left unsigned and labelled so, and checked
with `mrm report verify`."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

from mrm.cli import main

from . import report_ledger as world
from .report_support import embedded_bytes, page_texts, remove_attachment, replace_attachment, squash

CREATED = "2026-04-02T09:30:00Z"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def examiner(tmp_path_factory):
    """A ledger copy, the ledger's public key, and no keyring anywhere the CLI looks."""
    root = tmp_path_factory.mktemp("examiner")
    keyring = world.signing_keyring()
    world.build(root / "ledger", keyring)
    public = root / "ledger.pub"
    public.write_text("".join(v.to_vkey() + "\n" for v in keyring.verifiers()))
    return root


@pytest.fixture(autouse=True)
def no_secrets_in_the_environment(monkeypatch):
    monkeypatch.delenv("MRM_KEYRING", raising=False)
    monkeypatch.delenv("MRM_HMAC_KEY", raising=False)


def _decision(examiner, *extra):
    return run("report", "decision", examiner / "ledger", "--request-id", world.REQUEST, "--public-key",
               examiner / "ledger.pub", "--created", CREATED, *extra)


def test_public_key_alone_asks_for_a_signing_key_or_unsigned(examiner):
    result = _decision(examiner, "-o", examiner / "never.pdf")
    assert result.exit_code == 2
    assert "--signing-key" in result.output and "--unsigned" in result.output
    assert "HMAC" not in result.output and not (examiner / "never.pdf").exists()
    both = _decision(examiner, "--unsigned", "--signing-key", examiner / "ledger.pub", "-o", examiner / "never.pdf")
    assert both.exit_code == 2 and "contradict" in both.output


def test_generate_signing_writes_a_private_key_only_its_owner_reads(examiner):
    result = run("keys", "generate-signing", "examiner-jkim", "--out", examiner / "jkim.key",
                 "--public-out", examiner / "jkim.pub")
    assert result.exit_code == 0, result.output
    key = (examiner / "jkim.key").read_text()
    assert key.startswith("PRIVATE+KEY+examiner-jkim+")
    assert stat.S_IMODE(os.stat(examiner / "jkim.key").st_mode) == 0o600
    vkey = (examiner / "jkim.pub").read_text().strip()
    assert vkey.startswith("examiner-jkim+") and vkey in result.output and key.strip() not in result.output
    again = run("keys", "generate-signing", "examiner-jkim", "--out", examiner / "jkim.key")
    assert again.exit_code == 2 and "refusing to overwrite" in again.output
    assert (examiner / "jkim.key").read_text() == key
    bad = run("keys", "generate-signing", "has space", "--out", examiner / "bad.key")
    assert bad.exit_code == 2 and not (examiner / "bad.key").exists()


@pytest.fixture(scope="module")
def author_signed(examiner):
    if not (examiner / "jkim.key").exists():
        assert run("keys", "generate-signing", "examiner-jkim", "--out", examiner / "jkim.key",
                   "--public-out", examiner / "jkim.pub").exit_code == 0
    out = examiner / "by-examiner.pdf"
    result = _decision(examiner, "--signing-key", examiner / "jkim.key", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output[result.output.index("{"):])


def test_an_examiner_signs_a_dossier_with_their_own_key(examiner, author_signed):
    out, doc = author_signed
    assert doc["signed_by"].startswith("examiner-jkim+")
    text = squash("\n".join(page_texts(out.read_bytes())))
    assert squash("signed with the author's own key examiner-jkim+") in text
    both = run("report", "verify", out, "--public-key", examiner / "ledger.pub", "--public-key", examiner / "jkim.pub")
    assert both.exit_code == 0, both.output
    assert "VERIFIED" in both.output and "signature   valid, by examiner-jkim+" in both.output
    # the ledger's key alone does not vouch for the examiner's document
    ledger_only = run("report", "verify", out, "--public-key", examiner / "ledger.pub", "--json")
    assert ledger_only.exit_code == 1
    assert json.loads(ledger_only.output)["signature"]["status"] == "untrusted"
    # the examiner's key alone cannot vouch for the ledger's checkpoint
    author_only = json.loads(run("report", "verify", out, "--public-key", examiner / "jkim.pub", "--json").output)
    assert author_only["ok"] is False and author_only["checkpoint"]["status"] == "invalid"


def test_report_verify_names_the_root_it_checked(examiner, author_signed):
    out, doc = author_signed
    result = run("report", "verify", out, "--public-key", examiner / "ledger.pub", "--public-key", examiner / "jkim.pub")
    manifest = json.loads(embedded_bytes(out.read_bytes(), "manifest.json"))
    assert f"root {manifest['ledger']['checkpoint']['root']}" in result.output


@pytest.fixture(scope="module")
def unsigned(examiner):
    out = examiner / "unsigned.pdf"
    result = _decision(examiner, "--unsigned", "-o", out)
    assert result.exit_code == 0, result.output
    assert "UNSIGNED" in result.output and "--allow-unsigned" in result.output
    return out


def test_an_unsigned_dossier_says_so_and_verifies_only_when_allowed(examiner, unsigned):
    pdf = unsigned.read_bytes()
    assert squash("This document is UNSIGNED") in squash("\n".join(page_texts(pdf)))
    refused = run("report", "verify", unsigned, "--public-key", examiner / "ledger.pub")
    assert refused.exit_code == 1 and "unsigned" in refused.output and "--allow-unsigned" in refused.output
    allowed = run("report", "verify", unsigned, "--public-key", examiner / "ledger.pub", "--allow-unsigned")
    assert allowed.exit_code == 0, allowed.output
    assert "VERIFIED, UNSIGNED" in allowed.output and "signature   NONE" in allowed.output
    doc = json.loads(run("report", "verify", unsigned, "--public-key", examiner / "ledger.pub", "--allow-unsigned",
                         "--json").output)
    assert doc["signature"]["status"] == "unsigned" and doc["checkpoint"]["status"] == "ok"


def test_an_unsigned_dossier_still_catches_an_altered_attachment_and_a_foreign_checkpoint(examiner, unsigned, tmp_path):
    pdf = unsigned.read_bytes()
    manifest = json.loads(embedded_bytes(pdf, "manifest.json"))
    target = next(a["name"] for a in manifest["attachments"] if a["name"].endswith(".json") and "checkpoint" not in a["name"])
    altered = tmp_path / "altered.pdf"
    altered.write_bytes(replace_attachment(pdf, target, b"{}\n"))
    result = run("report", "verify", altered, "--public-key", examiner / "ledger.pub", "--allow-unsigned")
    assert result.exit_code == 1 and "ALTERED" in result.output and target in result.output
    # without the ledger's key nothing in an unsigned report can be trusted
    stranger = tmp_path / "stranger.pub"
    assert run("keys", "generate-signing", "stranger", "--out", tmp_path / "s.key", "--public-out", stranger).exit_code == 0
    foreign = run("report", "verify", unsigned, "--public-key", stranger, "--allow-unsigned", "--json")
    assert foreign.exit_code == 1 and json.loads(foreign.output)["checkpoint"]["status"] == "invalid"


def test_a_signature_stripped_from_a_signed_report_is_refused(examiner, author_signed, tmp_path):
    out, _ = author_signed
    stripped = tmp_path / "stripped.pdf"
    stripped.write_bytes(remove_attachment(out.read_bytes(), "manifest.json.sig"))
    result = run("report", "verify", stripped, "--public-key", examiner / "ledger.pub", "--public-key", examiner / "jkim.pub")
    assert result.exit_code == 1 and "signature was removed" in result.output


def test_an_evidence_pack_built_with_public_keys_only_and_proofs(examiner, author_signed):
    out = examiner / "pack.pdf"
    result = run("report", "evidence", examiner / "ledger", "--pack", "sr-11-7", "--public-key", examiner / "ledger.pub",
                 "--signing-key", examiner / "jkim.key", "--verification", "proofs", "--created", CREATED, "-o", out)
    assert result.exit_code == 0, result.output
    check = run("report", "verify", out, "--public-key", examiner / "ledger.pub", "--public-key", examiner / "jkim.pub")
    assert check.exit_code == 0, check.output
