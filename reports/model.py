"""The report document model: immutable data, checked when it is built.

A :class:`Report` is metadata (what, for whom, over which period, resting on which signed
checkpoint), sections of blocks (paragraphs, key-value blocks, status badges, tables,
SQL, figures) and attachments (the evidence the pages show, as bytes). Report builders fill
it from ledger evidence; :func:`reports.render.render_report` turns it into a signed
PDF/A-3b document.

Nothing here knows about HTML or CSS. Every string is data and is shown as text, whatever
it contains; the one exception is a :class:`Figure`'s SVG, which comes from the chart
helpers and is drawn as an image (still only through the report's own asset fetcher).

Values are typed and validated up front: a naive datetime, a bool in a number column, a
row of the wrong width or a table pointing at an attachment that does not exist are
refused with :class:`ReportModelError`, never guessed at by the renderer.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Iterable, Sequence, Union

from ledger.note import Checkpoint, MalformedNoteError, MalformedCheckpointError, parse_note

from .errors import ReportModelError

__all__ = [
    "MAX_SECTION_DEPTH",
    "RESERVED_ATTACHMENT_NAMES",
    "ReportKind",
    "Status",
    "ValueKind",
    "AttachmentRole",
    "CellValue",
    "StatusBadge",
    "KeyValue",
    "Paragraph",
    "KeyValues",
    "Column",
    "Table",
    "CodeBlock",
    "Figure",
    "Block",
    "Section",
    "Attachment",
    "Period",
    "CheckpointRef",
    "VerificationSummary",
    "ReportMeta",
    "Report",
    "infer_kind",
    "check_value",
]

MAX_SECTION_DEPTH = 3
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
RESERVED_ATTACHMENT_NAMES = frozenset({MANIFEST_NAME, SIGNATURE_NAME})

# Attachment names become file names when an examiner extracts them: a portable subset,
# no path separators, no leading dot, no case-only differences between two attachments.
_ATTACHMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
# Report ids go into a signed note and a running header: one printable ASCII token.
_REPORT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class ReportKind(str, Enum):
    """The three documents the toolkit produces."""

    EVIDENCE = "evidence"  # what the ledger holds over a period, and that it verifies
    DECISION = "decision"  # the reconstruction of one decision (a dispute, an Art. 86 request)
    VALIDATION = "validation"  # model validation and monitoring evidence (SR 11-7)


class Status(Enum):
    """An outcome. Each one has a word and a symbol so it reads without colour (greyscale
    print, colour-blind readers): colour only reinforces the word."""

    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    INFO = "info"
    NOT_RUN = "not_run"

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]

    @property
    def symbol(self) -> str:
        return _STATUS_SYMBOLS[self]


_STATUS_LABELS = {
    Status.PASS: "PASS",
    Status.FAIL: "FAIL",
    Status.WARN: "WARNING",
    Status.INFO: "INFO",
    Status.NOT_RUN: "NOT RUN",
}
_STATUS_SYMBOLS = {
    Status.PASS: "\u2713",  # check mark
    Status.FAIL: "\u2717",  # ballot x
    Status.WARN: "!",
    Status.INFO: "i",
    Status.NOT_RUN: "\u2013",  # en dash
}


class ValueKind(Enum):
    """How a value is checked and shown."""

    TEXT = "text"  # str; wraps at spaces
    NUMBER = "number"  # int, float or Decimal (never bool); right-aligned
    IDENTIFIER = "identifier"  # str or int shown verbatim in monospace (seq, subject id, version)
    DIGEST = "digest"  # hex/base64 str, or bytes shown as hex; monospace, breaks anywhere
    TIMESTAMP = "timestamp"  # timezone-aware datetime (shown in UTC) or date
    STATUS = "status"  # Status or StatusBadge
    BOOLEAN = "boolean"  # bool, shown as yes / no


class AttachmentRole(str, Enum):
    """What an attachment is; decides its PDF/A-3 AFRelationship and extra checks."""

    QUERY_RESULT = "query_result"  # rows a table or chart shows (Parquet)
    VERIFICATION = "verification"  # the ledger verification report (JSON)
    CHECKPOINT = "checkpoint"  # the signed checkpoint note the report rests on
    PROOFS = "proofs"  # inclusion / consistency proofs (JSON)
    OTHER = "other"

    @property
    def af_relationship(self) -> str:
        """ISO 32000-2 7.11.3: "Data" is what the visible presentation is derived from."""
        return "Supplement" if self in (AttachmentRole.PROOFS, AttachmentRole.OTHER) else "Data"


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class StatusBadge:
    """An outcome with an optional custom word ("BLOCKED" shown as a FAIL) and detail."""

    status: Status
    label: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        _require(isinstance(self.status, Status), f"status must be a Status, got {type(self.status).__name__}")
        _require(self.label is None or (isinstance(self.label, str) and self.label.strip()), "badge label must be a non-empty string or None")
        _require(isinstance(self.detail, str), "badge detail must be a string")

    @property
    def text(self) -> str:
        return self.label if self.label is not None else self.status.label


CellValue = Union[str, int, float, Decimal, bool, dt.datetime, dt.date, bytes, Status, StatusBadge, None]


def infer_kind(value: CellValue) -> ValueKind:
    """The kind a lone value is shown as when nobody said (key-value blocks)."""
    if isinstance(value, (Status, StatusBadge)):
        return ValueKind.STATUS
    if isinstance(value, bool):
        return ValueKind.BOOLEAN
    if isinstance(value, (int, float, Decimal)):
        return ValueKind.NUMBER
    if isinstance(value, (dt.datetime, dt.date)):
        return ValueKind.TIMESTAMP
    if isinstance(value, bytes):
        return ValueKind.DIGEST
    if value is None or isinstance(value, str):
        return ValueKind.TEXT
    raise ReportModelError(f"unsupported value type {type(value).__name__}")


def check_value(value: CellValue, kind: ValueKind, where: str) -> None:
    """Refuse a value that does not belong to ``kind``. None (SQL NULL) fits every kind."""
    if value is None:
        return
    ok: bool
    if kind is ValueKind.TEXT:
        ok = isinstance(value, str)
    elif kind is ValueKind.NUMBER:
        ok = isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
    elif kind is ValueKind.IDENTIFIER:
        ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    elif kind is ValueKind.DIGEST:
        ok = isinstance(value, (str, bytes))
    elif kind is ValueKind.TIMESTAMP:
        if isinstance(value, dt.datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ReportModelError(f"{where}: naive datetime {value.isoformat()}; give a timezone (UTC)")
            ok = True
        else:
            ok = isinstance(value, dt.date)
    elif kind is ValueKind.STATUS:
        ok = isinstance(value, (Status, StatusBadge))
    elif kind is ValueKind.BOOLEAN:
        ok = isinstance(value, bool)
    else:  # pragma: no cover - exhaustive
        ok = False
    if not ok:
        raise ReportModelError(f"{where}: a {kind.value} value cannot be {type(value).__name__} {value!r:.80}")


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Paragraph:
    """Prose. Line breaks are kept; nothing in it is markup."""

    text: str

    def __post_init__(self) -> None:
        _require(isinstance(self.text, str), "paragraph text must be a string")


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: CellValue
    kind: ValueKind | None = None  # None: inferred from the value's type

    def __post_init__(self) -> None:
        _require(isinstance(self.key, str) and self.key != "", "a key-value key must be a non-empty string")
        kind = self.kind if self.kind is not None else infer_kind(self.value)
        _require(isinstance(kind, ValueKind), f"kind must be a ValueKind, got {kind!r}")
        check_value(self.value, kind, f"key {self.key!r}")
        object.__setattr__(self, "kind", kind)


@dataclass(frozen=True)
class KeyValues:
    """A two-column block of facts ("Model version: 3.2.1")."""

    items: tuple[KeyValue, ...]
    caption: str = ""

    def __post_init__(self) -> None:
        items = tuple(_as_key_value(i) for i in self.items)
        _require(bool(items), "a key-value block needs at least one item")
        object.__setattr__(self, "items", items)
        _require(isinstance(self.caption, str), "caption must be a string")


@dataclass(frozen=True)
class Column:
    title: str
    kind: ValueKind = ValueKind.TEXT
    precision: int | None = None  # decimal places for float / Decimal numbers
    weight: float = 1.0  # relative width; digests and free text deserve more

    def __post_init__(self) -> None:
        _require(isinstance(self.title, str) and self.title != "", "a column needs a title")
        _require(isinstance(self.kind, ValueKind), f"column {self.title!r}: kind must be a ValueKind")
        _require(
            self.precision is None or (isinstance(self.precision, int) and not isinstance(self.precision, bool) and 0 <= self.precision <= 12),
            f"column {self.title!r}: precision must be 0-12 or None",
        )
        _require(
            isinstance(self.weight, (int, float)) and not isinstance(self.weight, bool) and 0 < self.weight <= 100,
            f"column {self.title!r}: weight must be in (0, 100]",
        )


@dataclass(frozen=True)
class Table:
    """Rows of typed values under column headers. Long tables break across pages with the
    header row repeated; ``source_attachment`` names the attachment holding the rows
    (``total_rows``: how many there are when the table shows only some; ``source_rows``: how
    many the attachment holds when it holds only the first of them, as for a query result
    of millions of rows)."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[CellValue, ...], ...]
    caption: str = ""
    source_attachment: str | None = None
    total_rows: int | None = None
    empty_text: str = "No rows."
    source_rows: int | None = None

    def __post_init__(self) -> None:
        columns = tuple(self.columns)
        _require(bool(columns), "a table needs at least one column")
        _require(all(isinstance(c, Column) for c in columns), "table columns must be Column objects")
        width = len(columns)
        rows = tuple(tuple(r) for r in self.rows)
        for number, row in enumerate(rows, 1):
            if len(row) != width:
                raise ReportModelError(f"table {self.caption!r} row {number} has {len(row)} values, want {width}")
            for column, value in zip(columns, row):
                check_value(value, column.kind, f"table {self.caption!r} row {number} column {column.title!r}")
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "rows", rows)
        _require(isinstance(self.caption, str), "caption must be a string")
        _require(self.source_attachment is None or isinstance(self.source_attachment, str), "source_attachment must be a name")
        if self.total_rows is not None:
            _require(
                isinstance(self.total_rows, int) and not isinstance(self.total_rows, bool) and self.total_rows >= len(rows),
                f"table {self.caption!r}: total_rows {self.total_rows!r} is less than the {len(rows)} rows shown",
            )
        if self.source_rows is not None:
            _require(self.source_attachment is not None and self.total_rows is not None,
                     f"table {self.caption!r}: source_rows needs source_attachment and total_rows")
            _require(isinstance(self.source_rows, int) and not isinstance(self.source_rows, bool)
                     and len(rows) <= self.source_rows <= self.total_rows,  # type: ignore[operator]
                     f"table {self.caption!r}: source_rows {self.source_rows!r} is not between the rows shown and total_rows")


