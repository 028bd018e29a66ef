"""Report documents at scale: the decision dossier of one request among 10 million, and the
examiner evidence pack of a regulation pack over the whole ledger.

The full scale builds (once, then reuses) a ledger of 10,000,000 requests under
bench-out/reports-10000000/ with the same request flow as the SQL benchmark, but with an
Ed25519 signing key, so every seal writes a signed checkpoint the documents can rest on and
prove against (building it takes about five minutes on two cores).

Figures:
- the dossier with inclusion proofs only (the fast path: side index, O(log n) proofs):
  build (check, reconstruct, prove) and render (layout, drawing, sealing, self-verification)
  in one warm process, over random requests; target under 3 s;
- the same as a fresh `mrm report decision` command, Python start and imports included;
- the dossier after a whole-ledger HMAC verification (what `--verification full` costs);
- the validation history of the slot, with inclusion proofs only;
- the examiner evidence pack (SR 11-7, in force over the ledger's whole period, and KFCPA,
  whose checks run over every decision) with inclusion proofs only: total and where the time
  goes (open, pack evaluation, the charts' queries, proofs, assembly, render), on a
  10,000,013-entry ledger (2,500,000 requests, built once under bench-out/reports-2500000/)
  and on the 40,000,013-entry one; target under 30 s for the 10-million-entry ledger;
- how long the validation history is as a slot's record grows: the demo year's history
  (the demo at its default 50,000 requests, built once under bench-out/demo-50000/) up to
  its 8th, 16th, ... gate decision and over the whole year, in pages, with its exceptions,
  routine rejects and proof rows (`python -m benchmarks.bench_reports validation-length`
  prints only these).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import Keyring, Ledger
from ledger.note import Signer
from ledger.read import snapshot
from mrm.synthetic import request_batches

SCALES = {"quick": 200_000, "full": 10_000_000}
EVIDENCE_SCALES = {"quick": (200_000,), "full": (2_500_000, 10_000_000)}  # requests; x4 + 13 entries
EVIDENCE_PACKS = ("sr-11-7", "kfcpa")
TARGET_S = 3.0
EVIDENCE_TARGET_S = 30.0
REPO = Path(__file__).resolve().parents[1]
CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _keyring() -> Keyring:
    signer = Signer("bench-ledger", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    return Keyring.from_key("bench-k1", bytes(range(32))).with_signer(signer)


def ensure_ledger(n_requests: int, out: Path = Path("bench-out")) -> tuple[Path, Path, dict]:
    """(ledger, keyring file, build info) of the signed benchmark ledger, built once."""
    base = out / f"reports-{n_requests}"
    path, keyring_file, info_file = base / "ledger", base / "keyring.json", base / "build.json"
    if info_file.exists() and path.exists() and keyring_file.exists():
        return path, keyring_file, json.loads(info_file.read_text())
    import shutil

    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    keyring = _keyring()
    keyring.save(keyring_file)
    started, entries = time.perf_counter(), 0
    with Ledger.create(path, keyring, actor="bench") as ledger:
        for table, batch in request_batches(n_requests):
            ledger.append(table, batch)
            entries += len(batch)
    info = {"requests": n_requests, "entries": entries + 1, "seconds": round(time.perf_counter() - started, 1)}
    info_file.write_text(json.dumps(info))
    return path, keyring_file, info


def sample_requests(path: Path, n: int, seed: int = 3) -> list[str]:
    files = snapshot(path).files["model_inference"]
    rng = np.random.default_rng(seed)
    out = []
    for f in rng.choice(len(files), size=n):
        column = pq.read_table(files[f], columns=["request_id"]).column("request_id")
        out.append(column[int(rng.integers(len(column)))].as_py())
    return out


def _cli_wall(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; from mrm.cli import main; sys.argv[0] = 'mrm'; main()", *args],
                   capture_output=True, check=True, env=env)
    return time.perf_counter() - started


def run(scale: str) -> list[dict]:
    from reports.documents import (
        DecisionQuery,
        TrustPlan,
        ValidationScope,
        build_decision_report,
        build_validation_report,
        establish_basis,
    )
    from reports.render import render_pdf

    n = SCALES[scale]
    path, keyring_file, info = ensure_ledger(n)
    keyring = Keyring.load(keyring_file)
    requests = sample_requests(path, 9 if scale == "full" else 5)
    figures: list[dict] = []
    what = f"{info['requests']:,} requests = {info['entries']:,} entries"

    proofs_only = TrustPlan.inclusion_proofs(keyring.verifiers())
    build_decision_report(path, DecisionQuery(request_id=requests[0]), proofs_only)  # warm-up: file metadata, imports
    builds, renders, totals, pages = [], [], [], 0
    for rid in requests[1:]:
        t0 = time.perf_counter()
        report = build_decision_report(path, DecisionQuery(request_id=rid), proofs_only)
        t1 = time.perf_counter()
        rendered = render_pdf(report, keyring.signer, created=CREATED)
        t2 = time.perf_counter()
        builds.append(t1 - t0)
        renders.append(t2 - t1)
        totals.append(t2 - t0)
        pages = rendered.page_count
    t = time.perf_counter()
    basis = establish_basis(path, proofs_only)
    basis_s = time.perf_counter() - t
    figures.append({"name": "decision dossier, proofs only: build + render (median)", "value": statistics.median(totals), "unit": "s",
                    "target": f"< {TARGET_S:.0f} s",
                    "note": f"{what}; max {max(totals):.2f} s over {len(totals)} random requests, {pages} pages; build (open, "
                            f"reconstruct, prove) median {statistics.median(builds):.2f} s of which opening the snapshot "
                            f"{basis_s:.2f} s; render median {statistics.median(renders):.2f} s; checkpoint size {basis.checkpoint.size:,}"})
    out = Path("bench-out") / "dossier.pdf"
    wall = _cli_wall(["report", "decision", str(path), "--request-id", requests[1], "--keyring", str(keyring_file),
                      "--verification", "proofs", "-o", str(out)])
    figures.append({"name": "mrm report decision --verification proofs, whole command", "value": wall, "unit": "s",
                    "note": "fresh process: Python start and imports (WeasyPrint, matplotlib, DuckDB, Arrow: about 1.4 s) included"})

    t = time.perf_counter()
    report = build_decision_report(path, DecisionQuery(request_id=requests[2]), TrustPlan.hmac_chain(keyring))
    render_pdf(report, keyring.signer, created=CREATED)
    figures.append({"name": "decision dossier after whole-ledger HMAC verification", "value": time.perf_counter() - t, "unit": "s",
                    "note": f"verification dominates: {report.meta.verification.headline}"})

    t = time.perf_counter()
    report = build_validation_report(path, ValidationScope("product_reco"), proofs_only)
    rendered = render_pdf(report, keyring.signer, created=CREATED)
    figures.append({"name": "validation history of the slot, proofs only: build + render", "value": time.perf_counter() - t,
                    "unit": "s", "note": f"{rendered.page_count} pages"})
    figures += evidence_figures(scale)
    figures += validation_length_figures()
    return figures


def validation_length_figures(demo_out: Path = Path("bench-out") / "demo-50000", steps: int = 8) -> list[dict]:
    """Pages of the demo slot's validation history up to every ``steps``-th gate decision and
    over the whole year (inclusion proofs only, as an examiner's copy would be built)."""
    from mrm.demo.scenario import SLOT, run_demo
    from reports.documents import TrustPlan, ValidationScope, build_validation_report, establish_basis
    from reports.documents.history import read_slot_history
    from reports.render import render_pdf

    if not (demo_out / "demo-result.json").exists():
        run_demo(demo_out)
    ledger, keyring = demo_out / "ledger", Keyring.load(demo_out / "ledger.keyring.json")
    plan = TrustPlan.inclusion_proofs(keyring.verifiers())
    decisions = read_slot_history(establish_basis(ledger, plan).source, SLOT, None, None).decisions
    # Each cut ends just after a decision, so the history holds exactly that many.
    cuts = [(n, decisions[n - 1].ts + dt.timedelta(microseconds=1)) for n in range(steps, len(decisions), steps)]
    cuts.append((len(decisions), None))
    figures = []
    for n, until in cuts:
        report = build_validation_report(ledger, ValidationScope(SLOT, until=until), plan)
        rendered = render_pdf(report, keyring.signer, created=CREATED)
        shown = decisions[:n]
        exceptions = sum(1 for d in shown if not d.routine)
        proven = len(json.loads(next(a.data for a in report.attachments if a.name == "inclusion-proofs.json"))["entries"])
        figures.append({"name": f"validation history, demo slot up to gate decision {n}", "value": rendered.page_count,
                        "unit": "pages",
                        "note": f"{n} decisions: {exceptions} exceptional, {n - exceptions} routine rejects; "
                                f"{proven} entries proven"})
    return figures


if __name__ == "__main__" and sys.argv[1:] == ["validation-length"]:
    for figure in validation_length_figures():
        print(f"{figure['name']:<52} {figure['value']:>4} {figure['unit']}   {figure['note']}")


def evidence_figures(scale: str, packs: tuple[str, ...] = EVIDENCE_PACKS) -> list[dict]:
    """The examiner evidence pack over each benchmark ledger's whole period, proofs only."""
    from reports.documents import EvidenceScope, TrustPlan, build_evidence_report
    from reports.render import render_pdf

    figures = []
    for n in EVIDENCE_SCALES[scale]:
        path, keyring_file, info = ensure_ledger(n)
        keyring = Keyring.load(keyring_file)
        plan = TrustPlan.inclusion_proofs(keyring.verifiers())
        for pack in packs:
            timings: dict[str, float] = {}
            t0 = time.perf_counter()
            report = build_evidence_report(path, EvidenceScope(pack), plan, timings=timings)
            t1 = time.perf_counter()
            rendered = render_pdf(report, keyring.signer, created=CREATED)
            t2 = time.perf_counter()
            steps = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
            judged = sum(1 for s in report.sections for _ in s.walk())
            figures.append({
                "name": f"evidence pack {pack}, {info['entries']:,} entries, proofs only: build + render",
                "value": t2 - t0, "unit": "s",
                "target": f"< {EVIDENCE_TARGET_S:.0f} s" if info["entries"] <= 10_000_013 else None,
                "note": f"{info['requests']:,} requests; build {t1 - t0:.1f} s ({steps}); render {t2 - t1:.1f} s, "
                        f"{rendered.page_count} pages, {len(report.attachments)} attachments, {judged} sections",
            })
        out = Path("bench-out") / f"evidence-{packs[0]}-{n}.pdf"
        wall = _cli_wall(["report", "evidence", str(path), "--pack", packs[0], "--keyring", str(keyring_file),
                          "--verification", "proofs", "-o", str(out)])
        figures.append({"name": f"mrm report evidence --pack {packs[0]} --verification proofs, {info['entries']:,} entries",
                        "value": wall, "unit": "s",
                        "note": "fresh process: Python start and imports included"})
    return figures
