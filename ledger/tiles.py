"""Persistent, append-only storage of a Merkle tree's hashes as C2SP tlog-tiles.

Layout (https://c2sp.org/tlog-tiles), as objects of a :class:`ledger.store.Store` under a
key prefix (``tree/`` in a ledger; nothing when the caller gives a directory)::

    <prefix>tile/<L>/<N>          full tile: 256 hashes, 8192 bytes, written once
    <prefix>tile/<L>/<N>.p/<W>    partial tile: the first W (1..255) hashes of tile N, written once
    <prefix>tree-state            commit record: size, root, previous size, pending size
    <prefix>lock                  flock()ed by the single writer (local stores only)

``<N>`` is written in 3-digit groups, all but the last prefixed with ``x``
(``1234067`` -> ``x001/x234/067``). A level-``L`` tile holds tree hashes of level ``8*L``:
hash ``i`` of tile ``(L, N)`` is the Merkle tree hash of leaves
``[(256*N + i) * 256**L, (256*N + i + 1) * 256**L)``. Levels in between are recomputed
from a tile's hashes (at most 127 SHA-256 calls), so a root at any size and any proof need
O(log n) tile reads: :meth:`TileStore.hash_at` implements the :data:`ledger.merkle.HashAt`
protocol. The ``tile/`` objects can be served as-is as a tlog-tiles log prefix (with a
``checkpoint`` added by the caller beside them).

Life of an append. Nothing readable is ever modified in place; every step is one store
operation, atomic on both backends (a directory: temporary, fsync, link or rename;
object storage: one conditional PUT or DELETE):

1. ``tree-state`` is replaced, compare-and-swap on the version this writer last read or
   wrote, with ``pending <new size>``: the intent record;
2. the new full tiles and the new partial tiles are written with put-if-absent (a partial
   tile of a larger width is a new key). A tile already there with the same bytes counts
   as written, so an append repeated after a crash is idempotent; other bytes are refused
   (:class:`TileConflictError`), never overwritten;
3. ``tree-state`` is replaced, again compare-and-swap, with the new size and root:
   **the commit point**;
4. the partial tiles the new state no longer needs are deleted.

A crash before 3 leaves the old state fully readable (its partial tiles are deleted only
in 4); a crash after 3 leaves the new one. Reopening for writing removes what an
interrupted append left behind (from the ``pending`` and ``prev`` sizes), and every open
recomputes the root from the tiles and compares it with the committed one.

One writer. On a local store the writer holds an exclusive flock on ``lock``. Object
storage has no lock: exclusivity comes from the ledger's own writer lease, and the
compare-and-swap of steps 1 and 3 makes sure that of two writers that read one state only
one ever commits; the other stops with :class:`StoreLockedError` and touches nothing more.

Every full tile read is checked against its parent hash one level up, and the right edge
(the partial tiles) against the committed root, so a corrupted or swapped tile is
reported as :class:`CorruptTileError` instead of producing a proof that fails later.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import IntegrityError
from .merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    ConsistencyProof,
    InclusionProof,
    consistency_proof,
    hash_pairs,
    inclusion_proof,
    pack_hashes,
    root_at,
)
from .store import ObjectExists, Store, StoreError, StoredObject, VersionConflict, check_key, open_store

try:  # POSIX advisory locking; the ledger targets Linux.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TILE_BYTES",
    "TileStore",
    "TileStoreError",
    "CorruptTileError",
    "AppendOnlyError",
    "TileConflictError",
    "StoreLockedError",
    "committed_size",
    "stored_leaf_tiles",
    "tile_path",
    "tile_root",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes
TILE_BYTES = TILE_WIDTH * HASH_SIZE  # 8192 bytes
_MAX_LEVEL = 63
_STATE = "tree-state"
_STATE_MAGIC = "mrm-ledger tile store v1"
_CHUNK_LEAVES = 1 << 18  # leaves hashed per internal step of one append (8 MiB)
_WRITER_THREADS = 4


class TileStoreError(Exception):
    """The tile store cannot do what was asked."""


class CorruptTileError(TileStoreError, IntegrityError):
    """Stored hashes are missing, truncated or do not hash to what the tree commits to.
    `tile` is the damaged tile's path when one is known. An IntegrityError: nothing is
    proven from a damaged tree (exit code 1)."""

    def __init__(self, message: str, *, tile: str | None = None) -> None:
        super().__init__(message)
        self.tile = tile


class AppendOnlyError(TileStoreError):
    """The append would change, or leave a gap before, leaves already in the tree."""


class TileConflictError(AppendOnlyError, CorruptTileError):
    """A write-once tile key already holds other hashes than the tree puts there. Refused,
    never overwritten: the append would rewrite history, and the object is not the tree's."""


