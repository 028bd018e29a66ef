"""docs/details.md is generated from gates/details.py and in sync with it; every details key
the gate, the registry, the monitors and the committee write is documented there."""

from __future__ import annotations

import json
from pathlib import Path

from gates.alerts import PROPOSE_RETRAIN, PROPOSE_ROLLBACK, Alert
from gates.details import EVENTS, find, markdown
from gates.ledger_io import MODEL_REGISTERED, TRAFFIC_SPLIT
from gates.links import MONITOR_ALERT, OVERRIDE_REVIEW
from gates.monitoring import (
    MONITOR_RUN,
    ONLINE_EVALUATION,
    RETRAIN_PROPOSAL,
    MonitorReport,
    propose_retrain,
    record_monitor_report,
)
from gates.observations import Window
from gates.promotion import (
    approve,
    decline,
    force_promote,
    register_candidate,
    review_override,
    rollback,
    set_traffic,
)
from ledger.read import read_table

from .test_gates_decision import CHALLENGER_SCORES, CHALLENGER_THRESHOLD, challenger_dict, evaluation
from .test_gates_ledger import bootstrap_champion, gate, ledger  # noqa: F401 (fixture)

DOC = Path(__file__).resolve().parents[1] / "docs" / "details.md"


def test_the_doc_is_generated_from_gates_details():
    assert DOC.read_text() == markdown(), "regenerate: python -m gates.details > docs/details.md"


def test_every_event_type_the_writers_define_is_documented():
    for event in (MODEL_REGISTERED, TRAFFIC_SPLIT, MONITOR_RUN, MONITOR_ALERT, ONLINE_EVALUATION, OVERRIDE_REVIEW,
                  RETRAIN_PROPOSAL):
        assert find("operation", event) is not None, event
    for kind in ("gate", "force_promote", "approval", "rollback"):
        assert find("model_promotion", kind) is not None, kind
    assert len({(e.table, e.event) for e in EVENTS}) == len(EVENTS)


def _write_every_kind(ledger) -> None:  # noqa: F811
    bootstrap_champion(ledger)
    gate(ledger, challenger_dict(guardrails={"p99_latency_ms": 240.0, "disparate_impact": 0.95}))  # reject
    gate(ledger, evaluation("v013", CHALLENGER_SCORES, CHALLENGER_THRESHOLD, trained_end="2026-04-20T03:00:00Z"), auto=False)  # pending
    set_traffic(ledger, slot="credit_pd", challenger_version="v013", mode="canary_5", operator="eng-7", reason="canary")
    decline(ledger, slot="credit_pd", version="v013", operator="mrm-chair", reason="no")
    gate(ledger, evaluation("v015", CHALLENGER_SCORES, CHALLENGER_THRESHOLD, trained_end="2026-04-20T03:00:00Z"), auto=False)
    approve(ledger, slot="credit_pd", version="v015", operator="mrm-chair", reason="committee")
    alert = Alert("fairness.disparate_impact", "credit_pd", "v015", "breach", PROPOSE_ROLLBACK, "DI low", {"value": 0.7})
    run = record_monitor_report(ledger, MonitorReport("fairness", "credit_pd", "v015", Window(), ({"metric": "di"},),
                                                      (alert,)))
    rolled = rollback(ledger, slot="credit_pd", operator="eng-7", reason="DI", responds_to_seq=run.alert_seqs[0])
    register_candidate(ledger, slot="credit_pd", version="v014")
    forced = force_promote(ledger, slot="credit_pd", version="v014", operator="eng-42", reason="emergency",
                           responds_to_seq=run.alert_seqs[0])
    review_override(ledger, reviews_seq=forced.seq, outcome="upheld", reviewer="mrm-chair", note="minute 3")
    review_override(ledger, reviews_seq=rolled.seq, outcome="upheld", reviewer="mrm-chair", note="minute 4")
    drifted = Alert("drift.psi", "credit_pd", "v014", "significant_drift", PROPOSE_RETRAIN, "income drifted",
                    {"feature": "income", "value": 0.31})
    report = MonitorReport("drift", "credit_pd", "v014", Window(), ({"feature": "income"},), (drifted,))
    assert propose_retrain(ledger, report, record_monitor_report(ledger, report)) is not None


def test_every_details_key_written_is_documented(ledger):  # noqa: F811
    _write_every_kind(ledger)
    ledger.flush()
    seen = set()
    for row in read_table(ledger.path, "model_promotion").to_pylist():
        details = json.loads(row["details"])
        doc = find("model_promotion", details["replay"]["kind"])
        assert doc is not None, details["replay"]["kind"]
        seen.add(doc.event)
        assert set(details) <= doc.top_level(), (doc.event, set(details) - doc.top_level())
        assert set(details["replay"]) <= doc.under("replay"), (doc.event, set(details["replay"]) - doc.under("replay"))
        if "evaluated" in details:
            assert set(details["evaluated"]) <= doc.under("evaluated")
    assert seen == {"gate", "force_promote", "approval", "rollback"}
    events = set()
    for row in read_table(ledger.path, "operation").to_pylist():
        if row["event_type"] == "genesis":
            continue  # the ledger's own entry (ledger/ledger.py), not the gate's
        doc = find("operation", row["event_type"])
        assert doc is not None, row["event_type"]
        events.add(row["event_type"])
        details = json.loads(row["details"])
        assert set(details) <= doc.top_level(), (doc.event, set(details) - doc.top_level())
    assert events == {MODEL_REGISTERED, TRAFFIC_SPLIT, MONITOR_RUN, MONITOR_ALERT, OVERRIDE_REVIEW, RETRAIN_PROPOSAL}
    # the documented fields of each written kind are the ones written (none documented in vain)
    forced = [json.loads(r["details"]) for r in read_table(ledger.path, "model_promotion").to_pylist()
              if r["decision"] == "force_promote"][0]
    assert set(forced) == find("model_promotion", "force_promote").top_level()
