"""Profiling the current best during a run: after the baseline and after each accepted change, so the
next plan and attempts see where the time goes now (`optimize profile` on its own is agent/profiling.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from agent import lease
from agent.session import Session
from agent.target import new_seed, with_seed


def profile(s: Session, index: int) -> dict | None:
    """Profile the best into iterations/<index>/profile; the record's `profile` field, or None when off."""
    if not s.options.profile or s.spec.profile.kind == "none" or s.best is None:
        return None
    from tools.profile import profile_target  # the profilers load only when a run profiles

    out = s.store.iteration_dir(index) / "profile"
    s.ui.phase("profiling")
    cmd = with_seed(s.spec.profile.cmd or s.spec.bench.cmd, new_seed())
    with lease.shared("a profile"):
        result = profile_target(s.spec.profile.kind, cmd, s.best.worktree, out,
                                timeout=s.spec.profile.timeout, previous=s.profile_dir)
    for w in result.warnings:
        s.note(f"profiler: {w}", "warning")
    if result.collapsed:
        s.profile_dir = result.collapsed.parent
    s.profile_text = result.summary or s.profile_text
    return {"profiler": result.profiler, "flamegraph": _rel(result.flamegraph, s.store.path),
            "collapsed": _rel(result.collapsed, s.store.path), "allocations": _rel(result.allocations, s.store.path)}


def _rel(path: Path | None, base: Path) -> str | None:
    if path is None:
        return None
    with contextlib.suppress(ValueError):
        return str(path.relative_to(base))
    return str(path)
