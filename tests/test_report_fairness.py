"""Fairness as the validation history and the evidence pack show it, on a small ledger of two
weekly segment runs (the demo's monitor, mrm.demo.fairness) whose every figure is known:

  week 1  age 19-29: Seoul 10 customers (too few to judge, listed first), Gyeonggi-Incheon 60
          at 10 % favourable against 70 % in the rest of the band (DI 0.1429, the whole 99 %
          interval below 0.8: alerted, on DI and SPD), five regions of 40 at 70 % (Gangwon's
          DI 1.288 is above 1.25 but its interval spans the band: not alerted)
  week 2  age 19-29: four regions of 40; Gyeonggi-Incheon at 47.5 % (DI 0.6786, interval up to
          about 1.07: outside the band, not alerted)

The model proposes an investment product to everyone; the guardrail serves the time deposit
to the customers counted unfavourable, so only the served outputs give these figures.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from types import SimpleNamespace

import pyarrow as pa
import pytest

from gates.monitoring import record_monitor_report
from gates.monitors import katz_ratio_interval
from gates.observations import Window
from gates.policy import Bounds, MonitorRules
from ledger import Ledger
from mrm.demo.fairness import compute_segment_fairness
from reports.documents import DocumentInfo, TrustPlan, ValidationScope, build_validation_report
from reports.documents import slot_charts
from reports.documents.basis import establish_basis
from reports.documents.history import read_slot_history
from reports.render import render_pdf

from . import report_ledger as world
from .report_support import page_texts, squash

SLOT, VERSION = "retail_invest_reco", "v7"
RULES = MonitorRules(min_group_size=30, confidence=0.99, statistical_parity_difference=Bounds(-0.2, 0.2))
WEEK1 = dt.datetime(2025, 7, 15, 5, 0, tzinfo=dt.timezone.utc)
WEEK2 = WEEK1 + dt.timedelta(days=7)
# (region, customers, favourable) of age band 19-29, per week
WEEKS = {
    WEEK1: [("Seoul", 10, 7), ("Gyeonggi-Incheon", 60, 6), ("Gangwon", 40, 28), ("Chungcheong", 40, 28),
            ("Honam", 40, 28), ("Daegu-Gyeongbuk", 40, 28), ("Busan-Ulsan-Gyeongnam", 40, 28)],
    WEEK2: [("Seoul", 40, 28), ("Gyeonggi-Incheon", 40, 19), ("Gangwon", 40, 28), ("Chungcheong", 40, 28)],
}
INVESTMENT, DEPOSIT = "balanced_fund", "time_deposit"


def _serve_week(ledger: Ledger, until: dt.datetime, subjects: list[dict]) -> None:
    start = until - dt.timedelta(days=6)
    inferences, guardrails = [], []
    for region, n, favourable in WEEKS[until]:
        for i in range(n):
            rid, sid = f"{until:%m%d}-{region}-{i}", f"cust-{until:%m%d}-{region}-{i}"
            served = INVESTMENT if i < favourable else DEPOSIT
            ts = start + dt.timedelta(seconds=len(inferences))
            subjects.append({"subject_id": sid, "age_band": "19-29", "region": region, "investment_eligible": True})
            inferences.append({"ts": ts, "request_id": rid, "subject_id": sid, "model_slot": SLOT, "model_version": VERSION,
                               "input_digest": hashlib.sha256(rid.encode()).hexdigest(), "decision": INVESTMENT,
                               "latency_ms": 4.0, "route": None, "scores": {INVESTMENT: 0.6}})
            guardrails.append({"ts": ts + dt.timedelta(microseconds=1), "request_id": rid, "gate": "kfcpa_art17_suitability",
                               "verdict": "pass" if served == INVESTMENT else "modify", "criteria": {"risk_grade_gap": 0.0},
                               "reason": None if served == INVESTMENT else "risk grade above the profile",
                               "original_output": INVESTMENT, "final_output": served})
    ledger.append("model_inference", inferences)
    ledger.append("guardrail", guardrails)


@pytest.fixture(scope="module")
def fairness(tmp_path_factory):
    root = tmp_path_factory.mktemp("fairness-report")
    keyring = world.signing_keyring()
    subjects: list[dict] = []
    runs = {}
    with Ledger.create(root / "ledger", keyring, actor="serving") as ledger:
        for until in WEEKS:
            _serve_week(ledger, until, subjects)
            ledger.flush()
            table = pa.Table.from_pylist(subjects)
            report = compute_segment_fairness(ledger.path, SLOT, RULES, table, window=Window(until - dt.timedelta(days=7), until),
                                              version=VERSION)
            runs[until] = (report, record_monitor_report(ledger, report, run_id=f"fairness/{until:%Y-%m-%d}"))
    report = build_validation_report(root / "ledger", ValidationScope(SLOT), TrustPlan.hmac_chain(keyring),
                                     DocumentInfo(institution="Example Bank"))
    text = "\n".join(page_texts(render_pdf(report, keyring.signer, created=WEEK2 + dt.timedelta(days=1)).pdf))
    return SimpleNamespace(root=root, keyring=keyring, runs=runs, report=report, text=text, flat=squash(text))


def has(f, phrase: str) -> bool:
    return squash(phrase) in f.flat


def four(x: float) -> str:
    return f"{x:.4f}"


def test_the_monitor_alerted_on_the_confident_breach_only(fairness):
    week1, run1 = fairness.runs[WEEK1]
    week2, run2 = fairness.runs[WEEK2]
    assert len(run1.alert_seqs) == 2 and all("Gyeonggi-Incheon" in a.summary for a in week1.alerts)
    assert run2.alert_seqs == () and week2.status == "ok"
    assert week1.inputs["basis"] == "served" and week1.inputs["breach_rule"] == "whole_interval"


def test_each_run_shows_its_worst_segment_with_both_group_sizes_and_interval(fairness):
    f = fairness
    low, high = katz_ratio_interval(6, 60, 147, 210, RULES.confidence)
    assert high < 0.8  # the whole interval is below the band: the monitor alerted
    assert has(f, "age 19-29 x Gyeonggi-Incheon (worst of 48): 60 / 210")
    assert has(f, four(0.1 / 0.7)) and has(f, f"{four(low)} to {four(high)}")
    assert has(f, "BREACH, ALERTED") and has(f, four(0.1 - 0.7))
    # Week 2: DI 0.6786 is outside the band, but its interval reaches into it; no alert.
    low2, high2 = katz_ratio_interval(19, 40, 84, 120, RULES.confidence)
    assert low2 < 0.8 < high2
    assert has(f, "age 19-29 x Gyeonggi-Incheon (worst of 48): 40 / 120") and has(f, four((19 / 40) / 0.7)) and has(f, f"{four(low2)} to {four(high2)}")
    assert has(f, "OUTSIDE, NOT ALERTED")
    # Not the first segment listed (Seoul, too few), and no unknown group sizes.
    assert not has(f, "age 19-29 x Seoul") and "?/?" not in f.flat and not has(f, four((7 / 10) / (146 / 260)))


def test_eod_says_why_it_is_missing_and_the_basis_is_shown(fairness):
    f = fairness
    assert has(f, "not computed") and has(f, "Equal opportunity (EOD) is not computed by every run")
    assert has(f, "the recorded outcomes say which product a customer took")
    assert has(f, f"{VERSION} (served)")
    table = next(t for s in f.report.sections for sub in s.subsections for t in sub.blocks
                 if getattr(t, "caption", "").startswith("Fairness runs"))
    assert [row[2] for row in table.rows] == [f"{VERSION} (served)"] * 2
    assert [row[-1] for row in table.rows] == [2, 0]  # breach alerts per run, as the monitor wrote them


def test_the_headline_counts_the_alerts_the_monitor_recorded(fairness):
    f = fairness
    assert has(f, "FAIRNESS ALERT") and has(f, "2 breach alert(s) recorded by the fairness monitor in 1 of 2 run(s)")
    assert has(f, "monitoring recorded 2 run(s) and 2 alert(s)")
    assert not has(f, "FAIRNESS BREACH")


def test_the_chart_draws_the_worst_segment_and_marks_the_run_that_alerted(fairness, monkeypatch):
    drawn = []
    real = slot_charts.line_chart
    monkeypatch.setattr(slot_charts, "line_chart", lambda series, **kw: drawn.append(series) or real(series, **kw))
    basis = establish_basis(fairness.root / "ledger", TrustPlan.hmac_chain(fairness.keyring))
    figure = slot_charts.fairness_chart(read_slot_history(basis.source, SLOT, None, None), slot=SLOT)
    worst, alerted = drawn[0]
    assert worst.y == pytest.approx([0.1 / 0.7, (19 / 40) / 0.7])
    assert alerted.y[0] == pytest.approx(0.1 / 0.7) and alerted.y[1] != alerted.y[1]  # NaN: week 2 did not alert
    assert "1 of 2 run(s) alerted" in figure.caption
