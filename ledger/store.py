"""The storage port: where a ledger's bytes live.

Everything a ledger keeps for its readers is an object under a key: a '/'-separated path
relative to the ledger's root (``HEAD``, ``tables/operation/000000000000-000000000099.parquet``).
The ledger needs exactly these operations of a store, and no file call outside a store:

- ``read`` and ``stat`` one object, ``list`` the objects under a prefix;
- ``put_if_absent``: write an object that must not exist yet (sealed segments, key index
  files, full tiles, checkpoints). Atomic: readers see all of it or nothing, and of two
  writers of one key exactly one succeeds;
- ``replace_if_unchanged``: compare-and-swap on the version a reader saw (``HEAD``, the
  tree's state). Of two writers that saw one version, exactly one succeeds;
- ``delete``: for what is not evidence (a stale partial tile, an unlisted temporary).

A retained object (``retain_until`` in the future) can be neither replaced nor deleted: the
store refuses with `RetentionRefused`. `LocalStore` (a directory) keeps no retention; an
`ObjectStore` (S3, ledger/object_store.py) sets Object Lock retention on what it writes.

The writer's write-ahead log and its lock are not objects: they live on the writer's local
disk (see ledger/wal.py and ledger/ledger.py).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import IntegrityError, LedgerError
from .storage_io import fsync_dir

_TEMP_MARK = ".tmp-"  # LocalStore's temporaries: never listed, never evidence
_CAS_LOCK = ".store-lock"


class StoreError(LedgerError):
    """A store could not do what was asked (the message names the store and the key)."""


class StoreUnavailable(StoreError):
    """The store did not answer, or answered with a server error, after its retries.
    Nothing is known to have been written; the operation may be tried again."""


class ObjectMissing(StoreError, FileNotFoundError):
    """The key names no object."""


class ObjectExists(StoreError):
    """`put_if_absent` found the key taken: another writer, or an earlier run, wrote it."""


class VersionConflict(StoreError):
    """`replace_if_unchanged` found a version other than the one expected: another writer
    changed the object since it was read."""


class RetentionRefused(StoreError, IntegrityError):
    """The object is under retention until a later date; it cannot be replaced or deleted."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    version: str  # opaque: compare for equality only (an ETag on S3, inode and time locally)
    retain_until: dt.datetime | None = None
    retain_mode: str | None = None  # the store's word for the lock (S3: COMPLIANCE or GOVERNANCE), when retained


