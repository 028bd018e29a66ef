"""A problem a verifier found: its kind, what is wrong, and where (ledger/verify.py lists the kinds)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

KINDS = (
    "INVALID", "GAP", "DUPLICATE", "ORDER", "MISSING", "EXTRA", "FILE", "MANIFEST", "CHECKPOINT",
    "KEY", "TRUNCATED", "ROLLBACK", "FORK", "HEAD", "META", "TILE",
)


@dataclass(frozen=True, order=True)
class Problem:
    kind: str
    message: str
    seq: int | None = None
    table: str | None = None
    file: str | None = None
    key_id: str | None = None  # the key an INVALID entry claims; lets a wrong key be told apart

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        where = []
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.table:
            where.append(self.table)
        if self.file:
            where.append(self.file)
        return f"{self.kind:<9} {'  '.join(where)}{': ' if where else ''}{self.message}"
