"""`make bench`: run every benchmarks/bench_*.py module and print its figures.

Each module exposes `run(scale: str) -> list[dict]`; a dict is one figure with keys
`name`, `value`, `unit`, and optionally `baseline`, `baseline_value`, `ratio`, `target`,
`note`. Figures are ratios against baselines measured in the same run, because these
machines are shared and noisy. Results also go to bench-out/results.json, one entry per
module with the machine and time of the run that measured it.

    python -m benchmarks.run                  # every module, full scale
    python -m benchmarks.run --scale quick    # small sizes, for a smoke run
    python -m benchmarks.run ledger sql       # only these modules
    make bench BENCH_ARGS=storage BENCH_STORAGE_ENTRIES=3000000   # bench_storage.py's size
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import pkgutil
import time
from pathlib import Path

import benchmarks


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def _merge_into(path: Path, results: dict) -> None:
    """Write this run's modules into results.json, keeping other modules' figures from earlier
    runs (`make bench BENCH_ARGS=sql` must not erase the ledger figures); each module records
    the run it came from."""
    merged: dict = {"figures": {}, "runs": {}}
    try:
        previous = json.loads(path.read_text())
        if isinstance(previous.get("figures"), dict) and isinstance(previous.get("runs"), dict):
            merged = previous
    except (OSError, ValueError):
        pass
    run = {k: results[k] for k in ("machine", "scale", "started")}
    for name, figures in results["figures"].items():
        merged["figures"][name] = figures
        merged["runs"][name] = run
    path.write_text(json.dumps(merged, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="module names without bench_ (default: all)")
    parser.add_argument("--scale", choices=["quick", "full"], default="full")
    args = parser.parse_args()
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    selected = args.modules or names
    results = {"machine": machine(), "scale": args.scale, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "figures": {}}
    print(f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, Python {results['machine']['python']}")
    for name in selected:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"\n== {name}")
        figures = module.run(args.scale)
        results["figures"][name] = figures
        for f in figures:
            line = f"  {f['name']:<52} {f['value']:>14,.1f} {f['unit']}"
            if f.get("ratio") is not None:
                line += f"   x{f['ratio']:.2f} vs {f['baseline']}"
            if f.get("target") is not None:
                line += f"   (target {f['target']})"
            print(line)
            if f.get("note"):
                print(f"      {f['note']}")
    out = Path("bench-out")
    out.mkdir(exist_ok=True)
    _merge_into(out / "results.json", results)
    print(f"\nresults: {out / 'results.json'}")


if __name__ == "__main__":
    main()
