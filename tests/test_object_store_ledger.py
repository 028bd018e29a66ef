"""A ledger kept on S3-compatible object storage (the loopback moto server the suite
starts): written through the store with its log on the writer's disk, read and verified
through a mirror, copied to and from a directory, under retention, and never forked by two
writers."""

import json
import threading
import uuid

import pytest
from click.testing import CliRunner

from ledger import IntegrityError, Keyring, Ledger, LedgerError, WriterConflict, verify_ledger
from ledger.public import verify_public
from ledger.storage import Layout, read_head, read_manifest
from ledger.store import RetentionRefused, open_store
from ledger.transfer import ledger_objects, mirror, retention_state
from mrm.cli import main

from .helpers import fingerprint, log_event


@pytest.fixture
def url(s3_server):
    return f"s3://{s3_server.new_bucket()}/ledgers/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def keyring_file(tmp_path, keyring):
    path = tmp_path / "ring.json"
    keyring.save(path)
    return path


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env={"MRM_KEYRING": "", "MRM_HMAC_KEY": "", **(env or {})})


def write_some(url, keyring, work, n=30, *, seal_every=10):
    with Ledger.open(url, keyring, work_dir=work, actor="test") as ledger:
        for i in range(n):
            log_event(ledger, i)
            if (i + 1) % seal_every == 0:
                ledger.seal()


def test_a_ledger_on_object_storage_verifies_through_a_mirror(url, keyring, tmp_path):
    Ledger.create(url, keyring, work_dir=tmp_path / "work", actor="test").close()
    write_some(url, keyring, tmp_path / "work")
    store = open_store(url)
    records, problems = read_manifest(Layout(store, tmp_path / "work"))
    assert not problems and records[-1].last_seq == 30 and len(records) == 4
    assert not (tmp_path / "work" / "tables").exists(), "sealed segments live in the store, not on the writer's disk"
    view = mirror(store, tmp_path / "mirror")
    report = verify_ledger(view.path, keyring)
    assert report.ok, report.to_text()
    assert report.entries == 31
    again = mirror(store, tmp_path / "mirror")
    assert again.downloaded <= 2, "only what changed is fetched again (HEAD at most)"


def test_tampering_on_the_store_is_found(url, keyring, tmp_path, s3_server, keyring_file):
    Ledger.create(url, keyring, work_dir=tmp_path / "work", actor="test").close()
    write_some(url, keyring, tmp_path / "work")
    store = open_store(url)
    segment = next(o.key for o in store.list("tables/operation/") if o.key.endswith("-000000000020.parquet"))
    bucket, prefix = url[len("s3://"):].split("/", 1)
    # someone with write access to the bucket replaces a sealed segment's bytes
    data = store.read(segment)
    s3_server.client().put_object(Bucket=bucket, Key=f"{prefix}/{segment}", Body=data[:-8] + b"\0" * 8)
    result = run("verify", url, "--keyring", keyring_file)
    assert result.exit_code == 1, result.output
    assert segment in result.output
    # and a removed manifest record
    s3_server.client().put_object(Bucket=bucket, Key=f"{prefix}/{segment}", Body=data)
    assert run("verify", url, "--keyring", keyring_file).exit_code == 0
    s3_server.client().delete_object(Bucket=bucket, Key=f"{prefix}/manifest/000000000011.json")
    result = run("verify", url, "--keyring", keyring_file, "--json")
    assert result.exit_code == 1
    assert {"MANIFEST", "GAP"} & {p["kind"] for p in json.loads(result.output)["problems"]}


def test_copy_to_object_storage_under_retention_and_back(segmented, tmp_path, keyring_file, s3_server):
    url = f"s3://{s3_server.new_bucket()}/evidence/credit"
    up = run("copy", segmented, url, "--keyring", keyring_file, "--retain-days", "30", "--json")
    assert up.exit_code == 0, up.output
    doc = json.loads(up.output)
    assert doc["source_verified"] and doc["destination_verified"] and doc["retain_until"]

    store = open_store(url)
    state = retention_state(store)
    assert state.retained > 0 and not state.not_retained, state.summary()
    segment = next(o.key for o in store.list("tables/"))
    with pytest.raises(RetentionRefused):
        store.delete(segment)
    with pytest.raises(RetentionRefused):
        store.replace_if_unchanged(segment, b"forged", store.stat(segment).version)
    assert store.read(segment) == (segmented / segment).read_bytes()

    status = run("status", url, "--json")
    assert status.exit_code == 0, status.output
    retention = json.loads(status.output)["retention"]
    assert retention["supported"] and retention["retained"] == state.retained and not retention["not_retained"]
    verified = run("verify", url, "--keyring", keyring_file)
    assert verified.exit_code == 0, verified.output
    assert "retained until" in verified.output

    down = run("copy", url, tmp_path / "back", "--keyring", keyring_file)
    assert down.exit_code == 0, down.output
    source = {k: v for k, v in fingerprint(segmented).items() if k != "tree/lock"}
    assert fingerprint(tmp_path / "back") == source


