"""SQL forensics at scale: reconstructing one decision among 10 million requests.

The full scale builds (once, then reuses) a ledger of 10,000,000 requests under
bench-out/sql-10000000/: each request writes data_access, model_inference, attribution and
guardrail, so the four request tables hold 40,000,000 entries (plus a few promotions), sealed
in the default segments of ~250,000 entries, with random request ids (nothing for Parquet
statistics to exploit). Building it takes a few minutes on two cores.

Figures:
- warm: one open Reconstructor in one process, many lookups of random requests/subjects;
- cold: a fresh Python process after the ledger's files were evicted from the page cache
  (posix_fadvise DONTNEED on every file of the ledger): open + one reconstruct, timed inside
  the process (interpreter start and imports reported separately as the CLI wall time);
- baseline: the same lookup scanning every segment (no side index), which is what a
  verified run (--verify) does;
- index cost: time to build every segment's key index from its tables, and its size.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ledger import Keyring, Ledger
from ledger.key_index import INDEX_DIR, encode_index
from ledger.read import snapshot
from ledger.storage import Layout
from mrm.synthetic import request_batches

SCALES = {"quick": 200_000, "full": 10_000_000}
KEY = bytes(range(32))
WARM_TARGET_MS, COLD_TARGET_MS = 100.0, 2000.0
REPO = Path(__file__).resolve().parents[1]


def ensure_ledger(n_requests: int, out: Path = Path("bench-out")) -> tuple[Path, dict]:
    """The benchmark ledger of `n_requests`, built once and reused."""
    base = out / f"sql-{n_requests}"
    path, info_file = base / "ledger", base / "build.json"
    if info_file.exists() and path.exists():
        return path, json.loads(info_file.read_text())
    import shutil

    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    started = time.perf_counter()
    entries = 0
    with Ledger.create(path, Keyring.from_key("bench-k1", KEY), actor="bench") as ledger:
        for table, batch in request_batches(n_requests):
            ledger.append(table, batch)
            entries += len(batch)
    info = {"requests": n_requests, "entries": entries + 1, "build_seconds": round(time.perf_counter() - started, 1)}
    info_file.write_text(json.dumps(info, indent=2))
    return path, info


def sample_keys(path: Path, n: int, seed: int = 5) -> list[dict]:
    """`n` random model_inference rows (request id, subject, ts) from random segments."""
    snap = snapshot(path)
    files = snap.files["model_inference"]
    rng = np.random.default_rng(seed)
    out = []
    for f in rng.choice(len(files), size=n):
        t = pq.read_table(files[f], columns=["request_id", "subject_id", "ts"])
        row = t.slice(int(rng.integers(len(t))), 1).to_pylist()[0]
        out.append(row)
    return out


def evict(path: Path) -> None:
    """Drop the ledger's files from the page cache (only these files; no root needed)."""
    for dirpath, _, names in os.walk(path):
        for name in names:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


_COLD = """
import json, sys, time
t0 = time.perf_counter()
from forensics.reconstruct import Reconstructor
t1 = time.perf_counter()
query = json.loads(sys.argv[2])
with Reconstructor.open(sys.argv[1], use_index=query.pop("use_index", True)) as r:
    t2 = time.perf_counter()
    rec = r.reconstruct(**query)
    t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "lookup_s": t3 - t2, "total_s": t3 - t1, "request_id": rec.request_id}))
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def cold_run(path: Path, query: dict) -> dict:
    evict(path)
    out = subprocess.run([sys.executable, "-c", _COLD, str(path), json.dumps(query)], capture_output=True, text=True, env=_env(), check=True)
    return json.loads(out.stdout)


def cli_wall(path: Path, args: list[str]) -> float:
    evict(path)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from mrm.cli import main; main()", "reconstruct", str(path), *args, "--json"], capture_output=True, env=_env(), check=True)
    return time.perf_counter() - started


def sql_wall(path: Path, query: str) -> float:
    """Wall clock of a whole `mrm sql` command (page cache warm)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from mrm.cli import main; main()", "sql", str(path), query, "--format", "json"],
                   capture_output=True, env=_env(), check=True)
    return time.perf_counter() - started


def index_cost(path: Path) -> tuple[float, int, int]:
    """(seconds to build every segment's index from its tables, index bytes, table bytes)."""
    snap = snapshot(path)
    layout = Layout(path)
    seconds = 0.0
    for record in snap.records:
        tables = {f.table: pq.read_table(layout.root / f.path, columns=[c for c in ("request_id", "subject_id") if c in pq.read_schema(layout.root / f.path).names])
                  for f in record.files}
        started = time.perf_counter()
        encode_index(record.first_seq, record.last_seq, record.files, tables)
        seconds += time.perf_counter() - started
    index_bytes = sum(p.stat().st_size for p in (path / INDEX_DIR).iterdir())
    table_bytes = sum(f.bytes for r in snap.records for f in r.files)
    return seconds, index_bytes, table_bytes


def _ms(values: list[float]) -> tuple[float, float, float]:
    ms = sorted(v * 1000 for v in values)
    return statistics.median(ms), ms[int(0.95 * (len(ms) - 1))], ms[-1]


