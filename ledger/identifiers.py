"""The one rule for names that reach file names, URLs and registry keys.

Slot names, model versions, task, metric and guardrail names: each becomes part of a
path (an evaluation file, a report, a viewer URL such as ``/slot/<name>``) or of a key
(``<slot>/<version>`` correlation ids). One rule, everywhere:

    1 to 128 characters of ``A-Z a-z 0-9 . _ -``, starting with a letter or a digit,
    and no ``..``

so a name is never empty, never a path (no ``/`` or ``\\``), never ``.`` or ``..`` or a
hidden file, never ``../../x``, and needs no quoting in a URL or a shell. README section
"Names" documents it for users; :data:`IDENTIFIER_RULE` is the text the messages quote.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import IdentifierError

IDENTIFIER_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"  # also run by Arrow (RE2) on whole batches
IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
IDENTIFIER_RULE = "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit, without '..'"


def identifier_problem(value: Any) -> str | None:
    """Why ``value`` is not an identifier, or None when it is one."""
    if not isinstance(value, str):
        return f"must be a name ({IDENTIFIER_RULE}), got {type(value).__name__}"
    if IDENTIFIER.fullmatch(value) is None or ".." in value:
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"{shown!r} is not a valid name: {IDENTIFIER_RULE}"
    return None


def check_identifier(value: Any, where: str, *, error: type[Exception] = IdentifierError) -> str:
    """``value`` when it follows the rule; otherwise ``error`` naming ``where`` (the option,
    or the file and the field path)."""
    problem = identifier_problem(value)
    if problem is not None:
        raise error(f"{where}: {problem}")
    return value
