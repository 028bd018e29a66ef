"""Regulation packs: each requirement of a regulation answered by named SQL queries over the
ledger, and its status computed from what the ledger holds.

- ``pack``          the pack format (TOML), :class:`Pack`, :class:`Requirement`, :class:`EvidenceItem`
- ``expectations``  the closed set of expectation kinds that decide an evidence item
- ``catalog``       built-in packs (``mappings/packs/``) and the user's (``--packs-dir``, ``$MRM_PACKS_DIR``)
- ``period``        the evaluated period and which pack applies to which part of it
- ``evaluate``      :func:`evaluate` (one pack), :func:`evaluate_all`, :func:`check_pack`
- ``result``        :class:`PackResult` and its parts: what the examiner document renders
- ``bundle``        :func:`write_bundle`: the evidence bundle directory
- ``matrix``        the coverage matrix across packs

    from mappings import evaluate, load_pack, Period
    result = evaluate("audit", "eu-ai-act", Period.parse("2026-01-01", "2026-07-01"))
    result.requirement("art12-1-logging").status, result.requirements[0].evidence[0].offending
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# Loaded on first use, so `import mappings` stays cheap for the `mrm` command line.
_EXPORTS = {
    "bundle": ("write_bundle",),
    "catalog": ("BUILTIN_DIR", "ENV_VAR", "load_pack", "load_packs", "pack_dirs", "pack_files"),
    "errors": ("MappingError", "PackError", "PackNotFound", "PackProblem", "PeriodError"),
    "evaluate": ("check_pack", "evaluate", "evaluate_all", "ledger_period"),
    "expectations": ("Expectation", "KINDS"),
    "matrix": ("CoverageMatrix", "coverage_matrix"),
    "pack": ("EvidenceItem", "Pack", "Requirement", "parse_pack"),
    "period": ("Applicability", "InForce", "Period"),
    "result": ("CheckpointInfo", "EvidenceResult", "PackResult", "RequirementResult", "RestsOn"),
    "status": ("Status",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'mappings' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)


class _Package(types.ModuleType):
    """The package module, keeping its exports when a submodule of the same name loads.

    Importing ``mappings.evaluate`` (the module) makes Python set the package attribute
    ``evaluate`` to that module, which would then hide the function ``from mappings import
    evaluate`` promises, depending on which import ran first. An exported name keeps its
    export; the submodule is still in ``sys.modules``, where ``from mappings.evaluate import
    ...`` finds it."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _MODULE_OF:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from .bundle import write_bundle  # noqa: F401
    from .catalog import BUILTIN_DIR, ENV_VAR, load_pack, load_packs, pack_dirs, pack_files  # noqa: F401
    from .errors import MappingError, PackError, PackNotFound, PackProblem, PeriodError  # noqa: F401
    from .evaluate import check_pack, evaluate, evaluate_all, ledger_period  # noqa: F401
    from .expectations import KINDS, Expectation  # noqa: F401
    from .matrix import CoverageMatrix, coverage_matrix  # noqa: F401
    from .pack import EvidenceItem, Pack, Requirement, parse_pack  # noqa: F401
    from .period import Applicability, InForce, Period  # noqa: F401
    from .result import CheckpointInfo, EvidenceResult, PackResult, RequirementResult, RestsOn  # noqa: F401
    from .status import Status  # noqa: F401
