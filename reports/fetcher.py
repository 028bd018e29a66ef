"""The only way the renderer loads anything: an allow-list of the report's own assets.

WeasyPrint fetches stylesheets, fonts and images through a URL fetcher. Its default one
opens ``file://``, ``http(s)://`` and ``data:`` URLs, which for a document built from
ledger values would mean a value like ``<img src=file:///etc/passwd>`` or
``url(http://attacker/)`` could read local files into the PDF or call out over the
network. Our templates escape every value, so such markup is text and never becomes a
URL; this fetcher is the second wall. It serves exactly the assets registered for one
render (the stylesheet and fonts shipped with the package, and that report's charts,
produced in memory) under the private ``mrm-asset:`` scheme, and refuses everything else
by stopping the render (:class:`AssetRefusedError`), because a document whose layout
depended on a refused resource is not the document we meant to produce.

Every URL asked for is recorded in :attr:`AssetFetcher.requested` (tests use it to show
hostile values never reach the fetcher).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Mapping

import matplotlib
from weasyprint.urls import URLFetcher, URLFetcherResponse

from .errors import AssetRefusedError

__all__ = ["ASSET_SCHEME", "Asset", "AssetFetcher", "package_assets", "asset_url"]

ASSET_SCHEME = "mrm-asset"

# DejaVu fonts, read from matplotlib's bundled copy (a dependency already, Bitstream Vera
# licence): the PDF then looks the same on every machine, whatever fontconfig has, and
# charts and text share one typeface.
_FONT_FILES = {
    "fonts/sans.ttf": "DejaVuSans.ttf",
    "fonts/sans-bold.ttf": "DejaVuSans-Bold.ttf",
    "fonts/sans-oblique.ttf": "DejaVuSans-Oblique.ttf",
    "fonts/sans-bold-oblique.ttf": "DejaVuSans-BoldOblique.ttf",
    "fonts/mono.ttf": "DejaVuSansMono.ttf",
    "fonts/mono-bold.ttf": "DejaVuSansMono-Bold.ttf",
}


# Hangul, which DejaVu lacks (the Korean packs name their statutes in Korean, the demo's
# products have Korean names): Nanum Gothic (SIL Open Font Licence), from the copy bundled
# with koreanize-matplotlib. It is the fallback after DejaVu in every font stack, so a
# Korean examiner reads text, not empty boxes, on any machine.
_HANGUL_PACKAGE = "koreanize_matplotlib"
_HANGUL_FONT_FILES = {
    "fonts/hangul.ttf": "NanumGothic.ttf",
    "fonts/hangul-bold.ttf": "NanumGothicBold.ttf",
}


def _hangul_font_dir() -> Path:
    # find_spec locates the package without importing it: its import rewrites matplotlib's
    # global font settings, which the charts must not inherit.
    spec = importlib.util.find_spec(_HANGUL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{_HANGUL_PACKAGE} (the reports' Hangul font) is not installed; "
                                  "reinstall mrm-ledger with its dependencies")
    return Path(next(iter(spec.submodule_search_locations))) / "fonts"


def asset_url(path: str) -> str:
    return f"{ASSET_SCHEME}:{path}"


@dataclass(frozen=True)
class Asset:
    data: bytes = field(repr=False)
    media_type: str


def package_assets() -> dict[str, Asset]:
    """The stylesheet and fonts every report uses, keyed by ``mrm-asset:`` URL."""
    assets = {
        asset_url("report.css"): Asset(resources.files("reports").joinpath("assets/report.css").read_bytes(), "text/css"),
    }
    for directory, files in ((Path(matplotlib.get_data_path()) / "fonts" / "ttf", _FONT_FILES),
                             (_hangul_font_dir(), _HANGUL_FONT_FILES)):
        for path, filename in files.items():
            assets[asset_url(path)] = Asset((directory / filename).read_bytes(), "font/ttf")
    return assets


class AssetFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that serves registered assets and refuses all else."""

    def __init__(self, assets: Mapping[str, Asset]) -> None:
        # fail_on_errors: WeasyPrint turns our refusal into a FatalURLFetchingError that
        # stops rendering, instead of logging it and drawing the page without the resource.
        super().__init__(allowed_protocols=(), allow_redirects=False, fail_on_errors=True)
        self._assets = dict(assets)
        self.requested: list[str] = []

    def register(self, url: str, asset: Asset) -> None:
        """Add an asset produced after layout (the signed manifest) before it is fetched."""
        self._assets[url] = asset

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> URLFetcherResponse:
        self.requested.append(url)
        asset = self._assets.get(url)
        if asset is None:
            raise AssetRefusedError(url)
        return URLFetcherResponse(url, body=asset.data, headers={"Content-Type": asset.media_type})

    @property
    def refused(self) -> list[str]:
        return [u for u in self.requested if u not in self._assets]
