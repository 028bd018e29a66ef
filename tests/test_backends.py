"""The tamper, crash, bad-input and fault suites on both backends (tests/backends.py): a
local directory and a bucket prefix on the loopback S3 server.

Every tamper kind must be found by HMAC verification and, where the signed checkpoints or
the stored tree let it see the change, by public verification; a writer stopped at any
store operation of a seal leaves a ledger that the next open recovers with every
acknowledged entry; refused input leaves every stored object as it was; and a server that
fails at random while a seal and its checkpoint are written loses nothing acknowledged."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger import Ledger, LedgerError
from ledger.object_store import ObjectStore
from ledger.read import read_table
from ledger.storage import SEGMENT_FILE, parse_manifest_record
from ledger.store import StoreError, open_store
from ledger.note import parse_note
from mrm.cli import main
from tests.faulty_proxy import Faults, FaultyProxy

from .backends import KINDS, SIGNED, Backend, backend, copy_backend, new_backend  # noqa: F401  (fixture)
from .helpers import abandon, fixed_clock

FORK = multiprocessing.get_context("fork")
def write_segment(ledger, labels) -> None:
    for label in labels:
        ledger.log_operation(event_type="monitor_check", component="drift", status="ok", actor="test", details={"label": label})
    ledger.seal()


class Template:
    """A closed ledger of genesis and three sealed segments of six operations (0, 1-6, 7-12,
    13-18), a signed checkpoint at each seal, and HEAD as each seal left it."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.heads: list[bytes] = []
        with backend.create(actor="test", clock=fixed_clock()) as ledger:
            for segment in range(3):
                write_segment(ledger, [f"s{segment}-{i}" for i in range(6)])
                self.heads.append(backend.read("HEAD"))


@pytest.fixture(scope="session", params=KINDS)
def template(request, tmp_path_factory) -> Template:
    server = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return Template(new_backend(request.param, tmp_path_factory.mktemp(f"template-{request.param}"), server))


@pytest.fixture
def signed(template, tmp_path) -> Backend:
    """A fresh copy of the template on its backend."""
    return copy_backend(template.backend, tmp_path / "copy")


# ------------------------------------------------------------------------------ tampering


def segment_key(b: Backend, first: int) -> str:
    return next(k for k in b.keys("tables/operation/") if int(SEGMENT_FILE.fullmatch(k).group(2)) == first)


def head_doc(b: Backend) -> dict:
    return json.loads(b.read("HEAD"))


def write_head_doc(b: Backend, doc: dict) -> None:
    b.overwrite("HEAD", (json.dumps(doc) + "\n").encode())


def edit_a_row(b, template):
    def edit(rows):
        rows[1]["details"] = rows[1]["details"].replace("s1-1", "s1-X")
        return rows

    b.edit_rows(segment_key(b, 7), edit)


def delete_a_segment(b, template):
    b.delete(segment_key(b, 7))


def swap_segments(b, template):
    one, two = segment_key(b, 1), segment_key(b, 7)
    first, second = b.read(one), b.read(two)
    b.overwrite(one, second)
    b.overwrite(two, first)


def insert_a_forged_segment(b, template):
    """A forger without the key appends a segment and its manifest record after the last,
    and moves HEAD to its end: a thorough forgery with everything unsigned consistent."""
    import hashlib

    from ledger.storage import manifest_key

    source = segment_key(b, 13)

    def renumber(rows):
        return [dict(r, seq=r["seq"] + 6, details=r["details"].replace("s2", "forged")) for r in rows]

    forged = "tables/operation/000000000019-000000000024.parquet"
    b.overwrite(forged, b.read(source))
    b.edit_rows(forged, renumber)
    last = parse_manifest_record(b.read(manifest_key(13)))
    data = b.read(forged)
    record = {"first_seq": 19, "last_seq": 24, "last_mac": "ab" * 32,
              "files": [{"table": "operation", "path": forged, "rows": 6, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}],
              "prev": last.line_hash, "key_id": last.key_id, "mac": "cd" * 32}
    b.overwrite(manifest_key(19), json.dumps(record, separators=(",", ":")).encode() + b"\n")
    write_head_doc(b, {**head_doc(b), "seq": 24, "sealed_seq": 24, "mac": "ab" * 32})


