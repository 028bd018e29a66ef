"""Crash-fault property: random writes, seals, checkpoints and kills, with random damage to
the write-ahead log between runs. After every step, every acknowledged entry is either in
the ledger or reported lost by both verifiers, whatever opened the ledger in between."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest

from ledger import IntegrityError, Ledger, verify_ledger
from ledger import wal
from ledger.public import verify_public
from ledger.read import read_table

from .test_recovery import SIGNED

FORK = multiprocessing.get_context("fork")
ROUNDS = 8
RUNS_PER_ROUND = 6
DAMAGE = ("none", "none", "deleted", "cut", "duplicated", "reordered")


def _writer(path: str, seed: int, conn) -> None:
    """Write in every way the API allows and report each acknowledged entry, then close,
    abandon the ledger, or hang until killed."""
    rng = random.Random(seed)
    try:
        ledger = Ledger.open(path, SIGNED, flush_interval=rng.choice([0.0, 0.01, 0.05]),
                             seal_entries=rng.choice([15, 60, 1000]), checkpoint_interval=3600)
    except IntegrityError:
        conn.send(("refused", None, None))
        os._exit(0)
    unacked: list[tuple[int, str]] = []
    for i in range(rng.randint(3, 40)):
        tag = f"{seed}:{i}"
        action = rng.random()
        if action < 0.4:
            seq = ledger.log_operation(event_type="probe", component="crash", status="ok", details={"tag": tag}, durable=True)
            conn.send(("ack", seq, tag))
        elif action < 0.7:
            unacked.append((ledger.log_operation(event_type="probe", component="crash", status="ok", details={"tag": tag}), tag))
        elif action < 0.8:
            ledger.flush()
            for seq, t in unacked:
                conn.send(("ack", seq, t))
            unacked.clear()
        elif action < 0.9:
            ledger.seal()
        else:
            ledger.checkpoint()
    ending = rng.choice(["close", "abandon", "hang"])
    if ending == "close":
        ledger.close()
        for seq, t in unacked:
            conn.send(("ack", seq, t))
    if ending != "hang":
        conn.send(("done", None, None))
        os._exit(0)
    conn.send(("done", None, None))
    time.sleep(60)


def _damage(path: Path, rng: random.Random) -> str:
    log = path / "wal.log"
    kind = rng.choice(DAMAGE)
    if kind == "none" or not log.exists():
        return "none"
    data = log.read_bytes()
    with open(log, "rb") as f:
        frames = wal.scan(f).frames
    if kind == "deleted":
        log.unlink()
    elif kind == "cut" and data:
        os.truncate(log, rng.randrange(len(data)))
    elif kind == "duplicated" and frames:
        fr = rng.choice(frames)
        at = rng.choice([f.end for f in frames])
        log.write_bytes(data[:at] + data[fr.start : fr.end] + data[at:])
    elif kind == "reordered" and len(frames) >= 2:
        i = rng.randrange(len(frames) - 1)
        a, b = frames[i], frames[i + 1]
        log.write_bytes(data[: a.start] + data[b.start : b.end] + data[a.start : a.end] + data[b.end :])
    else:
        return "none"
    return kind


def _present(path: Path) -> set[tuple[int, str]]:
    rows = read_table(path, "operation", columns=["seq", "event_type", "details"]).to_pylist()
    return {(r["seq"], json.loads(r["details"])["tag"]) for r in rows if r["event_type"] == "probe"}


def _reported_lost(report, seq: int) -> bool:
    if any(loss["first_seq"] <= seq <= loss["last_seq"] for loss in report.losses):
        return True
    return any(p.kind == "TRUNCATED" and p.seq is not None and p.seq <= seq for p in report.problems)


def _check(path: Path, acked: dict[int, set[str]], history: list[str]) -> None:
    present = _present(path)
    reports = [verify_ledger(path, SIGNED, workers=1), verify_public(path, SIGNED.verifiers(), workers=1)]
    for seq, tags in sorted(acked.items()):
        for tag in tags:
            if (seq, tag) in present:
                continue
            for report in reports:
                assert _reported_lost(report, seq), (
                    f"acknowledged entry {seq} ({tag}) is neither present nor reported lost by the {report.mode} verifier "
                    f"after {history}:\n{report.to_text()}")


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_every_acknowledged_entry_is_present_or_reported_lost(tmp_path, round_):
    path = tmp_path / "ledger"
    Ledger.create(path, SIGNED).close()
    rng = random.Random(1000 + round_)
    acked: dict[int, set[str]] = {}
    history: list[str] = []
    for run in range(RUNS_PER_ROUND):
        receive, send = FORK.Pipe(duplex=False)
        child = FORK.Process(target=_writer, args=(str(path), round_ * 100 + run, send), daemon=True)
        child.start()
        deadline = time.monotonic() + rng.uniform(0.0, 0.4)
        while time.monotonic() < deadline and child.is_alive():
            time.sleep(0.005)
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        refused = False
        while receive.poll():
            kind, seq, tag = receive.recv()
            if kind == "ack":
                acked.setdefault(seq, set()).add(tag)
            refused |= kind == "refused"
        history.append(f"run {run}{' refused' if refused else ''}")
        _check(path, acked, history)
        history.append(f"damage {_damage(path, rng)}")
        _check(path, acked, history)
        if rng.random() < 0.5:
            try:
                Ledger.repair(path, SIGNED, reason="property test", accept_loss=True)
                history.append("repair")
            except IntegrityError as e:
                history.append(f"repair refused ({e})")
            _check(path, acked, history)
    # In the end the ledger can always be repaired and written again, and it verifies.
    Ledger.repair(path, SIGNED, reason="final", accept_loss=True)
    with Ledger.open(path, SIGNED) as ledger:
        ledger.log_operation(event_type="probe", component="crash", status="ok", details={"tag": "final"})
    _check(path, acked, history)
    assert verify_ledger(path, SIGNED, workers=1).ok
    assert verify_public(path, SIGNED.verifiers(), workers=1).ok
