"""The serving manifest: what each slot serves, and which ledger entry says so.

Serving systems read this file instead of a mutable registry. It is derived from the ledger
alone (same entries, same manifest), so it can be regenerated at any time and checked against
the ledger by anyone: each slot names the seq of the model_promotion entry that made its
version live, that entry's RFC 6962 leaf hash (SHA-256 of 0x00 || its canonical bytes,
recomputable without the key) and its chain MAC (checkable with the key, by `mrm verify`).

Format ``mrm-serving-manifest/1``::

    {"format": "mrm-serving-manifest/1", "ledger_id": "...", "as_of_seq": 812,
     "slots": {"credit_pd": {"production": "v012", "seq": 57, "ts": "...", "decision": "approve",
                             "operator": "mrm-chair", "entry_hash": "<hex>", "entry_mac": "<hex>",
                             "challenger": null | {"challenger_version", "mode", "challenger_share",
                                                   "experiment", "seq", "ts"}}}}

A slot whose versions were all rejected has ``"production": null`` and no entry fields.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pyarrow.compute as pc

from gates.ledger_io import LedgerSource, load_registry
from ledger.merkle import leaf_hash
from ledger.encoding import encode_table
from ledger.read import as_snapshot, read_table
from ledger.schema import TABLES
from ledger.storage_io import write_file_atomic

MANIFEST_FORMAT = "mrm-serving-manifest/1"


def serving_manifest(source: LedgerSource) -> dict[str, Any]:
    snap = as_snapshot(source)
    view = load_registry(snap)
    promotions = read_table(snap, "model_promotion")
    ledger_id = bytes.fromhex(snap.ledger_id)
    slots: dict[str, Any] = {}
    for slot in view.registry.slots():
        live = view.live_entry(slot)
        traffic = view.traffic(slot)
        doc: dict[str, Any] = {"production": None}
        if live is not None:
            row = promotions.filter(pc.equal(promotions.column("seq"), live["seq"]))
            canonical = encode_table(TABLES["model_promotion"], ledger_id, row).to_pylist()[0]
            doc = {
                "production": live["challenger_version"],
                "seq": live["seq"],
                "ts": live["ts"].isoformat(),
                "decision": live["decision"],
                "operator": live["operator"],
                "entry_hash": leaf_hash(canonical).hex(),
                "entry_mac": row.column("mac")[0].as_py().hex(),
            }
        doc["challenger"] = traffic.to_dict() if traffic is not None else None
        slots[slot] = doc
    return {"format": MANIFEST_FORMAT, "ledger_id": snap.ledger_id, "as_of_seq": snap.last_seq, "slots": slots}


def manifest_json(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def write_manifest(manifest: dict[str, Any], out: str | os.PathLike[str]) -> None:
    """Replace ``out`` atomically: a serving system polling it never reads half a manifest."""
    write_file_atomic(out, manifest_json(manifest).encode("utf-8"))
