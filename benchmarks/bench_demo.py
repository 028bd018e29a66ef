"""The demo scenario as the realistic workload: a year of the bank's recommender.

Full scale replays a million requests (about five million entries: four per request plus
its late outcome, and the weekly retrains, gates and monitors); quick scale the default
50,000. Figures: the whole run and its parts, entries written per second while simulating,
verification throughput with the HMAC key and with the public key, and the output's size.
The simulation's fixed part (52 retrains, evaluations and gate runs) does not grow with the
request count; the rest does.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from mrm.demo.scenario import run_demo

REQUESTS = {"quick": 50_000, "full": 1_000_000}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(scale: str) -> list[dict]:
    n = REQUESTS[scale]
    out = Path(tempfile.mkdtemp(prefix="mrm-bench-demo-")) / "demo-out"
    try:
        started = time.perf_counter()
        result = run_demo(out, n)
        total = time.perf_counter() - started
        s = result.seconds
        ledger_bytes, all_bytes = _size(result.paths.ledger), _size(out)
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    note = f"{n:,} requests, {result.entries:,} entries"
    return [
        {"name": "demo: whole run", "value": total, "unit": "s", "note": note},
        {"name": "demo: simulate the year (write the ledger)", "value": s["simulate"], "unit": "s"},
        {"name": "demo: entries written per second (simulation)", "value": result.entries / s["simulate"],
         "unit": "entries/s"},
        {"name": "demo: verify with the HMAC key", "value": result.entries / s["verify_hmac"], "unit": "entries/s"},
        {"name": "demo: verify with the public key", "value": result.entries / s["verify_public"], "unit": "entries/s"},
        {"name": "demo: forensic queries and proof", "value": s["forensics"], "unit": "s"},
        {"name": "demo: ledger size", "value": ledger_bytes / 1e6, "unit": "MB",
         "note": f"{ledger_bytes / result.entries:.0f} bytes per entry; whole output {all_bytes / 1e6:.0f} MB"},
    ]
