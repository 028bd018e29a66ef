"""One workload on the local store and on object storage (the loopback moto server).

The same ledger of N unique model_inference entries (appended in Arrow batches of 50k, with
the default sealing and checkpoints) is written to a directory and to ``s3://`` on moto's
server, started on 127.0.0.1 by tests/s3_server.py (nothing but loopback is contacted).
Then, on both: HMAC and public verification (the object store through a mirror, cold: an
empty one, and warm: one already up to date) and a cold ``mrm reconstruct`` by request id
(a new process, an empty local directory).

N is ``$BENCH_STORAGE_ENTRIES`` (default 1,000,000 at full scale, 100,000 quick), e.g.
``make bench BENCH_ARGS=storage BENCH_STORAGE_ENTRIES=3000000``. The issue's workload is 10
million entries; figures at other sizes are per entry or per second, so they project to it
(the notes say how).

Baselines, measured in the same run: the naive JSONL logger of bench_ledger.py (local
figures are also given as ratios against it, as bench_ledger.py reports them); object-store
figures are ratios against the local figure of the same operation (targets: append >= 0.8,
verification >= 0.7, cold reconstruct < 1 s).

Requests are counted per operation on the store's boto3 client (botocore's ``before-call``
event; the store retries by itself, with botocore's retries off, so one call is one request)
and priced at S3 Standard list prices (us-east-1; see PRICES) for a year of 10 million
decisions a day, one entry each, written by one writer with the default group commit
(every 0.1 s) and the default seal and checkpoint (every 60 s while entries arrive).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from ledger import Ledger
from ledger.storage import Layout, read_manifest
from mrm.synthetic import inference_batch
from tests.s3_server import MotoServer

from .bench_ledger import KEY_FILE, OUT, _keyring, _naive_jsonl, _rows

BATCH = 50_000
PER_DAY = 10_000_000  # decisions a day, one ledger entry each
COMMITS_PER_DAY = 86_400 * 10  # group commit every 0.1 s (ledger.DEFAULT_FLUSH_INTERVAL) under steady load
SEALS_PER_DAY = 24 * 60  # seal + checkpoint every 60 s while entries arrive (DEFAULT_CHECKPOINT_INTERVAL)
ENTRIES_PER_SEAL = PER_DAY // SEALS_PER_DAY  # 6,944
# S3 Standard, us-east-1 list prices (USD): requests per 1,000, storage per GB-month.
PRICES = {"PUT": 0.005, "LIST": 0.005, "GET": 0.0004, "HEAD": 0.0004, "storage_gb_month": 0.023}
# botocore operation -> the S3 price class it is billed in (DELETE is free).
PRICE_CLASS = {"PutObject": "PUT", "PutObjectRetention": "PUT", "CopyObject": "PUT", "CreateMultipartUpload": "PUT",
               "UploadPart": "PUT", "CompleteMultipartUpload": "PUT", "ListObjectsV2": "LIST", "ListObjects": "LIST",
               "ListObjectVersions": "LIST", "GetObject": "GET", "GetObjectRetention": "GET", "HeadObject": "HEAD",
               "DeleteObject": "DELETE", "DeleteObjects": "DELETE"}

# Python run in a child: counts the requests of every store the child opens (it wraps the
# client factory of ledger/object_store.py), then runs BODY, which sets `result`.
_CHILD = """import json, sys, time
started = time.perf_counter()
import ledger.object_store as _o
counts = {}
_make = _o._make_client
def _count(model, **_):
    counts[model.name] = counts.get(model.name, 0) + 1
def _counted(*a, **kw):
    client = _make(*a, **kw)
    client.meta.events.register("before-call.s3", _count)
    return client
_o._make_client = _counted
args = json.loads(sys.argv[1])
result = {}
BODY
result["counts"] = counts
result["process_seconds"] = time.perf_counter() - started
print(json.dumps(result))
"""

_VERIFY = """from ledger import Keyring, verify_ledger
from ledger.public import verify_public
from ledger.store import open_store
from ledger.transfer import mirror
k = Keyring.load(args["keyring"])
t = time.perf_counter()
path = args["ledger"]
if path.startswith("s3://"):
    view = mirror(open_store(path), args["mirror"])
    path = str(view.path)
    result["mirror_seconds"] = time.perf_counter() - t
    result["downloaded"] = view.downloaded