@dataclass(frozen=True)
class CodeBlock:
    """Source shown verbatim in monospace: the SQL a table came from, a command line."""

    code: str
    language: str = "sql"
    caption: str = ""

    def __post_init__(self) -> None:
        _require(isinstance(self.code, str), "code must be a string")
        _require(isinstance(self.language, str) and re.fullmatch(r"[a-z0-9+-]{1,20}", self.language) is not None, "language must be a short lowercase name")


@dataclass(frozen=True)
class Figure:
    """A vector chart (SVG bytes from :mod:`reports.charts`) with a caption and a text
    alternative. The SVG is drawn through the report's asset fetcher, so any external
    reference inside it is refused rather than loaded."""

    svg: bytes
    caption: str
    alt: str = ""

    def __post_init__(self) -> None:
        _require(isinstance(self.svg, bytes), "figure svg must be bytes")
        head = self.svg.lstrip()[:256]
        _require(head.startswith(b"<?xml") or head.startswith(b"<svg"), "figure svg does not look like an SVG document")
        _require(isinstance(self.caption, str) and self.caption != "", "a figure needs a caption")
        _require(isinstance(self.alt, str), "alt must be a string")


Block = Union[Paragraph, KeyValues, StatusBadge, Table, CodeBlock, Figure]
_BLOCK_TYPES = (Paragraph, KeyValues, StatusBadge, Table, CodeBlock, Figure)


