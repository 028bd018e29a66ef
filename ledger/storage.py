"""The layout of a ledger's objects in its store, and the records that authenticate it.

    <ledger>/                          a directory (LocalStore) or s3://bucket/prefix (ObjectStore)
      LEDGER.json                      ledger id, format version and layout (written once)
      HEAD                             chain head: last sequence number, its MAC, key in use,
                                       and the writer whose log holds the unsealed entries
      manifest/<first>.json            one MACed, hash-chained record per sealed segment (written once)
      tables/<table>/<first>-<last>.parquet
                                       immutable zstd Parquet, rows in sequence order;
                                       <first>-<last> is the segment's sequence range,
                                       zero-padded to 12 digits
      index/, tree/, checkpoints/      the key index, the Merkle tree's tiles, signed checkpoints

    <writer's local directory>/        the ledger's own directory for a LocalStore
      LOCK                             writers on this machine serialise on an exclusive flock
      wal.log                          write-ahead log of entries not yet sealed (ledger/wal.py)

Any Parquet reader can query ``tables/<table>/*.parquet`` directly; the column types are
those of ledger/schema.py. A segment is one manifest record: its sequence range, the MAC of
its last entry and each file's row count, size and SHA-256, so deleted, added, replaced or
extended files are found without reading them. Records are separate objects, written once,
so the manifest needs no append and every record can be put under retention.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import os
import re
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import rfc8785

from .errors import LedgerError, LedgerFormatError
from .schema import FORMAT_VERSION, TABLE_NAMES
from .store import ObjectExists, Store, VersionConflict, open_store

LEDGER_FORMAT = "mrm-ledger"
LAYOUT_VERSION = 2  # 2: one manifest object per segment (1 kept them in one appended manifest.jsonl)
_MANIFEST_LABEL = b"mrm-ledger manifest v1\x00"
NO_PREV = "0" * 64
SEQ_DIGITS = 12
SEGMENT_FILE = re.compile(r"tables/([a-z_]+)/(\d{12})-(\d{12})\.parquet")  # table, first and last seq
MANIFEST_PREFIX = "manifest/"
MANIFEST_RECORD = re.compile(r"manifest/(\d{12})\.json")
META_KEY = "LEDGER.json"
HEAD_KEY = "HEAD"


STORE_MARKER = "STORE"  # in a writer's local directory: the URL of the store it writes
MIRROR_STATE = ".mirror.json"  # in a mirror of a store: what was fetched (ledger/transfer.py)


def default_work_dir(store: Store) -> Path:
    """The local directory of a ledger kept in a remote store: $MRM_WORK_DIR, else one per
    store URL under $XDG_STATE_HOME (~/.local/state). It holds the write-ahead log, the
    lock and a mirror of what readers on this machine have fetched."""
    base = os.environ.get("MRM_WORK_DIR")
    if base:
        return Path(base)
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "mrm-ledger" / hashlib.sha256(store.url.encode()).hexdigest()[:32]


def work_dir_for(store: Store, local: str | os.PathLike[str] | None = None) -> Path:
    """The local directory for a ledger in `store`, created and marked with the store's URL,
    so that the directory alone names the ledger (``Layout(work_dir)``)."""
    work = Path(local) if local is not None else default_work_dir(store)
    work.mkdir(parents=True, exist_ok=True)
    marker = work / STORE_MARKER
    try:
        found = marker.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(store.url + "\n")
        return work
    if found != store.url:
        raise LedgerError(f"{work}: the local directory of {found}, not of {store.url}; give another --work-dir")
    return work


class Layout:
    """Where a ledger's objects and its writer's local files are.

    `Layout(path)` is a ledger in a directory: objects and local files both there, or, when
    the directory is the local directory of a ledger kept in a remote store (it holds a
    STORE file naming it), that store. `Layout(store, local)` is a ledger in any store,
    with the writer's write-ahead log and lock in `local` (by default `default_work_dir`)."""

    __slots__ = ("store", "local")

    def __init__(self, root: str | os.PathLike[str] | Store, local: str | os.PathLike[str] | None = None):
        if not isinstance(root, Store) and not os.fspath(root).startswith("s3://"):
            marker = Path(root) / STORE_MARKER
            if local is None and marker.is_file():
                root, local = marker.read_text(encoding="utf-8").strip(), root
        self.store: Store = open_store(root)
        if self.store.local_root is None:
            local = work_dir_for(self.store, local)  # marked with the store's URL, or refused if another's
        elif local is None:
            local = self.store.local_root
        self.local = Path(local)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and (self.store.url, self.local) == (other.store.url, other.local)

    def __hash__(self) -> int:
        return hash((self.store.url, self.local))

    def __repr__(self) -> str:
        return f"Layout({self.store!r}, local={str(self.local)!r})"

    @property
    def root(self) -> Path:
        """The directory holding the ledger's files, for readers that open them as files: a
        local store's own, or the mirror of a remote one in the local directory (filled by
        ledger.transfer.mirror, or with the files a snapshot lists)."""
        return self.store.local_root if self.store.local_root is not None else self.local / "mirror"

    @property
    def where(self) -> str:
        """The ledger as messages name it: its directory or its store URL."""
        return self.store.url

    @property
    def lock(self) -> Path:
        return self.local / "LOCK"

    @property
    def wal(self) -> Path:
        return self.local / "wal.log"

    @property
    def meta(self) -> str:
        return self.store.where(META_KEY)

    def segment_name(self, table: str, first: int, last: int) -> str:
        return f"tables/{table}/{first:0{SEQ_DIGITS}d}-{last:0{SEQ_DIGITS}d}.parquet"

    def data_files(self) -> Iterator[str]:
        """Every object under tables/, as its key (a path relative to the ledger root)."""
        for obj in self.store.list("tables/"):
            yield obj.key


