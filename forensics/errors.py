"""Errors of the forensic readers. Messages say what was refused or missing, and where."""

from __future__ import annotations


class ForensicsError(Exception):
    """Base class: bad input or a refused request (the CLI exits with code 2)."""


class QueryRefused(ForensicsError):
    """A statement `mrm sql` does not run: anything that is not a read or an export."""


class QueryError(ForensicsError):
    """DuckDB could not run the query (syntax, unknown column, type error...)."""


class ExportDirError(ForensicsError):
    """--export-dir is missing, inside the ledger, or holds links into it."""


class NotFound(ForensicsError):
    """No decision matches what was asked for."""


class Ambiguous(ForensicsError):
    """Several entries match where one was expected; the message lists them."""


class UnreadableEvidence(ForensicsError):
    """A listed file could not be read: the ledger is damaged (`mrm verify` says how)."""
