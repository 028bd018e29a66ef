"""Where packs come from: the built-in packs shipped in ``mappings/packs/``, and directories
of the user's own (``--packs-dir``, or ``$MRM_PACKS_DIR``, a list separated like PATH).

A pack in a user directory shadows a built-in pack of the same id, so a bank can adapt a
shipped pack (a stricter override rule, its own retention period) without touching code.
In a directory, a pack's file is named after its id: ``eu-ai-act.toml`` holds ``id =
"eu-ai-act"``. A malformed pack is refused, never skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .errors import PackNotFound
from .pack import Pack, load_pack_file

BUILTIN_DIR = Path(__file__).resolve().with_name("packs")
ENV_VAR = "MRM_PACKS_DIR"

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class PackFile:
    id: str  # the file's stem
    path: Path
    builtin: bool


def pack_dirs(extra: Iterable[PathLike] = (), *, env: bool = True) -> list[Path]:
    """Directories searched for packs, first match wins: ``extra``, then ``$MRM_PACKS_DIR``,
    then the built-in packs. A directory that does not exist is an error, not a silent skip."""
    dirs = [Path(d) for d in extra]
    if env and os.environ.get(ENV_VAR):
        dirs += [Path(d) for d in os.environ[ENV_VAR].split(os.pathsep) if d]
    for d in dirs:
        if not d.is_dir():
            origin = f"${ENV_VAR}" if str(d) not in {str(Path(e)) for e in extra} else "packs directory"
            raise PackNotFound(f"{origin} {d}: not an existing directory")
    return [*dirs, BUILTIN_DIR]


def pack_files(dirs: Sequence[Path] | None = None) -> list[PackFile]:
    """Every pack file visible through ``dirs`` (default: :func:`pack_dirs`), shadowed ones left out."""
    found: dict[str, PackFile] = {}
    for d in dirs if dirs is not None else pack_dirs():
        for path in sorted(Path(d).glob("*.toml")):
            found.setdefault(path.stem, PackFile(path.stem, path, Path(d).resolve() == BUILTIN_DIR))
    return sorted(found.values(), key=lambda f: f.id)


def load_pack(name_or_path: PathLike | Pack, dirs: Sequence[Path] | None = None) -> Pack:
    """A pack by id (searched in ``dirs``) or by the path of its TOML file."""
    if isinstance(name_or_path, Pack):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    if text.endswith(".toml") or os.sep in text or path.is_file():
        return load_pack_file(path)
    for f in pack_files(dirs):
        if f.id == text:
            return load_pack_file(f.path, expected_id=f.id)
    names = ", ".join(f.id for f in pack_files(dirs)) or "none"
    raise PackNotFound(f"no pack named {text!r}; the packs are {names} (or give the path of a .toml file)")


def load_packs(dirs: Sequence[Path] | None = None) -> list[Pack]:
    """Every visible pack, by id; the first malformed one raises PackError."""
    return [load_pack_file(f.path, expected_id=f.id) for f in pack_files(dirs)]
