"""Hostile ledger values: markup, CSS, URLs and template syntax are shown as text, never
fetched, never executed; the renderer can load nothing but its own assets."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import weasyprint
from weasyprint.urls import FatalURLFetchingError

import reports
from reports import (
    AssetRefusedError,
    CodeBlock,
    Column,
    Figure,
    KeyValue,
    KeyValues,
    Paragraph,
    Section,
    Status,
    StatusBadge,
    Table,
    ValueKind,
    render_pdf,
    verify_report,
)
from reports.fetcher import ASSET_SCHEME, AssetFetcher, package_assets
from reports.html import template_environment
from reports.pdffiles import read_embedded_files
from reports.sample import SAMPLE_CREATED, sample_report

from .report_support import SIGNER, TRUSTED, page_texts, squash

HOSTILE = [
    '<img src="file:///etc/passwd">',
    '<link rel="stylesheet" href="http://attacker.example/x.css">',
    "<style>@import url(http://attacker.example/i.css); body { background: url(http://attacker.example/bg.png) }</style>",
    "url(http://attacker.example/u.png)",
    '@import "https://attacker.example/y.css";',
    '<a rel="attachment" href="file:///etc/hostname">evidence</a>',
    '<object data="file:///etc/passwd"></object><iframe src="http://attacker.example/"></iframe>',
    '<svg><image href="file:///etc/passwd"/></svg>',
    "data:text/html;base64,PGgxPmhpPC9oMT4=",
    "</td></tr></table><h1>Injected heading</h1>",
    "{{ 7 * 7 }} {% if true %}jinja{% endif %}",
]


def hostile_report():
    """The sample report with hostile values in every place a ledger value can reach."""
    base = sample_report(SIGNER)
    meta = dataclasses.replace(
        base.meta,
        title="Evidence " + HOSTILE[0],
        institution=HOSTILE[1],
        system=HOSTILE[2],
        subtitle=HOSTILE[5],
        prepared_by=HOSTILE[9],
    )
    section = Section(
        "Hostile values " + HOSTILE[3],
        (
            Paragraph("\n".join(HOSTILE)),
            KeyValues(tuple(KeyValue(f"key {i} {v}", v, ValueKind.TEXT) for i, v in enumerate(HOSTILE))),
            StatusBadge(Status.FAIL, HOSTILE[4], HOSTILE[6]),
            Table(
                (Column(HOSTILE[7]), Column("identifier", ValueKind.IDENTIFIER), Column("digest", ValueKind.DIGEST)),
                tuple((v, v, v) for v in HOSTILE),
                caption=HOSTILE[8],
            ),
            CodeBlock("SELECT '" + HOSTILE[2] + "' AS x;", caption=HOSTILE[10]),
        ),
    )
    return dataclasses.replace(base, meta=meta, sections=(section,) + base.sections)


@pytest.fixture(scope="module")
def hostile_render():
    return render_pdf(hostile_report(), SIGNER, created=SAMPLE_CREATED)


def test_hostile_values_are_never_fetched(hostile_render):
    allowed = set(package_assets())
    requested = hostile_render.requested_urls
    assert requested, "the fetcher is instrumented"
    for url in requested:
        assert url.startswith(f"{ASSET_SCHEME}:"), url
        assert url in allowed or url.startswith(f"{ASSET_SCHEME}:figures/") or url.startswith(f"{ASSET_SCHEME}:attachments/"), url
    assert not any("attacker" in u or "file:" in u or "passwd" in u or "data:" in u or "hostname" in u for u in requested)


def test_hostile_values_appear_literally_as_text(hostile_render):
    text = squash("\n".join(page_texts(hostile_render.pdf)))
    for value in HOSTILE:
        assert squash(value) in text, value
    assert "49jinja" not in text  # template syntax in data is not evaluated


def test_hostile_values_embed_nothing_and_the_report_still_verifies(hostile_render):
    names = sorted(f.name for f in read_embedded_files(hostile_render.pdf).files)
    assert names == sorted([a.name for a in sample_report(SIGNER).attachments] + ["manifest.json", "manifest.json.sig"])
    assert verify_report(hostile_render.pdf, TRUSTED).ok


def test_invisible_and_reordering_characters_are_made_visible():
    base = sample_report(SIGNER)
    value = "cust-\u202eevil\u202c\u200b\x00id"
    section = Section("Controls", (KeyValues((KeyValue("subject", value, ValueKind.IDENTIFIER),)),))
    rendered = render_pdf(dataclasses.replace(base, sections=(section,)), SIGNER, created=SAMPLE_CREATED)
    text = "\n".join(page_texts(rendered.pdf))
    assert "cust-\u27e8U+202E\u27e9evil\u27e8U+202C\u27e9\u27e8U+200B\u27e9\u27e8U+0000\u27e9id" in text
    assert "\u202e" not in text


def test_the_fetcher_refuses_every_other_url():
    fetcher = AssetFetcher(package_assets())
    for url in ("file:///etc/passwd", "http://attacker.example/x.css", "https://a.example/", "data:text/css,body{}",
                f"{ASSET_SCHEME}:../../etc/passwd", f"{ASSET_SCHEME}:fonts/../report.css", "ftp://x/"):
        with pytest.raises(AssetRefusedError):
            fetcher.fetch(url)
    assert fetcher.fetch(f"{ASSET_SCHEME}:report.css").read().startswith(b"/*")
    assert fetcher.refused == fetcher.requested[:-1]


def test_markup_that_did_reach_weasyprint_would_stop_the_render():
    # The second wall: if a template ever emitted a URL, rendering stops instead of fetching.
    fetcher = AssetFetcher({})
    with pytest.raises(FatalURLFetchingError):
        weasyprint.HTML(string='<img src="file:///etc/passwd">', url_fetcher=fetcher).write_pdf()
    assert fetcher.requested == ["file:///etc/passwd"]


def test_an_svg_figure_with_an_external_reference_is_refused():
    evil = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            b'width="10" height="10"><image xlink:href="file:///etc/passwd" width="10" height="10"/></svg>')
    base = sample_report(SIGNER)
    section = Section("Figure", (Figure(evil, "a chart someone tampered with"),))
    with pytest.raises(AssetRefusedError, match="file:///etc/passwd"):
        render_pdf(dataclasses.replace(base, sections=(section,)), SIGNER, created=SAMPLE_CREATED)


def test_templates_never_mark_values_safe():
    env = template_environment()
    assert env.autoescape is True
    templates = Path(reports.__file__).parent / "templates"
    for path in templates.glob("*.html"):
        source = path.read_text()
        assert not re.search(r"\|\s*safe\b|Markup\(|autoescape\s+false", source), path
    python = "".join(p.read_text() for p in Path(reports.__file__).parent.glob("*.py"))
    assert not re.search(r"\bMarkup\(|markupsafe|autoescape=False", python)


def test_report_css_loads_only_package_assets():
    css = (Path(reports.__file__).parent / "assets" / "report.css").read_text()
    urls = re.findall(r"url\(([^)]*)\)", css)
    assert urls and all(u.strip("\"'").startswith(f"{ASSET_SCHEME}:") for u in urls)
    assert "@import" not in css
