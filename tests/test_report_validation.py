"""`mrm report validation`: a model slot's validation history for SR 11-7, checked against a
ledger whose every decision is known (tests/report_ledger.py). Rendered once per module."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ledger.proofs import verify_proof
from mrm.cli import main
from reports.documents import DocumentInfo, TrustPlan, ValidationScope, build_validation_report
from reports.documents.history import read_slot_history
from reports.documents.basis import establish_basis
from reports.model import Status, ValueKind
from reports.render import render_pdf
from reports.values import format_value
from reports.verify import AttachmentStatus, verify_report

from . import report_ledger as world
from .report_support import embedded_bytes, page_texts, replace_attachment, squash
from .test_gates_decision import P_CHURN, P_NEXT

CREATED = dt.datetime(2026, 4, 2, 9, 30, tzinfo=dt.timezone.utc)
INFO = DocumentInfo(institution="Example Bank N.A.", prepared_by="Model validation team",
                    generated_at=dt.datetime(2026, 4, 2, 9, 29, tzinfo=dt.timezone.utc))


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    root = tmp_path_factory.mktemp("validation-report")
    keyring = world.signing_keyring()
    known = world.build(root / "ledger", keyring)
    report = build_validation_report(root / "ledger", ValidationScope(world.SLOT), TrustPlan.hmac_chain(keyring), INFO)
    rendered = render_pdf(report, keyring.signer, created=CREATED)
    text = "\n".join(page_texts(rendered.pdf))
    return SimpleNamespace(root=root, ledger=root / "ledger", keyring=keyring, known=known, report=report, rendered=rendered,
                           pdf=rendered.pdf, text=text, flat=squash(text))


def has(h, phrase: str) -> bool:
    return squash(phrase) in h.flat


def parquet(h, name: str) -> list[dict]:
    return pq.read_table(io.BytesIO(embedded_bytes(h.pdf, name))).to_pylist()


# --------------------------------------------------------------------------- content


def test_every_gate_decision_with_its_metrics_tests_and_p_values(history):
    h = history
    rows = parquet(h, "promotions.parquet")
    assert [r["seq"] for r in rows] == sorted(h.known[k] for k in ("bootstrap", "pending", "approve", "reject", "force", "rollback", "reject2"))
    pending = next(r for r in rows if r["decision"] == "pending_approval")
    p = {s["metric"]: s for s in pending["significance"]}
    # The gate's DeLong p-values are pROC's, and the document prints them exactly as recorded.
    assert p["task_churn/auc"]["p_value"] == pytest.approx(P_CHURN, rel=1e-9)
    assert p["task_next_best/auc"]["p_adjusted"] == pytest.approx(2 * P_NEXT, rel=1e-9)
    for s in pending["significance"]:
        for key in ("p_value", "p_adjusted"):
            assert has(h, format_value(s[key], ValueKind.NUMBER)), (s["metric"], key)
    for c in pending["comparison"]:
        assert has(h, c["metric"])
    for phrase in ("PENDING APPROVAL", "mean_auc", "delong", "fidelity:task_churn", "kl 0.31 > max 0.15",
                   "rejected by the fidelity floor", "primary_improvement", "+22.63%", "-18.46%",
                   "min_relative_improvement", "Seq 20: reject of v014"):
        assert has(h, phrase), phrase


def test_overrides_with_rationale_and_what_the_gate_had_said(history):
    h = history
    assert has(h, world.FORCE_REASON) and has(h, world.HOSTILE_OPERATOR)
    assert has(h, f"the gate decided reject at seq {h.known['reject']}, fidelity stage")
    assert has(h, "AGAINST GATE")
    assert has(h, f"the gate passed every check at seq {h.known['pending']} and left it for a human sign-off; a person approved it")
    assert has(h, f"v012 approved by {world.APPROVER}: {world.APPROVAL_REASON}")
    assert has(h, "1 version(s) put into production by a person against, or without, a gate verdict")


def test_rollbacks_timeline_and_monitoring(history):
    h = history
    assert has(h, world.ROLLBACK_OPERATOR) and has(h, world.ROLLBACK_REASON) and has(h, "ROLLBACK")
    # Production timeline: v011 -> v012 (approved) -> v013 (forced) -> v012 (rolled back), still production.
    for phrase in ("bootstrap (seq 1)", f"approve (seq {h.known['approve']})", f"force_promote (seq {h.known['force']})",
                   f"rollback (seq {h.known['rollback']})", "still production", "production → rolled_back"):
        assert has(h, phrase), phrase
    # Fairness: DI per run with its band; the v013 run breaches it.
    assert has(h, "band [0.8, 1.25]") and has(h, "0.7000") and has(h, "BREACH, ALERTED") and has(h, "FAIRNESS ALERT")
    assert has(h, "0.9500") and has(h, "FAIR")
    # Drift: PSI with the policy's thresholds; one significant run and its alert.
    runs = [r for r in parquet(h, "monitoring.parquet") if r["event_type"] == "monitor_run"]
    drift = [json.loads(r["details"]) for r in runs if json.loads(r["details"])["kind"] == "drift"]
    assert [d["results"][0]["status"] for d in drift] == ["stable", "significant_drift"]
    assert has(h, format_value(drift[1]["results"][0]["psi"], ValueKind.NUMBER, _four()))
    assert has(h, "SIGNIFICANT") and has(h, "investigate (0.1) and act (0.25) thresholds, as recorded in the gate's policy")
    assert has(h, "propose_retrain")


def _four():
    from reports.model import Column

    return Column("PSI", ValueKind.NUMBER, precision=4)


def test_charts_where_a_person_would_rather_look(history):
    captions = [f.caption for f in history.report.figures()]
    assert len(captions) == 4
    assert captions[0].startswith("Primary metric of the champion and the challenger at each gate decision")
    assert "relative improvement +0.50%" in captions[0]
    assert captions[1].startswith("Cumulative number of promotion decisions")
    assert captions[2].startswith("Disparate impact of the worst segment at each fairness run")
    assert "fair band [0.8, 1.25]" in captions[2] and "1 of 3 run(s) alerted" in captions[2]
    assert captions[3].startswith("PSI per feature at each drift run")
    assert all(f"Figure {i}." in history.text for i in range(1, 5))


def test_cover_status_and_citations(history):
    h = history
    assert h.report.meta.verification.status is Status.PASS
    assert has(h, "Model validation history: credit_pd") and has(h, "Example Bank N.A.") and has(h, "SR 11-7")
    assert has(h, "Ledger verified (HMAC chain)") and has(h, "16 of 16 inclusion proofs verify")


# --------------------------------------------------------------------------- integrity


def test_attachments_match_the_signed_manifest(history):
    h = history
    result = verify_report(h.pdf, h.keyring.verifiers())
    assert result.ok, result.problems
    listed = {e.name: e.sha256 for e in result.manifest.attachments}
    assert set(listed) == {"verification.json", "checkpoint.note", "inclusion-proofs.json", "promotions.parquet",
                           "production-periods.parquet", "registry-history.parquet", "registry-problems.parquet",
                           "monitoring.parquet"}
    for name, digest in listed.items():
        assert hashlib.sha256(embedded_bytes(h.pdf, name)).hexdigest() == digest
    verification = json.loads(embedded_bytes(h.pdf, "verification.json"))
    assert verification["method"] == "hmac-chain" and verification["result"] == "pass"
    assert verification["ledger_check"]["report"]["path"] == "ledger"  # no file system path of the institution


def test_the_embedded_proofs_cover_every_entry_shown(history):
    h = history
    proofs = json.loads(embedded_bytes(h.pdf, "inclusion-proofs.json"))
    report = verify_proof(proofs, h.keyring.verifiers())
    assert report.ok, report.problems
    assert {e["seq"] for e in report.entries} == set(h.known.values()) - {h.known[k] for k in ("access", "inference", "attribution", "guardrail", "outcome")}
    for entry in proofs["entries"]:
        assert has(h, base64.b64decode(entry["leaf_hash"]).hex())


def test_an_altered_attachment_is_reported(history):
    h = history
    rows = pq.read_table(io.BytesIO(embedded_bytes(h.pdf, "promotions.parquet")))
    forged = replace_attachment(h.pdf, "promotions.parquet", embedded_bytes(h.pdf, "monitoring.parquet"))
    result = verify_report(forged, h.keyring.verifiers())
    assert not result.ok and rows.num_rows == 7
    assert {a.name: a.status for a in result.attachments}["promotions.parquet"] is AttachmentStatus.ALTERED


def test_hostile_operator_name_is_text_and_never_fetched(history):
    h = history
    assert has(h, world.HOSTILE_OPERATOR)
    assert all(u.startswith("mrm-asset:") for u in h.rendered.requested_urls)


# --------------------------------------------------------------------------- period


def test_a_period_keeps_what_the_gate_said_before_it(history):
    h = history
    basis = establish_basis(h.ledger, TrustPlan.inclusion_proofs(h.keyring.verifiers()))
    since = world.T0 + 15 * world.D
    slot = read_slot_history(basis.source, world.SLOT, since, world.T0 + 18 * world.D)
    assert [d.decision for d in slot.decisions] == ["force_promote", "rollback"]
    force = next(f for f in slot.override_findings() if f.decision.decision == "force_promote")
    assert force.gate_seq == h.known["reject"] and force.against_the_gate  # the reject is before the period
    assert {r.seq for r in slot.runs} == {h.known["fair3"], h.known["drift2"]}
    shown = slot.query("promotions").shown()
    assert "ts >= '2025-03-18T09:00:00.000000Z'" in shown and "ts < '2025-03-21T09:00:00.000000Z'" in shown


# --------------------------------------------------------------------------- command line


def test_cli_with_public_key_verification(history, tmp_path):
    h = history
    keyring_file = h.keyring.save(tmp_path / "keyring.json")
    pub = tmp_path / "ledger.pub"
    pub.write_text("".join(v.to_vkey() + "\n" for v in h.keyring.verifiers()))
    out = tmp_path / "validation.pdf"
    result = CliRunner().invoke(main, [
        "report", "validation", str(h.ledger), "--slot", world.SLOT, "--keyring", str(keyring_file), "--public-key", str(pub),
        "--from", "2025-03-18T00:00:00Z", "--to", "2025-03-24T00:00:00Z", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "pass" and "signed checkpoints" in doc["verification"]
    assert doc["report_id"].startswith("VAL-") and "20250318-20250324" in doc["report_id"]
    assert verify_report(out, h.keyring.verifiers()).ok
    bad = CliRunner().invoke(main, ["report", "validation", str(h.ledger), "--slot", world.SLOT, "--keyring", str(keyring_file),
                                    "--from", "2025-03-24T00:00:00Z", "--to", "2025-03-18T00:00:00Z"])
    assert bad.exit_code == 2 and "is not after" in bad.output