class StoreLockedError(TileStoreError):
    """Another writer holds the store's lock, or changed ``tree-state`` under this one."""


def _index_path(index: int) -> str:
    parts = []
    while True:
        index, rem = divmod(index, 1000)
        parts.append(f"{rem:03d}")
        if index == 0:
            break
    parts.reverse()
    return "/".join(["x" + p for p in parts[:-1]] + [parts[-1]])


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """Relative path of a tile, ``tile/<L>/<N>`` or ``tile/<L>/<N>.p/<W>``."""
    if not 0 <= level <= _MAX_LEVEL or index < 0 or not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"no tile at level {level}, index {index}, width {width}")
    path = f"tile/{level}/{_index_path(index)}"
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


def tile_root(tile: bytes) -> bytes:
    """Merkle tree hash of a full tile's 256 hashes (its hash one tile level up)."""
    if len(tile) != TILE_BYTES:
        raise ValueError("a full tile is 8192 bytes")
    for _ in range(TILE_HEIGHT):
        tile = hash_pairs(tile)
    return tile


def _tile_roots(full_tiles: bytes) -> bytes:
    """Roots of consecutive full tiles, all levels hashed across the whole batch."""
    for _ in range(TILE_HEIGHT):
        full_tiles = hash_pairs(full_tiles)
    return full_tiles