def run(scale: str) -> list[dict]:
    from forensics.reconstruct import Reconstructor

    n = SCALES[scale]
    path, info = ensure_ledger(n)
    samples = sample_keys(path, 40 if scale == "full" else 20)
    figures: list[dict] = []
    what = f"{n:,} requests = {info['entries']:,} entries ({4 * n:,} in the four request tables)"
    figures.append({"name": "ledger build (Ledger.append, Arrow batches)", "value": info["build_seconds"], "unit": "s", "note": what + "; built once, reused"})

    with Reconstructor.open(path) as r:
        r.reconstruct(request_id=samples[0]["request_id"])  # warm-up: registry, file metadata
        by_request, by_subject = [], []
        for s in samples[1:]:
            t = time.perf_counter()
            rec = r.reconstruct(request_id=s["request_id"])
            by_request.append(time.perf_counter() - t)
            assert rec.request_id == s["request_id"]
            t = time.perf_counter()
            r.reconstruct(subject_id=s["subject_id"], at=s["ts"])
            by_subject.append(time.perf_counter() - t)
        segments = len(r.source.records)
        scan = []
        for s in samples[1:4]:
            t = time.perf_counter()
            rows = r.reader.rows("model_inference", "request_id", s["request_id"], use_index=False)
            scan.append(time.perf_counter() - t)
            assert len(rows) == 1
        indexed_one = []
        for s in samples[1:4]:
            t = time.perf_counter()
            r.reader.rows("model_inference", "request_id", s["request_id"])
            indexed_one.append(time.perf_counter() - t)
    med, p95, worst = _ms(by_request)
    figures.append({"name": "reconstruct by request id, warm (median)", "value": med, "unit": "ms", "target": f"< {WARM_TARGET_MS:.0f} ms",
                    "note": f"p95 {p95:.1f} ms, max {worst:.1f} ms over {len(by_request)} random requests; {segments} segments"})
    med, p95, worst = _ms(by_subject)
    figures.append({"name": "reconstruct by subject + at, warm (median)", "value": med, "unit": "ms", "target": f"< {WARM_TARGET_MS:.0f} ms",
                    "note": f"p95 {p95:.1f} ms, max {worst:.1f} ms"})
    scan_med, indexed_med = statistics.median(scan) * 1000, statistics.median(indexed_one) * 1000
    figures.append({"name": "model_inference lookup by request id, with key index", "value": indexed_med, "unit": "ms",
                    "baseline": "scan of every segment (what --verify does)", "baseline_value": scan_med, "ratio": scan_med / indexed_med})

    cold = [cold_run(path, {"request_id": s["request_id"]}) for s in samples[-3:]]
    figures.append({"name": "reconstruct by request id, cold (median open+lookup)", "value": statistics.median(c["total_s"] for c in cold) * 1000,
                    "unit": "ms", "target": f"< {COLD_TARGET_MS:.0f} ms",
                    "note": "fresh process, ledger evicted from the page cache; open "
                            + ", ".join(f"{c['open_s'] * 1000:.0f}" for c in cold) + " ms, lookup "
                            + ", ".join(f"{c['lookup_s'] * 1000:.0f}" for c in cold) + " ms; imports "
                            + f"{statistics.median(c['import_s'] for c in cold) * 1000:.0f} ms not included"})
    cold_scan = cold_run(path, {"request_id": samples[-2]["request_id"], "use_index": False})
    figures.append({"name": "reconstruct by request id, cold, scanning every segment", "value": cold_scan["total_s"] * 1000, "unit": "ms",
                    "note": "no side index: what a --verify run does after verifying (Bloom filters and row-group pruning only)"})
    with Reconstructor.open(path, use_index=False) as r:
        r.reconstruct(request_id=samples[0]["request_id"])
        scanned = []
        for s in samples[1:6]:
            t = time.perf_counter()
            r.reconstruct(request_id=s["request_id"])
            scanned.append(time.perf_counter() - t)
    figures.append({"name": "reconstruct by request id, warm, scanning every segment", "value": statistics.median(scanned) * 1000, "unit": "ms",
                    "note": "median of 5; the --verify path"})
    s = samples[-4]
    cold_subject = cold_run(path, {"subject_id": s["subject_id"], "at": s["ts"].isoformat()})
    figures.append({"name": "reconstruct by subject + at, cold (open+lookup)", "value": cold_subject["total_s"] * 1000, "unit": "ms",
                    "target": f"< {COLD_TARGET_MS:.0f} ms"})
    figures.append({"name": "mrm reconstruct --json, cold, wall clock", "value": cli_wall(path, ["--request-id", samples[-5]["request_id"]]) * 1000,
                    "unit": "ms", "note": "whole command: Python start, imports, open, lookup, output"})

    # The SQL macros scan the tables (DuckDB cannot use the key index): seconds, not ms.
    startup = min(sql_wall(path, "SELECT 1") for _ in range(2))
    figures.append({"name": "mrm sql \"SELECT 1\", wall clock (baseline)", "value": startup * 1000, "unit": "ms",
                    "note": "Python start, imports, opening the views"})
    for name, query in (("decision_of(request id)", f"SELECT * FROM decision_of('{samples[-6]['request_id']}')"),
                        ("subject_decisions(subject)", f"SELECT * FROM subject_decisions('{samples[-6]['subject_id']}')")):
        wall = sql_wall(path, query)
        figures.append({"name": f"mrm sql {name}, warm, wall clock", "value": wall * 1000, "unit": "ms",
                        "baseline": "mrm sql SELECT 1", "ratio": wall / startup})

    seconds, index_bytes, table_bytes = index_cost(path)
    figures.append({"name": "key index build, all segments", "value": seconds, "unit": "s",
                    "note": f"{seconds / max(info['build_seconds'], 1e-9) * 100:.1f}% of the ledger build time; paid at seal time"})
    figures.append({"name": "key index size", "value": index_bytes / 2**20, "unit": "MiB",
                    "note": f"{index_bytes / table_bytes * 100:.1f}% of {table_bytes / 2**30:.2f} GiB of table files"})
    return figures


if __name__ == "__main__":  # pragma: no cover
    for f in run(sys.argv[1] if len(sys.argv) > 1 else "quick"):
        print(f)
