"""Crashes at random instants lose nothing acknowledged; concurrent writers share one chain."""

import multiprocessing
import os
import random
import signal
import time

import pytest

from ledger import Keyring, Ledger, verify_ledger
from mrm.synthetic import inference_batch

from .conftest import KEY
from .helpers import all_rows

FORK = multiprocessing.get_context("fork")
CRASHES = 50


def _inference(i: int) -> dict:
    return dict(request_id=f"req-{i}", subject_id=f"cust-{i % 97}", model_slot="reco", model_version="v1",
                input_digest=f"{i:064x}", decision="bond_fund", latency_ms=1.0 + i % 13)


def _writer(path: str, seed: int, acks) -> None:
    """Write forever in every way the API allows; report each acknowledged head."""
    rng = random.Random(seed)
    keyring = Keyring.from_key("test-k1", KEY)
    ledger = Ledger.open(path, keyring, flush_interval=0.02, seal_entries=rng.choice([50, 300, 2000]))
    acks.send(("started", -1))
    i = 0
    while True:
        action = rng.random()
        if action < 0.5:
            seq = ledger.log("model_inference", _inference(i))
        elif action < 0.7:
            n = rng.randint(1, 400)
            seq = ledger.append("model_inference", inference_batch(n, seed=i)).stop - 1
        elif action < 0.85:
            seq = ledger.log("model_inference", _inference(i), durable=True)
            acks.send(("ack", seq))
        else:
            ledger.flush()
            acks.send(("ack", ledger.head.seq))
        i += 1


@pytest.mark.parametrize("round_", range(CRASHES))
def test_sigkill_at_a_random_instant_loses_nothing_acknowledged(tmp_path, keyring, round_):
    path = tmp_path / "ledger"
    Ledger.create(path, keyring).close()
    rng = random.Random(round_)
    receive, send = FORK.Pipe(duplex=False)
    child = FORK.Process(target=_writer, args=(str(path), round_, send), daemon=True)
    child.start()
    assert receive.recv()[0] == "started"
    time.sleep(rng.uniform(0.0, 0.4))
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    acknowledged = 0
    while receive.poll():
        kind, seq = receive.recv()
        acknowledged = max(acknowledged, seq)
    with Ledger.open(path, keyring) as ledger:  # recovery
        head = ledger.head.seq
    assert head >= acknowledged
    seqs = [r["seq"] for r in all_rows(path)]
    assert seqs == list(range(head + 1))
    assert not list((path / "tables").rglob("*.tmp")), "half-written files remain"
    report = verify_ledger(path, keyring, workers=1)
    assert report.ok, report.to_text()


def _concurrent_writer(path: str, worker: int, n: int) -> None:
    keyring = Keyring.from_key("test-k1", KEY)
    with Ledger.open(path, keyring, actor=f"writer-{worker}") as ledger:
        for i in range(n):
            ledger.log("model_inference", _inference(worker * 1_000_000 + i))


def test_four_processes_write_one_chain(tmp_path, keyring):
    path = tmp_path / "ledger"
    Ledger.create(path, keyring).close()
    workers = [FORK.Process(target=_concurrent_writer, args=(str(path), w, 5000)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
        assert p.exitcode == 0
    rows = all_rows(path)
    assert len(rows) == 20_001 and [r["seq"] for r in rows] == list(range(20_001))
    for w in range(4):  # each writer's entries are all there, in its own order
        mine = [int(r["request_id"][4:]) for r in rows if r["actor"] == f"writer-{w}"]
        assert mine == [w * 1_000_000 + i for i in range(5000)]
    report = verify_ledger(path, keyring)
    assert report.ok and report.entries == 20_001, report.to_text()
