"""Evaluate a pack against a ledger, read-only, through the forensic SQL session.

Every query runs in :class:`forensics.LedgerSQL`, so a pack gets exactly the guarantees
of `mrm sql`: DuckDB never sees a path into the ledger, only SELECT runs, and with a verifier
the answers rest only on entries the verification vouched for.

Order of work, so that a broken pack never yields a partial verdict:

1. every query of the pack is bound against the ledger's views (``LIMIT 0``): unknown
   columns or views, and expectation columns missing or of the wrong type, are refused with
   the pack's file, line and field;
2. each evidence item runs, aggregated in DuckDB (counts, minimum, maximum, offending rows)
   so a ten-million-row population never crosses into Python; at most ``max_rows`` evidence
   rows and ``max_rows`` offending rows are kept, with the exact counts;
3. the expectation decides the item, and the items decide the requirement
   (:func:`mappings.status.combine`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pyarrow as pa

from forensics.attestation import Verifier
from forensics.errors import QueryError
from forensics.session import LedgerSQL
from gates.canonical import utc_text
from ledger.schema import TABLE_NAMES

from . import expectations as ex
from .catalog import load_pack, load_packs
from .errors import MappingError, PackError
from .pack import EvidenceItem, Pack, Query, Requirement
from .period import Applicability, Period, applicability
from .result import CheckpointInfo, EvidenceResult, PackResult, RequirementResult, RestsOn
from .status import Status, combine

DEFAULT_MAX_ROWS = 1000
_UTC = dt.timezone.utc


# ---------------------------------------------------------------------- entry points


def evaluate(
    ledger: LedgerSQL | str | os.PathLike[str],
    pack: Pack | str | os.PathLike[str],
    period: Period | None = None,
    *,
    verifier: Verifier | None = None,
    as_if_in_force: bool = False,
    max_rows: int = DEFAULT_MAX_ROWS,
    requirements: Iterable[str] | None = None,
    packs_dirs: Sequence[Path] | None = None,
) -> PackResult:
    """Judge every requirement of ``pack`` on the ledger over ``period``.

    ``ledger`` is an open :class:`LedgerSQL` session (shared by several evaluations) or the
    ledger's path (opened read-only, verified first with ``verifier`` if given). ``period``
    defaults to the ledger's whole history. ``requirements`` limits the evaluation to those
    ids (the result then holds only them). ``as_if_in_force`` judges the whole period even
    where the pack was not in force (a readiness assessment; the result says so).
    """
    the_pack = load_pack(pack, packs_dirs)
    wanted = None if requirements is None else set(requirements)
    if wanted is not None:
        unknown = sorted(wanted - {r.id for r in the_pack.requirements})
        if unknown:
            known = ", ".join(r.id for r in the_pack.requirements)
            raise MappingError(f"pack {the_pack.id} has no requirement {', '.join(map(repr, unknown))}; its requirements are {known}")
    with _Session(ledger, verifier) as session:
        return _evaluate(session, the_pack, period, as_if_in_force, max_rows, wanted)


def evaluate_all(
    ledger: LedgerSQL | str | os.PathLike[str],
    packs: Sequence[Pack | str] | None = None,
    period: Period | None = None,
    *,
    verifier: Verifier | None = None,
    as_if_in_force: bool = False,
    max_rows: int = DEFAULT_MAX_ROWS,
    packs_dirs: Sequence[Path] | None = None,
) -> list[PackResult]:
    """Every pack (default: all visible packs) on one read-only session of the ledger."""
    the_packs = [load_pack(p, packs_dirs) for p in packs] if packs is not None else load_packs(packs_dirs)
    with _Session(ledger, verifier) as session:
        period = period or ledger_period(session)
        return [_evaluate(session, p, period, as_if_in_force, max_rows, None) for p in the_packs]


def check_pack(pack: Pack | str | os.PathLike[str], session: LedgerSQL | None = None,
               packs_dirs: Sequence[Path] | None = None) -> Pack:
    """Bind every query of ``pack`` against the ledger views (by default those of a fresh,
    empty ledger): what an author runs before shipping a pack. Raises PackError."""
    the_pack = load_pack(pack, packs_dirs)
    if session is not None:
        _bind_all(session, the_pack)
        return the_pack
    with empty_ledger_session() as s:
        _bind_all(s, the_pack)
    return the_pack


@contextlib.contextmanager
def empty_ledger_session() -> Iterator[LedgerSQL]:
    """A read-only session over a new, empty ledger in a temporary directory (for binding
    a pack's queries against the views without any ledger of one's own)."""
    from ledger import Keyring, Ledger

    with tempfile.TemporaryDirectory(prefix="mrm-pack-check-") as tmp:
        path = Path(tmp) / "ledger"
        Ledger.create(path, Keyring.generate("pack-check"), actor="mrm-pack-check").close()
        with LedgerSQL.open(path) as session:
            yield session


class _Session:
    def __init__(self, ledger: LedgerSQL | str | os.PathLike[str], verifier: Verifier | None):
        self.given = ledger if isinstance(ledger, LedgerSQL) else None
        if self.given is not None and verifier is not None:
            raise ValueError("a verifier is given when opening the session (LedgerSQL.open(path, verifier=...)), not with an open one")
        self.path, self.verifier = ledger, verifier
        self.opened: LedgerSQL | None = None

    def __enter__(self) -> LedgerSQL:
        if self.given is not None:
            return self.given
        self.opened = LedgerSQL.open(self.path, verifier=self.verifier)  # type: ignore[arg-type]
        return self.opened

    def __exit__(self, *exc: object) -> None:
        if self.opened is not None:
            self.opened.close()


def ledger_period(session: LedgerSQL) -> Period:
    """The ledger's whole history: from its oldest entry to just after its newest."""
    union = " UNION ALL ".join(f"SELECT ts FROM {t}" for t in TABLE_NAMES)
    first, last = session.query(f"SELECT min(ts) AS first, max(ts) AS last FROM ({union})").to_pylist()[0].values()
    if first is None:
        now = dt.datetime.now(_UTC)
        return Period(now, now)
    return Period(first, last + dt.timedelta(microseconds=1))