def test_an_unretained_copy_says_so(segmented, keyring_file, s3_server):
    url = f"s3://{s3_server.new_bucket()}/evidence/plain"
    assert run("copy", segmented, url, "--keyring", keyring_file).exit_code == 0
    result = run("status", url)
    assert "no object is under retention" in result.output


def test_the_cli_writes_and_reads_a_ledger_on_object_storage(url, tmp_path, keyring_file):
    env = {"MRM_WORK_DIR": str(tmp_path / "work")}
    created = run("init", url, "--keyring", keyring_file, "--json", env=env)
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["path"] == url
    rows = tmp_path / "ops.jsonl"
    rows.write_text("".join(json.dumps({"event_type": "batch", "component": "etl", "status": "ok", "details": {"i": i}}) + "\n"
                            for i in range(7)))
    ingested = run("ingest", url, "operation", rows, "--keyring", keyring_file, env=env)
    assert ingested.exit_code == 0, ingested.output
    status = json.loads(run("status", url, "--json", env=env).output)
    assert status["path"] == url and status["tables"]["operation"] == 8
    assert run("verify", url, "--keyring", keyring_file, env=env).exit_code == 0
    no_key = run("init", f"{url}-2", env=env)
    assert no_key.exit_code == 2 and "keeps no key beside it" in no_key.output


def test_mrm_work_dir_chooses_this_machines_directory_for_a_store(url, tmp_path, keyring_file):
    env = {"MRM_WORK_DIR": str(tmp_path / "from-env")}
    given = tmp_path / "given"
    created = run("--work-dir", given, "init", url, "--keyring", keyring_file, "--json", env=env)
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["work_dir"] == str(given)
    assert (given / "STORE").read_text().strip() == url and (given / "wal.log").exists()
    rows = tmp_path / "ops.jsonl"
    rows.write_text(json.dumps({"event_type": "batch", "component": "etl", "status": "ok"}) + "\n")
    assert run("--work-dir", given, "ingest", url, "operation", rows, "--keyring", keyring_file, env=env).exit_code == 0
    status = run("--work-dir", given, "status", url, "--json", env=env)
    assert json.loads(status.output)["tables"]["operation"] == 2
    assert (given / "mirror" / "LEDGER.json").exists(), "readers mirror into the directory given"
    assert not (tmp_path / "from-env").exists(), "the option wins over $MRM_WORK_DIR"


def test_a_commit_by_the_writer_holding_the_ledger_is_one_request(url, keyring, tmp_path):
    Ledger.create(url, keyring, work_dir=tmp_path / "a", actor="a").close()
    store = open_store(url)
    requests = []
    store._client.meta.events.register("before-send", lambda request, **kw: requests.append(request.method))
    with Ledger.open(store, keyring, work_dir=tmp_path / "a", actor="a") as ledger:
        log_event(ledger, 0)  # the first commit after opening
        requests.clear()
        for i in range(1, 4):
            log_event(ledger, i)
        assert requests == ["PUT"] * 3, "each commit swaps HEAD and reads nothing"
        # Another process on this machine, sharing the work directory, takes its turn: this
        # writer sees the log changed and reads HEAD again, so it adopts that head.
        with Ledger.open(url, keyring, work_dir=tmp_path / "a", actor="a2") as other:
            log_event(other, 10)
        requests.clear()
        assert log_event(ledger, 4) == 6
        assert requests.count("GET") >= 1
    view = mirror(open_store(url), tmp_path / "mirror")
    report = verify_ledger(view.path, keyring)
    assert report.ok and report.entries == 7, report.to_text()


def test_two_writers_never_fork_the_chain(url, keyring, tmp_path):
    Ledger.create(url, keyring, work_dir=tmp_path / "a", actor="a").close()
    first = Ledger.open(url, keyring, work_dir=tmp_path / "a", actor="a")
    log_event(first, 1, durable=True)
    # The first writer holds an acknowledged entry that only its own log has: a second
    # writer elsewhere must not take the ledger over (that entry would be lost).
    with pytest.raises(WriterConflict, match="holds entries 1-1 in its local write-ahead log"):
        Ledger.open(url, keyring, work_dir=tmp_path / "b", actor="b")
    first.seal()
    # Everything sealed: the second writer may take over, and the first finds out at its
    # next commit, before anything is acknowledged.
    second = Ledger.open(url, keyring, work_dir=tmp_path / "b", actor="b")
    assert log_event(second, 2, durable=True) == 2
    with pytest.raises(WriterConflict, match="another writer"):
        log_event(first, 3, durable=True)  # would have been seq 2 as well: a fork, refused
    second.close()
    first.close()  # nothing of its own pending; the ledger is free again
    head = read_head(Layout(open_store(url), tmp_path / "b"))
    assert head.seq == head.sealed_seq == 2
    view = mirror(open_store(url), tmp_path / "mirror")
    report = verify_ledger(view.path, keyring)
    assert report.ok and report.entries == 3, report.to_text()


