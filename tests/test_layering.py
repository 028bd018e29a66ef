"""Each package imports only packages above it: ledger, gates, forensics, mappings, reports, mrm."""

import ast
from pathlib import Path

import pytest

ORDER = ["ledger", "gates", "forensics", "mappings", "reports", "mrm"]
ROOT = Path(__file__).resolve().parent.parent


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(ORDER)


@pytest.mark.parametrize("package", ORDER)
def test_imports_follow_the_layering(package):
    allowed = set(ORDER[: ORDER.index(package) + 1])
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_packages(p) - allowed)
        for p in (ROOT / package).rglob("*.py")
        if imported_packages(p) - allowed
    }
    assert not offenders, f"{package} may import only {sorted(allowed)}: {offenders}"


def test_every_package_has_its_place_in_the_order():
    # A package missing from ORDER would escape the check above.
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert packages == set(ORDER)


def test_imports_below_are_seen(tmp_path):
    # gates importing forensics, or forensics importing mappings, must be caught, lazily too.
    module = tmp_path / "m.py"
    module.write_text("import mappings.pack\n\ndef f():\n    from forensics.session import LedgerSQL\n", encoding="utf-8")
    assert imported_packages(module) == {"mappings", "forensics"}
