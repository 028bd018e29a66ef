"""Moving a whole ledger between stores, and reading one that lives on object storage.

A ledger on object storage is read through a *mirror*: a local directory holding exactly
the objects the store lists, each downloaded once per version (immutable objects, which
are nearly all of them, are downloaded once). Every reader and verifier then runs on the
mirror as on any directory, so an object replaced, removed or slipped in on the store is
seen as it would be on disk: the manifest's sizes and digests, the chain and the signed
checkpoints are checked against the bytes the store served in this run.

`copy_ledger` copies a ledger between any two stores. It verifies the source before it
writes anything and the destination, read back from the destination store, after; it
refuses a source that does not verify unless told to (and then says so in its report).
Immutable objects are written with put-if-absent (and a retention date when asked);
``LEDGER.json`` is written last, so a copy stopped half-way is not a ledger and a new copy
into it resumes where it stopped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError, IntegrityError
from .storage import META_KEY, MIRROR_STATE, Layout
from .storage_io import write_file_atomic
from .store import LocalStore, ObjectExists, Store, StoredObject, open_store

# Coordination files of a writer on one machine: never evidence, never copied.
LOCK_KEYS = frozenset({"LOCK", "tree/lock"})
# What a writer changes in place; everything else under a ledger is written once.
MUTABLE_KEYS = frozenset({"HEAD", "wal.log", "tree/tree-state"})


def is_mutable(key: str) -> bool:
    """Whether a writer may replace the object: the head, the log, the tree's
    state, a partial tile (``tree/tile/<level>/<index>.p/<width>``) or a staged repair."""
    return key in MUTABLE_KEYS or ".p/" in key or key.endswith(".pending.json")


def is_evidence(key: str) -> bool:
    """What a retention policy must keep: the ledger's metadata, its sealed segments, their
    manifest records and the signed checkpoints. The tree's tiles and the key index are
    derived from the segments and can be rebuilt, so they are not retained by a writer."""
    return key == META_KEY or key.startswith(("tables/", "manifest/")) or (key.startswith("checkpoints/") and key.endswith(".note"))


def ledger_objects(store: Store, prefixes: tuple[str, ...] | None = None) -> list[StoredObject]:
    """What a ledger consists of in `store`: every object but the writers' lock files (only
    those under `prefixes`, one listing each, when given)."""
    if prefixes is None:
        listed = store.list()
    else:
        listed = sorted({o.key: o for p in prefixes for o in store.list(p)}.values(), key=lambda o: o.key)
    return [o for o in listed if o.key not in LOCK_KEYS]


@dataclass
class RetentionState:
    """How much of a ledger is under retention, as the store reports it."""

    retained: int = 0
    not_retained: list[str] = field(default_factory=list)  # evidence objects without a future retention date
    earliest: dt.datetime | None = None
    latest: dt.datetime | None = None
    supported: bool = True  # False: the store keeps no retention (a local directory)
    evidence: list[StoredObject] = field(default_factory=list)  # every evidence object, with the retention the store reports

    @property
    def modes(self) -> list[str]:
        """The lock modes of the retained objects (S3: COMPLIANCE, GOVERNANCE), each once."""
        unprotected = set(self.not_retained)
        return sorted({o.retain_mode or "unknown" for o in self.evidence if o.key not in unprotected})

    def summary(self) -> str:
        if not self.supported:
            return "no retention lock (a local directory)"
        if not self.retained:
            return f"no object is under retention ({len(self.not_retained)} evidence objects unprotected)"
        text = f"{self.retained} objects retained until {self.earliest:%Y-%m-%d} or later (latest {self.latest:%Y-%m-%d})"
        if self.not_retained:
            text += f"; {len(self.not_retained)} evidence objects NOT retained, e.g. {self.not_retained[0]}"
        return text

    def as_json(self) -> dict:
        return {
            "supported": self.supported,
            "retained": self.retained,
            "not_retained": self.not_retained,
            "earliest": self.earliest.isoformat() if self.earliest else None,
            "latest": self.latest.isoformat() if self.latest else None,
        }


def retention_state(store: Store, objects: Iterable[StoredObject] | None = None, *, now: dt.datetime | None = None) -> RetentionState:
    """Which evidence objects of the ledger (`is_evidence`) carry a retention date still in
    the future (one HEAD request per object: listings do not carry retention)."""
    if isinstance(store, LocalStore):
        return RetentionState(supported=False)
    now = now or dt.datetime.now(dt.timezone.utc)
    state = RetentionState()
    for listed in objects if objects is not None else ledger_objects(store):
        if not is_evidence(listed.key):
            continue
        obj = listed if listed.retain_until is not None else store.stat(listed.key)
        state.evidence.append(obj if obj is not None else listed)
        until = obj.retain_until if obj is not None else None
        if until is None or until <= now:
            state.not_retained.append(listed.key)
            continue
        state.retained += 1
        state.earliest = until if state.earliest is None else min(state.earliest, until)
        state.latest = until if state.latest is None else max(state.latest, until)
    return state


@dataclass(frozen=True)
class Mirror:
    """A local directory holding what a store listed, and that listing."""

    path: Path
    store: Store
    objects: tuple[StoredObject, ...]
    downloaded: int  # objects fetched in this run (the others were already there, unchanged)


# What a reader of entries needs (`read.snapshot`, the key index): the metadata, the head,
# the manifest records, the segments and their key index files; not the tree's tiles or the
# checkpoints, which only verification and proofs read. Key prefixes, listed one by one.
ENTRY_DATA = (META_KEY, "HEAD", "manifest/", "tables/", "index/")


def mirror(store: Store, into: str | os.PathLike[str] | None = None, *, only: tuple[str, ...] | None = None) -> Mirror:
    """A local directory that holds exactly the ledger objects `store` lists now.

    A local store is its own mirror. Otherwise objects are fetched into `into` (by default
    the mirror in the ledger's local directory, see ledger.storage.default_work_dir) when
    their version differs from the one fetched before, and local files the store no longer
    lists are removed, so the directory shows the store as it is: a deleted or added object
    there is deleted or added here. With `only` (key prefixes, e.g. `ENTRY_DATA`), just the
    objects under them are listed and mirrored, and the mirror's listing holds only those;
    a later full mirror into the same directory brings the rest up to date.

    Objects are fetched `FETCH_THREADS` at a time: on object storage each GET is a round
    trip, and nearly all of a ledger's objects are small tiles."""
    if isinstance(store, LocalStore):
        return Mirror(store.root, store, tuple(ledger_objects(store)), 0)
    root = Path(into) if into is not None else Layout(store).root
    root.mkdir(parents=True, exist_ok=True)
    local = LocalStore(root)
    state_file = root / MIRROR_STATE
    try:
        fetched: dict[str, str] = json.loads(state_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        fetched = {}
    objects = ledger_objects(store, only)
    if not any(o.key == META_KEY for o in objects):
        raise InputError(f"{store.url}: not a ledger (no {META_KEY} is listed there)")
    listed = {o.key for o in objects}
    for stale in ledger_objects(local):  # one walk of the directory (a listing per prefix walks it each time)
        if stale.key not in listed and stale.key != MIRROR_STATE and (only is None or stale.key.startswith(only)):
            local.delete(stale.key)
            fetched.pop(stale.key, None)
    wanted = [o for o in objects if not (fetched.get(o.key) == o.version and local.exists(o.key))]
    try:
        for obj in fetch_into(store, local, wanted):
            fetched[obj.key] = obj.version
    finally:  # what was fetched stays fetched, even when another object failed
        state_file.write_text(json.dumps(fetched, sort_keys=True), encoding="utf-8")
    return Mirror(root, store, tuple(objects), len(wanted))


FETCH_THREADS = 16  # concurrent GETs per fetch (boto3's client is thread-safe; its pool holds 32)


def fetch_into(store: Store, local: LocalStore, objects: Sequence[StoredObject],
               check: Callable[[StoredObject, bytes], None] | None = None) -> Iterator[StoredObject]:
    """Fetch `objects` from `store` into the directory `local`, `FETCH_THREADS` at a time,
    yielding each once its file is written. `check` may refuse an object's bytes (it raises)
    before they are written. The files are a cache of the store, so not fsynced."""

    def fetch(obj: StoredObject) -> StoredObject:
        data = store.read(obj.key)
        if check is not None:
            check(obj, data)
        path = local.path(obj.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomic(path, data, durable=False)
        return obj

    if len(objects) <= 1:
        yield from map(fetch, objects)
        return
    with ThreadPoolExecutor(max_workers=min(FETCH_THREADS, len(objects)), thread_name_prefix="mrm-fetch") as pool:
        futures = [pool.submit(fetch, obj) for obj in objects]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def frozen_view(store: LocalStore, into: Path) -> Mirror:
    """The local ledger as of one instant, in `into`, without pausing writers for longer
    than a listing: under the readers' shared lock, immutable files are hard-linked (they
    are never changed in place) and the few a writer changes are copied."""
    from .read import shared_lock

    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    with shared_lock(Layout(store.root)):
        objects = ledger_objects(store)
        if not any(o.key == META_KEY for o in objects):
            raise InputError(f"{store.url}: not a ledger (no {META_KEY} there)")
        for obj in objects:
            target = into / obj.key
            target.parent.mkdir(parents=True, exist_ok=True)
            if is_mutable(obj.key):
                shutil.copyfile(store.path(obj.key), target)
            else:
                try:
                    os.link(store.path(obj.key), target)
                except OSError:  # another file system, or no hard links there
                    shutil.copyfile(store.path(obj.key), target)
    return Mirror(into, store, tuple(objects), 0)


def dst_scratch(dst: Store) -> Path:
    """Where a copy keeps its working files when not told: beside a local destination (the
    same file system, so hard links work), else in the cache."""
    if isinstance(dst, LocalStore):
        return dst.root.parent / f".{dst.root.name}.copy-work-{os.getpid()}"
    return Layout(dst).local / f"copy-work-{os.getpid()}"


# ------------------------------------------------------------------------------ copying

Verifier = Callable[[Path], "VerifyOutcome"]


@dataclass(frozen=True)
class VerifyOutcome:
    ok: bool
    summary: str  # one line: what was checked, or the first problems


@dataclass
class CopyReport:
    source: str
    destination: str
    objects: int = 0
    bytes: int = 0
    skipped: int = 0  # already at the destination with the same bytes (a resumed copy)
    source_check: VerifyOutcome | None = None
    destination_check: VerifyOutcome | None = None
    unverified: bool = False  # copied although the source did not verify, as asked
    retain_until: dt.datetime | None = None

    def as_json(self) -> dict:
        return {
            "source": self.source,
            "destination": self.destination,
            "objects": self.objects,
            "bytes": self.bytes,
            "skipped": self.skipped,
            "source_verified": None if self.source_check is None else self.source_check.ok,
            "source_check": None if self.source_check is None else self.source_check.summary,
            "destination_verified": None if self.destination_check is None else self.destination_check.ok,
            "destination_check": None if self.destination_check is None else self.destination_check.summary,
            "copied_unverified": self.unverified,
            "retain_until": self.retain_until.isoformat() if self.retain_until else None,
        }


def copy_ledger(
    source: str | os.PathLike[str] | Store,
    destination: str | os.PathLike[str] | Store,
    verifier: Verifier | None,
    *,
    allow_unverified: bool = False,
    retain_until: dt.datetime | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CopyReport:
    """Copy the whole ledger at `source` to `destination`, verified at both ends.

    `verifier` checks a ledger directory (HMAC or public-key verification, as the caller
    holds keys); without one the copy is unverified and must be allowed. A source that does
    not verify is refused (IntegrityError, nothing written) unless `allow_unverified`; the
    report then says it was copied unverified. The destination must be empty, or hold an
    earlier, stopped copy of the same objects. `retain_until` puts every immutable object
    under the store's retention lock until that date."""
    src, dst = open_store(source), open_store(destination)
    if src.url == dst.url:
        raise InputError(f"{src.url}: source and destination are the same")
    report = CopyReport(src.url, dst.url, retain_until=retain_until)
    if verifier is None and not allow_unverified:
        raise InputError("a copy is verified at both ends: give the keys to verify with, or allow an unverified copy")
    scratch = Path(work_dir) if work_dir is not None else dst_scratch(dst)
    try:
        if isinstance(src, LocalStore):
            view = frozen_view(src, scratch / "source")
        else:
            view = mirror(src, scratch / "source")
        if verifier is not None:
            report.source_check = verifier(view.path)
            if not report.source_check.ok and not allow_unverified:
                raise IntegrityError(f"{src.url} does not verify, so it was not copied: {report.source_check.summary}")
        report.unverified = verifier is None or not report.source_check.ok
        objects = sorted(view.objects, key=_copy_order)
        if isinstance(dst, LocalStore):
            _copy_to_directory(view, dst, objects, report, progress)
        else:
            _copy_to_store(view, dst, objects, report, retain_until, progress)
        if verifier is not None:
            readback = mirror(dst, scratch / "destination")
            report.destination_check = verifier(readback.path)
            if not report.destination_check.ok:
                raise IntegrityError(f"the copy at {dst.url} does not verify: {report.destination_check.summary}")
    finally:
        if work_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return report


def _copy_order(obj: StoredObject) -> tuple[int, str]:
    """Immutable objects first, then what a writer changes, LEDGER.json last: a stopped copy
    is not a ledger, and never shows a head ahead of the segments it names."""
    if obj.key == META_KEY:
        return (2, obj.key)
    return (1 if is_mutable(obj.key) else 0, obj.key)


def _copy_to_store(view: Mirror, dst: Store, objects: list[StoredObject], report: CopyReport,
                   retain_until: dt.datetime | None, progress: Callable[[int, int], None] | None) -> None:
    existing = {o.key: o for o in ledger_objects(dst)}
    if existing and META_KEY in existing:
        raise InputError(f"{dst.url}: already holds a ledger; copy into an empty prefix")
    for done, obj in enumerate(objects, start=1):
        data = (view.path / obj.key).read_bytes()
        retained = None if is_mutable(obj.key) else retain_until
        if obj.key in existing:
            if dst.read(obj.key) == data:
                report.skipped += 1
                continue
            if not is_mutable(obj.key):
                raise InputError(f"{dst.where(obj.key)}: exists with other bytes; copy into an empty prefix")
            dst.replace_if_unchanged(obj.key, data, existing[obj.key].version)
        else:
            try:
                dst.put_if_absent(obj.key, data, retain_until=retained)
            except ObjectExists:
                raise InputError(f"{dst.where(obj.key)}: written by someone else during the copy") from None
        report.objects += 1
        report.bytes += len(data)
        if progress is not None:
            progress(done, len(objects))


def _copy_to_directory(view: Mirror, dst: LocalStore, objects: list[StoredObject], report: CopyReport,
                       progress: Callable[[int, int], None] | None) -> None:
    """Into a new directory, which appears whole or not at all (as `Ledger.create` does)."""
    root = dst.root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InputError(f"{root}: already exists and is not an empty directory")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = LocalStore(root.parent / f".{root.name}.copying-{os.getpid()}")
    shutil.rmtree(staging.root, ignore_errors=True)
    try:
        for done, obj in enumerate(objects, start=1):
            data = (view.path / obj.key).read_bytes()
            staging.put_if_absent(obj.key, data)
            report.objects += 1
            report.bytes += len(data)
            if progress is not None:
                progress(done, len(objects))
        if root.exists():
            root.rmdir()
        os.replace(staging.root, root)
    except BaseException:
        shutil.rmtree(staging.root, ignore_errors=True)
        raise
