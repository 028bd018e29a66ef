"""The evaluator and its result: which pack applies when, the expectation kinds, large results
aggregated in DuckDB agreeing with small ones judged in Python, the typed result, the bundle."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forensics import HmacChainVerifier, LedgerSQL
from ledger import Keyring, Ledger
from mappings import (
    InForce,
    MappingError,
    PackError,
    PackResult,
    Period,
    PeriodError,
    Status,
    evaluate,
    parse_pack,
    write_bundle,
)
from mappings.period import applicability
from mrm.synthetic import stream

from . import mapping_ledgers as ml

UTC = dt.timezone.utc
PERIOD = Period(ml.START, ml.END)


@pytest.fixture(scope="module")
def violated(tmp_path_factory) -> Path:
    """The compliant story with a blocked recommendation served, twice."""
    path = ml.build(tmp_path_factory.mktemp("evaluate") / "ledger")
    ml.inject(path, "blocked_served")
    return path


@pytest.fixture(scope="module")
def session(violated):
    with LedgerSQL.open(violated) as s:
        yield s


def pack_text(sql: str, expect: str, extra: str = "", effective: str = "effective_from = 2020-01-01") -> str:
    return textwrap.dedent(f'''\
        format = "mrm-pack/1"
        id = "t"
        title = "T"
        instrument = "I"
        authority = "A"
        jurisdiction = "X"
        pack_version = "0"
        {effective}
        summary = "s"
        sources = ["x"]

        [[requirement]]
        id = "r"
        citation = "c"
        title = "t"
        paraphrase = "p"
        examiner_asks = ["a"]

        [[requirement.evidence]]
        id = "e"
        shows = "s"
        sql = \'\'\'{sql}\'\'\'
        expect = {expect}
        ''') + textwrap.dedent(extra)


def judge_one(session, sql: str, expect: str, extra: str = "", period: Period = PERIOD, **kw):
    result = evaluate(session, parse_pack(pack_text(sql, expect, extra), "t.toml"), period, **kw)
    return result.requirements[0].evidence[0]


# ---------------------------------------------------------------------- which pack applies when


def test_sr_11_7_and_sr_26_2_split_a_period_at_17_april_2026(session):
    year = Period.parse("2026-01-01", "2027-01-01")
    old, new = (evaluate(session, p, year) for p in ("sr-11-7", "sr-26-2"))
    assert old.applicability.state == InForce.PARTLY and new.applicability.state == InForce.PARTLY
    assert old.period == Period.parse("2026-01-01", "2026-04-17")
    assert new.period == Period.parse("2026-04-17", "2027-01-01")
    assert "then sr-26-2" in old.applicability.note
    monitoring = old.requirement("sec5-2-monitoring").evidence[0]
    assert monitoring.parameters == {"from": old.period.start, "to": old.period.end}


def test_a_pack_not_in_force_judges_nothing_unless_asked_for_readiness(session):
    after = Period.parse("2026-05-01", "2026-05-20")
    result = evaluate(session, "sr-11-7", after)
    assert result.applicability.state == InForce.NO_LONGER and result.period is None
    for r in result.requirements:
        if r.requirement.evidenced:
            assert r.status == Status.NOT_APPLICABLE and not r.evidence
            assert "no longer applied in the period" in r.explanation
        else:
            assert r.status == Status.OUT_OF_SCOPE
    readiness = evaluate(session, "sr-11-7", after, as_if_in_force=True)
    assert readiness.applicability.as_if_in_force and readiness.period == after
    assert readiness.requirement("sec5-2-override-analysis").status == Status.MET
    eu = evaluate(session, "eu-ai-act", after)
    assert eu.applicability.state == InForce.NOT_YET
    assert "applies from 2027-12-02" in eu.applicability.note


def test_applicability_edges():
    day = dt.date(2026, 4, 17)
    p = Period.parse("2026-04-16T23:00:00Z", "2026-04-17T00:00:00Z")
    assert applicability(p, dt.date(2011, 4, 4), day).state == InForce.IN_FORCE  # until is exclusive
    assert applicability(p, day, None).state == InForce.NOT_YET
    empty = Period.parse("2026-04-17T00:00:00Z", "2026-04-17T00:00:00Z")
    assert applicability(empty, day, None).state == InForce.IN_FORCE


def test_periods_need_a_zone_or_a_date():
    assert Period.parse("2026-04-01", "2026-04-02T09:00:00+09:00") == Period(
        dt.datetime(2026, 4, 1, tzinfo=UTC), dt.datetime(2026, 4, 2, tzinfo=UTC))
    with pytest.raises(PeriodError, match="has no time zone"):
        Period.parse("2026-04-01T00:00:00", "2026-05-01")
    with pytest.raises(PeriodError, match="not an ISO 8601"):
        Period.parse("April", "2026-05-01")
    with pytest.raises(PeriodError, match="before its start"):
        Period.parse("2026-05-01", "2026-04-01")


# ---------------------------------------------------------------------- the result


def test_the_result_carries_everything_the_examiner_document_shows(session):
    result = evaluate(session, "kfcpa", PERIOD)
    assert isinstance(result, PackResult)
    req = result.requirement("art17-3-no-unsuitable-recommendation")
    assert req.status == Status.GAP
    assert req.requirement.citation == "KFCPA Art. 17(3)" and req.requirement.paraphrase
    served = next(e for e in req.evidence if e.id == "unsuitable-never-served")
    assert isinstance(served.offending, pa.Table) and served.offending_count == 2
    assert [r["request_id"] for r in served.offending.to_pylist()] == ["bad-blockserved-0302", "bad-blockserved-0512"]
    assert served.scope_count > 400 and "FROM guardrail g SEMI JOIN intervened" in served.sql
    assert served.scope_rows.num_rows == served.scope_count and served.scope_rows.column_names[:3] == ["seq", "ts", "request_id"]
    assert served.explanation == "2 row(s) found, each a finding"
    doc = result.to_dict()
    json.dumps(doc)  # plain JSON, nothing left for a default= to guess
    assert doc["counts"]["gap"] == 1 and doc["rests_on"]["through_seq"] == result.rests_on.through_seq
    assert result.headline().startswith("kfcpa: 7 requirements: 1 GAP")


def test_large_results_are_judged_in_duckdb_the_same_way(session):
    small = evaluate(session, "kfcpa", PERIOD)
    large = evaluate(session, "kfcpa", PERIOD, max_rows=1)
    for a, b in zip(small.requirements, large.requirements):
        assert a.status == b.status, a.id
        for x, y in zip(a.evidence, b.evidence):
            assert (x.status, x.row_count, x.offending_count, x.scope_count) == (y.status, y.row_count, y.offending_count, y.scope_count), x.id
            assert len(y.rows) <= 1 and len(y.offending) <= 1
            assert y.rows_truncated == (y.row_count > 1)
            assert x.observed.get("span_days") == y.observed.get("span_days")


@pytest.mark.parametrize("max_rows", [1000, 1])
def test_kinds_never_take_a_null_or_an_empty_population_for_a_pass(session, max_rows):
    values = "SELECT * FROM (VALUES (1, true, 5.0), (2, NULL, NULL), (3, false, 50.0)) AS t(i, ok, x)"
    e = judge_one(session, values, '{ kind = "all_rows_true", column = "ok" }', max_rows=max_rows)
    assert (e.status, e.offending_count, sorted(r["i"] for r in e.offending.to_pylist())) == (Status.GAP, 2, [2, 3][:max_rows])
    e = judge_one(session, values, '{ kind = "max_value", column = "x", value = 10 }', max_rows=max_rows)
    assert (e.status, e.offending_count) == (Status.GAP, 2)
    e = judge_one(session, values, '{ kind = "min_value", column = "x", value = 1 }', max_rows=max_rows)
    assert (e.status, e.offending_count) == (Status.GAP, 1)
    empty = values + " WHERE i > 9"
    e = judge_one(session, empty, '{ kind = "min_value", column = "x", value = 1 }', max_rows=max_rows)
    assert e.status == Status.INSUFFICIENT_EVIDENCE and "nothing to judge" in e.explanation
    e = judge_one(session, empty, '{ kind = "all_rows_true", column = "ok" }',
                  'when_empty = "not_applicable"\nempty_note = "no such case"\n', max_rows=max_rows)
    assert (e.status, e.explanation) == (Status.NOT_APPLICABLE, "nothing in scope: no such case")


def test_sufficiency_kinds_and_scope(session):
    days = "SELECT * FROM (VALUES (DATE '2026-01-01'), (DATE '2026-03-02'), (NULL)) AS t(d)"
    e = judge_one(session, days, '{ kind = "span_at_least", column = "d", days = 60 }')
    assert e.status == Status.MET and e.observed["span_days"] == 60
    e = judge_one(session, days, '{ kind = "span_at_least", column = "d", days = 61, otherwise = "insufficient_evidence" }')
    assert e.status == Status.INSUFFICIENT_EVIDENCE and "less than the 61 days required" in e.explanation
    e = judge_one(session, days, '{ kind = "at_least_rows", rows = 4 }')
    assert (e.status, e.offending_count) == (Status.GAP, 0)
    scoped = 'scope = \'\'\'SELECT seq FROM model_inference WHERE ts >= $from AND ts < $to\'\'\'\n'
    e = judge_one(session, "SELECT 1 AS x WHERE false", '{ kind = "no_rows" }', scoped,
                  period=Period.parse("2020-01-01", "2020-02-01"))
    assert e.status == Status.INSUFFICIENT_EVIDENCE and e.scope_count == 0
    e = judge_one(session, "SELECT 1 AS x", '{ kind = "no_rows" }', scoped, period=Period.parse("2020-01-01", "2020-02-01"))
    assert e.status == Status.GAP, "a finding is reported even when the scope is empty"


def test_a_query_that_fails_on_this_ledger_names_its_line(session):
    text = pack_text("SELECT CAST(request_id AS INTEGER) AS n\nFROM model_inference", '{ kind = "no_rows" }')
    with pytest.raises(PackError) as e:
        evaluate(session, parse_pack(text, "t.toml"), PERIOD)
    assert "SQL failed on this ledger" in str(e.value) and e.value.field == "requirement[0].evidence[0].sql"
    assert e.value.line == next(i for i, line in enumerate(text.splitlines(), 1) if "SELECT CAST" in line)


def test_requirements_can_be_picked_and_sessions_opened_from_a_path(violated):
    result = evaluate(violated, "kfcpa", PERIOD, verifier=HmacChainVerifier(ml.keyring()),
                      requirements=["art17-2-know-the-customer"])
    assert [r.id for r in result.requirements] == ["art17-2-know-the-customer"]
    assert result.rests_on.verified and result.rests_on.checkpoint.signature_checked is False
    with pytest.raises(MappingError, match="has no requirement 'nope'"):
        evaluate(violated, "kfcpa", PERIOD, requirements=["nope"])
    with LedgerSQL.open(violated) as s, pytest.raises(ValueError, match="given when opening the session"):
        evaluate(s, "kfcpa", PERIOD, verifier=HmacChainVerifier(ml.keyring()))


# ---------------------------------------------------------------------- the bundle


def test_the_bundle_writes_columns_parquet_cannot_type_as_text(session, violated, tmp_path):
    text = pack_text("SELECT 1 AS i, INTERVAL 3 DAY AS waited, false AS ok", '{ kind = "all_rows_true", column = "ok" }')
    result = evaluate(session, parse_pack(text, "t.toml"), PERIOD)
    out = write_bundle(result, tmp_path / "b")
    rows = pq.read_table(out / "evidence" / "r" / "e" / "offending.parquet").to_pylist()
    assert rows == [{"i": 1, "waited": "P3D", "ok": False}]
    doc = json.loads((out / "evidence" / "r" / "e" / "result.json").read_text())
    assert doc["parquet_notes"] == ["column waited (an interval) is written as ISO 8601 duration text"]
    with pytest.raises(MappingError, match="already exists"):
        write_bundle(result, out)
    with pytest.raises(MappingError, match="inside the ledger"):
        write_bundle(result, violated / "bundle")
    assert not (violated / "bundle").exists()


# ---------------------------------------------------------------------- a realistic ledger


def test_the_synthetic_stream_gets_the_statuses_its_content_supports(tmp_path):
    """mrm.synthetic writes the four-table request flow, promotions with comparisons and a
    schema; it records no outcomes, no monitor runs and no risk grades, and spans hours."""
    path = tmp_path / "ledger"
    keyring = Keyring.from_key("test-k1", ml.KEY)
    with Ledger.create(path, keyring, actor="reco-api") as ledger:
        for table, row in stream(600, seed=3):
            ledger.log(table, row)
    period = Period.parse("2025-08-01", "2025-08-02")
    with LedgerSQL.open(path, verifier=HmacChainVerifier(keyring)) as s:
        sr = evaluate(s, "sr-11-7", period)
        kfcpa = evaluate(s, "kfcpa", period)
        eu = evaluate(s, "eu-ai-act", period, as_if_in_force=True)
    assert sr.requirement("sec5-3-outcomes-analysis").status == Status.GAP  # no outcome recorded
    assert sr.requirement("sec4-approved-version-in-use").status == Status.MET
    assert sr.requirement("sec5-2-benchmarking").status == Status.MET
    assert kfcpa.requirement("art17-2-know-the-customer").status == Status.MET
    assert kfcpa.requirement("art17-3-no-unsuitable-recommendation").status == Status.INSUFFICIENT_EVIDENCE  # no grades
    assert eu.requirement("art19-1-provider-log-retention").status == Status.INSUFFICIENT_EVIDENCE  # hours, not months
    assert eu.requirement("art86-1-explanation").status == Status.MET
