"""Ledger core and checkpoints: write, verify, public verify, proofs, bytes on disk.

Baselines measured in the same run, on the same unique model_inference rows:
  * naive JSONL logger: `json.dumps` per entry, HMAC-SHA256 chained over the line, one
    write per line (what the source documents' code did);
  * bare `hmac` loop over the same JSON bytes: the ceiling for any Python MAC-per-entry
    design.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from ledger import Keyring, Ledger, hashing
from mrm.synthetic import inference_batch

OUT = Path("bench-out")
KEY_FILE = OUT / "bench.keyring.json"


def _keyring() -> Keyring:
    OUT.mkdir(exist_ok=True)
    if KEY_FILE.exists():
        return Keyring.load(KEY_FILE)
    keyring = Keyring.generate("bench-k1")
    keyring.save(KEY_FILE)
    return keyring


def _rows(n: int, seed: int) -> list[dict]:
    rows = inference_batch(n, seed).to_pylist()
    for r in rows:
        r["scores"] = dict(r["scores"])
    return rows


def _naive_jsonl(rows: list[dict], key: bytes, path: Path) -> float:
    started = time.perf_counter()
    prev = ""
    with open(path, "w") as f:
        for r in rows:
            line = json.dumps({**r, "ts": r["ts"].isoformat()}, sort_keys=True)
            prev = hmac.new(key, (prev + line).encode(), hashlib.sha256).hexdigest()
            f.write(line + "\t" + prev + "\n")
        f.flush()
        os.fsync(f.fileno())
    return len(rows) / (time.perf_counter() - started)


def _bare_hmac(rows: list[dict], key: bytes) -> float:
    lines = [json.dumps({**r, "ts": r["ts"].isoformat()}, sort_keys=True).encode() for r in rows]
    started = time.perf_counter()
    digest = hmac.digest
    for line in lines:
        digest(key, line, "sha256")
    return len(lines) / (time.perf_counter() - started)


def _tree_rss(pid: int) -> int:
    """Memory of a process and all its descendants, in bytes: the sum of their PSS, so
    pages a forked worker shares with its parent are counted once, not per process."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def _verify_code(path: Path, call: str) -> str:
    """A child's program: time `call` (with `k` the keyring, `path` the ledger), print JSON."""
    return ("import json,time\nfrom ledger import Keyring, verify_ledger\nfrom ledger.public import verify_public\n"
            f"k=Keyring.load({str(KEY_FILE)!r})\npath={str(path)!r}\nt=time.perf_counter()\nr={call}\n"
            "print(json.dumps({'ok': r.ok, 'entries': r.entries, 'seconds': time.perf_counter()-t}))")


def _run_timed_then_measured(code: str) -> tuple[dict, int]:
    """Run Python code in a child twice: once for its JSON output (the timing), once more for
    the peak memory of its process tree. Sampling memory reads every process's page tables
    (smaps_rollup) under the lock their page faults need, which slows what it measures."""
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, check=True)
    _, peak = _run_measured(code)
    return json.loads(proc.stdout.strip().splitlines()[-1]), peak


