"""`reconstruct`: the full record of one decision, field by field, and what it rests on."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from forensics.attestation import HmacChainVerifier, IntegrityFailure
from forensics.errors import Ambiguous, ForensicsError, NotFound
from forensics.reconstruct import Reconstructor, reconstruct
from forensics.session import LedgerSQL
from ledger import Keyring
from ledger.key_index import INDEX_DIR

from .conftest import OTHER_KEY
from .forensic_ledger import DIGEST, T0, H, US
from .helpers import edit_rows, fingerprint, segment_files
from .test_sql_views import KEYRING, known, known_template  # noqa: F401  (fixtures)


def test_request_record_field_by_field(known):  # noqa: F811
    path, seqs = known
    before = fingerprint(path)
    r = reconstruct(path, request_id="r1")
    assert fingerprint(path) == before
    assert (r.request_id, r.subject_id) == ("r1", "s1")
    i = r.inference
    assert (i.entry.seq, i.entry.table, i.entry.ts, i.entry.actor, i.entry.key_id) == (seqs["r1.inference"], "model_inference", T0 + H + 10 * US, "reco-api", "test-k1")
    assert len(i.entry.mac) == 64
    assert (i.model_slot, i.model_version, i.route, i.input_digest, i.decision, i.latency_ms) == ("reco", "reco-v1", "champion", DIGEST["r1"], "els_note", 3.5)
    assert i.scores == (("els_note", 0.7), ("deposit_12m", 0.2), ("bond_fund", 0.1))
    [a] = r.data_access
    assert (a.entry.seq, a.operator, a.subject_id, a.dataset, a.columns, a.purpose, a.access_type, a.row_count) == (
        seqs["r1.access"], "teller-1", "s1", "crm.profile", ("age", "assets"), "suitability_assessment", "read", 1)
    [att] = r.attributions
    assert (att.entry.seq, att.method, att.model_version) == (seqs["r1.attribution"], "shap", "reco-v1")
    assert [(f.feature, f.value, f.contribution) for f in r.top_attributions] == [("risk_tolerance", -1.5, -0.42), ("assets", 2.0, 0.31), ("age", 41.0, 0.05)]
    [g] = r.guardrails
    assert (g.entry.seq, g.gate, g.verdict, g.criteria, g.reason, g.original_output, g.final_output) == (
        seqs["r1.guardrail"], "kfcpa_art17", "modify", (("risk_gap", 2.0),), "risk grade above profile", "els_note", "balanced_fund")
    assert r.served_output == "balanced_fund"
    p = r.promotion
    assert (p.entry.seq, p.decision, p.trigger, p.operator, p.challenger_version, p.champion_version) == (seqs["bootstrap"], "bootstrap", "auto", None, "reco-v1", None)
    assert (p.reason, p.live_from, p.live_until) == ("no champion in slot reco", T0, T0 + 3 * H)
    assert (r.version_state, r.champion_version) == ("production", "reco-v1")
    assert r.other_decisions == () and r.notes == ()
    assert not r.attestation.verified and r.attestation.through_seq == 25
    assert r.lookup.startswith("key index")


def test_the_promotion_that_made_the_version_live_names_approver_and_reason(known):  # noqa: F811
    path, seqs = known
    r2 = reconstruct(path, request_id="r2")
    assert (r2.promotion.entry.seq, r2.promotion.decision, r2.promotion.operator, r2.promotion.reason) == (
        seqs["force"], "force_promote", "officer-7", "urgent fix of the suitability mapping (MRM-118)")
    assert r2.promotion.champion_version == "reco-v1"
    r5 = reconstruct(path, request_id="r5")  # unsealed: still in the write-ahead log
    assert (r5.promotion.entry.seq, r5.promotion.decision, r5.promotion.operator) == (seqs["approve"], "approve", "head-of-mrm")
    assert r5.promotion.live_until is None


def test_blocked_and_shadow_decisions_say_so(known):  # noqa: F811
    path, _ = known
    r3 = reconstruct(path, request_id="r3")
    assert r3.served_output is None and r3.guardrails[0].verdict == "block"
    assert "the guardrail served nothing (blocked)" in r3.notes
    r4 = reconstruct(path, request_id="r4")
    assert r4.promotion is None and r4.champion_version == "reco-v2" and r4.version_state is None
    assert any("had never been production" in n for n in r4.notes)
    assert "shadow inference: its output was not served" in r4.notes
    assert "no data_access entry names this request" in r4.notes


@pytest.mark.parametrize(
    "at, expected",
    [
        ("2025-09-01T01:00:00.000010Z", "r1"),  # the inference's own instant
        ("2025-09-01T03:59:59Z", "r1"),
        ("2025-09-01T13:00:01+09:00", "r2"),  # 04:00:01Z, just after r2
        ("2025-09-02T00:00:00Z", "r2"),  # r4 is a shadow inference: never a candidate
        (None, "r2"),
    ],
)
def test_by_subject_at_an_instant(known, at, expected):  # noqa: F811
    path, seqs = known
    r = reconstruct(path, subject_id="s1", at=at)
    assert r.request_id == expected
    assert [o.request_id for o in r.other_decisions] == [x for x in ("r1", "r2") if x != expected]
    assert any("shadow" in n for n in r.notes)


def test_subject_not_found_or_too_early(known):  # noqa: F811
    path, _ = known
    with pytest.raises(NotFound, match="no model_inference entry for subject 'nobody'"):
        reconstruct(path, subject_id="nobody")
    with pytest.raises(NotFound, match="their first is request r1"):
        reconstruct(path, subject_id="s1", at="2025-09-01T00:30:00Z")
    with pytest.raises(NotFound, match="no model_inference entry for request 'zz'"):
        reconstruct(path, request_id="zz")


@pytest.mark.parametrize("bad", ["2025-09-01", "2025-09-01T10:00:00", "yesterday"])
def test_instants_need_a_time_zone(known, bad):  # noqa: F811
    with pytest.raises(ForensicsError, match="time zone|ISO 8601"):
        reconstruct(known[0], subject_id="s1", at=bad)


def test_arguments_are_checked(known):  # noqa: F811
    with pytest.raises(ForensicsError, match="exactly one"):
        reconstruct(known[0])
    with pytest.raises(ForensicsError, match="exactly one"):
        reconstruct(known[0], request_id="r1", subject_id="s1")
    with pytest.raises(ForensicsError, match="with --subject"):
        reconstruct(known[0], request_id="r1", at="2025-09-01T00:00:00Z")


def test_a_reused_request_id_is_ambiguous_until_a_seq_is_picked(tmp_path):
    from ledger import Ledger

    path = tmp_path / "dup"
    with Ledger.create(path, KEYRING) as ledger:
        first = ledger.log_model_inference(ts=T0, request_id="same", subject_id="a", model_slot="m", model_version="v",
                                           input_digest="0" * 64, decision="x", latency_ms=1.0)
        second = ledger.log_model_inference(ts=T0 + H, request_id="same", subject_id="b", model_slot="m", model_version="v",
                                            input_digest="1" * 64, decision="y", latency_ms=1.0)
    with pytest.raises(Ambiguous, match=f"seq {first} .*seq {second}"):
        reconstruct(path, request_id="same")
    assert reconstruct(path, request_id="same", inference_seq=second).subject_id == "b"


def test_record_as_json_and_text(known):  # noqa: F811
    r = reconstruct(known[0], request_id="r1")
    doc = json.loads(r.to_json())
    assert doc["inference"]["scores"] == {"els_note": 0.7, "deposit_12m": 0.2, "bond_fund": 0.1}
    assert doc["inference"]["entry"]["ts"] == "2025-09-01T01:00:00.000010Z"
    assert doc["promotion"]["decision"] == "bootstrap" and doc["attestation"]["verified"] is False
    assert doc["guardrails"][0]["criteria"] == {"risk_gap": 2.0}
    text = r.to_text()
    for fragment in ("request r1", "NOT VERIFIED in this run", "teller-1 read crm.profile", "purpose suitability_assessment",
                     "risk_tolerance", "kfcpa_art17: MODIFY  els_note -> balanced_fund", "bootstrap of reco-v1", "reason: no champion"):
        assert fragment in text, fragment


def test_reconstruct_matches_the_decisions_view(known):  # noqa: F811
    path, _ = known
    with LedgerSQL.open(path) as s, Reconstructor.open(path) as rec:
        for row in s.query("SELECT * FROM decisions").to_pylist():
            r = rec.reconstruct(request_id=row["request_id"])
            assert r.inference.entry.seq == row["inference_seq"] and r.served_output == row["served_output"]
            assert (r.promotion.entry.seq if r.promotion else None) == row["promotion_seq"]
            assert r.champion_version == row["champion_version"]
            assert [g.entry.seq for g in r.guardrails] == [g["seq"] for g in row["guardrails"] or []]


def test_verified_run_rests_on_the_verified_chain_and_scans(known):  # noqa: F811
    path, _ = known
    r = reconstruct(path, request_id="r5", verifier=HmacChainVerifier(KEYRING))
    assert r.attestation.verified and r.attestation.through_seq == 25
    assert r.lookup.startswith("full scan")
    assert r.attestation.line().startswith("verified (hmac-chain)")


def test_verified_run_refuses_a_tampered_ledger(known):  # noqa: F811
    path, _ = known
    [f] = [f for f in segment_files(path, "guardrail") if "000000000015" in f.name]
    edit_rows(f, "guardrail", lambda rows: [{**r, "verdict": "pass"} if r["request_id"] == "r3" else r for r in rows])
    unverified = reconstruct(path, request_id="r3")  # the forged row reads fine when nothing is checked...
    assert unverified.guardrails[0].verdict == "pass" and not unverified.attestation.verified
    with pytest.raises(IntegrityFailure) as caught:  # ...and is refused when the chain is checked
        reconstruct(path, request_id="r3", verifier=HmacChainVerifier(KEYRING))
    assert not caught.value.verification.ok and caught.value.verification.problems
    with pytest.raises(IntegrityFailure):
        reconstruct(path, request_id="r1", verifier=HmacChainVerifier(Keyring.from_key("test-k1", OTHER_KEY)))


def test_a_lying_side_index_cannot_invent_but_only_hide_and_a_verified_run_ignores_it(known):  # noqa: F811
    from ledger.key_index import encode_index, index_path
    from ledger.storage import Layout, read_manifest

    path, _ = known
    records, _ = read_manifest(Layout(path))
    segment = next(r for r in records if r.first_seq <= 3 <= r.last_seq)
    # A forged index for the segment holding r1: it leaves r1 out and claims a request "ghost".
    forged = encode_index(segment.first_seq, segment.last_seq, segment.files, {"model_inference": pa.table({"request_id": ["ghost"]})})
    index_path(Layout(path), segment.first_seq, segment.last_seq).write_bytes(forged)
    with pytest.raises(NotFound):
        reconstruct(path, request_id="r1")  # hidden from an unverified lookup...
    with pytest.raises(NotFound):
        reconstruct(path, request_id="ghost")  # ...but nothing can be made up: rows come from the listed files
    found = reconstruct(path, request_id="r1", verifier=HmacChainVerifier(KEYRING))
    assert found.inference.entry.seq == 3  # and a verified run does not rely on the index


def test_missing_torn_or_stale_indexes_fall_back_to_scanning(known):  # noqa: F811
    path, _ = known
    indexes = sorted((path / INDEX_DIR).glob("*.keys"))
    indexes[1].write_bytes(indexes[1].read_bytes()[:-3])  # torn
    indexes[2].unlink()  # missing
    with Reconstructor.open(path) as r:
        assert r.reconstruct(request_id="r1").request_id == "r1"
        assert r.reconstruct(request_id="r4").request_id == "r4"
        assert "without an index" in r.reconstruct(request_id="r2").lookup
        assert any("torn" in p for p in r.reader.index.problems)


def test_warm_lookups_reuse_one_reader(known):  # noqa: F811
    with Reconstructor.open(known[0]) as r:
        got = [r.reconstruct(request_id=f"r{i}").inference.model_version for i in range(1, 6)]
    assert got == ["reco-v1", "reco-v2", "reco-v2", "reco-v3", "reco-v3"]


def test_ledger_grown_after_verification_answers_only_verified_entries(known):  # noqa: F811
    """Entries appended, or sealed into new files, after the verifier looked are left out."""
    from forensics.attestation import Verification

    path, seqs = known  # segments: genesis, 1-15, 16-20; entries 21-25 in the write-ahead log

    def saw_three_segments(p):  # r5 was appended after verification
        return Verification(True, "test", segments=3, through_seq=seqs["approve"], summary="checked up to approve")

    with Reconstructor.open(path, verifier=saw_three_segments) as r:
        assert r.attestation.through_seq == seqs["approve"]
        with pytest.raises(NotFound):
            r.reconstruct(request_id="r5")
        assert r.reconstruct(request_id="r4").request_id == "r4"

    def saw_two_segments(p):  # 16-20 were checked in the log, then sealed into files it never read
        return Verification(True, "test", segments=2, through_seq=seqs["approve"], summary="checked up to approve")

    with Reconstructor.open(path, verifier=saw_two_segments) as r:
        assert r.attestation.through_seq == 15
        with pytest.raises(NotFound):
            r.reconstruct(request_id="r4")
        assert r.reconstruct(request_id="r3").request_id == "r3"


def test_signed_checkpoints_verify_with_public_keys_only(tmp_path):
    """The examiner's case: no HMAC key, only the ledger's public keys. Answers rest on the
    newest signed checkpoint; entries written after it are left out."""
    from ledger import Ledger
    from forensics.attestation import SignedCheckpointVerifier

    from .forensic_ledger import _request

    keyring = Keyring.generate("sig-k1")
    path = tmp_path / "signed"
    with Ledger.create(path, keyring, actor="reco-api") as ledger:
        ledger.log_model_promotion(ts=T0, slot="reco", challenger_version="reco-v1", decision="bootstrap", trigger="auto", reason="first")
        _request(ledger, "r1", "s1", T0 + H, "reco-v1", "els_note", "pass", "els_note")
    with Ledger.open(path, keyring, actor="reco-api", checkpoint_interval=3600) as ledger:
        _request(ledger, "r2", "s1", T0 + 2 * H, "reco-v1", "bond_fund", "pass", "bond_fund")
        ledger.flush()
        public = SignedCheckpointVerifier(keyring.verifiers())
        with Reconstructor.open(path, verifier=public) as r:
            record = r.reconstruct(request_id="r1")
            assert record.attestation.verified and record.attestation.verification.method == "signed-checkpoint"
            assert record.attestation.through_seq == 5 and "checkpoint of 6 entries signed" in record.attestation.line()
            with pytest.raises(NotFound):
                r.reconstruct(request_id="r2")  # newer than the newest checkpoint
            assert record.promotion.decision == "bootstrap" and record.lookup.startswith("full scan")
        with pytest.raises(IntegrityFailure):
            Reconstructor.open(path, verifier=SignedCheckpointVerifier(Keyring.generate("other").verifiers()))


def test_cli_verify_with_a_public_key(tmp_path):
    from click.testing import CliRunner

    from ledger import Ledger
    from mrm.cli import main

    from .forensic_ledger import _request

    keyring = Keyring.generate("sig-k1")
    path = tmp_path / "signed"
    with Ledger.create(path, keyring, actor="reco-api") as ledger:
        _request(ledger, "r1", "s1", T0 + H, "reco-v1", "els_note", "pass", "els_note")
    pub = tmp_path / "ledger.pub"
    pub.write_text("".join(v.to_vkey() + "\n" for v in keyring.verifiers()))
    env = {"MRM_KEYRING": "", "MRM_HMAC_KEY": "", "MRM_SQL_HISTORY": ""}
    result = CliRunner().invoke(main, ["reconstruct", str(path), "--request-id", "r1", "--verify", "--public-key", str(pub)], env=env)
    assert result.exit_code == 0, result.output
    assert "verified (signed-checkpoint)" in result.stdout
    result = CliRunner().invoke(main, ["sql", str(path), "SELECT method, verified FROM ledger_info", "--verify", "--public-key", str(pub)], env=env)
    assert result.exit_code == 0 and "signed-checkpoint" in result.stdout
    result = CliRunner().invoke(main, ["sql", str(path), "SELECT 1", "--public-key", str(pub)], env=env)
    assert result.exit_code == 2 and "only used with --verify" in result.stderr
    [f] = [f for f in segment_files(path, "guardrail")]
    edit_rows(f, "guardrail", lambda rows: [{**r, "verdict": "modify", "reason": "forged"} for r in rows])
    result = CliRunner().invoke(main, ["reconstruct", str(path), "--request-id", "r1", "--verify", "--public-key", str(pub)], env=env)
    assert result.exit_code == 1 and "FAILED" in result.stderr