r = verify_ledger(path, k) if args["how"] == "hmac" else verify_public(path, k.verifiers())
result.update(ok=r.ok, entries=r.entries, seconds=time.perf_counter() - t)
"""

_RECONSTRUCT = """import contextlib, io
imported = time.perf_counter()
from mrm.cli import main
out = io.StringIO()
t = time.perf_counter()
with contextlib.redirect_stdout(out):
    try:
        main(["reconstruct", args["ledger"], "--request-id", args["request_id"], "--json"], standalone_mode=False)
        code = 0
    except SystemExit as e:
        code = e.code
result.update(seconds=time.perf_counter() - t, code=code, found=json.loads(out.getvalue())["inference"]["request_id"])
"""


class RequestCounter:
    """Counts the requests a boto3 client sends, by S3 operation."""

    def __init__(self, client) -> None:
        self.counts: Counter[str] = Counter()
        client.meta.events.register("before-call.s3", self._count)

    def _count(self, model, **_) -> None:
        self.counts[model.name] += 1

    def since(self, before: Counter[str]) -> Counter[str]:
        return self.counts - before

    def snapshot(self) -> Counter[str]:
        return Counter(self.counts)


def by_class(counts: dict[str, int | float]) -> dict[str, float]:
    classes: Counter[str] = Counter()
    for op, n in counts.items():
        classes[PRICE_CLASS.get(op, op)] += n
    return dict(classes)


def request_cost(counts: dict[str, float]) -> float:
    return sum(n * PRICES[c] / 1000 for c, n in by_class(counts).items() if c in PRICES)


def _describe(counts: dict[str, float], per: float = 1) -> str:
    classes = by_class({k: v / per for k, v in counts.items()})
    return ", ".join(f"{c} {classes[c]:,.1f}" for c in ("PUT", "GET", "HEAD", "LIST", "DELETE") if classes.get(c)) or "none"


def _child(body: str, args: dict, env: dict | None = None) -> dict:
    code = _CHILD.replace("BODY", body)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], stdout=subprocess.PIPE, text=True, check=True,
                          env={**os.environ, **(env or {})})
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def _build(target, n: int, keyring, work: Path | None) -> float:
    """Append n entries in batches, sealing as the ledger does by default; entries/s
    including the final flush, seal and checkpoint."""
    batches = [inference_batch(min(BATCH, n - s), seed=s, offset=s) for s in range(0, n, BATCH)]
    options = {"work_dir": work} if work is not None else {}
    Ledger.create(target, keyring, actor="bench", **options).close()
    started = time.perf_counter()
    with Ledger.open(target, keyring, actor="bench", **options) as ledger:
        for b in batches:
            ledger.append("model_inference", b)
    return n / (time.perf_counter() - started)


def _stored_bytes(objects) -> int:
    return sum(o.size for o in objects)


def run(scale: str) -> list[dict]:
    n = int(os.environ.get("BENCH_STORAGE_ENTRIES") or (1_000_000 if scale == "full" else 100_000))
    keyring = _keyring()
    key = keyring.key(keyring.active)
    figures: list[dict] = []
    naive = _naive_jsonl(_rows(100_000 if scale == "full" else 20_000, seed=1), key, OUT / "naive.jsonl")
    figures.append({"name": "baseline: naive JSONL logger", "value": naive, "unit": "entries/s"})
    local_path = OUT / f"storage-local-{n}"
    shutil.rmtree(local_path, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix="storage-", dir=OUT))
    saved_env = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k in ("NO_PROXY", "MRM_WORK_DIR")}
    try:
        with MotoServer() as server:
            os.environ.update(server.env())
            figures += _measure(n, keyring, naive, local_path, scratch, server)
    finally:
        for k in [k for k in os.environ if k.startswith("AWS_") or k in ("NO_PROXY", "MRM_WORK_DIR")]:
            del os.environ[k]
        os.environ.update(saved_env)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(local_path, ignore_errors=True)
    return figures


def _measure(n: int, keyring, naive: float, local_path: Path, scratch: Path, server: MotoServer) -> list[dict]:
    from ledger.object_store import ObjectStore, _make_client
    from ledger.transfer import ledger_objects

    figures: list[dict] = []
    project = f"{n:,} entries; projected to 10 M by entries/s (constant per entry)"

    def local(name: str, value: float, unit: str = "entries/s", note: str | None = None) -> float:
        figures.append({"name": f"local: {name}", "value": value, "unit": unit, "baseline": "naive JSONL",
                        "baseline_value": naive, "ratio": value / naive, "note": note})
        return value

    def remote(name: str, value: float, base: float, target: str | None, note: str | None = None) -> None:
        figures.append({"name": f"object store: {name}", "value": value, "unit": "entries/s", "baseline": "local",
                        "baseline_value": base, "ratio": value / base, "target": target, "note": note})

    bucket = server.new_bucket()
    url = f"s3://{bucket}/bench"
    client = _make_client(5.0, 30.0)
    counter = RequestCounter(client)
    store = ObjectStore(bucket, "bench", client=client)
    work = scratch / "writer"

    # append
    local_rate = local("append (batches of 50k, incl. seals + checkpoints)", _build(local_path, n, keyring, None), note=project)
    before = counter.snapshot()
    remote_rate = _build(store, n, keyring, work)
    append_counts = counter.since(before)
    seals = len(read_manifest(Layout(store, work))[0])
    remote("append (batches of 50k, incl. seals + checkpoints)", remote_rate, local_rate, ">= x0.80",
           f"{seals} segments; requests for the whole append: {_describe(append_counts)}")
    objects = ledger_objects(store)
    stored = _stored_bytes(objects)
    tiles = sum(1 for o in objects if o.key.startswith("tree/"))
    figures.append({"name": "object store: objects per 1,000 entries", "value": len(objects) / n * 1000, "unit": "objects",
                    "note": f"{len(objects):,} objects, {tiles:,} of them tree tiles; {stored / n:.0f} bytes/entry stored"})

    # requests per commit and per seal + checkpoint, as a writer at 10 M decisions a day makes them
    row = inference_batch(1, seed=n + 1, offset=n + 1)
    with Ledger.open(store, keyring, actor="bench", work_dir=work) as ledger:
        commits = 20
        before = counter.snapshot()
        for _ in range(commits):
            ledger.append("model_inference", row)
            ledger.flush()
        per_commit = {k: v / commits for k, v in counter.since(before).items()}
        ledger.append("model_inference", inference_batch(ENTRIES_PER_SEAL, seed=n + 2, offset=n + 2))
        ledger.flush()
        before = counter.snapshot()
        ledger.seal()
        per_seal = dict(counter.since(before))
    figures.append({"name": "object store: requests per commit", "value": sum(per_commit.values()), "unit": "requests",
                    "note": _describe(per_commit)})
    figures.append({"name": f"object store: requests per seal + checkpoint ({ENTRIES_PER_SEAL:,} entries)",
                    "value": sum(per_seal.values()), "unit": "requests", "note": _describe(per_seal)})

    # verification: local, then through a cold and a warm mirror
    verify_counts = {}
    for how, label in (("hmac", "HMAC verification"), ("public", "public verification")):
        base = _child(_VERIFY, {"keyring": str(KEY_FILE), "ledger": str(local_path), "how": how})
        assert base["ok"], f"the local benchmark ledger does not pass {label}"
        local_rate = local(label, base["entries"] / base["seconds"], note=project)
        mirror_dir = scratch / f"mirror-{how}"
        for state in ("cold", "warm"):
            r = _child(_VERIFY, {"keyring": str(KEY_FILE), "ledger": url, "how": how, "mirror": str(mirror_dir)})
            assert r["ok"], f"the object-store benchmark ledger does not pass {label} ({state} mirror)"
            verify_counts[(how, state)] = r["counts"]
            remote(f"{label}, {state} mirror", r["entries"] / r["seconds"], local_rate, ">= x0.70",
                   f"mirror {r['mirror_seconds']:.1f} s ({r['downloaded']:,} objects fetched), then verify "
                   f"{r['seconds'] - r['mirror_seconds']:.1f} s; requests: {_describe(r['counts'])}")

    # cold reconstruct by request id, each in a new process with an empty local directory
    middle = (n // 2) // BATCH * BATCH
    request_id = inference_batch(min(BATCH, n - middle), seed=middle, offset=middle).column("request_id")[7].as_py()
    base = _child(_RECONSTRUCT, {"ledger": str(local_path), "request_id": request_id})
    assert base["code"] == 0 and base["found"] == request_id
    figures.append({"name": "local: cold mrm reconstruct by request id", "value": base["seconds"], "unit": "s",
                    "note": f"whole process {base['wall_seconds']:.1f} s (Python start and imports included)"})
    cold = _child(_RECONSTRUCT, {"ledger": url, "request_id": request_id}, {"MRM_WORK_DIR": str(scratch / "reconstruct")})
    assert cold["code"] == 0 and cold["found"] == request_id
    figures.append({"name": "object store: cold mrm reconstruct by request id", "value": cold["seconds"], "unit": "s",
                    "baseline": "local", "baseline_value": base["seconds"], "ratio": cold["seconds"] / base["seconds"],
                    "target": "< 1 s", "note": f"whole process {cold['wall_seconds']:.1f} s; requests: {_describe(cold['counts'])}"})

    figures += _yearly_cost(n, per_commit, per_seal, stored, len(objects), verify_counts, cold["counts"])
    return figures


def _yearly_cost(n: int, per_commit: dict, per_seal: dict, stored: int, objects: int, verify_counts: dict,
                 reconstruct_counts: dict) -> list[dict]:
    """A year of 10 M decisions a day at S3 Standard list prices (PRICES)."""
    writes_a_day = {k: v * COMMITS_PER_DAY for k, v in per_commit.items()}
    for k, v in per_seal.items():
        writes_a_day[k] = writes_a_day.get(k, 0) + v * SEALS_PER_DAY
    write_year = request_cost(writes_a_day) * 365
    gb_year = stored / n * PER_DAY * 365 / 1e9
    storage_year = PRICES["storage_gb_month"] * gb_year * sum(m / 12 for m in range(1, 13))  # it grows all year
    commit_year = request_cost(per_commit) * COMMITS_PER_DAY * 365
    seal_year = request_cost(per_seal) * SEALS_PER_DAY * 365
    scale = PER_DAY * 365 / n  # a verification at the year's end reads this many times the benchmark's objects
    cold_verify = request_cost(verify_counts[("hmac", "cold")]) * scale
    warm_verify = request_cost(verify_counts[("hmac", "warm")]) * scale
    prices = (f"S3 Standard list prices: PUT/LIST ${PRICES['PUT']} per 1,000, GET/HEAD ${PRICES['GET']} per 1,000, "
              f"storage ${PRICES['storage_gb_month']}/GB-month")
    return [
        {"name": "S3 cost, a year at 10 M decisions/day: writing", "value": write_year, "unit": "USD",
         "note": f"{prices}; {COMMITS_PER_DAY:,} commits/day (${commit_year:,.0f}) + {SEALS_PER_DAY:,} seals/day "
                 f"of {ENTRIES_PER_SEAL:,} entries (${seal_year:,.0f}); requests/day {_describe(writes_a_day)}"},
        {"name": "S3 cost, a year at 10 M decisions/day: storage", "value": storage_year, "unit": "USD",
         "note": f"{stored / n:.0f} bytes/entry, {gb_year:,.0f} GB after a year ({objects / n * PER_DAY * 365 / 1e6:,.1f} M "
                 f"objects), growing linearly; HEAD's old versions on a versioned bucket not counted"},
        {"name": "S3 cost of one HMAC verification at the year's end (cold mirror)", "value": cold_verify, "unit": "USD",
         "note": f"warm mirror ${warm_verify:,.2f}; projected from this run's requests x{scale:,.0f}"},
        {"name": "S3 requests of one cold mrm reconstruct", "value": sum(reconstruct_counts.values()), "unit": "requests",
         "note": f"{_describe(reconstruct_counts)}; at {n:,} entries (grows with the ledger's objects)"},
    ]
