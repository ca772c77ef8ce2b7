"""The plan–act–measure loop: each step lives in a module named for it, the run's state in agent/session.py."""

from __future__ import annotations

from agent import repair
from agent.attempts import attempts
from agent.confirm import confirm
from agent.evaluation import finish_pending
from agent.llm import ReplayDiverged, ReplayExhausted
from agent.planning import plan
from agent.session import Session, Stop


def run(s: Session) -> str:
    """Baseline → plan → (attempts in lanes → verify → keep or drop)* → confirm. Returns the stop reason."""
    try:
        if not s.resumed_baseline:
            repair.baseline(s)  # the baseline (agent/baseline.py), after a repair when the unmodified code fails
        finish_pending(s)  # evaluations a killed run left unfinished
        empty_plans = 0
        while True:
            if s.iteration >= s.options.iterations:
                raise Stop("iteration budget spent")
            if not s.queue:
                plan(s)
                empty_plans = 0 if s.queue else empty_plans + 1
                if empty_plans >= 2:
                    raise Stop("the planner has no new strategies")
                continue
            batch = s.queue[: min(s.options.lanes, s.options.iterations - s.iteration)]
            attempts(s, batch)  # each attempt is evaluated, then kept or dropped (agent/evaluation.py)
            del s.queue[: len(batch)]
    except ReplayExhausted:
        reason = "transcript ended"
    except ReplayDiverged as e:
        reason = f"replay diverged: {e}"
        s.note(reason, "warning")
    except Stop as stop:
        reason = stop.reason
    status = "interrupted" if reason == "interrupted" else "finished"
    if status == "finished":
        confirm(s)
    s.close(status, reason, final=True)
    return reason
