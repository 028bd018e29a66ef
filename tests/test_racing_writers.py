"""Two writers on two "machines" (two processes, each with its own local write-ahead log)
race to extend one ledger on the loopback S3 server, 1,000 attempts in all: the chain never
forks, and every entry a writer was told is safe is in it, under that writer's name.

Each writer keeps its ledger open; each attempt is one durable entry, and every fifth
commit seals (`seal_entries=5`), after which the other writer can take the ledger over. An
attempt either wins HEAD's compare-and-swap and is acknowledged, or stops with
WriterConflict before acknowledging anything, then waits a few random milliseconds."""

import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from pathlib import Path

from ledger import Ledger, WriterConflict, verify_ledger
from ledger.read import read_table
from ledger.store import open_store
from ledger.transfer import mirror

from .conftest import KEY

ATTEMPTS = 500  # per writer
SECONDS = 150  # per writer, at most: the loop stops at whichever comes first
ROOT = Path(__file__).resolve().parents[1]

WRITER = textwrap.dedent(
    """
    import random, sys, time
    from ledger import Keyring, Ledger, WriterConflict
    url, work, name, attempts, seconds, acks_path = sys.argv[1:7]
    keyring = Keyring.from_key("test-k1", bytes.fromhex(sys.stdin.readline().strip()))
    deadline = time.monotonic() + float(seconds)
    ledger, outcomes = None, {"acknowledged": 0, "conflict": 0}
    with open(acks_path, "a", encoding="utf-8") as acks:
        for i in range(int(attempts)):
            if time.monotonic() > deadline:
                break
            try:
                if ledger is None:
                    ledger = Ledger.open(url, keyring, work_dir=work, actor=name, seal_entries=5, flush_interval=0)
                seq = ledger.log_operation(event_type="race", component="test", status="ok",
                                           details={"attempt": i}, durable=True)
            except WriterConflict:
                outcomes["conflict"] += 1
                time.sleep(random.uniform(0, 0.02))
                continue
            acks.write(f"{seq} {name}\\n")
            acks.flush()
            outcomes["acknowledged"] += 1
    if ledger is not None:
        try:
            ledger.close()
        except WriterConflict:
            pass  # what it still holds is sealed by the next open of its work directory
    print(outcomes["acknowledged"], outcomes["conflict"])
    """
)


def settle(url, keyring, works):
    """Open each writer's work directory until every one has sealed what its log holds."""
    for _round in range(20):
        pending = False
        for work in works:
            try:
                Ledger.open(url, keyring, work_dir=work, actor="settle").close()
            except WriterConflict:
                pending = True
        if not pending:
            return
    raise AssertionError("the writers' logs could not all be sealed")


def test_two_processes_racing_a_thousand_times_never_fork(s3_server, keyring, tmp_path):
    url = f"s3://{s3_server.new_bucket()}/race/{uuid.uuid4().hex[:8]}"
    Ledger.create(url, keyring, work_dir=tmp_path / "creator", actor="creator").close()
    names = ["host-a", "host-b"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(tmp_path / name), name, str(ATTEMPTS), str(SECONDS),
             str(tmp_path / f"{name}.acks")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )
        for name in names
    ]
    for p in procs:  # both get the key before either is waited for: they run at once
        p.stdin.write(KEY.hex() + "\n")
        p.stdin.close()
    outputs = [(p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.wait(timeout=SECONDS + 120)
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    counts = [tuple(map(int, out.split())) for out, _ in outputs]
    assert sum(a + c for a, c in counts) >= 200, f"the race hardly ran: {counts}"
    assert all(a > 0 for a, _ in counts), f"one writer never won: {counts}"
    settle(url, keyring, [tmp_path / n for n in names])

    acknowledged: dict[int, str] = {}
    for name in names:
        for line in (tmp_path / f"{name}.acks").read_text().splitlines():
            seq, who = line.split()
            assert int(seq) not in acknowledged, f"two writers acknowledged entry {seq}: a fork"
            acknowledged[int(seq)] = who
    view = mirror(open_store(url), tmp_path / "mirror")
    report = verify_ledger(view.path, keyring)
    assert report.ok, report.to_text()
    rows = read_table(view.path, "operation").to_pylist()
    by_seq = {r["seq"]: r["actor"] for r in rows}
    assert sorted(by_seq) == list(range(len(by_seq))), "one chain, numbered without a gap"
    handovers = sum(1 for seq in range(2, len(by_seq)) if by_seq[seq] != by_seq[seq - 1])
    assert handovers >= 10, f"the ledger changed hands only {handovers} times: hardly a race"
    lost = {seq: who for seq, who in acknowledged.items() if by_seq.get(seq) != who}
    assert not lost, f"acknowledged entries missing from the chain or under another name: {sorted(lost)[:10]}"
    assert Counter(by_seq.values())["host-a"] >= counts[0][0] and Counter(by_seq.values())["host-b"] >= counts[1][0]
