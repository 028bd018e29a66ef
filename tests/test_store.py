"""The storage port's conformance suite: every backend (`LocalStore` in a temporary directory,
`ObjectStore` on the loopback moto server, a fresh bucket and prefix per test) keeps the same
promises. Then what only the object store has: Object Lock retention, and faults injected by
a proxy in front of the server (tests/faulty_proxy.py)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger.object_store import ObjectStore
from ledger.store import (
    LocalStore,
    ObjectExists,
    ObjectMissing,
    RetentionRefused,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    open_store,
)
from tests.faulty_proxy import KINDS, Faults, FaultyProxy

BAD_KEYS = ["", "/abs", "a//b", "a/./b", "a/../b", "..", "a/", "a\\b", "a\x00b"]
JOIN = 60  # seconds: a bound on every thread join


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    server = request.getfixturevalue("s3_server")
    return open_store(f"s3://{server.new_bucket()}/p-{uuid.uuid4().hex[:8]}/ledger")


@pytest.fixture
def s3_store(s3_server):
    return open_store(f"s3://{s3_server.new_bucket()}/p-{uuid.uuid4().hex[:8]}")


def later(days: int = 1) -> dt.datetime:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)).replace(microsecond=0)


def race(count: int, work) -> list:
    """Run work(i) in `count` threads released together; each result or the exception raised."""
    barrier = threading.Barrier(count, timeout=JOIN)

    def one(i):
        barrier.wait()
        try:
            return work(i)
        except Exception as e:  # noqa: BLE001 - the outcome is what the test inspects
            return e

    with ThreadPoolExecutor(count) as pool:
        return [f.result(timeout=JOIN) for f in [pool.submit(one, i) for i in range(count)]]


# -- conformance: both backends ---------------------------------------------------------


def test_missing_object(store):
    with pytest.raises(ObjectMissing) as e:
        store.read("tables/none.parquet")
    assert isinstance(e.value, FileNotFoundError)
    assert "tables/none.parquet" in str(e.value)
    assert store.stat("tables/none.parquet") is None
    assert not store.exists("tables/none.parquet")
    assert store.read_or_none("tables/none.parquet") is None
    store.delete("tables/none.parquet")  # absent is fine
    assert store.list("tables/") == []


def test_put_read_stat(store):
    data = bytes(range(256)) * 40
    put = store.put_if_absent("tables/op/000-099.parquet", data)
    assert (put.key, put.size) == ("tables/op/000-099.parquet", len(data))
    assert store.read("tables/op/000-099.parquet") == data
    st = store.stat("tables/op/000-099.parquet")
    assert (st.size, st.version, st.retain_until) == (len(data), put.version, None)
    assert store.put_if_absent("empty", b"").size == 0
    assert store.read("empty") == b""


def test_put_if_absent_refuses_a_taken_key(store):
    store.put_if_absent("HEAD", b"first")
    with pytest.raises(ObjectExists, match="HEAD"):
        store.put_if_absent("HEAD", b"second")
    assert store.read("HEAD") == b"first"


def test_list_prefix_and_order(store):
    keys = ["b", "a/b2", "a/b/c", "ab", "a/b/a", "caf\u00e9/x", "a/a", "z/y/x/w"]
    for k in keys:
        store.put_if_absent(k, k.encode())
    listed = store.list()
    assert [o.key for o in listed] == sorted(keys)
    assert all(o.size == len(o.key.encode()) for o in listed)
    assert [o.key for o in store.list("a/")] == ["a/a", "a/b/a", "a/b/c", "a/b2"]
    assert [o.key for o in store.list("a/b")] == ["a/b/a", "a/b/c", "a/b2"]
    assert [o.key for o in store.list("a/b/")] == ["a/b/a", "a/b/c"]
    assert store.list("nothing/") == []
    assert {o.key: o.version for o in listed}["b"] == store.stat("b").version


def test_list_paginates_past_1000_keys(store):
    count = 1005
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.put_if_absent(f"tiles/{i:05d}", b"x" * (i % 7)), range(count), timeout=600))
    listed = store.list("tiles/")
    assert [o.key for o in listed] == [f"tiles/{i:05d}" for i in range(count)]
    assert [o.size for o in listed] == [i % 7 for i in range(count)]


def test_put_if_absent_exactly_one_winner(store):
    for round_ in range(4):
        key = f"checkpoints/{round_}"
        outcomes = race(8, lambda i: store.put_if_absent(key, f"writer {i} ".encode() * 100))
        winners = [i for i, o in enumerate(outcomes) if not isinstance(o, Exception)]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, ObjectExists) for i, o in enumerate(outcomes) if i not in winners), outcomes
        assert store.read(key) == f"writer {winners[0]} ".encode() * 100


def test_replace_if_unchanged_compare_and_swap(store):
    first = store.replace_if_unchanged("HEAD", b"seq 1", None)  # no object expected: creates
    with pytest.raises(VersionConflict):
        store.replace_if_unchanged("HEAD", b"seq 1 again", None)
    second = store.replace_if_unchanged("HEAD", b"seq 2", first.version)
    assert second.version != first.version
    assert store.read("HEAD") == b"seq 2"
    assert store.stat("HEAD").version == second.version
    with pytest.raises(VersionConflict, match="another writer"):
        store.replace_if_unchanged("HEAD", b"stale", first.version)
    assert store.read("HEAD") == b"seq 2"
    with pytest.raises(VersionConflict):
        store.replace_if_unchanged("missing", b"x", second.version)
    assert store.stat("missing") is None
    store.replace_if_unchanged("HEAD", b"seq 3", second.version, durable=False)
    assert store.read("HEAD") == b"seq 3"


def test_replace_if_unchanged_exactly_one_winner(store):
    version = store.put_if_absent("HEAD", b"seq 0").version
    for round_ in range(3):
        outcomes = race(8, lambda i: store.replace_if_unchanged("HEAD", f"seq {round_ + 1} by {i}".encode(), version))
        winners = [o for o in outcomes if not isinstance(o, Exception)]
        assert len(winners) == 1, outcomes
        assert sum(isinstance(o, VersionConflict) for o in outcomes) == 7, outcomes
        assert store.stat("HEAD").version == winners[0].version
        version = winners[0].version
    assert store.read("HEAD").startswith(b"seq 3 by ")


def test_delete(store):
    store.put_if_absent("tiles/partial", b"old")
    store.delete("tiles/partial")
    assert store.stat("tiles/partial") is None
    assert store.list("tiles/") == []
    store.put_if_absent("tiles/partial", b"new")  # the key is free again
    v = store.stat("tiles/partial").version
    store.replace_if_unchanged("tiles/partial", b"newer", v)
    store.delete("tiles/partial")  # every version goes: the older one must not come back
    assert store.stat("tiles/partial") is None
    assert store.read_or_none("tiles/partial") is None


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused(store, key):
    calls = [lambda: store.read(key), lambda: store.stat(key), lambda: store.put_if_absent(key, b"x"),
             lambda: store.replace_if_unchanged(key, b"x", None), lambda: store.delete(key)]
    for call in calls:
        with pytest.raises(StoreError, match="not a valid object key") as e:
            call()
        assert e.type is StoreError
    assert store.list() == []


# -- retention ----------------------------------------------------------------------------


def test_retained_object_cannot_be_deleted_or_overwritten(s3_store, s3_server):
    until = later()
    put = s3_store.put_if_absent("segments/000001.parquet", b"evidence", retain_until=until)
    assert put.retain_until == until
    st = s3_store.stat("segments/000001.parquet")
    assert st.retain_until == until and st.version == put.version
    with pytest.raises(RetentionRefused, match="retention until"):
        s3_store.delete("segments/000001.parquet")
    with pytest.raises(RetentionRefused):
        s3_store.replace_if_unchanged("segments/000001.parquet", b"forged", put.version)
    with pytest.raises(ObjectExists):
        s3_store.put_if_absent("segments/000001.parquet", b"forged")
    assert s3_store.read("segments/000001.parquet") == b"evidence"
    assert [o.key for o in s3_store.list()] == ["segments/000001.parquet"]
    assert isinstance(RetentionRefused("x"), StoreError)


def test_swapping_a_version_the_store_saw_unretained_is_one_put(s3_store):
    """A writer's commit is one conditional PUT: no HEAD first for a version the store wrote
    itself or stat'ed without retention; a version it has not seen, or one it retained, is
    checked first, so retention is still refused."""
    calls: list[str] = []
    s3_store._client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    first = s3_store.replace_if_unchanged("HEAD", b"seq 1", None)
    calls.clear()
    second = s3_store.replace_if_unchanged("HEAD", b"seq 2", first.version)
    assert calls == ["PutObject"]
    with pytest.raises(VersionConflict):
        s3_store.replace_if_unchanged("HEAD", b"stale", first.version)
    other = open_store(s3_store.url)  # another process: it has seen no version
    other_calls: list[str] = []
    other._client.meta.events.register("before-call.s3", lambda model, **_: other_calls.append(model.name))
    third = other.replace_if_unchanged("HEAD", b"seq 3", second.version)
    assert other_calls == ["HeadObject", "PutObject"]
    assert other.stat("HEAD").version == third.version
    other_calls.clear()
    other.replace_if_unchanged("HEAD", b"seq 4", other.stat("HEAD").version)
    assert other_calls == ["HeadObject", "PutObject"]  # the stat's HEAD, then the PUT alone
    retained = s3_store.put_if_absent("checkpoints/1", b"signed", retain_until=later())
    with pytest.raises(RetentionRefused):
        s3_store.replace_if_unchanged("checkpoints/1", b"forged", retained.version)
    plain = s3_store.put_if_absent("tables/1", b"rows")
    s3_store.retain("tables/1", later())
    with pytest.raises(RetentionRefused):
        s3_store.replace_if_unchanged("tables/1", b"forged", plain.version)
    assert s3_store.read("checkpoints/1") == b"signed" and s3_store.read("tables/1") == b"rows"


def test_the_server_itself_refuses_to_remove_retained_bytes(s3_store, s3_server):
    """Behind the store's own check: S3 (here moto) refuses to delete a retained version,
    and a PUT that goes around the store stacks a new version, leaving the retained one."""
    import botocore.exceptions

    s3_store.put_if_absent("checkpoints/7", b"signed", retain_until=later())
    client, name = s3_server.client(), f"{s3_store.prefix}/checkpoints/7"
    version = client.head_object(Bucket=s3_store.bucket, Key=name)["VersionId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.delete_object(Bucket=s3_store.bucket, Key=name, VersionId=version)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    client.put_object(Bucket=s3_store.bucket, Key=name, Body=b"forged")
    kept = client.get_object(Bucket=s3_store.bucket, Key=name, VersionId=version)["Body"].read()
    assert kept == b"signed"


def test_retention_needs_an_aware_future_date(s3_store):
    with pytest.raises(StoreError, match="time zone"):
        s3_store.put_if_absent("k", b"x", retain_until=dt.datetime(2099, 1, 1))
    with pytest.raises(StoreError, match="not in the future"):
        s3_store.put_if_absent("k", b"x", retain_until=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
    assert s3_store.stat("k") is None


def test_retention_on_a_bucket_without_object_lock_is_refused(s3_server):
    store = open_store(f"s3://{s3_server.new_bucket(object_lock=False)}/p")
    with pytest.raises(StoreError) as e:
        store.put_if_absent("k", b"x", retain_until=later())
    assert not isinstance(e.value, StoreUnavailable)
    assert_no_secret(str(e.value), s3_server)
    assert store.stat("k") is None
    store.put_if_absent("k", b"x")  # an unlocked bucket still holds unretained objects
    store.delete("k")
    assert store.stat("k") is None


def test_local_store_refuses_retention(tmp_path):
    store = LocalStore(tmp_path / "store")
    with pytest.raises(StoreError, match="retention"):
        store.put_if_absent("segments/1", b"x", retain_until=later())
    assert store.stat("segments/1") is None


# -- naming and configuration -------------------------------------------------------------


def test_open_store_from_url(s3_server):
    bucket = s3_server.new_bucket()
    store = open_store(f"s3://{bucket}/a/b/")
    assert isinstance(store, ObjectStore)
    assert (store.bucket, store.prefix, store.url) == (bucket, "a/b", f"s3://{bucket}/a/b")
    assert store.where("HEAD") == f"s3://{bucket}/a/b/HEAD"
    store.put_if_absent("HEAD", b"x")
    assert [o.key for o in open_store(f"s3://{bucket}").list()] == ["a/b/HEAD"]
    assert [o.key for o in open_store(f"s3://{bucket}/a").list()] == ["b/HEAD"]
    for bad in ("s3://", "s3:///prefix"):
        with pytest.raises(StoreError):
            open_store(bad)


# -- faults ------------------------------------------------------------------------------


@pytest.fixture
def faulty(s3_server, monkeypatch):
    """(store through the faulty proxy, the proxy, the same store reached directly)."""
    with FaultyProxy(s3_server.port, stall=2.5) as proxy:
        bucket, prefix = s3_server.new_bucket(), f"p-{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        through = ObjectStore(bucket, prefix, attempts=6, connect_timeout=1.0, read_timeout=1.0, backoff=0.02)
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
        yield through, proxy, ObjectStore(bucket, prefix)


def assert_no_secret(message: str, s3_server) -> None:
    assert s3_server.access_key not in message and s3_server.secret_key not in message


@pytest.mark.parametrize("kind", KINDS)
def test_one_fault_is_retried(faulty, kind):
    store, proxy, direct = faulty
    data = bytes(range(256)) * 512  # 128 KiB: an upload that can be cut in the middle
    proxy.policy = Faults.script([kind], methods=("PUT",))
    put = store.put_if_absent("segments/1", data)
    assert proxy.counts.get(kind) == 1
    assert direct.read("segments/1") == data and direct.stat("segments/1").version == put.version
    proxy.policy = Faults.script([kind], methods=("GET",))
    assert store.read("segments/1") == data
    proxy.policy = Faults.script([kind], methods=("HEAD",))
    assert store.stat("segments/1").size == len(data)
    proxy.policy = Faults.script([kind], methods=("GET",))
    assert [o.key for o in store.list()] == ["segments/1"]
    proxy.policy = Faults.script([kind], methods=("PUT",))
    replaced = store.replace_if_unchanged("segments/1", b"replaced", put.version)
    assert direct.read("segments/1") == b"replaced" and direct.stat("segments/1").version == replaced.version
    assert proxy.counts.get(kind) == 5


@pytest.mark.parametrize("kind", ["503", "500", "stall", "drop_upload"])
def test_persistent_faults_end_in_store_unavailable(faulty, kind, s3_server):
    store, proxy, direct = faulty
    store.attempts = 3
    proxy.policy = Faults.always(kind)
    with pytest.raises(StoreUnavailable) as e:
        store.put_if_absent("checkpoints/9", b"c" * 100_000)
    message = str(e.value)
    assert store.url in message and "checkpoints/9" in message and "3 attempts" in message
    assert_no_secret(message, s3_server)
    with pytest.raises(StoreUnavailable) as e:
        store.read("checkpoints/9")
    assert_no_secret(str(e.value), s3_server)
    # none of these faults lets the request through whole: nothing, not half, was stored
    assert direct.stat("checkpoints/9") is None and direct.list() == []


def test_random_faults_never_list_half_an_object(faulty):
    store, proxy, direct = faulty
    proxy.policy = Faults.random(0.35, seed=15)
    expected: dict[str, bytes] = {}
    acknowledged: set[str] = set()
    for i in range(30):
        key, data = f"tiles/{i:03d}", bytes([i]) * (20_000 + 997 * i)
        expected[key] = data
        try:
            store.put_if_absent(key, data)
            acknowledged.add(key)
        except StoreUnavailable:
            pass
        listed = direct.list("tiles/")
        for obj in listed:
            assert obj.size == len(expected[obj.key]) and direct.read(obj.key) == expected[obj.key]
        assert acknowledged <= {o.key for o in listed}
    assert sum(n for k, n in proxy.counts.items() if k != "pass") > 5  # faults did happen
    assert len(acknowledged) >= 20


def test_exactly_one_winner_under_faults(faulty):
    store, proxy, direct = faulty
    proxy.policy = Faults.random(0.3, seed=1015)
    for round_ in range(5):
        key = f"HEAD-{round_}"
        data = [f"writer {i} round {round_} ".encode() * 2000 for i in range(6)]
        outcomes = race(6, lambda i: store.put_if_absent(key, data[i]))
        winners = [i for i, o in enumerate(outcomes) if not isinstance(o, Exception)]
        assert all(isinstance(o, (ObjectExists, StoreUnavailable)) for o in outcomes if isinstance(o, Exception)), outcomes
        assert len(winners) <= 1, outcomes
        if not any(isinstance(o, StoreUnavailable) for o in outcomes):
            assert len(winners) == 1, outcomes
        stored = direct.read_or_none(key)
        if winners:
            assert stored == data[winners[0]]
        assert stored is None or stored in data


def test_compare_and_swap_one_winner_under_faults(faulty):
    store, proxy, direct = faulty
    version = direct.put_if_absent("HEAD", b"seq 0").version
    proxy.policy = Faults.random(0.3, seed=2015, kinds=("500", "503", "drop_upload", "drop_response"))
    for round_ in range(4):
        outcomes = race(5, lambda i: store.replace_if_unchanged("HEAD", f"seq {round_ + 1} by {i}".encode(), version))
        winners = [o for o in outcomes if not isinstance(o, Exception)]
        assert len(winners) <= 1, outcomes
        assert all(isinstance(o, (VersionConflict, StoreUnavailable)) for o in outcomes if isinstance(o, Exception))
        current = direct.stat("HEAD")
        if winners:
            assert current.version == winners[0].version
        version = current.version


@pytest.mark.parametrize("kind", ["stall_after", "drop_response"])
def test_retained_put_whose_answer_was_lost(faulty, kind):
    """The PUT landed with its retention, its answer did not: the retry's 412 is our own."""
    store, proxy, direct = faulty
    until = later(2)
    proxy.policy = Faults.script([kind], methods=("PUT",))
    put = store.put_if_absent("segments/9", b"sealed", retain_until=until)
    assert proxy.counts.get(kind) == 1
    assert put.retain_until == until and direct.stat("segments/9").retain_until == until
    proxy.policy = Faults.script([kind], methods=("PUT",))
    with pytest.raises(ObjectExists):  # other bytes after a lost answer: not ours
        store.put_if_absent("segments/9", b"other", retain_until=until)


