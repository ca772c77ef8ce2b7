"""The plan–act–measure loop. Everything it calls lives in agent/session.py."""

from __future__ import annotations

from agent import repair
from agent.llm import ReplayDiverged, ReplayExhausted
from agent.records import FinishEvent
from agent.report import write_report
from agent.session import Session, Stop


def run(s: Session) -> str:
    """Baseline → plan → (attempts in lanes → verify → keep or drop)* → confirm. Returns the stop reason."""
    try:
        if not s.resumed_baseline:
            repair.baseline(s)  # the baseline, after the repair phase when the unmodified code fails
        s.finish_pending()  # evaluations a killed run left unfinished
        empty_plans = 0
        while True:
            if s.iteration >= s.options.iterations:
                raise Stop("iteration budget spent")
            if not s.queue:
                s.plan()
                empty_plans = 0 if s.queue else empty_plans + 1
                if empty_plans >= 2:
                    raise Stop("the planner has no new strategies")
                continue
            batch = s.queue[: min(s.options.lanes, s.options.iterations - s.iteration)]
            s.attempts(batch)
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
        s.confirm()
    s.cleanup()
    s.close_executor()
    s.manifest.status, s.manifest.stop_reason = status, reason
    s.save_manifest(tokens=s.tokens, tool_calls=s.tool_calls, hours=(s.spent + s.elapsed()) / 3600)
    s.store.append(FinishEvent(status=status, stop_reason=reason))
    try:
        write_report(s.store)
    except Exception as e:  # the record is complete without it; `optimize report` can retry
        s.note(f"could not write report.html: {e}", "warning")
    s.store.unlock()
    return reason
