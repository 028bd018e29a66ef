"""The document model refuses malformed reports when they are built, and typed values
read exactly."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from reports import (
    Attachment,
    AttachmentRole,
    Column,
    KeyValue,
    KeyValues,
    Paragraph,
    Report,
    ReportModelError,
    Section,
    Status,
    StatusBadge,
    Table,
    ValueKind,
)
from reports.manifest import ManifestError, ReportManifest
from reports.sample import sample_checkpoint, sample_report
from reports.values import format_value, visible_text

from .report_support import FOREIGN, SIGNER

UTC = dt.timezone.utc


def test_values_are_checked_against_their_column_kind():
    Table((Column("n", ValueKind.NUMBER),), ((1,), (2.5,), (Decimal("3.10"),), (None,)))
    with pytest.raises(ReportModelError, match="a number value cannot be bool"):
        Table((Column("n", ValueKind.NUMBER),), ((True,),))
    with pytest.raises(ReportModelError, match="naive datetime"):
        Table((Column("t", ValueKind.TIMESTAMP),), ((dt.datetime(2026, 1, 1),),))
    with pytest.raises(ReportModelError, match="row 2 has 1 values, want 2"):
        Table((Column("a"), Column("b")), (("x", "y"), ("z",)), caption="c")
    with pytest.raises(ReportModelError, match="a status value cannot be str"):
        KeyValue("verdict", "PASS", ValueKind.STATUS)
    with pytest.raises(ReportModelError, match="total_rows"):
        Table((Column("a"),), (("x",), ("y",)), total_rows=1)


def test_kinds_are_inferred_for_key_values():
    items = KeyValues((("n", 3), ("t", dt.datetime(2026, 1, 1, tzinfo=UTC)), ("ok", True), ("s", Status.PASS), ("d", b"\x01"), ("x", "y")))
    assert [i.kind for i in items.items] == [ValueKind.NUMBER, ValueKind.TIMESTAMP, ValueKind.BOOLEAN, ValueKind.STATUS,
                                             ValueKind.DIGEST, ValueKind.TEXT]


def test_values_read_exactly():
    assert format_value(0.1, ValueKind.NUMBER) == "0.1"  # shortest round-trip, never rounded silently
    assert format_value(1234567.25, ValueKind.NUMBER) == "1,234,567.25"
    assert format_value(5e-07, ValueKind.NUMBER) == "5e-07"
    assert format_value(float("nan"), ValueKind.NUMBER) == "NaN"
    assert format_value(12_000, ValueKind.NUMBER) == "12,000"
    assert format_value(12_000, ValueKind.IDENTIFIER) == "12000"
    assert format_value(0.123456, ValueKind.NUMBER, Column("p", ValueKind.NUMBER, precision=3)) == "0.123"
    assert format_value(dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=9))), ValueKind.TIMESTAMP) \
        == "2026-01-01 18:04:05.000006Z"
    assert format_value(b"\xab\xcd", ValueKind.DIGEST) == "abcd"
    assert format_value(None, ValueKind.TEXT) == "NULL" and format_value("", ValueKind.TEXT) == ""
    assert format_value(StatusBadge(Status.FAIL, "BLOCKED"), ValueKind.STATUS) == "BLOCKED"
    assert format_value(False, ValueKind.BOOLEAN) == "no"


def test_invisible_characters_are_shown_not_obeyed():
    assert visible_text("a\u202eb\u200bc\x00d\te\nf") == "a\u27e8U+202E\u27e9b\u27e8U+200B\u27e9c\u27e8U+0000\u27e9d\te\nf"
    assert visible_text("신용평가 café") == "신용평가 café"


def test_attachment_names_are_portable_unique_and_not_reserved():
    Attachment("rows.parquet", "application/vnd.apache.parquet", b"", "rows")
    for bad in ("../etc/passwd", ".hidden", "a/b", "a b", "", "x" * 101, "manifest.json", "MANIFEST.JSON.sig"):
        with pytest.raises(ReportModelError):
            Attachment(bad, "text/plain", b"", "d")
    with pytest.raises(ReportModelError, match="media type"):
        Attachment("a.txt", "Text/Plain; charset=x", b"", "d")
    report = sample_report(SIGNER)
    twin = Attachment("PSI.parquet", "application/vnd.apache.parquet", b"", "case twin")
    with pytest.raises(ReportModelError, match="ignoring case"):
        dataclasses.replace(report, attachments=report.attachments + (twin,))


def test_tables_must_point_at_attachments_the_report_carries():
    report = sample_report(SIGNER)
    table = Table((Column("a"),), (("x",),), caption="orphan", source_attachment="missing.parquet")
    with pytest.raises(ReportModelError, match="missing.parquet"):
        dataclasses.replace(report, sections=(Section("S", (table,)),))


def test_sections_nest_at_most_three_levels():
    deep = Section("1", (), (Section("2", (), (Section("3", (), (Section("4", (Paragraph("x"),)),)),)),))
    with pytest.raises(ReportModelError, match="deeper than 3"):
        dataclasses.replace(sample_report(SIGNER), sections=(deep,))


def test_an_attached_checkpoint_must_be_the_one_the_report_names():
    report = sample_report(SIGNER)
    _, other_note = sample_checkpoint(SIGNER, size=7)
    swapped = tuple(
        dataclasses.replace(a, data=other_note) if a.role is AttachmentRole.CHECKPOINT else a for a in report.attachments
    )
    with pytest.raises(ReportModelError, match="not the checkpoint the report names"):
        dataclasses.replace(report, attachments=swapped)
    garbage = tuple(dataclasses.replace(a, data=b"nope") if a.role is AttachmentRole.CHECKPOINT else a for a in report.attachments)
    with pytest.raises(ReportModelError, match="not a signed checkpoint note"):
        dataclasses.replace(report, attachments=garbage)


def test_report_ids_and_metadata_are_checked():
    report = sample_report(SIGNER)
    for bad_id in ("has space", "", "line\nbreak", "x" * 129):
        with pytest.raises(ReportModelError, match="report id"):
            dataclasses.replace(report.meta, report_id=bad_id)
    with pytest.raises(ReportModelError, match="naive"):
        dataclasses.replace(report.meta, generated_at=dt.datetime(2026, 1, 1))
    assert isinstance(report, Report) and report.meta.checkpoint.size == 48_213
    assert sample_report(FOREIGN).meta.checkpoint == report.meta.checkpoint  # same tree, other key


def test_manifest_parsing_is_strict():
    good = b'{"format": "mrm-report-manifest/v1"}'
    with pytest.raises(ManifestError, match="missing"):
        ReportManifest.from_bytes(good)
    with pytest.raises(ManifestError, match="duplicate key"):
        ReportManifest.from_bytes(b'{"format": 1, "format": 2}')
    with pytest.raises(ManifestError, match="NaN"):
        ReportManifest.from_bytes(b'{"x": NaN}')
    with pytest.raises(ManifestError, match="not valid JSON"):
        ReportManifest.from_bytes(b"{")
