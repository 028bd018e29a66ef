"""TileStore: C2SP tlog-tiles layout, roots and proofs from stored tiles, append-only rules,
crash safety (real crashes, by forking a child that dies mid-append) and corruption."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from ledger.store import LocalStore, Store
from ledger.tiles import (
    TILE_BYTES,
    AppendOnlyError,
    CorruptTileError,
    StoreLockedError,
    TileConflictError,
    TileStore,
    TileStoreError,
    committed_size,
    stored_leaf_tiles,
    tile_path,
    tile_root,
)


def leaves(n: int, start: int = 0, salt: bytes = b"") -> list[bytes]:
    return [leaf_hash(salt + i.to_bytes(8, "big")) for i in range(start, start + n)]


def stored_files(directory: Path) -> set[str]:
    """The tiles the directory holds as objects (a store's temporaries are not objects)."""
    return {o.key for o in LocalStore(directory).list("tile/")}


def expected_files(size: int) -> set[str]:
    """Exactly the tiles a tree of ``size`` leaves consists of, per c2sp.org/tlog-tiles."""
    out = set()
    level = 0
    while size >> (8 * level):
        count = size >> (8 * level)
        out.update(tile_path(level, n) for n in range(count // 256))
        if count % 256:
            out.add(tile_path(level, count // 256, count % 256))
        level += 1
    return out


# --------------------------------------------------------------------------- layout


def test_tile_paths_follow_the_spec() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(0, 1234067, 8) == "tile/0/x001/x234/067.p/8"
    assert tile_path(2, 0) == "tile/2/000"
    assert tile_path(1, 999) == "tile/1/999"
    assert tile_path(1, 1000) == "tile/1/x001/000"
    assert tile_path(63, 5, 255) == "tile/63/005.p/255"
    for bad in [(64, 0, 256), (-1, 0, 256), (0, -1, 256), (0, 0, 0), (0, 0, 257)]:
        with pytest.raises(ValueError):
            tile_path(*bad)


def test_spec_example_tree_of_70000(tmp_path: Path) -> None:
    """"A tree of size 70,000 will be represented by 273 full level 0 tiles, one partial
    level 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width
    17, and one partial level 2 tile of width 1." (c2sp.org/tlog-tiles)"""
    data = leaves(70000)
    with TileStore(tmp_path, durable=False) as ts:
        ts.append_leaf_hashes(data[:1000])  # leaves a partial tile that must be cleaned up
        ts.append_leaf_hashes(b"".join(data[1000:]))
        files = stored_files(tmp_path)
        assert files == expected_files(70000)
        assert len([f for f in files if f.startswith("tile/0/") and ".p/" not in f]) == 273
        assert "tile/0/273.p/112" in files
        assert "tile/1/000" in files and "tile/1/001.p/17" in files
        assert "tile/2/000.p/1" in files
        # Level-1 hash i is the Merkle tree hash of level-0 tile i; level-2 hash 0 of the
        # first 65536 leaves.
        level1 = (tmp_path / "tile/1/000").read_bytes()
        for i in (0, 1, 100, 255):
            assert level1[32 * i : 32 * i + 32] == root_from_leaf_hashes(data[256 * i : 256 * (i + 1)])
        assert (tmp_path / "tile/2/000.p/1").read_bytes() == root_from_leaf_hashes(data[:65536])
        assert tile_root((tmp_path / "tile/0/005").read_bytes()) == level1[5 * 32 : 6 * 32]
        assert ts.root() == root_from_leaf_hashes(data)
        for m in (1, 255, 256, 257, 65535, 65536, 65537, 69999):
            assert ts.root(m) == root_from_leaf_hashes(data[:m])
        # Served tiles: a partial tile of a width the tree once had is a prefix.
        assert ts.read_tile(0, 3, 232) == b"".join(data[768:1000])
        assert ts.read_tile(0, 273, 112) == b"".join(data[69888:70000])
        with pytest.raises(IndexError):
            ts.read_tile(0, 273, 113)
        with pytest.raises(IndexError):
            ts.read_tile(0, 274, 1)
        ts.verify()


def test_size_256_is_one_full_tile_and_a_level1_partial(tmp_path: Path) -> None:
    with TileStore(tmp_path, durable=False) as ts:
        ts.append_leaf_hashes(leaves(256))
    assert stored_files(tmp_path) == {"tile/0/000", "tile/1/000.p/1"}
    assert len((tmp_path / "tile/0/000").read_bytes()) == TILE_BYTES


def test_empty_store(tmp_path: Path) -> None:
    with TileStore(tmp_path) as ts:
        assert ts.size == 0 and ts.root() == EMPTY_ROOT
        with pytest.raises(IndexError):
            ts.hash_at(0, 0)
        assert ts.append_leaf_hashes([]) == 0
    assert TileStore(tmp_path, readonly=True).root() == EMPTY_ROOT
    with pytest.raises(TileStoreError):
        TileStore(tmp_path / "nothing-here", readonly=True)


# --------------------------------------------------------------------------- roots and proofs


def test_proofs_match_the_in_memory_reference_across_tile_boundaries(tmp_path: Path) -> None:
    data = leaves(66000, salt=b"p")
    ref = MemoryTree(data)
    with TileStore(tmp_path, durable=False) as ts:
        ts.append_leaf_hashes(data)
        root = ts.root()
        assert root == ref.root()
        for index in (0, 1, 255, 256, 257, 4095, 4096, 65535, 65536, 65999):
            for size in (index + 1, 65536, 66000):
                if index >= size:
                    continue
                p = ts.inclusion_proof(index, size)
                assert p == ref.inclusion_proof(index, size)
                verify_inclusion(data[index], index, size, p.hashes, ref.root(size))
        for size1 in (1, 255, 256, 257, 65535, 65536, 65537, 65999, 66000):
            c = ts.consistency_proof(size1)
            assert c == ref.consistency_proof(size1)
            verify_consistency(size1, 66000, c.hashes, ref.root(size1), root)
        for level, index in [(0, 70), (3, 7), (8, 200), (9, 64), (12, 15), (16, 0)]:
            assert ts.hash_at(level, index) == ref.hash_at(level, index)
        with pytest.raises(IndexError):
            ts.hash_at(16, 1)
        with pytest.raises(ValueError):
            ts.root(66001)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=6))
def test_property_roots_equal_reference_at_every_size_and_reopen_is_identical(batches) -> None:
    total = sum(batches)
    data = leaves(total, salt=b"h")
    prefix_roots = []
    ref = MemoryTree()
    for i in range(total + 1):
        prefix_roots.append(ref.root())
        if i < total:
            ref.append(data[i])
    with tempfile.TemporaryDirectory() as d:
        with TileStore(d, durable=False) as ts:
            pos = 0
            for b in batches:
                ts.append_leaf_hashes(data[pos : pos + b])
                pos += b
                assert ts.size == pos
                assert ts.root() == prefix_roots[pos]
            for m in range(total + 1):
                assert ts.root(m) == prefix_roots[m]
            for m in {0, min(1, total), total // 3, total // 2, max(total - 1, 0), total}:
                assert ts.root(m) == root_from_leaf_hashes(data[:m])
            assert stored_files(Path(d)) == expected_files(total)
            state = (ts.size, ts.root(), [ts.inclusion_proof(i) for i in range(0, total, 97)])
        for readonly in (True, False):
            with TileStore(d, readonly=readonly, durable=False) as again:
                assert (again.size, again.root(), [again.inclusion_proof(i) for i in range(0, total, 97)]) == state
                assert again.leaf_hashes(0, total) == b"".join(data)


# --------------------------------------------------------------------------- append-only


def test_append_only_with_start(tmp_path: Path) -> None:
    data = leaves(600)
    with TileStore(tmp_path) as ts:
        assert ts.append_leaf_hashes(data[:300], start=0) == 300
        # A retried batch that overlaps what is stored is idempotent and appends the rest.
        assert ts.append_leaf_hashes(data[250:400], start=250) == 400
        assert ts.append_leaf_hashes(data[0:400], start=0) == 400
        assert ts.root() == root_from_leaf_hashes(data[:400])
        changed = list(data[300:450])
        changed[10] = leaf_hash(b"rewritten history")
        with pytest.raises(AppendOnlyError, match="leaf 310 is already in the tree"):
            ts.append_leaf_hashes(changed, start=300)
        with pytest.raises(AppendOnlyError, match="gap"):
            ts.append_leaf_hashes(data[401:500], start=401)
        assert ts.size == 400 and ts.root() == root_from_leaf_hashes(data[:400])
        with pytest.raises(ValueError):
            ts.append_leaf_hashes([data[0][:31]])
        with pytest.raises(ValueError):
            ts.append_leaf_hashes(b"\x00" * 33)
        assert ts.size == 400


def test_readonly_and_lock(tmp_path: Path) -> None:
    with TileStore(tmp_path) as writer:
        writer.append_leaf_hashes(leaves(10))
        with pytest.raises(StoreLockedError):
            TileStore(tmp_path)
        reader = TileStore(tmp_path, readonly=True)
        with pytest.raises(TileStoreError, match="read-only"):
            reader.append_leaf_hashes(leaves(1))
        writer.append_leaf_hashes(leaves(300, 10))
        assert reader.size == 10  # a snapshot...
        assert reader.root() == root_from_leaf_hashes(leaves(10))
        reader.refresh()  # ...until refreshed
        assert reader.size == 310
    with TileStore(tmp_path) as again:  # lock released on close
        assert again.size == 310
    with pytest.raises(TileStoreError, match="closed"):
        again.append_leaf_hashes(leaves(1))


def test_reader_snapshot_survives_writer_progress(tmp_path: Path) -> None:
    data = leaves(2000)
    with TileStore(tmp_path) as writer:
        writer.append_leaf_hashes(data[:700])
        reader = TileStore(tmp_path, readonly=True)
        writer.append_leaf_hashes(data[700:])
        # The reader's partial tiles were deleted from disk; it kept them in memory and
        # every full tile it may read is immutable.
        assert reader.root() == root_from_leaf_hashes(data[:700])
        p = reader.inclusion_proof(650)
        verify_inclusion(data[650], 650, 700, p.hashes, reader.root())


# --------------------------------------------------------------------------- crash safety


def _crash_child(directory: Path, batch: list[bytes], crash_at: int, torn: bool, durable: bool) -> int:
    """Fork; in the child, append ``batch`` and die (os._exit, no cleanup, like a power cut
    for the purposes of ordering) at the ``crash_at``-th file write or, with
    ``crash_at == -1``, right after the commit, before stale partial tiles are removed."""
    pid = os.fork()
    if pid == 0:  # child
        try:
            calls = [0]
            real_write = TileStore._write_file

            def dying_write(self, rel, data):
                if calls[0] == crash_at:
                    if torn:  # leave half a temporary file behind, where LocalStore writes its own
                        final = self.directory / rel
                        final.parent.mkdir(parents=True, exist_ok=True)
                        (final.parent / f".{final.name}.tmp-torn").write_bytes(data[: len(data) // 2])
                    os._exit(17)
                calls[0] += 1
                return real_write(self, rel, data)

            def dying_remove(self, rel):
                os._exit(17)

            TileStore._write_file = dying_write  # type: ignore[method-assign]
            if crash_at == -1:
                TileStore._remove = dying_remove  # type: ignore[method-assign]
            ts = TileStore(directory, durable=durable)
            ts.append_leaf_hashes(batch)
            os._exit(0)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to simulate a crash")
@pytest.mark.parametrize("old_size,added", [(0, 300), (200, 70), (700, 600), (65500, 100)])
def test_crash_at_every_write_leaves_old_or_new_state(tmp_path: Path, old_size: int, added: int) -> None:
    data = leaves(old_size + added, salt=b"crash")
    base = tmp_path / "base"
    with TileStore(base, durable=False) as ts:
        ts.append_leaf_hashes(data[:old_size])
    old_root = root_from_leaf_hashes(data[:old_size])
    new_root = root_from_leaf_hashes(data)
    # Count the file writes of a successful append of this batch.
    probe = tmp_path / "probe"
    shutil.copytree(base, probe)
    writes = []
    real_write = TileStore._write_file
    try:
        TileStore._write_file = lambda self, rel, d: (writes.append(rel), real_write(self, rel, d))[1]  # type: ignore[method-assign]
        with TileStore(probe, durable=False) as ts:
            ts.append_leaf_hashes(data[old_size:])
    finally:
        TileStore._write_file = real_write  # type: ignore[method-assign]
    assert writes[0] == writes[-1] == "tree-state"
    # Crashing between the commit and the removal of stale partial tiles is only possible
    # when the old size had partial tiles that the new size does not keep.
    stale = {f for f in expected_files(old_size) if ".p/" in f} - expected_files(old_size + added)
    seen = set()
    for crash_at in ([-1] if stale else []) + list(range(len(writes))):
        for torn in (False, True):
            work = tmp_path / f"w{crash_at}{torn}"
            shutil.copytree(base, work)
            code = _crash_child(work, data[old_size:], crash_at, torn, durable=False)
            assert code == 17, f"child did not crash where asked ({code})"
            # Readers see a consistent state even before any recovery runs.
            reader = TileStore(work, readonly=True)
            assert reader.root() in (old_root, new_root)
            with TileStore(work) as ts:  # writer open: recovery
                committed = ts.size
                assert committed in (old_size, old_size + added)
                assert ts.root() == (new_root if committed > old_size else old_root)
                seen.add(committed)
                assert stored_files(work) == expected_files(committed), "leftover files"
                ts.verify()
                # Finish the job: a retry from the original start is idempotent.
                ts.append_leaf_hashes(data[old_size:], start=old_size)
                assert ts.root() == new_root
                assert stored_files(work) == expected_files(old_size + added)
            shutil.rmtree(work)
    assert seen == ({old_size, old_size + added} if stale else {old_size})


# --------------------------------------------------------------------------- corruption


def _store_with(tmp_path: Path, n: int) -> list[bytes]:
    data = leaves(n, salt=b"corrupt")
    with TileStore(tmp_path, durable=False) as ts:
        ts.append_leaf_hashes(data)
    return data


def test_flipped_bit_in_a_full_tile_is_caught_on_read(tmp_path: Path) -> None:
    data = _store_with(tmp_path, 1000)
    tile = tmp_path / "tile/0/001"
    raw = bytearray(tile.read_bytes())
    raw[40] ^= 1
    tile.write_bytes(bytes(raw))
    ts = TileStore(tmp_path, readonly=True)  # the right edge is intact: opens
    verify_inclusion(data[900], 900, 1000, ts.inclusion_proof(900).hashes, ts.root())
    with pytest.raises(CorruptTileError, match="tile/0/001 does not hash to its parent"):
        ts.inclusion_proof(257)
    with pytest.raises(CorruptTileError):
        ts.verify()


def test_swapped_full_tiles_are_caught(tmp_path: Path) -> None:
    _store_with(tmp_path, 1024)
    a, b = tmp_path / "tile/0/000", tmp_path / "tile/0/001"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    with pytest.raises(CorruptTileError):
        TileStore(tmp_path, readonly=True).verify()


@pytest.mark.parametrize(
    "damage",
    ["truncate partial", "delete partial", "delete full", "truncate full", "edit state root", "garble state"],
)
def test_damaged_store_refuses_to_open_or_read(tmp_path: Path, damage: str) -> None:
    _store_with(tmp_path, 700)
    partial = tmp_path / "tile/0/002.p/188"
    full = tmp_path / "tile/0/000"
    state = tmp_path / "tree-state"
    if damage == "truncate partial":
        partial.write_bytes(partial.read_bytes()[:-1])
    elif damage == "delete partial":
        partial.unlink()
    elif damage == "delete full":
        full.unlink()
    elif damage == "truncate full":
        full.write_bytes(full.read_bytes()[:-32])
    elif damage == "edit state root":
        text = state.read_text().splitlines()
        text[2] = "root " + "A" * 43 + "="
        state.write_text("\n".join(text) + "\n")
    else:
        state.write_text("size 700\n")
    with pytest.raises(CorruptTileError):
        ts = TileStore(tmp_path, readonly=True)
        ts.verify()


def test_failed_append_rolls_back_in_process(tmp_path: Path, monkeypatch) -> None:
    data = leaves(900)
    with TileStore(tmp_path, durable=False) as ts:
        ts.append_leaf_hashes(data[:300])
        calls = [0]
        real = TileStore._write_file

        def failing(self, rel, d):
            calls[0] += 1
            if calls[0] == 3:
                raise OSError(28, "No space left on device")
            return real(self, rel, d)

        monkeypatch.setattr(TileStore, "_write_file", failing)
        with pytest.raises(OSError):
            ts.append_leaf_hashes(data[300:])
        monkeypatch.setattr(TileStore, "_write_file", real)
        assert ts.size == 300 and ts.root() == root_from_leaf_hashes(data[:300])
        assert stored_files(tmp_path) == expected_files(300)
        ts.append_leaf_hashes(data[300:])
        assert ts.root() == root_from_leaf_hashes(data)


def test_deleted_state_does_not_restart_the_tree(tmp_path: Path) -> None:
    _store_with(tmp_path, 300)
    (tmp_path / "tree-state").unlink()
    with pytest.raises(CorruptTileError, match="holds tiles but no tree-state"):
        TileStore(tmp_path)


def test_existing_tile_with_other_contents_is_never_overwritten(tmp_path: Path) -> None:
    """A stray file where the next append would put a tile (not one an interrupted append
    left: those are removed on open) is refused, not replaced."""
    data = leaves(600)
    with TileStore(tmp_path, durable=False) as ts:
        ts.append_leaf_hashes(data[:100])
        stray = tmp_path / "tile/0/000"
        stray.write_bytes(b"\x00" * TILE_BYTES)
        with pytest.raises(AppendOnlyError, match="tile/0/000 already exists"):
            ts.append_leaf_hashes(data[100:300])
        assert ts.size == 100
        stray.write_bytes(b"".join(data[:256]))  # the right contents are accepted as-is
        ts.append_leaf_hashes(data[100:300])
        assert ts.root() == root_from_leaf_hashes(data[:300])


# --------------------------------------------------------------------------- on a Store, under a prefix


class _Unlocked(Store):
    """A directory seen as object storage is: no local root, so a TileStore on it takes no
    flock and two writers are kept apart by tree-state's compare-and-swap alone."""

    def __init__(self, root: Path) -> None:
        self.inner = LocalStore(root)
        self.url = f"unlocked://{root}"

    def read(self, key):
        return self.inner.read(key)

    def stat(self, key):
        return self.inner.stat(key)

    def list(self, prefix=""):
        return self.inner.list(prefix)

    def put_if_absent(self, key, data, *, retain_until=None):
        return self.inner.put_if_absent(key, data, retain_until=retain_until)

    def replace_if_unchanged(self, key, data, expected, *, durable=True):
        return self.inner.replace_if_unchanged(key, data, expected, durable=durable)

    def delete(self, key):
        self.inner.delete(key)


# Each backend: (the store over a directory, whether TileStore locks it). An object store
# on the suite's S3 server joins here once ledger/object_store.py is in.
_BACKENDS = {"local": (LocalStore, True), "unlocked": (_Unlocked, False)}


@pytest.fixture(params=sorted(_BACKENDS))
def backend(request, tmp_path: Path):
    make, locks = _BACKENDS[request.param]
    return make(tmp_path / "store"), tmp_path / "store", locks


def tree_keys(store: Store) -> set[str]:
    return {o.key.removeprefix("tree/") for o in store.list("tree/tile/")}


def test_tree_under_a_prefix_of_a_store(backend) -> None:
    store, root, locks = backend
    data = leaves(70000, salt=b"prefix")
    with TileStore(store, "tree/", durable=False) as ts:
        assert ts.where.endswith("tree")
        ts.append_leaf_hashes(data[:1000])
        ts.append_leaf_hashes(b"".join(data[1000:]), start=1000)
        assert tree_keys(store) == expected_files(70000)
        assert ts.root() == root_from_leaf_hashes(data)
        if locks:
            with pytest.raises(StoreLockedError):
                TileStore(store, "tree/")
    # Every object is under the prefix; only a locked store has a lock file.
    assert {o.key.split("/")[0] for o in store.list()} == {"tree"}
    assert (root / "tree" / "lock").exists() == locks
    assert not (root / "tile").exists() and not (root / "tree" / ".tmp").exists()
    assert committed_size(store, "tree/") == committed_size(store, "tree") == 70000
    with pytest.raises(TileStoreError, match="no tile store"):
        committed_size(store, "elsewhere/")
    tiles = stored_leaf_tiles(store, 70000, 69800, 70000, prefix="tree/")
    assert [(rel, first) for rel, first, _ in tiles] == [("tile/0/272", 69632), ("tile/0/273.p/112", 69888)]
    assert tiles[1][2] == b"".join(data[69888:])
    with TileStore(store, "tree/", readonly=True) as reader:
        assert reader.size == 70000
        p = reader.inclusion_proof(65600)
        verify_inclusion(data[65600], 65600, 70000, p.hashes, reader.root())
        reader.verify()


def test_second_writer_loses_the_compare_and_swap_and_commits_nothing() -> None:
    with tempfile.TemporaryDirectory() as d:
        store = _Unlocked(Path(d))
        first, second = TileStore(store, "tree/"), TileStore(store, "tree/")  # both read the empty tree
        data = leaves(300, salt=b"first")
        first.append_leaf_hashes(data)
        with pytest.raises(StoreLockedError, match="tree-state was changed by another writer"):
            second.append_leaf_hashes(leaves(50, salt=b"second"))
        with pytest.raises(TileStoreError, match="reopen"):
            second.append_leaf_hashes(leaves(50, salt=b"second"))
        first.append_leaf_hashes(leaves(10, 300, salt=b"first"))  # the winner is not disturbed
        with TileStore(store, "tree/", readonly=True) as reader:
            assert reader.size == 310
            assert reader.root() == root_from_leaf_hashes(data + leaves(10, 300, salt=b"first"))
            reader.verify()


def test_writer_that_loses_at_the_commit_leaves_the_winners_tree_alone(monkeypatch) -> None:
    """The second writer opens while the first is between its intent record and its commit
    (as after a crash): it recovers, appends, commits. The first's commit then fails."""
    with tempfile.TemporaryDirectory() as d:
        store = _Unlocked(Path(d))
        TileStore(store, "tree/").append_leaf_hashes(leaves(100))
        slow = TileStore(store, "tree/")
        winner_data = leaves(600, 100, salt=b"winner")
        real = TileStore._write_file

        def interleaved(self, rel, data):
            if self is slow and rel != "tree-state" and not interleaved.done:
                interleaved.done = True
                with TileStore(store, "tree/") as winner:
                    winner.append_leaf_hashes(winner_data, start=100)
            return real(self, rel, data)

        interleaved.done = False
        monkeypatch.setattr(TileStore, "_write_file", interleaved)
        with pytest.raises(StoreLockedError, match="changed by another writer"):
            slow.append_leaf_hashes(leaves(20, 100, salt=b"slow"))
        monkeypatch.setattr(TileStore, "_write_file", real)
        # The loser's one tile stays, outside the tree: the loser touches nothing after
        # losing, and no reader looks at a partial tile the state does not name.
        assert tree_keys(store) == expected_files(700) | {"tile/0/000.p/120"}
        with TileStore(store, "tree/", readonly=True) as reader:
            assert reader.size == 700
            assert reader.root() == root_from_leaf_hashes(leaves(100) + winner_data)
            reader.verify()
        with pytest.raises(TileStoreError):
            slow.append_leaf_hashes(leaves(20, 100, salt=b"slow"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to simulate a crash")
def test_crash_between_tiles_and_commit_then_the_same_append_again(backend) -> None:
    store, root, _ = backend
    data = leaves(1300, salt=b"again")
    with TileStore(store, "tree/", durable=False) as ts:
        ts.append_leaf_hashes(data[:300])
    pid = os.fork()
    if pid == 0:  # child: every tile written, then death at the commit
        try:
            ts = TileStore(store, "tree/", durable=False)
            real = TileStore._write_file

            def dying(self, rel, d):
                if rel == "tree-state" and b"pending -" in d:
                    os._exit(17)
                return real(self, rel, d)

            TileStore._write_file = dying  # type: ignore[method-assign]
            ts.append_leaf_hashes(data[300:])
            os._exit(0)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 17
    written = {key: store.read("tree/" + key) for key in tree_keys(store) - expected_files(300)}
    assert set(written) == expected_files(1300) - expected_files(300)
    assert TileStore(store, "tree/", readonly=True).root() == root_from_leaf_hashes(data[:300])
    with TileStore(store, "tree/", durable=False) as ts:  # recovery removes the uncommitted tiles
        assert ts.size == 300 and tree_keys(store) == expected_files(300)
        # Tiles already in place with the bytes the append writes (as if that clean-up had
        # not run) count as written: the repeated append is idempotent.
        for key, value in written.items():
            store.put_if_absent("tree/" + key, value)
        assert ts.append_leaf_hashes(data[300:], start=300) == 1300
        assert ts.root() == root_from_leaf_hashes(data)
        assert tree_keys(store) == expected_files(1300)
        ts.verify()


def test_tampered_or_conflicting_tiles_on_a_store(backend) -> None:
    store, root, _ = backend
    data = leaves(1000, salt=b"tamper")
    with TileStore(store, "tree/", durable=False) as ts:
        ts.append_leaf_hashes(data[:600])
        # A different object at a key the next append writes is refused, not overwritten.
        store.put_if_absent("tree/tile/0/002", b"\x01" * TILE_BYTES)
        with pytest.raises(TileConflictError, match="tile/0/002 already exists") as info:
            ts.append_leaf_hashes(data[600:])
        assert isinstance(info.value, CorruptTileError) and isinstance(info.value, AppendOnlyError)
        assert info.value.tile == "tile/0/002"
        assert ts.size == 600 and tree_keys(store) == expected_files(600)  # rolled back
        ts.append_leaf_hashes(data[600:])
    tile = root / "tree/tile/0/001"
    raw = bytearray(tile.read_bytes())
    raw[40] ^= 1
    tile.write_bytes(bytes(raw))
    reader = TileStore(store, "tree/", readonly=True)
    verify_inclusion(data[900], 900, 1000, reader.inclusion_proof(900).hashes, reader.root())
    with pytest.raises(CorruptTileError, match="tile/0/001 does not hash to its parent") as info:
        reader.inclusion_proof(257)
    assert info.value.tile == "tile/0/001"
    with pytest.raises(CorruptTileError):
        reader.verify()
