import shutil
from pathlib import Path

import pytest

from ledger import Keyring, Ledger
from mrm.synthetic import stream
from tests.s3_server import s3_server  # noqa: F401  (the loopback S3 server, session-wide)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.from_key("test-k1", KEY)


@pytest.fixture
def ledger_path(tmp_path: Path, keyring: Keyring) -> Path:
    """An empty ledger (genesis only)."""
    path = tmp_path / "ledger"
    Ledger.create(path, keyring, actor="test").close()
    return path


def build_segmented_ledger(path: Path, keyring: Keyring, requests_per_segment: int = 6, segments: int = 3) -> None:
    """Genesis, then `segments` sealed segments of request flows, promotions and operations."""
    entries = list(stream(requests_per_segment * segments, seed=11))
    chunk = -(-len(entries) // segments)
    with Ledger.create(path, keyring, actor="test") as ledger:
        for start in range(0, len(entries), chunk):
            # non-ASCII text, a float in details and a NULL, for canonical-encoding tampering
            ledger.log_operation(event_type="monitor_check", component="drift", status="ok", actor="analyste-josé",
                                 details={"psi": 1.0, "note": "café"})
            for table, row in entries[start : start + chunk]:
                ledger.log(table, row)
            ledger.seal()


@pytest.fixture(scope="session")
def segmented_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "ledger"
    build_segmented_ledger(path, Keyring.from_key("test-k1", KEY))
    return path


@pytest.fixture
def segmented(tmp_path: Path, segmented_template: Path) -> Path:
    """A fresh copy of a closed three-segment ledger with entries in all seven tables."""
    path = tmp_path / "ledger"
    shutil.copytree(segmented_template, path)
    return path
