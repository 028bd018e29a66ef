"""mrm-ledger's trust core: seven audit tables, one HMAC chain, Parquet segments."""

from .errors import EntryError, IntegrityError, KeyringError, LedgerError, LedgerFormatError, WriterConflict
from .keys import Keyring
from .ledger import Ledger, PreparedBatch, prepare_batch
from .schema import TABLE_NAMES, TABLES
from .tiles import CorruptTileError
from .verify import Problem, VerifyReport, verify_ledger

__all__ = [
    "CorruptTileError",
    "EntryError",
    "IntegrityError",
    "KeyringError",
    "Keyring",
    "Ledger",
    "LedgerError",
    "LedgerFormatError",
    "PreparedBatch",
    "Problem",
    "TABLE_NAMES",
    "TABLES",
    "VerifyReport",
    "prepare_batch",
    "verify_ledger",
    "WriterConflict",
]
