"""`mrm copy` and ledger.transfer: a whole ledger moves between stores, verified at both
ends; a source that does not verify is not copied unless asked, and then the result says
so; a stopped copy is never a ledger."""

import json
import threading

import pytest
from click.testing import CliRunner

from ledger import IntegrityError, Ledger, verify_ledger
from ledger.errors import InputError
from ledger.keys import Keyring
from ledger.store import LocalStore
from ledger.transfer import VerifyOutcome, copy_ledger, frozen_view, is_mutable, mirror
from mrm.cli import main

from .conftest import KEY
from .helpers import edit_rows, fingerprint, log_event, segment_files


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env or {"MRM_KEYRING": "", "MRM_HMAC_KEY": ""})


@pytest.fixture
def keyring_file(tmp_path, keyring):
    path = tmp_path / "ring.json"
    keyring.save(path)
    return path


def hmac_verifier(keyring):
    def check(path):
        report = verify_ledger(path, keyring)
        return VerifyOutcome(report.ok, f"{report.entries} entries" if report.ok else str(report.problems[0]))
    return check


def test_copy_is_the_same_ledger_and_verifies(segmented, tmp_path, keyring_file):
    result = run("copy", segmented, tmp_path / "copy", "--keyring", keyring_file, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["source_verified"] and doc["destination_verified"] and not doc["copied_unverified"]
    source = {k: v for k, v in fingerprint(segmented).items() if k != "tree/lock"}  # a writer's lock file
    copied = fingerprint(tmp_path / "copy")
    assert copied == source and doc["objects"] == len(source)
    # The copy is independent of its source: no file is shared (a hard link would let an
    # edit of one change the other).
    for rel in source:
        assert (segmented / rel).stat().st_ino != (tmp_path / "copy" / rel).stat().st_ino
    assert not list(tmp_path.glob(".copy.*")), "working files left behind"


def test_a_source_that_does_not_verify_is_not_copied(segmented, tmp_path, keyring_file):
    edit_rows(segment_files(segmented, "model_inference")[0], "model_inference",
              lambda rows: [{**r, "decision": "approve"} for r in rows])
    result = run("copy", segmented, tmp_path / "copy", "--keyring", keyring_file)
    assert result.exit_code == 1, result.output
    assert "does not verify, so it was not copied" in result.output
    assert not (tmp_path / "copy").exists() and not list(tmp_path.glob(".copy*"))

    forced = run("copy", segmented, tmp_path / "copy", "--keyring", keyring_file, "--allow-unverified")
    assert forced.exit_code == 1, forced.output  # copied, but the copy does not verify either: still a failure
    assert "does not verify" in forced.output


def test_allow_unverified_says_so(segmented, tmp_path):
    refused = run("copy", segmented, tmp_path / "copy")
    assert refused.exit_code == 2 and "no key to verify" in refused.output
    result = run("copy", segmented, tmp_path / "copy", "--allow-unverified", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["copied_unverified"] is True and doc["source_verified"] is None
    text = run("copy", segmented, tmp_path / "copy2", "--allow-unverified").output
    assert "COPIED UNVERIFIED" in text


def test_copy_refuses_a_destination_in_use(segmented, tmp_path, keyring_file):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = run("copy", segmented, tmp_path / "busy", "--keyring", keyring_file)
    assert result.exit_code == 2 and "not an empty directory" in result.output
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    same = run("copy", segmented, segmented, "--keyring", keyring_file)
    assert same.exit_code == 2


def test_retention_needs_object_storage(segmented, tmp_path, keyring_file):
    result = run("copy", segmented, tmp_path / "copy", "--keyring", keyring_file, "--retain-days", "30")
    assert result.exit_code == 2 and "keeps no retention" in result.output
    past = run("copy", segmented, tmp_path / "copy", "--keyring", keyring_file, "--retain-until", "2001-01-01")
    assert past.exit_code == 2 and "not in the future" in past.output
    assert not (tmp_path / "copy").exists()


def test_the_copy_of_a_ledger_being_written_is_one_instant(tmp_path, keyring):
    """A writer keeps appending and sealing while the copy runs: the copy is the ledger at
    the instant it was frozen, and verifies."""
    path = tmp_path / "live"
    Ledger.create(path, keyring, actor="test").close()
    stop = threading.Event()

    def write():
        with Ledger.open(path, keyring, actor="test", seal_entries=25) as ledger:
            for i in range(2_000):
                if stop.is_set():
                    break
                log_event(ledger, i, durable=i % 10 == 0)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        reports = [copy_ledger(path, tmp_path / f"copy{i}", hmac_verifier(keyring)) for i in range(3)]
    finally:
        stop.set()
        writer.join(timeout=60)
    assert all(r.source_check.ok and r.destination_check.ok for r in reports)
    assert verify_ledger(path, keyring).ok


def test_frozen_view_links_immutable_and_copies_mutable(segmented, tmp_path):
    view = frozen_view(LocalStore(segmented), tmp_path / "view")
    for obj in view.objects:
        shared = (segmented / obj.key).stat().st_ino == (tmp_path / "view" / obj.key).stat().st_ino
        assert shared != is_mutable(obj.key), obj.key
    assert {"HEAD", "wal.log"} <= {o.key for o in view.objects}
    assert "LOCK" not in {o.key for o in view.objects}


def test_a_copy_verifies_only_with_the_source_keys(segmented, tmp_path):
    wrong = Keyring.from_key("test-k1", bytes(32))
    with pytest.raises(IntegrityError, match="does not verify, so it was not copied"):
        copy_ledger(segmented, tmp_path / "copy", hmac_verifier(wrong))
    with pytest.raises(InputError, match="verified at both ends"):
        copy_ledger(segmented, tmp_path / "copy", None)
    report = copy_ledger(segmented, tmp_path / "copy", hmac_verifier(Keyring.from_key("test-k1", KEY)))
    assert report.destination_check.ok


def test_a_local_store_is_its_own_mirror(segmented):
    view = mirror(LocalStore(segmented))
    assert view.path == segmented and view.downloaded == 0