def _run_measured(code: str) -> tuple[dict, int]:
    """Run Python code in a child; return its JSON output and the peak RSS of its tree."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    return json.loads(out.strip().splitlines()[-1]), peak


def _big_ledger(n: int, keyring: Keyring) -> tuple[Path, float]:
    """A ledger of n unique model_inference entries (+ genesis), built once and reused."""
    path = OUT / f"ledger-{n}"
    marker = path / ".bench-complete"
    if marker.exists():
        return path, float(marker.read_text())
    shutil.rmtree(path, ignore_errors=True)
    batch = 50_000
    started = time.perf_counter()
    with Ledger.create(path, keyring, actor="bench") as ledger:
        for start in range(0, n, batch):
            ledger.append("model_inference", inference_batch(min(batch, n - start), seed=start, offset=start))
    rate = n / (time.perf_counter() - started)
    marker.write_text(str(rate))
    return path, rate


def run(scale: str) -> list[dict]:
    full = scale == "full"
    keyring = _keyring()
    key = keyring.key(keyring.active)
    figures: list[dict] = []
    rows = _rows(100_000 if full else 20_000, seed=1)

    naive = _naive_jsonl(rows, key, OUT / "naive.jsonl")
    ceiling = _bare_hmac(rows, key)
    figures.append({"name": "baseline: naive JSONL logger", "value": naive, "unit": "entries/s"})
    figures.append({"name": "baseline: bare hmac loop (ceiling)", "value": ceiling, "unit": "entries/s"})

    def vs(name: str, value: float, target: str | None = None, note: str | None = None) -> None:
        figures.append({"name": name, "value": value, "unit": "entries/s", "baseline": "naive JSONL", "ratio": value / naive,
                        "target": target, "note": (note + "; " if note else "") + f"x{value / ceiling:.2f} of the bare-hmac ceiling"})

    # single calls with the default group commit
    path = OUT / "single"
    shutil.rmtree(path, ignore_errors=True)
    ledger = Ledger.create(path, keyring, actor="bench")
    started = time.perf_counter()
    for r in rows:
        ledger.log("model_inference", r)
    ledger.flush()
    vs("log_model_inference, group commit (incl. flush)", len(rows) / (time.perf_counter() - started), ">= 50,000")
    durable_n = 2000 if full else 300
    started = time.perf_counter()
    for r in rows[:durable_n]:
        ledger.log("model_inference", r, durable=True)
    figures.append({"name": "log_model_inference, durable=True (fsync each)", "value": durable_n / (time.perf_counter() - started), "unit": "entries/s"})
    ledger.close()

    # batches
    path = OUT / "batch"
    shutil.rmtree(path, ignore_errors=True)
    n_batch = 1_000_000 if full else 200_000
    batches = [inference_batch(50_000, seed=s, offset=s) for s in range(0, n_batch, 50_000)]
    ledger = Ledger.create(path, keyring, actor="bench")
    started = time.perf_counter()
    for b in batches:
        ledger.append("model_inference", b)
    ledger.flush()
    appended = time.perf_counter() - started
    ledger.close()
    sustained = time.perf_counter() - started
    vs("append (Arrow batches of 50k), incl. flush", n_batch / appended, ">= 200,000")
    vs("append sustained, incl. sealing + checkpoints", n_batch / sustained)

    # the big ledger: verify, size, public verify, proofs
    n = 10_000_000 if full else 300_000
    big, build_rate = _big_ledger(n, keyring)
    figures.append({"name": f"build {n:,}-entry ledger (append + seal + sign)", "value": build_rate, "unit": "entries/s"})
    inference_bytes = sum(p.stat().st_size for p in (big / "tables" / "model_inference").glob("*.parquet"))
    figures.append({"name": "bytes on disk per model_inference entry", "value": inference_bytes / n, "unit": "bytes", "target": "<= 200",
                    "note": f"tree tiles add {sum(p.stat().st_size for p in (big / 'tree').rglob('*') if p.is_file()) / n:.0f} bytes/entry"})

    result, peak = _run_timed_then_measured(_verify_code(big, "verify_ledger(path, k)"))
    assert result["ok"], "the benchmark ledger does not verify"
    vs(f"verify with the HMAC key, {n:,} entries", result["entries"] / result["seconds"], ">= 1,000,000",
       note=f"peak memory {peak / 2**20:.0f} MiB across all processes (target < 1 GiB)")
    figures.append({"name": "verify peak memory (all processes)", "value": peak / 2**20, "unit": "MiB", "target": "< 1024"})

    result, peak = _run_timed_then_measured(_verify_code(big, "verify_public(path, k.verifiers())"))
    assert result["ok"], "the benchmark ledger does not verify publicly"
    vs(f"public verification (no secret), {n:,} entries", result["entries"] / result["seconds"], ">= 2,000,000",
       note=f"peak memory {peak / 2**20:.0f} MiB")

    from ledger.proofs import prove_entries, verify_proof

    targets = [int(x) for x in (hashlib.sha256(str(i).encode()).digest()[0] * (n // 256) + 1 for i in range(40))]
    gen_times, verify_times, sizes, hash_bytes = [], [], [], []
    verifiers = keyring.verifiers()
    for seq in targets:
        started = time.perf_counter()
        doc = prove_entries(big, [seq])
        gen_times.append(time.perf_counter() - started)
        text = json.dumps(doc)
        sizes.append(len(text))
        hash_bytes.append(32 * len(doc["entries"][0]["inclusion"]["hashes"]))
        parsed = json.loads(text)
        started = time.perf_counter()
        assert verify_proof(parsed, verifiers).ok
        verify_times.append(time.perf_counter() - started)
    figures.append({"name": "inclusion proof generation (median)", "value": statistics.median(gen_times) * 1000, "unit": "ms", "target": "< 50",
                    "note": f"max {max(gen_times) * 1000:.1f} ms, includes reading the entry's row group"})
    figures.append({"name": "inclusion proof verification (median)", "value": statistics.median(verify_times) * 1000, "unit": "ms", "target": "< 1",
                    "note": "signature + canonical re-encoding + Merkle path"})
    figures.append({"name": "inclusion proof: Merkle path", "value": max(hash_bytes), "unit": "bytes", "target": "<= 1536",
                    "note": f"whole self-contained JSON document (entry, bytes, path, signed checkpoint): median {statistics.median(sizes):,.0f} bytes"})
    figures.append({"name": "C hashing extension in use", "value": float(hashing.NATIVE), "unit": "(1 = yes)"})
    return figures
