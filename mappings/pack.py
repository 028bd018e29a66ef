"""A regulation pack: one TOML file per regulation, every requirement answered by named SQL
queries over the ledger's views and an expectation that decides them.

The format (``format = "mrm-pack/1"``)::

    format = "mrm-pack/1"
    id = "eu-ai-act"                       # what --pack takes; lower case, digits, dashes
    title = "EU Artificial Intelligence Act: logging, transparency, oversight"
    instrument = "Regulation (EU) 2024/1689"
    authority = "European Parliament and Council"
    jurisdiction = "EU"
    pack_version = "1.0.0"                 # revision of this pack (not of the law)
    effective_from = 2026-08-02            # TOML dates, UTC days; the pack applies to [from, until)
    effective_until = 2027-01-01           # optional: when it stopped applying...
    superseded_by = "other-pack-id"        # ...and what replaced it (optional)
    applicability_note = "..."             # optional: transitional rules, deferrals
    summary = "..."                        # what the instrument is about, in our words
    sources = ["https://..."]              # where to read the official text

    [[requirement]]
    id = "art12-logging"                   # unique in the pack
    citation = "Art. 12(1)"                # unique in the pack
    title = "..."
    paraphrase = "..."                     # the obligation in our own words, never a quote
    examiner_asks = ["...", "..."]         # what an examiner asks to see
    coverage = "ledger"                    # or "outside_ledger": the ledger cannot evidence it
    ask_for = ["..."]                      # what else to ask for (required when outside_ledger)
    not_applicable_because = "..."         # optional: the requirement never applies to this kind of system

    [[requirement.evidence]]               # one or more for coverage = "ledger", none otherwise
    id = "served-decisions-have-attribution"   # the query's name; unique in its requirement
    shows = "..."                          # what the rows are, in one sentence
    sql = '''SELECT ... WHERE ts >= $from AND ts < $to'''   # one SELECT; $from and $to are the period
    expect = { kind = "all_rows_true", column = "has_attribution" }   # see mappings.expectations
    scope = '''SELECT ...'''               # optional: the population; empty -> when_empty
    when_empty = "insufficient_evidence"   # or "met" / "not_applicable", with empty_note saying why
    empty_note = "..."
    short_note = "..."                     # at_least_rows / span_at_least: what falling short means

A pack that breaks any rule is refused with a :class:`PackError` naming the file, the line and
the field of every problem; nothing of it is used.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import PackError, PackProblem
from .expectations import Expectation, ExpectationSpecError
from .status import Status
from .toml_lines import KeyLines, PathItem, locate_keys

FORMAT = "mrm-pack/1"
PERIOD_PARAMETERS = ("from", "to")  # $from, $to: the evaluated period, TIMESTAMPTZ, half-open [from, to)
LEDGER, OUTSIDE_LEDGER = "ledger", "outside_ledger"
COVERAGES = (LEDGER, OUTSIDE_LEDGER)
EMPTY_STATUSES = (Status.INSUFFICIENT_EVIDENCE, Status.MET, Status.NOT_APPLICABLE)

_PACK_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
_ITEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DUCKDB_LINE = re.compile(r"\bLINE (\d+):")

PACK_KEYS = ("format", "id", "title", "instrument", "authority", "jurisdiction", "pack_version", "effective_from",
             "effective_until", "superseded_by", "applicability_note", "summary", "sources", "requirement")
REQUIREMENT_KEYS = ("id", "citation", "title", "paraphrase", "examiner_asks", "coverage", "ask_for",
                    "not_applicable_because", "evidence")
EVIDENCE_KEYS = ("id", "shows", "sql", "expect", "scope", "when_empty", "empty_note", "short_note")


@dataclass(frozen=True)
class Location:
    """Where something is in its pack file, for messages about it."""

    file: str
    line: int
    field: str  # e.g. "requirement[3].evidence[0].sql"

    def problem(self, message: str, *, line: int | None = None, field: str | None = None) -> PackProblem:
        return PackProblem(self.file, line if line is not None else self.line, field or self.field, message)


@dataclass(frozen=True)
class Query:
    """One SELECT of a pack and the period parameters it uses."""

    sql: str
    parameters: tuple[str, ...]  # a subset of PERIOD_PARAMETERS
    location: Location  # of the `sql` (or `scope`) key
    first_line_offset: int = 0  # 1 when the SQL starts on the line after its key (a ''' string)

    def line_of(self, duckdb_message: str) -> int:
        """The file line a DuckDB message's "LINE n:" points at, else the key's line."""
        m = _DUCKDB_LINE.search(duckdb_message)
        if not m:
            return self.location.line
        return self.location.line + int(m.group(1)) - 1 + self.first_line_offset


@dataclass(frozen=True)
class EvidenceItem:
    id: str
    shows: str
    query: Query
    expect: Expectation
    scope: Query | None
    when_empty: Status
    empty_note: str | None
    short_note: str | None  # sufficiency checks: what falling short means, for people
    location: Location  # of the [[requirement.evidence]] table
    expect_location: Location

    @property
    def sql(self) -> str:
        return self.query.sql


@dataclass(frozen=True)
class Requirement:
    id: str
    citation: str
    title: str
    paraphrase: str
    examiner_asks: tuple[str, ...]
    coverage: str  # LEDGER or OUTSIDE_LEDGER
    ask_for: tuple[str, ...]
    not_applicable_because: str | None
    evidence: tuple[EvidenceItem, ...]
    location: Location

    @property
    def evidenced(self) -> bool:
        return self.coverage == LEDGER


@dataclass(frozen=True)
class Pack:
    id: str
    title: str
    instrument: str
    authority: str
    jurisdiction: str
    pack_version: str
    effective_from: dt.date
    effective_until: dt.date | None
    superseded_by: str | None
    applicability_note: str | None
    summary: str
    sources: tuple[str, ...]
    requirements: tuple[Requirement, ...]
    file: str
    sha256: str  # of the file's bytes: which text of the pack judged the ledger

    def requirement(self, requirement_id: str) -> Requirement:
        for r in self.requirements:
            if r.id == requirement_id:
                return r
        raise KeyError(f"pack {self.id} has no requirement {requirement_id!r}; "
                       f"its requirements are {', '.join(r.id for r in self.requirements)}")

    def queries(self) -> list[tuple[Requirement, EvidenceItem, Query, str]]:
        """Every query of the pack: (requirement, item, query, "sql" or "scope")."""
        out = []
        for r in self.requirements:
            for e in r.evidence:
                out.append((r, e, e.query, "sql"))
                if e.scope is not None:
                    out.append((r, e, e.scope, "scope"))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "instrument": self.instrument, "authority": self.authority,
            "jurisdiction": self.jurisdiction, "pack_version": self.pack_version,
            "effective_from": self.effective_from.isoformat(),
            "effective_until": self.effective_until.isoformat() if self.effective_until else None,
            "superseded_by": self.superseded_by, "applicability_note": self.applicability_note,
            "summary": self.summary, "sources": list(self.sources), "file": self.file, "sha256": self.sha256,
        }


# ---------------------------------------------------------------------- loading


def load_pack_file(path: str | Path, *, expected_id: str | None = None) -> Pack:
    """Read and validate one pack file; a PackError names every problem with its line.
    ``expected_id``: the id the pack must have (in a packs directory, its file name)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise PackError(PackProblem(str(p), None, "", f"cannot read the pack: {e.strerror or e}")) from None
    return parse_pack(data, str(p), expected_id=expected_id)