# ---------------------------------------------------------------------- one pack


def _evaluate(session: LedgerSQL, pack: Pack, period: Period | None, as_if_in_force: bool, max_rows: int,
              wanted: set[str] | None) -> PackResult:
    started = time.perf_counter()
    requested = period or ledger_period(session)
    app = applicability(requested, pack.effective_from, pack.effective_until, pack.superseded_by,
                        as_if_in_force=as_if_in_force, title=pack.id)
    _bind_all(session, pack)
    results = []
    scopes = _Populations(session, max_rows)
    for req in pack.requirements:
        if wanted is not None and req.id not in wanted:
            continue
        results.append(_requirement(session, req, app, max_rows, scopes))
    return PackResult(pack, requested, app, rests_on(session), tuple(results), dt.datetime.now(_UTC),
                      time.perf_counter() - started)


def _requirement(session: LedgerSQL, req: Requirement, app: Applicability, max_rows: int,
                 scopes: "_Populations") -> RequirementResult:
    if not req.evidenced:
        return RequirementResult(req, Status.OUT_OF_SCOPE, "the ledger cannot evidence this; ask for: " + "; ".join(req.ask_for))
    if req.not_applicable_because:
        return RequirementResult(req, Status.NOT_APPLICABLE, req.not_applicable_because)
    if app.evaluated is None:
        return RequirementResult(req, Status.NOT_APPLICABLE, app.note)
    items = tuple(_evidence(session, item, app.evaluated, max_rows, scopes) for item in req.evidence)
    status = combine([i.status for i in items])
    if len(items) == 1:
        explanation = items[0].explanation
    else:  # the count, then the items that decided the status
        met = sum(i.status == Status.MET for i in items)
        explanation = f"{met} of {len(items)} evidence items met; " + "; ".join(
            f"{i.id}: {i.explanation}" for i in items if i.status == status)
    return RequirementResult(req, status, explanation, items)


# ---------------------------------------------------------------------- one evidence item


