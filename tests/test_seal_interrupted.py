"""A seal that stops after its commit point (the manifest record) because another writer
took the Merkle tree from under it: the entries stay sealed, the tree is never left
behind the manifest for good, and the ledger verifies at every step.

On object storage there is no lock around the tree: a second writer opening it rolls back
an append it finds pending, and the first one then loses the compare-and-swap on
``tree/tree-state``. The store below makes that happen at a chosen moment, with a real
second TileStore on the same bucket prefix."""

import uuid

import pytest

from ledger import Keyring, Ledger, WriterConflict, verify_ledger
from ledger.object_store import ObjectStore
from ledger.public import verify_public
from ledger.storage import Layout, read_head, read_manifest
from ledger.store import open_store
from ledger.tiles import TileStore, committed_size
from ledger.transfer import mirror

from .helpers import log_event

SIGNED = Keyring.generate("test-k1")  # with a signer: every completed seal signs a checkpoint


class TreeTakenMidAppend(ObjectStore):
    """An object store on which, `times` times, another writer opens the tree just as this
    one writes its first new tile (so this writer's pending append is rolled back)."""

    def __init__(self, url: str, times: int):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        super().__init__(bucket, prefix)
        self.url_for_others = url
        self.times = times
        self.interfered = 0

    def put_if_absent(self, key, data, **options):
        if key.startswith("tree/tile/") and self.interfered < self.times:
            self.interfered += 1
            TileStore(open_store(self.url_for_others), "tree/").close()  # the other writer's open
        return super().put_if_absent(key, data, **options)


@pytest.fixture
def url(s3_server):
    return f"s3://{s3_server.new_bucket()}/ledgers/{uuid.uuid4().hex[:8]}"


def tree_and_manifest(url, work):
    store = open_store(url)
    records, problems = read_manifest(Layout(store, work))
    assert not problems
    return committed_size(store, "tree/"), records[-1].last_seq + 1


def verifies(url, into):
    """Both verifiers pass on a mirror of the store as it is now."""
    view = mirror(open_store(url), into)
    report = verify_ledger(view.path, SIGNED)
    assert report.ok, report.to_text()
    public = verify_public(view.path, SIGNED.verifiers())
    assert public.ok, public.to_text()
    return report


def test_a_seal_that_loses_the_tree_once_tries_again_and_completes(url, tmp_path):
    work = tmp_path / "work"
    Ledger.create(url, SIGNED, work_dir=work, actor="test").close()
    store = TreeTakenMidAppend(url, times=1)
    with Ledger.open(store, SIGNED, work_dir=work, actor="test") as ledger:
        seqs = [log_event(ledger, i) for i in range(5)]
        record = ledger.seal()
    assert store.interfered == 1, "the other writer opened the tree mid-append"
    assert record is not None and record.last_seq == seqs[-1]
    tree, sealed = tree_and_manifest(url, work)
    assert tree == sealed == seqs[-1] + 1
    verifies(url, tmp_path / "mirror")


def test_a_seal_that_keeps_losing_the_tree_stops_sealed_and_the_next_acquire_finishes_it(url, tmp_path):
    work = tmp_path / "work"
    Ledger.create(url, SIGNED, work_dir=work, actor="test").close()
    store = TreeTakenMidAppend(url, times=10**6)
    ledger = Ledger.open(store, SIGNED, work_dir=work, actor="test")
    try:
        seqs = [log_event(ledger, i) for i in range(5)]
        with pytest.raises(WriterConflict, match="sealed"):
            ledger.seal()
        tree, sealed = tree_and_manifest(url, work)
        assert sealed == seqs[-1] + 1, "the commit point was passed: the entries are sealed"
        assert tree < sealed, "the tree is behind the manifest while the other writer keeps taking it"
        head = read_head(Layout(open_store(url), work))
        assert head.sealed_seq < seqs[-1], "HEAD was not advanced past the unfinished seal"
        verifies(url, tmp_path / "mirror-behind")  # a tree behind the data is not a break

        store.times = 0  # the other writer goes away
        more = log_event(ledger, 99)  # this writer's next acquire finishes the seal first
        assert more == seqs[-1] + 1, "no sequence number was given twice or skipped"
        tree, sealed = tree_and_manifest(url, work)
        assert tree == sealed == seqs[-1] + 1, "recovery brought the tree up to the manifest"
        head = read_head(Layout(open_store(url), work))
        assert head.sealed_seq == seqs[-1] and head.seq == more
    finally:
        ledger.close()
    tree, sealed = tree_and_manifest(url, work)
    assert tree == sealed == more + 1
    report = verifies(url, tmp_path / "mirror")
    assert report.entries == more + 1
