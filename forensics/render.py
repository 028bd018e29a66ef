"""A decision record as text for a terminal or a plain-text dossier."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .reconstruct import DecisionRecord, EntryRef


def _iso(ts) -> str:
    from .reconstruct import iso

    return iso(ts)


def _ref(e: "EntryRef") -> str:
    return f"seq {e.seq}, key {e.key_id}, mac {e.mac[:16]}..."


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:+.4g}"


def decision_text(r: "DecisionRecord", top: int = 5) -> str:
    i = r.inference
    lines = [
        f"Decision record    request {r.request_id}",
        f"Ledger             {r.attestation.path} ({r.ledger_id})",
        f"Evidence           {r.attestation.line()}",
        f"Found by           {r.lookup}",
        "",
        f"Subject            {r.subject_id}",
        f"Decided at         {_iso(i.entry.ts)}  ({_ref(i.entry)}, written by {i.entry.actor})",
        f"Model              slot {i.model_slot}, version {i.model_version}" + (f", route {i.route}" if i.route else ""),
        f"Input digest       sha256:{i.input_digest}",
        f"Model output       {i.decision}" + (f"   scores: {', '.join(f'{k} {v:.3f}' for k, v in i.scores[:top])}" if i.scores else ""),
        f"Served output      {r.served_output if r.served_output is not None else '(none recorded)' if not r.guardrails else '(nothing: blocked)'}",
        f"Latency            {i.latency_ms:.1f} ms",
        "",
        "Data access (who, what, why)",
    ]
    if not r.data_access:
        lines.append("  (none recorded for this request)")
    for a in r.data_access:
        lines.append(f"  {_iso(a.entry.ts)}  {a.operator} {a.access_type} {a.dataset} [{', '.join(a.columns)}]")
        lines.append(f"      purpose {a.purpose}; {a.row_count} row(s); {_ref(a.entry)}")
    lines += ["", "Top attributions"]
    if not r.attributions:
        lines.append("  (none recorded)")
    for a in r.attributions:
        lines.append(f"  {a.method} for model {a.model_version}  ({_ref(a.entry)})")
        width = max((len(f.feature) for f in a.top_features[:top]), default=0)
        for f in a.top_features[:top]:
            lines.append(f"    {f.feature:<{width}}  contribution {_num(f.contribution):>10}   value {_num(f.value)}")
    lines += ["", "Guardrail verdicts"]
    if not r.guardrails:
        lines.append("  (none recorded)")
    for g in r.guardrails:
        change = f"{g.original_output or '-'} -> {g.final_output or '(nothing served)'}"
        lines.append(f"  {g.gate}: {g.verdict.upper()}  {change}  ({_ref(g.entry)})")
        if g.reason:
            lines.append(f"      reason: {g.reason}")
        if g.criteria:
            lines.append(f"      criteria: {', '.join(f'{k} {v:.4g}' for k, v in g.criteria)}")
    lines += ["", "Why this model version was live"]
    p = r.promotion
    if p is None:
        lines.append(f"  not production at the decision (registry state: {r.version_state or 'unregistered'}; champion: {r.champion_version or 'none'})")
    else:
        who = f"operator {p.operator}" if p.operator else "no operator (automatic)"
        lines.append(f"  {p.decision} of {p.challenger_version} in slot {p.slot} at {_iso(p.entry.ts)} ({_ref(p.entry)})")
        lines.append(f"      trigger {p.trigger}; {who}; written by {p.entry.actor}; replaced {p.champion_version or 'nothing'}")
        lines.append(f"      reason: {p.reason}")
        for c in p.comparison:
            lines.append(
                f"      {c.get('metric')}: challenger {c.get('challenger')} vs champion {c.get('champion')}"
                f" ({'passed' if c.get('passed') else 'failed'}, threshold {c.get('threshold')})"
            )
        lines.append(f"      live from {_iso(p.live_from)}" + (f" until {_iso(p.live_until)}" if p.live_until else " (still production)"))
    lines += ["", "Outcome recorded later"]
    if not r.outcomes:
        lines.append("  (none recorded)")
    for o in r.outcomes:
        observed = f"observed {_iso(o.observed_at)}, " if o.observed_at else ""
        label = f"label {o.label!r}" if o.label is not None else "no label"
        values = f"; values {', '.join(f'{k} {v:.4g}' for k, v in o.values)}" if o.values else ""
        lines.append(f"  {label}{values}  ({observed}recorded {_iso(o.entry.ts)}; {_ref(o.entry)})"
                     + (f", source {o.source}" if o.source else ""))
    if r.other_decisions:
        lines += ["", f"Other decisions for this subject ({len(r.other_decisions)})"]
        for o in r.other_decisions[:10]:
            lines.append(f"  {_iso(o.ts)}  request {o.request_id}  (seq {o.seq})")
        if len(r.other_decisions) > 10:
            lines.append(f"  ... and {len(r.other_decisions) - 10} more")
    if r.notes:
        lines += ["", "Notes"] + [f"  - {n}" for n in r.notes]
    return "\n".join(lines)
