""""Production at the start" is one answer, from the registry, in the evidence pack and in the
validation history. The ledger is the demo's opening in small: a retrain and its
evaluation are recorded hours before the gate bootstraps the slot's first champion, so the
evidence pack's default period (from the ledger's first entry) starts with no production,
while the validation history's (from the slot's first decision) starts with the champion."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from ledger import Ledger
from reports.documents import (
    DocumentInfo,
    EvidenceScope,
    TrustPlan,
    ValidationScope,
    build_evidence_report,
    build_validation_report,
)
from reports.render import render_pdf

from . import mapping_ledgers as ml
from .report_support import page_texts, squash

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 1, 5, tzinfo=UTC)
BOOTSTRAP_AT = T0 + dt.timedelta(hours=18, minutes=8)
PROMOTE_AT = T0 + dt.timedelta(days=7)
END = T0 + dt.timedelta(days=12)
CREATED = dt.datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
INFO = DocumentInfo(institution="Example Bank N.A.", prepared_by="Model risk office",
                    generated_at=dt.datetime(2026, 1, 10, 8, 55, tzinfo=UTC))


def build(path):
    with Ledger.create(path, ml.keyring(), actor="reco-pipeline") as ledger:
        ledger.log_operation(ts=T0, event_type="retrain_end", component="reco-retrain", status="completed",
                             correlation_id=f"{ml.SLOT}/reco-v1", details={"slot": ml.SLOT, "version": "reco-v1"})
        ml.register(ledger, ml.SLOT, "reco-v1", T0 + dt.timedelta(hours=3))
        bootstrap = ledger.log_model_promotion(
            ts=BOOTSTRAP_AT, slot=ml.SLOT, challenger_version="reco-v1", decision="bootstrap", trigger="auto",
            reason="no champion in slot product_reco: reco-v1 bootstraps the slot", details=ml.BOOTSTRAP_DETAILS)
        day = T0 + dt.timedelta(days=1)
        i = 0
        while day < END:
            version = "reco-v1" if day < PROMOTE_AT else "reco-v2"
            ml.request(ledger, f"req-{i:03d}", day, version=version)
            if day + dt.timedelta(days=1) >= PROMOTE_AT > day:
                ml.register(ledger, ml.SLOT, "reco-v2", PROMOTE_AT - ml.US)
                ledger.log_model_promotion(
                    ts=PROMOTE_AT, slot=ml.SLOT, champion_version="reco-v1", challenger_version="reco-v2", decision="promote",
                    trigger="auto", thresholds=ml.THRESHOLDS, comparison=ml.COMPARISON, significance=ml.SIGNIFICANCE,
                    reason="challenger wins on every metric", details=ml.BOOTSTRAP_DETAILS)
            day += dt.timedelta(days=1)
            i += 1
        ledger.seal()
    return path, bootstrap


def text_of(report) -> str:
    return squash("\n".join(page_texts(render_pdf(report, ml.keyring().signer, created=CREATED).pdf)).replace("\x00", ""))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path, bootstrap = build(tmp_path_factory.mktemp("production-at-start") / "ledger")
    plan = TrustPlan.hmac_chain(ml.keyring())
    return SimpleNamespace(path=path, plan=plan, bootstrap=bootstrap)


def evidence_text(world, since=None, until=None) -> str:
    return text_of(build_evidence_report(world.path, EvidenceScope("sr-11-7", since, until), world.plan, INFO))


def validation_text(world, since=None, until=None) -> str:
    return text_of(build_validation_report(world.path, ValidationScope(ml.SLOT, since, until), world.plan, INFO))


def test_default_periods_name_the_same_first_champion(world):
    """The pack's period starts before the bootstrap, the history's at it: both name the
    first champion, when it went live and the entry that made it so."""
    champion = f"reco-v1 from 2025-01-05 18:08:00Z (bootstrap at seq {world.bootstrap})"
    evidence = evidence_text(world)
    assert squash(f"Production at the start none; then {champion}") in evidence
    assert squash("Production at the end reco-v2") in evidence
    validation = validation_text(world)
    since = f"reco-v1 (production since 2025-01-05 18:08:00Z, bootstrap at seq {world.bootstrap})"
    assert squash(f"Production at the start {since}") in validation
    assert squash(f"Production at the start of the period: {since}; at its end: reco-v2.") in validation


def test_a_period_that_starts_after_the_bootstrap_gets_one_answer_in_both(world):
    since, until = T0 + dt.timedelta(days=3), END
    answer = squash(f"Production at the start reco-v1 (production since 2025-01-05 18:08:00Z, bootstrap at seq {world.bootstrap})")
    assert answer in evidence_text(world, since, until)
    assert answer in validation_text(world, since, until)