def test_list_follows_continuation_tokens(s3_server):
    store = ObjectStore(s3_server.new_bucket(), "p", list_page=3)
    for i in range(10):
        store.put_if_absent(f"k/{i:02d}", b"x")
    assert [o.key for o in store.list("k/")] == [f"k/{i:02d}" for i in range(10)]


def test_credentials_and_endpoint_from_the_aws_files(s3_server, tmp_path, monkeypatch):
    bucket = s3_server.new_bucket()
    (tmp_path / "credentials").write_text(
        f"[ledger]\naws_access_key_id = {s3_server.access_key}\naws_secret_access_key = {s3_server.secret_key}\n")
    (tmp_path / "config").write_text(f"[profile ledger]\nregion = us-east-1\nendpoint_url = {s3_server.endpoint}\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_PROFILE", "ledger")
    store = open_store(f"s3://{bucket}/p")
    store.put_if_absent("HEAD", b"from the profile")
    assert store.read("HEAD") == b"from the profile"
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(StoreError, match="AWS configuration") as e:
        open_store(f"s3://{bucket}/p")
    assert_no_secret(str(e.value), s3_server)


def test_missing_credentials_are_a_clear_error(s3_server, monkeypatch):
    bucket = s3_server.new_bucket()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = open_store(f"s3://{bucket}/p")
    with pytest.raises(StoreError, match="no usable AWS credentials") as e:
        store.stat("HEAD")
    assert not isinstance(e.value, StoreUnavailable)
