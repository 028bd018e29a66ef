"""A small ledger whose every entry the forensic tests know (see KNOWN below).

Story, slot `reco`, times from T0 = 2025-09-01T00:00:00Z:

  +0h   bootstrap reco-v1 (auto)
  +1h   r1 for s1: data access by teller-1, v1 proposes els_note, guardrail MODIFY -> balanced_fund
  +2h   reject reco-v2-rc1 (fidelity check and auc comparison fail)
  +3h   force_promote reco-v2 by officer-7 (manual), replacing v1
  +4h   r2 for s1: v2 proposes bond_fund, guardrail pass
  +5h   r3 for s2: v2 proposes els_note, guardrail BLOCK (nothing served)
  --- sealed: segment 1 ---
  +6h   r4 for s1: shadow inference by reco-v3 (never production then)
  +7h   pending_approval reco-v3; +8h approve reco-v3 by head-of-mrm (manual)
  --- sealed: segment 2 ---
  +9h   r5 for s2: v3 proposes deposit_12m, guardrail pass       (left unsealed, in the log)
  +10h  a stale promote of reco-v9 naming reco-v1 as champion    (refused by the registry)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from ledger import Keyring, Ledger

T0 = dt.datetime(2025, 9, 1, tzinfo=dt.timezone.utc)
H = dt.timedelta(hours=1)
US = dt.timedelta(microseconds=1)
DIGEST = {f"r{i}": f"{i:x}" * 64 for i in range(1, 6)}

REPO = Path(__file__).resolve().parents[1]
KNOWN: dict[str, int] = {}  # name -> seq, filled in by build()


def _scores(output: str) -> dict[str, float]:
    others = [p for p in ("deposit_12m", "bond_fund", "equity_fund") if p != output][:2]
    return {output: 0.7, others[0]: 0.2, others[1]: 0.1}


def _request(ledger: Ledger, rid: str, subject: str, ts: dt.datetime, version: str, output: str, verdict: str,
             final: str | None, *, route: str = "champion", access: bool = True, reason: str | None = None) -> None:
    if access:
        KNOWN[f"{rid}.access"] = ledger.log_data_access(
            ts=ts, operator="teller-1", subject_id=subject, dataset="crm.profile", columns=["age", "assets"],
            purpose="suitability_assessment", access_type="read", row_count=1, request_id=rid)
    KNOWN[f"{rid}.inference"] = ledger.log_model_inference(
        ts=ts + 10 * US, request_id=rid, subject_id=subject, model_slot="reco", model_version=version,
        input_digest=DIGEST[rid], decision=output, latency_ms=3.5, scores=_scores(output),
        route=route)
    KNOWN[f"{rid}.attribution"] = ledger.log_attribution(
        ts=ts + 20 * US, request_id=rid, model_version=version, method="shap",
        top_features=[{"feature": "risk_tolerance", "value": -1.5, "contribution": -0.42},
                      {"feature": "assets", "value": 2.0, "contribution": 0.31},
                      {"feature": "age", "value": 41.0, "contribution": 0.05}])
    KNOWN[f"{rid}.guardrail"] = ledger.log_guardrail(
        ts=ts + 30 * US, request_id=rid, gate="kfcpa_art17", verdict=verdict, criteria={"risk_gap": 2.0 if verdict != "pass" else 0.0},
        reason=reason, original_output=output, final_output=final)


def build(path: Path, keyring: Keyring) -> dict[str, int]:
    KNOWN.clear()
    ledger = Ledger.create(path, keyring, actor="reco-api")
    KNOWN["bootstrap"] = ledger.log_model_promotion(
        ts=T0, slot="reco", challenger_version="reco-v1", decision="bootstrap", trigger="auto", reason="no champion in slot reco")
    _request(ledger, "r1", "s1", T0 + 1 * H, "reco-v1", "els_note", "modify", "balanced_fund", reason="risk grade above profile")
    KNOWN["reject"] = ledger.log_model_promotion(
        ts=T0 + 2 * H, slot="reco", champion_version="reco-v1", challenger_version="reco-v2-rc1", decision="reject", trigger="auto",
        reason="rejected by the fidelity floor: 1 failing check: fidelity:suitability (js 0.09 > max 0.05)",
        comparison=[{"metric": "auc", "champion": 0.78, "challenger": 0.77, "delta_rel": -0.0128, "threshold": 0.005, "passed": False},
                    {"metric": "brier", "champion": 0.2, "challenger": 0.2, "delta_rel": 0.0, "threshold": 0.02, "passed": True}],
        details={"stage": "fidelity", "checks": [{"name": "fidelity:suitability", "passed": False, "detail": "js 0.09 > max 0.05"},
                                                 {"name": "functional:schema", "passed": True, "detail": "ok"}]})
    KNOWN["force"] = ledger.log_model_promotion(
        ts=T0 + 3 * H, slot="reco", champion_version="reco-v1", challenger_version="reco-v2", decision="force_promote", trigger="manual",
        operator="officer-7", reason="urgent fix of the suitability mapping (MRM-118)")
    _request(ledger, "r2", "s1", T0 + 4 * H, "reco-v2", "bond_fund", "pass", "bond_fund")
    _request(ledger, "r3", "s2", T0 + 5 * H, "reco-v2", "els_note", "block", None, reason="customer profile not confirmed")
    ledger.seal()
    _request(ledger, "r4", "s1", T0 + 6 * H, "reco-v3", "equity_fund", "pass", "equity_fund", route="shadow", access=False)
    KNOWN["pending"] = ledger.log_model_promotion(
        ts=T0 + 7 * H, slot="reco", champion_version="reco-v2", challenger_version="reco-v3", decision="pending_approval", trigger="auto",
        reason="cleared every gate; auto_promote is off")
    KNOWN["approve"] = ledger.log_model_promotion(
        ts=T0 + 8 * H, slot="reco", champion_version="reco-v2", challenger_version="reco-v3", decision="approve", trigger="manual",
        operator="head-of-mrm", reason="validation report MRM-120 reviewed")
    ledger.close()
    KNOWN.update(_write_unsealed(path, keyring))
    return dict(KNOWN)


_UNSEALED = """
import json, os, sys
from tests.forensic_ledger import KNOWN, T0, H, _request
from ledger import Keyring, Ledger
ledger = Ledger.open(sys.argv[1], Keyring.from_key(sys.argv[2], bytes.fromhex(sys.argv[3])), actor="reco-api")
_request(ledger, "r5", "s2", T0 + 9 * H, "reco-v3", "deposit_12m", "pass", "deposit_12m")
KNOWN["stale"] = ledger.log_model_promotion(
    ts=T0 + 10 * H, slot="reco", champion_version="reco-v1", challenger_version="reco-v9", decision="promote", trigger="auto",
    reason="stale decision", durable=True)
print(json.dumps(KNOWN))
sys.stdout.flush()
os._exit(0)  # a writer that stopped without sealing: its entries stay in the write-ahead log
"""


def _write_unsealed(path: Path, keyring: Keyring) -> dict[str, int]:
    """r5 and a stale promotion, acknowledged but left unsealed by a writer that stopped."""
    key_id = keyring.active
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", _UNSEALED, str(path), key_id, keyring.key(key_id).hex()],
        capture_output=True, text=True, env=env, check=True, cwd=REPO,
    )
    return json.loads(out.stdout)
