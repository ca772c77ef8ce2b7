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
    if confirm:
        speedup, ci, value = confirm.speedup, list(confirm.ci), confirm.best_value
    else:  # not confirmed (yet): the product of the accepted steps, bounds multiplied conservatively
        speedup, lo, hi = 1.0, 1.0, 1.0
        for e in accepted:
            speedup, lo, hi = speedup * (e.speedup or 1), lo * (e.ci[0] if e.ci else 1), hi * (e.ci[1] if e.ci else 1)
        ci, value = [lo, hi], accepted[-1].value if accepted else (baseline.value if baseline else None)
    return {
        "run_id": m.run_id,
        "status": m.status,
        "target": m.target,
        "stop_reason": m.stop_reason,
        "metric": {"unit": metric.get("unit", "s"), "better": metric.get("better", "lower")},
        "baseline": {"value": baseline.value if baseline else None, "commit": m.base_commit,
                     "noise_floor": baseline.noise_floor if baseline else None,
                     "min_effect": baseline.min_effect if baseline else None},
        "best": {"branch": f"optimize/{m.run_id}/best", "commit": best_commit, "value": value,
                 "speedup": speedup, "ci": ci, "confirmed": bool(confirm and confirm.verdict == "better"),
                 # the confirmation measures baseline and best side by side; its own baseline mean goes with it
                 "confirmed_against": confirm.baseline_value if confirm else None},
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
        "sandbox": m.sandbox,
        "record": str(store.path),
    }
