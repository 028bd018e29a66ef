"""Signed checkpoints: what anyone holding only a public key can check the ledger against.

A checkpoint is a C2SP tlog-checkpoint in a C2SP signed note, signed with the ledger's
Ed25519 key (never the HMAC key), written at every seal to
``checkpoints/<size, 12 digits>.note``::

    mrm-ledger/<ledger id>                     origin
    <size>                                     entries 0 .. size-1 are covered
    <base64 RFC 6962 root>                     of their leaf hashes, in sequence order
    time 2026-11-23T13:45:00.123456Z           when it was signed (UTC)
    prev <SHA-256 hex of the previous checkpoint note> | prev none
    files <SHA-256 hex of the full file listing> <number of files>
    + <SHA-256 hex> <bytes> <path>             one line per data file added since prev

    — <key name> <base64 signature>

The full file listing at a checkpoint is the union of the ``+`` lines along the ``prev``
chain; its digest, signed in every checkpoint, lets a verifier detect a missing, added or
replaced data file, and the chain lets it detect a removed checkpoint. Other transparency
tooling reads the first three lines and ignores the rest, as the C2SP format allows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .note import Checkpoint, MalformedCheckpointError, Signer, sign_checkpoint
from .storage import Layout, SegmentFile, SegmentRecord

ORIGIN_PREFIX = "mrm-ledger/"
NO_PREV = "none"
_NAME = re.compile(r"(\d{12})\.note")
_HEX64 = re.compile(r"[0-9a-f]{64}")

# Called with the RFC 3161 TimeStampRequest for a checkpoint note (`.as_bytes()` is the
# DER to send); returns the DER TimeStampResp. No network I/O happens unless the caller's
# timestamper does it (see http_timestamper).
Timestamper = Callable[[Any], bytes]


def http_timestamper(url: str, *, timeout: float = 10.0) -> Timestamper:
    """A timestamper that POSTs to a TSA (RFC 3161 over HTTP)."""
    import urllib.request

    def stamp(request: Any) -> bytes:
        http = urllib.request.Request(url, data=request.as_bytes(), headers={"Content-Type": "application/timestamp-query"})
        with urllib.request.urlopen(http, timeout=timeout) as response:
            return response.read()

    return stamp


def origin_for(ledger_id: str) -> str:
    return ORIGIN_PREFIX + ledger_id


TREE_PREFIX = "tree/"  # the Merkle tree's tiles and state, in the ledger's store


def tree_dir(layout: Layout) -> Path:
    return layout.root / TREE_PREFIX


def checkpoint_key(size: int) -> str:
    return f"checkpoints/{size:012d}.note"


def checkpoint_path(layout: Layout, size: int) -> Path:
    return layout.root / checkpoint_key(size)


def note_digest(note: bytes) -> str:
    return hashlib.sha256(note).hexdigest()


@dataclass(frozen=True)
class ListedFile:
    sha256: str
    bytes: int
    path: str

    def line(self) -> str:
        return f"{self.sha256} {self.bytes} {self.path}"


def listing_digest(files: Iterable[ListedFile]) -> str:
    """SHA-256 of the sorted listing lines, one per file, each ending in a newline."""
    lines = sorted(f.line() for f in files)
    return hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()


@dataclass(frozen=True)
class LedgerCheckpoint:
    """A checkpoint's body and the extension lines this ledger writes, parsed."""

    checkpoint: Checkpoint
    time: str
    prev: str  # hex digest of the previous note, or "none"
    files_digest: str
    file_count: int
    added: tuple[ListedFile, ...]

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


def build(ledger_id: str, size: int, root: bytes, time: dt.datetime, prev: str, all_files: Sequence[ListedFile], added: Sequence[ListedFile]) -> Checkpoint:
    extensions = [
        f"time {time.astimezone(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}",
        f"prev {prev}",
        f"files {listing_digest(all_files)} {len(all_files)}",
        *(f"+ {f.line()}" for f in sorted(added, key=lambda f: f.path)),
    ]
    return Checkpoint(origin_for(ledger_id), size, root, tuple(extensions))


def parse(checkpoint: Checkpoint) -> LedgerCheckpoint:
    """The extension lines of a checkpoint this ledger wrote; refuses anything else."""
    ext = list(checkpoint.extensions)
    if len(ext) < 3 or not ext[0].startswith("time ") or not ext[1].startswith("prev ") or not ext[2].startswith("files "):
        raise MalformedCheckpointError("expected extension lines time, prev, files")
    time = ext[0][5:]
    try:
        dt.datetime.strptime(time, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        raise MalformedCheckpointError(f"bad time {time!r}") from None
    prev = ext[1][5:]
    if prev != NO_PREV and not _HEX64.fullmatch(prev):
        raise MalformedCheckpointError(f"bad prev {prev!r}")
    parts = ext[2].split(" ")
    if len(parts) != 3 or not _HEX64.fullmatch(parts[1]) or not parts[2].isdigit():
        raise MalformedCheckpointError(f"bad files line {ext[2]!r}")
    added = []
    for line in ext[3:]:
        fields = line.split(" ", 3)
        if len(fields) != 4 or fields[0] != "+" or not _HEX64.fullmatch(fields[1]) or not fields[2].isdigit():
            raise MalformedCheckpointError(f"bad file line {line!r}")
        added.append(ListedFile(fields[1], int(fields[2]), fields[3]))
    return LedgerCheckpoint(checkpoint, time, prev, parts[1], int(parts[2]), tuple(added))


def listed(files: Iterable[SegmentFile]) -> list[ListedFile]:
    return [ListedFile(f.sha256, f.bytes, f.path) for f in files]


def stored_notes(layout: Layout) -> list[tuple[int, Path]]:
    """(size from the file name, path) of every stored checkpoint note, by size, for
    readers of the ledger's directory (or its mirror)."""
    return [(size, layout.root / key) for size, key in stored_note_keys(layout)]


def stored_note_keys(layout: Layout) -> list[tuple[int, str]]:
    """(size from the name, object key) of every stored checkpoint note, by size."""
    out = []
    for obj in layout.store.list("checkpoints/"):
        m = _NAME.fullmatch(obj.key.rsplit("/", 1)[-1])
        if m and obj.key.count("/") == 1:
            out.append((int(m.group(1)), obj.key))
    return sorted(out)


def write(
    layout: Layout,
    signer: Signer,
    ledger_id: str,
    root: bytes,
    records: Sequence[SegmentRecord],
    *,
    timestamper: Timestamper | None = None,
    now: dt.datetime | None = None,
) -> Path:
    """Sign and store the checkpoint covering every sealed segment in `records`, chained
    to the newest stored checkpoint; the files added are those of segments past it."""
    size = records[-1].last_seq + 1
    notes = stored_note_keys(layout)
    prev_size, prev = 0, NO_PREV
    if notes:
        prev_size, prev_key = notes[-1]
        prev = note_digest(layout.store.read(prev_key))
    all_files = [f for r in records for f in listed(r.files)]
    added = [f for r in records if r.first_seq >= prev_size for f in listed(r.files)]
    checkpoint = build(ledger_id, size, root, now or dt.datetime.now(dt.timezone.utc), prev, all_files, added)
    note = sign_checkpoint(checkpoint, [signer])
    key = checkpoint_key(size)
    if timestamper is not None:
        from .timestamp import build_request

        layout.store.put_if_absent(key[: -len(".note")] + ".tsr", timestamper(build_request(note)))
    layout.store.put_if_absent(key, note)
    return checkpoint_path(layout, size)
