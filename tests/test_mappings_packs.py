"""Every built-in pack against ledgers whose content is known: a compliant one, and copies
with one violation injected, each of which must flip exactly the requirements it breaks to
``gap`` with offending rows that name what was injected."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from forensics import HmacChainVerifier, LedgerSQL
from mappings import Period, Status, evaluate, load_pack, load_packs
from mappings.status import Status as S

from . import mapping_ledgers as ml

PERIOD = Period(ml.START, ml.END)
PACK_IDS = ("sr-11-7", "sr-26-2", "eu-ai-act", "kfcpa", "pipa-37-2", "credit-info-act-36-2", "ai-basic-act-34")
NOT_YET_IN_FORCE = {"eu-ai-act"}  # judged as a readiness assessment over the story's period

# What the compliant ledger is expected to give, besides "met" and "outside the ledger".
BASELINE_EXCEPTIONS = {
    ("kfcpa", "art28-1-record-keeping"): S.INSUFFICIENT_EVIDENCE,  # ten years cannot be shown by a 231-day ledger
    ("eu-ai-act", "art12-3-biometric-identification"): S.NOT_APPLICABLE,
    # a directory keeps no retention lock: the institution shows its own retention controls
    # (tests/test_mappings_retention.py judges ledgers under a lock on object storage)
    ("eu-ai-act", "art19-1-provider-log-retention"): S.INSUFFICIENT_EVIDENCE,
    ("eu-ai-act", "art26-6-deployer-log-retention"): S.INSUFFICIENT_EVIDENCE,
}

# violation -> pack -> requirements it must turn into gaps (and nothing else in those packs)
FLIPS: dict[str, dict[str, set[str]]] = {
    "missing_attribution": {
        "eu-ai-act": {"art13-1-interpretable-output", "art86-1-explanation"},
        "kfcpa": {"art19-1-explain-the-basis", "art28-1-record-keeping"},
        "pipa-37-2": {"art37-2-2-explanation"},
        "credit-info-act-36-2": {"art36-2-1-2-result-criteria-data"},
        "ai-basic-act-34": {"art34-1-2-explanation"},
        "sr-11-7": set(), "sr-26-2": set(),
    },
    "blocked_served": {
        "eu-ai-act": {"art14-4-d-override"}, "kfcpa": {"art17-3-no-unsuitable-recommendation"},
        "ai-basic-act-34": {"art34-1-3-user-protection"}, "sr-26-2": set(),
    },
    "served_after_block": {
        "eu-ai-act": {"art14-4-d-override"}, "kfcpa": {"art17-3-no-unsuitable-recommendation"},
        "ai-basic-act-34": {"art34-1-3-user-protection"}, "pipa-37-2": set(),
    },
    "thin_override": {
        "sr-11-7": {"sec5-2-override-analysis"}, "sr-26-2": {"validation-override-analysis"},
        "eu-ai-act": {"art14-4-d-override"}, "ai-basic-act-34": {"art34-1-4-human-oversight"},
    },
    "promotion_without_comparison": {
        "sr-11-7": {"sec5-validated-before-production", "sec5-2-benchmarking"},
        "sr-26-2": {"validation-before-production", "validation-benchmarking"},
        "ai-basic-act-34": {"art34-1-1-risk-management"}, "eu-ai-act": set(),
    },
    "unattributed_auto_change": {  # one rule for every pack (the production_changes view)
        "sr-11-7": {"sec6-policies-change-control"}, "sr-26-2": {"governance-change-control"},
        "eu-ai-act": {"art12-2-a-risks-and-modifications"}, "ai-basic-act-34": {"art34-1-4-human-oversight"},
    },
    "alert_ignored": {
        "sr-11-7": {"sec5-2-monitoring"}, "sr-26-2": {"validation-ongoing-monitoring"},
        "eu-ai-act": {"art12-2-b-c-monitoring"}, "ai-basic-act-34": {"art34-1-1-risk-management"},
    },
    "unexplained_feature_change": {
        "sr-11-7": {"sec6-policies-change-control"}, "sr-26-2": {"governance-change-control"},
        "eu-ai-act": {"art12-2-a-risks-and-modifications"},
    },
    "duplicate_request": {
        "eu-ai-act": {"art86-1-explanation"}, "kfcpa": {"art28-3-4-consumer-access"}, "pipa-37-2": {"art37-2-3-human-review"},
        "sr-11-7": set(),
    },
    "no_profile_read": {
        "kfcpa": {"art17-2-know-the-customer", "art28-1-record-keeping"}, "pipa-37-2": {"art37-2-2-explanation"},
        "credit-info-act-36-2": {"art36-2-1-2-result-criteria-data"}, "eu-ai-act": set(),
    },
    "pass_riskier_than_allowed": {"kfcpa": {"art17-3-no-unsuitable-recommendation"}, "ai-basic-act-34": set()},
    "unapproved_version": {
        "sr-11-7": {"sec4-approved-version-in-use"}, "sr-26-2": {"use-approved-version"},
        "eu-ai-act": {"art12-1-automatic-logging", "art86-1-explanation"}, "kfcpa": {"art28-3-4-consumer-access"},
        "pipa-37-2": {"art37-2-3-human-review"}, "credit-info-act-36-2": {"art36-2-2-re-evaluation"},
    },
}


def judge(path: Path, pack_ids=PACK_IDS, period: Period = PERIOD, verify: bool = True) -> dict:
    verifier = HmacChainVerifier(ml.keyring()) if verify else None
    with LedgerSQL.open(path, verifier=verifier) as session:
        return {p: evaluate(session, p, period, as_if_in_force=p in NOT_YET_IN_FORCE) for p in pack_ids}


def statuses(results: dict) -> dict[tuple[str, str], Status]:
    return {(p, r.id): r.status for p, res in results.items() for r in res.requirements}


@pytest.fixture(scope="module")
def compliant(tmp_path_factory) -> Path:
    return ml.build(tmp_path_factory.mktemp("mappings") / "compliant")


@pytest.fixture(scope="module")
def baseline(compliant) -> dict[tuple[str, str], Status]:
    return statuses(judge(compliant))


def offending_text(result, requirement_id: str) -> str:
    """Every offending row of a requirement's evidence, as text to search for injected keys."""
    req = result.requirement(requirement_id)
    return " ".join(str(row) for e in req.evidence for row in e.offending.to_pylist())


