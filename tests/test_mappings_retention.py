"""Log retention in the packs: the EU AI Act (Art. 19(1), 26(6): six months) and KFCPA
(Art. 28(1): ten years) check the retention lock the store reports for every sealed segment
holding an entry of the period (views ledger_retention and ledger_retention_objects), on a
ledger kept on the loopback S3 server under Object Lock, on one with a lock too short or
none, and on a directory (which keeps no lock: insufficient evidence)."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from click.testing import CliRunner

from forensics.session import LedgerSQL
from ledger import Keyring, Ledger
from ledger.note import Signer
from ledger.store import open_store
from ledger.transfer import mirror, retention_state
from mappings.evaluate import evaluate
from mrm.cli import main

from .conftest import KEY
from .helpers import log_event

SIGNING = Keyring.from_key("test-k1", KEY).with_signer(Signer.generate("retention-test"))
SIX_MONTHS = ("art19-1-provider-log-retention", "art26-6-deployer-log-retention")
LOCK, SEGMENTS_EU = "store-keeps-a-retention-lock", "segments-locked-six-months"
KFCPA_RECORDS, SEGMENTS_KR = "art28-1-record-keeping", "segments-locked-ten-years"


def run(*args, env=None):
    base = {"MRM_KEYRING": "", "MRM_HMAC_KEY": "", "MRM_PACKS_DIR": ""}
    return CliRunner().invoke(main, [str(a) for a in args], env={**base, **(env or {})})


def s3_ledger(s3_server, keyring, work, *, retain_days: int | None, object_lock: bool = True, n: int = 12) -> str:
    """A ledger on the S3 server: genesis (sealed on its own), then `n` entries sealed in
    segments of four."""
    url = f"s3://{s3_server.new_bucket(object_lock=object_lock)}/ledgers/{uuid.uuid4().hex[:8]}"
    Ledger.create(url, keyring, work_dir=work, actor="test", **({"retain_days": retain_days} if retain_days else {})).close()
    with Ledger.open(url, keyring, work_dir=work, actor="test") as ledger:
        for i in range(n):
            log_event(ledger, i)
            if (i + 1) % 4 == 0:
                ledger.seal()
    return url


def store_session(url: str, into) -> LedgerSQL:
    """What `mrm sql` / `mrm map` open for an s3:// ledger: its mirror, with the retention
    state read from the store itself."""
    view = mirror(open_store(url), into)
    return LedgerSQL.open(view.path, retention=retention_state(view.store, view.objects))


def item(result, requirement_id: str, evidence_id: str):
    return next(e for e in result.requirement(requirement_id).evidence if e.id == evidence_id)


def judged(session, pack: str, requirements):
    return evaluate(session, pack, as_if_in_force=True, requirements=requirements)


@pytest.fixture(scope="module")
def retained_200(s3_server, tmp_path_factory):
    """Six months and more (200 days) of retention: enough for the EU AI Act, not for KFCPA;
    with a signer, so every seal writes a checkpoint."""
    return s3_ledger(s3_server, SIGNING, tmp_path_factory.mktemp("work200"), retain_days=200)


def test_the_retention_views_hold_what_the_store_reports(retained_200, tmp_path):
    state = retention_state(open_store(retained_200))
    with store_session(retained_200, tmp_path / "mirror") as session:
        row = session.query("SELECT * FROM ledger_retention").to_pylist()[0]
        objects = session.query("SELECT * FROM ledger_retention_objects ORDER BY key").to_pylist()
    assert row["store_kind"] == "object storage" and row["retain_days"] == 200
    assert row["evidence_objects"] == len(objects) == state.retained + len(state.not_retained)
    assert row["retained"] == state.retained > 0 and row["not_retained"] == 0
    assert row["earliest_retain_until"] == state.earliest and row["mode"] == "COMPLIANCE"
    assert all(o["retained"] and o["mode"] == "COMPLIANCE" for o in objects)
    kinds = {o["kind"] for o in objects}
    assert kinds == {"ledger metadata", "segment file", "manifest record", "checkpoint"}, kinds
    segments = {(o["first_seq"], o["last_seq"]) for o in objects if o["kind"] == "manifest record"}
    assert segments == {(0, 0), (1, 4), (5, 8), (9, 12)}  # the genesis entry is sealed when the ledger is created
    assert all(o["first_seq"] is not None for o in objects if o["kind"] != "ledger metadata")
    checkpoints = {o["key"]: o["last_seq"] for o in objects if o["kind"] == "checkpoint"}
    assert checkpoints == {"checkpoints/000000000001.note": 0, "checkpoints/000000000005.note": 4, "checkpoints/000000000009.note": 8,
                           "checkpoints/000000000013.note": 12}


def test_six_months_of_retention_meets_the_eu_ai_act_and_is_a_gap_for_kfcpa(retained_200, tmp_path):
    with store_session(retained_200, tmp_path / "mirror") as session:
        eu = judged(session, "eu-ai-act", SIX_MONTHS)
        kr = judged(session, "kfcpa", [KFCPA_RECORDS])
    for requirement in SIX_MONTHS:
        assert item(eu, requirement, LOCK).status.value == "met"
        segments = item(eu, requirement, SEGMENTS_EU)
        assert segments.status.value == "met", segments.explanation
        assert segments.row_count == 4 and segments.offending_count == 0
    ten_years = item(kr, KFCPA_RECORDS, SEGMENTS_KR)
    assert ten_years.status.value == "gap", ten_years.explanation
    assert ten_years.offending_count == 4
    first = ten_years.offending.to_pylist()[0]
    assert first["locked_objects"] == first["objects"] > 0, "every object is locked, only not for long enough"
    assert first["locked_until"] < first["must_be_locked_until"]
    assert kr.requirement(KFCPA_RECORDS).status.value == "gap"


def test_too_short_a_lock_is_a_gap_naming_the_segments(s3_server, keyring, tmp_path):
    url = s3_ledger(s3_server, keyring, tmp_path / "work", retain_days=30)
    with store_session(url, tmp_path / "mirror") as session:
        result = judged(session, "eu-ai-act", SIX_MONTHS)
    for requirement in SIX_MONTHS:
        segments = item(result, requirement, SEGMENTS_EU)
        assert segments.status.value == "gap", segments.explanation
        assert [r["first_seq"] for r in segments.offending.to_pylist()] == [0, 1, 5, 9]
        assert result.requirement(requirement).status.value == "gap"


def test_object_storage_without_a_lock_is_a_gap(s3_server, keyring, tmp_path):
    url = s3_ledger(s3_server, keyring, tmp_path / "work", retain_days=None, object_lock=False)
    with store_session(url, tmp_path / "mirror") as session:
        row = session.query("SELECT retained, not_retained, evidence_objects, mode FROM ledger_retention").to_pylist()[0]
        result = judged(session, "eu-ai-act", SIX_MONTHS[:1])
    assert row["retained"] == 0 and row["not_retained"] == row["evidence_objects"] > 0 and row["mode"] is None
    segments = item(result, SIX_MONTHS[0], SEGMENTS_EU)
    assert segments.status.value == "gap" and segments.offending_count == 4
    assert {r["locked_objects"] for r in segments.offending.to_pylist()} == {0}


def test_a_directory_ledger_is_insufficient_evidence_with_the_reason(segmented):
    with LedgerSQL.open(segmented) as session:
        row = session.query("SELECT * FROM ledger_retention").to_pylist()[0]
        assert session.query("SELECT count(*) AS n FROM ledger_retention_objects").to_pylist() == [{"n": 0}]
        eu = judged(session, "eu-ai-act", SIX_MONTHS)
        kr = judged(session, "kfcpa", [KFCPA_RECORDS])
    assert row["store_kind"] == "directory" and row["retain_days"] is None and row["evidence_objects"] is None
    for result, requirement, segments_id in [(eu, SIX_MONTHS[0], SEGMENTS_EU), (eu, SIX_MONTHS[1], SEGMENTS_EU),
                                             (kr, KFCPA_RECORDS, SEGMENTS_KR)]:
        lock = item(result, requirement, LOCK)
        assert lock.status.value == "insufficient_evidence"
        assert "local directory keeps none" in lock.explanation and "its own retention controls" in lock.explanation
        assert item(result, requirement, segments_id).status.value == "insufficient_evidence"
        assert result.requirement(requirement).status.value != "gap"


def test_a_mirror_opened_without_the_stores_state_claims_no_retention(retained_200, tmp_path):
    view = mirror(open_store(retained_200), tmp_path / "mirror")
    with LedgerSQL.open(view.path) as session:
        row = session.query("SELECT * FROM ledger_retention").to_pylist()[0]
        result = judged(session, "eu-ai-act", SIX_MONTHS[:1])
    assert row["store_kind"] == "object storage" and row["retained"] is None and "not read" in row["summary"]
    assert item(result, SIX_MONTHS[0], LOCK).status.value == "insufficient_evidence"
    assert item(result, SIX_MONTHS[0], SEGMENTS_EU).status.value == "insufficient_evidence"


def test_mrm_map_and_sql_on_s3_read_the_retention_from_the_store(retained_200, tmp_path):
    env = {"MRM_WORK_DIR": str(tmp_path / "reader")}
    mapped = run("map", retained_200, "--pack", "eu-ai-act", "--as-if-in-force", "--no-bundle", "--json",
                 "--requirement", SIX_MONTHS[0], env=env)
    assert mapped.exit_code == 0, mapped.output
    doc = json.loads(mapped.output)
    evidence = {e["id"]: e for e in doc["requirements"][0]["evidence"]}
    assert evidence[LOCK]["status"] == "met" and evidence[SEGMENTS_EU]["status"] == "met", evidence[SEGMENTS_EU]["explanation"]
    assert evidence[SEGMENTS_EU]["row_count"] == 4

    gap = run("map", retained_200, "--pack", "kfcpa", "--no-bundle", "--requirement", KFCPA_RECORDS, "--fail-on-gap", env=env)
    assert gap.exit_code == 3, gap.output
    assert "segments-locked-ten-years" in gap.output

    queried = run("sql", retained_200, "SELECT store_kind, retain_days, not_retained, mode FROM ledger_retention",
                  "--format", "json", env=env)
    assert queried.exit_code == 0, queried.output
    assert json.loads(queried.stdout) == [{"store_kind": "object storage", "retain_days": 200, "not_retained": 0,
                                           "mode": "COMPLIANCE"}]


def test_mrm_map_on_a_directory_says_no_lock(segmented):
    result = run("map", segmented, "--pack", "kfcpa", "--no-bundle", "--json", "--requirement", KFCPA_RECORDS)
    assert result.exit_code == 0, result.output
    evidence = {e["id"]: e for e in json.loads(result.output)["requirements"][0]["evidence"]}
    assert evidence[LOCK]["status"] == "insufficient_evidence"
    assert "a local directory keeps none" in evidence[LOCK]["explanation"]
    assert evidence[SEGMENTS_KR]["status"] == "insufficient_evidence"



def test_the_evidence_report_on_s3_reads_the_retention_from_the_store(retained_200, tmp_path):
    ring = tmp_path / "ring.json"
    SIGNING.save(ring)
    out = tmp_path / "eu.pdf"
    made = run("report", "evidence", retained_200, "--pack", "eu-ai-act", "--as-if-in-force", "--keyring", ring,
               "-o", out, env={"MRM_WORK_DIR": str(tmp_path / "reader")})
    assert made.exit_code == 0, made.output
    from pypdf import PdfReader

    text = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(out).pages)
    for evidence in (LOCK, SEGMENTS_EU):
        shown = [text[m.end():m.end() + 40] for m in re.finditer(rf"Evidence: {evidence}", text)]
        assert len(shown) == 2 * 2, shown  # Art. 19(1) and 26(6), in the contents and in the body
        assert all("MET" in s for s in shown[2:]), shown
    assert "COMPLIANCE" in text and "not read" not in text
