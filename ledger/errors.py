"""Errors the ledger raises. Messages say what was wrong and where; never key material."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class for every error the ledger raises on purpose."""


class EntryError(LedgerError, ValueError):
    """An entry was refused; the ledger is exactly as it was before the call."""

    def __init__(self, message: str, *, table: str | None = None, field: str | None = None, row: int | None = None):
        self.table, self.field, self.row = table, field, row
        where = []
        if table:
            where.append(f"table {table}")
        if row is not None:
            where.append(f"row {row}")
        if field:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class KeyringError(LedgerError):
    """A key is missing, malformed, too short, or not the ledger's key."""


class LedgerFormatError(LedgerError):
    """The path is not a ledger, or its metadata is unreadable."""