@dataclass(frozen=True)
class Section:
    """A heading and its blocks; subsections nest (level = depth, at most 3)."""

    title: str
    blocks: tuple[Block, ...] = ()
    subsections: tuple["Section", ...] = ()

    def __post_init__(self) -> None:
        _require(isinstance(self.title, str) and self.title.strip() != "", "a section needs a title")
        blocks, subsections = tuple(self.blocks), tuple(self.subsections)
        for block in blocks:
            _require(isinstance(block, _BLOCK_TYPES), f"section {self.title!r}: {type(block).__name__} is not a block")
        for sub in subsections:
            _require(isinstance(sub, Section), f"section {self.title!r}: subsections must be Section objects")
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "subsections", subsections)

    def depth(self) -> int:
        return 1 + max((s.depth() for s in self.subsections), default=0)

    def walk(self) -> Iterable["Section"]:
        yield self
        for sub in self.subsections:
            yield from sub.walk()


# --------------------------------------------------------------------------- attachments


@dataclass(frozen=True)
class Attachment:
    """Evidence embedded in the PDF as a PDF/A-3 associated file and listed, with its
    SHA-256, in the signed manifest."""

    name: str
    media_type: str
    data: bytes = field(repr=False)
    description: str
    role: AttachmentRole = AttachmentRole.OTHER

    def __post_init__(self) -> None:
        _require(isinstance(self.name, str) and _ATTACHMENT_NAME.fullmatch(self.name) is not None,
                 f"attachment name {self.name!r} must be 1-100 characters of A-Z a-z 0-9 . _ - not starting with . _ -")
        _require(self.name.lower() not in RESERVED_ATTACHMENT_NAMES, f"attachment name {self.name!r} is reserved for the signed manifest")
        _require(isinstance(self.media_type, str) and _MEDIA_TYPE.fullmatch(self.media_type) is not None,
                 f"attachment {self.name!r}: media type {self.media_type!r} is not type/subtype in lowercase")
        _require(isinstance(self.data, bytes), f"attachment {self.name!r}: data must be bytes")
        _require(isinstance(self.description, str) and self.description.strip() != "", f"attachment {self.name!r} needs a description")
        _require(isinstance(self.role, AttachmentRole), f"attachment {self.name!r}: role must be an AttachmentRole")


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class Period:
    """The half-open interval [start, end) of events the report covers, in UTC."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        check_value(self.start, ValueKind.TIMESTAMP, "period start")
        check_value(self.end, ValueKind.TIMESTAMP, "period end")
        _require(isinstance(self.start, dt.datetime) and isinstance(self.end, dt.datetime), "period bounds must be datetimes")
        _require(self.start <= self.end, "period start is after its end")


@dataclass(frozen=True)
class CheckpointRef:
    """The signed checkpoint (origin, tree size, root) the report's evidence rests on."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        try:  # the checkpoint class owns the rules (single-line origin, uint64, 32 bytes)
            Checkpoint(self.origin, self.size, self.root)
        except MalformedCheckpointError as e:
            raise ReportModelError(f"checkpoint: {e}") from None

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> "CheckpointRef":
        return cls(checkpoint.origin, checkpoint.size, checkpoint.root)

    def matches(self, checkpoint: Checkpoint) -> bool:
        return (self.origin, self.size, self.root) == (checkpoint.origin, checkpoint.size, checkpoint.root)