def test_the_compliant_ledger_meets_every_requirement_the_ledger_can_evidence(baseline):
    for key, status in baseline.items():
        expected = BASELINE_EXCEPTIONS.get(key)
        if expected is not None:
            assert status == expected, key
        else:
            assert status in (S.MET, S.OUT_OF_SCOPE), (key, status)
    assert set(p for p, _ in baseline) == set(PACK_IDS)


def test_every_built_in_pack_is_covered_by_these_tests():
    assert {p.id for p in load_packs()} == set(PACK_IDS)
    flipped = {(p, r) for v in FLIPS.values() for p, reqs in v.items() for r in reqs}
    flipped |= {("eu-ai-act", "art19-1-provider-log-retention"), ("eu-ai-act", "art26-6-deployer-log-retention"),
                ("ai-basic-act-34", "art34-1-5-documents-kept"), ("sr-11-7", "sec5-3-outcomes-analysis"),
                ("sr-26-2", "validation-outcomes-analysis")}  # by the ledger variants below
    for pack in load_packs():
        for req in pack.requirements:
            if req.evidenced and not req.not_applicable_because:
                assert (pack.id, req.id) in flipped, f"no violation test turns {pack.id} {req.id} into a gap"


@pytest.mark.parametrize("violation", sorted(FLIPS))
def test_one_violation_flips_exactly_the_requirements_it_breaks(violation, compliant, baseline, tmp_path):
    path = tmp_path / "ledger"
    shutil.copytree(compliant, path)
    keys = ml.inject(path, violation)
    results = judge(path, tuple(FLIPS[violation]))
    for (pack_id, req_id), status in statuses(results).items():
        if req_id in FLIPS[violation][pack_id]:
            assert status == S.GAP, f"{violation}: {pack_id} {req_id} is {status.value}, expected gap"
            text = offending_text(results[pack_id], req_id)
            judged = results[pack_id].period
            for at, key in keys:
                if judged.start <= at < judged.end:  # SR 11-7 judges day A, SR 26-2 day B
                    assert str(key) in text, f"{violation}: {pack_id} {req_id} does not name {key} in its offending rows"
        else:
            assert status == baseline[(pack_id, req_id)], f"{violation}: {pack_id} {req_id} changed to {status.value}"


def test_violations_are_seen_only_in_the_days_each_pack_applies(compliant, tmp_path):
    """An override injected only on day A (SR 11-7's days) is a gap for SR 11-7 and not for SR 26-2."""
    path = tmp_path / "ledger"
    shutil.copytree(compliant, path)
    from ledger import Ledger

    with Ledger.open(path, ml.keyring(), actor="reco-api") as ledger:
        (seq,) = ml.thin_override(ledger, ml.A)
    results = judge(path, ("sr-11-7", "sr-26-2"))
    assert results["sr-11-7"].requirement("sec5-2-override-analysis").status == S.GAP
    assert str(seq) in offending_text(results["sr-11-7"], "sec5-2-override-analysis")
    assert results["sr-26-2"].requirement("validation-override-analysis").status == S.MET