def test_racing_writers_on_one_prefix(url, keyring, tmp_path):
    """Writers on separate machines (separate local logs) race to append: every entry a
    writer was told is safe is in the one chain, and the chain never forks."""
    Ledger.create(url, keyring, work_dir=tmp_path / "w0", actor="w0").close()
    acknowledged: dict[int, str] = {}
    lock = threading.Lock()

    def writer(name):
        for attempt in range(15):
            try:
                with Ledger.open(url, keyring, work_dir=tmp_path / name, actor=name) as ledger:
                    for i in range(3):
                        seq = log_event(ledger, i, durable=True)
                        with lock:
                            assert seq not in acknowledged, "two writers acknowledged one sequence number"
                            acknowledged[seq] = name
            except (LedgerError, IntegrityError):
                continue  # lost the race: nothing it was not told about is kept

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    view = mirror(open_store(url), tmp_path / "mirror")
    report = verify_ledger(view.path, keyring)
    assert report.ok, report.to_text()
    from ledger.read import read_table

    rows = read_table(view.path, "operation").to_pylist()
    by_seq = {r["seq"]: r["actor"] for r in rows}
    for seq, name in acknowledged.items():
        assert by_seq.get(seq) == name, f"acknowledged entry {seq} of {name} is not in the chain"
    assert acknowledged, "no writer ever wrote"


def test_a_ledger_created_with_retention_retains_what_it_seals(url, keyring, tmp_path, keyring_file):
    Ledger.create(url, keyring, work_dir=tmp_path / "work", actor="test", retain_days=30).close()
    write_some(url, keyring, tmp_path / "work", n=20)
    store = open_store(url)
    state = retention_state(store)
    assert state.retained >= 1 + 3 * 2 and not state.not_retained, state.summary()  # LEDGER.json, 3 segments x (file, record)
    newest = max(store.stat(o.key).retain_until for o in store.list("manifest/"))
    assert store.stat("LEDGER.json").retain_until >= newest, "LEDGER.json stays locked as long as the newest segment"
    record = next(o.key for o in store.list("manifest/"))
    with pytest.raises(RetentionRefused):
        store.delete(record)
    # what is not evidence (the tree's tiles and state, HEAD) stays writable for the writer
    assert store.stat("HEAD").retain_until is None
    assert "retain_days" in json.loads(store.read("LEDGER.json"))
    status = json.loads(run("status", url, "--json").output)
    assert status["retention"]["retained"] == state.retained and not status["retention"]["not_retained"]
    refused = run("init", tmp_path / "dir-ledger", "--keyring", keyring_file, "--retain-days", "5")
    assert refused.exit_code == 2 and "keeps no retention" in refused.output


def test_reconstruct_fetches_only_entry_data_until_it_verifies(url, keyring, tmp_path, keyring_file):
    """`mrm reconstruct s3://...` mirrors the manifest, segments and key index, not the
    tree's tiles or the checkpoints; with --verify it fetches those too, and verifies."""
    from mrm.synthetic import inference_batch

    Ledger.create(url, keyring, work_dir=tmp_path / "work", actor="test").close()
    batch = inference_batch(600, seed=3)
    with Ledger.open(url, keyring, work_dir=tmp_path / "work", actor="test") as ledger:
        ledger.append("model_inference", batch)
    request_id = batch.column("request_id")[123].as_py()
    reader = tmp_path / "reader"
    env = {"MRM_WORK_DIR": str(reader)}
    result = run("reconstruct", url, "--request-id", request_id, "--json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["inference"]["request_id"] == request_id
    fetched = {p.relative_to(reader / "mirror").as_posix() for p in (reader / "mirror").rglob("*") if p.is_file()}
    assert any(k.startswith("tables/model_inference/") for k in fetched) and "HEAD" in fetched
    assert not any(k.startswith(("tree/", "checkpoints/")) for k in fetched), sorted(fetched)
    stored = {o.key for o in ledger_objects(open_store(url))}
    assert any(k.startswith("tree/") for k in stored), "the ledger has tiles the reader did not need"
    result = run("reconstruct", url, "--request-id", request_id, "--verify", "--keyring", keyring_file, env=env)
    assert result.exit_code == 0, result.output
    assert {k for k in stored if k.startswith("tree/")} <= {p.relative_to(reader / "mirror").as_posix()
                                                            for p in (reader / "mirror").rglob("*") if p.is_file()}