@dataclass(frozen=True)
class VerificationSummary:
    """What verifying the ledger found, in one line plus facts, shown on the cover."""

    status: Status
    headline: str
    facts: tuple[KeyValue, ...] = ()

    def __post_init__(self) -> None:
        _require(isinstance(self.status, Status), "verification status must be a Status")
        _require(isinstance(self.headline, str) and self.headline.strip() != "", "verification needs a headline")
        object.__setattr__(self, "facts", tuple(_as_key_value(f) for f in self.facts))


@dataclass(frozen=True)
class ReportMeta:
    kind: ReportKind
    report_id: str
    title: str
    institution: str
    system: str
    period: Period
    ledger_id: str
    checkpoint: CheckpointRef
    verification: VerificationSummary
    generated_at: dt.datetime  # when the evidence was assembled; the PDF date is passed to render
    prepared_by: str = ""
    subtitle: str = ""
    lang: str = "en"
    time_zone: str = ""  # IANA name: timestamps show their local time in it next to UTC ("": UTC only)

    @property
    def zone(self) -> dt.tzinfo | None:
        from .values import time_zone

        return time_zone(self.time_zone) if self.time_zone else None

    def __post_init__(self) -> None:
        _require(isinstance(self.kind, ReportKind), "kind must be a ReportKind")
        _require(isinstance(self.report_id, str) and _REPORT_ID.fullmatch(self.report_id) is not None,
                 f"report id {self.report_id!r} must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        for name in ("title", "institution", "system", "ledger_id"):
            value = getattr(self, name)
            _require(isinstance(value, str) and value.strip() != "", f"{name} must be a non-empty string")
        _require(isinstance(self.period, Period), "period must be a Period")
        _require(isinstance(self.checkpoint, CheckpointRef), "checkpoint must be a CheckpointRef")
        _require(isinstance(self.verification, VerificationSummary), "verification must be a VerificationSummary")
        check_value(self.generated_at, ValueKind.TIMESTAMP, "generated_at")
        _require(isinstance(self.generated_at, dt.datetime), "generated_at must be a datetime")
        _require(isinstance(self.prepared_by, str) and isinstance(self.subtitle, str), "prepared_by and subtitle must be strings")
        _require(isinstance(self.lang, str) and re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*", self.lang) is not None, f"lang {self.lang!r} is not a BCP 47 tag")
        _require(isinstance(self.time_zone, str) and (self.time_zone == "" or _known_zone(self.time_zone)),
                 f"time zone {self.time_zone!r} is not an IANA time zone name (such as Asia/Seoul)")


@dataclass(frozen=True)
class Report:
    """A complete document: metadata, sections (headings nest at most three deep) and the
    evidence attachments. Cross-references are checked here: every table's
    ``source_attachment`` exists, names are unique ignoring case, and an attached
    checkpoint note is the checkpoint the metadata names."""

    meta: ReportMeta
    sections: tuple[Section, ...]
    attachments: tuple[Attachment, ...] = ()

    def __post_init__(self) -> None:
        _require(isinstance(self.meta, ReportMeta), "meta must be a ReportMeta")
        sections, attachments = tuple(self.sections), tuple(self.attachments)
        _require(bool(sections), "a report needs at least one section")
        for s in sections:
            _require(isinstance(s, Section), "sections must be Section objects")
            _require(s.depth() <= MAX_SECTION_DEPTH, f"section {s.title!r} nests deeper than {MAX_SECTION_DEPTH} levels")
        seen: dict[str, str] = {}
        for a in attachments:
            _require(isinstance(a, Attachment), "attachments must be Attachment objects")
            folded = a.name.lower()
            _require(folded not in seen, f"two attachments are named {a.name!r} / {seen.get(folded)!r} (names are compared ignoring case)")
            seen[folded] = a.name
        names = {a.name for a in attachments}
        for section in sections:
            for s in section.walk():
                for block in s.blocks:
                    if isinstance(block, Table) and block.source_attachment is not None:
                        _require(block.source_attachment in names,
                                 f"table {block.caption!r} names attachment {block.source_attachment!r}, which the report does not carry")
        checkpoints = [a for a in attachments if a.role is AttachmentRole.CHECKPOINT]
        _require(len(checkpoints) <= 1, "a report rests on one checkpoint; more than one checkpoint attachment given")
        for a in checkpoints:
            self._check_checkpoint_attachment(a)
        object.__setattr__(self, "sections", sections)
        object.__setattr__(self, "attachments", attachments)

    def _check_checkpoint_attachment(self, attachment: Attachment) -> None:
        try:
            checkpoint = Checkpoint.from_text(parse_note(attachment.data).text)
        except (MalformedNoteError, MalformedCheckpointError) as e:
            raise ReportModelError(f"checkpoint attachment {attachment.name!r} is not a signed checkpoint note: {e}") from None
        if not self.meta.checkpoint.matches(checkpoint):
            raise ReportModelError(
                f"checkpoint attachment {attachment.name!r} is for {checkpoint.origin!r} size {checkpoint.size}, "
                f"not the checkpoint the report names ({self.meta.checkpoint.origin!r} size {self.meta.checkpoint.size})"
            )

    def attachment(self, name: str) -> Attachment:
        for a in self.attachments:
            if a.name == name:
                return a
        raise KeyError(name)

    def figures(self) -> list[Figure]:
        return [b for section in self.sections for s in section.walk() for b in s.blocks if isinstance(b, Figure)]


# --------------------------------------------------------------------------- helpers


def _known_zone(name: str) -> bool:
    from .values import time_zone  # values reads this module's types: imported when used

    try:
        time_zone(name)
    except ValueError:
        return False
    return True


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ReportModelError(message)


def _as_key_value(item: KeyValue | Sequence) -> KeyValue:
    """Accept ``KeyValue`` or a ``(key, value)`` / ``(key, value, kind)`` tuple."""
    if isinstance(item, KeyValue):
        return item
    if isinstance(item, tuple) and len(item) in (2, 3):
        return KeyValue(*item)
    raise ReportModelError(f"expected a KeyValue or a (key, value) tuple, got {item!r:.80}")
