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
    # p-values to 4 significant digits on the page; exact in the attachment (checked above).
    for s in pending["significance"]:
        for key in ("p_value", "p_adjusted"):
            assert has(h, f"{s[key]:.4g}"), (s["metric"], key)
            assert not has(h, format_value(s[key], ValueKind.NUMBER)), (s["metric"], key)
    for c in pending["comparison"]:
        assert has(h, c["metric"])
    for phrase in ("PENDING APPROVAL", "mean_auc", "delong", "fidelity:task_churn", "kl 0.31 > max 0.15",
                   "rejected by the fidelity floor", "primary_improvement", "+22.63%", "-18.46%",
                   "min_relative_improvement"):
        assert has(h, phrase), phrase
    # The competition reject of v014 is routine: one row, no section of its own.
    assert not has(h, "Seq 20: reject of v014") and has(h, "Routine rejects")


def test_overrides_with_rationale_and_what_the_gate_had_said(history):
    h = history
    assert has(h, world.FORCE_REASON) and has(h, world.HOSTILE_OPERATOR)
    assert has(h, f"the gate decided reject at seq {h.known['reject']}, fidelity stage")
    assert has(h, "AGAINST GATE")
    assert has(h, f"the gate passed every check at seq {h.known['pending']} and left it for a human sign-off; a person approved it")
    assert has(h, f"v012 approved by {world.APPROVER}: {world.APPROVAL_REASON}")
    assert has(h, "1 decision(s) by a person against, or without, a current gate verdict")


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
                           "monitoring.parquet", "follow-ups.parquet"}
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
    # Each exceptional entry's leaf hash is printed shortened, one line; the attached proof holds
    # it whole. Routine entries (the reject of v014, the runs that did not alert) are proven
    # too, each kind in one row.
    routine = {h.known[k] for k in ("reject2", "fair1", "fair2", "drift1")}
    for entry in proofs["entries"]:
        printed = has(h, base64.b64decode(entry["leaf_hash"]).hex()[:12] + "\u2026")
        assert printed == (entry["seq"] not in routine), entry["seq"]
    assert has(h, f"Routine rejects (gate, in competition) model_promotion 1 {h.known['reject2']} \u2713 1 OF 1 PROVEN")
    assert has(h, f"Fairness monitor runs without an alert operation 2 {h.known['fair1']} to {h.known['fair2']} \u2713 2 OF 2 PROVEN")


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


# --------------------------------------------------------------------------- short enough to read


def _routine_ledger(path, keyring, rejects: int):
    """A slot bootstrapped once, then ``rejects`` weekly challengers that each lose in competition."""
    from gates.decision import GateInputs, decide
    from ledger import Ledger

    from .test_gates_decision import CHAMPION_SCORES, champion_dict, evaluation, policy

    world.KNOWN.clear()
    champion = world._evaluation(champion_dict(slot=world.SLOT))
    with Ledger.create(path, keyring, actor="gate-service") as ledger:
        world._log_decision(ledger, "bootstrap", decide(GateInputs(champion, None, policy(auto=True))), world.T0)
        for week in range(1, rejects + 1):
            loser = world._evaluation(evaluation(f"reco-2025w{week:02d}", CHAMPION_SCORES, 0.25,
                                                 trained_end="2026-05-04T03:00:00Z", slot=world.SLOT))
            observed = {a.path: a.sha256 for a in loser.lineage.artifacts}
            world._log_decision(ledger, f"week{week}", decide(GateInputs(loser, champion, policy(auto=False),
                                                                         observed_artifacts=observed)),
                                world.T0 + week * 7 * world.D)
    return dict(world.KNOWN)


def _render_routine(tmp_path, rejects: int):
    keyring = world.signing_keyring()
    known = _routine_ledger(tmp_path / f"ledger-{rejects}", keyring, rejects)
    report = build_validation_report(tmp_path / f"ledger-{rejects}", ValidationScope(world.SLOT),
                                     TrustPlan.hmac_chain(keyring), INFO)
    pdf = render_pdf(report, keyring.signer, created=CREATED).pdf
    return known, pdf, page_texts(pdf)