def check_key(key: str) -> str:
    """A key is a relative '/'-separated path without empty, '.' or '..' parts."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\x00" in key:
        raise StoreError(f"not a valid object key: {key!r}")
    return key


class Store(ABC):
    """One ledger's objects. `url` names the store in messages (a path or s3://bucket/prefix)."""

    url: str

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The object's bytes; `ObjectMissing` if there is none."""

    @abstractmethod
    def stat(self, key: str) -> StoredObject | None:
        """The object's size, version and retention, or None if there is none."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[StoredObject]:
        """Every object whose key starts with `prefix`, in key order."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes, *, retain_until: dt.datetime | None = None) -> StoredObject:
        """Write a new object, durably; `ObjectExists` if the key is taken."""

    @abstractmethod
    def replace_if_unchanged(self, key: str, data: bytes, expected: str | None, *, durable: bool = True) -> StoredObject:
        """Replace the object whose version is `expected` (None: there must be no object);
        `VersionConflict` otherwise. With durable=False a local store may skip fsync: the
        replacement then survives a process crash but not a power loss."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (absent is fine); `RetentionRefused` if it is retained."""

    def retain(self, key: str, until: dt.datetime) -> StoredObject:
        """Put an existing object under retention until `until` (compliance mode: nobody can
        shorten it); a later date already set is kept. Stores without retention refuse."""
        raise StoreError(f"{self.url}: this store keeps no retention lock")

    def read_or_none(self, key: str) -> bytes | None:
        try:
            return self.read(key)
        except ObjectMissing:
            return None

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def where(self, key: str) -> str:
        """The object as a reader would name it: a file path, or s3://bucket/prefix/key."""
        return f"{self.url.rstrip('/')}/{key}"

    @property
    def local_root(self) -> Path | None:
        """The directory holding the objects when they are files on this machine."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class LocalStore(Store):
    """A ledger in a directory of a POSIX file system.

    Life of an object: ``put_if_absent`` writes a temporary beside the key, fsyncs it and
    hard-links it to the key (``link`` fails if the key exists, so of two writers one wins),
    then fsyncs the directory. ``replace_if_unchanged`` holds an exclusive flock on
    ``.store-lock`` while it compares the version and renames a fsynced temporary over the
    key. Versions are the file's inode, size and modification time, which every rename
    changes. A directory keeps no retention: `retain_until` is refused here."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.url = str(self.root)

    @property
    def local_root(self) -> Path:
        return self.root

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def where(self, key: str) -> str:
        return str(self.path(key))

    def read(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectMissing(f"{self.where(key)}: no such object") from None
        except IsADirectoryError:
            raise ObjectMissing(f"{self.where(key)}: a directory, not an object") from None

    def stat(self, key: str) -> StoredObject | None:
        try:
            st = os.stat(self.path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not os.path.isfile(self.path(key)):
            return None
        return StoredObject(key, st.st_size, _local_version(st))

    def list(self, prefix: str = "") -> list[StoredObject]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        found: list[StoredObject] = []
        if not base.is_dir():
            return found
        for dirpath, dirnames, files in os.walk(base):
            dirnames.sort()
            for name in files:
                if _TEMP_MARK in name or name == _CAS_LOCK:
                    continue
                path = Path(dirpath, name)
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue  # removed while listing
                found.append(StoredObject(key, st.st_size, _local_version(st)))
        found.sort(key=lambda o: o.key)
        return found

    def put_if_absent(self, key: str, data: bytes, *, retain_until: dt.datetime | None = None) -> StoredObject:
        _no_retention(self, retain_until)
        path = self.path(key)
        made = _makedirs(path.parent)
        tmp = self._write_temporary(path, data, durable=True)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise ObjectExists(f"{self.where(key)}: already exists") from None
        finally:
            os.unlink(tmp)
        fsync_dir(path.parent)
        for directory in made:
            fsync_dir(directory.parent)
        return StoredObject(key, len(data), _local_version(os.stat(path)))

    def replace_if_unchanged(self, key: str, data: bytes, expected: str | None, *, durable: bool = True) -> StoredObject:
        path = self.path(key)
        made = _makedirs(path.parent)
        with self._cas_lock():
            current = self.stat(key)
            if (current.version if current else None) != expected:
                raise VersionConflict(
                    f"{self.where(key)}: changed by another writer "
                    f"(expected {'no object' if expected is None else 'version ' + expected}, "
                    f"found {'no object' if current is None else 'version ' + current.version})"
                )
            tmp = self._write_temporary(path, data, durable=durable)
            os.replace(tmp, path)
            if durable:
                fsync_dir(path.parent)
                for directory in made:
                    fsync_dir(directory.parent)
            return StoredObject(key, len(data), _local_version(os.stat(path)))

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            return
        fsync_dir(self.path(key).parent)

    def _write_temporary(self, path: Path, data: bytes, *, durable: bool) -> Path:
        tmp = path.with_name(f".{path.name}{_TEMP_MARK}{os.getpid()}-{id(data):x}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        return tmp

    @contextmanager
    def _cas_lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / _CAS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _local_version(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


def _makedirs(directory: Path) -> list[Path]:
    """Create `directory` and its missing parents; return those created, deepest last."""
    made = []
    while not directory.exists():
        made.append(directory)
        directory = directory.parent
    for d in reversed(made):
        try:
            d.mkdir()
        except FileExistsError:
            pass
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise
    return list(reversed(made))


def _no_retention(store: Store, retain_until: dt.datetime | None) -> None:
    if retain_until is not None:
        raise StoreError(f"{store.url}: a local directory keeps no retention lock; keep the ledger on object "
                         "storage with Object Lock (s3://bucket/prefix) to retain it")


def open_store(location: str | os.PathLike[str] | Store) -> Store:
    """The store a command line or a call names: a `Store` as given, ``s3://bucket/prefix``
    (credentials and endpoint from the standard AWS variables and files), or a directory."""
    if isinstance(location, Store):
        return location
    text = os.fspath(location)
    if text.startswith("s3://"):
        from .object_store import ObjectStore

        return ObjectStore.from_url(text)
    return LocalStore(text)