def parse_pack(data: bytes | str, file: str = "<pack>", *, expected_id: str | None = None) -> Pack:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise PackError(PackProblem(file, line, "", "the pack is not UTF-8 text")) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PackError(_syntax_problem(file, e)) from None
    return _Reader(file, text, hashlib.sha256(raw).hexdigest(), locate_keys(text), expected_id).pack(doc)


def _syntax_problem(file: str, e: tomllib.TOMLDecodeError) -> PackProblem:
    message = str(e)
    m = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if m:
        detail = message[: m.start()].strip()
        return PackProblem(file, int(m.group(1)), "", f"TOML syntax error at column {m.group(2)}: {detail}")
    return PackProblem(file, None, "", f"TOML syntax error: {message}")


class _Reader:
    """Validates a parsed pack document, collecting every problem with its location."""

    def __init__(self, file: str, text: str, sha256: str, lines: KeyLines, expected_id: str | None = None):
        self.file, self.text, self.sha256, self.lines = file, text, sha256, lines
        self.expected_id = expected_id
        self.problems: list[PackProblem] = []

    # -- locations and problems ----------------------------------------------------------------
    def where(self, path: tuple[PathItem, ...]) -> Location:
        return Location(self.file, self.lines.line(path), _field(path))

    def problem(self, path: tuple[PathItem, ...], message: str) -> None:
        self.problems.append(self.where(path).problem(message))

    # -- typed getters (record a problem and return None when wrong) ------------------------------
    def text_value(self, table: Mapping[str, Any], path: tuple[PathItem, ...], *, required: bool = True) -> str | None:
        key = path[-1]
        if key not in table:
            if required:
                self.problem(path, "missing")
            return None
        value = table[key]
        if not isinstance(value, str):
            self.problem(path, f"must be text, got {_toml_type(value)}")
            return None
        if not value.strip():
            self.problem(path, "must not be empty")
            return None
        return value.strip()

    def text_list(self, table: Mapping[str, Any], path: tuple[PathItem, ...], *, required: bool) -> tuple[str, ...]:
        key = path[-1]
        if key not in table:
            if required:
                self.problem(path, "missing")
            return ()
        value = table[key]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.problem(path, "must be a list of non-empty texts")
            return ()
        if required and not value:
            self.problem(path, "must list at least one item")
        return tuple(v.strip() for v in value)

    def date_value(self, table: Mapping[str, Any], path: tuple[PathItem, ...], *, required: bool) -> dt.date | None:
        key = path[-1]
        if key not in table:
            if required:
                self.problem(path, "missing")
            return None
        value = table[key]
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            self.problem(path, f"must be a TOML date without quotes, like 2026-04-17; got {_toml_type(value)} {value!r}")
            return None
        return value

    def unknown_keys(self, table: Mapping[str, Any], path: tuple[PathItem, ...], allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; the keys are {', '.join(allowed)}"
                self.problem((*path, key), f"unknown key{hint}")

    # -- the document --------------------------------------------------------------------------
    def pack(self, doc: Mapping[str, Any]) -> Pack:
        self.unknown_keys(doc, (), PACK_KEYS)
        fmt = doc.get("format")
        if fmt != FORMAT:
            self.problem(("format",), f"must be {FORMAT!r}" + ("" if fmt is None else f", got {fmt!r}"))
        pack_id = self.text_value(doc, ("id",))
        if pack_id is not None and not _PACK_ID.fullmatch(pack_id):
            self.problem(("id",), f"{pack_id!r} is not a pack id: lower-case letters, digits and dashes")
        elif pack_id is not None and self.expected_id is not None and pack_id != self.expected_id:
            self.problem(("id",), f"the pack's id {pack_id!r} differs from its file name; in a packs directory "
                                  f"name the file {pack_id}.toml (or set id = {self.expected_id!r})")
        fields = {k: self.text_value(doc, (k,)) for k in ("title", "instrument", "authority", "jurisdiction", "pack_version", "summary")}
        effective_from = self.date_value(doc, ("effective_from",), required=True)
        effective_until = self.date_value(doc, ("effective_until",), required=False)
        if effective_from and effective_until and effective_until <= effective_from:
            self.problem(("effective_until",), f"{effective_until} is not after effective_from {effective_from}")
        superseded_by = self.text_value(doc, ("superseded_by",), required=False)
        if superseded_by is not None and effective_until is None:
            self.problem(("superseded_by",), "a superseded pack needs effective_until: the day its successor took over")
        note = self.text_value(doc, ("applicability_note",), required=False)
        sources = self.text_list(doc, ("sources",), required=True)
        requirements = self.requirements(doc)
        if self.problems:
            raise PackError(self.problems)
        return Pack(pack_id, fields["title"], fields["instrument"], fields["authority"], fields["jurisdiction"],  # type: ignore[arg-type]
                    fields["pack_version"], effective_from, effective_until, superseded_by, note,  # type: ignore[arg-type]
                    fields["summary"], sources, tuple(requirements), self.file, self.sha256)  # type: ignore[arg-type]

    def requirements(self, doc: Mapping[str, Any]) -> list[Requirement]:
        tables = doc.get("requirement")
        if tables is None:
            self.problem(("requirement",), "a pack needs at least one [[requirement]]")
            return []
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            self.problem(("requirement",), "must be an array of tables: write each as [[requirement]]")
            return []
        out: list[Requirement] = []
        seen_ids: dict[str, int] = {}
        seen_citations: dict[str, int] = {}
        for i, table in enumerate(tables):
            req = self.requirement(table, i)
            if req is None:
                continue
            for value, seen, what in ((req.id, seen_ids, "id"), (req.citation, seen_citations, "citation")):
                if value in seen:
                    self.problem(("requirement", i, what), f"duplicate {what} {value!r}: requirement[{seen[value]}] has it too")
                else:
                    seen[value] = i
            out.append(req)
        return out

    def requirement(self, table: Mapping[str, Any], i: int) -> Requirement | None:
        path: tuple[PathItem, ...] = ("requirement", i)
        before = len(self.problems)
        self.unknown_keys(table, path, REQUIREMENT_KEYS)
        req_id = self.text_value(table, (*path, "id"))
        if req_id is not None and not _ITEM_ID.fullmatch(req_id):
            self.problem((*path, "id"), f"{req_id!r} is not an id: letters, digits, '.', '_' and '-', starting with a letter or digit")
        citation = self.text_value(table, (*path, "citation"))
        title = self.text_value(table, (*path, "title"))
        paraphrase = self.text_value(table, (*path, "paraphrase"))
        asks = self.text_list(table, (*path, "examiner_asks"), required=True)
        coverage = table.get("coverage", LEDGER)
        if coverage not in COVERAGES:
            self.problem((*path, "coverage"), f"must be {' or '.join(map(repr, COVERAGES))}, got {coverage!r}")
        ask_for = self.text_list(table, (*path, "ask_for"), required=coverage == OUTSIDE_LEDGER)
        not_applicable = self.text_value(table, (*path, "not_applicable_because"), required=False)
        evidence_tables = table.get("evidence", [])
        if not isinstance(evidence_tables, list) or not all(isinstance(t, dict) for t in evidence_tables):
            self.problem((*path, "evidence"), "must be an array of tables: write each as [[requirement.evidence]]")
            evidence_tables = []
        if coverage == OUTSIDE_LEDGER and evidence_tables:
            self.problem((*path, "evidence", 0), "a requirement outside the ledger's coverage has no evidence queries; "
                                                 "set coverage = \"ledger\" or remove the evidence")
        if coverage == LEDGER and not evidence_tables and not_applicable is None:
            self.problem(path, "a requirement the ledger covers needs at least one [[requirement.evidence]] "
                               "(or coverage = \"outside_ledger\" with ask_for)")
        items: list[EvidenceItem] = []
        seen: dict[str, int] = {}
        for j, et in enumerate(evidence_tables):
            item = self.evidence(et, (*path, "evidence", j))
            if item is None:
                continue
            if item.id in seen:
                self.problem((*path, "evidence", j, "id"), f"duplicate evidence id {item.id!r} in this requirement: evidence[{seen[item.id]}] has it too")
            seen[item.id] = j
            items.append(item)
        if len(self.problems) > before:
            return None
        return Requirement(req_id, citation, title, paraphrase, asks, coverage, ask_for, not_applicable,  # type: ignore[arg-type]
                           tuple(items), self.where(path))

    def evidence(self, table: Mapping[str, Any], path: tuple[PathItem, ...]) -> EvidenceItem | None:
        before = len(self.problems)
        self.unknown_keys(table, path, EVIDENCE_KEYS)
        item_id = self.text_value(table, (*path, "id"))
        if item_id is not None and not _ITEM_ID.fullmatch(item_id):
            self.problem((*path, "id"), f"{item_id!r} is not an id: letters, digits, '.', '_' and '-', starting with a letter or digit")
        shows = self.text_value(table, (*path, "shows"))
        query = self.query(table, (*path, "sql"), required=True)
        scope = self.query(table, (*path, "scope"), required=False)
        expect = None
        if "expect" not in table:
            self.problem((*path, "expect"), "missing: the expectation that decides this item, e.g. { kind = \"no_rows\" }")
        else:
            try:
                expect = Expectation.parse(table["expect"])
            except ExpectationSpecError as e:
                self.problem((*path, "expect", e.field) if e.field else (*path, "expect"), str(e))
        when_empty = Status.INSUFFICIENT_EVIDENCE
        if "when_empty" in table:
            try:
                when_empty = Status(table["when_empty"])
            except ValueError:
                when_empty = None  # type: ignore[assignment]
            if when_empty not in EMPTY_STATUSES:
                self.problem((*path, "when_empty"), f"must be one of {', '.join(s.value for s in EMPTY_STATUSES)}, got {table['when_empty']!r}")
                when_empty = Status.INSUFFICIENT_EVIDENCE
            elif expect is not None and not expect.rows_are_population and "scope" not in table:
                self.problem((*path, "when_empty"), f"{expect.kind} has no population of its own: when_empty applies only "
                                                    "with a scope query")
        empty_note = self.text_value(table, (*path, "empty_note"), required=False)
        short_note = self.text_value(table, (*path, "short_note"), required=False)
        if short_note is not None and expect is not None and expect.is_row_check:
            self.problem((*path, "short_note"), f"{expect.kind} cannot fall short (its rows are findings); "
                                                "short_note goes with at_least_rows and span_at_least")
        if when_empty != Status.INSUFFICIENT_EVIDENCE and empty_note is None:
            self.problem((*path, "when_empty"), f"when_empty = {when_empty.value!r} claims something about an empty population: "
                                                "say why in empty_note")
        if len(self.problems) > before or query is None or expect is None:
            return None
        return EvidenceItem(item_id, shows, query, expect, scope, when_empty, empty_note, short_note, self.where(path),  # type: ignore[arg-type]
                            self.where((*path, "expect")))

    def query(self, table: Mapping[str, Any], path: tuple[PathItem, ...], *, required: bool) -> Query | None:
        sql = self.text_value(table, path, required=required)
        if sql is None:
            return None
        where = self.where(path)
        raw = table[path[-1]]
        leading_newlines = raw[: len(raw) - len(raw.lstrip())].count("\n")  # stripped off before parsing
        query = Query(sql, (), where, _first_line_offset(self.text, where.line) + leading_newlines)
        try:
            import duckdb

            statements = _parser().extract_statements(sql)
        except Exception as e:  # duckdb.ParserException and friends
            message = " ".join(str(e).split("\n\n")[0].split())
            self.problems.append(where.problem(f"SQL does not parse: {message}", line=query.line_of(str(e))))
            return None
        if len(statements) != 1:
            self.problem(path, f"must be exactly one SELECT statement, found {len(statements)}")
            return None
        statement = statements[0]
        if statement.type != duckdb.StatementType.SELECT:
            self.problem(path, f"must be a SELECT; found a {statement.type.name.replace('_', ' ')} statement")
            return None
        params = set(statement.named_parameters)
        unknown = sorted(p for p in params if p not in PERIOD_PARAMETERS)
        if unknown:
            shown = ", ".join("$" + p if not p.isdigit() else f"${p} (positional)" for p in unknown)
            self.problem(path, f"unknown parameter(s) {shown}; a pack query may use only $from and $to (the period)")
            return None
        return Query(sql.strip(), tuple(p for p in PERIOD_PARAMETERS if p in params), where, query.first_line_offset)


_PARSER: Any = None


def _parser() -> Any:
    """A private in-memory DuckDB connection, used only to parse (never to run) pack SQL."""
    global _PARSER
    if _PARSER is None:
        import duckdb

        _PARSER = duckdb.connect(":memory:")
    return _PARSER


def _first_line_offset(text: str, key_line: int) -> int:
    """1 when a multi-line string opens at the end of the key's line (its first line of SQL
    is the next line of the file), else 0."""
    lines = text.splitlines()
    if not 0 < key_line <= len(lines):
        return 0
    line = lines[key_line - 1].rstrip()
    return 1 if line.endswith('"""') or line.endswith("'''") else 0


def _field(path: tuple[PathItem, ...]) -> str:
    out = ""
    for item in path:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else item)
    return out


def _toml_type(value: Any) -> str:
    types: list[tuple[type, str]] = [(bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "text"),
                                     (dt.datetime, "a date-time"), (dt.date, "a date"), (list, "an array"), (dict, "a table")]
    for t, name in types:
        if isinstance(value, t):
            return name
    return type(value).__name__