def test_a_hole_in_the_log_is_a_retention_and_continuity_gap(tmp_path):
    hole = (dt.datetime(2026, 2, 20, tzinfo=dt.timezone.utc), dt.datetime(2026, 3, 6, tzinfo=dt.timezone.utc))
    path = ml.build(tmp_path / "ledger", hole=hole)
    results = judge(path, ("eu-ai-act", "kfcpa", "ai-basic-act-34", "sr-11-7"))
    gaps = {(p, r) for (p, r), s in statuses(results).items() if s == S.GAP}
    assert gaps == {
        ("eu-ai-act", "art12-1-automatic-logging"), ("eu-ai-act", "art19-1-provider-log-retention"),
        ("eu-ai-act", "art26-6-deployer-log-retention"), ("kfcpa", "art28-1-record-keeping"),
        ("ai-basic-act-34", "art34-1-5-documents-kept"),
    }
    evidence = results["eu-ai-act"].requirement("art19-1-provider-log-retention").evidence
    hole_rows = next(e for e in evidence if e.id == "no-hole-in-the-last-six-months").offending.to_pylist()
    assert len(hole_rows) == 1
    assert hole_rows[0]["previous_ts"] < hole[0] and hole_rows[0]["next_ts"] >= hole[1]
    assert hole_rows[0]["days_without_a_decision"] > 14


def test_outcomes_that_stop_are_a_gap_only_where_the_period_lacks_them(tmp_path):
    path = ml.build(tmp_path / "ledger", label_until=dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
    results = judge(path, ("sr-11-7", "sr-26-2"))
    assert results["sr-11-7"].requirement("sec5-3-outcomes-analysis").status == S.MET
    gap = results["sr-26-2"].requirement("validation-outcomes-analysis")
    assert gap.status == S.GAP
    (row,) = gap.evidence[0].offending.to_pylist()
    assert row["slot"] == ml.SLOT and row["with_outcome"] == 0 and row["decisions"] > 30


def test_a_ledger_that_is_too_young_cannot_show_retention(tmp_path):
    """Decisions over 231 days: enough for six months, not for ten years; and without
    verification in the run, completeness cannot be claimed."""
    results = judge(ml.build(tmp_path / "ledger"), ("eu-ai-act", "kfcpa"), verify=False)
    retention = results["eu-ai-act"].requirement("art19-1-provider-log-retention")
    assert retention.status == S.INSUFFICIENT_EVIDENCE
    by_id = {e.id: e for e in retention.evidence}
    assert by_id["six-months-of-decisions-held"].status == S.MET
    assert by_id["verified-in-this-run"].status == S.INSUFFICIENT_EVIDENCE
    ten_years = {e.id: e for e in results["kfcpa"].requirement("art28-1-record-keeping").evidence}["ten-years-held"]
    assert ten_years.status == S.INSUFFICIENT_EVIDENCE
    assert 230 < ten_years.observed["span_days"] < 232


def test_every_pack_lists_its_requirements_with_citation_and_paraphrase():
    for pack_id in PACK_IDS:
        pack = load_pack(pack_id)
        assert pack.requirements and pack.sources and pack.summary
        for r in pack.requirements:
            assert r.citation and r.paraphrase and r.examiner_asks and r.title
            if not r.evidenced:
                assert r.ask_for and not r.evidence


CHANGE_CONTROL = {"sr-11-7": "sec6-policies-change-control", "sr-26-2": "governance-change-control",
                  "eu-ai-act": "art12-2-a-risks-and-modifications", "ai-basic-act-34": "art34-1-4-human-oversight"}


def test_every_pack_judges_a_change_of_production_by_the_one_rule(compliant):
    """The bootstrap (no thresholds, the gate policy's digest) is attributed for every pack
    that judges its day, in the same words, and no pack keeps its own copy of the rule."""
    results = judge(compliant, tuple(CHANGE_CONTROL))
    seen = {}
    for pack_id, req_id in CHANGE_CONTROL.items():
        req = results[pack_id].requirement(req_id)
        item = next(e for e in req.evidence if e.id == "production-changes-attributed")
        assert "FROM production_changes" in item.sql, pack_id
        seen[pack_id] = {(r["seq"], r["cause"], r["attributed"], r["attribution"]) for r in item.rows.to_pylist()}
    for pack_id in ("sr-11-7", "eu-ai-act"):  # the packs that judge the bootstrap's day
        boot = [(attributed, why) for _, cause, attributed, why in seen[pack_id] if cause == "bootstrap"]
        assert len(boot) == 2 and all(a and why.startswith("gate policy ") for a, why in boot), (pack_id, boot)
    # EU AI Act is judged over the whole period (readiness); each other pack sees its own days of the same rows
    for pack_id in ("sr-11-7", "sr-26-2", "ai-basic-act-34"):
        assert seen[pack_id] <= seen["eu-ai-act"], pack_id


def test_the_production_changes_view_says_why_a_change_is_not_attributed(compliant, tmp_path):
    path = tmp_path / "ledger"
    shutil.copytree(compliant, path)
    keys = ml.inject(path, "unattributed_auto_change")
    with LedgerSQL.open(path) as session:
        rows = {r["seq"]: r for r in session.query("SELECT * FROM production_changes").to_pylist()}
    for _, seq in keys:
        assert rows[seq]["attributed"] is False
        assert rows[seq]["attribution"] == "none: an automatic change that records no thresholds, gate policy digest or alert"
    manual = [r for r in rows.values() if r["trigger"] == "manual"]
    assert {r["attribution"] for r in manual} == {"operator head-of-mrm", "operator mrm-officer-7"}
