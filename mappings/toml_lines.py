"""Where each key of a TOML document sits, for error messages: tomllib gives positions only
for syntax errors, and an author told "requirement[7].citation is missing" wants the line.

:func:`locate_keys` scans text that tomllib has already accepted. It follows table headers
(``[a.b]``), arrays of tables (``[[requirement]]``, ``[[requirement.evidence]]``) and key
lines (``key = ...``, dotted keys included), and skips the inside of multi-line strings and
multi-line arrays and inline tables, so a line of SQL or a list item is never taken for a
key. :meth:`KeyLines.line` walks a field path such as ``("requirement", 3, "evidence", 0,
"expect", "kind")`` and returns the deepest line it can vouch for: the key's own line, or,
for a missing key, the header of the table that should hold it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\]|\\.)*"'
_LITERAL = r"'[^']*'"
_PART = rf"(?:{_BARE}|{_BASIC}|{_LITERAL})"
_KEY = re.compile(rf"\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")
_PARTS = re.compile(_PART)

PathItem = Union[str, int]


@dataclass
class _Table:
    line: int  # header line (1 for the document root)
    keys: dict[str, int] = field(default_factory=dict)  # key -> line
    children: dict[str, "_Table | list[_Table]"] = field(default_factory=dict)


@dataclass(frozen=True)
class KeyLines:
    root: _Table

    def line(self, path: tuple[PathItem, ...]) -> int:
        """The line of the field at ``path`` or, if it is not there, of the nearest enclosing
        table or key that is."""
        node: _Table | list[_Table] | None = self.root
        best = self.root.line
        for item in path:
            if isinstance(node, list):
                if not isinstance(item, int) or not 0 <= item < len(node):
                    return best
                node = node[item]
                best = node.line
            elif isinstance(node, _Table) and isinstance(item, str):
                child = node.children.get(item)
                if item in node.keys:
                    best = node.keys[item]  # key line (also for an inline table or dotted key)
                elif isinstance(child, _Table):
                    best = child.line  # defined by its own [header]
                node = child
            else:
                return best
        return best


def _unquote(part: str) -> str:
    if part.startswith('"'):
        return bytes(part[1:-1], "utf-8").decode("unicode_escape") if "\\" in part else part[1:-1]
    if part.startswith("'"):
        return part[1:-1]
    return part


def _parts(dotted: str) -> list[str]:
    return [_unquote(p) for p in _PARTS.findall(dotted)]


def _resolve(root: _Table, parts: list[str], line: int, *, array: bool) -> _Table:
    """The table a header names, created as needed; for an array header, a new element."""
    node = root
    for i, name in enumerate(parts):
        last = i == len(parts) - 1
        child = node.children.get(name)
        if last and array:
            if not isinstance(child, list):
                child = node.children[name] = []
            child.append(_Table(line))
            return child[-1]
        if isinstance(child, list):
            node = child[-1]
        elif isinstance(child, _Table):
            node = child
            if last:
                node.line = line
        else:
            new = _Table(line)
            node.children[name] = new
            node = new
    return node


class _ValueScanner:
    """Tracks whether a value continues on the next line: inside a multi-line string, or
    inside brackets or braces opened and not yet closed."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string: str | None = None  # '"""' or "'''"

    @property
    def open(self) -> bool:
        return self.depth > 0 or self.in_string is not None

    def feed(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n:
            if self.in_string is not None:
                end = text.find(self.in_string, i)
                if self.in_string == '"""':
                    while end > 0 and _escaped(text, end):
                        end = text.find('"""', end + 1)
                if end < 0:
                    return
                i = end + 3
                while i < n and text[i] == self.in_string[0]:  # up to two quotes may close with it
                    i += 1
                self.in_string = None
                continue
            c = text[i]
            if c == "#":
                return
            if text.startswith('"""', i) or text.startswith("'''", i):
                self.in_string = text[i : i + 3]
                i += 3
            elif c == '"':
                m = re.compile(_BASIC).match(text, i)
                i = m.end() if m else n
            elif c == "'":
                end = text.find("'", i + 1)
                i = end + 1 if end >= 0 else n
            else:
                if c in "[{":
                    self.depth += 1
                elif c in "]}":
                    self.depth -= 1
                i += 1


def _escaped(text: str, pos: int) -> bool:
    backslashes = 0
    j = pos - 1
    while j >= 0 and text[j] == "\\":
        backslashes += 1
        j -= 1
    return backslashes % 2 == 1


def locate_keys(text: str) -> KeyLines:
    """Index the keys and tables of a TOML document tomllib has accepted."""
    root = _Table(1)
    current = root
    value = _ValueScanner()
    for number, raw in enumerate(text.splitlines(), 1):
        if value.open:
            value.feed(raw)
            continue
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[["):
            current = _resolve(root, _parts(stripped[2 : stripped.index("]]")]), number, array=True)
            continue
        if stripped.startswith("["):
            current = _resolve(root, _parts(stripped[1 : stripped.index("]")]), number, array=False)
            continue
        m = _KEY.match(raw)
        if not m:
            continue
        parts = _parts(m.group(1))
        node = current
        for part in parts[:-1]:  # dotted key: a.b = 1 defines table a
            node.keys.setdefault(part, number)
            child = node.children.get(part)
            if not isinstance(child, _Table):
                child = node.children[part] = _Table(number)
            node = child
        node.keys.setdefault(parts[-1], number)
        value.feed(raw[m.end() :])
    return KeyLines(root)
