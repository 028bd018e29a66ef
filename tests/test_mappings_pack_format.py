"""The pack format: what a valid pack looks like, and every malformed pack refused with the
file, the line and the field that is wrong. Also: every built-in pack's citations are unique
and every query runs on an empty ledger with the status its pack documents."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from mappings import PackError, Period, Status, evaluate, load_pack, load_packs, parse_pack
from mappings.catalog import ENV_VAR, pack_dirs, pack_files
from mappings.errors import PackNotFound
from mappings.evaluate import check_pack, empty_ledger_session
from mappings.expectations import AT_LEAST_ROWS, KINDS, NO_ROWS

VALID = textwrap.dedent('''\
    format = "mrm-pack/1"
    id = "test-pack"
    title = "A test pack"
    instrument = "Test Act"
    authority = "Test authority"
    jurisdiction = "XX"
    pack_version = "0.1"
    effective_from = 2020-01-01
    summary = "What the test act asks."
    sources = ["https://example.org/act"]

    [[requirement]]
    id = "first"
    citation = "Test Act Art. 1"
    title = "Decisions are attributed"
    paraphrase = "Every decision names its main factors."
    examiner_asks = ["The attribution of each decision."]

    [[requirement.evidence]]
    id = "attributed"
    shows = "Served decisions and whether they are attributed."
    sql = \'\'\'
    SELECT request_id, ts,
           coalesce(len(top_features), 0) > 0 AS attributed
    FROM decisions
    WHERE ts >= $from AND ts < $to
    \'\'\'
    expect = { kind = "all_rows_true", column = "attributed" }

    [[requirement]]
    id = "second"
    citation = "Test Act Art. 2"
    title = "The board oversees"
    paraphrase = "The board oversees the models."
    examiner_asks = ["Board minutes."]
    coverage = "outside_ledger"
    ask_for = ["Board minutes for the period."]
    ''')


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line containing `needle`."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]


def refused(text: str) -> PackError:
    with pytest.raises(PackError) as e:
        parse_pack(text, "packs/test-pack.toml")
    return e.value


def test_the_valid_pack_loads():
    pack = parse_pack(VALID, "packs/test-pack.toml")
    assert pack.id == "test-pack" and pack.effective_from == dt.date(2020, 1, 1)
    first, second = pack.requirements
    assert first.evidence[0].query.parameters == ("from", "to")
    assert first.evidence[0].expect.kind == "all_rows_true" and first.evidence[0].expect.column == "attributed"
    assert not second.evidenced and second.ask_for == ("Board minutes for the period.",)
    assert len(pack.sha256) == 64


def test_toml_syntax_errors_name_the_line():
    text = VALID.replace('title = "Decisions are attributed"', 'title = "Decisions are attributed')
    e = refused(text)
    assert e.file == "packs/test-pack.toml"
    assert e.line == line_of(text, 'title = "Decisions are attributed')
    assert "TOML syntax error" in str(e)
    assert str(e).startswith(f"packs/test-pack.toml:{e.line}:")


def test_an_unknown_key_is_refused_at_its_line_with_a_suggestion():
    text = VALID.replace('examiner_asks = ["Board minutes."]', 'examiner_asks = ["Board minutes."]\ncitaton = "typo"')
    e = refused(text)
    assert (e.line, e.field) == (line_of(text, "citaton"), "requirement[1].citaton")
    assert "did you mean 'citation'" in str(e)


def test_a_missing_citation_points_at_its_requirement():
    text = VALID.replace('citation = "Test Act Art. 2"\n', "")
    e = refused(text)
    assert e.field == "requirement[1].citation"
    assert e.line == line_of(text, "[[requirement]]", nth=2)
    assert "missing" in str(e)


def test_a_bad_expectation_kind_is_refused_with_the_kinds():
    text = VALID.replace('kind = "all_rows_true"', 'kind = "all_true"')
    e = refused(text)
    assert (e.line, e.field) == (line_of(text, "expect ="), "requirement[0].evidence[0].expect.kind")
    for kind in KINDS:
        assert kind in str(e)


@pytest.mark.parametrize("expect, field, message", [
    ('{ kind = "all_rows_true" }', "column", "needs column"),
    ('{ kind = "min_value", column = "x" }', "value", "needs value"),
    ('{ kind = "at_least_rows", rows = 0 }', "rows", ">= 1"),
    ('{ kind = "span_at_least", column = "ts", days = -3 }', "days", "positive"),
    ('{ kind = "no_rows", column = "x" }', "column", "no parameter"),
    ('{ kind = "at_least_rows", rows = 2, otherwise = "met" }', "otherwise", "gap or insufficient_evidence"),
    ('"no_rows"', "", "must be a table"),
])
def test_expectation_parameters_are_checked(expect, field, message):
    text = VALID.replace('{ kind = "all_rows_true", column = "attributed" }', expect)
    e = refused(text)
    assert e.line == line_of(text, "expect =")
    assert e.field == "requirement[0].evidence[0].expect" + (f".{field}" if field else "")
    assert message in str(e)


def test_duplicate_ids_and_citations_are_refused_at_the_second():
    text = VALID.replace('id = "second"', 'id = "first"').replace('"Test Act Art. 2"', '"Test Act Art. 1"')
    e = refused(text)
    assert [(p.field, p.line) for p in e.problems] == [
        ("requirement[1].id", line_of(text, 'id = "first"', nth=2)),
        ("requirement[1].citation", line_of(text, 'citation = "Test Act Art. 1"', nth=2)),
    ]
    assert "requirement[0] has it too" in str(e)


def test_sql_that_does_not_parse_points_at_the_line_inside_the_query():
    text = VALID.replace("\nFROM decisions\n", "\nFORM decisions\n")
    e = refused(text)
    assert e.field == "requirement[0].evidence[0].sql"
    assert e.line == line_of(text, "FORM decisions")
    assert "does not parse" in str(e)


@pytest.mark.parametrize("sql, message", [
    ("DELETE FROM decisions", "must be a SELECT"),
    ("COPY (SELECT 1) TO '/tmp/x.csv'", "must be a SELECT"),
    ("SELECT 1; SELECT 2", "exactly one SELECT"),
    ("SELECT * FROM decisions WHERE ts > $since", "$since"),
    ("SELECT * FROM decisions WHERE ts > ?", "positional"),
])
def test_only_one_select_with_the_period_parameters_is_accepted(sql, message):
    text = VALID.replace('sql = \'\'\'\nSELECT request_id, ts,\n       coalesce(len(top_features), 0) > 0 AS attributed\nFROM decisions\nWHERE ts >= $from AND ts < $to\n\'\'\'',
                         f"sql = '''{sql}'''")
    assert sql in text
    e = refused(text)
    assert (e.line, e.field) == (line_of(text, "sql = "), "requirement[0].evidence[0].sql")
    assert message in str(e)


def test_sql_that_does_not_bind_is_refused_before_anything_runs():
    text = VALID.replace("\nWHERE ts >= $from", "\nWHERE no_such_column >= $from")
    pack = parse_pack(text, "packs/test-pack.toml")  # parses: binding needs the views
    with pytest.raises(PackError) as e:
        check_pack(pack)
    assert e.value.field == "requirement[0].evidence[0].sql"
    assert e.value.line == line_of(text, "no_such_column")
    assert "no_such_column" in str(e.value)


def test_an_expectation_column_must_exist_with_the_right_type():
    pack = parse_pack(VALID.replace('column = "attributed"', 'column = "attributd"'), "p.toml")
    with pytest.raises(PackError) as e:
        check_pack(pack)
    assert e.value.field == "requirement[0].evidence[0].expect.column"
    assert e.value.line == line_of(VALID, "expect =")
    assert "attributd" in str(e.value) and "request_id, ts, attributed" in str(e.value)
    pack = parse_pack(VALID.replace('column = "attributed"', 'column = "request_id"'), "p.toml")
    with pytest.raises(PackError, match="needs a BOOLEAN column; request_id is VARCHAR"):
        check_pack(pack)


def test_claims_about_empty_populations_need_a_reason():
    text = VALID.replace('expect = { kind = "all_rows_true", column = "attributed" }',
                         'expect = { kind = "all_rows_true", column = "attributed" }\nwhen_empty = "met"')
    e = refused(text)
    assert (e.line, e.field) == (line_of(text, "when_empty"), "requirement[0].evidence[0].when_empty")
    assert "empty_note" in str(e)
    text = VALID.replace('expect = { kind = "all_rows_true", column = "attributed" }',
                         'expect = { kind = "no_rows" }\nwhen_empty = "met"\nempty_note = "x"')
    assert "only with a scope query" in str(refused(text))


def test_coverage_rules():
    e = refused(VALID.replace('ask_for = ["Board minutes for the period."]\n', ""))
    assert e.field == "requirement[1].ask_for" and "missing" in str(e)
    no_evidence = VALID.split("[[requirement.evidence]]")[0] + VALID.split("expect = { kind = \"all_rows_true\", column = \"attributed\" }\n")[1]
    e = refused(no_evidence)
    assert e.field == "requirement[0]" and "needs at least one [[requirement.evidence]]" in str(e)


def test_dates_and_format_are_checked():
    e = refused(VALID.replace("effective_from = 2020-01-01", 'effective_from = "2020-01-01"'))
    assert e.field == "effective_from" and e.line == 8 and "without quotes" in str(e)
    e = refused(VALID.replace("effective_from = 2020-01-01", "effective_from = 2020-01-01\neffective_until = 2019-01-01"))
    assert e.field == "effective_until" and e.line == 9
    e = refused(VALID.replace('format = "mrm-pack/1"', 'format = "mrm-pack/2"'))
    assert (e.line, e.field) == (1, "format")


def test_every_problem_is_reported_at_once():
    text = VALID.replace('citation = "Test Act Art. 1"\n', "").replace('kind = "all_rows_true"', 'kind = "nope"')
    e = refused(text)
    assert {p.field for p in e.problems} == {"requirement[0].citation", "requirement[0].evidence[0].expect.kind"}
    assert str(e).startswith("2 problems in pack packs/test-pack.toml")


# ---------------------------------------------------------------------- packs directories


def test_a_users_pack_shadows_the_built_in_one_and_needs_its_file_name_as_id(tmp_path, monkeypatch):
    (tmp_path / "kfcpa.toml").write_text(VALID.replace('id = "test-pack"', 'id = "kfcpa"'), encoding="utf-8")
    (tmp_path / "test-pack.toml").write_text(VALID, encoding="utf-8")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert load_pack("kfcpa").title == "A test pack"
    assert {f.id: f.builtin for f in pack_files()}["kfcpa"] is False
    assert load_pack("sr-26-2").id == "sr-26-2"  # built-in packs stay visible
    (tmp_path / "other.toml").write_text(VALID, encoding="utf-8")
    with pytest.raises(PackError) as e:
        load_pack("other")
    assert e.value.field == "id" and e.value.line == 2 and "name the file test-pack.toml" in str(e.value)
    with pytest.raises(PackError):  # loading every pack refuses the malformed one, never skips it
        load_packs()


def test_unknown_packs_and_directories_are_named(tmp_path, monkeypatch):
    with pytest.raises(PackNotFound, match="no pack named 'nope'; the packs are .*kfcpa"):
        load_pack("nope")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(PackNotFound, match="MRM_PACKS_DIR .*missing: not an existing directory"):
        pack_dirs()


# ---------------------------------------------------------------------- the built-in packs


def test_every_citation_of_every_pack_is_unique():
    seen: dict[str, str] = {}
    for pack in load_packs():
        for r in pack.requirements:
            assert r.citation not in seen, f"{r.citation!r} is in {seen.get(r.citation)} and {pack.id}"
            seen[r.citation] = pack.id
    assert len(seen) > 40


def test_every_query_binds_and_runs_on_an_empty_ledger_with_its_documented_status():
    """Nothing in scope must never read as a pass: an item gives its when_empty status, a
    scope-less no_rows item finds nothing (met), a sufficiency check falls short (its
    `otherwise`), and requirements are never gaps."""
    now = dt.datetime.now(dt.timezone.utc)
    with empty_ledger_session() as session:
        for pack in load_packs():
            check_pack(pack, session)
            result = evaluate(session, pack, Period(now - dt.timedelta(days=400), now), as_if_in_force=True)
            for req in result.requirements:
                assert req.status in (Status.MET, Status.INSUFFICIENT_EVIDENCE, Status.NOT_APPLICABLE, Status.OUT_OF_SCOPE), (pack.id, req.id)
                for e in req.evidence:
                    item = e.item
                    if item.expect.kind == NO_ROWS and item.scope is None:
                        expected = Status.MET
                    elif item.expect.kind == AT_LEAST_ROWS and item.scope is None:
                        expected = item.expect.otherwise
                    else:
                        expected = item.when_empty
                    assert e.status == expected, (pack.id, req.id, e.id, e.explanation)
                    assert e.offending_count == 0


def test_the_packs_directory_is_package_data():
    """The built-in packs ship with the package (pyproject's package-data covers them)."""
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"packs/*.toml"' in text
    assert all(f.builtin for f in pack_files(pack_dirs(env=False)))


def test_a_short_note_goes_only_with_checks_that_can_fall_short():
    text = VALID.replace('expect = { kind = "all_rows_true", column = "attributed" }',
                         'expect = { kind = "all_rows_true", column = "attributed" }\nshort_note = "not enough"')
    e = refused(text)
    assert (e.line, e.field) == (line_of(text, "short_note"), "requirement[0].evidence[0].short_note")
    ok = VALID.replace('expect = { kind = "all_rows_true", column = "attributed" }',
                       'expect = { kind = "at_least_rows", rows = 3 }\nshort_note = "fewer than three decisions"')
    assert parse_pack(ok, "p.toml").requirements[0].evidence[0].short_note == "fewer than three decisions"
