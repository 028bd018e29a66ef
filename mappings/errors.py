"""Errors of regulation packs. Each names the pack file, the line and the field that is wrong."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PackProblem:
    """One thing wrong with a pack, located in its file."""

    file: str
    line: int | None  # 1-based; None when the problem is not tied to a line (an unreadable file)
    field: str  # dotted path, e.g. "requirement[3].evidence[0].expect.kind"; "" for the file itself
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class MappingError(Exception):
    """Base class: bad input to the mappings (the CLI exits with code 2)."""


class PackError(MappingError):
    """A pack that cannot be used: malformed TOML, a missing or unknown field, a bad
    expectation, duplicate ids, SQL that does not parse or bind. Every problem found is kept
    (``problems``) so an author can fix them in one pass; the message lists them all."""

    def __init__(self, problems: list[PackProblem] | PackProblem):
        self.problems = [problems] if isinstance(problems, PackProblem) else list(problems)
        if not self.problems:
            raise ValueError("PackError needs at least one problem")
        first = self.problems[0]
        self.file, self.line, self.field = first.file, first.line, first.field
        lines = [str(p) for p in self.problems]
        head = lines[0] if len(lines) == 1 else f"{len(lines)} problems in pack {first.file}:\n  " + "\n  ".join(lines)
        super().__init__(head)


class PackNotFound(MappingError):
    """No pack of that name in the packs directories; the message lists the ones there are."""


class PeriodError(MappingError):
    """A period bound that cannot be read, lacks a time zone, or ends before it starts."""