def _evidence(session: LedgerSQL, item: EvidenceItem, period: Period, max_rows: int,
              scopes: "_Populations | None" = None) -> EvidenceResult:
    started = time.perf_counter()
    expect = item.expect
    params = _params(item.query, period)
    source = _subquery(item.query.sql)

    # Most results are small: read one row more than is kept, and when that is all of them,
    # judge them here. Only a larger result is counted and filtered in DuckDB, so a population
    # of millions never crosses into Python.
    head = _run(session, item.query, f"SELECT * FROM {source} LIMIT {int(max_rows) + 1}", params)
    if len(head) <= max_rows:
        rows = head
        stats = _local_stats(expect, rows)
        offending = rows if expect.kind == ex.NO_ROWS else rows.filter(pa.array(stats.pop("fails"), pa.bool_()))
    else:
        rows = head.slice(0, max_rows)
        stats = _sql_stats(session, item, source, params)
        offending = rows.schema.empty_table()
        if expect.kind == ex.NO_ROWS:
            offending = rows
        elif stats["bad"]:
            offending = _run(session, item.query,
                             f"SELECT * FROM {source} WHERE {expect.offending_predicate()} LIMIT {int(max_rows)}", params)
    row_count = stats["n"]
    offending_count = row_count if expect.kind == ex.NO_ROWS else stats["bad"]

    scope_count, scope_rows = None, None
    if item.scope is not None:
        scope_count, scope_rows = (scopes or _Populations(session, max_rows)).get(item.scope, _params(item.scope, period))

    observed: dict[str, Any] = {}
    if expect.kind in (ex.MIN_VALUE, ex.MAX_VALUE, ex.SPAN_AT_LEAST):
        observed.update(min=stats["lo"], max=stats["hi"], non_null=stats["non_null"])
    status, explanation = _judge(item, row_count, offending_count, scope_count, observed)
    all_params = {**params, **(_params(item.scope, period) if item.scope else {})}
    return EvidenceResult(item, status, explanation, all_params, row_count, rows, offending_count, offending, scope_count,
                          scope_rows, observed, time.perf_counter() - started)


class _Populations:
    """Scope queries of one evaluation, each run once: many items of a pack judge the same
    population (every decision served in the period), and at ten million decisions counting
    it and reading its first rows costs over a second each time."""

    def __init__(self, session: LedgerSQL, max_rows: int):
        self.session, self.max_rows = session, max_rows
        self._seen: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[int, pa.Table]] = {}

    def get(self, scope: Query, params: Mapping[str, Any]) -> tuple[int, pa.Table]:
        """The population's exact size and its first rows, in the scope query's order (kept so
        a reader sees what was judged: a no_rows check returns only its findings)."""
        key = (scope.sql, tuple(sorted(params.items())))
        if key not in self._seen:
            source = _subquery(scope.sql)
            count = int(_run(self.session, scope, f"SELECT count(*) AS n FROM {source}", params).column("n")[0].as_py())
            limit = int(self.max_rows) if count else 0  # an empty population has only its columns to read
            self._seen[key] = (count, _run(self.session, scope, f"SELECT * FROM {source} LIMIT {limit}", params))
        return self._seen[key]


def _local_stats(expect: ex.Expectation, rows: pa.Table) -> dict[str, Any]:
    """Counts, failing rows and extremes of a complete result (the rules of
    Expectation.fails, the same as its SQL predicate)."""
    values = rows.column(expect.column).to_pylist() if expect.column else [None] * len(rows)
    fails = [expect.fails(v) for v in values]
    present = [v for v in values if v is not None]
    return {"n": len(rows), "bad": sum(fails), "fails": fails, "non_null": len(present),
            "lo": min(present) if present else None, "hi": max(present) if present else None}