def edit_a_manifest_record(b, template):
    key = "manifest/000000000007.json"
    doc = json.loads(b.read(key))
    doc["files"][0]["rows"] += 1
    b.overwrite(key, json.dumps(doc, separators=(",", ":")).encode() + b"\n")


def delete_a_manifest_record(b, template):
    b.delete("manifest/000000000007.json")


def roll_head_back(b, template):
    b.overwrite("HEAD", template.heads[0])  # HEAD as the first seal left it: 12 entries earlier


def push_head_past_the_data(b, template):
    """HEAD counts five more entries as sealed than the store holds (the newest segment and
    its record removed, HEAD left as it was). Counting unsealed entries in a writer's log
    is not this: see test_entries_only_a_writers_log_holds_..."""
    doc = head_doc(b)
    write_head_doc(b, {**doc, "seq": doc["seq"] + 5, "sealed_seq": doc["sealed_seq"] + 5})


def forge_head_mac(b, template):
    write_head_doc(b, {**head_doc(b), "mac": "ab" * 32})


def tamper_a_tile(b, template):
    tile = b.keys("tree/tile/0/")[0]
    raw = bytearray(b.read(tile))
    raw[5] ^= 1
    b.overwrite(tile, bytes(raw))


def checkpoint_keys(b):
    return [k for k in b.keys("checkpoints/") if k.endswith(".note")]


def tamper_a_checkpoint(b, template):
    key = checkpoint_keys(b)[-1]
    b.overwrite(key, b.read(key).replace(b"\n", b"\r\n", 1))


def remove_a_checkpoint(b, template):
    b.delete(checkpoint_keys(b)[-2])  # one inside the chain: the newest no longer links


def add_an_unlisted_segment(b, template):
    """A segment file named past the newest checkpoint but not for the next seal (19-...)."""
    b.overwrite("tables/operation/000000000020-000000000025.parquet", b.read(segment_key(b, 13)))


# tamper -> (kinds HMAC verification reports, kinds public verification reports; None where
# it cannot see the change: the manifest is not signed, the signed listing stands in for it)
TAMPERS = {
    edit_a_row: ({"INVALID"}, {"FILE"}),
    delete_a_segment: ({"MISSING", "GAP"}, {"MISSING"}),
    swap_segments: ({"FILE", "INVALID"}, {"FILE"}),
    insert_a_forged_segment: ({"MANIFEST", "INVALID"}, None),
    edit_a_manifest_record: ({"MANIFEST"}, None),
    delete_a_manifest_record: ({"MANIFEST", "GAP"}, None),
    roll_head_back: ({"HEAD"}, {"HEAD"}),
    push_head_past_the_data: ({"TRUNCATED"}, {"TRUNCATED"}),
    forge_head_mac: ({"HEAD"}, {"HEAD"}),
    tamper_a_tile: ({"TILE"}, {"TILE"}),
    tamper_a_checkpoint: ({"CHECKPOINT"}, {"CHECKPOINT"}),
    remove_a_checkpoint: ({"CHECKPOINT"}, {"CHECKPOINT"}),
    add_an_unlisted_segment: ({"EXTRA"}, {"EXTRA"}),
}


def test_the_untouched_copy_verifies_both_ways(signed):
    for report in signed.verify_both():
        assert report.ok, report.to_text()
        assert report.entries == 19


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.__name__ for t in TAMPERS])
def test_each_tamper_is_found(signed, template, tamper):
    hmac_kinds, public_kinds = TAMPERS[tamper]
    tamper(signed, template)
    report, public = signed.verify_both()
    assert not report.ok, f"HMAC verification missed {tamper.__name__}: {report.to_text()}"
    assert hmac_kinds & report.kinds(), report.to_text()
    report = public
    if public_kinds is not None:
        assert not report.ok, f"public verification missed {tamper.__name__}: {report.to_text()}"
        assert public_kinds & report.kinds(), report.to_text()


