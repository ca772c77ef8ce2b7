"""A run's record condensed for `optimize show` (the JSON contract in DESIGN.md) and `optimize runs`."""

from __future__ import annotations

from typing import Any

from agent.records import BaselineEvent, ConfirmEvent, IterationEvent, Manifest, RunStore


def run_row(m: Manifest) -> dict[str, Any]:
    return {"run_id": m.run_id, "status": m.status, "target": m.target, "started": m.started}


def show(store: RunStore) -> dict[str, Any]:
    m = store.manifest()
    events = store.events()
    baseline = next((e for e in events if isinstance(e, BaselineEvent)), None)
    iterations = [e for e in events if isinstance(e, IterationEvent)]
    confirm = next((e for e in reversed(events) if isinstance(e, ConfirmEvent)), None)
    accepted = [e for e in iterations if e.verdict == "accepted"]
    metric = m.spec["bench"].get("metric") or {"unit": "s", "better": "lower"}
    best_commit = accepted[-1].commit if accepted else m.base_commit
    initial = baseline.value if baseline else None
    better = metric.get("better", "lower")
    if confirm:  # the headline: baseline and best measured side by side, with the pair's own ratio
        base_value, value, speedup, ci = confirm.baseline_value, confirm.best_value, confirm.speedup, list(confirm.ci)
        basis = "confirmation: baseline and best measured side by side"
    else:  # not confirmed (yet): the product of the accepted steps, bounds multiplied conservatively
        speedup, lo, hi = 1.0, 1.0, 1.0
        for e in accepted:
            speedup, lo, hi = speedup * (e.speedup or 1), lo * (e.ci[0] if e.ci else 1), hi * (e.ci[1] if e.ci else 1)
        ci, base_value = [lo, hi], initial
        # the value the verified steps imply, so that the pair shown agrees with the speedup shown
        value = None if initial is None else initial * speedup if better == "higher" else initial / speedup
        basis = "not confirmed: start-of-run baseline and the product of the verified steps"
    if (m.summary.get("setup") or {}).get("status") == "accepted":  # the baseline is the repaired code
        basis = basis.replace("baseline", "repaired baseline (setup branch)", 1)
    return {
        "run_id": m.run_id,
        "status": m.status,
        "target": m.target,
        "stop_reason": m.stop_reason,
        "metric": {"unit": metric.get("unit", "s"), "better": better},
        "baseline": {"value": base_value, "initial_value": initial, "commit": m.base_commit,
                     "noise_floor": baseline.noise_floor if baseline else None,
                     "min_effect": baseline.min_effect if baseline else None},
        "best": {"branch": f"optimize/{m.run_id}/best", "commit": best_commit, "value": value,
                 "speedup": speedup, "ci": ci, "confirmed": bool(confirm and confirm.verdict == "better"),
                 "basis": basis},
        "reference": confirm.reference if confirm else None,
        "iterations": [{
            "index": e.index, "strategy": e.strategy.get("title", ""), "branch": e.branch, "commit": e.commit,
            "base_commit": e.base_commit, "verdict": e.verdict, "reason": e.reason, "detail": e.detail, "speedup": e.speedup,
            "ci": list(e.ci) if e.ci else None, "pairs": e.pairs, "flags": e.flags,
            "profile": e.profile, "files": f"iterations/{e.index:03d}", "host": e.host,
        } for e in iterations],
        "profile": baseline.profile if baseline else None,
        "tool_calls": m.summary.get("tool_calls", 0),
        "tokens": m.summary.get("tokens", {}),
        # "" when the server reported usage; "tokenizer" or "estimate" when Nightshift counted them itself
        "tokens_counted": m.summary.get("tokens_counted", ""),
        "sandbox": m.sandbox,
        "test_gate": m.summary.get("test_gate"),
        "setup": m.summary.get("setup"),  # the repair phase (agent/repair.py), when there was one
        "record": str(store.path),
    }


def setup_line(setup: dict[str, Any]) -> str:
    """One line for the repair phase: what it changed, or why it was rejected."""
    if setup.get("status") != "accepted":
        return f"setup: repair rejected ({setup.get('reason')}); the attempt is in {setup.get('record')}"
    changes = "; ".join(setup.get("changes", []))
    return (f"{setup['headline']} ({changes}) on branch {setup['branch']}: {setup['tests']} tests pass; "
            "the baseline below is the repaired code")