def _sql_stats(session: LedgerSQL, item: EvidenceItem, source: str, params: Mapping[str, Any]) -> dict[str, Any]:
    expect = item.expect
    aggregates = ["count(*) AS n"]
    predicate = expect.offending_predicate()
    if predicate is not None and expect.kind != ex.NO_ROWS:
        aggregates.append(f"count(*) FILTER (WHERE {predicate}) AS bad")
    if expect.column is not None:
        col = ex.quote_identifier(expect.column)
        aggregates += [f"count({col}) AS non_null", f"min({col}) AS lo", f"max({col}) AS hi"]
    stats = _run(session, item.query, f"SELECT {', '.join(aggregates)} FROM {source}", params).to_pylist()[0]
    return {"n": int(stats["n"]), "bad": int(stats.get("bad") or 0), "non_null": int(stats.get("non_null") or 0),
            "lo": stats.get("lo"), "hi": stats.get("hi")}


def _judge(item: EvidenceItem, row_count: int, offending_count: int, scope_count: int | None,
           observed: dict[str, Any]) -> tuple[Status, str]:
    expect = item.expect
    rule = expect.describe()
    if expect.is_row_check and offending_count:
        if expect.kind == ex.NO_ROWS:
            return Status.GAP, f"{offending_count:,} row(s) found, each a finding"
        return Status.GAP, f"{offending_count:,} of {row_count:,} rows fail ({rule})"

    if scope_count is not None:
        empty, what = scope_count == 0, "the scope query returned no rows"
    elif expect.kind == ex.SPAN_AT_LEAST:
        empty, what = observed["non_null"] == 0, f"no value of {expect.column} in the period"
    else:
        empty, what = expect.rows_are_population and row_count == 0, "no rows in scope in the period"
    if empty:
        if item.empty_note:
            return item.when_empty, f"nothing in scope: {item.empty_note}"
        return item.when_empty, f"{what}: nothing to judge, so it cannot be shown to be met"

    if expect.kind == ex.AT_LEAST_ROWS:
        assert expect.rows is not None
        if row_count >= expect.rows:
            return Status.MET, f"{row_count:,} row(s); {rule} required"
        short = f"{row_count:,} row(s), fewer than the {expect.rows:,} required"
        return expect.otherwise, f"{item.short_note} ({short})" if item.short_note else short
    if expect.kind == ex.SPAN_AT_LEAST:
        assert expect.days is not None
        lo, hi = observed["min"], observed["max"]
        days = _days_between(lo, hi)
        observed["span_days"] = round(days, 3)
        span = f"{expect.column} spans {days:,.1f} days ({show_value(lo)} to {show_value(hi)})"
        if days >= expect.days:
            return Status.MET, f"{span}; at least {expect.days:g} required"
        short = f"{span}, less than the {expect.days:g} days required"
        return expect.otherwise, f"{item.short_note}: {short}" if item.short_note else short
    if expect.kind == ex.NO_ROWS:
        scope = f" among {scope_count:,} in scope" if scope_count is not None else ""
        return Status.MET, f"no row found{scope}"
    extra = ""
    if expect.kind in (ex.MIN_VALUE, ex.MAX_VALUE):
        extra = f" (observed {show_value(observed['min'])} to {show_value(observed['max'])})"
    return Status.MET, f"all {row_count:,} rows pass ({rule}){extra}"


def _days_between(lo: Any, hi: Any) -> float:
    if isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime):
        return (hi - lo).total_seconds() / 86400
    return float((hi - lo).days)  # dates


