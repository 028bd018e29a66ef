"""A 300-page document: one long table of guardrail outcomes. It renders, every page after
the first of the table repeats the header row, no row is split across pages, and the
page digest and signature still verify. About 40 s on a 2-core machine."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import time

from pypdf import PdfReader

from reports import Column, Section, Status, StatusBadge, Table, ValueKind, render_pdf, verify_report
from reports.sample import SAMPLE_CREATED, sample_report

from .report_support import SIGNER, TRUSTED

ROWS = 6_000
FIRST_SEQ = 10_000
HEADER = "Seq Time (UTC) Verdict Reason"


def long_table_report():
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    verdicts = (StatusBadge(Status.PASS, "PASS"), StatusBadge(Status.WARN, "MODIFIED"), StatusBadge(Status.FAIL, "BLOCKED"))
    rows = tuple(
        (
            FIRST_SEQ + i,
            start + dt.timedelta(seconds=41 * i),
            verdicts[i % 3],
            f"request req-{i:09d}: product els_note carries risk grade 1, above the customer's confirmed profile "
            f"(grade {1 + i % 5}); the recommendation was changed to balanced_fund and the customer informed (KFCPA Art. 17, 19).",
        )
        for i in range(ROWS)
    )
    table = Table(
        (
            Column("Seq", ValueKind.IDENTIFIER, weight=0.8),
            Column("Time (UTC)", ValueKind.TIMESTAMP, weight=1.6),
            Column("Verdict", ValueKind.STATUS, weight=1.2),
            Column("Reason", ValueKind.TEXT, weight=5),
        ),
        rows,
        caption="Guardrail outcomes in the period",
        total_rows=ROWS,
    )
    return dataclasses.replace(sample_report(SIGNER), sections=(Section("Guardrail outcomes", (table,)),))


def test_a_300_page_table_renders_with_its_header_on_every_page():
    started = time.perf_counter()
    rendered = render_pdf(long_table_report(), SIGNER, created=SAMPLE_CREATED)
    elapsed = time.perf_counter() - started
    reader = PdfReader(io.BytesIO(rendered.pdf))
    total = len(reader.pages)
    assert total >= 300 and rendered.page_count == total
    print(f"\n{ROWS:,} rows, {total} pages rendered in {elapsed:.1f} s")

    # Text extraction costs about 0.1 s a page, so read consecutive pairs of pages at the
    # start, in the middle and at the end of the table rather than all 300.
    first_table_page, last_table_page = 2, total - 2  # after cover and contents, before the appendix
    pairs = [(first_table_page, first_table_page + 1), (total // 2, total // 2 + 1), (last_table_page - 1, last_table_page)]
    for left, right in pairs:
        left_seqs, right_seqs = _rows_on(reader, left, total), _rows_on(reader, right, total)
        assert right_seqs[0] == left_seqs[-1] + 1, f"rows lost or repeated between pages {left + 1} and {right + 1}"
    assert _rows_on(reader, first_table_page, total)[0] == FIRST_SEQ
    assert _rows_on(reader, last_table_page, total)[-1] == FIRST_SEQ + ROWS - 1
    assert "Evidence attachments" in reader.pages[total - 1].extract_text()

    late = reader.pages[total - 10].extract_text()
    assert late.startswith(HEADER)  # a late page starts with the repeated header row
    assert verify_report(rendered.pdf, TRUSTED).ok


def _rows_on(reader: PdfReader, index: int, total: int) -> list[int]:
    """The seq numbers of the table rows on page ``index``, checking that the page has the
    running header, its number, the repeated header row, and only whole rows."""
    text = reader.pages[index].extract_text()
    assert f"Page {index + 1} of {total}" in text
    assert "EVR-2026Q1-0001 Evidence report: product recommendation, Q1 2026" in text
    parts = text.split(HEADER, 1)
    assert len(parts) == 2, f"page {index + 1} has no header row"
    rows = re.findall(r"^(\d{5}) 2026-\d\d-\d\d \d\d:\d\d:\d\dZ [\u2713\u2717!] (?:PASS|MODIFIED|BLOCKED) request req-(\d{9})",
                      parts[1], re.M)
    assert rows, f"page {index + 1} shows no rows"
    seqs = [int(seq) for seq, _ in rows]
    assert all(int(seq) - FIRST_SEQ == int(request) for seq, request in rows)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"page {index + 1} skips a row"
    # rows are never split: the table text on the page ends with a complete reason
    assert parts[1].split("EVR-2026Q1-0001")[0].rstrip().endswith("(KFCPA Art. 17, 19).")
    return seqs