def test_routine_rejects_are_one_row_each_and_no_token_is_split(tmp_path):
    _, _, few = _render_routine(tmp_path, 3)
    many_known, pdf, many = _render_routine(tmp_path, 30)
    # 27 more weekly rejects: one row each (and one proof row each), not pages each.
    assert len(many) <= len(few) + 2, (len(few), len(many))
    text = "\n".join(many)
    rejects = {name: seq for name, seq in many_known.items() if name.startswith("week")}
    assert "Routine rejects decided by gate (policy" in text.replace("\n", " ")
    assert not any(f"Seq {seq}: reject" in text for seq in rejects.values())  # no section per routine reject
    # Every identifier appears whole on one line: a version, a sequence number, the short policy digest.
    lines = text.splitlines()
    for week, seq in ((int(name[4:]), seq) for name, seq in rejects.items()):
        row = [line for line in lines if line.startswith(f"{seq} ")]
        assert row, f"seq {seq} does not start a line of the routine rejects table"
        assert f"reco-2025w{week:02d}" in text
    rows = pq.read_table(io.BytesIO(embedded_bytes(pdf, "promotions.parquet"))).to_pylist()
    digests = {json.loads(r["details"])["replay"]["policy_digest"][:12] + "\u2026" for r in rows}
    for digest in digests:
        assert digest in text, digest
    # No word or identifier of the tables is cut by a line break inside it.
    for word in ("primary_improvement", "primary_significance", "BOOTSTRAP", "credit_pd", "competition"):
        assert word in text, word


def test_numbers_are_rounded_to_what_they_mean_and_nothing_reads_null(history):
    h = history
    pending = next(r for r in parquet(h, "promotions.parquet") if r["decision"] == "pending_approval")
    for c in pending["comparison"]:
        # AUC and the other metrics to 4 places; the relative change as a percentage.
        assert has(h, f"{c['champion']:.4f}") and has(h, f"{c['challenger']:.4f}"), c["metric"]
        assert not has(h, format_value(c["challenger"], ValueKind.NUMBER)), c["metric"]
        assert has(h, f"{c['delta_rel'] * 100:+.2f}%"), c["metric"]
    # An automatic decision names the gate and its policy as the one who decided; nothing is NULL
    # (the one NULL left is the method appendix saying what NULL would mean).
    digest = json.loads(pending["details"])["replay"]["policy_digest"]
    assert has(h, f"Decided by gate (policy {digest[:12]}\u2026)")
    assert "NULL" not in h.flat.replace(squash("NULL means the ledger holds no value"), "")


def test_report_verify_names_the_root_it_checked(history, tmp_path):
    h = history
    pdf = tmp_path / "validation.pdf"
    pdf.write_bytes(h.pdf)
    pub = tmp_path / "ledger.pub"
    pub.write_text("".join(v.to_vkey() + "\n" for v in h.keyring.verifiers()))
    result = CliRunner().invoke(main, ["report", "verify", str(pdf), "--public-key", str(pub)])
    assert result.exit_code == 0, result.output
    root = base64.b64encode(h.report.meta.checkpoint.root).decode("ascii")
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("VERIFIED: ") and f"root {root}" in last and f"{len(h.report.attachments)} attachments" in last, last
    assert f"size {h.report.meta.checkpoint.size:,} root {root}, signed by" in result.output


def test_verify_with_a_checkpoint_names_the_checkpoint_given(history, tmp_path):
    h = history
    from ledger.checkpoints import stored_notes
    from ledger.storage import Layout

    keyring_file = h.keyring.save(tmp_path / "keyring.json")
    size, note = stored_notes(Layout(h.ledger))[-1]
    root = h.report.meta.checkpoint.root if h.report.meta.checkpoint.size == size else None
    text = CliRunner().invoke(main, ["verify", str(h.ledger), "--keyring", str(keyring_file), "--checkpoint", str(note)])
    assert text.exit_code == 0, text.output
    line = next(l for l in text.output.splitlines() if l.startswith("given"))
    assert str(note) in line and f"checkpoint size {size:,} root " in line and "agrees" in line, line
    if root is not None:
        assert base64.b64encode(root).decode("ascii") in line
    doc = json.loads(CliRunner().invoke(main, ["verify", str(h.ledger), "--keyring", str(keyring_file),
                                               "--checkpoint", str(note), "--json"]).stdout)
    assert [(g["file"], g["size"]) for g in doc["checkpoints_given"]] == [(str(note), size)]