def show_value(value: Any) -> str:
    """An observed value as the results word it: instants in UTC, floats short."""
    if isinstance(value, dt.datetime):
        return utc_text(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ---------------------------------------------------------------------- binding and running


def _bind_all(session: LedgerSQL, pack: Pack) -> None:
    """Bind every query of the pack (no rows are read); every problem is reported at once."""
    problems = []
    now = dt.datetime.now(_UTC)
    period = Period(now, now)
    for req, item, query, key in pack.queries():
        try:
            columns = _columns(session, query, period)
        except PackError as e:
            problems.extend(e.problems)
            continue
        if key != "sql" or item.expect.column is None:
            continue
        loc = item.expect_location
        where = loc.field + ".column"
        if item.expect.column not in columns:
            problems.append(loc.problem(f"column {item.expect.column!r} is not in the query's result; its columns are "
                                        f"{', '.join(columns)}", field=where))
            continue
        wrong = item.expect.column_type_problem(columns[item.expect.column])
        if wrong:
            problems.append(loc.problem(wrong, field=where))
    if problems:
        raise PackError(problems)


def _columns(session: LedgerSQL, query: Query, period: Period) -> dict[str, str]:
    """Bind the query and return its result columns and DuckDB types, reading no rows: a
    DuckDB relation is bound when created and runs only when fetched."""
    import duckdb

    statements = session.statements(f"SELECT * FROM {_subquery(query.sql)}")  # checked: one SELECT
    try:
        relation = session.con.sql(statements[0].text, params=_params(query, period) or None)
        return dict(zip(relation.columns, (str(t) for t in relation.types)))
    except duckdb.Error as e:
        message = str(e)
        raise PackError(query.location.problem(f"SQL fails on the ledger's views: {_first_paragraph(message)}",
                                               line=_line_in_pack(query, message))) from None


def _run(session: LedgerSQL, query: Query, sql: str, params: Mapping[str, Any]) -> pa.Table:
    try:
        statements = session.statements(sql)
        return session.run(statements[0], params).table()  # type: ignore[arg-type]
    except QueryError as e:
        raise PackError(query.location.problem(f"SQL failed on this ledger: {_first_paragraph(str(e))}",
                                               line=_line_in_pack(query, str(e)))) from None


def _subquery(sql: str) -> str:
    # The pack's SQL starts on the wrapper's second line (see _line_in_pack); the newline before
    # the closing parenthesis keeps a trailing -- comment from swallowing it.
    return "(\n" + sql.strip().rstrip(";") + "\n) AS evidence"


def _line_in_pack(query: Query, message: str) -> int:
    """The pack line a DuckDB error points at: its "LINE n:" (counted in the wrapper, whose
    first line is "SELECT ... FROM ("), or else the first line of the query holding the name
    the message quotes (binder errors name the unknown column or table but give no line)."""
    m = re.search(r"\bLINE (\d+):", message)
    if m and int(m.group(1)) >= 2:
        return query.line_of(f"LINE {int(m.group(1)) - 1}:")
    quoted = re.search(r'"([^"]+)"', message) or re.search(r"name (\w+) does not exist", message)
    if quoted:
        word = re.compile(rf"(?<![\w.]){re.escape(quoted.group(1))}(?!\w)")
        for i, line in enumerate(query.sql.splitlines()):
            if word.search(line):
                return query.line_of(f"LINE {i + 1}:")
    return query.location.line


def _first_paragraph(message: str) -> str:
    return " ".join(message.split("\n\n")[0].split())


def _params(query: Query, period: Period) -> dict[str, dt.datetime]:
    values = period.parameters()
    return {name: values[name] for name in query.parameters}


# ---------------------------------------------------------------------- what answers rest on


def rests_on(session: LedgerSQL) -> RestsOn:
    a = session.attestation
    v = a.verification
    return RestsOn(a.ledger_id, a.path, a.through_seq, a.head_mac, a.verified, v.method if v else None,
                   v.summary if v else "not verified in this run", _checkpoint(session))


def _checkpoint(session: LedgerSQL) -> CheckpointInfo | None:
    """The newest stored checkpoint whose entries are all among those the answers rest on."""
    from ledger.checkpoints import parse as parse_extensions
    from ledger.checkpoints import stored_notes
    from ledger.note import Checkpoint, NoteError, parse_note
    from ledger.storage import Layout

    a = session.attestation
    candidates = [(size, path) for size, path in stored_notes(Layout(session.source.root)) if 0 < size <= a.through_seq + 1]
    if not candidates:
        return None
    size, path = candidates[-1]
    note = path.read_bytes()
    try:
        checkpoint = Checkpoint.from_text(parse_note(note).text)
        when = parse_extensions(checkpoint).time
    except NoteError:
        return None  # unreadable: RestsOn says no checkpoint; `mrm verify --public-key` says why
    checked = a.verified and a.verification is not None and a.verification.method == "signed-checkpoint"
    return CheckpointInfo(checkpoint.size, checkpoint.origin, checkpoint.root, when, note, checked)