# ------------------------------------------------------------------------------ metadata


@dataclass(frozen=True)
class LedgerMeta:
    ledger_id: str  # 32 hex digits
    format_version: int
    created_at: str
    retain_days: int | None = None  # every sealed segment, record and checkpoint is retained this long

    @property
    def ledger_id_bytes(self) -> bytes:
        return bytes.fromhex(self.ledger_id)


def new_meta(created_at: dt.datetime | None = None, retain_days: int | None = None) -> LedgerMeta:
    created = (created_at or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return LedgerMeta(uuid.uuid4().hex, FORMAT_VERSION, created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), retain_days)


def write_meta(layout: Layout, meta: LedgerMeta) -> None:
    """Write LEDGER.json once: of two writers creating a ledger in one place, one wins."""
    fields = {k: v for k, v in asdict(meta).items() if v is not None}
    doc = {"format": LEDGER_FORMAT, **fields, "layout": LAYOUT_VERSION, "tables": list(TABLE_NAMES)}
    try:
        layout.store.put_if_absent(META_KEY, (json.dumps(doc, indent=2) + "\n").encode())
    except ObjectExists:
        raise LedgerFormatError(f"{layout.where}: a ledger exists there already") from None


def read_meta(layout: Layout) -> LedgerMeta:
    data = layout.store.read_or_none(META_KEY)
    if data is None:
        raise LedgerFormatError(f"{layout.where}: not a ledger (no LEDGER.json)")
    try:
        doc = json.loads(data.decode("utf-8"))
    except ValueError as e:
        raise LedgerFormatError(f"{layout.meta}: unreadable ({type(e).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != LEDGER_FORMAT:
        raise LedgerFormatError(f"{layout.meta}: not an mrm-ledger metadata file")
    if doc.get("layout") != LAYOUT_VERSION:
        raise LedgerFormatError(f"{layout.meta}: layout {doc.get('layout', 1)!r} is not supported (this is {LAYOUT_VERSION}: "
                                "one manifest object per segment); copy its entries into a new ledger with this version")
    if doc.get("format_version") != FORMAT_VERSION:
        raise LedgerFormatError(f"{layout.meta}: format version {doc.get('format_version')!r} is not supported (this is {FORMAT_VERSION})")
    ledger_id = doc.get("ledger_id")
    if not isinstance(ledger_id, str) or len(ledger_id) != 32:
        raise LedgerFormatError(f"{layout.meta}: ledger_id must be 32 hex digits")
    try:
        bytes.fromhex(ledger_id)
    except ValueError:
        raise LedgerFormatError(f"{layout.meta}: ledger_id must be 32 hex digits") from None
    retain_days = doc.get("retain_days")
    if retain_days is not None and (not isinstance(retain_days, int) or isinstance(retain_days, bool) or not 1 <= retain_days <= 36500):
        raise LedgerFormatError(f"{layout.meta}: retain_days must be a whole number of days in [1, 36500]")
    return LedgerMeta(ledger_id, FORMAT_VERSION, str(doc.get("created_at")), retain_days)


# ------------------------------------------------------------------------------ head


@dataclass(frozen=True)
class Head:
    seq: int  # last sequence number written (-1 before genesis)
    mac: str  # hex MAC of that entry
    key_id: str  # key the next entry is MACed with
    wal_size: int  # bytes of wal.log that hold those entries
    sealed_seq: int  # last sequence number sealed into Parquet (-1 if none)
    writer: str = ""  # whose write-ahead log holds entries sealed_seq+1..seq ("" for a directory's own)


def write_head(layout: Layout, head: Head, *, durable: bool, expected: str | None) -> str:
    """Publish the head if HEAD is at version `expected` (None: there is none yet); returns
    the new version. A compare-and-swap, so a writer that lost the ledger to another finds
    out here instead of forking the chain (VersionConflict)."""
    data = (json.dumps(asdict(head)) + "\n").encode()
    return layout.store.replace_if_unchanged(HEAD_KEY, data, expected, durable=durable).version


def held_elsewhere(layout: Layout, head: Head | None, sealed_to: int) -> bool:
    """Whether HEAD's unsealed entries are in another machine's write-ahead log: a writer on
    a shared store acknowledges entries in its own local log and seals them later, so a
    reader elsewhere (or a mirror) sees them counted and not yet here."""
    if head is None or not head.writer or head.sealed_seq > sealed_to:
        return False
    try:
        return (layout.local / "WRITER").read_text(encoding="utf-8").strip() != head.writer
    except FileNotFoundError:
        return True


def read_head(layout: Layout) -> Head | None:
    return read_head_versioned(layout)[0]


def read_head_versioned(layout: Layout) -> tuple[Head | None, str | None]:
    """HEAD and the version it was read at (None, None if there is none or it is unreadable;
    the version is still given for an unreadable one, so it can be replaced)."""
    obj = layout.store.stat(HEAD_KEY)
    if obj is None:
        return None, None
    try:
        doc = json.loads(layout.store.read(HEAD_KEY).decode("utf-8"))
        return Head(int(doc["seq"]), str(doc["mac"]), str(doc["key_id"]), int(doc["wal_size"]), int(doc["sealed_seq"]),
                    str(doc.get("writer", ""))), obj.version
    except (OSError, ValueError, KeyError, TypeError, LedgerError):
        return None, obj.version


# ------------------------------------------------------------------------------ manifest


@dataclass(frozen=True)
class SegmentFile:
    table: str
    path: str  # relative to the ledger root
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class SegmentRecord:
    first_seq: int
    last_seq: int
    last_mac: str
    files: tuple[SegmentFile, ...]
    prev: str  # SHA-256 of the previous manifest line
    key_id: str
    mac: str
    line_hash: str = ""  # SHA-256 of this record's line, computed when read

    def body(self) -> dict:
        return {
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "last_mac": self.last_mac,
            "files": [asdict(f) for f in self.files],
            "prev": self.prev,
            "key_id": self.key_id,
        }


def record_mac(key: bytes, body: dict) -> str:
    return hmac.new(key, _MANIFEST_LABEL + rfc8785.dumps(body), hashlib.sha256).hexdigest()


def manifest_line(record: SegmentRecord) -> bytes:
    return json.dumps({**record.body(), "mac": record.mac}, separators=(",", ":")).encode()


def manifest_key(first_seq: int) -> str:
    return f"{MANIFEST_PREFIX}{first_seq:0{SEQ_DIGITS}d}.json"


def parse_manifest_record(data: bytes) -> SegmentRecord:
    """One manifest record as stored (ValueError, KeyError or TypeError if it is not one)."""
    line = data[:-1] if data.endswith(b"\n") else data
    doc = json.loads(line)
    files = tuple(SegmentFile(**f) for f in doc["files"])
    return SegmentRecord(int(doc["first_seq"]), int(doc["last_seq"]), str(doc["last_mac"]), files,
                         str(doc["prev"]), str(doc["key_id"]), str(doc["mac"]), hashlib.sha256(line).hexdigest())


def read_manifest(layout: Layout) -> tuple[list[SegmentRecord], list[str]]:
    """Records in key order, and a description of each object that could not be parsed
    or is not named for the segment it records. From a remote store, a record already read
    at the version the listing gives is taken from the local cache (`ManifestCache`): an
    open costs a LIST per 1,000 records and a GET per record written since, not a GET per
    record ever written."""
    records: list[SegmentRecord] = []
    problems: list[str] = []
    cache = ManifestCache(layout.local) if layout.store.local_root is None else None
    for obj in layout.store.list(MANIFEST_PREFIX):
        named = MANIFEST_RECORD.fullmatch(obj.key)
        if named is None:
            problems.append(f"{obj.key}: not a manifest record's name")
            continue
        data = cache.get(obj.key, obj.version) if cache is not None else None
        try:
            if data is None:
                data = layout.store.read(obj.key)
                if cache is not None:
                    cache.add(obj.key, obj.version, data)
            record = parse_manifest_record(data)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            problems.append(f"{obj.key}: unreadable ({type(e).__name__})")
            continue
        except LedgerError:
            problems.append(f"{obj.key}: listed but cannot be read")
            continue
        if int(named.group(1)) != record.first_seq:
            problems.append(f"{obj.key}: records the segment starting at {record.first_seq}, not the one its name says")
            continue
        records.append(record)
    if cache is not None:
        cache.save()
    return records, problems


class ManifestCache:
    """Manifest records of a remote store as read before, by key and store version, in the
    local directory (``manifest-cache.jsonl``, appended to). Records are written once, so a
    version seen again is the same bytes; a replaced record has another version and is read
    again, so what the store holds now is always what is parsed. Only a cache: a torn or
    unreadable line is ignored, and a directory it cannot be written to is not an error."""

    FILE = "manifest-cache.jsonl"

    def __init__(self, local: Path, *, load: bool = True):
        self.path = Path(local) / self.FILE
        self._known: dict[str, tuple[str, bytes]] = {}
        self._new: list[bytes] = []
        if not load:
            return  # only to append to (a seal adds its own record without reading the others)
        try:
            lines = self.path.read_bytes().splitlines()
        except OSError:
            return
        for line in lines:
            try:
                doc = json.loads(line)
                self._known[doc["key"]] = (doc["version"], doc["data"].encode())
            except (ValueError, KeyError, TypeError, AttributeError):
                continue

    def get(self, key: str, version: str) -> bytes | None:
        known = self._known.get(key)
        return known[1] if known is not None and known[0] == version else None

    def add(self, key: str, version: str, data: bytes) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return  # not a record: never cached, read again next time
        self._known[key] = (version, data)
        self._new.append(json.dumps({"key": key, "version": version, "data": text}, separators=(",", ":")).encode() + b"\n")

    def save(self) -> None:
        if not self._new:
            return
        try:
            with open(self.path, "ab") as f:
                f.write(b"".join(self._new))
        except OSError:
            pass
        self._new = []


def write_manifest_record(layout: Layout, record: SegmentRecord) -> None:
    """The commit point of a seal: the record, written once. Of two writers sealing the same
    range, one wins; the other gets VersionConflict and must not go on."""
    key, data = manifest_key(record.first_seq), manifest_line(record) + b"\n"
    try:
        written = layout.store.put_if_absent(key, data)
    except ObjectExists:
        raise VersionConflict(f"{layout.store.where(key)}: another writer sealed this range") from None
    if layout.store.local_root is None:
        cache = ManifestCache(layout.local, load=False)
        cache.add(key, written.version, data)
        cache.save()


# ------------------------------------------------------------------------------ Parquet

ROW_GROUP_ROWS = 8 * 1024
BLOOM_COLUMNS = ("request_id", "subject_id")


def lookup_layout(table: pa.Table) -> dict:
    """Row grouping and Bloom filters that make finding one request or subject cheap.

    A reader looking for one request (`mrm reconstruct`) decompresses only the row groups
    whose filter column matches: small row groups keep that to ~8k rows instead of the whole
    file, and Bloom filters on the id columns let it skip a row group without decompressing
    even that column. Both live inside the file the manifest hashes, so they are evidence
    like the rows they describe; the side index (ledger/key_index.py) only picks the files."""
    bloom = {c: {"ndv": ROW_GROUP_ROWS, "fpp": 0.01} for c in BLOOM_COLUMNS if c in table.column_names}
    return {"row_group_size": ROW_GROUP_ROWS, "bloom_filter_options": bloom or None}


def segment_bytes(table: pa.Table) -> bytes:
    """One immutable segment file's bytes (the same rows give the same bytes)."""
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        **lookup_layout(table),
        write_statistics=True,
        write_page_index=True,
        sorting_columns=[pq.SortingColumn(0)],
    )
    return sink.getvalue()


def read_segment(layout: Layout, rel: str) -> pa.Table:
    """A segment file read from the ledger's store."""
    if layout.store.local_root is not None:
        return pq.read_table(layout.store.local_root / rel)
    return pq.read_table(pa.BufferReader(layout.store.read(rel)))


def read_segment_file(path: Path) -> pa.Table:
    return pq.read_table(path)