def _edge_widths(size: int) -> list[tuple[int, int, int]]:
    """(level, tile index, width) of each partial tile of a tree of ``size`` leaves."""
    out = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        width = count % TILE_WIDTH
        if width:
            out.append((level, count // TILE_WIDTH, width))
        level += 1
    return out


@dataclass(frozen=True)
class _State:
    size: int
    root: bytes
    prev: int
    pending: int | None

    def encode(self) -> bytes:
        pending = "-" if self.pending is None else str(self.pending)
        return (
            f"{_STATE_MAGIC}\nsize {self.size}\n"
            f"root {base64.b64encode(self.root).decode()}\n"
            f"prev {self.prev}\npending {pending}\n"
        ).encode()

    @classmethod
    def decode(cls, data: bytes, where: str) -> "_State":
        try:
            lines = data.decode("ascii").split("\n")
            if len(lines) != 6 or lines[0] != _STATE_MAGIC or lines[5] != "":
                raise ValueError("bad layout")
            fields = {}
            for line, key in zip(lines[1:5], ("size", "root", "prev", "pending")):
                k, _, v = line.partition(" ")
                if k != key:
                    raise ValueError(f"expected {key}")
                fields[key] = v
            size = _decimal(fields["size"])
            prev = _decimal(fields["prev"])
            pending = None if fields["pending"] == "-" else _decimal(fields["pending"])
            root = base64.b64decode(fields["root"], validate=True)
        except (UnicodeDecodeError, ValueError, binascii.Error) as exc:
            raise CorruptTileError(f"{where} is not a valid tile store state: {exc}") from None
        if len(root) != HASH_SIZE or prev > size or (pending is not None and pending <= size):
            raise CorruptTileError(f"{where} is inconsistent: {data!r}")
        return cls(size, root, prev, pending)


def _decimal(s: str) -> int:
    if not s.isascii() or not s.isdigit() or (len(s) > 1 and s[0] == "0"):
        raise ValueError(f"not a decimal: {s!r}")
    return int(s)


def _resolve(store_or_directory: Store | str | os.PathLike[str], prefix: str) -> tuple[Store, str]:
    """The store (a directory or s3:// URL is opened as one) and the prefix, '/'-terminated."""
    store = open_store(store_or_directory)
    if prefix:
        prefix = prefix.rstrip("/") + "/"
        check_key(prefix + _STATE)
    return store, prefix


def _where(store: Store, prefix: str) -> str:
    return store.where(prefix.rstrip("/")) if prefix else store.url


def committed_size(store_or_directory: Store | str | os.PathLike[str], prefix: str = "") -> int:
    """The size a store's ``tree-state`` commits to, read without checking any tile."""
    store, prefix = _resolve(store_or_directory, prefix)
    data = store.read_or_none(prefix + _STATE)
    if data is None:
        raise TileStoreError(f"no tile store at {_where(store, prefix)}")
    return _State.decode(data, store.where(prefix + _STATE)).size


def stored_leaf_tiles(
    store_or_directory: Store | str | os.PathLike[str], size: int, start: int, end: int, prefix: str = ""
) -> list[tuple[str, int, bytes]]:
    """The level-0 tiles of a tree of ``size`` leaves that hold leaves ``[start, end)``
    (``end`` at most ``size``), as stored and unchecked: (path relative to the tree, index
    of the tile's first leaf, bytes; empty when unreadable). For comparing leaves with what
    the tree recorded."""
    store, prefix = _resolve(store_or_directory, prefix)
    out = []
    for index in range(start // TILE_WIDTH, -(-end // TILE_WIDTH)):
        width = min(TILE_WIDTH, size - index * TILE_WIDTH)
        rel = tile_path(0, index, width)
        try:
            data = store.read_or_none(prefix + rel) or b""
        except OSError:
            data = b""
        out.append((rel, index * TILE_WIDTH, data))
    return out


class TileStore:
    """The hashes of one append-only RFC 6962 tree, stored as C2SP tlog-tiles.

    ``TileStore(dir)`` opens (creating if needed) a tree in a directory for writing and
    takes its lock; ``TileStore(store, "tree/")`` does the same with the objects of a
    :class:`ledger.store.Store` under a key prefix. ``readonly=True`` opens a read-only
    snapshot at the committed size (:meth:`refresh` moves it to the latest commit).
    ``durable=False`` lets a local store skip the fsync of ``tree-state`` (tests and
    benchmarks only; tiles are written durably by the store either way)."""

    def __init__(
        self,
        store_or_directory: Store | str | os.PathLike[str],
        prefix: str = "",
        *,
        readonly: bool = False,
        durable: bool = True,
        verify_reads: bool = True,
        cache_tiles: int = 64,
    ) -> None:
        self.store, self.prefix = _resolve(store_or_directory, prefix)
        local = self.store.local_root
        # The tree's directory when its objects are files on this machine, else None.
        self.directory: Path | None = None if local is None else local / self.prefix
        self.readonly = readonly
        self.durable = durable
        self.verify_reads = verify_reads
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._cache_tiles = max(cache_tiles, 4)
        self._lock_fd: int | None = None
        self._open = True
        self._broken = False
        self._state_version: str | None = None  # of tree-state as this writer last read or wrote it
        self._size = 0
        self._root = EMPTY_ROOT
        self._prev = 0
        self._edges: list[bytes] = []
        if not readonly:
            self._lock()
        try:
            if not readonly:
                self._recover()
            self._load()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ lifecycle

    @property
    def where(self) -> str:
        """The tree as messages name it: a directory, or s3://bucket/prefix."""
        return _where(self.store, self.prefix)

    def close(self) -> None:
        """Release the writer lock (the store stays readable until then)."""
        self._open = False
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def __enter__(self) -> "TileStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> None:
        """Re-read the committed state (for a read-only store following a writer)."""
        self._load()

    @property
    def size(self) -> int:
        """Number of leaves committed."""
        return self._size

    # ------------------------------------------------------------------ reading

    def hash_at(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree of ``2**level`` leaves starting at leaf
        ``index * 2**level`` (the :data:`ledger.merkle.HashAt` protocol)."""
        if level < 0 or index < 0 or (index + 1) << level > self._size:
            raise IndexError(
                f"no complete subtree at level {level}, index {index} in a tree of size {self._size}"
            )
        tile_level, sub = divmod(level, TILE_HEIGHT)
        first = index << sub
        tile = self._tile(tile_level, first // TILE_WIDTH)
        offset = (first % TILE_WIDTH) * HASH_SIZE
        segment = tile[offset : offset + (HASH_SIZE << sub)]
        for _ in range(sub):
            segment = hash_pairs(segment)
        return segment

    def leaf_hash(self, index: int) -> bytes:
        return self.hash_at(0, index)

    def leaf_hashes(self, start: int, end: int) -> bytes:
        """Packed leaf hashes ``[start, end)``."""
        if not 0 <= start <= end <= self._size:
            raise IndexError(f"leaf range [{start}, {end}) is outside [0, {self._size})")
        out = []
        pos = start
        while pos < end:
            n, off = divmod(pos, TILE_WIDTH)
            take = min(end - pos, TILE_WIDTH - off)
            out.append(self._tile(0, n)[off * HASH_SIZE : (off + take) * HASH_SIZE])
            pos += take
        return b"".join(out)

    def root(self, size: int | None = None) -> bytes:
        """Root of the tree at ``size`` (default: the committed size); any past size works,
        from the current tiles."""
        return root_at(self._size_arg(size), self.hash_at)

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        return inclusion_proof(index, self._size_arg(size), self.hash_at)

    def consistency_proof(self, size1: int, size2: int | None = None) -> ConsistencyProof:
        return consistency_proof(size1, self._size_arg(size2), self.hash_at)

    def read_tile(self, level: int, index: int, width: int = TILE_WIDTH) -> bytes:
        """Bytes of tile ``(level, index)`` at ``width`` hashes, as a tlog-tiles client
        would fetch ``tile/<L>/<N>[.p/<W>]``. A partial tile of any width the tree has had
        is a prefix of the tile's current contents, so it is served from those."""
        tile_path(level, index, width)  # validates the arguments
        have = self._tile(level, index)
        if width * HASH_SIZE > len(have):
            raise IndexError(f"tile {level}/{index} has {len(have) // HASH_SIZE} hashes, not {width}")
        return have[: width * HASH_SIZE]

    def verify(self) -> None:
        """Re-read every stored tile and check the whole tree against the committed root.
        O(n): for audits. Raises :class:`CorruptTileError`."""
        self._check_root()
        level = 0
        while self._size >> (TILE_HEIGHT * (level + 1)):
            full = self._size >> (TILE_HEIGHT * (level + 1))
            for n in range(full):
                self._cache.pop((level, n), None)
                self._full_tile(level, n, verify=True)
            level += 1

    def _size_arg(self, size: int | None) -> int:
        if size is None:
            return self._size
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"bad tree size {size!r}")
        if size > self._size:
            raise ValueError(f"size {size} is beyond the committed size {self._size}")
        return size

    def _tile(self, level: int, index: int) -> bytes:
        full = self._size >> (TILE_HEIGHT * (level + 1))
        if index < full:
            return self._full_tile(level, index, verify=self.verify_reads)
        if index == full and level < len(self._edges) and self._edges[level]:
            return self._edges[level]
        raise IndexError(f"tile {level}/{index} is not in a tree of size {self._size}")

    def _full_tile(self, level: int, index: int, *, verify: bool) -> bytes:
        key = (level, index)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        rel = tile_path(level, index)
        data = self.store.read_or_none(self.prefix + rel)
        if data is None:
            raise CorruptTileError(f"tile {rel} is missing", tile=rel)
        if len(data) != TILE_BYTES:
            raise CorruptTileError(f"tile {rel} is {len(data)} bytes, want {TILE_BYTES}", tile=rel)
        if verify:
            parent = self.hash_at(TILE_HEIGHT * (level + 1), index)
            if tile_root(data) != parent:
                raise CorruptTileError(f"tile {rel} does not hash to its parent at level {level + 1}", tile=rel)
        self._cache[key] = data
        if len(self._cache) > self._cache_tiles:
            self._cache.popitem(last=False)
        return data

    # ------------------------------------------------------------------ loading

    def _read_state(self) -> tuple[_State, str | None, bytes] | None:
        """The committed state, the version it was read at and its bytes; None if there is
        no ``tree-state``."""
        key = self.prefix + _STATE
        # The version is taken before the bytes: a replacement in between makes this
        # writer's next compare-and-swap fail, never succeed on a state it did not read.
        info = self.store.stat(key)
        data = self.store.read_or_none(key)
        if data is None:
            return None
        return _State.decode(data, self.store.where(key)), None if info is None else info.version, data

    def _committed(self) -> _State:
        read = self._read_state()
        if read is None:
            raise TileStoreError(f"no tile store at {self.where} (no {_STATE})")
        return read[0]

    def _load(self, attempts: int = 5) -> None:
        for attempt in range(attempts):
            state = self._committed()
            try:
                edges = self._read_edges(state.size)
            except CorruptTileError:
                # A writer may have committed and removed the partial tiles we were about
                # to read: re-read the state and try again before calling it corruption.
                if attempt + 1 < attempts and self._committed() != state:
                    continue
                raise
            self._cache.clear()
            self._size, self._root, self._prev, self._edges = state.size, state.root, state.prev, edges
            self._check_root()
            return

    def _read_edges(self, size: int) -> list[bytes]:
        levels = 0
        while size >> (TILE_HEIGHT * levels):
            levels += 1
        edges = [b""] * levels
        for level, index, width in _edge_widths(size):
            rel = tile_path(level, index, width)
            data = self.store.read_or_none(self.prefix + rel)
            if data is None:
                raise CorruptTileError(f"partial tile {rel} is missing", tile=rel)
            if len(data) != width * HASH_SIZE:
                raise CorruptTileError(f"partial tile {rel} is {len(data)} bytes, want {width * HASH_SIZE}", tile=rel)
            edges[level] = data
        return edges

    def _check_root(self) -> None:
        got = root_at(self._size, self.hash_at)
        if got != self._root:
            raise CorruptTileError(
                f"tiles give root {got.hex()} at size {self._size}, the committed root is {self._root.hex()}"
            )

    # ------------------------------------------------------------------ writing

    def append_leaf_hashes(
        self, hashes: Sequence[bytes] | bytes | bytearray | memoryview, *, start: int | None = None
    ) -> int:
        """Append leaf hashes durably; return the new size.

        ``hashes`` is a sequence of 32-byte leaf hashes or the same packed into one byte
        string. With ``start`` (the index the first hash is meant to have), hashes already
        in the tree are compared with the stored ones and skipped, so a retried append is
        idempotent; a different hash, or a ``start`` beyond the size, raises
        :class:`AppendOnlyError`. Returns after the new state is fsynced."""
        self._require_writer()
        if isinstance(hashes, (bytes, bytearray, memoryview)):
            packed = bytes(hashes)
            if len(packed) % HASH_SIZE:
                raise ValueError("packed leaf hashes must be a multiple of 32 bytes")
        else:
            packed = pack_hashes(hashes, "leaf hash")
        if start is not None:
            if isinstance(start, bool) or not isinstance(start, int) or start < 0:
                raise ValueError(f"bad start {start!r}")
            if start > self._size:
                raise AppendOnlyError(f"append at {start} would leave a gap after leaf {self._size - 1}")
            overlap = min(self._size - start, len(packed) // HASH_SIZE)
            if overlap:
                stored = self.leaf_hashes(start, start + overlap)
                given = packed[: overlap * HASH_SIZE]
                if stored != given:
                    first = next(
                        i for i in range(overlap)
                        if stored[i * HASH_SIZE : (i + 1) * HASH_SIZE] != given[i * HASH_SIZE : (i + 1) * HASH_SIZE]
                    )
                    raise AppendOnlyError(f"leaf {start + first} is already in the tree with a different hash")
                packed = packed[overlap * HASH_SIZE :]
        if not packed:
            return self._size
        self._append(packed)
        return self._size

    def _require_writer(self) -> None:
        if self.readonly:
            raise TileStoreError("store opened read-only")
        if not self._open:
            raise TileStoreError("store is closed")
        if self._broken:
            raise TileStoreError("an earlier append failed and could not be rolled back; reopen the store")

    def _append(self, packed: bytes) -> None:
        old_size, old_edges = self._size, self._edges
        new_size = old_size + len(packed) // HASH_SIZE
        old_state = _State(old_size, self._root, self._prev, None)
        intent = _State(old_size, self._root, self._prev, new_size)
        ours = {old_state.encode(), intent.encode()}  # what tree-state may hold if this append fails
        try:
            self._write_state(intent)
            size, edges = old_size, old_edges
            for pos in range(0, len(packed), _CHUNK_LEAVES * HASH_SIZE):
                chunk = packed[pos : pos + _CHUNK_LEAVES * HASH_SIZE]
                size, edges, writes = self._grow(size, edges, chunk)
                self._write_files(writes)
            # Partial tiles only for the final size (a new key whenever the contents
            # changed), never for the chunk boundaries in between.
            old_partials = {tile_path(*e) for e in _edge_widths(old_size)}
            self._write_files(
                [
                    (tile_path(level, index, width), edges[level])
                    for level, index, width in _edge_widths(new_size)
                    if tile_path(level, index, width) not in old_partials
                ]
            )
            self._size, self._edges = new_size, edges
            new_root = root_at(new_size, self.hash_at)
            commit = _State(new_size, new_root, old_size, None)
            ours.add(commit.encode())
            self._write_state(commit)
        except BaseException:
            # Put the store and this object back to whatever is committed (the old state,
            # or the new one if the commit was written but not acknowledged); if even that
            # fails, or another writer changed tree-state, refuse further appends until the
            # store is reopened.
            self._size, self._edges = old_size, old_edges
            self._cache.clear()
            if not self._broken:
                try:
                    self._recover(expect=ours)
                    self._load()
                except BaseException:
                    self._broken = True
            raise
        self._root, self._prev = new_root, old_size
        try:
            self._drop_stale_partials(old_size, new_size)
        except StoreError:
            pass  # committed; no reader uses a stale partial tile, and the next open removes it

    @staticmethod
    def _grow(size: int, edges: list[bytes], leaves: bytes) -> tuple[int, list[bytes], list[tuple[str, bytes]]]:
        """New edges and the full tiles to write when ``leaves`` are appended."""
        writes: list[tuple[str, bytes]] = []
        new_edges: list[bytes] = []
        carry = leaves
        level = 0
        while carry or level < len(edges):
            edge = edges[level] if level < len(edges) else b""
            if not carry:
                new_edges.append(edge)
                level += 1
                continue
            buf = edge + carry
            first = (size >> (TILE_HEIGHT * level)) // TILE_WIDTH
            nfull = len(buf) // TILE_BYTES
            for t in range(nfull):
                writes.append((tile_path(level, first + t), buf[t * TILE_BYTES : (t + 1) * TILE_BYTES]))
            new_edges.append(buf[nfull * TILE_BYTES :])
            carry = _tile_roots(buf[: nfull * TILE_BYTES]) if nfull else b""
            level += 1
        return size + len(leaves) // HASH_SIZE, new_edges, writes

    # ------------------------------------------------------------------ objects

    def _lock(self) -> None:
        """The writer's exclusive flock, when the tree is in a local directory. On object
        storage the ledger's writer lease keeps other writers out, and the compare-and-swap
        on ``tree-state`` stops any that gets past it from committing."""
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise StoreLockedError(f"{self.where} is open for writing elsewhere") from None
        self._lock_fd = fd

    def _write_files(self, writes: list[tuple[str, bytes]]) -> None:
        """Write tiles. Each write waits on an fsync or a round trip to the object store,
        not on the CPU, so a few threads overlap the waits."""
        if len(writes) > 8:
            with ThreadPoolExecutor(max_workers=_WRITER_THREADS) as pool:
                for _ in pool.map(lambda w: self._write_file(*w), writes):
                    pass
        else:
            for rel, data in writes:
                self._write_file(rel, data)

    def _write_file(self, rel: str, data: bytes) -> StoredObject | None:
        """Write one object of the tree: ``tree-state`` by compare-and-swap, a tile once."""
        key = self.prefix + rel
        if rel == _STATE:
            try:
                return self.store.replace_if_unchanged(key, data, self._state_version, durable=self.durable)
            except VersionConflict as exc:
                self._broken = True  # another writer's state is not this one's to repair
                raise StoreLockedError(
                    f"{self.store.where(key)} was changed by another writer since this one read it; "
                    "nothing was committed here (reopen the store to continue from the other writer's state)"
                ) from exc
        try:
            return self.store.put_if_absent(key, data)
        except ObjectExists:
            # Recovery removed what an interrupted append left, so a tile here was written
            # by this tree (an append repeated after a crash): the same bytes are a no-op,
            # anything else would rewrite history.
            if self.store.read_or_none(key) == data:
                return None
            raise TileConflictError(f"{rel} already exists with different hashes; refusing to overwrite", tile=rel) from None

    def _write_state(self, state: _State) -> None:
        written = self._write_file(_STATE, state.encode())
        self._state_version = written.version  # type: ignore[union-attr]  # a state write returns its object

    def _remove(self, rel: str) -> None:
        self.store.delete(self.prefix + rel)
        if self.directory is not None and ".p/" in rel:
            # A directory store keeps the emptied ``<N>.p/`` folder: one per 256 leaves.
            try:
                (self.directory / rel).parent.rmdir()
            except OSError:
                pass  # other widths still there

    def _drop_stale_partials(self, old_size: int, new_size: int) -> None:
        keep = {tile_path(*e) for e in _edge_widths(new_size)}
        for e in _edge_widths(old_size):
            rel = tile_path(*e)
            if rel not in keep:
                self._remove(rel)

    def _recover(self, expect: set[bytes] | None = None) -> None:
        """Bring the store back to exactly the committed state after a crash. With
        `expect` (after a failed append), ``tree-state`` must hold one of those states:
        anything else was written by another writer, and is left alone."""
        if self.directory is not None:
            for leftover in self.store.list(self.prefix + ".tmp/"):
                self.store.delete(leftover.key)  # temporaries of a directory written before ledger.store
        read = self._read_state()
        if expect is not None and (read is None or read[2] not in expect):
            self._broken = True
            raise StoreLockedError(f"{self.store.where(self.prefix + _STATE)} was changed by another writer")
        if read is None:
            if self.store.list(self.prefix + "tile/"):
                raise CorruptTileError(f"{self.where} holds tiles but no {_STATE}: refusing to start a new tree over them")
            self._state_version = None
            self._write_state(_State(0, EMPTY_ROOT, 0, None))
            return
        state, self._state_version, _ = read
        if state.pending is not None:
            # Take the state back first, by compare-and-swap, and only then remove what the
            # pending append wrote: on object storage that append may still be running in
            # another writer, and until this swap wins it could yet commit those tiles.
            # Once it wins, that writer's commit fails. A crash in between leaves tiles
            # beyond the committed size, which nothing reads and the next append of the
            # same leaves rewrites with the same bytes.
            pending = state.pending
            state = _State(state.size, state.root, state.prev, None)
            self._write_state(state)
            keep = {tile_path(*e) for e in _edge_widths(state.size)}
            for rel in self._files_between(state.size, pending):
                if rel not in keep:
                    self._remove(rel)
        self._drop_stale_partials(state.prev, state.size)

    @staticmethod
    def _files_between(old: int, new: int) -> list[str]:
        """Every tile file an append from ``old`` to ``new`` leaves may have written."""
        out = [tile_path(*e) for e in _edge_widths(new)]
        level = 0
        while new >> (TILE_HEIGHT * (level + 1)):
            lo = old >> (TILE_HEIGHT * (level + 1))
            hi = new >> (TILE_HEIGHT * (level + 1))
            out.extend(tile_path(level, n) for n in range(lo, hi))
            level += 1
        # Partial tiles of intermediate chunk sizes are never written: an append writes
        # at most one partial tile per level, for its final size (see _append).
        return out
