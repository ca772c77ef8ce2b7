"""Confirmation, once the loop stops: the best against the original baseline on a longer schedule (the
headline number, a ConfirmEvent), and an external reference implementation measured beside the best."""

from __future__ import annotations

from agent import verify
from agent.records import ConfirmEvent
from agent.session import Session
from agent.verify import Arm
from tools.bench import SampleError


def confirm(s: Session) -> None:
    """Best against the original baseline with a longer schedule: the headline number."""
    with s.turn():  # an arm of a comparison confirms in its turn (agent/compare.py)
        _confirm(s)


def _confirm(s: Session) -> None:
    if s.best is None or s.base is None or s.best.commit == s.base.commit:
        return
    s.ui.phase("confirming best vs baseline")
    n = s.spec.decide.confirm_pairs
    try:
        m = verify.measure(s.spec, s.base, s.best, looks=[n], min_effect=s.min_effect)
    except (SampleError, verify.OutputMismatch) as e:
        s.note(f"confirmation failed: {e}", "warning")
        return
    d = m.decision
    ref = reference(s)
    s.store.append(ConfirmEvent(best_commit=s.best.commit, speedup=d.speedup, ci=d.ci, pairs=d.pairs,
                                verdict=d.verdict, baseline_value=m.mean("a"), best_value=m.mean("b"),
                                reference=ref))
    s.save_manifest(speedup=d.speedup, ci=list(d.ci), confirmed=d.verdict == "better", reference=ref)
    if d.verdict != "better":
        s.note(f"the stacked changes did not confirm as better than the baseline ({d.verdict}, "
               f"{d.speedup:.3f}x [{d.ci[0]:.3f}, {d.ci[1]:.3f}])", "warning")


def reference(s: Session) -> dict | None:
    """An external implementation (e.g. the numpy reference) measured side by side with the best."""
    cmd = s.spec.bench.reference_cmd
    if not cmd or s.best is None:
        return None
    s.ui.phase("measuring the reference implementation")
    ref = Arm(s.best.commit, s.best.worktree, cmd=cmd)
    try:
        m = verify.measure(s.spec, ref, s.best, looks=[max(5, s.spec.decide.looks[0])], min_effect=0.0)
    except (SampleError, verify.OutputMismatch) as e:
        s.note(f"reference measurement failed: {e}", "warning")
        return None
    d = m.decision
    return {"cmd": cmd, "value": m.mean("a"), "best_value": m.mean("b"), "speedup": d.speedup, "ci": list(d.ci)}
