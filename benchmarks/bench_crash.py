"""The crash window: how long before a SIGKILL an entry written without `durable=True`
can have been returned and still be lost.

A writer process logs model_inference entries as fast as one thread can (group commit,
the default mode) and stamps the moment each call returned in shared memory; the parent
kills it at a random instant, reopens the ledger, and measures, over the entries that did
not survive, how long before the kill the oldest one had returned. The documented bound
is `flush_interval` plus the time one group commit takes (it holds writers while it
writes and fsyncs); the baseline is `flush_interval` itself.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import statistics
import time
from pathlib import Path

from ledger import Keyring, Ledger
from mrm.synthetic import inference_batch

OUT = Path("bench-out")
FORK = multiprocessing.get_context("fork")
KEY = bytes(range(32))


def _writer(path: str, rows: list[dict], stamps, started, flush_interval: float) -> None:
    ledger = Ledger.open(path, Keyring.from_key("bench-k1", KEY), flush_interval=flush_interval)
    started.set()
    for row in rows:
        seq = ledger.log("model_inference", row)
        stamps[seq] = time.monotonic()
    time.sleep(60)


def crash_windows(kills: int, flush_interval: float, rows_per_run: int = 400_000) -> tuple[list[float], list[int], float]:
    """Per kill: the crash window in seconds and the entries lost; and the write rate."""
    rows = inference_batch(rows_per_run, seed=5).to_pylist()
    rng = random.Random(7)
    windows, lost, rates = [], [], []
    for k in range(kills):
        path = OUT / f"crash-{k}"
        shutil.rmtree(path, ignore_errors=True)
        Ledger.create(path, Keyring.from_key("bench-k1", KEY)).close()
        stamps = FORK.RawArray("d", rows_per_run + 2)
        started = FORK.Event()
        child = FORK.Process(target=_writer, args=(str(path), rows, stamps, started, flush_interval), daemon=True)
        child.start()
        started.wait(60)
        t0 = time.monotonic()
        time.sleep(rng.uniform(0.5, 1.5))
        killed_at = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        with Ledger.open(path, Keyring.from_key("bench-k1", KEY)) as ledger:
            survived = ledger.head.seq
        returned = [s for s in range(1, rows_per_run + 1) if stamps[s] > 0]
        gone = [stamps[s] for s in returned if s > survived]
        windows.append(killed_at - min(gone) if gone else 0.0)
        lost.append(len(gone))
        rates.append(len(returned) / (killed_at - t0))
        shutil.rmtree(path, ignore_errors=True)
    return windows, lost, statistics.median(rates)


def run(scale: str) -> list[dict]:
    kills = 3 if scale == "quick" else 12
    interval = 0.1
    windows, lost, rate = crash_windows(kills, interval)
    note = f"{kills} SIGKILLs at random instants of a single-thread writer at {rate:,.0f} entries/s; flush_interval {interval} s"
    return [
        {"name": "crash window, worst (s)", "value": round(max(windows), 3), "unit": "s", "baseline": "flush_interval",
         "baseline_value": interval, "ratio": round(max(windows) / interval, 2), "note": note},
        {"name": "crash window, median (s)", "value": round(statistics.median(windows), 3), "unit": "s", "baseline": "flush_interval",
         "baseline_value": interval, "ratio": round(statistics.median(windows) / interval, 2), "note": note},
        {"name": "entries lost per crash, worst", "value": max(lost), "unit": "entries", "note": note},
    ]
