"""`mrm demo` ends with the three documents: a disputed decision's dossier, the slot's
validation history and the SR 11-7 evidence pack, each verifying with the public key it
writes beside them."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mrm.cli import main
from reports.verify import load_verifier_keys, verify_report


def test_the_demo_writes_both_documents_and_they_verify(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "--requests", "120", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["verified"] and doc["disputed_request_id"]
    keys = load_verifier_keys(doc["reports"]["public_key"])
    for kind in ("decision", "validation", "evidence"):
        checked = verify_report(doc["reports"][kind], keys)
        assert checked.ok, (kind, checked.problems)
        assert checked.manifest.kind == kind
