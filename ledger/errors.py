"""Errors the ledger raises. Messages say what was wrong and where; never key material."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class for every error the ledger raises on purpose. `exit_code` is what the
    command line exits with when one reaches it: 2, bad input or usage, unless a subclass
    says otherwise."""

    exit_code = 2


class IntegrityError(LedgerError):
    """The ledger's own state shows a loss or a corruption that must not be written over
    (acknowledged entries missing, a log that does not continue the chain, a key that is
    not the ledger's). Exit code 1, as for a failed verification."""

    exit_code = 1


class EntryError(LedgerError, ValueError):
    """An entry was refused; the ledger is exactly as it was before the call."""

    def __init__(self, message: str, *, table: str | None = None, field: str | None = None, row: int | None = None):
        self.table, self.field, self.row = table, field, row
        self.reason = message  # without the table, row and field it names
        where = []
        if table:
            where.append(f"table {table}")
        if row is not None:
            where.append(f"row {row}")
        if field:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class WriterConflict(LedgerError):
    """Another writer holds the ledger (a shared store): this one stops before it
    acknowledges anything, so the chain never forks. Try again once that writer has
    sealed and closed."""


class KeyringError(LedgerError):
    """A key is missing, malformed, too short, or not the ledger's key."""


class LedgerFormatError(LedgerError):
    """The path is not a ledger, or its metadata is unreadable."""


class InputError(LedgerError, ValueError):
    """A value read from a command line, a file or a call is not usable (not a number,
    outside its range, not a valid name). The message says where: the file and the field
    path, or the option. Exit code 2; nothing was written."""


class ProofFormatError(InputError):
    """A proof document (or a checkpoint in one) is not well formed, so it cannot be
    checked: bad JSON, a missing or unknown field, a value of the wrong type, range or
    encoding, a duplicated or out-of-order entry, or a field that contradicts the one it
    restates. `path` is the JSON path of the field (``entries[3].leaf_hash``). Exit code 2,
    as for any bad input; a well-formed proof that does not verify is not an error but a
    failed report (exit 1)."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class IdentifierError(InputError):
    """A name that reaches file names, URLs or registry keys (slot, model version, task,
    policy or metric name) breaks the one identifier rule of :mod:`ledger.identifiers`."""