def test_a_head_one_seal_behind_is_a_note(signed, template):
    """A directory's writer fsyncs its head only at a seal's end, so a power loss can take
    it back one seal: the entries past it verify and are kept. Further back is a rollback
    (test_each_tamper_is_found[roll_head_back])."""
    signed.overwrite("HEAD", template.heads[1])
    for report in signed.verify_both():
        assert report.ok, report.to_text()
        assert any("past the persisted head" in n for n in report.notes), report.to_text()


def test_a_head_inside_the_newest_seal_is_checked_against_that_entry(signed):
    """HEAD may name an entry inside the newest segment (a seal's head lost to a power
    loss); its MAC is then checked against the one stored with that entry."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_table(pa.BufferReader(signed.read(segment_key(signed, 13)))).to_pylist()
    mac = next(r["mac"] for r in rows if r["seq"] == 15).hex()
    write_head_doc(signed, {**head_doc(signed), "seq": 15, "mac": mac, "sealed_seq": 12})
    for report in signed.verify_both():
        assert report.ok and any("entries 16-18 are past the persisted head" in n for n in report.notes), report.to_text()
    write_head_doc(signed, {**head_doc(signed), "mac": "ab" * 32})
    for report in signed.verify_both():
        assert [(p.kind, p.seq) for p in report.problems] == [("HEAD", 15)], report.to_text()


def test_entries_only_a_writers_log_holds_are_reported_as_not_verified_elsewhere(backend):
    """HEAD counts entries that only the writer's local log holds: its own directory reads
    that log and verifies them; a verifier elsewhere says they are not verified there,
    naming the writer and the range, and fails nothing (see ledger/verify.py, check_head)."""
    ledger = backend.create(actor="test")
    try:
        for i in range(3):
            ledger.log_operation(event_type="tick", component="c", status="ok", details={"i": i}, durable=True)
        report = backend.verify_hmac()
        if backend.kind == "local":
            assert report.ok and report.wal_entries == 3, report.to_text()
        else:
            assert report.ok, report.to_text()
            pending = [n for n in report.notes if n.startswith("NOT VERIFIED HERE: entries 1-3 ")]
            assert pending and "write-ahead log of writer" in pending[0], report.to_text()
    finally:
        ledger.close()
    for report in backend.verify_both():
        assert report.ok and report.entries == 4, report.to_text()


# ------------------------------------------------------------------------------ crashes

CRASH_POINTS = 40  # bound on the store operations of one seal


def _stop_at(store, point: int, counter: list[int]) -> None:
    """Make the `point`-th write of `store` (put, replace, delete, retain) end the process
    before it reaches the store."""
    for name in ("put_if_absent", "replace_if_unchanged", "delete", "retain"):
        original = getattr(store, name)

        def wrapped(*args, _original=original, **kwargs):
            counter[0] += 1
            if counter[0] == point:
                os._exit(17)
            return _original(*args, **kwargs)

        setattr(store, name, wrapped)


def _crashing_writer(b: Backend, work: str | None, point: int, pipe) -> None:
    store = b.store  # the parent's, copied by fork: patching it here leaves the parent's alone
    ledger = Ledger.open(store, SIGNED, work_dir=work, actor="crash", checkpoint_interval=3600)
    seqs = [ledger.log_operation(event_type="tick", component="c", status="ok", details={"i": i}, durable=True) for i in range(4)]
    pipe.send(("acknowledged", seqs))
    counter = [0]
    _stop_at(store, point, counter)
    ledger.seal()
    pipe.send(("sealed", counter[0]))
    os._exit(0)


@pytest.mark.parametrize("kind", KINDS)
def test_a_crash_at_each_store_write_of_a_seal_loses_nothing_acknowledged(kind, request, tmp_path):
    server = request.getfixturevalue("s3_server") if kind == "s3" else None
    point, writes = 1, None
    bucket = new_backend(kind, tmp_path / "bucket", server).location[len("s3://"):].split("/")[0] if server else None
    while writes is None or point <= writes:
        assert point <= CRASH_POINTS, "a seal writes more objects than the bound"
        b = new_backend(kind, tmp_path / f"p{point}", server, bucket)
        # on S3 under retention: a seal then also retains what it wrote, after its commit point
        b.create(actor="test", **({"retain_days": 1} if kind == "s3" else {})).close()
        work = str(b.scratch / "writer") if kind == "s3" else None
        receive, send = FORK.Pipe(duplex=False)
        child = FORK.Process(target=_crashing_writer, args=(b, work, point, send), daemon=True)
        child.start()
        child.join(120)
        assert child.exitcode in (0, 17), child.exitcode
        messages = dict(receive.recv() for _ in range(2 if child.exitcode == 0 else 1))
        acknowledged = messages["acknowledged"]
        if "sealed" in messages:
            writes = messages["sealed"]  # the seal finished: every write before it was a crash point
        # the next open, by the same writer (its local log holds what was not sealed)
        with b.open(work_dir=Path(work) if work else None) as ledger:
            assert ledger.head.seq >= max(acknowledged)
        view = b.view()
        rows = read_table(view, "operation").to_pylist()
        assert [r["seq"] for r in rows] == list(range(len(rows))), f"crash at write {point}: the chain has a hole"
        held = {r["seq"]: json.loads(r["details"]).get("i") for r in rows}
        assert all(held.get(seq) == i for i, seq in enumerate(acknowledged)), f"crash at write {point}: an acknowledged entry was lost"
        for report in (b.verify_hmac(view=view), b.verify_public(view=view)):
            assert report.ok, f"crash at write {point}: {report.to_text()}"
        if kind == "local":
            assert not [p for p in Path(b.location).rglob("*") if ".tmp-" in p.name], "temporaries left behind"
        point += 1
    assert writes and writes >= 4, "a seal writes its segment, manifest record, tree and HEAD"
    print(f"{kind}: a crash before each of the {writes} store writes of one seal recovered")


# ------------------------------------------------------------------------------ bad input


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env={"MRM_KEYRING": "", "MRM_HMAC_KEY": "", **(env or {})})


BAD_ROWS = [
    ("model_inference", {"request_id": "r"}, "subject_id"),                       # a required field missing
    ("model_inference", {"request_id": "r", "subject_id": "s", "model_slot": "m", "model_version": "v",
                         "input_digest": "0" * 64, "decision": "d", "latency_ms": -3.0}, "latency_ms"),
    ("operation", {"event_type": "e", "component": "c", "status": "ok", "colour": "red"}, "colour"),
    ("no_such_table", {"a": 1}, "no_such_table"),
]


def test_bad_input_leaves_the_ledger_as_it_was(signed):
    ledger = signed.open(actor="test")
    try:
        ledger.flush()
        before = signed.fingerprint()
        for table, row, named in BAD_ROWS:
            with pytest.raises(LedgerError) as refused:
                ledger.log(table, row, durable=True)
            assert named in str(refused.value)
            with pytest.raises(LedgerError):
                ledger.append(table, [row, row], durable=True)
        ledger.flush()
        assert signed.fingerprint() == before
        assert ledger.head.seq == 18
    finally:
        ledger.close()
    report = signed.verify_hmac()
    assert report.ok and report.entries == 19, report.to_text()


def test_a_refused_ingest_writes_nothing(signed, tmp_path):
    keys = tmp_path / "keys.json"
    SIGNED.save(keys)
    good = {"request_id": "a", "subject_id": "s", "model_slot": "m", "model_version": "v", "input_digest": "0" * 64, "decision": "x", "latency_ms": 1.0}
    (tmp_path / "bad.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({**good, "latency_ms": "fast"}) + "\n")
    before, head = signed.fingerprint(), head_doc(signed)
    result = run("ingest", signed.location, "model_inference", tmp_path / "bad.jsonl", "--keyring", keys,
                 env={"MRM_WORK_DIR": str(tmp_path / "work")})
    assert result.exit_code == 2, result.output
    assert "bad.jsonl:2" in result.output and "latency_ms" in result.output and "nothing was written" in result.output
    # Refused before the ledger is opened: on a shared store opening would take it over.
    assert signed.fingerprint() == before and head_doc(signed) == head
    assert signed.verify_hmac().ok


# ------------------------------------------------------------------------------ faults

FAULT_ROUNDS = 50
ROUNDS_PER_LEDGER = 10  # a new ledger every ten rounds: each open reads every manifest record
FAULT_RATE = 0.15  # of requests; with 2 attempts an operation gives up now and then, mid-seal


def test_random_server_faults_during_seal_and_checkpoint_lose_nothing(s3_server, tmp_path, monkeypatch):
    """Each round: a writer opens the ledger through the faulty proxy (recovering the last
    round), acknowledges three entries, then seals or checkpoints while the server fails
    at random (seeded); whether or not that succeeds, the writer is abandoned as a killed
    process would be. After every round nothing half-written is listed as evidence; after
    each ledger's rounds every acknowledged entry is in the chain and it verifies."""
    gave_up = 0
    with FaultyProxy(s3_server.port, stall=1.0) as proxy:
        for ledger_no in range(FAULT_ROUNDS // ROUNDS_PER_LEDGER):
            b = new_backend("s3", tmp_path / f"ledger-{ledger_no}", s3_server)
            b.create(actor="test").close()
            bucket, _, prefix = b.location[len("s3://"):].partition("/")
            monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
            faulty = ObjectStore(bucket, prefix, attempts=2, connect_timeout=0.5, read_timeout=0.4, backoff=0.01, max_backoff=0.05)
            monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
            acknowledged: dict[int, int] = {}  # seq -> i
            checked: dict[str, str] = {}
            work = b.scratch / "writer"
            for round_ in range(ledger_no * ROUNDS_PER_LEDGER, (ledger_no + 1) * ROUNDS_PER_LEDGER):
                proxy.policy = Faults.none()
                ledger = b.open(work_dir=work, store=faulty, actor="faults", checkpoint_interval=3600)
                for j in range(3):
                    i = round_ * 10 + j
                    acknowledged[ledger.log_operation(event_type="tick", component="c", status="ok", details={"i": i}, durable=True)] = i
                proxy.policy = Faults.random(FAULT_RATE, seed=round_)
                try:
                    ledger.checkpoint() if round_ % 2 else ledger.seal()
                except (StoreError, LedgerError):
                    gave_up += 1
                proxy.policy = Faults.none()
                abandon(ledger)
                assert_no_half_written_evidence(b.store, checked)
            with b.open(work_dir=work, actor="faults") as ledger:  # the next open recovers
                assert ledger.head.seq >= max(acknowledged)
            view = b.view()
            rows = read_table(view, "operation").to_pylist()
            held = {r["seq"]: json.loads(r["details"]).get("i") for r in rows}
            assert [r["seq"] for r in rows] == list(range(len(rows)))
            lost = [seq for seq, i in acknowledged.items() if held.get(seq) != i]
            assert not lost, f"acknowledged entries lost: {lost[:10]}"
            for report in (b.verify_hmac(view=view), b.verify_public(view=view)):
                assert report.ok, report.to_text()
    injected = sum(n for k, n in proxy.counts.items() if k != "pass")
    assert injected >= FAULT_ROUNDS and gave_up, (proxy.counts, gave_up)  # faults landed, and some seals did stop


def assert_no_half_written_evidence(store, seen: dict[str, str]) -> None:
    """Every segment file and record listed is whole: each record parses and each file it
    lists has the size and digest recorded, each checkpoint is a whole signed note; a
    segment file no record lists is only ever the next seal's (the next writer removes it).
    `seen`: key -> version of the objects already checked (they are written once)."""
    import hashlib

    listed, last = {}, -1
    fresh = lambda obj: seen.get(obj.key) != obj.version  # noqa: E731
    for obj in store.list("manifest/"):
        record = parse_manifest_record(store.read(obj.key))
        last = max(last, record.last_seq)
        listed.update({f.path: f for f in record.files})
    for obj in store.list("tables/"):
        f = listed.get(obj.key)
        if f is None:
            assert int(SEGMENT_FILE.fullmatch(obj.key).group(2)) == last + 1, f"{obj.key}: unlisted, and not the next seal's"
        elif fresh(obj):
            data = store.read(obj.key)
            assert (len(data), hashlib.sha256(data).hexdigest()) == (f.bytes, f.sha256), f"{obj.key}: not what its record lists"
            seen[obj.key] = obj.version
    for obj in store.list("checkpoints/"):
        if obj.key.endswith(".note") and fresh(obj):
            parse_note(store.read(obj.key))  # NoteError if it is not a whole signed note
            seen[obj.key] = obj.version
